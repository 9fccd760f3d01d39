#!/usr/bin/env bash
# The `cpu` profile for each architecture, one after another, built to run detached for hours and survive
# the end of a session:
#   setsid nohup benchmarks/reproduce_cpu.sh vgg16 resnet18 vgg16_bn > runs/pipeline.log 2>&1 &
# It runs from a clean git worktree of COMMIT (default HEAD), so every results file records a clean commit
# while the main checkout keeps changing; the step cache is shared ($COMPRESS_CACHE, default the main
# checkout's data/cache/steps), so running it again resumes: finished steps are read back, a training step
# continues from its last saved epoch. The published results/, assets/ and notebooks/ land in the worktree:
# copy them into the main checkout and commit them.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
commit=$(git -C "$repo" rev-parse --short "${COMMIT:-HEAD}")
worktree="$repo/runs/worktree-$commit"
[ -d "$worktree" ] || git -C "$repo" worktree add --detach "$worktree" "$commit"
export PYTHONPATH="$worktree" COMPRESS_CACHE="${COMPRESS_CACHE:-$repo/data/cache/steps}"
python="${PYTHON:-$repo/.venv/bin/python}"
cd "$worktree"
archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(vgg16 resnet18 vgg16_bn)
for arch in "${archs[@]}"; do
  echo "== $(date -u +%FT%TZ) $arch from $commit"
  "$python" -m compress reproduce --profile cpu --arch "$arch" --publish --allow-long
done
echo "== $(date -u +%FT%TZ) done"
