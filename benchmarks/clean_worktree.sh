# Sourced by the detached CPU runners (reproduce_cpu.sh, budget_cpu.sh): a clean git worktree of COMMIT
# (default HEAD) to run from, so every results file records a clean commit while the main checkout keeps
# changing, and the step cache of the main checkout ($COMPRESS_CACHE, default data/cache/steps), so a run
# started again resumes. Sets repo, commit, worktree and python, and enters the worktree.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
commit=$(git -C "$repo" rev-parse --short "${COMMIT:-HEAD}")
worktree="$repo/runs/worktree-$commit"
[ -d "$worktree" ] || git -C "$repo" worktree add --detach "$worktree" "$commit"
export PYTHONPATH="$worktree" COMPRESS_CACHE="${COMPRESS_CACHE:-$repo/data/cache/steps}"
export COMPRESS_DATA="${COMPRESS_DATA:-$repo/../shared/cifar-10-batches-bin}"  # the official set
python="${PYTHON:-$repo/.venv/bin/python}"
cd "$worktree"
