# tests/lib.sh — helpers for the integration tests (bash). Source it first:
# (never a bare `wait` in a test: the daemon is a background job too)
#
#   . "$(dirname "$0")/../lib.sh"
#   M=$T/mnt
#   fs_mount "$M"            # fsp-memfs, fsp-ptfs or tmpfs (FSP_TEST_FS)
#   ... checks ...
#   compare_backing "$M"     # ptfs modes: the mount shows its backing exactly
#   fs_umount "$M"           # also checks that the daemon exited with 0
#
# Environment (set by tests/run.sh; a test also runs on its own with bash):
#   FSP_TEST_FS    the file system under test:
#                  memfs      fsp-memfs (default)
#                  tmpfs      the kernel's tmpfs (reference mode: checks the
#                             tests themselves; there is no daemon)
#                  ptfs       fsp-ptfs over a fresh tmpfs per fs_mount
#                  ptfs-ext4  fsp-ptfs over a fresh ext4 (loop device on a
#                             sparse image in $T) per fs_mount
#   FSP_QUICK      1 = smaller data sets
#   FSP_TEST_TRANSPORT  dev (default) or uring: fs_mount adds -o io_uring=on
#   FSP_TEST_TMP   the test's own temporary directory (made if unset); $T
#   BUILD_DIR      where fsp-memfs and fsp-ptfs are (default: <repo>/build)
#   FSP_PTFS_EXT4_SIZE  size of the sparse ext4 image without size= (4G)
#   FSP_PTFS_OPTS  more -o options for fsp-ptfs in ptfs modes (for example
#                  passthrough=off: file data through the daemon)
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
FSP_PTFS=${FSP_PTFS:-$BUILD_DIR/fsp-ptfs}
FSP_PTFS_EXT4_SIZE=${FSP_PTFS_EXT4_SIZE:-4G}
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
declare -A _fsp_pid=()         # mount point -> daemon pid (memfs, ptfs modes)
declare -A _fsp_log=()         # mount point -> daemon log file
declare -A _fsp_backing=()     # mount point -> backing directory (ptfs modes)
declare -A _fsp_loop=()        # mount point -> loop device of its ext4 (ptfs-ext4)
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
is_memfs_mode() { [ "$FSP_TEST_FS" = memfs ]; }
is_tmpfs_mode() { [ "$FSP_TEST_FS" = tmpfs ]; }
is_ptfs_mode() { [ "$FSP_TEST_FS" = ptfs ] || [ "$FSP_TEST_FS" = ptfs-ext4 ]; }
# is_fuse_mode: a daemon of this project serves the mount (not tmpfs).
is_fuse_mode() { ! is_tmpfs_mode; }
# fs_daemon: the program that serves the mounts ("" in tmpfs mode).
fs_daemon() {
	case "$FSP_TEST_FS" in
	memfs) echo fsp-memfs ;;
	ptfs | ptfs-ext4) echo fsp-ptfs ;;
	*) echo "" ;;
	esac
}
# fs_label: the file system under test, for messages.
fs_label() {
	case "$FSP_TEST_FS" in
	memfs) echo fsp-memfs ;;
	tmpfs) echo tmpfs ;;
	ptfs) echo "fsp-ptfs over tmpfs" ;;
	ptfs-ext4) echo "fsp-ptfs over ext4" ;;
	esac
}
# backing_fstype: where the data really lives: memfs (the daemon's memory),
# tmpfs (tmpfs and ptfs modes) or ext4 (ptfs-ext4).
backing_fstype() {
	case "$FSP_TEST_FS" in
	memfs) echo memfs ;;
	tmpfs | ptfs) echo tmpfs ;;
	ptfs-ext4) echo ext4 ;;
	esac
}
case "$FSP_TEST_FS" in
memfs | tmpfs | ptfs | ptfs-ext4) ;;
*) fail "FSP_TEST_FS must be memfs, tmpfs, ptfs or ptfs-ext4, not '$FSP_TEST_FS'" ;;
esac

need_root() { is_root || skip "needs root: $*"; }
need_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 ||
			skip "'$c' is not installed (sh tests/deps.sh installs it)"
	done
}
# need_fs MODES [WHY]: the test only makes sense in these FSP_TEST_FS modes
# (comma separated; "fuse" stands for every mode with a daemon: memfs, ptfs,
# ptfs-ext4); otherwise it is skipped, saying why.
need_fs() {
	local m IFS=,
	for m in $1; do
		case "$m" in
		"$FSP_TEST_FS") return 0 ;;
		fuse) is_fuse_mode && return 0 ;;
		esac
	done
	skip "not applicable in $FSP_TEST_FS mode (only $1)${2:+: $2}"
}
# need_memfs WHY: the test only makes sense against fsp-memfs (its options,
# its memory accounting, its own builds...).
need_memfs() { need_fs memfs "$*"; }

# need_fuse: FUSE mounts can be made here (else skip, saying why).
need_fuse() {
	[ -e /dev/fuse ] || skip "no /dev/fuse: FUSE is not available on this machine"
	if ! is_root; then
		command -v fusermount3 >/dev/null 2>&1 ||
			skip "not root and no fusermount3: cannot mount FUSE file systems"
		[ -r /dev/fuse ] && [ -w /dev/fuse ] ||
			skip "not root and /dev/fuse is not usable by $(id -un)"
	fi
	if is_ptfs_mode; then
		[ -x "$FSP_PTFS" ] || fail "fsp-ptfs is not built: $FSP_PTFS (run make)"
	else
		[ -x "$FSP_MEMFS" ] || fail "fsp-memfs is not built: $FSP_MEMFS (run make)"
	fi
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

# _fsp_uptime_cs: set _fsp_cs to the time since boot in centiseconds, from
# /proc/uptime (monotonic, no fork). The waits below measure time with it:
# counting polls does not, since under load each poll (a fork, a sleep)
# takes far longer than its nominal 50 ms. (Their locals carry the _fsp_
# prefix: CMD runs inside wait_until and sees them.)
_fsp_uptime_cs() {
	local up rest
	read -r up rest </proc/uptime
	_fsp_cs=$((10#${up/./}))
}

# wait_dead PID SECONDS: wait until PID has exited; return 1 after SECONDS
# (whole seconds) of elapsed time.
wait_dead() {
	local _fsp_cs _fsp_end
	_fsp_uptime_cs
	_fsp_end=$((_fsp_cs + $2 * 100))
	while pid_alive "$1"; do
		_fsp_uptime_cs
		[ $_fsp_cs -lt $_fsp_end ] || return 1
		sleep 0.05
	done
	return 0
}

# wait_until SECONDS CMD...: poll CMD until it succeeds; return 1 after
# SECONDS (whole seconds) of elapsed time.
wait_until() {
	local _fsp_cs _fsp_end
	_fsp_uptime_cs
	_fsp_end=$((_fsp_cs + $1 * 100))
	shift
	until "$@"; do
		_fsp_uptime_cs
		[ $_fsp_cs -lt $_fsp_end ] || return 1
		sleep 0.05
	done
	return 0
}

# exit_status PID: reap a child that has exited; print its status.
# exit_status PID: reap PID in this shell and leave its status in
# $_fsp_status. (Not in $(...): a subshell cannot wait for this shell's
# children and reports -1 for a zombie not yet reaped.)
exit_status() {
	_fsp_status=0
	wait "$1" 2>/dev/null || _fsp_status=$?
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

# ptfs_split_opts OPTS: in ptfs modes, size= and nodes= are for the backing
# file system, the memfs-only max_file_size= is dropped, the rest is for
# fsp-ptfs. Sets _fsp_bopts (backing) and _fsp_popts (fsp-ptfs).
ptfs_split_opts() {
	local o IFS=,
	_fsp_bopts="" _fsp_popts=""
	for o in $1; do
		case "$o" in
		size=* | nodes=*) _fsp_bopts="$_fsp_bopts,$o" ;;
		max_file_size=*) note "$FSP_TEST_FS mode: option '$o' is fsp-memfs's; ignored" >&2 ;;
		*) _fsp_popts="$_fsp_popts,$o" ;;
		esac
	done
	_fsp_bopts=${_fsp_bopts#,}
	_fsp_popts=${_fsp_popts#,}
}

# _fsp_make_backing DIR BOPTS N: a fresh, empty file system for the mount at
# DIR to mirror, mounted at $T/backing.N: tmpfs (with size=, nr_inodes=), or
# ext4 on a loop device over a sparse image $T/backing.N.img of size= (no
# journal then: it would take much of a small file system) or
# $FSP_PTFS_EXT4_SIZE. ext4 keeps inodes 1-10 for itself (the root is one of
# them), so nodes=N makes about N+10 inodes: N-6 or so files can be created,
# as with tmpfs's nr_inodes=N (N-1). lost+found is removed: the root starts
# empty, as on tmpfs and fsp-memfs. ea_inode: xattr values up to 64 KiB, as
# tmpfs and fsp-memfs take (plain ext4 refuses values over about 4 KiB).
_fsp_make_backing() {
	local dir=$1 bopts=$2 n=$3 b=$T/backing.$3 o size="" nodes="" img loop out
	local mkfs=(-q -F -m 0 -I 256 -O ea_inode -E lazy_itable_init=1,lazy_journal_init=1,nodiscard)
	is_root || skip "$FSP_TEST_FS mode needs root to mount the backing file system"
	mkdir -p -- "$b"
	if [ "$FSP_TEST_FS" = ptfs ]; then
		o=$(tmpfs_opts "$bopts")
		out=$(mount -t tmpfs ${o:+-o "$o"} fsp-test-backing "$b" 2>&1) ||
			fail "mount -t tmpfs ${o:+-o $o} on $b (the backing of $dir) failed: $out"
	else
		need_cmd mkfs.ext4 losetup
		local IFS=,
		for o in $bopts; do
			case "$o" in
			size=*) size=${o#size=} ;;
			nodes=*) nodes=${o#nodes=} ;;
			esac
		done
		unset IFS
		img=$b.img
		rm -f -- "$img"
		truncate -s "${size:-$FSP_PTFS_EXT4_SIZE}" "$img"
		[ -n "$size" ] && mkfs+=(-O ^has_journal)
		# mke2fs rounds the inode count to a multiple of 8: round down
		[ -n "$nodes" ] && mkfs+=(-N $(((nodes + 10) / 8 * 8)))
		out=$(mkfs.ext4 "${mkfs[@]}" "$img" 2>&1) || fail "mkfs.ext4 ${mkfs[*]} $img failed: $out"
		loop=$(losetup --find --show -- "$img" 2>&1) || fail "losetup of $img failed: $loop"
		_fsp_loop[$dir]=$loop
		# noinit_itable: no kernel thread zeroing inode tables during the test
		out=$(mount -t ext4 -o noinit_itable "$loop" "$b" 2>&1) ||
			fail "mount -t ext4 $loop (image $img) on $b failed: $out"
		rmdir "$b/lost+found"
	fi
	_fsp_backing[$dir]=$b
	echo "fs_mount: backing $(backing_fstype) at $b${bopts:+ ($bopts)}${loop:+ on $loop}"
}

# _fsp_release_backing DIR [lazy]: unmount the backing file system of DIR and
# free its loop device. Fails if it is busy, unless "lazy" is given.
_fsp_release_backing() {
	local dir=$1 b=${_fsp_backing[$1]:-} loop=${_fsp_loop[$1]:-} out
	if [ -n "$b" ] && is_mounted "$b"; then
		if ! out=$(umount -- "$b" 2>&1); then
			if [ "${2:-}" = lazy ]; then
				umount -l -- "$b" 2>/dev/null
			else
				fuser -vm "$b" 2>&1 | head -n 20 >&2 || true
				fail "unmounting the backing file system $b of $dir failed: $out"
			fi
		fi
	fi
	if [ -n "$loop" ]; then
		# (of a lazily unmounted ext4 that is still busy, the kernel frees the
		# loop device when the file system lets go of it)
		losetup -d "$loop" 2>/dev/null || true
	fi
	unset "_fsp_backing[$dir]" "_fsp_loop[$dir]"
	return 0
}

# fs_backing DIR: the backing directory mirrored at DIR (ptfs modes; "" else).
fs_backing() {
	local dir
	dir=$(realpath -m -- "$1")
	echo "${_fsp_backing[$dir]:-}"
}

# fs_mount DIR [OPTS]: mount the file system under test at DIR (made if
# missing) and wait until it is mounted. OPTS is an fsp -o list. In memfs and
# ptfs modes the daemon runs in the foreground (-f) in the background of this
# shell, its output in $T/fsp-memfs.N.log or $T/fsp-ptfs.N.log; FS_WRAPPER
# (e.g. "valgrind -q") is put in front of the command when set. Fails clearly
# if the daemon dies first. In ptfs modes a fresh backing file system is made
# first (see _fsp_make_backing; fs_backing DIR names it).
fs_mount() {
	local dir=$1 opts=${2:-} pid log rc name
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
	# FSP_TEST_TRANSPORT=uring: every mount of the test over io_uring
	[ "${FSP_TEST_TRANSPORT:-dev}" = dev ] || opts="${opts:+$opts,}io_uring=on"
	name=$(fs_daemon)
	_fsp_nmount=$((_fsp_nmount + 1))
	log=$T/$name.$_fsp_nmount.log
	local -a cmd
	if is_ptfs_mode; then
		ptfs_split_opts "$opts${FSP_PTFS_OPTS:+,$FSP_PTFS_OPTS}"
		_fsp_mounts+=("$dir")   # so that the EXIT trap releases the backing
		_fsp_make_backing "$dir" "$_fsp_bopts" "$_fsp_nmount"
		cmd=("$FSP_PTFS" -f ${_fsp_popts:+-o "$_fsp_popts"} "${_fsp_backing[$dir]}" "$dir")
	else
		cmd=("$FSP_MEMFS" -f ${opts:+-o "$opts"} "$dir")
	fi
	# set -m: a background job of a non-interactive shell would otherwise
	# start with SIGINT and SIGQUIT ignored, unlike a daemon run by a user.
	set -m
	# shellcheck disable=SC2086 # FS_WRAPPER is a command line
	${FS_WRAPPER:-} "${cmd[@]}" </dev/null >"$log" 2>&1 &
	pid=$!
	set +m
	is_ptfs_mode || _fsp_mounts+=("$dir")
	_fsp_pid[$dir]=$pid
	_fsp_log[$dir]=$log
	echo "fs_mount: $(fs_label) pid $pid on $dir${opts:+ -o $opts}${FS_WRAPPER:+ (under $FS_WRAPPER)}"
	local _fsp_cs _fsp_end
	_fsp_uptime_cs
	_fsp_end=$((_fsp_cs + FSP_MOUNT_TIMEOUT * 100))
	while ! is_mounted "$dir"; do
		if ! pid_alive "$pid"; then
			exit_status "$pid"; rc=$_fsp_status
			sed 's/^/  daemon| /' "$log" >&2
			fail "$name died before mounting ($(describe_status "$rc")); log above"
		fi
		_fsp_uptime_cs
		if [ $_fsp_cs -ge $_fsp_end ]; then
			sed 's/^/  daemon| /' "$log" >&2
			fail "$name did not mount $dir within ${FSP_MOUNT_TIMEOUT}s"
		fi
		sleep 0.05
	done
	case "$(mount_fstype "$dir")" in
	fuse | fuse.*) ;;
	*) fail "$dir is mounted but as '$(mount_fstype "$dir")', not fuse" ;;
	esac
	# the first request waits for the INIT handshake: prove the daemon answers
	timeout 10 stat -- "$dir" >/dev/null ||
		fail "$name mounted $dir but does not answer stat"
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

# fs_daemon_argv DIR: set FS_ARGV to a command line that serves DIR with the
# daemon under test, without -f or -o, for tests that start daemons
# themselves: fsp-memfs DIR, or fsp-ptfs SOURCE DIR with SOURCE a new empty
# directory $T/src.N (on the file system of $T, not a fresh one).
fs_daemon_argv() {
	local src
	if is_ptfs_mode; then
		_fsp_nmount=$((_fsp_nmount + 1))
		src=$T/src.$_fsp_nmount
		mkdir -p -- "$src"
		FS_ARGV=("$FSP_PTFS" "$src" "$1")
	else
		FS_ARGV=("$FSP_MEMFS" "$1")
	fi
}

# _fsp_forget DIR: DIR is no longer this test's to unmount (a test that took
# it down itself); in ptfs modes its backing file system is released.
_fsp_forget() {
	local dir=$1 m keep=()
	for m in "${_fsp_mounts[@]}"; do
		[ "$m" = "$dir" ] || keep+=("$m")
	done
	_fsp_mounts=("${keep[@]}")
	unset "_fsp_pid[$dir]"
	[ -z "${_fsp_backing[$dir]:-}" ] || _fsp_release_backing "$dir" lazy
}

# fs_umount DIR [EXPECTED_STATUS]: unmount DIR (fusermount3 -u, or umount),
# wait for the daemon to exit and check its status (default 0; "any" accepts
# whatever), and that the mount is gone. In ptfs modes its backing file
# system is then unmounted too (which fails if anything still holds it).
fs_umount() {
	local dir want=${2:-0} pid rc out name
	dir=$(realpath -m -- "$1")
	if is_tmpfs_mode; then
		out=$(umount -- "$dir" 2>&1) || fail "umount $dir failed: $out"
		_fsp_forget "$dir"
		return 0
	fi
	name=$(fs_daemon)
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
			fail "$name (pid $pid) did not exit within 15s of the unmount of $dir"
		fi
		exit_status "$pid"; rc=$_fsp_status
		if [ "$want" != any ] && [ "$rc" != "$want" ]; then
			sed 's/^/  daemon| /' "$(fs_log "$dir")" | tail -n 20 >&2
			fail "$name ended with $(describe_status "$rc") after the unmount of $dir (expected $want)"
		fi
	fi
	is_mounted "$dir" && fail "$dir is still mounted after unmounting it"
	# what the daemon said, into the test's log (its own log is in $T)
	if [ -n "$pid" ] && [ -s "$(fs_log "$dir")" ]; then
		echo "fs_umount: $name (pid $pid) exited $rc; its log ($(wc -l <"$(fs_log "$dir")") lines, the last ones):"
		tail -n 10 "$(fs_log "$dir")" | sed 's/^/  daemon| /'
	fi
	[ -z "${_fsp_backing[$dir]:-}" ] || _fsp_release_backing "$dir"
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
				exit_status "$pid"; st=$_fsp_status
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
			wait_dead "$pid" 3 || { kill -KILL "$pid" 2>/dev/null; wait_dead "$pid" 3; }
		fi
		# ptfs modes: the backing file system and its loop device
		[ -z "${_fsp_backing[$m]:-}" ] || _fsp_release_backing "$m" lazy
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

# compare_backing DIR [SUB]: ptfs modes: the tree at DIR/SUB (default: all of
# DIR) and the same tree in the backing directory of DIR are exactly alike:
# the same names, and for each the same type, mode, owner, size, link count,
# inode number, device number, blocks, atime, mtime and ctime (ns), symlink
# target, extended attributes (every namespace, values too) and content. A
# no-op in the other modes. The metadata of each name is read on both sides
# one right after the other, before its directory is listed (listing a
# directory may set its atime). A difference is looked at again after the
# attribute timeout (1 s), which also lets the kernel's cached attributes
# expire: only a difference that remains fails the test; one that went away
# is printed as a NOTE (it was cached, stale for up to attr_timeout).
compare_backing() {
	is_ptfs_mode || return 0
	local dir sub=${2:-} back out
	dir=$(realpath -m -- "$1")
	back=$(fs_backing "$dir")
	[ -n "$back" ] || fail "compare_backing: $dir has no backing directory"
	if ! out=$(_fsp_compare_trees "$dir${sub:+/$sub}" "$back${sub:+/$sub}"); then
		sleep 1.2
		local again
		if ! again=$(_fsp_compare_trees "$dir${sub:+/$sub}" "$back${sub:+/$sub}"); then
			printf '%s\n' "$again" | head -n 30 >&2
			fail "the mount $dir${sub:+/$sub} and its backing directory $back${sub:+/$sub} differ (above)"
		fi
		note "compare_backing: differences that went away after the attribute timeout:"
		printf '%s\n' "$out" | head -n 10 | sed 's/^/    /'
		out=$again
	fi
	echo "compare_backing: $dir${sub:+/$sub} and $back${sub:+/$sub} are alike (${out##*$'\n'})"
}

# _fsp_compare_trees MNT BACK: print the differences (exit 1), or a count.
_fsp_compare_trees() {
	python3 - "$1" "$2" <<'PY'
import hashlib, os, stat, sys
mnt, back = sys.argv[1], sys.argv[2]
diffs = []
def say(rel, what):
    diffs.append("%s: %s" % (rel or ".", what))
def xattrs(p):
    try:
        names = os.listxattr(p, follow_symlinks=False)
    except OSError as e:
        return "listxattr: %s" % e.strerror
    out = {}
    for n in sorted(names):
        try:
            out[n] = hashlib.sha1(os.getxattr(p, n, follow_symlinks=False)).hexdigest()[:12]
        except OSError as e:
            out[n] = "getxattr: %s" % e.strerror
    return out
FIELDS = ("st_mode", "st_uid", "st_gid", "st_size", "st_nlink", "st_ino", "st_rdev",
          "st_blocks", "st_atime_ns", "st_mtime_ns", "st_ctime_ns")
n = 0
files = []
def visit(rel):
    global n
    pm, pb = os.path.join(mnt, rel), os.path.join(back, rel)
    try:
        sm = os.lstat(pm)
    except OSError as e:
        return say(rel, "lstat through the mount: %s" % e.strerror)
    sb = os.lstat(pb)
    n += 1
    for f in FIELDS:
        a, b = getattr(sm, f), getattr(sb, f)
        if f == "st_mode":
            a, b = oct(a), oct(b)
        if a != b:
            say(rel, "%s mount=%s backing=%s" % (f, a, b))
    xm, xb = xattrs(pm), xattrs(pb)
    if xm != xb:
        say(rel, "xattrs mount=%s backing=%s" % (xm, xb))
    if stat.S_ISLNK(sb.st_mode):
        try:
            lm = os.readlink(pm)
        except OSError as e:
            lm = "readlink: %s" % e.strerror
        if lm != os.readlink(pb):
            say(rel, "symlink target mount=%r backing=%r" % (lm, os.readlink(pb)))
    elif stat.S_ISREG(sb.st_mode):
        files.append(rel)
    elif stat.S_ISDIR(sb.st_mode):
        try:
            nm = sorted(os.listdir(pm))
        except OSError as e:
            return say(rel, "listdir through the mount: %s" % e.strerror)
        nb = sorted(os.listdir(pb))
        if nm != nb:
            say(rel, "names only through the mount: %s; only in the backing: %s" % (
                sorted(set(nm) - set(nb))[:5], sorted(set(nb) - set(nm))[:5]))
        seen = set(nm)
        for name in nb:
            if name in seen:
                visit(os.path.join(rel, name))
visit("")
# contents last: reading may set atimes
for rel in files:
    h = []
    for p in (os.path.join(mnt, rel), os.path.join(back, rel)):
        d = hashlib.sha1()
        try:
            with open(p, "rb") as f:
                for blk in iter(lambda: f.read(1 << 20), b""):
                    d.update(blk)
            h.append(d.hexdigest())
        except OSError as e:
            h.append("read: %s" % e.strerror)
    if h[0] != h[1]:
        say(rel, "content mount=%s backing=%s" % (h[0], h[1]))
if diffs:
    print("\n".join(diffs[:50]))
    if len(diffs) > 50:
        print("... and %d more differences" % (len(diffs) - 50))
    sys.exit(1)
print("%d names, %d files' content" % (n, len(files)))
PY
}
