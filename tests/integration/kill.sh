#!/bin/bash
# kill: SIGKILL the daemon while a client reads in a loop: clients get
# ENOTCONN ("Transport endpoint is not connected") within seconds and never
# hang, a new daemon refuses the stale mount point with exactly the one line
# of lib/mount.c (what it is, how to unmount it), and the mount
# point can be unmounted and used again. Only about the daemon (fsp-memfs,
# or fsp-ptfs in ptfs modes): skipped in tmpfs mode.
. "$(dirname "$0")/../lib.sh"
need_fs fuse "there is no daemon to kill"

M=$T/mnt
fs_mount "$M"
echo data >"$M/f"
mkdir "$M/d"

step "reader loop"
(
	end=$((SECONDS + 60))
	while [ $SECONDS -lt $end ]; do
		cat "$M/f" >/dev/null 2>&1 || true
		ls "$M/d" >/dev/null 2>&1 || true
	done
) &
reader=$!
sleep 0.5

step "SIGKILL the daemon"
pid=$(fs_pid "$M")
kill -KILL "$pid"
wait_dead "$pid" 5 || fail "the daemon survived SIGKILL for 5s"

step "clients get ENOTCONN"
# fsp-memfs lets the kernel cache names and attributes for a long time, so a
# stat of a name seen before may be answered from the cache without asking
# the daemon; a stat of a new name and an open must reach it.
n=0
notconn() {
	local rc=0
	n=$((n + 1))
	timeout 3 stat "$M/new-name-$n" >"$T/stat.out" 2>&1 || rc=$?
	[ $rc -ne 124 ] || fail "stat hung on the mount of a killed daemon"
	grep -q 'Transport endpoint is not connected' "$T/stat.out" || return 1
	rc=0
	timeout 3 cat "$M/f" >"$T/stat.out" 2>&1 || rc=$?
	[ $rc -ne 124 ] || fail "cat hung on the mount of a killed daemon"
	grep -q 'Transport endpoint is not connected' "$T/stat.out"
}
wait_until 5 notconn || fail "stat of a new name or cat did not report ENOTCONN within 5s: $(cat "$T/stat.out")"
# (not a stat of the mount point itself: the kernel may answer that from
# its attribute cache, without asking the dead daemon, until attr_timeout)
assert_errno ENOTCONN "os.stat('$M/d/nothing')" "lookup of a new name"
assert_errno ENOTCONN "os.listdir('$M')" "readdir of the mount point"
assert_errno ENOTCONN "open('$M/new', 'w')" "create"
kill "$reader"
wait_dead "$reader" 5 || fail "the reader loop hangs on the dead mount ($(cat /proc/$reader/stat 2>/dev/null))"
wait "$reader" 2>/dev/null || true

step "a new daemon refuses the stale mount point"
rc=0
fs_daemon_argv "$M"
timeout 10 "${FS_ARGV[0]}" -f "${FS_ARGV[@]:1}" >"$T/again.out" 2>&1 || rc=$?
cat "$T/again.out"
[ $rc -ne 124 ] || fail "$(fs_daemon) on a stale mount point did not exit within 10s"
if [ $rc -eq 0 ]; then
	fail "$(fs_daemon) on a stale mount point exited 0"
fi
# lib/mount.c's one line for a stale mount point: what it is, what to do
want="$(fs_daemon): error: mount point $M is a stale FUSE mount (its file system is gone); unmount it first: fusermount3 -u $M"
assert_eq "$(cat "$T/again.out")" "$want" "the message for a stale mount point"

step "unmount the dead mount"
fs_umount "$M" 137
assert_eq "$(is_mounted "$M" && echo mounted)" "" "mount after fusermount3 -u"

step "mount again at the same place"
fs_mount "$M"
echo fresh >"$M/f"
assert_eq "$(cat "$M/f")" fresh "a new mount at the same mount point"
fs_umount "$M"
