#!/bin/bash
# ptfs-locks: fsp-ptfs's locks reach the backing file system. A process on the
# mount and a process on SOURCE directly see each other's fcntl record locks
# and flock locks, both ways; locks have POSIX semantics through the mount
# (one owner's opens share its locks, a close of any of them ends them, a
# forked child is another owner, F_GETLK names the holder); a blocked
# F_SETLKW or flock waits without stopping other requests, gets the lock when
# it is freed, and ends with EINTR when the caller gets a signal; locks go
# away on close and when the daemon dies.
# It always tests fsp-ptfs: in memfs mode (the default run) over a tmpfs, as
# FSP_TEST_FS=ptfs; in ptfs-ext4 mode over ext4; skipped in tmpfs mode.
[ "${FSP_TEST_FS:-memfs}" = memfs ] && export FSP_TEST_FS=ptfs
. "$(dirname "$0")/../lib.sh"
need_fs ptfs,ptfs-ext4 "it checks locks between fsp-ptfs's mount and its backing directory"
need_root "the backing file system is a fresh tmpfs or ext4 mount"

M=$T/mnt
fs_mount "$M"
B=$(fs_backing "$M")
echo "backing directory: $B ($(backing_fstype))"
printf '%4096s' x >"$M/f"
printf '%4096s' y >"$M/g"

# lk.py ACTION PATH [ARGS]: one lock operation, printed as OK, an errno name,
# or (getlk) "TYPE START LEN PID". hold-* take a lock, write "ready" to the
# file given and stay until killed (their exit closes the descriptor).
cat >"$T/lk.py" <<'PY'
import errno, fcntl, os, signal, struct, sys, time
act, path = sys.argv[1], sys.argv[2]
args = sys.argv[3:]
F_OFD_GETLK, F_OFD_SETLK = 36, 37
def flock_struct(typ, start, length, cmd=fcntl.F_SETLK):
    return struct.pack("hhqqi4x", typ, os.SEEK_SET, start, length, 0)
def lk(fd, cmd, typ, start, length):
    return fcntl.fcntl(fd, cmd, flock_struct(typ, start, length))
def ready():
    with open(args[-1], "w") as f:
        f.write("ready\n")
    while True:
        time.sleep(60)
class Interrupted(Exception):
    pass
def alarm(sig, frame):
    raise Interrupted()
def result(fn):
    try:
        fn()
        print("OK")
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)))
TYPES = {"r": fcntl.F_RDLCK, "w": fcntl.F_WRLCK, "u": fcntl.F_UNLCK}
fd = os.open(path, os.O_RDWR)
if act == "hold-fcntl":          # TYPE START LEN READY
    lk(fd, fcntl.F_SETLK, TYPES[args[0]], int(args[1]), int(args[2])); ready()
elif act == "hold-ofd":
    lk(fd, F_OFD_SETLK, TYPES[args[0]], int(args[1]), int(args[2])); ready()
elif act == "hold-flock":        # sh|ex READY
    fcntl.flock(fd, fcntl.LOCK_SH if args[0] == "sh" else fcntl.LOCK_EX); ready()
elif act == "setlk":             # TYPE START LEN
    result(lambda: lk(fd, fcntl.F_SETLK, TYPES[args[0]], int(args[1]), int(args[2])))
elif act == "ofd-setlk":
    result(lambda: lk(fd, F_OFD_SETLK, TYPES[args[0]], int(args[1]), int(args[2])))
elif act == "flock-nb":          # sh|ex
    result(lambda: fcntl.flock(fd, (fcntl.LOCK_SH if args[0] == "sh" else fcntl.LOCK_EX) |
                               fcntl.LOCK_NB))
elif act == "getlk":             # TYPE START LEN
    r = fcntl.fcntl(fd, fcntl.F_GETLK, flock_struct(TYPES[args[0]], int(args[1]), int(args[2])))
    t, w, s, l, p = struct.unpack("hhqqi4x", r)
    print({fcntl.F_RDLCK: "r", fcntl.F_WRLCK: "w", fcntl.F_UNLCK: "u"}[t], s, l, p)
elif act in ("wait-fcntl", "wait-flock"):  # [SECONDS-UNTIL-SIGALRM]: the time waited, then the result
    if args:
        signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, float(args[0]))
    t0 = time.monotonic()
    try:
        if act == "wait-fcntl":
            lk(fd, fcntl.F_SETLKW, fcntl.F_WRLCK, 0, 0)
        else:
            fcntl.flock(fd, fcntl.LOCK_EX)
        res = "OK"
    except Interrupted:
        res = "EINTR"   # the handler ran: the call came back with EINTR
    except OSError as e:
        res = errno.errorcode.get(e.errno, str(e.errno))
    print("%.2f %s" % (time.monotonic() - t0, res))
elif act == "same-owner":        # two opens of one process: one owner
    fd2 = os.open(path, os.O_RDWR)
    lk(fd, fcntl.F_SETLK, fcntl.F_WRLCK, 0, 100)
    lk(fd2, fcntl.F_SETLK, fcntl.F_WRLCK, 50, 100)   # no conflict with itself
    pid = os.fork()
    if pid == 0:                                      # another owner, same open
        try:
            lk(fd, fcntl.F_SETLK, fcntl.F_WRLCK, 0, 1)
            os._exit(1)
        except OSError as e:
            os._exit(0 if e.errno in (errno.EAGAIN, errno.EACCES) else 2)
    _, st = os.waitpid(pid, 0)
    print("child", "conflicts" if os.WEXITSTATUS(st) == 0 else "did-not-conflict")
    os.close(fd2)                                     # ends all locks of the owner
    sys.stdout.flush()
    with open(args[-1], "w") as f:
        f.write("ready\n")
    while True:
        time.sleep(60)
PY
lk() { python3 "$T/lk.py" "$@"; }

# hold NAME ACTION PATH ARGS...: start a holder; wait until it holds.
declare -A holder=()
hold() {
	local name=$1
	shift
	rm -f "$T/$name.ready"
	python3 "$T/lk.py" "$@" "$T/$name.ready" >"$T/$name.out" 2>&1 &
	holder[$name]=$!
	wait_until 10 test -s "$T/$name.ready" || {
		cat "$T/$name.out" >&2
		fail "holder $name ($*) did not take its lock"
	}
}
unhold() {
	kill "${holder[$1]}"
	wait_dead "${holder[$1]}" 5 || fail "holder $1 did not exit"
}

step "fcntl: a lock on SOURCE is seen through the mount"
hold src hold-fcntl "$B/f" w 0 10
assert_eq "$(lk setlk "$M/f" w 0 10)" EAGAIN "F_SETLK through the mount over a lock on SOURCE"
assert_eq "$(lk setlk "$M/f" r 5 1)" EAGAIN "read lock through the mount inside it"
assert_eq "$(lk setlk "$M/f" w 10 10)" OK "F_SETLK through the mount next to it"
assert_eq "$(lk getlk "$M/f" w 0 0)" "w 0 10 ${holder[src]}" "F_GETLK through the mount"
assert_eq "$(lk setlk "$M/g" w 0 10)" OK "another file is not locked"
unhold src
assert_eq "$(lk setlk "$M/f" w 0 10)" OK "F_SETLK after the SOURCE process ended"
hold src hold-ofd "$B/f" r 0 0
assert_eq "$(lk setlk "$M/f" r 0 10)" OK "shared read locks"
assert_eq "$(lk setlk "$M/f" w 100 1)" EAGAIN "a write lock against an OFD read lock on SOURCE"
unhold src

step "fcntl: a lock through the mount is seen on SOURCE"
hold mnt hold-fcntl "$M/f" w 100 50
assert_eq "$(lk setlk "$B/f" w 120 1)" EAGAIN "F_SETLK on SOURCE over a lock through the mount"
assert_eq "$(lk ofd-setlk "$B/f" r 149 10)" EAGAIN "F_OFD_SETLK on SOURCE"
assert_eq "$(lk setlk "$B/f" w 150 10)" OK "F_SETLK on SOURCE next to it"
assert_eq "$(lk getlk "$B/f" w 0 0)" "w 100 50 -1" "F_GETLK on SOURCE (an OFD lock: no pid)"
assert_eq "$(lk setlk "$M/f" w 0 200)" EAGAIN "another process through the mount"
assert_eq "$(lk getlk "$M/f" r 0 0)" "w 100 50 ${holder[mnt]}" "F_GETLK through the mount names the holder"
unhold mnt
assert_eq "$(lk setlk "$B/f" w 100 50)" OK "the lock went away with its process"

step "fcntl: POSIX semantics through the mount (owners, close)"
hold own same-owner "$M/f"
assert_eq "$(head -n 1 "$T/own.out")" "child conflicts" "a forked child is another owner"
# the close of the second descriptor ended the locks taken through the first
assert_eq "$(lk setlk "$B/f" w 0 200)" OK "close of one descriptor ends the owner's locks"
unhold own

step "flock: both ways, and released on close"
hold src hold-flock "$B/f" ex
assert_eq "$(lk flock-nb "$M/f" sh)" EAGAIN "flock through the mount over flock on SOURCE"
assert_eq "$(lk setlk "$M/f" w 0 0)" OK "flock and record locks are independent"
unhold src
assert_eq "$(lk flock-nb "$M/f" ex)" OK "flock after the SOURCE process ended"
hold mnt hold-flock "$M/f" sh
assert_eq "$(lk flock-nb "$B/f" ex)" EAGAIN "flock on SOURCE over a flock through the mount"
assert_eq "$(lk flock-nb "$B/f" sh)" OK "shared flock on SOURCE"
assert_eq "$(lk flock-nb "$M/f" ex)" EAGAIN "another open through the mount"
unhold mnt
# the release that ends the flock is sent after the close: give it a moment
wait_until 5 sh -c "[ \"\$(python3 '$T/lk.py' flock-nb '$B/f' ex)\" = OK ]" ||
	fail "the flock through the mount did not go away with its process"

step "F_SETLKW waits, other requests go on, the lock comes when freed"
hold src hold-fcntl "$B/f" w 0 0
lk wait-fcntl "$M/f" >"$T/w1.out" 2>&1 &
w1=$!
lk wait-flock "$M/g" >"$T/w2.out" 2>&1 &   # nobody holds g: a flock at once
sleep 0.5
pid_alive "$w1" || fail "F_SETLKW did not wait: $(cat "$T/w1.out")"
for i in 1 2 3 4 5 6; do
	timeout 5 stat "$M/g" >/dev/null || fail "stat while an F_SETLKW waits"
	echo "$i" >"$M/other.$i"
	assert_eq "$(timeout 5 cat "$M/other.$i")" "$i" "a write and a read while an F_SETLKW waits"
done
timeout 5 ls "$M" >/dev/null || fail "ls while an F_SETLKW waits"
unhold src
wait_dead "$w1" 5 || fail "F_SETLKW did not get the lock within 5 s of its release"
assert_match "$(cat "$T/w1.out")" " OK$" "F_SETLKW after the release"
assert_match "$(cat "$T/w2.out")" " OK$" "a blocking flock of a free file"

step "F_SETLKW and flock interrupted by a signal end with EINTR"
hold src hold-fcntl "$B/f" w 0 0
out=$(timeout 10 python3 "$T/lk.py" wait-fcntl "$M/f" 0.5) || fail "F_SETLKW with a signal: $out"
assert_match "$out" "EINTR$" "F_SETLKW interrupted by SIGALRM"
t=${out%% *}
[ "${t%.*}" -lt 3 ] || fail "F_SETLKW came back $t s after the signal (expected at once)"
unhold src
hold src hold-flock "$B/f" ex
out=$(timeout 10 python3 "$T/lk.py" wait-flock "$M/f" 0.5) || fail "flock with a signal: $out"
assert_match "$out" "EINTR$" "a blocking flock interrupted by SIGALRM"
unhold src
# a waiter killed outright: the daemon gives up its wait too
hold src hold-fcntl "$B/f" w 0 0
lk wait-fcntl "$M/f" >/dev/null 2>&1 &
w3=$!
sleep 0.3
kill -KILL "$w3"
wait_dead "$w3" 5 || fail "a process killed in F_SETLKW did not die"
unhold src
assert_eq "$(lk setlk "$B/f" w 0 0)" OK "no lock left behind by the killed waiter"
inflight() { "$BUILD_DIR/fspctl" stats "$M" | awk '$1 == "inflight" { print $2 }'; }
no_inflight() { [ "$(inflight)" = 0 ]; }
wait_until 5 no_inflight ||
	fail "$(inflight) requests still in flight once every waiter is gone"

compare_backing "$M"
fs_umount "$M"

step "locks go away when the daemon dies"
fs_mount "$M"
B=$(fs_backing "$M")
echo data >"$M/h"
hold mnt hold-fcntl "$M/h" w 0 0
assert_eq "$(lk setlk "$B/h" w 0 0)" EAGAIN "the lock through the mount, seen on SOURCE"
kill -KILL "$(fs_pid "$M")"
wait_dead "$(fs_pid "$M")" 5 || fail "the daemon did not die"
assert_eq "$(lk setlk "$B/h" w 0 0)" OK "lock on SOURCE once the daemon is dead"
kill -KILL "${holder[mnt]}" 2>/dev/null || true

step "an aborted connection ends a waiting F_SETLKW, and the daemon exits"
M=$T/mnt2
fs_mount "$M"
B=$(fs_backing "$M")
echo data >"$M/h"
hold src hold-fcntl "$B/h" w 0 0
lk wait-fcntl "$M/h" >/dev/null 2>&1 &
sleep 0.3
pid=$(fs_pid "$M")
fs_abort "$M"
wait_dead "$pid" 10 || fail "the daemon did not exit within 10 s of the abort while an F_SETLKW waited"
unhold src
