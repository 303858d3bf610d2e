#!/bin/bash
# basic: the POSIX file operations a user of tmpfs relies on, one by one:
# files, directories, renames (renameat2 flags too), links, special files,
# attributes, times, statfs, xattrs, fallocate/holes, O_TMPFILE, name limits
# and the errors that go with them.
. "$(dirname "$0")/../lib.sh"
export TZ=UTC

M=$T/mnt
fs_mount "$M"
cd "$M"
umask 022

# ctypes renameat2(AT_FDCWD, a, AT_FDCWD, b, flags), for the python snippets
RENAMEAT2='
libc = ctypes.CDLL(None, use_errno=True)
def renameat2(a, b, flags):
    if libc.renameat2(-100, a.encode(), -100, b.encode(), flags) != 0:
        e = ctypes.get_errno(); raise OSError(e, os.strerror(e))
'
NOREPLACE=1
EXCHANGE=2

step "empty root"
assert_eq "$(count_entries .)" 0 "entries in a fresh mount"
assert_eq "$(stat -c %F .)" "directory" "type of the root"

step "create, read, write, append"
echo hello >f
assert_eq "$(cat f)" "hello" "content after write"
echo world >>f
assert_eq "$(cat f)" "hello
world" "content after append"
assert_eq "$(stat -c %s f)" 12 "size after append"
assert_eq "$(stat -c %a f)" 644 "mode of a new file under umask 022"
printf XY | dd of=f bs=1 seek=1 conv=notrunc status=none
assert_eq "$(head -n 1 f)" "hXYlo" "overwrite in the middle"
# write past the end leaves zeros between
printf Z | dd of=f bs=1 seek=20 conv=notrunc status=none
assert_eq "$(stat -c %s f)" 21 "size after a write past the end"
assert_zeros f 12 8 "zeros between the old end and a write past it"
assert_eq "$(tail -c 1 f)" "Z" "byte written past the end"
head -c 4194304 /dev/urandom >"$T/rand"
cp "$T/rand" big
assert_same_file big "$T/rand" "4 MiB random file read back"
python3 - <<'PY'
import os
fd = os.open("pw", os.O_RDWR | os.O_CREAT, 0o644)
os.pwrite(fd, b"abcdef", 0)
os.pwrite(fd, b"XY", 2)
assert os.pread(fd, 100, 0) == b"abXYef", os.pread(fd, 100, 0)
assert os.pread(fd, 100, 6) == b"", "read at EOF"
os.close(fd)
# O_APPEND appends whatever the offset
fd = os.open("pw", os.O_WRONLY | os.O_APPEND)
os.lseek(fd, 0, os.SEEK_SET)
os.write(fd, b"++")
os.close(fd)
assert open("pw", "rb").read() == b"abXYef++"
# O_TRUNC empties
os.close(os.open("pw", os.O_WRONLY | os.O_TRUNC))
assert os.stat("pw").st_size == 0
PY

step "truncate"
printf '0123456789' >t
truncate -s 3 t
assert_eq "$(cat t)" "012" "content after shrinking truncate"
truncate -s 8 t
assert_eq "$(stat -c %s t)" 8 "size after growing truncate"
assert_zeros t 3 5 "zeros after growing truncate"
truncate -s 0 t
assert_eq "$(stat -c %s t)" 0 "size after truncate to 0"
python3 -c '
import os
fd = os.open("t", os.O_RDWR)
os.write(fd, b"x" * 100)
os.ftruncate(fd, 10)
assert os.fstat(fd).st_size == 10
assert os.pread(fd, 100, 0) == b"x" * 10
os.close(fd)'

step "mkdir, rmdir, directory link counts"
mkdir -p a/b/c
assert_eq "$(stat -c %F a/b/c)" "directory" "type of a new directory"
assert_eq "$(stat -c %a a)" 755 "mode of a new directory under umask 022"
assert_eq "$(stat -c %h a/b/c)" 2 "link count of an empty directory"
mkdir a/b/d
assert_eq "$(stat -c %h a/b)" 4 "link count of a directory with 2 subdirectories"
rmdir a/b/d
assert_eq "$(stat -c %h a/b)" 3 "link count after rmdir of a subdirectory"
assert_errno ENOTEMPTY 'os.rmdir("a/b")' "rmdir of a non-empty directory"
assert_errno EEXIST 'os.mkdir("a")' "mkdir of an existing name"
assert_errno ENOENT 'os.mkdir("nope/x")' "mkdir under a missing directory"
assert_errno ENOTDIR 'os.rmdir("f")' "rmdir of a file"
assert_errno ENOTDIR 'os.stat("f/x")' "path through a file"
assert_errno ENOENT 'os.stat("missing")' "stat of a missing name"
assert_errno EISDIR 'os.open("a", os.O_WRONLY)' "open a directory for writing"
assert_errno EISDIR 'os.unlink("a")' "unlink of a directory"
assert_errno EEXIST 'os.open("f", os.O_CREAT | os.O_EXCL | os.O_WRONLY)' "O_EXCL on an existing file"
assert_errno ENOTDIR 'os.open("f", os.O_RDONLY | os.O_DIRECTORY)' "O_DIRECTORY on a file"
assert_errno EINVAL 'os.rmdir("a/b/c/.")' "rmdir of ."
rmdir a/b/c a/b a
assert_errno ENOENT 'os.stat("a")' "stat after rmdir"

step "readdir"
mkdir rd
for i in $(seq 1 50); do : >"rd/file$i"; done
mkdir rd/sub
assert_eq "$(ls -a rd | wc -l)" 53 "ls -a count (50 files, 1 dir, . and ..)"
assert_eq "$(ls rd | sort | head -n 3 | tr '\n' ' ')" "file1 file10 file11 " "names listed"
assert_eq "$(stat -c %i rd/.)" "$(stat -c %i rd)" "inode of ."
assert_eq "$(stat -c %i rd/sub/..)" "$(stat -c %i rd)" "inode of .."
assert_eq "$(find rd -type f | wc -l)" 50 "find -type f (d_type)"
rm -rf rd

step "rename"
echo one >r1
ino=$(stat -c %i r1)
mv r1 r2
assert_eq "$(cat r2)" "one" "content after rename"
assert_eq "$(stat -c %i r2)" "$ino" "inode kept by rename"
assert_errno ENOENT 'os.stat("r1")' "old name after rename"
echo two >r3
mv -f r2 r3
assert_eq "$(cat r3)" "one" "rename over an existing file replaces it"
assert_eq "$(stat -c %i r3)" "$ino" "inode after rename over existing"
assert_eq "$(count_entries .)" "$(ls -A | wc -l)" "no stray names"
mkdir d1 d2 d3
: >d3/x
echo inner >d1/in
assert_errno OK 'os.rename("d1", "d2")' "rename of a directory over an empty directory"
assert_eq "$(cat d2/in)" "inner" "content of the moved directory"
assert_errno ENOTEMPTY 'os.rename("d2", "d3")' "rename of a directory over a non-empty directory"
assert_errno EISDIR 'os.rename("r3", "d2")' "rename of a file over a directory"
assert_errno ENOTDIR 'os.rename("d2", "r3")' "rename of a directory over a file"
mkdir -p d2/sub/deeper
assert_errno EINVAL 'os.rename("d2", "d2/sub/deeper/x")' "moving a directory into itself"
assert_errno EINVAL 'os.rename("d2", "d2/x")' "moving a directory into itself (child)"
mv d2/sub d3/sub
assert_eq "$(stat -c %i d3/sub/..)" "$(stat -c %i d3)" ".. after moving a directory to a new parent"
assert_eq "$(stat -c %h d3)" 3 "link count of the new parent"
assert_eq "$(stat -c %h d2)" 2 "link count of the old parent"
echo a >ea
echo b >eb
assert_errno EEXIST "$RENAMEAT2
renameat2('ea', 'eb', $NOREPLACE)" "RENAME_NOREPLACE onto an existing name"
assert_eq "$(cat eb)" "b" "RENAME_NOREPLACE left the target alone"
assert_errno OK "$RENAMEAT2
renameat2('ea', 'ec', $NOREPLACE)" "RENAME_NOREPLACE onto a free name"
assert_eq "$(cat ec)" "a" "content after RENAME_NOREPLACE"
assert_errno OK "$RENAMEAT2
renameat2('ec', 'eb', $EXCHANGE)" "RENAME_EXCHANGE of two files"
assert_eq "$(cat eb)/$(cat ec)" "a/b" "contents after RENAME_EXCHANGE"
assert_errno OK "$RENAMEAT2
renameat2('eb', 'd3', $EXCHANGE)" "RENAME_EXCHANGE of a file and a directory"
assert_eq "$(stat -c %F eb)/$(cat d3)" "directory/a" "types after RENAME_EXCHANGE"
assert_eq "$(stat -c %i eb/sub/..)" "$(stat -c %i eb)" ".. after RENAME_EXCHANGE"
assert_errno ENOENT "$RENAMEAT2
renameat2('ec', 'nothing', $EXCHANGE)" "RENAME_EXCHANGE with a missing target"
rm -rf d2 d3 eb ec r3

step "hard links"
echo linked >h1
ln h1 h2
assert_eq "$(stat -c %h h1)/$(stat -c %h h2)" "2/2" "link counts after ln"
assert_eq "$(stat -c %i h1)" "$(stat -c %i h2)" "same inode"
echo more >>h2
assert_eq "$(cat h1)" "linked
more" "write through one name, read through the other"
mkdir hd
ln h1 hd/h3
assert_eq "$(stat -c %h h1)" 3 "link count with a link in another directory"
rm h1
assert_eq "$(stat -c %h h2)" 2 "link count after rm of one name"
assert_errno EPERM 'os.link("hd", "hd2")' "hard link to a directory"
assert_errno EEXIST 'os.link("h2", "hd/h3")' "link onto an existing name"
assert_errno OK 'os.rename("h2", "hd/h3")' "rename of a link onto another link of the same inode"
assert_eq "$(stat -c %h hd/h3)/$(cat h2 | head -n 1)" "2/linked" "such a rename does nothing (POSIX)"
compare_backing "$M"
rm -rf hd h2

step "symlinks"
echo target >st
ln -s st sl
assert_eq "$(readlink sl)" "st" "readlink"
assert_eq "$(cat sl)" "target" "read through a symlink"
assert_eq "$(stat -c %F sl)" "symbolic link" "lstat type"
assert_eq "$(stat -c %s sl)" 2 "size of a symlink is its target's length"
ln -s nowhere/at/all dangling
assert_eq "$(readlink dangling)" "nowhere/at/all" "readlink of a dangling symlink"
assert_errno ENOENT 'os.stat("dangling")' "stat through a dangling symlink"
mkdir sd
: >sd/inside
ln -s sd sdl
assert_eq "$(ls sdl/)" "inside" "directory through a symlink"
long=$(printf 'x%.0s' $(seq 1 1000))
ln -s "$long" longlink
assert_eq "$(readlink longlink)" "$long" "1000-byte symlink target"
ln -s sl loop1 && rm sl && ln -s loop1 sl
assert_errno ELOOP 'os.stat("sl")' "symlink loop"
compare_backing "$M"
rm -rf sl st dangling sd sdl longlink loop1

step "fifo and device nodes"
mkfifo p
assert_eq "$(stat -c %F p)" "fifo" "type of a fifo"
(echo through-fifo >p) &
writer=$!
assert_eq "$(timeout 10 cat p)" "through-fifo" "data through a fifo"
wait $writer
rm p
if is_root; then
	mknod cdev c 1 3
	assert_eq "$(stat -c '%F %t %T' cdev)" "character special file 1 3" "char device node"
	mknod bdev b 7 0
	assert_eq "$(stat -c '%F %t %T' bdev)" "block special file 7 0" "block device node"
	compare_backing "$M"
	rm cdev bdev
else
	note "not root: mknod of device nodes not tested"
fi
python3 -c 'import os, socket
s = socket.socket(socket.AF_UNIX); s.bind("sock"); s.close()'
assert_eq "$(stat -c %F sock)" "socket" "type of a bound unix socket"
rm sock

step "chmod, chown"
: >m
chmod 640 m
assert_eq "$(stat -c %a m)" 640 "chmod 640"
chmod 4755 m
assert_eq "$(stat -c %a m)" 4755 "chmod 4755 (setuid)"
chmod 1777 .
assert_eq "$(stat -c %a .)" 1777 "chmod of the root (sticky)"
chmod 755 .
if is_root; then
	chown 1234:5678 m
	assert_eq "$(stat -c %u:%g m)" "1234:5678" "chown"
	assert_eq "$(stat -c %a m)" 755 "chown clears setuid"
	chown -h 42:43 m
	ln -s m ml
	chown -h 7:8 ml
	assert_eq "$(stat -c %u:%g ml)/$(stat -c %u:%g m)" "7:8/42:43" "chown -h of a symlink"
	compare_backing "$M"
	rm ml
else
	note "not root: chown not tested"
fi
rm m

step "times"
: >tm
touch -d '2001-02-03 04:05:06.123456789' tm
assert_eq "$(stat -c %y tm)" "2001-02-03 04:05:06.123456789 +0000" "mtime with nanoseconds"
touch -a -d '1999-12-31 23:59:59.000000001' tm
assert_eq "$(stat -c %x tm)" "1999-12-31 23:59:59.000000001 +0000" "atime with nanoseconds"
assert_eq "$(stat -c %y tm)" "2001-02-03 04:05:06.123456789 +0000" "touch -a kept mtime"
touch -m -d '@4000000000' tm
assert_eq "$(stat -c %Y tm)" 4000000000 "mtime past 2038"
compare_backing "$M"
before=$(stat -c %Z tm)
sleep 1.1
echo x >>tm
after_m=$(stat -c %Y tm)
assert_ge "$after_m" "$(($(date +%s) - 5))" "write sets mtime to now"
assert_ge "$(stat -c %Z tm)" $((before + 1)) "write moves ctime"
c1=$(stat -c %Z tm)
sleep 1.1
chmod 600 tm
assert_ge "$(stat -c %Z tm)" $((c1 + 1)) "chmod moves ctime"
m1=$(stat -c %Y .)
sleep 1.1
: >newname
assert_ge "$(stat -c %Y .)" $((m1 + 1)) "create moves the directory's mtime"
compare_backing "$M"
rm tm newname

step "statfs"
df -P "$M" >"$T/df"
assert_eq "$(wc -l <"$T/df")" 2 "df output lines"
blocks=$(stat -f -c %b "$M")
free=$(stat -f -c %f "$M")
assert_ge "$blocks" 1 "statfs total blocks"
assert_le "$free" "$blocks" "statfs free <= total"
assert_eq "$(stat -f -c %l "$M")" 255 "statfs name length limit"
bfree0=$(stat -f -c %f "$M")
ffree0=$(stat -f -c %d "$M")
head -c 4194304 /dev/zero >statfs.fill
mkdir statfs.d
sync -f statfs.fill
bsize=$(stat -f -c %S "$M")
assert_ge $(((bfree0 - $(stat -f -c %f "$M")) * bsize)) 4000000 "statfs free space after writing 4 MiB (decrease in bytes)"
assert_ge $((ffree0 - $(stat -f -c %d "$M"))) 2 "statfs free inodes after creating 2 (decrease)"
rm -r statfs.fill statfs.d

step "xattrs"
: >x
setfattr -n user.color -v blue x
assert_eq "$(getfattr --only-values -n user.color x)" "blue" "getfattr user.*"
setfattr -n user.empty x
assert_eq "$(getfattr --only-values -n user.empty x | wc -c)" 0 "empty xattr value"
setfattr -n user.color -v green x
assert_eq "$(getfattr --only-values -n user.color x)" "green" "xattr replaced"
assert_eq "$(getfattr -d --absolute-names -m '^user\.' x | grep -c '^user\.')" 2 "listxattr"
python3 -c '
import os
v = bytes(range(256)) * 16
os.setxattr("x", "user.bin", v)
assert os.getxattr("x", "user.bin") == v
assert sorted(os.listxattr("x")) == ["user.bin", "user.color", "user.empty"], os.listxattr("x")'
assert_errno EEXIST 'os.setxattr("x", "user.color", b"red", os.XATTR_CREATE)' "XATTR_CREATE on an existing name"
assert_errno ENODATA 'os.setxattr("x", "user.nope", b"red", os.XATTR_REPLACE)' "XATTR_REPLACE on a missing name"
assert_errno OK 'os.setxattr("x", "user.new", b"1", os.XATTR_CREATE)' "XATTR_CREATE on a new name"
assert_errno OK 'os.setxattr("x", "user.new", b"2", os.XATTR_REPLACE)' "XATTR_REPLACE on an existing name"
assert_errno ENODATA 'os.getxattr("x", "user.missing")' "getxattr of a missing name"
assert_errno ERANGE '
fd = os.open("x", os.O_RDONLY)
libc = ctypes.CDLL(None, use_errno=True)
buf = ctypes.create_string_buffer(2)
if libc.fgetxattr(fd, b"user.color", buf, 2) < 0:
    e = ctypes.get_errno(); raise OSError(e, os.strerror(e))' "getxattr into a buffer too small"
setfattr -x user.color x
assert_errno ENODATA 'os.getxattr("x", "user.color")' "getxattr after removexattr"
assert_errno ENODATA 'os.removexattr("x", "user.color")' "removexattr of a missing name"
mkdir xd
setfattr -n user.dir -v yes xd
assert_eq "$(getfattr --only-values -n user.dir xd)" "yes" "xattr on a directory"
if is_root; then
	setfattr -n trusted.secret -v s3 x
	assert_eq "$(getfattr --only-values -n trusted.secret x)" "s3" "trusted.* xattr as root"
else
	note "not root: trusted.* not tested"
fi
cp --preserve=xattr x xcopy
assert_eq "$(getfattr --only-values -n user.bin xcopy | md5sum)" "$(getfattr --only-values -n user.bin x | md5sum)" "cp --preserve=xattr"
compare_backing "$M"
rm -rf x xd xcopy

step "fallocate, punch hole, SEEK_DATA/SEEK_HOLE, sparse files"
fallocate -l 1M fa
assert_eq "$(stat -c %s fa)" 1048576 "size after fallocate"
assert_ge "$(stat -c %b fa)" 2048 "blocks after fallocate (512-byte units)"
assert_zeros fa 0 1048576 "fallocated space reads as zeros"
head -c 1048576 /dev/urandom >"$T/fa.data"
cp "$T/fa.data" fa
b_before=$(stat -c %b fa)
fallocate -p -o 65536 -l 131072 fa
assert_eq "$(stat -c %s fa)" 1048576 "punch hole keeps the size"
assert_le "$(stat -c %b fa)" $((b_before - 256)) "punch hole frees blocks"
assert_zeros fa 65536 131072 "punched range reads as zeros"
cmp -s <(head -c 65536 fa) <(head -c 65536 "$T/fa.data") || fail "data before the hole changed"
cmp -s <(tail -c +196609 fa) <(tail -c +196609 "$T/fa.data") || fail "data after the hole changed"
python3 - <<'PY'
import os
fd = os.open("fa", os.O_RDONLY)
h = os.lseek(fd, 0, os.SEEK_HOLE)
assert h == 65536, "SEEK_HOLE from 0: %d, expected 65536" % h
d = os.lseek(fd, 65536, os.SEEK_DATA)
assert d == 196608, "SEEK_DATA from the hole: %d, expected 196608" % d
h = os.lseek(fd, 196608, os.SEEK_HOLE)
assert h == 1048576, "SEEK_HOLE after the last data: %d, expected the size" % h
try:
    os.lseek(fd, 1048576, os.SEEK_DATA)
    raise AssertionError("SEEK_DATA at EOF did not fail")
except OSError as e:
    assert e.errno == 6, "SEEK_DATA at EOF: %s, expected ENXIO" % e
os.close(fd)
PY
truncate -s 100M sparse
assert_eq "$(stat -c %s sparse)" 104857600 "size of a sparse file"
assert_le "$(du -k sparse | cut -f1)" 64 "du of a 100M sparse file (KiB)"
printf x | dd of=sparse bs=1 seek=52428800 conv=notrunc status=none
assert_le "$(du -k sparse | cut -f1)" 128 "du of a sparse file with one byte written (KiB)"
assert_eq "$(dd if=sparse bs=1 skip=52428800 count=1 status=none)" "x" "byte in the middle of a sparse file"
: >keep
fallocate -n -l 2M -o 0 keep
assert_eq "$(stat -c %s keep)" 0 "fallocate --keep-size keeps size 0"
assert_ge "$(stat -c %b keep)" 4096 "blocks of fallocate --keep-size"
compare_backing "$M"
rm fa sparse keep

step "copy_file_range"
head -c 300000 /dev/urandom >src
python3 -c '
import os
i = os.open("src", os.O_RDONLY); o = os.open("dst", os.O_WRONLY | os.O_CREAT, 0o644)
n = 0
while n < 300000:
    k = os.copy_file_range(i, o, 300000 - n)
    assert k > 0
    n += k
os.close(i); os.close(o)'
assert_same_file dst src "copy_file_range result"
rm src dst

step "O_TMPFILE"
python3 - <<'PY'
import os
fd = os.open(".", os.O_TMPFILE | os.O_RDWR, 0o600)
os.write(fd, b"anonymous")
assert os.fstat(fd).st_nlink == 0, "O_TMPFILE file has links"
assert "anonymous" not in os.listdir(".")
# linkat(AT_FDCWD, "/proc/self/fd/N", AT_FDCWD, "linked", AT_SYMLINK_FOLLOW):
# os.link() would call link(2), which links the /proc symlink itself
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
if libc.linkat(-100, b"/proc/self/fd/%d" % fd, -100, b"linked", 0x400) != 0:
    e = ctypes.get_errno(); raise OSError(e, "linkat of an O_TMPFILE: " + os.strerror(e))
assert os.fstat(fd).st_nlink == 1
os.close(fd)
assert open("linked", "rb").read() == b"anonymous"
PY
assert_eq "$(stat -c %a linked)" 600 "mode of a linked O_TMPFILE"
compare_backing "$M"
rm linked

step "open then unlink"
python3 - <<'PY'
import os
fd = os.open("ghost", os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, b"still here")
os.unlink("ghost")
assert not os.path.exists("ghost")
assert os.fstat(fd).st_nlink == 0
os.write(fd, b" and more")
assert os.pread(fd, 100, 0) == b"still here and more"
os.ftruncate(fd, 5)
assert os.fstat(fd).st_size == 5
os.close(fd)
# a file renamed over while open stays readable through the old handle
open("old", "w").write("old data")
fd = os.open("old", os.O_RDONLY)
open("new", "w").write("new data")
os.rename("new", "old")
assert os.pread(fd, 100, 0) == b"old data"
os.close(fd)
assert open("old").read() == "new data"
os.unlink("old")
# a directory removed while open reads as empty
os.mkdir("gone")
dfd = os.open("gone", os.O_RDONLY | os.O_DIRECTORY)
os.rmdir("gone")
assert os.listdir(dfd) == []
assert os.fstat(dfd).st_nlink == 0, os.fstat(dfd).st_nlink
os.close(dfd)
PY

step "name lengths"
mkdir names
cd names
n255=$(printf 'n%.0s' $(seq 1 255))
n256=${n255}n
: >"$n255"
assert_eq "$(ls)" "$n255" "a 255-byte name"
mkdir "d$n255" 2>/dev/null && fail "mkdir of a 256-byte name succeeded"
assert_errno ENAMETOOLONG "open('$n256', 'w')" "create with a 256-byte name"
assert_errno ENAMETOOLONG "os.mkdir('$n256')" "mkdir with a 256-byte name"
assert_errno ENAMETOOLONG "os.stat('$n256')" "stat of a 256-byte name"
assert_errno ENAMETOOLONG "os.rename('$n255', '$n256')" "rename to a 256-byte name"
rm "$n255"
u=$(python3 -c 'print("é" * 127)')   # 254 bytes of UTF-8
echo utf8 >"$u"
assert_eq "$(cat "$u")" "utf8" "a UTF-8 name"
rm "$u"
: >'sp ace'
: >'new
line'
: >'-dash'
assert_eq "$(count_entries .)" 3 "names with a space, a newline, a leading dash"
compare_backing "$M"
rm -- 'sp ace' 'new
line' -dash
cd ..
rmdir names

step "deep tree"
deep=$(printf 'level%05d/' $(seq 1 300))   # 3,300 bytes: close to PATH_MAX
mkdir -p "$deep"
echo bottom >"${deep}file"
assert_eq "$(cat "${deep}file")" bottom "a file 300 directories down"
assert_eq "$(find level00001 -type d | wc -l)" 300 "find through 300 levels"
rm -rf level00001
assert_errno ENOENT 'os.stat("level00001")' "rm -rf of a deep tree"

step "O_DIRECT"
head -c 65536 /dev/urandom >"$T/direct"
dd if="$T/direct" of=direct bs=4096 oflag=direct status=none || fail "dd oflag=direct into the mount"
dd if=direct of="$T/direct.back" bs=4096 iflag=direct status=none || fail "dd iflag=direct from the mount"
assert_same_file "$T/direct.back" "$T/direct" "data through O_DIRECT"
rm direct

step "inotify"
# the kernel raises these for changes made through the mount
python3 - <<'PY'
import ctypes, os, struct, select
libc = ctypes.CDLL(None, use_errno=True)
IN_CREATE, IN_DELETE, IN_MODIFY, IN_MOVED_TO, IN_CLOSE_WRITE = 0x100, 0x200, 0x2, 0x80, 0x8
fd = libc.inotify_init1(os.O_NONBLOCK)
assert fd >= 0
assert libc.inotify_add_watch(fd, b".", IN_CREATE | IN_DELETE | IN_MODIFY | IN_MOVED_TO | IN_CLOSE_WRITE) >= 0
with open("watched", "w") as f:
    f.write("x")
os.rename("watched", "watched2")
os.unlink("watched2")
seen = []
while True:
    r, _, _ = select.select([fd], [], [], 2)
    if not r:
        break
    buf = os.read(fd, 65536)
    i = 0
    while i < len(buf):
        wd, mask, cookie, ln = struct.unpack_from("iIII", buf, i)
        name = buf[i + 16:i + 16 + ln].rstrip(b"\0").decode()
        seen.append((mask & 0xfff, name))
        i += 16 + ln
    if (IN_DELETE, "watched2") in seen:
        break
want = [(IN_CREATE, "watched"), (IN_MODIFY, "watched"), (IN_CLOSE_WRITE, "watched"),
        (IN_MOVED_TO, "watched2"), (IN_DELETE, "watched2")]
for w in want:
    assert w in seen, "inotify event %r missing; seen %r" % (w, seen)
PY

step "fsync, sync"
echo s >sy
sync -f sy
python3 -c '
import os
fd = os.open("sy", os.O_RDWR); os.fsync(fd); os.fdatasync(fd); os.close(fd)
fd = os.open(".", os.O_RDONLY); os.fsync(fd); os.close(fd)'
sync
rm sy

step "cleanup"
rm -f f big pw t
assert_eq "$(count_entries .)" 0 "entries left in the mount"
cd "$T"
fs_umount "$M"
echo "basic: all checks passed on $(fs_label)"
