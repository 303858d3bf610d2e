#!/bin/bash
# memcheck: the daemon (fsp-memfs, or fsp-ptfs in ptfs modes) under valgrind
# through a mixed workload: no memory errors, no definite leaks, exit status 0
# after unmount. Skipped in tmpfs mode.
# timeout: 900
. "$(dirname "$0")/../lib.sh"
need_fs fuse "it runs the daemon under valgrind"
need_cmd valgrind
# a daemon under valgrind 3.19 never answers over FUSE over io_uring (seen
# here: its first request waits for ever); the /dev/fuse run checks memory
[ "${FSP_TEST_TRANSPORT:-dev}" = dev ] ||
	skip "a daemon under $(valgrind --version) never answers over FUSE over io_uring; the /dev/fuse run checks memory, sanitizers checks the ring under ASan and TSan"

M=$T/mnt
FSP_MOUNT_TIMEOUT=90
FS_WRAPPER="valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite --track-origins=yes --child-silent-after-fork=yes" \
	fs_mount "$M" threads=2

if is_ptfs_mode && ! mkdir "$M/probe" 2>"$T/probe.err" &&
	grep -q 'unhandled amd64-linux syscall: 437' "$(fs_log "$M")"; then
	# valgrind answers ENOSYS to a system call it does not know
	skip "$(valgrind --version) does not handle openat2 (syscall 437), which fsp-ptfs needs for every lookup ($(cat "$T/probe.err"))"
fi
rmdir "$M/probe" 2>/dev/null || true

step "workload"
cd "$M"
mkdir -p d/e
for i in $(seq 1 30); do echo "file $i" >"d/f$i"; done
# (of a snapshot: others may be editing the tests while this runs)
cp -a "$ROOT/tests" "$T/tests-snapshot"
cp -a "$T/tests-snapshot" copy
diff -r "$T/tests-snapshot" copy >&2 || fail "diff of a copy under valgrind"
ln d/f1 d/hard
ln -s f2 d/soft
mv d/f3 d/e/moved
setfattr -n user.a -v 1 d/f4
getfattr -d d/f4 >/dev/null
truncate -s 100000 d/f5
fallocate -p -o 0 -l 4096 d/f5 || true
python3 -c '
import os, mmap
fd = os.open("d/f6", os.O_RDWR); os.ftruncate(fd, 8192)
m = mmap.mmap(fd, 8192); m[0:4] = b"mmap"; m.flush(); m.close(); os.close(fd)
fd = os.open(".", os.O_TMPFILE | os.O_RDWR, 0o600); os.write(fd, b"t"); os.close(fd)'
ls -lR >/dev/null
rm d/f7
exec 3<d/f8
rm d/f8
exec 3<&-
chmod 600 d/f9
touch -d 2001-01-01 d/f10
stat -f . >/dev/null
rm -rf d copy
cd "$T"

step "unmount: valgrind's verdict"
fs_umount "$M" 0
if grep -q '^==[0-9]*==' "$(fs_log "$M")"; then
	grep '^==[0-9]*==' "$(fs_log "$M")" | head -n 40 >&2
	fail "valgrind reported problems (above)"
fi
