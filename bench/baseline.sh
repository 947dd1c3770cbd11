#!/usr/bin/env bash
# Issue 11's floors, measured as the issue asks ("same run, same generator"):
# this checkout against the code of the day the issue was filed (6075d7e,
# before any of its work), two clusters side by side (bench/ab.py), for one
# client's p50 and for 64 clients with each of the two generators.
#
#   bash bench/baseline.sh [COMMIT]        # or: make bench-baseline
#   ROUNDS=10 SECONDS_PER_RUN=10 bash bench/baseline.sh
#
# The old code runs from a temporary git worktree (removed at the end) with
# this checkout's virtualenv. About 8 minutes with the defaults.
set -euo pipefail

commit=${1:-6075d7e}
rounds=${ROUNDS:-6}
seconds=${SECONDS_PER_RUN:-8}
root=$(cd "$(dirname "$0")/.." && pwd)
py="$root/.venv/bin/python"
[ -x "$py" ] || { echo "baseline: $py missing: run make bench-baseline" >&2; exit 2; }
git -C "$root" rev-parse --verify --quiet "$commit^{commit}" >/dev/null \
  || { echo "baseline: no commit $commit in this clone" >&2; exit 2; }

tmp=$(mktemp -d)
cleanup() {
  git -C "$root" worktree remove --force "$tmp/old" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
git -C "$root" worktree add --quiet --detach "$tmp/old" "$commit"

cd "$root"
echo "== A = $commit, B = this checkout ($(git rev-parse --short HEAD)); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== one client, http.client, $rounds rounds of 1,000 commands"
"$py" bench/ab.py "$tmp/old" . --rounds "$rounds" --commands 1000
for client in httpclient requests; do
  echo "== 64 clients, $client, $rounds rounds of $seconds s"
  "$py" bench/ab.py "$tmp/old" . --rounds "$rounds" --clients 64 \
    --seconds "$seconds" --client "$client"
done
