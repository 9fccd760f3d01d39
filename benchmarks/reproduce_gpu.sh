#!/usr/bin/env bash
# The reproduction on a lent GPU, Jupyter-free (the GPU image has none), in calls that fit a lease.
#
# A lease is 15 minutes of device time (a start takes 1-2 of them) and one call may run 10 minutes, so each
# call works for at most BUDGET seconds (default 520), stops cleanly (SIGINT: the running epoch's state was
# saved at the end of the previous one), packs what is finished, and the next call on the still-warm
# machine resumes from the step cache. Call it again until the log says "all notebooks finished".
#
# Prepare here (once):
#   echo /.whl/ >> .git/info/exclude; echo /.carry/ >> .git/info/exclude
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl torch-pruning==1.6.1
#   the official set (177 MB) is over one call's 64 MiB: carry it in three parts, one a call, on a warm machine
#   (an ignored folder carried once stays there): mkdir -p .carry && tar -C ../shared -cf - cifar-10-batches-bin |
#   split -b 60m - .carry/cifar10-bin.tar.part-   (then carry .carry/ with a third of the parts per call)
# Run (device tool): command `bash benchmarks/reproduce_gpu.sh full`, carry [".whl", ".carry"], timeout_s 580.
# Rehearse on the CPU: `BUDGET=60 PYTHON=.venv/bin/python OUT=/tmp/out bash benchmarks/reproduce_gpu.sh smoke`.
#
# Writes under $OUT: results.tar.gz (every finished table), assets.tar.gz (figures, once all are done),
# log.txt (this call) and timings.txt (per architecture, per call).
set -uo pipefail
PROFILE=${1:-full}
BUDGET=${BUDGET:-520}
PY=${PYTHON:-python3}  # the GPU image: python3 holds torch; here: PYTHON=.venv/bin/python
OUT=${OUT:?set OUT to the folder whose files come back}
cd "$(dirname "$0")/.."
if ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
if [ ! -d .carry/cifar-10-batches-bin ] && ls .carry/cifar10-bin.tar.part-* >/dev/null 2>&1; then
  cat .carry/cifar10-bin.tar.part-* | tar -C .carry -xf -  # all parts here: the official set, md5-checked on load
fi
export COMPRESS_DATA=${COMPRESS_DATA:-$PWD/.carry/cifar-10-batches-bin}
export COMPRESS_CACHE=${COMPRESS_CACHE:-/tmp/compress-steps}
export PYTHONUNBUFFERED=1
deadline=$(( $(date +%s) + BUDGET ))
results=runs/$PROFILE/results
{
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '', 'cpu threads', torch.get_num_threads())"
  done_all=1
  for arch in resnet18 vgg16_bn vgg16; do
    left=$(( deadline - $(date +%s) ))
    if [ "$left" -lt 30 ]; then done_all=0; break; fi
    t0=$(date +%s)
    timeout --signal=INT --kill-after=20 "$left" \
      "$PY" -m compress reproduce --profile "$PROFILE" --arch "$arch" --engine inprocess --allow-long
    rc=$?
    echo "$arch: rc $rc, $(( $(date +%s) - t0 )) s this call" >> "$OUT/timings.txt"
    if [ "$rc" -ne 0 ]; then done_all=0; break; fi
  done
  if [ "$done_all" -eq 1 ]; then
    "$PY" -m compress figures --results "$results" && echo "all notebooks finished"
  else
    echo "stopped at the budget: run the same command again to resume"
  fi
} 2>&1 | tee "$OUT/log.txt"
[ -d "$results" ] && tar -czf "$OUT/results.tar.gz" "$results"
[ -d "runs/$PROFILE/assets" ] && tar -czf "$OUT/assets.tar.gz" "runs/$PROFILE/assets"
ls -la "$OUT"
