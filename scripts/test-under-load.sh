#!/usr/bin/env bash
# Runs the test suite N times in a row while CPU-bound processes run beside it, the way a
# loaded 2-core CI machine runs it; optionally from a fresh clone in a folder no other user
# can read (0700, like a clone under /root). Stops nothing but what it started.
#
#   scripts/test-under-load.sh [--runs N] [--hogs K] [--private] [--command CMD]
#
#   --runs N      run the suite N times (default 5); every run must pass
#   --hogs K      CPU-bound processes beside it (default 2; 0 for none)
#   --private     clone HEAD into a new 0700 folder and run there (node_modules hard-linked,
#                 ../shared linked beside it as in this checkout)
#   --command C   what one run is (default: npm test; e.g. '.ci/run')
#
# Each run's output goes to a log file; the summary line is "load test: P/N runs passed".
set -uo pipefail
runs=5
hogs=2
private=0
command='npm test'
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --hogs) hogs=$2; shift 2 ;;
    --private) private=1; shift ;;
    --command) command=$2; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--hogs K] [--private] [--command CMD]" >&2; exit 2 ;;
  esac
done
case "$runs$hogs" in *[!0-9]*) echo "--runs and --hogs take whole numbers" >&2; exit 2 ;; esac

checkout=$(cd "$(dirname "$0")/.." && pwd)
logdir=$(mktemp -d "${TMPDIR:-/tmp}/fsguard-load-logs.XXXXXX")
hog_pids=()
private_dir=''

cleanup() {
  for pid in "${hog_pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${hog_pids[@]}"; do wait "$pid" 2>/dev/null; done
  if [ -n "$private_dir" ]; then rm -rf "$private_dir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

workdir=$checkout
if [ "$private" = 1 ]; then
  # mktemp -d makes the folder 0700: no other user can read the checkout inside it.
  private_dir=$(mktemp -d "${TMPDIR:-/tmp}/fsguard-private.XXXXXX")
  chmod 700 "$private_dir"
  git clone -q --no-hardlinks "$checkout" "$private_dir/fsguard" || exit 1
  git -C "$private_dir/fsguard" checkout -q "$(git -C "$checkout" rev-parse HEAD)" || exit 1
  if [ -d "$checkout/../shared" ]; then ln -s "$(cd "$checkout/../shared" && pwd)" "$private_dir/shared"; fi
  if [ -d "$checkout/node_modules" ]; then cp -al "$checkout/node_modules" "$private_dir/fsguard/" 2>/dev/null || cp -a "$checkout/node_modules" "$private_dir/fsguard/"; fi
  workdir=$private_dir/fsguard
  echo "private checkout: $workdir ($(stat -c %a "$private_dir"))"
fi

for _ in $(seq 1 "$hogs"); do
  # A busy loop in its own process: one core's worth of competition each.
  sh -c 'while :; do :; done' &
  hog_pids+=("$!")
done
echo "CPU-bound processes beside the suite: ${hog_pids[*]:-none}; logs in $logdir"

passed=0
for i in $(seq 1 "$runs"); do
  log="$logdir/run-$i.log"
  start=$(date +%s)
  (cd "$workdir" && bash -c "$command") >"$log" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  summary=$(grep -E '^# \{ total:' "$log" | tail -1)
  if [ "$rc" = 0 ]; then
    passed=$((passed + 1))
    echo "run $i/$runs: passed in ${took}s ${summary}"
  else
    echo "run $i/$runs: FAILED (exit $rc) in ${took}s ${summary}; see $log"
    grep -E '^\s*not ok' "$log" | head -20
  fi
done
echo "load test: $passed/$runs runs passed (hogs: $hogs, private: $private, command: $command)"
[ "$passed" = "$runs" ]
