#!/bin/bash
# tests/soak.sh — the long run: fsp-stress at full size (3,200 directories,
# 12,000 files per tree, every scenario: copy, verify, churn, forget, delete)
# against one release fsp-memfs daemon (build/), round after round. Each
# round is one fsp-stress run with seed+round-1 (what fsp-stress --rounds
# would use), watching the daemon (--pid) and fspctl's counters (nodes,
# handles, inflight, mem_bytes must come back to where the round found them).
# One line per round, then a summary; the first failure stops the soak and
# names its seed. Not part of make check.
#
# Usage: sh tests/soak.sh [--rounds N] [--seconds S] [--seed N] [--transport dev|uring]
#        (make soak SOAK_ARGS=...)
#   --transport T dev (/dev/fuse, default) or uring (FUSE over io_uring; root:
#                 enable_uring is set to Y for the mount and put back)
#   --rounds N    rounds (default 20)
#   --seconds S   churn seconds per round (default: fsp-stress's, 10)
#   --seed N      seed of the first round (default: from the clock, printed)
# Environment: BUILD (default build), FSP_SOAK_LOGS (default $BUILD/soak-logs:
# round-NN.log per round and, on failure, the daemon's log).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) BUILD_DIR=$BUILD ;; *) BUILD_DIR=$ROOT/$BUILD ;; esac
export ROOT BUILD_DIR
FSP_TEST_FS=memfs
. "$ROOT/tests/lib.sh"

usage() {
	sed -n 's/^# Usage: //p' "$ROOT/tests/soak.sh" >&2
	exit 2
}
number() { [[ "$2" =~ ^[0-9]+$ ]] || { echo "soak: $1 needs a number, not '$2'" >&2; usage; }; }
rounds=20 seconds= seed=
while [ $# -gt 0 ]; do
	case "$1" in
	--rounds) number "$1" "${2:-}"; rounds=$2; shift ;;
	--seconds) number "$1" "${2:-}"; seconds=$2; shift ;;
	--seed) number "$1" "${2:-}"; seed=$2; shift ;;
	--transport)
		case "${2:-}" in dev | uring) FSP_TEST_TRANSPORT=$2 ;; *) usage ;; esac
		shift ;;
	-h | --help) usage ;;
	*) echo "soak: unknown argument '$1'" >&2; usage ;;
	esac
	shift
done
[ "$rounds" -ge 1 ] || { echo "soak: --rounds must be at least 1" >&2; exit 2; }
# the clock's seed, printed, and each round's is seed + round - 1
[ -n "$seed" ] || seed=$(($(date +%s%N) / 1000 % 1000000000000))

STRESS=$BUILD_DIR/fsp-stress
FSPCTL=$BUILD_DIR/fspctl
for b in "$FSP_MEMFS" "$STRESS" "$FSPCTL"; do
	[ -x "$b" ] || fail "$b is not built (run make)"
done
need_fuse
LOGS=${FSP_SOAK_LOGS:-$BUILD_DIR/soak-logs}
mkdir -p "$LOGS"
rm -f "$LOGS"/round-*.log "$LOGS"/daemon.log
# a round that hangs instead of failing is a failure too
ROUND_LIMIT=1800

echo "soak: $rounds rounds of fsp-stress (3200 dirs, 12000 files, all scenarios${seconds:+, churn ${seconds}s}) over ${FSP_TEST_TRANSPORT:-dev}, first seed $seed"
echo "soak: machine: $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r); logs in $LOGS"

M=$T/mnt
URING=/sys/module/fuse/parameters/enable_uring
if [ "${FSP_TEST_TRANSPORT:-dev}" = uring ]; then
	[ -w "$URING" ] || fail "--transport uring needs root and $URING"
	uring_old=$(cat "$URING")
	trap 'rc=$?; [ -z "$uring_old" ] || echo "$uring_old" >"$URING"; _fsp_exit $rc' EXIT
	echo Y >"$URING"
	# the kernel needs it until the ring is registered: until the mount answers
	fs_mount "$M"
	echo "$uring_old" >"$URING"
	uring_old=
else
	fs_mount "$M"
fi
pid=$(fs_pid "$M")
counters() { "$FSPCTL" stats "$M" | awk '$1 == "nodes" || $1 == "handles" || $1 == "inflight" || $1 == "mem_bytes" { printf "%s%s %s", s, $1, $2; s = ", " }'; }
rss() { awk '/VmRSS/ { printf "%d MB", $2 / 1024 }' "/proc/$1/status" 2>/dev/null; }
echo "soak: daemon pid $pid; at start: $(counters), RSS $(rss "$pid")"

start=$SECONDS
times=()
failed=0
for r in $(seq 1 "$rounds"); do
	s=$((seed + r - 1))
	log=$(printf '%s/round-%02d.log' "$LOGS" "$r")
	args=(--seed "$s" --pid "$pid" --counters "$FSPCTL stats $M")
	[ -n "$seconds" ] && args+=(--seconds "$seconds")
	t0=${EPOCHREALTIME/./}
	rc=0
	timeout -k 10 "$ROUND_LIMIT" "$STRESS" "${args[@]}" "$M" >"$log" 2>&1 || rc=$?
	t=$(((${EPOCHREALTIME/./} - t0) / 100000))
	t="$((t / 10)).$((t % 10))"
	if [ $rc -ne 0 ]; then
		failed=$r
		case $rc in
		124 | 137) why="hung: no verdict within ${ROUND_LIMIT}s" ;;
		*) why=$(grep -m 1 '^fsp-stress: FAIL' "$log" || echo "fsp-stress exit status $rc") ;;
		esac
		printf 'round %2d/%d: FAIL %6ss  seed %s: %s\n' "$r" "$rounds" "$t" "$s" "$why"
		tail -n 40 "$log" | sed 's/^/  | /'
		break
	fi
	times+=("$t")
	printf 'round %2d/%d: PASS %6ss  seed %s  (%s; daemon RSS %s)\n' "$r" "$rounds" "$t" "$s" "$(counters)" "$(rss "$pid")"
done
total=$((SECONDS - start))

if [ "$failed" != 0 ]; then
	cp "$(fs_log "$M")" "$LOGS/daemon.log" 2>/dev/null || true
	if pid_alive "$pid"; then
		echo "soak: the daemon (pid $pid) is still running; its counters: $(counters || true)"
	else
		echo "soak: the daemon (pid $pid) is gone"
	fi
	echo "soak: FAIL at round $failed/$rounds (seed $((seed + failed - 1)); repeat with: sh tests/soak.sh --rounds 1 --seed $((seed + failed - 1))${seconds:+ --seconds $seconds}), after ${total}s; logs: $(printf '%s/round-%02d.log' "$LOGS" "$failed"), $LOGS/daemon.log"
	exit 1
fi

# the daemon must also leave cleanly after all of that
fusermount3 -u -- "$M" || fail "fusermount3 -u $M failed after the soak"
wait_dead "$pid" 60 || fail "the daemon did not exit within 60s of the unmount"
rc=0
wait "$pid" 2>/dev/null || rc=$?
_fsp_forget "$(realpath -m "$M")"
if [ $rc -ne 0 ]; then
	cp "$(fs_log "$M")" "$LOGS/daemon.log" 2>/dev/null || true
	fail "the daemon ended with $(describe_status $rc) after the unmount (log: $LOGS/daemon.log)"
fi
summary=$(printf '%s\n' "${times[@]}" | awk '{ s += $1; if (NR == 1 || $1 < lo) lo = $1; if ($1 > hi) hi = $1 }
	END { printf "per round: mean %.1fs, min %.1fs, max %.1fs", s / NR, lo, hi }')
echo "soak: PASS: $rounds/$rounds rounds in ${total}s ($summary); seeds $seed..$((seed + rounds - 1)); daemon exit status 0"
