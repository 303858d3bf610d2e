#!/bin/bash
# bigdir: 100,000 entries in one directory (20,000 with FSP_QUICK=1): readdir
# sees each exactly once, stat finds each, lookups of missing names fail, and
# all can be renamed and removed.
# timeout: 900
. "$(dirname "$0")/../lib.sh"

N=100000
is_quick && N=20000
M=$T/mnt
fs_mount "$M"

step "create $N files"
python3 - "$M/big" "$N" <<'PY'
import os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
os.mkdir(d)
t = time.time()
for i in range(n):
    os.close(os.open("%s/entry-%06d" % (d, i), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
print("created %d in %.1fs" % (n, time.time() - t))
PY
step "readdir"
python3 - "$M/big" "$N" <<'PY'
import os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
t = time.time()
names = os.listdir(d)
assert len(names) == n, "listdir: %d names, expected %d" % (len(names), n)
assert len(set(names)) == n, "listdir returned duplicates"
assert set(names) == {"entry-%06d" % i for i in range(n)}, "listdir names differ"
with os.scandir(d) as it:
    m = sum(1 for e in it if e.is_file(follow_symlinks=False))
assert m == n, "scandir: %d regular files, expected %d" % (m, n)
print("listed %d in %.1fs" % (n, time.time() - t))
PY
assert_eq "$(ls -f "$M/big" | wc -l)" $((N + 2)) "ls -f count (with . and ..)"
compare_backing "$M"
step "stat all"
python3 - "$M/big" "$N" <<'PY'
import os, sys, time, stat
d, n = sys.argv[1], int(sys.argv[2])
t = time.time()
inos = set()
for i in range(n):
    st = os.lstat("%s/entry-%06d" % (d, i))
    assert stat.S_ISREG(st.st_mode) and st.st_size == 0
    inos.add(st.st_ino)
assert len(inos) == n, "inode numbers are not unique: %d for %d files" % (len(inos), n)
for i in range(n, n + 1000):
    try:
        os.lstat("%s/entry-%06d" % (d, i))
        sys.exit("stat of a missing name succeeded")
    except FileNotFoundError:
        pass
print("stat %d in %.1fs" % (n, time.time() - t))
PY
step "rename all, remove all"
python3 - "$M/big" "$N" <<'PY'
import os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
t = time.time()
for i in range(0, n, 2):
    os.rename("%s/entry-%06d" % (d, i), "%s/renamed-%06d" % (d, i))
assert len(os.listdir(d)) == n
for e in os.listdir(d):
    os.unlink(d + "/" + e)
assert os.listdir(d) == []
os.rmdir(d)
print("renamed %d and removed %d in %.1fs" % (n // 2, n, time.time() - t))
PY
assert_eq "$(count_entries "$M")" 0 "entries left"
fs_umount "$M"
