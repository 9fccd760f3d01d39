#!/usr/bin/env bash
# The `cpu` profile's budget sweep (accuracy vs MACs, 2x-32x, with its controls) for each architecture, one
# after another, built to run detached for hours and survive the end of a session:
#   setsid nohup benchmarks/budget_cpu.sh resnet18 vgg16_bn vgg16 > runs/budget.log 2>&1 &
# Like reproduce_cpu.sh it runs from a clean worktree of COMMIT (default HEAD) and shares the step cache
# (clean_worktree.sh): started again it resumes (finished steps are read back, a fine-tune continues from its
# last saved epoch). An architecture without a cached baseline trains it first. Tables go to
# runs/budget/results/<arch>/.
set -euo pipefail
source "$(dirname "$0")/clean_worktree.sh"
export PYTHONUNBUFFERED=1
archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(resnet18 vgg16_bn vgg16)
for arch in "${archs[@]}"; do
  echo "== $(date -u +%FT%TZ) $arch budget sweep from $commit"
  "$python" -m compress budget --profile cpu --arch "$arch" --results "$repo/runs/budget/results"
  echo "== $(date -u +%FT%TZ) $arch done: tables in $repo/runs/budget/results/$arch"
done
echo "== $(date -u +%FT%TZ) done"
