#!/bin/bash
# fs/ptfs/tests/functional.sh — fsp-ptfs behaves like the directory it mirrors.
#
# For each backing file system available (tmpfs always; ext4 on a loop
# device when mkfs.ext4 and losetup work) it mounts build/fsp-ptfs over a
# directory of it and checks: a copy of /usr/include compared both ways,
# hard links as one inode, symlinks, xattrs and POSIX ACLs, the operations
# with flags (O_TMPFILE + linkat, SEEK_DATA/SEEK_HOLE, fallocate, punch hole,
# copy_file_range, RENAME_NOREPLACE/EXCHANGE, utimens ns/UTIME_NOW, mknod,
# truncate, O_APPEND, open-unlinked files), files replaced behind the mount
# (fresh data or ESTALE, never the old content), inode numbers reused behind
# the mount (ext4), the passthrough data path (no READ reaches the daemon),
# the caller's credentials with allow_other, and many more files than the
# daemon may have descriptors (open file limit lowered to 4096).
#
# Protocol (as tests/run.sh): exit 0 pass, 77 skip, other failure ("FAIL:").
# Environment: BUILD_DIR, FSP_PTFS (binary), FSP_QUICK=1 (smaller sets),
# PTFS_FILES (the many-files count, default 30000), PTFS_FS ("tmpfs ext4").
# timeout: 900

set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
PTFS=${FSP_PTFS:-$BUILD_DIR/fsp-ptfs}
FSPCTL=${FSPCTL:-$BUILD_DIR/fspctl}
QUICK=${FSP_QUICK:-0}
FILES=${PTFS_FILES:-30000}
[ "$QUICK" = 1 ] && FILES=${PTFS_FILES:-5000}
export LC_ALL=C PATH="/usr/bin:$PATH:/usr/sbin:/sbin"

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }
# It makes its own backing file systems whatever FSP_TEST_FS says: it runs
# in the memfs pass (the default) only, not again in the other modes.
case "${FSP_TEST_FS:-memfs}" in
memfs) ;;
*) skip "runs fsp-ptfs over its own backing file systems whatever the mode: part of the memfs run" ;;
esac
step() { echo "== [$FS] $*"; }

[ "$(id -u)" = 0 ] || skip "needs root"
[ -c /dev/fuse ] || skip "no /dev/fuse"
[ -x "$PTFS" ] || fail "$PTFS is missing: run make first"
PY=$(command -v python3) || skip "needs python3"

T=$(mktemp -d /tmp/ptfs-func.XXXXXX) || fail mktemp
chmod 755 "$T"
DPID=
LOOP=
FS=setup
cleanup() {
	local m
	for m in "$T/mnt" "$T/back"; do
		mountpoint -q "$m" 2>/dev/null && umount -l "$m" 2>/dev/null
	done
	[ -n "$DPID" ] && kill "$DPID" 2>/dev/null
	[ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null
	mountpoint -q "$T/mnt" 2>/dev/null || mountpoint -q "$T/back" 2>/dev/null ||
		rm -rf --one-file-system "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

M=$T/mnt
mkdir -p "$T/back" "$M"

# ptfs_mount [options...]: mount SRC at M in the foreground, in the background
ptfs_mount() {
	"$PTFS" -f "$@" "$SRC" "$M" 2>>"$T/daemon.log" &
	DPID=$!
	for _ in $(seq 100); do
		mountpoint -q "$M" && return 0
		kill -0 "$DPID" 2>/dev/null || break
		sleep 0.1
	done
	cat "$T/daemon.log" >&2
	fail "fsp-ptfs did not mount"
}

# ptfs_umount: unmount and check that the daemon ended well
ptfs_umount() {
	local st
	umount "$M" 2>/dev/null || umount -l "$M"
	wait "$DPID"
	st=$?
	DPID=
	[ "$st" = 0 ] || { cat "$T/daemon.log" >&2; fail "fsp-ptfs exited with $st (its log above)"; }
	if grep -E "bug|ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error|WARNING: ThreadSanitizer" "$T/daemon.log"; then
		fail "fsp-ptfs reported a problem (above)"
	fi
}

stat_of() { "$FSPCTL" stats "$M" "$1" 2>/dev/null || echo 0; }

ops_py='
import os, sys, ctypes, errno, stat, time
M = sys.argv[1]
libc = ctypes.CDLL(None, use_errno=True)
bad = 0
def check(c, msg):
    global bad
    print(("ok   " if c else "FAIL ") + msg)
    bad += 0 if c else 1
def rm(p):
    try: os.unlink(p)
    except FileNotFoundError: pass
d = M + "/ops"; os.makedirs(d, exist_ok=True)
fd = os.open(d, os.O_TMPFILE | os.O_RDWR, 0o640)
os.write(fd, b"tmpdata")
check(os.fstat(fd).st_nlink == 0, "O_TMPFILE: nlink 0")
rm(d + "/tmplinked")
r = libc.linkat(-100, ("/proc/self/fd/%d" % fd).encode(), -100, (d + "/tmplinked").encode(), 0x400)
check(r == 0, "O_TMPFILE: linkat (errno %d)" % ctypes.get_errno())
os.close(fd)
check(open(d + "/tmplinked", "rb").read() == b"tmpdata", "O_TMPFILE: linked file reads back")
p = d + "/sparse"
with open(p, "wb") as f:
    f.seek(1 << 20); f.write(b"x" * 4096); f.truncate(4 << 20)
fd = os.open(p, os.O_RDONLY)
check(os.lseek(fd, 0, os.SEEK_DATA) == 1 << 20, "SEEK_DATA")
check(os.lseek(fd, 1 << 20, os.SEEK_HOLE) == (1 << 20) + 4096, "SEEK_HOLE")
os.close(fd)
fd = os.open(d + "/falloc", os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
os.posix_fallocate(fd, 0, 1 << 20)
check(os.fstat(fd).st_size == 1 << 20, "fallocate")
os.write(fd, b"a" * 65536)
r = libc.fallocate(fd, 3, ctypes.c_long(0), ctypes.c_long(65536))
check(r == 0 and os.pread(fd, 10, 0) == b"\0" * 10, "fallocate PUNCH_HOLE")
os.close(fd)
src, dst = d + "/cfr-src", d + "/cfr-dst"
data = os.urandom(300000)
with open(src, "wb") as f: f.write(data)
fi = os.open(src, os.O_RDONLY); fo = os.open(dst, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
n = 0
while n < len(data):
    k = os.copy_file_range(fi, fo, len(data) - n)
    if k == 0: break
    n += k
os.close(fi); os.close(fo)
check(open(dst, "rb").read() == data, "copy_file_range")
a, b = d + "/ra", d + "/rb"
open(a, "w").write("A"); open(b, "w").write("B")
r = libc.renameat2(-100, a.encode(), -100, b.encode(), 1)
check(r == -1 and ctypes.get_errno() == errno.EEXIST, "RENAME_NOREPLACE")
r = libc.renameat2(-100, a.encode(), -100, b.encode(), 2)
check(r == 0 and open(a).read() == "B" and open(b).read() == "A", "RENAME_EXCHANGE")
os.utime(a, ns=(1234567890123456789, 987654321987654321))
st = os.stat(a)
check(st.st_atime_ns == 1234567890123456789 and st.st_mtime_ns == 987654321987654321, "utimens with nanoseconds")
os.utime(a)
check(abs(os.stat(a).st_mtime - time.time()) < 5, "utimens UTIME_NOW")
os.truncate(a, 10); check(os.stat(a).st_size == 10, "truncate by name")
fd = os.open(a, os.O_RDWR); os.ftruncate(fd, 3); check(os.fstat(fd).st_size == 3, "ftruncate"); os.close(fd)
fd = os.open(a, os.O_WRONLY | os.O_APPEND); os.write(fd, b"zz"); os.close(fd)
check(os.stat(a).st_size == 5, "O_APPEND")
rm(d + "/fifo"); rm(d + "/cdev")
os.mkfifo(d + "/fifo"); check(stat.S_ISFIFO(os.lstat(d + "/fifo").st_mode), "mkfifo")
os.mknod(d + "/cdev", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
st = os.lstat(d + "/cdev")
check(stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3), "mknod of a device")
fd = os.open(d + "/ul", os.O_CREAT | os.O_RDWR, 0o644); os.write(fd, b"hello"); os.unlink(d + "/ul")
check(os.pread(fd, 5, 0) == b"hello" and os.fstat(fd).st_nlink == 0, "open-unlinked file")
os.close(fd)
rm(d + "/sl"); os.symlink("target-x", d + "/sl")
os.setxattr(d + "/sl", "trusted.t", b"v", follow_symlinks=False)
check(os.getxattr(d + "/sl", "trusted.t", follow_symlinks=False) == b"v", "xattr of a symlink itself")
check(os.readlink(d + "/sl") == "target-x", "readlink")
os.chmod(a, 0o4751)
check(stat.S_IMODE(os.stat(a).st_mode) == 0o4751, "chmod with set-uid")
os.chown(a, 123, 456)
check(os.stat(a).st_uid == 123 and os.stat(a).st_gid == 456, "chown")
sv = os.statvfs(M); check(sv.f_blocks > 0 and sv.f_namemax > 0, "statfs")
old_umask = os.umask(0)   # the caller umask only: the daemon must not add its own
for n_ in ("um-fifo", "um-file"): rm(d + "/" + n_)
if os.path.isdir(d + "/um-dir"): os.rmdir(d + "/um-dir")
os.mkfifo(d + "/um-fifo", 0o666); os.mkdir(d + "/um-dir", 0o777)
os.close(os.open(d + "/um-file", os.O_CREAT | os.O_WRONLY, 0o666))
check([stat.S_IMODE(os.lstat(d + "/" + n_).st_mode) for n_ in ("um-fifo", "um-dir", "um-file")]
      == [0o666, 0o777, 0o666], "modes with umask 0")
os.umask(old_umask)
# directory listing while it changes: entries present throughout are listed once
ld = d + "/listing"; os.makedirs(ld, exist_ok=True)
for i in range(2000): open("%s/keep%04d" % (ld, i), "w").close()
seen = []
it = os.scandir(ld)
for i, e in enumerate(it):
    seen.append(e.name)
    if i % 50 == 0:
        open("%s/new%04d" % (ld, i), "w").close()
        rm("%s/new%04d" % (ld, i - 50))
keep = [s for s in seen if s.startswith("keep")]
check(len(keep) == 2000 and len(set(keep)) == 2000, "readdir while the directory changes (%d keep names)" % len(keep))
sys.exit(1 if bad else 0)
'

run_suite() {
	: >"$T/daemon.log"

	step "mount"
	ptfs_mount
	cat "$T/daemon.log"
	pt=$(stat_of ptfs.passthrough)

	step "copy /usr/include in, compare"
	if [ "$QUICK" = 1 ]; then tree=/usr/include/linux; else tree=/usr/include; fi
	cp -a "$tree" "$M/tree" || fail "cp -a failed"
	diff -r --no-dereference "$tree" "$M/tree" >/dev/null || fail "the copy differs (through the mount)"
	diff -r --no-dereference "$tree" "$SRC/tree" >/dev/null || fail "the copy differs (in SOURCE)"
	listing() {   # what cp -a keeps (not directory sizes: they are the file system's)
		(cd "$1" && { find . ! -type d -printf '%P %y %m %U %G %s %T@ %l\n'
			find . -type d -printf '%P %m %U %G %T@\n'; } | sort)
	}
	listing "$tree" >"$T/l1"
	listing "$M/tree" >"$T/l2"
	cmp -s "$T/l1" "$T/l2" || fail "metadata of the copy differs"

	step "hard links, symlinks, inode numbers"
	echo data >"$M/h1"
	ln "$M/h1" "$M/h2"
	ln "$SRC/h1" "$SRC/h3"   # made behind the mount
	i1=$(stat -c %i "$M/h1") i2=$(stat -c %i "$M/h2") i3=$(stat -c %i "$M/h3") ib=$(stat -c %i "$SRC/h1")
	[ "$i1" = "$i2" ] && [ "$i1" = "$i3" ] || fail "hard links are not one inode: $i1 $i2 $i3"
	[ "$i1" = "$ib" ] || fail "st_ino $i1 is not the backing inode $ib"
	[ "$(stat -c %h "$M/h2")" = 3 ] || fail "nlink of a hard link"
	ln -s "../some/where" "$M/sym"
	[ "$(readlink "$M/sym")" = ../some/where ] && [ "$(readlink "$SRC/sym")" = ../some/where ] ||
		fail "symlink target"

	step "xattrs and ACLs"
	if command -v setfattr >/dev/null; then
		setfattr -n user.k -v v1 "$M/h1" || fail "setfattr"
		[ "$(getfattr --absolute-names --only-values -n user.k "$SRC/h1")" = v1 ] || fail "xattr not in SOURCE"
		setfattr -n user.k2 -v v2 "$SRC/h1"
		[ "$(getfattr --absolute-names --only-values -n user.k2 "$M/h2")" = v2 ] || fail "xattr made behind the mount"
		getfattr --absolute-names -d "$M/h1" | grep -q user.k2 || fail "listxattr"
		setfattr -x user.k "$M/h1" || fail "removexattr"
		getfattr --absolute-names -d "$SRC/h1" | grep -q 'user.k=' && fail "removexattr did not remove"
	else
		echo "NOTE: no setfattr: xattrs not checked"
	fi
	if command -v setfacl >/dev/null; then
		setfacl -m u:1234:rw "$M/h1" || fail "setfacl"
		getfacl -n "$SRC/h1" 2>/dev/null | grep -q user:1234:rw || fail "ACL not in SOURCE"
	else
		echo "NOTE: no setfacl: ACLs not checked"
	fi

	step "operations with flags"
	"$PY" -c "$ops_py" "$M" || fail "operations (above)"

	step "files replaced behind the mount: fresh data or ESTALE, never the old"
	ptfs_umount
	ptfs_mount -o entry_timeout=30,attr_timeout=30
	bad=0
	for i in $(seq 1 200); do
		echo "old$i" >"$SRC/rf"
		cat "$M/rf" >/dev/null
		echo "new$i" >"$SRC/rf.tmp"
		mv "$SRC/rf.tmp" "$SRC/rf"
		got=$(cat "$M/rf" 2>&1) || true
		case "$got" in
		"new$i") ;;
		*"Stale file handle"*) ;;
		*) bad=$((bad + 1)); echo "replaced file read: $got" ;;
		esac
	done
	[ "$bad" = 0 ] || fail "$bad reads of a replaced file gave old or wrong data"

	if [ "$FS" = ext4 ]; then
		step "an inode number reused behind the mount answers ESTALE/ENOENT, not the new file"
		ptfs_umount
		ptfs_mount -o entry_timeout=30,attr_timeout=30,fd_cache=16
		mkdir -p "$SRC/reuse"
		bad=0
		for i in $(seq 1 50); do
			echo "old$i" >"$SRC/reuse/f$i"
			cat "$M/reuse/f$i" >/dev/null
			ls -l "$M/tree/" "$M/ops" >/dev/null   # push f$i out of the fd cache
			rm "$SRC/reuse/f$i"
			echo "new$i" >"$SRC/reuse/g$i"
			cat "$M/reuse/g$i" >/dev/null
			got=$(cat "$M/reuse/f$i" 2>&1) && { bad=$((bad + 1)); echo "removed f$i read: $got"; }
		done
		[ "$bad" = 0 ] || fail "a removed file was still readable under its old name"
		echo "stale nodes seen: $(stat_of ptfs.stale)"
	fi

	step "data path (passthrough $pt)"
	dd if=/dev/urandom of="$SRC/big" bs=1M count=64 status=none
	r0=$(stat_of op.READ)
	cmp "$SRC/big" "$M/big" || fail "big file differs"
	r1=$(stat_of op.READ)
	echo "READ requests for 64 MiB: $((r1 - r0))"
	if [ "$pt" = 1 ] && [ $((r1 - r0)) -gt 16 ]; then
		fail "passthrough is on but $((r1 - r0)) READ requests reached the daemon"
	fi
	dd if=/dev/zero of="$M/wr" bs=1M count=32 conv=fsync status=none || fail "write"
	[ "$(stat -c %s "$SRC/wr")" = $((32 << 20)) ] || fail "written size"
	rm -f "$M/big" "$M/wr"

	step "allow_other: the caller's credentials"
	ptfs_umount
	ptfs_mount -o allow_other
	mkdir -p "$SRC/shared"
	chmod 1777 "$SRC/shared"
	if command -v setpriv >/dev/null; then
		setpriv --reuid=4321 --regid=4321 --clear-groups sh -c "
			echo x > '$M/shared/mine' && mkdir '$M/shared/mydir' &&
			ln -s t '$M/shared/mylink' && ! chown 0 '$M/shared/mine' 2>/dev/null &&
			! touch '$M/tree/not-mine' 2>/dev/null" || fail "operations as uid 4321"
		[ "$(stat -c %u:%g "$SRC/shared/mine")" = 4321:4321 ] || fail "file owner"
		[ "$(stat -c %u:%g "$SRC/shared/mydir")" = 4321:4321 ] || fail "dir owner"
		[ "$(stat -c %u "$SRC/shared/mylink")" = 4321 ] || fail "symlink owner"
	else
		echo "NOTE: no setpriv: credentials not checked"
	fi

	step "$FILES files, daemon open file limit 4096"
	ptfs_umount
	mkdir -p "$SRC/many"
	(cd "$SRC/many" && for d in $(seq 1 $(((FILES + 999) / 1000))); do
		mkdir "d$d" && (cd "d$d" && seq 1 1000 | xargs touch)
	done)
	(ulimit -n 4096; exec "$PTFS" -f "$SRC" "$M" 2>>"$T/daemon.log") &
	DPID=$!
	for _ in $(seq 100); do mountpoint -q "$M" && break; sleep 0.1; done
	mountpoint -q "$M" || fail "no mount"
	echo 3 >/proc/sys/vm/drop_caches
	want=$(find "$SRC/many" | wc -l)
	got=$(find "$M/many" | wc -l)
	[ "$got" = "$want" ] || fail "find lists $got entries of $want"
	n=$(find "$M/many" -type f -print0 | xargs -0 stat -c %i | sort -u | wc -l)
	[ "$n" -ge "$FILES" ] || fail "stat of all files: $n distinct inodes"
	echo "nodes $(stat_of nodes), fd_cached $(stat_of ptfs.fd_cached), errors $(stat_of errors)"
	grep -i "too many open files" "$T/daemon.log" && fail "EMFILE"
	ptfs_umount
}

for FS in ${PTFS_FS:-tmpfs ext4}; do
	case "$FS" in
	tmpfs)
		mount -t tmpfs -o size=2g ptfs-func "$T/back" || fail "tmpfs"
		;;
	ext4)
		if ! command -v mkfs.ext4 >/dev/null || ! command -v losetup >/dev/null; then
			echo "NOTE: no mkfs.ext4/losetup: ext4 not checked"
			continue
		fi
		truncate -s 2G "$T/ext4.img"
		mkfs.ext4 -q "$T/ext4.img" || fail "mkfs.ext4"
		LOOP=$(losetup -f --show "$T/ext4.img") || { echo "NOTE: no loop device"; continue; }
		mount "$LOOP" "$T/back" || fail "mount ext4"
		;;
	*) fail "unknown PTFS_FS $FS" ;;
	esac
	SRC=$T/back/src
	mkdir -p "$SRC"
	run_suite
	umount "$T/back" || umount -l "$T/back"
	if [ -n "$LOOP" ]; then losetup -d "$LOOP"; LOOP=; fi
	rm -f "$T/ext4.img"
done
echo "PASS"
exit 0
