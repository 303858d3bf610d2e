#!/bin/bash
# ptfs-perms: through fsp-ptfs (allow_other, as root) a caller switched to uid
# 65534 gets exactly what the backing file system gives it directly. Each
# case runs once in the backing directory and once through the mount, from a
# fresh setup, and the outcomes (errno, and the mode afterwards) must match.
# The cases are those where ptfs once decided differently: a write by a
# non-owner to a set-user-ID file (the kernel clears the bits; it did so with
# a chmod as the caller: EPERM), ftruncate through the descriptor that
# created a file with mode 0 (the open's permission, not the mode: EACCES),
# opening a directory with read but no search permission (ptfs reopened it
# through "." and needed search: EACCES), and their neighbours.
# It always tests fsp-ptfs: in memfs mode (the default run) over a tmpfs, as
# FSP_TEST_FS=ptfs; in ptfs-ext4 mode over ext4; skipped in tmpfs mode.
[ "${FSP_TEST_FS:-memfs}" = memfs ] && export FSP_TEST_FS=ptfs
. "$(dirname "$0")/../lib.sh"
need_fs ptfs,ptfs-ext4 "it compares fsp-ptfs's permission decisions with its backing directory's"
need_root "callers are switched to uid 65534, and the daemon runs as root"
need_cmd setpriv

cat >"$T/case.py" <<'PY'
import errno, os, stat, sys
base, case = sys.argv[1], sys.argv[2]
def mode(p):
    try:
        return oct(os.lstat(os.path.join(base, p)).st_mode & 0o7777)
    except OSError as e:
        return errno.errorcode[e.errno]
def run():
    p = lambda n: os.path.join(base, n)
    if case == "write-suid":          # non-owner, write permission
        fd = os.open(p("suid"), os.O_WRONLY); os.write(fd, b"x"); os.close(fd); return "suid"
    if case == "write-sgid-gx":       # set-group-ID with group exec: cleared too
        fd = os.open(p("sgid"), os.O_WRONLY); os.write(fd, b"x"); os.close(fd); return "sgid"
    if case == "truncate-suid":       # truncate(2) by path, non-owner
        os.truncate(p("suid"), 1); return "suid"
    if case == "otrunc-suid":
        os.close(os.open(p("suid"), os.O_WRONLY | os.O_TRUNC)); return "suid"
    if case == "chmod-suid-nonowner": # a real chmod by a non-owner stays refused
        os.chmod(p("suid"), 0o777); return "suid"
    if case == "create0-ftruncate":
        fd = os.open(p("new"), os.O_CREAT | os.O_RDWR, 0)
        os.ftruncate(fd, 10); os.write(fd, b"y"); os.close(fd); return "new"
    if case == "create0-reopen":      # the mode does count for a new open
        os.close(os.open(p("new"), os.O_CREAT | os.O_RDWR, 0))
        os.close(os.open(p("new"), os.O_RDWR)); return "new"
    if case == "ftruncate-rdonly":
        fd = os.open(p("mine"), os.O_RDONLY); os.ftruncate(fd, 0); return "mine"
    if case == "ftruncate-after-chmod0":  # open for writing, then mode 0
        fd = os.open(p("mine"), os.O_RDWR); os.chmod(p("mine"), 0)
        os.ftruncate(fd, 1); os.close(fd); return "mine"
    if case == "opendir-0600":        # read, no search: opendir and list work
        fd = os.open(p("d0600"), os.O_RDONLY | os.O_DIRECTORY); os.close(fd)
        return "d0600"
    if case == "listdir-0600":
        os.listdir(p("d0600")); return "d0600"
    if case == "stat-in-0600":        # ... but names inside need search
        os.stat(p("d0600/f")); return "d0600"
    if case == "listdir-0300":        # search, no read: no listing
        os.listdir(p("d0300")); return "d0300"
    if case == "open-in-0300":
        os.close(os.open(p("d0300/f"), os.O_RDONLY)); return "d0300"
    if case == "open-wronly-0200":
        os.close(os.open(p("w0200"), os.O_WRONLY)); return "w0200"
    if case == "open-rdonly-0200":
        os.close(os.open(p("w0200"), os.O_RDONLY)); return "w0200"
    raise SystemExit("unknown case " + case)
try:
    what = run()
    print("OK", mode(what))
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
PY

# setup DIR: the objects of every case, fresh (as root).
setup() {
	local d=$1
	find "$d" -mindepth 1 -delete
	chmod 0777 "$d"
	printf abc >"$d/suid"; chmod 4777 "$d/suid"
	printf abc >"$d/sgid"; chmod 2777 "$d/sgid"
	printf abc >"$d/mine"; chown 65534:65534 "$d/mine"; chmod 0644 "$d/mine"
	printf abc >"$d/w0200"; chown 65534:65534 "$d/w0200"; chmod 0200 "$d/w0200"
	mkdir "$d/d0600" "$d/d0300"
	: >"$d/d0600/f"
	: >"$d/d0300/f"; chmod 0666 "$d/d0300/f"
	chown 65534:65534 "$d/d0600" "$d/d0300"
	chmod 0600 "$d/d0600"; chmod 0300 "$d/d0300"
}
as_nobody() {
	setpriv --reuid 65534 --regid 65534 --clear-groups /usr/bin/python3 "$T/case.py" "$@"
}
CASES="write-suid write-sgid-gx truncate-suid otrunc-suid chmod-suid-nonowner
	create0-ftruncate create0-reopen ftruncate-rdonly ftruncate-after-chmod0
	opendir-0600 listdir-0600 stat-in-0600 listdir-0300 open-in-0300
	open-wronly-0200 open-rdonly-0200"

for opts in allow_other allow_other,passthrough=off; do
	step "-o $opts: as uid 65534, backing directory against the mount"
	M=$T/mnt.${opts//[,=]/-}
	fs_mount "$M" "$opts"
	chmod 0755 "$T"
	B=$(fs_backing "$M")
	for c in $CASES; do
		setup "$B"
		want=$(as_nobody "$B" "$c")
		setup "$B"
		sleep 0.05   # (entry and attribute timeouts: the kernel may cache)
		timeout 10 stat "$M" >/dev/null
		got=$(as_nobody "$M" "$c")
		echo "$c: backing '$want', mount '$got'"
		assert_eq "$got" "$want" "$c as uid 65534 through the mount ($opts)"
	done
	fs_umount "$M"
done

step "-o writeback_cache is refused with a message, not mounted wrong"
mkdir -p "$T/wsrc" "$T/wmnt"
rc=0
out=$(timeout 10 "$FSP_PTFS" -f -o writeback_cache "$T/wsrc" "$T/wmnt" 2>&1) || rc=$?
assert_eq "$rc" 2 "exit status of fsp-ptfs -o writeback_cache"
assert_match "$out" "writeback_cache is not supported" "its message"
! is_mounted "$T/wmnt" || fail "fsp-ptfs -o writeback_cache mounted"
