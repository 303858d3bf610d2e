#!/bin/bash
# ptfs-compare: fsp-ptfs shows its backing directory exactly. Whatever is done
# through the mount (cp -a, tar x --xattrs, rsync -aHAX, git commit/gc, hard
# links, symlinks, special files, chown/chmod with special bits, times with
# nanoseconds, xattrs in every namespace, POSIX ACLs, sparse files and holes,
# renames and exchanges, O_TMPFILE, files open while unlinked), the mount and
# the backing directory have the same names, content, types, modes, owners,
# sizes, link counts, inode numbers, device numbers, blocks, times and xattrs
# (compare_backing in tests/lib.sh); and what is changed directly in the
# backing directory shows through the mount once the attribute and entry
# timeouts (1 s) have passed.
# It always tests fsp-ptfs: in memfs mode (the default run) over a tmpfs, as
# FSP_TEST_FS=ptfs; in ptfs-ext4 mode over ext4; skipped in tmpfs mode.
# timeout: 600
[ "${FSP_TEST_FS:-memfs}" = memfs ] && export FSP_TEST_FS=ptfs
. "$(dirname "$0")/../lib.sh"
need_fs ptfs,ptfs-ext4 "it compares fsp-ptfs's mount with its backing directory"
need_root "the backing file system is a fresh tmpfs or ext4 mount"
need_cmd getfattr setfattr
export TZ=UTC

M=$T/mnt
fs_mount "$M"
B=$(fs_backing "$M")
src=$(source_tree small)
echo "backing directory: $B ($(backing_fstype)); source tree: $src"

step "cp -a of $src"
cp -a "$src" "$M/cp"
diff -r --no-dereference "$src" "$M/cp" >&2 || fail "diff -r between $src and its copy in the mount"
compare_backing "$M" cp

step "tar x --xattrs --acls into the mount"
mkdir -p "$T/tsrc/sub"
cp -a "$src" "$T/tsrc/tree"
echo x >"$T/tsrc/sub/f"
setfattr -n user.t -v tarred "$T/tsrc/sub/f"
ln "$T/tsrc/sub/f" "$T/tsrc/hard"
ln -s sub/f "$T/tsrc/soft"
tar --xattrs --xattrs-include='*' --acls -C "$T/tsrc" -cf "$T/t.tar" .
mkdir "$M/tar"
tar --xattrs --xattrs-include='*' --acls -C "$M/tar" -xpf "$T/t.tar"
assert_eq "$(getfattr --absolute-names --only-values -n user.t "$M/tar/sub/f")" tarred "xattr extracted by tar"
compare_backing "$M" tar

if command -v rsync >/dev/null 2>&1; then
	step "rsync -aHAX into the mount"
	rsync -aHAX "$T/tsrc/" "$M/rsync/"
	compare_backing "$M" rsync
else
	note "rsync is not installed: rsync -aHAX not compared"
fi

if command -v git >/dev/null 2>&1; then
	step "git init, commit, branch, merge, gc"
	export HOME=$T GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
	export GIT_AUTHOR_NAME="fsp test" GIT_AUTHOR_EMAIL=test@fsp.invalid
	export GIT_COMMITTER_NAME="fsp test" GIT_COMMITTER_EMAIL=test@fsp.invalid
	(
		cd "$M"
		git init -q -b main repo
		cd repo
		cp "$ROOT"/tests/*.sh .
		mkdir -p d/e
		for i in $(seq 1 20); do seq 1 $((i * 30)) >"d/e/n$i"; done
		git add -A
		git commit -q -m one
		git checkout -q -b side
		echo side >side.txt
		git add side.txt
		git commit -q -m side
		git checkout -q main
		git rm -q d/e/n1
		git commit -q -m two
		git merge -q --no-edit side
		git gc -q --prune=now
		git fsck --full --strict
	) || fail "git in the mount"
	compare_backing "$M" repo
else
	note "git is not installed: a repository not compared"
fi

step "links, special files, owners, modes, times, xattrs, ACLs"
mkdir -p "$M/meta/a/b" "$M/meta/c"
cd "$M/meta"
echo linked >a/h
ln a/h a/b/h2
ln a/h c/h3
ln -s ../a/h c/rel
ln -s /nowhere/at/all dangling
ln -s "$(printf 'x%.0s' $(seq 1 600))" longlink
mkfifo fifo
mknod cdev c 1 3
mknod bdev b 7 0
python3 -c 'import socket; s = socket.socket(socket.AF_UNIX); s.bind("sock"); s.close()'
: >suid && chmod 4755 suid
: >sgid && chmod 2710 sgid
mkdir sticky && chmod 1777 sticky
: >mode0 && chmod 0 mode0
: >owned && chown 1234:5678 owned
chown -h 42:43 c/rel
mkdir -p sg && chgrp 4242 sg && chmod 2775 sg
: >sg/inherits
mkdir sg/sub
touch -d '2001-02-03 04:05:06.123456789' a/h
touch -a -d '1999-12-31 23:59:59.000000001' a/h
touch -m -d '@4000000000' owned
touch -h -d '2010-01-01 00:00:00.5' c/rel
setfattr -n user.color -v blue a/h
setfattr -n user.empty a/b
setfattr -n trusted.secret -v s3 owned
python3 -c 'import os; os.setxattr("a/b/h2", "user.bin", bytes(range(256)) * 8)'
if command -v setfacl >/dev/null 2>&1; then
	setfacl -m u:1234:rw,g:5678:r,m::rw owned
	setfacl -d -m u:1234:rwx,g::rx a/b
	echo under-default-acl >a/b/inherited
	mkdir a/b/inherited-dir
	assert_match "$(getfacl -c owned 2>/dev/null)" 'user:1234:rw' "ACL set through the mount"
else
	note "setfacl is not installed: ACLs not compared"
fi

step "sparse files, holes, truncate, renames, O_TMPFILE, open-unlinked"
truncate -s 100M sparse
printf x | dd of=sparse bs=1 seek=52428800 conv=notrunc status=none
head -c 1048576 /dev/urandom >punched
fallocate -p -o 65536 -l 131072 punched
: >kept
fallocate -n -l 1M kept
printf '0123456789' >trunc
truncate -s 3 trunc
echo one >r1 && echo two >r2
mv r1 r1-renamed
python3 - <<'PY'
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
assert libc.renameat2(-100, b"r1-renamed", -100, b"r2", 2) == 0, "RENAME_EXCHANGE"
assert libc.renameat2(-100, b"a/b", -100, b"c", 2) == 0, "RENAME_EXCHANGE of directories"
fd = os.open(".", os.O_TMPFILE | os.O_RDWR, 0o640)
os.write(fd, b"anonymous")
assert libc.linkat(-100, b"/proc/self/fd/%d" % fd, -100, b"tmpfile", 0x400) == 0, "linkat"
os.close(fd)
fd = os.open("ghost", os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, b"x" * 10000)
os.unlink("ghost")
os.write(fd, b"y")
open("after-ghost", "w").write("still open: %d links" % os.fstat(fd).st_nlink)
os.close(fd)
PY
cd "$T"
compare_backing "$M" meta
if command -v getfacl >/dev/null 2>&1; then
	# the same ACLs, read back the usual way on both sides
	(cd "$M/meta" && getfacl -R -P -s . 2>/dev/null) >"$T/acl.mnt"
	(cd "$B/meta" && getfacl -R -P -s . 2>/dev/null) >"$T/acl.back"
	diff "$T/acl.mnt" "$T/acl.back" >&2 || fail "getfacl -R differs between the mount and the backing directory"
	assert_ge "$(grep -c '^# file' "$T/acl.mnt")" 3 "files with ACLs (owned, c, c/inherited...)"
fi

step "the whole mount"
compare_backing "$M"

step "changes made directly in the backing directory show through the mount"
# fsp-ptfs(1), CHANGES MADE OUTSIDE THE MOUNT: within entry_timeout and
# attr_timeout (1 s each by default) the mount may not show them yet.
echo new >"$B/meta/made-behind"
chmod 600 "$B/meta/a/h"
chown 77:88 "$B/meta/trunc"
setfattr -n user.behind -v yes "$B/meta/kept"
mv "$B/meta/r2" "$B/meta/r2-moved-behind"
echo rewritten >"$B/meta/r1-renamed"
rm "$B/meta/a/b/h3"   # (a/b and c were exchanged above)
mkdir "$B/meta/dir-behind"
echo replaced >"$T/replacement"
mv "$T/replacement" "$B/meta/tmpfile"   # (/tmp may be another file system: copied)
touch -d '2020-02-02 02:02:02.2' "$B/meta/sparse"
sleep 1.2
assert_eq "$(cat "$M/meta/made-behind")" new "a file made behind the mount"
assert_eq "$(cat "$M/meta/tmpfile")" replaced "a file replaced behind the mount"
compare_backing "$M"

step "remove everything through the mount"
rm -rf "$M"/*
assert_eq "$(count_entries "$B")" 0 "names left in the backing directory"
compare_backing "$M"
fs_umount "$M"
