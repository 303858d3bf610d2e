#!/bin/bash
# unmount: unmounting a busy mount fails with EBUSY and leaves it working; a
# lazy unmount detaches at once and, with fsp-memfs, the daemon serves the
# files still open and exits 0 when the last one is closed.
. "$(dirname "$0")/../lib.sh"

M=$T/mnt
fs_mount "$M"
seq 1 100 >"$M/f"
pid=$(fs_pid "$M")

step "busy unmount"
exec 3<"$M/f"
if is_tmpfs_mode; then
	umount "$M" 2>"$T/err" && fail "umount of a busy tmpfs succeeded"
else
	fusermount3 -u "$M" 2>"$T/err" && fail "fusermount3 -u of a busy mount succeeded"
fi
grep -qi 'busy' "$T/err" || fail "busy unmount: $(cat "$T/err")"
is_mounted "$M" || fail "the busy mount is gone"
assert_eq "$(head -n 1 "$M/f")" 1 "the mount works after a refused unmount"

step "lazy unmount with a file open"
umount -l "$M"
is_mounted "$M" && fail "still mounted after umount -l"
assert_eq "$(head -n 2 <&3 | tr '\n' ' ')" "1 2 " "reading an open file after a lazy unmount"
if [ -n "$pid" ]; then
	pid_alive "$pid" || fail "the daemon exited while a file was still open"
fi
exec 3<&-
if [ -n "$pid" ]; then
	wait_dead "$pid" 10 || fail "the daemon did not exit within 10s of the last close after a lazy unmount"
	exit_status "$pid"; rc=$_fsp_status
	assert_eq "$rc" 0 "the daemon's exit status after a lazy unmount ($(describe_status "$rc"))"
fi
_fsp_forget "$(realpath "$M")"
exit 0
