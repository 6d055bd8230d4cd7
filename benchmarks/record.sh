#!/usr/bin/env bash
# Record asv results for a range of commits, then publish the HTML report.
#
#   benchmarks/record.sh A..B [extra asv run options, e.g. --quick or -b TrainStep]
#   benchmarks/record.sh HEAD~3..HEAD
#   benchmarks/record.sh <sha>                  (one commit)
#
# For every commit of the range (git rev-list --reverse A..B: B and its ancestors not reachable from A, oldest
# first; write A^..B to include A), the commit is checked out into a temporary git worktree and measured with
#   ASV_PYTHONPATH=<worktree> asv run --set-commit-hash <sha> --environment existing:<python>
# asv's "existing" environment installs nothing: the benchmark process imports `suite` from the worktree because
# asv passes ASV_PYTHONPATH on as PYTHONPATH, and benchmarks/common.py (told by SUITE_BENCH_WORKTREE) drops the
# editable install's import hook, so a module an old commit lacks is missing rather than taken from the main
# checkout. The shared virtual environment is never modified. The benchmark files themselves always come from the current checkout
# (benchmarks/); a benchmark that needs something an old commit lacks skips itself (NotImplementedError in setup).
# Then `asv publish` writes .asv/html (view it with `asv preview`).
#
# Environment: ASV_PYTHON (default: <repo>/.venv/bin/python), the interpreter whose site-packages hold torch, dcls,
# spikingjelly and asv.
set -euo pipefail

if [[ $# -lt 1 || "$1" == "-h" || "$1" == "--help" ]]; then
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
range=$1
shift

root=$(git rev-parse --show-toplevel)
cd "$root"
python=${ASV_PYTHON:-$root/.venv/bin/python}
if [[ ! -x "$python" ]]; then
    echo "record.sh: no Python interpreter at $python (set ASV_PYTHON)" >&2
    exit 2
fi
asv() { "$python" -m asv "$@"; }

if [[ "$range" == *..* ]]; then
    mapfile -t commits < <(git rev-list --reverse "$range")
else
    mapfile -t commits < <(git rev-parse --verify "$range^{commit}")
fi
if [[ ${#commits[@]} -eq 0 ]]; then
    echo "record.sh: $range names no commits" >&2
    exit 2
fi

# asv needs a machine description once per machine; --yes takes the detected defaults.
if [[ ! -f "${ASV_MACHINE_FILE:-$HOME/.asv-machine.json}" ]]; then
    asv machine --yes >/dev/null
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/asv-record.XXXXXX")
worktrees=()
cleanup() {
    for wt in "${worktrees[@]}"; do
        git worktree remove --force "$wt" >/dev/null 2>&1 || true
    done
    git worktree prune >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

status=0
for sha in "${commits[@]}"; do
    wt="$tmp/${sha:0:12}"
    echo "== $(git log -1 --format='%h %s' "$sha")"
    git worktree add --detach --quiet "$wt" "$sha"
    worktrees+=("$wt")
    if ! SUITE_BENCH_WORKTREE="$wt" ASV_PYTHONPATH="$wt" asv run --set-commit-hash "$sha" --environment "existing:$python" "$@"; then
        echo "record.sh: asv run failed for $sha" >&2
        status=1
    fi
done

asv publish
echo "record.sh: recorded ${#commits[@]} commit(s); report in $root/.asv/html (asv preview)"
exit $status
