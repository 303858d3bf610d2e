#!/bin/bash
# limits: -o size=8M,nodes=100: writing past the size fails with ENOSPC,
# creating past the node limit fails with ENOSPC, and after rm the whole
# capacity is usable again. In tmpfs mode the same limits are tmpfs's size=
# and nr_inodes= (tmpfs counts its root directory among the inodes, as
# fsp-memfs counts its root node). In ptfs modes they are the backing
# file system's: tmpfs's as above, or an ext4 made to size with about as many
# usable inodes (see _fsp_make_backing in tests/lib.sh).
. "$(dirname "$0")/../lib.sh"

M=$T/mnt
fs_mount "$M" size=8M,nodes=100

step "statfs reflects the limits"
bs=$(stat -f -c %S "$M")
total=$(($(stat -f -c %b "$M") * bs))
assert_le "$total" $((8 * 1048576)) "statfs size with size=8M"
assert_ge "$total" $((7 * 1048576)) "statfs size with size=8M"
if [ "$FSP_TEST_FS" = ptfs-ext4 ]; then
	# ext4 counts its 10 reserved inodes in f_files, which nodes=N does not
	note "ext4: statfs counts ext4's 10 reserved inodes; the usable ones (free + the root) are checked"
	assert_le $(($(stat -f -c %d "$M") + 1)) 100 "statfs usable inodes with nodes=100 (ext4)"
else
	assert_le "$(stat -f -c %c "$M")" 100 "statfs inodes with nodes=100"
fi

step "write past the size: ENOSPC"
rc=0
dd if=/dev/zero of="$M/fill" bs=1M count=16 2>"$T/dd.err" || rc=$?
cat "$T/dd.err"
assert_ne "$rc" 0 "dd of 16M into an 8M file system"
grep -q 'No space left on device' "$T/dd.err" || fail "dd did not fail with ENOSPC: $(cat "$T/dd.err")"
size=$(stat -c %s "$M/fill")
echo "written before ENOSPC: $size bytes"
assert_ge "$size" $((6 * 1048576)) "bytes written before ENOSPC (limit 8M)"
assert_le "$size" $((8 * 1048576)) "bytes written before ENOSPC (limit 8M)"
if [ "$FSP_TEST_FS" = ptfs-ext4 ]; then
	# ext4 refuses a whole 1 MiB write that does not fit, where tmpfs and
	# fsp-memfs write what fits: fill the rest 4 KiB at a time
	note "ext4: a write that does not fit fails whole (bare ext4 too); filling the rest in 4 KiB writes"
	dd if=/dev/zero of="$M/fill" bs=4k count=4096 oflag=append conv=notrunc 2>/dev/null &&
		fail "4 KiB writes after ENOSPC never hit ENOSPC"
	echo "written in all: $(stat -c %s "$M/fill") bytes"
fi
assert_errno ENOSPC "
fd = os.open('$M/more', os.O_WRONLY | os.O_CREAT, 0o644)
try:
    os.write(fd, b'x' * 65536)
finally:
    os.close(fd)" "another file's write when full"
assert_errno ENOSPC "os.posix_fallocate(os.open('$M/fill2', os.O_RDWR | os.O_CREAT), 0, 16 << 20)" "fallocate past the size"
rm -f "$M/fill" "$M/more" "$M/fill2"

step "the space is back after rm"
dd if=/dev/zero of="$M/again" bs=1M count=16 2>/dev/null && fail "the second 16M write did not fail"
size2=$(stat -c %s "$M/again")
echo "written before ENOSPC the second time: $size2 bytes"
assert_ge "$size2" $((size - 65536)) "bytes written after rm (the first time: $size)"
rm -f "$M/again"

step "create past the node limit: ENOSPC"
python3 - "$M" <<'PY' >"$T/nodes"
import os, sys, errno
n = 0
for i in range(1000):
    try:
        os.close(os.open("%s/n%d" % (sys.argv[1], i), os.O_WRONLY | os.O_CREAT, 0o644))
        n += 1
    except OSError as e:
        print(n, errno.errorcode[e.errno])
        break
else:
    print(n, "none")
PY
read -r created err <"$T/nodes"
echo "created $created files before $err"
assert_eq "$err" ENOSPC "error when creating past nodes=100"
assert_ge "$created" 90 "files created with nodes=100"
assert_le "$created" 99 "files created with nodes=100 (the root is a node)"
assert_errno ENOSPC "os.mkdir('$M/dir')" "mkdir past the node limit"
assert_errno ENOSPC "os.symlink('x', '$M/sym')" "symlink past the node limit"
if [ "$(backing_fstype)" = tmpfs ]; then
	# tmpfs charges every hard link (a dentry) against nr_inodes
	note "tmpfs: a hard link counts against nr_inodes, so it fails here too"
	assert_errno ENOSPC "os.link('$M/n0', '$M/hardlink')" "a hard link when nr_inodes is used up (tmpfs)"
else
	assert_errno OK "os.link('$M/n0', '$M/hardlink')" "a hard link needs no new node"
fi
rm -f "$M"/n* "$M/hardlink"

step "all the nodes are back after rm"
python3 - "$M" "$created" <<'PY'
import os, sys
for i in range(int(sys.argv[2])):
    os.close(os.open("%s/again%d" % (sys.argv[1], i), os.O_WRONLY | os.O_CREAT, 0o644))
PY
rm -f "$M"/again*
assert_eq "$(count_entries "$M")" 0 "entries left"
fs_umount "$M"
