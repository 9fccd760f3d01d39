#!/usr/bin/env bash
# The study on this CPU, built to run detached for hours and survive the end of a session:
#   setsid nohup benchmarks/reproduce_cpu.sh > runs/pipeline.log 2>&1 &
# First `python -m compress study` runs the study's units in the order that decides results first (ResNet18's
# baseline and budget curve, then VGG16_BN's, then quantization, the controls, sparse, the iterative
# configurations; `compress/study.py`), each step published into the main checkout's results/<arch>/models/ as
# it finishes, and each architecture's tables, figures and README blocks written there after its curve. Then,
# with every step cached, each architecture's notebook runs (`reproduce --publish`, no training) and its tables,
# figures and executed notebook are copied back into the main checkout (results/<arch>/, assets/<arch>_*.png,
# notebooks/<arch>.ipynb), ready to commit there.
# It runs from a clean git worktree of COMMIT (default HEAD), so every results file records a clean commit
# while the main checkout keeps changing; the step cache is shared ($COMPRESS_CACHE, default the main
# checkout's data/cache/steps), so running it again resumes: finished steps are read back, a training step
# continues from its last saved epoch, or on another machine from its committed resume point
# (results/<arch>/models/resume/, written by `python -m compress publish` before a window ends). The
# worktree's published steps are copied back to the main checkout every minute, so each finished unit can be
# committed while the run goes on. Published steps (the main checkout's, as of COMMIT) are read, not recomputed.
set -euo pipefail
source "$(dirname "$0")/clean_worktree.sh"
archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(resnet18 vgg16_bn)
sync_models() {  # the worktree's published steps -> the main checkout (files replaced atomically by cp + mv)
  for dir in results/*/models; do
    [ -d "$dir" ] || continue
    mkdir -p "$repo/$dir"
    for f in "$dir"/*; do
      [ -f "$f" ] && ! cmp -s "$f" "$repo/$f" && cp "$f" "$repo/$f.tmp" && mv "$repo/$f.tmp" "$repo/$f"
    done
  done
  return 0
}
echo "== $(date -u +%FT%TZ) the study (${archs[*]}) from $commit"
"$python" -m compress study --profile cpu --arch "${archs[@]}" --results "$repo/results"  # straight into the checkout
# the notebooks publish into the worktree: its published steps go back to the checkout every minute
( while sleep 60; do sync_models; done ) &
syncer=$!
trap 'kill $syncer 2>/dev/null; sync_models' EXIT
for arch in "${archs[@]}"; do
  echo "== $(date -u +%FT%TZ) $arch notebook from $commit (every step cached)"
  stamp=$(mktemp)
  "$python" -m compress reproduce --profile cpu --arch "$arch" --publish --allow-long
  rm -rf "${repo:?}/results/$arch" && cp -r "results/$arch" "$repo/results/"
  find assets -name "${arch}_*.png" -newer "$stamp" -exec cp {} "$repo/assets/" \;
  cp "notebooks/$arch.ipynb" "$repo/notebooks/"
  rm -f "$stamp"
  echo "== $(date -u +%FT%TZ) $arch copied back to $repo: commit it there"
done
echo "== $(date -u +%FT%TZ) done"
