#!/bin/bash
# readonly: with -o ro every change fails with EROFS; reading still works.
. "$(dirname "$0")/../lib.sh"

M=$T/mnt
fs_mount "$M" ro
awk -v d="$M" '$5 == d && ("," $6 ",") ~ /,ro,/ { f = 1 } END { exit !f }' /proc/self/mountinfo ||
	fail "the mount is not read-only in /proc/self/mountinfo: $(grep " $M " /proc/self/mountinfo)"
assert_eq "$(python3 -c "import os; print(os.statvfs('$M').f_flag & os.ST_RDONLY)")" 1 "ST_RDONLY in statvfs"
assert_eq "$(count_entries "$M")" 0 "readdir on a read-only mount"
stat -f "$M" >/dev/null || fail "statfs on a read-only mount"
assert_errno EROFS "open('$M/f', 'w')" "create"
assert_errno EROFS "os.mkdir('$M/d')" "mkdir"
assert_errno EROFS "os.symlink('x', '$M/l')" "symlink"
assert_errno EROFS "os.mkfifo('$M/p')" "mkfifo"
assert_errno EROFS "os.chmod('$M', 0o700)" "chmod of the root"
assert_errno EROFS "os.utime('$M')" "utime of the root"
assert_errno EROFS "os.setxattr('$M', 'user.x', b'1')" "setxattr on the root"
assert_errno EROFS "os.open('$M', os.O_TMPFILE | os.O_RDWR)" "O_TMPFILE"
touch "$M/f" 2>"$T/err" && fail "touch on a read-only mount succeeded"
grep -q 'Read-only file system' "$T/err" || fail "touch: $(cat "$T/err")"
fs_umount "$M"
