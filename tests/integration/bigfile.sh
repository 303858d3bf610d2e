#!/bin/bash
# bigfile: a large sequential file read back after the cache is dropped,
# writes beyond 4 GiB into a sparse file, and (fsp-memfs) -o max_file_size.
# timeout: 600
. "$(dirname "$0")/../lib.sh"

MB=256
is_quick && MB=64
M=$T/mnt
fs_mount "$M"

step "$MB MiB sequential"
head -c $((MB * 1048576)) /dev/urandom >"$T/big"
dd if="$T/big" of="$M/big" bs=1M status=none
drop_cache "$M/big"
assert_same_file "$M/big" "$T/big" "$MB MiB file read back"
step "read with odd sizes"
dd if="$M/big" bs=12345 status=none | cmp -s - "$T/big" || fail "reading with 12345-byte blocks"
dd if="$M/big" bs=4096 skip=1000 count=1 status=none | cmp -s - <(dd if="$T/big" bs=4096 skip=1000 count=1 status=none) ||
	fail "a 4 KiB block in the middle"
rm -f "$M/big" "$T/big"

step "beyond 4 GiB"
python3 - "$M/sparse" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
offs = [(1 << 32) - 3, 5 << 30, (1 << 33) + 12345]
for o in offs:
    os.pwrite(fd, b"<%d>" % o, o)
for o in offs:
    want = b"<%d>" % o
    got = os.pread(fd, len(want), o)
    assert got == want, "at %d: %r" % (o, got)
size = os.fstat(fd).st_size
assert size == offs[-1] + len(b"<%d>" % offs[-1]), size
assert os.pread(fd, 8, 3 << 30) == b"\0" * 8
os.ftruncate(fd, 5 << 30)
assert os.fstat(fd).st_size == 5 << 30
os.close(fd)
PY
assert_le "$(du -k "$M/sparse" | cut -f1)" 1024 "du of the sparse 5 GiB file (KiB)"
rm -f "$M/sparse"
fs_umount "$M"

if ! is_memfs_mode; then
	note "max_file_size= is fsp-memfs's option: not tested on $(fs_label)"
else
	step "max_file_size=1M"
	note "fsp-memfs only: tmpfs and fsp-ptfs have no per-file size limit option"
	fs_mount "$M" max_file_size=1M
	dd if=/dev/zero of="$M/f" bs=64k count=16 status=none || fail "writing exactly 1 MiB"
	assert_errno EFBIG "
fd = os.open('$M/f', os.O_WRONLY | os.O_APPEND)
os.write(fd, b'x')" "a write past max_file_size"
	assert_errno EFBIG "os.truncate('$M/f', 2 << 20)" "truncate past max_file_size"
	assert_eq "$(stat -c %s "$M/f")" 1048576 "size after the refused writes"
	rm -f "$M/f"
	fs_umount "$M"
fi
