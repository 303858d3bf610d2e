#!/bin/bash
# mmap: shared writable mappings reach the file (msync, read(2), another
# process, after the page cache is dropped); write(2) shows in a mapping;
# private mappings stay private; a mapping can grow with the file.
. "$(dirname "$0")/../lib.sh"

M=$T/mnt
fs_mount "$M"
cd "$M"

step "write through a shared mapping, read(2) back"
python3 - <<'PY'
import mmap, os
size = 1 << 20
fd = os.open("m", os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(fd, size)
m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
for i in range(0, size, 4096):
    m[i:i + 8] = b"page%04d" % (i // 4096)
m[size - 5:] = b"tail!"
m.flush()
for i in range(0, size, 4096):
    got = os.pread(fd, 8, i)
    assert got == b"page%04d" % (i // 4096), "read(2) at %d after msync: %r" % (i, got)
assert os.pread(fd, 5, size - 5) == b"tail!"
# write(2) shows through the mapping
os.pwrite(fd, b"WRITTEN", 100)
assert m[100:107] == b"WRITTEN", "mapping after pwrite: %r" % m[100:107]
m.close()
os.close(fd)
PY
drop_cache m
assert_eq "$(dd if=m bs=4096 skip=17 count=1 status=none | head -c 8)" "page0017" "mapped write seen by another process after the cache is dropped"
assert_eq "$(tail -c 5 m)" "tail!" "last bytes of the mapped file"

step "read through a mapping what write(2) wrote"
head -c 300000 /dev/urandom >"$T/data"
cp "$T/data" w
drop_cache w
python3 - "$T/data" <<'PY'
import mmap, os, sys
want = open(sys.argv[1], "rb").read()
fd = os.open("w", os.O_RDONLY)
m = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ)
assert len(m) == len(want) and m[:] == want, "mapped content differs from what was written"
m.close(); os.close(fd)
PY

step "private mapping"
python3 - <<'PY'
import mmap, os
fd = os.open("w", os.O_RDWR)
before = os.pread(fd, 16, 0)
m = mmap.mmap(fd, 4096, mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_WRITE)
m[0:16] = b"P" * 16
assert m[0:16] == b"P" * 16
m.close()
assert os.pread(fd, 16, 0) == before, "MAP_PRIVATE write reached the file"
os.close(fd)
PY

step "two processes share a mapping"
python3 - <<'PY'
import mmap, os
fd = os.open("shared", os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(fd, 8192)
m = mmap.mmap(fd, 8192, mmap.MAP_SHARED)
pid = os.fork()
if pid == 0:
    fd2 = os.open("shared", os.O_RDWR)
    m2 = mmap.mmap(fd2, 8192, mmap.MAP_SHARED)
    m2[4096:4101] = b"child"
    m2.flush()
    os._exit(0)
_, st = os.waitpid(pid, 0)
assert st == 0
assert m[4096:4101] == b"child", "parent's mapping: %r" % m[4096:4101]
m.close(); os.close(fd)
PY

step "grow the file, map the new part"
python3 - <<'PY'
import mmap, os
fd = os.open("grow", os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, b"a" * 4096)
m = mmap.mmap(fd, 4096)
m.close()
os.ftruncate(fd, 65536)
m = mmap.mmap(fd, 65536)
m[60000:60004] = b"grow"
assert m[4096:8192] == b"\0" * 4096
m.flush(); m.close()
assert os.pread(fd, 4, 60000) == b"grow"
assert os.fstat(fd).st_size == 65536
os.close(fd)
PY
compare_backing "$M"
rm -f m w shared grow
cd "$T"
fs_umount "$M"
