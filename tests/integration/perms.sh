#!/bin/bash
# perms: permission checks as another user (needs root, and allow_other for
# fsp-memfs, because a FUSE mount refuses other users without it): modes,
# sticky directories, setgid directories, and a FUSE mount without
# allow_other refusing other users.
. "$(dirname "$0")/../lib.sh"
need_root "it switches to other users"
need_cmd setpriv

chmod 755 "$T"   # other users must reach the mount point
M=$T/mnt
fs_mount "$M" allow_other
chmod 755 "$M"
# as UID: run a command as that user (and the same group), no other groups
as() {
	local u=$1
	shift
	setpriv --reuid="$u" --regid="$u" --clear-groups -- "$@"
}
# errno_as UID PYCODE: errno_of, as that user
errno_as() {
	setpriv --reuid="$1" --regid="$1" --clear-groups -- python3 -c '
import os, sys, errno
try:
    exec(sys.argv[1]); print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))' "$2"
}
U1=65501
U2=65502

step "file modes"
echo secret >"$M/private"
chmod 600 "$M/private"
echo public >"$M/public"
chmod 644 "$M/public"
assert_eq "$(errno_as $U1 "open('$M/private').read()")" EACCES "another user reads a 0600 file"
assert_eq "$(as $U1 cat "$M/public")" public "another user reads a 0644 file"
assert_eq "$(errno_as $U1 "open('$M/public', 'a')")" EACCES "another user writes a 0644 file"
assert_eq "$(errno_as $U1 "open('$M/new', 'w')")" EACCES "another user creates in a 0755 root"
chmod 0 "$M/public"
assert_eq "$(cat "$M/public")" public "root reads a mode 0 file"

step "directory modes"
mkdir -m 700 "$M/closed"
: >"$M/closed/inside"
assert_eq "$(errno_as $U1 "os.listdir('$M/closed')")" EACCES "another user lists a 0700 directory"
assert_eq "$(errno_as $U1 "os.stat('$M/closed/inside')")" EACCES "another user looks up in a 0700 directory"
mkdir -m 711 "$M/search"
echo s >"$M/search/known"
chmod 644 "$M/search/known"
assert_eq "$(errno_as $U1 "os.listdir('$M/search')")" EACCES "listing a 0711 directory"
assert_eq "$(as $U1 cat "$M/search/known")" s "a known name in a 0711 directory"

step "a user's own files"
mkdir -m 777 "$M/pub"
as $U1 sh -c "echo mine >'$M/pub/u1file'"
assert_eq "$(stat -c %u:%g "$M/pub/u1file")" "$U1:$U1" "owner of a file another user created"
as $U1 chmod 600 "$M/pub/u1file"
assert_eq "$(errno_as $U2 "open('$M/pub/u1file').read()")" EACCES "a third user reads it"
assert_eq "$(errno_as $U2 "os.chmod('$M/pub/u1file', 0o666)")" EPERM "a third user chmods it"
assert_eq "$(errno_as $U1 "os.chown('$M/pub/u1file', $U2, -1)")" EPERM "a user gives a file away"
assert_eq "$(errno_as $U2 "os.utime('$M/pub/u1file', (1, 1))")" EPERM "a third user sets its times"
assert_eq "$(errno_as $U2 "os.unlink('$M/pub/u1file')")" OK "a third user removes it from a 0777 directory"

step "sticky directory"
mkdir -m 1777 "$M/sticky"
as $U1 touch "$M/sticky/u1"
assert_eq "$(errno_as $U2 "os.unlink('$M/sticky/u1')")" EPERM "another user removes a file in a sticky directory"
assert_eq "$(errno_as $U2 "os.rename('$M/sticky/u1', '$M/sticky/x')")" EPERM "another user renames a file in a sticky directory"
assert_eq "$(errno_as $U1 "os.unlink('$M/sticky/u1')")" OK "the owner removes it"

step "setgid directory"
mkdir "$M/sg"
chgrp 4242 "$M/sg"
chmod 2775 "$M/sg"
: >"$M/sg/f"
mkdir "$M/sg/sub"
assert_eq "$(stat -c %g "$M/sg/f")" 4242 "group of a file in a setgid directory"
assert_eq "$(stat -c %g:%a "$M/sg/sub")" "4242:2755" "group and mode of a directory in a setgid directory"

step "execute permission"
printf '#!/bin/sh\necho ran\n' >"$M/pub/script"
chmod 755 "$M/pub/script"
assert_eq "$(as $U1 "$M/pub/script")" ran "another user runs a 0755 script"
chmod 644 "$M/pub/script"
assert_eq "$(errno_as $U1 "os.execv('$M/pub/script', ['x'])")" EACCES "another user runs a 0644 script"
fs_umount "$M"

if ! is_tmpfs_mode; then
	step "without allow_other, other users are refused"
	# FUSE's rule, not tmpfs's: only the mounting user may use the mount.
	note "$(fs_label), not tmpfs: without allow_other a FUSE mount refuses other users"
	fs_mount "$M"
	chmod 777 "$M"
	assert_eq "$(errno_as $U1 "os.stat('$M/.')")" EACCES "another user stats the mount without allow_other"
	fs_umount "$M"
fi
