#!/bin/bash
# sigterm: SIGTERM, SIGINT and SIGHUP to a foreground daemon unmount cleanly:
# the daemon exits 0 and the mount is gone. A daemon started without -f
# detaches and exits after fusermount3 -u. Only about the daemon (fsp-memfs,
# or fsp-ptfs in ptfs modes): skipped in tmpfs mode.
. "$(dirname "$0")/../lib.sh"
need_fs fuse "there is no daemon to signal"

M=$T/mnt
for sig in TERM INT HUP; do
	step "SIG$sig"
	fs_mount "$M"
	echo "$sig" >"$M/f"
	pid=$(fs_pid "$M")
	kill -"$sig" "$pid"
	wait_dead "$pid" 10 || fail "the daemon did not exit within 10s of SIG$sig"
	exit_status "$pid"; rc=$_fsp_status
	assert_eq "$rc" 0 "exit status after SIG$sig ($(describe_status "$rc"))"
	is_mounted "$M" && fail "$M is still mounted after SIG$sig"
	_fsp_forget "$(realpath "$M")"
	assert_errno OK "os.listdir('$M')" "the mount point is usable after SIG$sig"
done

step "SIGTERM with a file open"
# The signal asks the daemon to stop, so it unmounts (lazily) and exits even
# though a file is still open: the mount leaves the name space, the daemon
# exits 0 promptly, and the open file then fails with ENOTCONN (as it would
# with libfuse) or, if the daemon chose to wait, still reads; it never hangs.
fs_mount "$M"
seq 1 1000 >"$M/open"
pid=$(fs_pid "$M")
exec 3<"$M/open"
kill -TERM "$pid"
wait_until 10 eval '! is_mounted "$M"' || fail "the mount is still there 10s after SIGTERM"
rc=0
timeout 5 head -n 3 <&3 >"$T/open.out" 2>&1 || rc=$?
[ $rc -ne 124 ] || fail "reading a file that was open at SIGTERM hangs"
echo "reading the open file after SIGTERM: status $rc: $(tr '\n' ' ' <"$T/open.out")"
exec 3<&-
wait_dead "$pid" 10 || fail "the daemon did not exit within 10s of SIGTERM and the last close"
exit_status "$pid"; rc=$_fsp_status
assert_eq "$rc" 0 "exit status after SIGTERM with a file open ($(describe_status "$rc"))"
_fsp_forget "$(realpath "$M")"

step "background daemon (no -f)"
mkdir -p "$T/bg"
rc=0
fs_daemon_argv "$T/bg"
timeout 20 "${FS_ARGV[@]}" >"$T/bg.out" 2>&1 </dev/null || rc=$?
[ $rc -eq 0 ] || fail "${FS_ARGV[*]} (without -f) exited with $(describe_status $rc): $(cat "$T/bg.out")"
is_mounted "$T/bg" || fail "$(fs_daemon) without -f returned before the mount was there"
_fsp_mounts+=("$T/bg")   # so the EXIT trap unmounts it if anything below fails
echo bg >"$T/bg/f"
assert_eq "$(cat "$T/bg/f")" bg "I/O on a background daemon's mount"
# the detached daemon, found by its command line (it carries our mount point)
bgpid=$(pgrep -f -- "^${FS_ARGV[*]}\$" || true)
[ -n "$bgpid" ] || fail "cannot find the background daemon"
[ "$(echo "$bgpid" | wc -l)" -eq 1 ] || fail "more than one background daemon: $bgpid"
echo "background daemon pid $bgpid"
fusermount3 -u "$T/bg"
wait_dead "$bgpid" 10 || fail "the background daemon did not exit within 10s of fusermount3 -u"
is_mounted "$T/bg" && fail "$T/bg still mounted"
exit 0
