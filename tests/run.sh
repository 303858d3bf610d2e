#!/bin/sh
# tests/run.sh — the fsp test runner.
#
# Runs every unit test binary ($BUILD/unit/*) and every integration test
# (tests/integration/*.sh), each in its own process, under `timeout`, in its
# own temporary directory, and prints one line per test:
#
#   PASS name
#   FAIL name (reason)          followed by the last lines of its log
#   SKIP name: reason
#
# and at the end exactly one line "N passed, N failed, N skipped". The exit
# status is 1 when any test failed, else 0.
#
# After each test the runner cleans up whatever the test left behind, even
# when it timed out or crashed: fuse connections under the test's directory
# are aborted, every mount under it is lazily unmounted, and every process the
# test started (found by an environment tag that children inherit, so even
# daemons that detached are found) is killed.
#
# Usage: sh tests/run.sh [name...]
#   name            unit/NAME, integration/NAME or just NAME; default: all
#   TESTS="a b"     the same, from the environment (space or comma separated)
#   BUILD=dir       where the binaries are (default: build)
#   FSP_QUICK=1     smaller data sets, for a faster run
#   FSP_TEST_FS=mode    the file system the behavioural tests run against:
#                   memfs (default) fsp-memfs;
#                   tmpfs      tmpfs, to check the tests themselves (reference
#                              mode);
#                   ptfs       fsp-ptfs over a fresh tmpfs per mount;
#                   ptfs-ext4  fsp-ptfs over a fresh ext4 (loop device) per
#                              mount.
#                   The unit tests do not depend on it: in the other modes
#                   they run only when named.
#   FSP_TEST_TRANSPORT=dev|uring  how the mounts of fs_mount are served:
#                   dev (default) /dev/fuse; uring FUSE over io_uring
#                   (-o io_uring=on; needs root: the runner writes Y to
#                   enable_uring for the run and puts the old value back)
#   FSP_TEST_TIMEOUT=s  default per-test timeout (300; a test may ask for more
#                   with a "# timeout: N" line near its top)
#   FSP_TEST_KEEP=1 keep each test's temporary directory
#   FSP_TEST_VERBOSE=1  print every test's whole log
#   FSP_TEST_LOGS=dir   where the logs go (default: $BUILD/test-logs, and
#                   $BUILD/test-logs/MODE for a mode other than memfs)
#   FSP_TEST_COUNTS=file  append "MODE npassed nfailed nskipped" to file at
#                   the end (make check sums several runs from it)
#
# Test protocol (see tests/lib.sh): exit 0 = pass, 77 = skip (the reason is
# the last "SKIP: ..." line of the log), anything else = fail (the reason is
# the first "FAIL: ..." line of the log, if any).

set -u

here=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$here/.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) BUILD_DIR=$BUILD ;; *) BUILD_DIR=$ROOT/$BUILD ;; esac
FSP_TEST_FS=${FSP_TEST_FS:-memfs}
FSP_QUICK=${FSP_QUICK:-0}
FSP_TEST_TRANSPORT=${FSP_TEST_TRANSPORT:-dev}
DEFAULT_TIMEOUT=${FSP_TEST_TIMEOUT:-300}
UNIT_TIMEOUT=${FSP_UNIT_TIMEOUT:-120}
MODE=$FSP_TEST_FS
[ "$FSP_TEST_TRANSPORT" = dev ] || MODE=$FSP_TEST_FS+$FSP_TEST_TRANSPORT
if [ "$MODE" = memfs ]; then
	LOGDIR=${FSP_TEST_LOGS:-$BUILD_DIR/test-logs}
else
	LOGDIR=${FSP_TEST_LOGS:-$BUILD_DIR/test-logs/$MODE}
fi
export ROOT BUILD BUILD_DIR FSP_TEST_FS FSP_QUICK FSP_TEST_TRANSPORT
case "${FSP_TEST_COUNTS:-}" in
"" | /*) ;;
*) FSP_TEST_COUNTS=$PWD/$FSP_TEST_COUNTS ;;
esac
# the tests run make and gcc themselves: not as part of an outer make -j
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES
PATH="$PATH:/usr/sbin:/sbin"
export PATH

case "$FSP_TEST_FS" in
memfs | tmpfs | ptfs | ptfs-ext4) ;;
*) echo "run.sh: FSP_TEST_FS must be memfs, tmpfs, ptfs or ptfs-ext4, not '$FSP_TEST_FS'" >&2; exit 2 ;;
esac

URING_PARAM=/sys/module/fuse/parameters/enable_uring
uring_old=
case "$FSP_TEST_TRANSPORT" in
dev) ;;
uring)
	if [ "$(id -u)" != 0 ] || [ ! -w "$URING_PARAM" ]; then
		echo "run.sh: FSP_TEST_TRANSPORT=uring needs root and $URING_PARAM (Linux 6.14+)" >&2
		exit 2
	fi
	uring_old=$(cat "$URING_PARAM")
	trap 'echo "$uring_old" >"$URING_PARAM"' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	echo Y >"$URING_PARAM" ;;
*) echo "run.sh: FSP_TEST_TRANSPORT must be dev or uring, not '$FSP_TEST_TRANSPORT'" >&2; exit 2 ;;
esac

if ! command -v timeout >/dev/null 2>&1; then
	echo "run.sh: 'timeout' (coreutils) is missing; run tests/deps.sh" >&2
	exit 2
fi

mkdir -p "$LOGDIR" 2>/dev/null && [ -w "$LOGDIR" ] || LOGDIR=${TMPDIR:-/tmp}/fsp-test-logs.$(id -u)
mkdir -p "$LOGDIR" || exit 2

# --- environment -----------------------------------------------------------

# Tests that abort connections need fusectl; mount it when we can.
if [ "$(id -u)" -eq 0 ] && [ -d /sys/fs/fuse/connections ] &&
	! grep -q ' /sys/fs/fuse/connections ' /proc/self/mountinfo 2>/dev/null; then
	mount -t fusectl none /sys/fs/fuse/connections 2>/dev/null ||
		echo "run.sh: note: could not mount fusectl on /sys/fs/fuse/connections"
fi
if [ "$(id -u)" -eq 0 ] && [ ! -e /dev/fuse ]; then
	modprobe fuse 2>/dev/null || true
fi

# --- choosing tests --------------------------------------------------------

all_tests() {
	if [ -d "$BUILD_DIR/unit" ] && { [ "$MODE" = memfs ] || [ "${1:-}" = all ]; }; then
		for f in "$BUILD_DIR"/unit/*; do
			[ -f "$f" ] && [ -x "$f" ] && echo "unit/$(basename "$f")"
		done
	fi
	for f in "$ROOT"/tests/integration/*.sh; do
		[ -f "$f" ] && echo "integration/$(basename "$f" .sh)"
	done
}

wanted=$*
if [ -z "$wanted" ] && [ -n "${TESTS:-}" ]; then
	wanted=$(echo "$TESTS" | tr ',' ' ')
fi

selected=""
if [ -z "$wanted" ]; then
	selected=$(all_tests)
else
	available=$(all_tests all)
	for w in $wanted; do
		w=${w%.sh}
		w=${w#tests/}
		found=""
		for t in $available; do
			case "$t" in "$w" | */"$w") found="$found $t" ;; esac
		done
		if [ -z "$found" ]; then
			echo "run.sh: no test named '$w'; available:" $available >&2
			exit 2
		fi
		selected="$selected $found"
	done
fi

# --- cleanup of what a test left behind ------------------------------------

# mounts_under DIR: mount points at or below DIR, deepest first.
mounts_under() {
	awk -v d="$1" '{ p = $5; gsub(/\\040/, " ", p);
		if (p == d || index(p, d "/") == 1) print length(p) " " $3 " " p }' \
		/proc/self/mountinfo | sort -rn | cut -d' ' -f2-
}

# tagged_pids TAG: processes whose environment carries FSP_TEST_ID=TAG.
tagged_pids() {
	for e in /proc/[0-9]*/environ; do
		p=${e#/proc/}
		p=${p%/environ}
		[ "$p" = "$$" ] && continue
		if grep -qxz "FSP_TEST_ID=$1" "$e" 2>/dev/null; then
			echo "$p"
		fi
	done
}

# cleanup_after DIR TAG LOG: abort, unmount, kill. Notes what it did in LOG.
cleanup_after() {
	dir=$1 tag=$2 log=$3
	left=$(mounts_under "$dir")
	if [ -n "$left" ]; then
		echo "$left" | while read -r devno mp; do
			echo "run.sh: test left a mount at $mp; aborting and lazily unmounting" >>"$log"
			minor=${devno#*:}
			case "$devno" in
			0:*) [ -w "/sys/fs/fuse/connections/$minor/abort" ] &&
				echo 1 >"/sys/fs/fuse/connections/$minor/abort" 2>/dev/null ;;
			esac
			umount -l "$mp" 2>>"$log" || fusermount3 -u -z "$mp" 2>>"$log"
		done
	fi
	pids=$(tagged_pids "$tag")
	if [ -n "$pids" ]; then
		echo "run.sh: test left processes behind; killing:" $pids >>"$log"
		for p in $pids; do
			echo "  $p: $(tr '\0' ' ' </proc/"$p"/cmdline 2>/dev/null)" >>"$log"
		done
		kill -KILL $pids 2>/dev/null
		i=0
		while [ $i -lt 50 ] && [ -n "$(tagged_pids "$tag")" ]; do
			sleep 0.1
			i=$((i + 1))
		done
	fi
	# a killed daemon may have left a stale mount behind
	left=$(mounts_under "$dir")
	if [ -n "$left" ]; then
		echo "$left" | while read -r devno mp; do
			umount -l "$mp" 2>>"$log" || fusermount3 -u -z "$mp" 2>>"$log"
		done
	fi
	# loop devices over images in the test's directory (ptfs-ext4 mode)
	if command -v losetup >/dev/null 2>&1; then
		rdir=$(cd "$dir" 2>/dev/null && pwd -P) || rdir=$dir
		losetup -n -l -O NAME,BACK-FILE 2>/dev/null | while read -r dev file; do
			case "$file" in
			"$rdir"/* | "$dir"/*)
				echo "run.sh: test left loop device $dev over $file; detaching" >>"$log"
				losetup -d "$dev" 2>>"$log" ;;
			esac
		done
	fi
}

# --- running ---------------------------------------------------------------

npass=0
nfail=0
nskip=0
failed_names=""
skipped_names=""
times=""

# test_timeout FILE: the "# timeout: N" of a test script, else the default.
test_timeout() {
	t=$(sed -n '1,30s/^# timeout: *\([0-9][0-9]*\).*/\1/p' "$1" | head -n 1)
	echo "${t:-$DEFAULT_TIMEOUT}"
}

echo "fsp tests: $(echo $selected | wc -w) selected, file system: $FSP_TEST_FS, transport: $FSP_TEST_TRANSPORT" \
	"$([ "$FSP_QUICK" = 1 ] && echo '(quick)')" \
	"$([ "$FSP_TEST_FS" != memfs ] && [ -z "$wanted" ] && echo '(integration tests only)')"
suite_start=$(date +%s)

for t in $selected; do
	name=${t#integration/}
	safe=$(echo "$name" | tr '/' '-')
	log=$LOGDIR/$safe.log
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/fsp-test.$safe.XXXXXX") || exit 2
	tag="$$-$safe-$(date +%s%N)"
	case "$t" in
	unit/*)
		to=$UNIT_TIMEOUT
		cmd="$BUILD_DIR/$t"
		;;
	integration/*)
		to=$(test_timeout "$ROOT/tests/$t.sh")
		cmd="bash $ROOT/tests/$t.sh"
		;;
	esac
	start=$(date +%s)
	# shellcheck disable=SC2086 # cmd is "bash FILE" or a binary path
	(cd "$tmp" && exec env FSP_TEST_ID="$tag" FSP_TEST_TMP="$tmp" \
		FSP_TEST_NAME="$name" timeout -k 10 "$to" $cmd) </dev/null >"$log" 2>&1
	rc=$?
	cleanup_after "$tmp" "$tag" "$log"
	secs=$(($(date +%s) - start))
	if [ -n "$(mounts_under "$tmp")" ]; then
		echo "FAIL: mounts remain under $tmp after cleanup" >>"$log"
		[ "$rc" -ne 0 ] || rc=1
	fi

	times="$times$secs $name
"
	[ "${FSP_TEST_VERBOSE:-0}" = 1 ] && sed "s/^/    | /" "$log"
	case $rc in
	0)
		npass=$((npass + 1))
		echo "PASS $name"
		;;
	77)
		nskip=$((nskip + 1))
		why=$(sed -n 's/^SKIP: //p' "$log" | tail -n 1)
		echo "SKIP $name: ${why:-no reason given}"
		skipped_names="$skipped_names $name"
		;;
	*)
		nfail=$((nfail + 1))
		failed_names="$failed_names $name"
		case $rc in
		124 | 137) why="timed out after ${to}s" ;;
		*) why=$(grep -m 1 '^FAIL: ' "$log" | sed 's/^FAIL: //')
		   [ -n "$why" ] || why="exit status $rc" ;;
		esac
		echo "FAIL $name ($why)"
		echo "    --- last lines of $log:"
		tail -n 25 "$log" | sed 's/^/    | /'
		;;
	esac
	if [ "${FSP_TEST_KEEP:-0}" = 1 ]; then
		echo "    (kept $tmp)"
	else
		rm -rf --one-file-system "$tmp" 2>/dev/null || rm -rf "$tmp"
	fi
done

echo "fsp tests: $(($(date +%s) - suite_start))s in all; slowest:" \
	$(printf '%s' "$times" | sort -rn | head -n 5 | awk '{ printf "%s %ss,", $2, $1 }')
[ -z "$skipped_names" ] ||
	echo "fsp tests: !!! SKIPPED (not tested, see reasons above):$skipped_names"
[ -z "$failed_names" ] || echo "fsp tests: FAILED:$failed_names (logs in $LOGDIR)"
echo "$npass passed, $nfail failed, $nskip skipped"
if [ -n "${FSP_TEST_COUNTS:-}" ]; then
	echo "$MODE $npass $nfail $nskip" >>"$FSP_TEST_COUNTS"
fi
[ "$nfail" -eq 0 ]
