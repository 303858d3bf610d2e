#!/bin/bash
# abort: a stopped (hung) daemon blocks its clients; aborting the connection
# through fusectl releases them (ECONNABORTED, then ENOTCONN); the daemon, continued, sees the
# dead connection and exits; the mount point can be unmounted. Only about
# the daemon (fsp-memfs, or fsp-ptfs in ptfs modes): skipped in tmpfs mode.
. "$(dirname "$0")/../lib.sh"
need_fs fuse "it aborts a FUSE connection"
need_root "aborting a connection through fusectl needs root"
grep -q ' /sys/fs/fuse/connections .* - fusectl ' /proc/self/mountinfo ||
	skip "fusectl is not mounted on /sys/fs/fuse/connections (tests/run.sh mounts it as root)"

M=$T/mnt
fs_mount "$M"
echo x >"$M/f"
pid=$(fs_pid "$M")

step "stop the daemon: a client blocks"
kill -STOP "$pid"
stat "$M/not-there-$RANDOM" >"$T/client.out" 2>&1 &
client=$!
sleep 1
pid_alive "$client" || fail "a lookup on a stopped daemon returned: $(cat "$T/client.out")"

step "abort the connection"
fs_abort "$M"
if [ "${FSP_TEST_TRANSPORT:-dev}" = uring ]; then
	# Over io_uring the kernel hands a request to a ring entry in the
	# daemon's own task context (task work): a stopped daemon holds it
	# where an abort cannot end it, until the daemon runs again.
	assert_errno ENOTCONN "os.stat('$M/f')" "stat after the abort"
	kill -CONT "$pid"
fi
wait_dead "$client" 5 || fail "the blocked client was not released within 5s of the abort"
# the kernel ends requests that were in flight at the abort with ECONNABORTED
# ("Software caused connection abort"), later ones with ENOTCONN
grep -qE 'Transport endpoint is not connected|Software caused connection abort' "$T/client.out" ||
	fail "the released client got neither ENOTCONN nor ECONNABORTED: $(cat "$T/client.out")"
[ "${FSP_TEST_TRANSPORT:-dev}" = uring ] ||
	assert_errno ENOTCONN "os.stat('$M/f')" "stat after the abort"

step "continue the daemon: it exits"
kill -CONT "$pid" 2>/dev/null || true   # (already continued over io_uring)
wait_dead "$pid" 10 || fail "the daemon did not exit within 10s on an aborted connection"
exit_status "$pid"; rc=$_fsp_status
echo "daemon ended with $(describe_status "$rc")"
[ "$rc" -lt 128 ] || fail "the daemon crashed on an aborted connection: $(describe_status "$rc")"
_fsp_pid[$(realpath "$M")]=""

step "unmount"
if is_mounted "$M"; then
	fusermount3 -u "$M" 2>/dev/null || umount -l "$M"
else
	echo "the daemon unmounted $M itself on its way out"
fi
is_mounted "$M" && fail "$M still mounted"
_fsp_forget "$(realpath "$M")"
exit 0
