# tests/lib.sh — helpers for the integration tests (bash). Source it first:
# (never a bare `wait` in a test: the daemon is a background job too)
#
#   . "$(dirname "$0")/../lib.sh"
#   M=$T/mnt
#   fs_mount "$M"            # fsp-memfs, or tmpfs when FSP_TEST_FS=tmpfs
#   ... checks ...
#   fs_umount "$M"           # also checks that the daemon exited with 0
#
# Environment (set by tests/run.sh; a test also runs on its own with bash):
#   FSP_TEST_FS    memfs (default) or tmpfs: the file system under test
#   FSP_QUICK      1 = smaller data sets
#   FSP_TEST_TMP   the test's own temporary directory (made if unset); $T
#   BUILD_DIR      where fsp-memfs is (default: <repo>/build)
#
# Protocol with the runner: exit 0 passes, exit 77 skips (the last line
# "SKIP: reason" says why), anything else fails (the first line "FAIL: ..."
# says why). `set -e` is on: an unexpected failing command fails the test and
# the ERR trap names its line.
#
# Whatever happens, the EXIT trap lazily unmounts every mount this test made
# and kills every daemon and background job it started.

set -eEuo pipefail
shopt -s nullglob

ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
FSP_TEST_FS=${FSP_TEST_FS:-memfs}
FSP_QUICK=${FSP_QUICK:-0}
FSP_MEMFS=${FSP_MEMFS:-$BUILD_DIR/fsp-memfs}
FSP_MOUNT_TIMEOUT=${FSP_MOUNT_TIMEOUT:-15}
PATH="$PATH:/usr/sbin:/sbin"
# the system's python3 first: a version manager's shim in front of it costs
# a third of a second per start, and the tests start python3 often
[ -x /usr/bin/python3 ] && PATH="/usr/bin:$PATH"
export PATH LC_ALL=C

_fsp_own_tmp=0
if [ -z "${FSP_TEST_TMP:-}" ]; then
	FSP_TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/fsp-test.XXXXXX")
	_fsp_own_tmp=1
fi
T=$(cd "$FSP_TEST_TMP" && pwd -P)
cd "$T"

declare -a _fsp_mounts=()      # mount points made by fs_mount, in order
declare -A _fsp_pid=()         # mount point -> daemon pid (memfs mode)
declare -A _fsp_log=()         # mount point -> daemon log file
_fsp_nmount=0

# --- reporting ---------------------------------------------------------------

# fail MSG: the test fails with MSG (the runner shows the first FAIL line).
fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# skip MSG: the test is skipped, for the reason MSG.
skip() {
	echo "SKIP: $*"
	exit 77
}

# note MSG: something worth reading in the log (a legitimate difference...).
note() {
	echo "NOTE: $*"
}

# step MSG: a heading in the log, so that a failure is easy to place.
_fsp_t0=${EPOCHREALTIME/./}
step() {
	local ds=$(((${EPOCHREALTIME/./} - _fsp_t0) / 100000))
	echo "== [$((ds / 10)).$((ds % 10))s] $*"
}

trap '_fsp_rc=$?; echo "FAIL: line $LINENO: command failed with status $_fsp_rc: $BASH_COMMAND" >&2' ERR

# --- predicates --------------------------------------------------------------

is_root() { [ "$(id -u)" -eq 0 ]; }
is_quick() { [ "$FSP_QUICK" = 1 ]; }
is_tmpfs_mode() { [ "$FSP_TEST_FS" = tmpfs ]; }
fs_label() { if is_tmpfs_mode; then echo tmpfs; else echo fsp-memfs; fi; }

need_root() { is_root || skip "needs root: $*"; }
need_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 ||
			skip "'$c' is not installed (sh tests/deps.sh installs it)"
	done
}
# need_memfs WHY: the test only makes sense against fsp-memfs.
need_memfs() { is_tmpfs_mode && skip "not applicable to tmpfs (reference mode): $*"; return 0; }

# need_fuse: FUSE mounts can be made here (else skip, saying why).
need_fuse() {
	[ -e /dev/fuse ] || skip "no /dev/fuse: FUSE is not available on this machine"
	if ! is_root; then
		command -v fusermount3 >/dev/null 2>&1 ||
			skip "not root and no fusermount3: cannot mount FUSE file systems"
		[ -r /dev/fuse ] && [ -w /dev/fuse ] ||
			skip "not root and /dev/fuse is not usable by $(id -un)"
	fi
	[ -x "$FSP_MEMFS" ] || fail "fsp-memfs is not built: $FSP_MEMFS (run make)"
}

# --- assertions --------------------------------------------------------------

# check DESC CMD...: CMD must succeed.
check() {
	local desc=$1 rc=0
	shift
	"$@" || rc=$?
	[ $rc -eq 0 ] || fail "$desc (status $rc from: $*)"
}

# check_fails DESC CMD...: CMD must fail.
check_fails() {
	local desc=$1 rc=0
	shift
	"$@" || rc=$?
	[ $rc -ne 0 ] || fail "$desc (expected failure, but it succeeded: $*)"
}

# assert_eq ACTUAL EXPECTED DESC
assert_eq() {
	[ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"
}

assert_ne() {
	[ "$1" != "$2" ] || fail "$3: did not expect '$2'"
}

# assert_ge A B DESC / assert_le A B DESC: integers.
assert_ge() {
	[ "$1" -ge "$2" ] || fail "$3: expected >= $2, got $1"
}
assert_le() {
	[ "$1" -le "$2" ] || fail "$3: expected <= $2, got $1"
}

# assert_match TEXT REGEX DESC (grep -E, case-insensitive)
assert_match() {
	printf '%s\n' "$1" | grep -qiE -- "$2" || fail "$3: '$1' does not match /$2/"
}

# assert_same_file A B DESC: same bytes.
assert_same_file() {
	cmp -s -- "$1" "$2" || fail "$3: $1 and $2 differ ($(cmp -- "$1" "$2" 2>&1 | head -n 1 || true))"
}

# errno_of PYCODE: run python statements (os, errno, sys, stat, fcntl,
# ctypes imported); print OK, or the errno name of the OSError they raised.
errno_of() {
	python3 -c '
import os, sys, errno, stat, fcntl, ctypes
try:
    exec(sys.argv[1])
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
' "$1"
}

# assert_errno ERRNAME PYCODE [DESC]: the python statements fail with ERRNAME
# (or succeed, for OK).
assert_errno() {
	local got
	got=$(errno_of "$2")
	[ "$got" = "$1" ] || fail "${3:-$2}: expected $1, got $got  (python: $2)"
}

# --- mounts ------------------------------------------------------------------

# is_mounted DIR: DIR is a mount point (per /proc/self/mountinfo).
is_mounted() {
	local d
	d=$(realpath -m -- "$1")
	awk -v d="$d" '{ p = $5; gsub(/\\040/, " ", p); if (p == d) f = 1 } END { exit !f }' \
		/proc/self/mountinfo
}

# mount_fstype DIR: the file system type of the mount at DIR (last if stacked).
mount_fstype() {
	local d
	d=$(realpath -m -- "$1")
	awk -v d="$d" '{ p = $5; gsub(/\\040/, " ", p);
		if (p == d) for (i = 6; i <= NF; i++) if ($i == "-") { t = $(i + 1); break } }
		END { print t }' /proc/self/mountinfo
}

# mount_devno DIR: major:minor of the mount at DIR (the fusectl connection is
# the minor).
mount_devno() {
	local d
	d=$(realpath -m -- "$1")
	awk -v d="$d" '{ p = $5; gsub(/\\040/, " ", p); if (p == d) n = $3 } END { print n }' \
		/proc/self/mountinfo
}

# pid_alive PID: PID runs (a zombie counts as dead).
pid_alive() {
	local st
	[ -e "/proc/$1/stat" ] || return 1
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# wait_dead PID SECONDS: wait until PID has exited; return 1 on timeout.
wait_dead() {
	local i=0 n=$(($2 * 20))
	while pid_alive "$1"; do
		i=$((i + 1))
		[ $i -lt $n ] || return 1
		sleep 0.05
	done
	return 0
}

# wait_until SECONDS CMD...: poll CMD until it succeeds; return 1 on timeout.
wait_until() {
	local i=0 n=$(($1 * 20))
	shift
	until "$@"; do
		i=$((i + 1))
		[ $i -lt $n ] || return 1
		sleep 0.05
	done
	return 0
}

# exit_status PID: reap a child that has exited; print its status.
exit_status() {
	local rc=0
	wait "$1" 2>/dev/null || rc=$?
	echo $rc
}

# describe_status N: "exit status N" or "killed by SIGX".
describe_status() {
	if [ "$1" -gt 128 ] && [ "$1" -lt 160 ]; then
		echo "killed by SIG$(kill -l $(($1 - 128)) 2>/dev/null || echo $(($1 - 128)))"
	else
		echo "exit status $1"
	fi
}

# tmpfs_opts OPTS: fsp-memfs options translated for tmpfs.
tmpfs_opts() {
	local o out="" IFS=,
	for o in $1; do
		case "$o" in
		size=*) out="$out,$o" ;;
		nodes=*) out="$out,nr_inodes=${o#nodes=}" ;;
		ro | rw) out="$out,$o" ;;
		*) note "tmpfs mode: option '$o' has no tmpfs equivalent; ignored" >&2 ;;
		esac
	done
	echo "${out#,}"
}

# fs_mount DIR [OPTS]: mount the file system under test at DIR (made if
# missing) and wait until it is mounted. OPTS is an fsp -o list. In memfs mode
# the daemon runs in the foreground (-f) in the background of this shell, its
# output in $T/fsp-memfs.N.log; FS_WRAPPER (e.g. "valgrind -q") is put in
# front of the command when set. Fails clearly if the daemon dies first.
fs_mount() {
	local dir=$1 opts=${2:-} pid log i rc
	mkdir -p -- "$dir"
	dir=$(realpath -- "$dir")
	if is_tmpfs_mode; then
		is_root || skip "tmpfs mode needs root to mount tmpfs"
		local to
		to=$(tmpfs_opts "$opts")
		mount -t tmpfs ${to:+-o "$to"} fsp-test-tmpfs "$dir" ||
			fail "mount -t tmpfs ${to:+-o $to} on $dir failed"
		_fsp_mounts+=("$dir")
		return 0
	fi
	need_fuse
	_fsp_nmount=$((_fsp_nmount + 1))
	log=$T/fsp-memfs.$_fsp_nmount.log
	# set -m: a background job of a non-interactive shell would otherwise
	# start with SIGINT and SIGQUIT ignored, unlike a daemon run by a user.
	set -m
	# shellcheck disable=SC2086 # FS_WRAPPER is a command line
	${FS_WRAPPER:-} "$FSP_MEMFS" -f ${opts:+-o "$opts"} "$dir" </dev/null >"$log" 2>&1 &
	pid=$!
	set +m
	_fsp_mounts+=("$dir")
	_fsp_pid[$dir]=$pid
	_fsp_log[$dir]=$log
	echo "fs_mount: $(fs_label) pid $pid on $dir${opts:+ -o $opts}${FS_WRAPPER:+ (under $FS_WRAPPER)}"
	i=0
	while ! is_mounted "$dir"; do
		if ! pid_alive "$pid"; then
			rc=$(exit_status "$pid")
			sed 's/^/  daemon| /' "$log" >&2
			fail "fsp-memfs died before mounting ($(describe_status "$rc")); log above"
		fi
		i=$((i + 1))
		if [ $i -gt $((FSP_MOUNT_TIMEOUT * 20)) ]; then
			sed 's/^/  daemon| /' "$log" >&2
			fail "fsp-memfs did not mount $dir within ${FSP_MOUNT_TIMEOUT}s"
		fi
		sleep 0.05
	done
	case "$(mount_fstype "$dir")" in
	fuse | fuse.*) ;;
	*) fail "$dir is mounted but as '$(mount_fstype "$dir")', not fuse" ;;
	esac
	# the first request waits for the INIT handshake: prove the daemon answers
	timeout 10 stat -- "$dir" >/dev/null ||
		fail "fsp-memfs mounted $dir but does not answer stat"
}

# fs_pid DIR: the daemon serving DIR.
fs_pid() {
	local dir
	dir=$(realpath -m -- "$1")
	echo "${_fsp_pid[$dir]:-}"
}

# fs_log DIR: the daemon's log for DIR.
fs_log() {
	local dir
	dir=$(realpath -m -- "$1")
	echo "${_fsp_log[$dir]:-/dev/null}"
}

_fsp_forget() {
	local dir=$1 m keep=()
	for m in "${_fsp_mounts[@]}"; do
		[ "$m" = "$dir" ] || keep+=("$m")
	done
	_fsp_mounts=("${keep[@]}")
	unset "_fsp_pid[$dir]"
}

# fs_umount DIR [EXPECTED_STATUS]: unmount DIR (fusermount3 -u, or umount),
# wait for the daemon to exit and check its status (default 0; "any" accepts
# whatever), and that the mount is gone.
fs_umount() {
	local dir want=${2:-0} pid rc out
	dir=$(realpath -m -- "$1")
	if is_tmpfs_mode; then
		out=$(umount -- "$dir" 2>&1) || fail "umount $dir failed: $out"
		_fsp_forget "$dir"
		return 0
	fi
	pid=${_fsp_pid[$dir]:-}
	if is_mounted "$dir"; then
		if command -v fusermount3 >/dev/null 2>&1; then
			out=$(fusermount3 -u -- "$dir" 2>&1) || {
				fuser -vm "$dir" 2>&1 | head -n 20 >&2 || true
				fail "fusermount3 -u $dir failed: $out"
			}
		else
			out=$(umount -- "$dir" 2>&1) || fail "umount $dir failed: $out"
		fi
	fi
	if [ -n "$pid" ]; then
		if ! wait_dead "$pid" 15; then
			sed 's/^/  daemon| /' "$(fs_log "$dir")" | tail -n 20 >&2
			fail "fsp-memfs (pid $pid) did not exit within 15s of the unmount of $dir"
		fi
		rc=$(exit_status "$pid")
		if [ "$want" != any ] && [ "$rc" != "$want" ]; then
			sed 's/^/  daemon| /' "$(fs_log "$dir")" | tail -n 20 >&2
			fail "fsp-memfs ended with $(describe_status "$rc") after the unmount of $dir (expected $want)"
		fi
	fi
	is_mounted "$dir" && fail "$dir is still mounted after unmounting it"
	_fsp_forget "$dir"
	return 0
}

# fs_abort DIR: abort the fuse connection of DIR through fusectl.
fs_abort() {
	local devno minor
	devno=$(mount_devno "$1")
	minor=${devno#*:}
	[ -n "$devno" ] || fail "fs_abort: $1 is not mounted"
	[ -w "/sys/fs/fuse/connections/$minor/abort" ] ||
		skip "fusectl is not mounted on /sys/fs/fuse/connections (cannot abort connections)"
	echo 1 >"/sys/fs/fuse/connections/$minor/abort"
}

# --- cleanup on any exit -----------------------------------------------------

_fsp_exit() {
	local rc=$1 dir pid m st
	trap - ERR
	set +eE
	# say how each daemon is doing when the test failed: a crash explains a lot
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
		for m in "${_fsp_mounts[@]}"; do
			pid=${_fsp_pid[$m]:-}
			[ -n "$pid" ] || continue
			if pid_alive "$pid"; then
				echo "  (daemon pid $pid for $m is still running)" >&2
			else
				st=$(exit_status "$pid")
				echo "  (daemon pid $pid for $m had ended: $(describe_status "$st"))" >&2
			fi
			echo "  --- last lines of ${_fsp_log[$m]}:" >&2
			tail -n 15 "${_fsp_log[$m]}" 2>/dev/null | sed 's/^/  daemon| /' >&2
		done
	fi
	# background jobs of the test (readers, writers...)
	for pid in $(jobs -p); do
		kill -KILL "$pid" 2>/dev/null
	done
	for m in "${_fsp_mounts[@]}"; do
		if is_mounted "$m"; then
			local devno minor
			devno=$(mount_devno "$m")
			minor=${devno#*:}
			if [ -n "${_fsp_pid[$m]:-}" ] && [ -w "/sys/fs/fuse/connections/$minor/abort" ]; then
				echo 1 >"/sys/fs/fuse/connections/$minor/abort" 2>/dev/null
			fi
			umount -l -- "$m" 2>/dev/null || fusermount3 -u -z -- "$m" 2>/dev/null
		fi
		pid=${_fsp_pid[$m]:-}
		if [ -n "$pid" ] && pid_alive "$pid"; then
			kill -TERM "$pid" 2>/dev/null
			wait_dead "$pid" 3 || kill -KILL "$pid" 2>/dev/null
		fi
	done
	if [ $_fsp_own_tmp = 1 ]; then
		cd /
		rm -rf --one-file-system "$T"
	fi
	exit "$rc"
}
trap '_fsp_exit $?' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# --- data helpers ------------------------------------------------------------

# source_tree [small]: a real directory tree to copy (headers, docs or
# python's library: whichever the machine has); a small one with FSP_QUICK=1
# or when asked.
source_tree() {
	local d
	if is_quick || [ "${1:-}" = small ]; then
		for d in /usr/include/linux /usr/share/doc/git /usr/lib/python3/dist-packages; do
			[ -d "$d" ] && { echo "$d"; return 0; }
		done
	fi
	for d in /usr/include /usr/share/doc /usr/lib/python3; do
		[ -d "$d" ] && [ "$(find "$d" -maxdepth 1 | wc -l)" -gt 10 ] && { echo "$d"; return 0; }
	done
	skip "no real directory tree to copy here (/usr/include, /usr/share/doc)"
}

# count_entries DIR: number of names in DIR (all of them, hidden included).
count_entries() {
	find "$1" -mindepth 1 -maxdepth 1 -printf x | wc -c
}

# assert_zeros FILE OFFSET LENGTH DESC: those bytes of FILE are all zero.
assert_zeros() {
	cmp -s -n "$3" <(tail -c +$(($2 + 1)) -- "$1") /dev/zero ||
		fail "$4: bytes $2..$(($2 + $3)) of $1 are not all zero"
}

# drop_cache FILE...: ask the kernel to forget the cached pages of FILEs, so
# that the next read really asks the file system (a no-op on tmpfs, whose
# pages are the file). Needs no privilege.
drop_cache() {
	python3 -c '
import os, sys
for p in sys.argv[1:]:
    fd = os.open(p, os.O_RDONLY)
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)' "$@"
}

# tree_listing DIR: one sorted line per entry below DIR with its type, mode,
# owner, size, mtime (seconds) and symlink target: two trees with the same
# listing have the same shape and metadata.
tree_listing() {
	(cd "$1" && find . -mindepth 1 -printf '%y %m %U:%G %s %T@ %P -> %l\n' |
		awk '{ if ($1 == "d") $4 = "-"; $5 = int($5); print }' | sort)
}
