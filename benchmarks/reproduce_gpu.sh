#!/usr/bin/env bash
# Full reproduction on one lent GPU, in ONE device call, Jupyter-free (the GPU image has no Jupyter).
#
# Prepare here (once):
#   echo /.whl/ >> .git/info/exclude; echo /.carry/ >> .git/info/exclude
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl thop==0.1.1.post2209072238 torch-pruning==1.6.1
#   mkdir -p .carry && cp ../shared/cifar10-jpeg.tar.gz .carry/
# Run (device tool): command `bash benchmarks/reproduce_gpu.sh full`, carry [".whl", ".carry"].
# Rehearse on the CPU: `BENCH_STEPS=2 PYTHON=.venv/bin/python OUT=/tmp/out COMPRESS_DATA=../shared/cifar10-jpeg.tar.gz bash benchmarks/reproduce_gpu.sh smoke`.
#
# Writes under $OUT (at most 8 files come back): results.tar.gz (every table), assets.tar.gz (figures),
# checkpoints.tar.gz (the small pruned models only), log.txt and timings.txt.
set -euo pipefail
PROFILE=${1:-full}
PY=${PYTHON:-python3}  # the GPU image: python3 holds torch; here: PYTHON=.venv/bin/python
OUT=${OUT:?set OUT to the folder whose files come back}
cd "$(dirname "$0")/.."
if ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
export COMPRESS_DATA=${COMPRESS_DATA:-$PWD/.carry/cifar10-jpeg.tar.gz}
export COMPRESS_CACHE=${COMPRESS_CACHE:-/tmp/compress-steps}
export PYTHONUNBUFFERED=1
work=$(mktemp -d)
{
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '', 'cpu threads', torch.get_num_threads())"
  start=$(date +%s)
  "$PY" benchmarks/train_speed.py --steps "${BENCH_STEPS:-50}" 2>&1 || true
  echo "train_speed: $(( $(date +%s) - start )) s" >> "$OUT/timings.txt"
  for arch in resnet18 vgg16_bn vgg16; do
    t0=$(date +%s)
    "$PY" -m compress reproduce --profile "$PROFILE" --arch "$arch" --engine inprocess \
        --results "$work/results" --assets "$work/assets"
    echo "$arch: $(( $(date +%s) - t0 )) s" >> "$OUT/timings.txt"
  done
  echo "total: $(( $(date +%s) - start )) s" >> "$OUT/timings.txt"
} 2>&1 | tee "$OUT/log.txt"
tar -czf "$OUT/results.tar.gz" -C "$work" results
tar -czf "$OUT/assets.tar.gz" -C "$work" assets
# pruned checkpoints are small (the baselines are 45-60 MB and stay behind)
find "$COMPRESS_CACHE" -path '*prune_round-*' -name model.pt -size -8M -print0 | tar -czf "$OUT/checkpoints.tar.gz" --null -T -
ls -la "$OUT"
