#!/bin/bash
# locks: flock, POSIX (fcntl) and OFD locks exclude other processes on files
# in the mount and go away when their holder does.
. "$(dirname "$0")/../lib.sh"
need_cmd flock

M=$T/mnt
fs_mount "$M"
: >"$M/lock"

step "flock"
flock "$M/lock" sleep 3 &
holder=$!
sleep 0.5
check_fails "flock -n while another process holds it" flock -n "$M/lock" true
flock -s -n "$M/lock" true && fail "shared flock while another holds it exclusively"
wait $holder
check "flock -n after the holder exited" flock -n "$M/lock" true
flock -s "$M/lock" sleep 2 &
holder=$!
sleep 0.5
check "a second shared flock" flock -s -n "$M/lock" true
check_fails "an exclusive flock while shared is held" flock -n "$M/lock" true
wait $holder

step "POSIX record locks"
python3 - "$M/lock" <<'PY'
import fcntl, os, sys, time, struct
p = sys.argv[1]
fd = os.open(p, os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX, 100, 0)       # bytes 0..99
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    fd2 = os.open(p, os.O_RDWR)
    res = []
    try:
        fcntl.lockf(fd2, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 50)
        res.append("overlap-locked")
    except OSError:
        res.append("overlap-refused")
    try:
        fcntl.lockf(fd2, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 200)
        res.append("disjoint-locked")
    except OSError:
        res.append("disjoint-refused")
    # F_GETLK names the holder
    flock = struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 1, 0)
    got = struct.unpack("hhqqi", fcntl.fcntl(fd2, fcntl.F_GETLK, flock))
    res.append("holder=%d" % got[4])
    # a blocking lock waits for the release
    t = time.time()
    os.write(w, (" ".join(res) + "\n").encode())
    fcntl.lockf(fd2, fcntl.LOCK_EX, 100, 0)
    os._exit(0 if time.time() - t > 0.5 else 3)
line = b""
while not line.endswith(b"\n"):
    line += os.read(r, 100)
want = "overlap-refused disjoint-locked holder=%d" % os.getpid()
assert line.decode().strip() == want, "child saw %r, expected %r" % (line, want)
time.sleep(1)
fcntl.lockf(fd, fcntl.LOCK_UN, 100, 0)
_, st = os.waitpid(pid, 0)
assert st == 0, "blocking lock in the child: status %d" % st
PY

step "OFD locks"
python3 - "$M/lock" <<'PY'
import fcntl, os, sys, struct
F_OFD_SETLK = 37
p = sys.argv[1]
a = os.open(p, os.O_RDWR)
b = os.open(p, os.O_RDWR)
lk = struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 0, 0)
fcntl.fcntl(a, F_OFD_SETLK, lk)
try:
    fcntl.fcntl(b, F_OFD_SETLK, lk)
    raise SystemExit("a second open file description got the same OFD lock")
except OSError:
    pass
os.close(a)
fcntl.fcntl(b, F_OFD_SETLK, lk)
PY
compare_backing "$M"
rm "$M/lock"
fs_umount "$M"
