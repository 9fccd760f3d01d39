#!/usr/bin/env bash
# The `cpu` profile for each architecture, one after another, built to run detached for hours and survive
# the end of a session:
#   setsid nohup benchmarks/reproduce_cpu.sh vgg16 resnet18 vgg16_bn > runs/pipeline.log 2>&1 &
# It runs from a clean git worktree of COMMIT (default HEAD), so every results file records a clean commit
# while the main checkout keeps changing; the step cache is shared ($COMPRESS_CACHE, default the main
# checkout's data/cache/steps), so running it again resumes: finished steps are read back, a training step
# continues from its last saved epoch. Each finished architecture's published tables, figures and executed
# notebook are copied back into the main checkout (results/<arch>/, assets/<arch>_*.png,
# notebooks/<arch>.ipynb), ready to commit there.
set -euo pipefail
source "$(dirname "$0")/clean_worktree.sh"
archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(vgg16 resnet18 vgg16_bn)
for arch in "${archs[@]}"; do
  echo "== $(date -u +%FT%TZ) $arch from $commit"
  stamp=$(mktemp)
  "$python" -m compress reproduce --profile cpu --arch "$arch" --publish --allow-long
  rm -rf "${repo:?}/results/$arch" && cp -r "results/$arch" "$repo/results/"
  find assets -name "${arch}_*.png" -newer "$stamp" -exec cp {} "$repo/assets/" \;
  cp "notebooks/$arch.ipynb" "$repo/notebooks/"
  rm -f "$stamp"
  echo "== $(date -u +%FT%TZ) $arch copied back to $repo: commit it there"
done
echo "== $(date -u +%FT%TZ) done"
