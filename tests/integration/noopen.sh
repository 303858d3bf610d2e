#!/bin/bash
# noopen: fsp-memfs -o no_open, where the kernel opens files and
# directories without asking (FUSE_NO_OPEN_SUPPORT / NO_OPENDIR_SUPPORT) and
# makes files with MKNOD. What users see stays the same: contents, O_TRUNC,
# O_APPEND, O_EXCL, a file read and written after its unlink and across a
# rename, a read-only new file opened for writing by its creator, listings.
# The library keeps its promises without OPEN/RELEASE: no handle is made,
# no OPEN, RELEASE, OPENDIR or RELEASEDIR is received (past the first, which
# tells the kernel), and the nodes go back to the root alone once every file
# is closed and the caches dropped. A file system with a release callback
# (fsp-ptfs) refuses -o no_open with one line.
. "$(dirname "$0")/../lib.sh"
need_memfs "-o no_open is for file systems without per-open state"
need_fuse
need_cmd python3
FSPCTL=$BUILD_DIR/fspctl
M=$T/mnt
fs_mount "$M" no_open
stat_of() { "$FSPCTL" stats "$M" | awk -v k="$1" '$1 == k { print $2 }'; }

step "contents, truncation, appends, exclusive creates"
python3 - "$M" <<'PY'
import errno, os, sys
m = sys.argv[1]
p = os.path.join(m, "f")
with open(p, "w") as f:
    f.write("hello world\n")
assert open(p).read() == "hello world\n"
with open(p, "w") as f:          # O_TRUNC of an existing file
    f.write("x")
assert open(p).read() == "x", open(p).read()
with open(p, "a") as f:
    f.write("yz")
assert open(p).read() == "xyz"
os.truncate(p, 1)
assert open(p).read() == "x"
try:
    os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    sys.exit("O_EXCL of an existing file succeeded")
except OSError as e:
    assert e.errno == errno.EEXIST
fd = os.open(os.path.join(m, "ro"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o400)
assert os.write(fd, b"mine") == 4
os.close(fd)
assert oct(os.stat(os.path.join(m, "ro")).st_mode & 0o777) == "0o400"
# open across unlink and rename
fd = os.open(p, os.O_RDWR)
os.rename(p, os.path.join(m, "g"))
os.write(fd, b"ABC")
os.unlink(os.path.join(m, "g"))
os.lseek(fd, 0, 0)
assert os.read(fd, 10) == b"ABC"
os.close(fd)
os.mkdir(os.path.join(m, "d"))
for i in range(300):
    open(os.path.join(m, "d", "n%d" % i), "w").close()
assert len(os.listdir(os.path.join(m, "d"))) == 300
for i in range(0, 300, 2):
    os.unlink(os.path.join(m, "d", "n%d" % i))
assert sorted(os.listdir(os.path.join(m, "d"))) == sorted("n%d" % i for i in range(1, 300, 2))
print("no_open: behaviour as expected")
PY
[ $? -eq 0 ] || fail "no_open: the behaviour above differs"
cp -a "$(source_tree small)" "$M/copy"
diff -r "$(source_tree small)" "$M/copy" >/dev/null || fail "no_open: cp -a copy differs"

step "no OPEN/RELEASE, no handles, nodes back to the root"
for op in OPEN RELEASE OPENDIR RELEASEDIR; do
	n=$(stat_of "op.$op")
	assert_le "${n:-0}" 1 "no_open: $op requests"
done
assert_eq "$(stat_of handles)" 0 "no_open: handles with no file open"
rm -rf "$M/copy" "$M/d" "$M/ro"
sync
echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
wait_until 20 test "$(stat_of nodes)" = 1 ||
	fail "no_open: $(stat_of nodes) nodes held after everything is gone (expected 1)"
fs_umount "$M"

step "a file system with per-open state refuses -o no_open"
mkdir -p "$T/src" "$T/m2"
out=$("$FSP_PTFS" -f -o no_open "$T/src" "$T/m2" 2>&1) && fail "fsp-ptfs -o no_open mounted"
assert_match "$out" "no_open" "fsp-ptfs -o no_open: the message"
is_mounted "$T/m2" && fail "fsp-ptfs -o no_open left a mount"
echo "noopen: ok"
