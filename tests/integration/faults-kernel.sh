#!/bin/bash
# faults-kernel: what the kernel side does to a busy fsp-memfs, with clients
# that write, fsync, close, read back and list files the whole time:
#   abort    the connection is aborted through /sys/fs/fuse/connections/N/abort
#            under load: every client sees an error within 1 s of the abort
#            (none hangs), the daemon exits by itself without crashing;
#   stop     the daemon is SIGSTOPped under load for 2 s, then SIGCONTed:
#            every client resumes, and every file a client had acknowledged
#            (written + fsync'd + closed) reads back intact, from the daemon
#            (page cache dropped), right before a clean unmount (exit 0);
#   lazy     umount -l while requests are in flight (queued to a stopped
#            daemon): once continued, those requests complete, the clients
#            (working relative to a directory inside the mount) finish, their
#            data reads back through the detached mount, and the daemon
#            exits 0 when the last of them is gone.
# abort.sh covers an abort with the daemon stopped and one client; faults.sh
# covers SIGTERM, fusermount3 -u -z and SIGKILL during a big cp -a.
# timeout: 150
. "$(dirname "$0")/../lib.sh"
need_memfs "it aborts, stops and lazily unmounts fsp-memfs under load"
need_root "aborting a connection through fusectl needs root"
need_fuse
need_cmd python3

if ! grep -q ' /sys/fs/fuse/connections .* - fusectl ' /proc/self/mountinfo; then
	[ -d /sys/fs/fuse/connections ] || modprobe fuse 2>/dev/null || true
	mount -t fusectl none /sys/fs/fuse/connections 2>/dev/null ||
		skip "fusectl is not mounted and cannot be mounted on /sys/fs/fuse/connections"
fi

# The client: loops over "create a file of a size derived from its name,
# write, fsync, close, log it as acknowledged", re-reads and checks an older
# file, lists the directory, renames and removes a few, until DIR/../stop
# exists or an error: then it logs "ERR <time> <errno name> <op>" and exits
# 1. A mismatch on read-back logs "CORRUPT name" and exits 3. With
# CLIENT_CHDIR=DIR it first moves into DIR (and works on "."), logs READY,
# and waits for the file CLIENT_GO to exist; CLIENT_PAUSE=S sleeps S seconds
# after each file.
cat >"$T/client.py" <<'EOF'
import errno, hashlib, os, sys, time
d, cid, log, stop = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
out = open(log, "a", buffering=1)
if os.environ.get("CLIENT_CHDIR"):
    os.chdir(os.environ["CLIENT_CHDIR"])
    out.write("READY\n")
    while not os.path.exists(os.environ["CLIENT_GO"]):
        time.sleep(0.01)
pause = float(os.environ.get("CLIENT_PAUSE", "0"))
def content(name):
    h = hashlib.sha256(name.encode()).digest()
    n = (h[0] * 256 + h[1]) * 3 % 150000
    return (h * (n // 32 + 1))[:n]
acked = []
k = 0
op = "start"
try:
    if d != ".":
        os.makedirs(d, exist_ok=True)
    while not os.path.exists(stop):
        name = "%s/c%s-%d" % (d, cid, k)
        data = content(os.path.basename(name))
        op = "create " + name
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        op = "write " + name
        off = 0
        while off < len(data):
            off += os.write(fd, data[off:off + 65536])
        op = "fsync " + name
        os.fsync(fd)
        op = "close " + name
        os.close(fd)
        acked.append(name)
        out.write("ACK %s\n" % os.path.basename(name))
        if k % 3 == 2:
            old = acked[(k * 7) % len(acked)]
            op = "read " + old
            with open(old, "rb") as f:
                if f.read() != content(os.path.basename(old)):
                    out.write("CORRUPT %s\n" % old)
                    sys.exit(3)
            op = "listdir " + d
            os.listdir(d)
        if k % 10 == 9:
            # a rename and an unlink: the renamed file stays acknowledged
            victim = acked.pop(0)
            op = "unlink " + victim
            os.unlink(victim)
            out.write("DEL %s\n" % os.path.basename(victim))
        k += 1
        if pause:
            time.sleep(pause)
    out.write("DONE %d\n" % k)
except OSError as e:
    out.write("ERR %.6f %s %s\n" % (time.time(), errno.errorcode.get(e.errno, e.errno), op))
    sys.exit(1)
EOF

NCLIENTS=4   # (the lazy step makes a directory for each of 4)
declare -a clients=()

# start_clients MNT TAG: NCLIENTS clients in MNT/TAG-N, logs T/TAG-N.log.
start_clients() {
	local i
	clients=()
	rm -f "$1/stop"
	for i in $(seq 1 $NCLIENTS); do
		: >"$T/$2-$i.log"
		python3 "$T/client.py" "$1/$2-$i" "$i" "$T/$2-$i.log" "$1/stop" &
		clients+=($!)
	done
}

# client_status PID: its exit status (it has exited).
client_status() {
	local rc=0
	wait "$1" 2>/dev/null || rc=$?
	echo $rc
}

# acked_count TAG: files acknowledged so far by the clients of TAG.
acked_count() {
	cat "$T/$1"-*.log | grep -c '^ACK ' || true
}

# within SECONDS CMD...: poll CMD until it succeeds, for at most SECONDS of
# wall time (however slow each poll is on a loaded machine); 1 on timeout.
within() {
	local end=$((${EPOCHREALTIME/./} + $1 * 1000000))
	shift
	until "$@"; do
		[ "${EPOCHREALTIME/./}" -lt "$end" ] || return 1
		sleep 0.05
	done
}

# gone PID: the process has exited.
gone() { ! pid_alive "$1"; }

# acked_at_least TAG N: N files or more acknowledged (for wait_until).
acked_at_least() {
	[ "$(acked_count "$1")" -ge "$2" ]
}

# waiting_at_least FILE N: the fusectl "waiting" count is N or more.
waiting_at_least() {
	[ "$(cat "$1")" -ge "$2" ]
}

# verify_acked MNT TAG: every acknowledged file that was not deleted reads
# back intact, with the page cache dropped so that the daemon answers.
verify_acked() {
	python3 - "$1" "$2" "$T" "$NCLIENTS" <<'EOF'
import hashlib, os, sys
m, tag, t, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def content(name):
    h = hashlib.sha256(name.encode()).digest()
    k = (h[0] * 256 + h[1]) * 3 % 150000
    return (h * (k // 32 + 1))[:k]
bad = checked = 0
for i in range(1, n + 1):
    live = []
    for line in open("%s/%s-%d.log" % (t, tag, i)):
        w = line.split()
        if w[0] == "ACK":
            live.append(w[1])
        elif w[0] == "DEL":
            live.remove(w[1])
    for name in live:
        p = "%s/%s-%d/%s" % (m, tag, i, name)
        fd = os.open(p, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        data = b""
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            data += b
        os.close(fd)
        checked += 1
        if data != content(name):
            bad += 1
            print("CORRUPT: %s: %d bytes, expected %d" % (p, len(data), len(content(name))))
print("verified %d acknowledged files, %d bad" % (checked, bad))
sys.exit(1 if bad else 0)
EOF
}

# --- abort under load --------------------------------------------------------
step "abort: the connection is aborted under load"
M=$T/mnt-abort
fs_mount "$M"
pid=$(fs_pid "$M")
start_clients "$M" abort
within 20 acked_at_least abort 20 || fail "abort: the clients made no progress"
abort_file=/sys/fs/fuse/connections/$(mount_devno "$M" | cut -d: -f2)/abort
[ -w "$abort_file" ] || fail "abort: no $abort_file for $M"
t_abort=$EPOCHREALTIME
echo 1 >"$abort_file"
echo "aborted at $t_abort (the write took $(python3 -c "print('%.3f' % ($EPOCHREALTIME - $t_abort))")s) with $(acked_count abort) files acknowledged"
for c in "${clients[@]}"; do
	within 5 gone "$c" || fail "abort: client $c still runs 5s after the abort (hangs)"
done
for i in $(seq 1 $NCLIENTS); do
	rc=$(client_status "${clients[$((i - 1))]}")
	err=$(grep '^ERR ' "$T/abort-$i.log" || true)
	[ -n "$err" ] || fail "abort: client $i ended ($(describe_status "$rc")) without an error: $(tail -n 2 "$T/abort-$i.log")"
	grep -q '^CORRUPT' "$T/abort-$i.log" && fail "abort: client $i read corrupt data before the abort"
	set -- $err
	delay=$(python3 -c "print('%.3f' % ($2 - $t_abort))")
	echo "client $i: $3 on '${*:4}' ${delay}s after the abort"
	case "$3" in
	ECONNABORTED | ENOTCONN) ;;
	*) fail "abort: client $i got $3, expected ECONNABORTED or ENOTCONN" ;;
	esac
	python3 -c "import sys; sys.exit(0 if $delay <= 1.0 else 1)" ||
		fail "abort: client $i saw its error only ${delay}s after the abort (more than 1 s)"
done
within 10 gone "$pid" || fail "abort: the daemon did not exit within 10s of the abort"
exit_status "$pid"; rc=$_fsp_status
echo "abort: the daemon ended with $(describe_status "$rc")"
[ "$rc" -lt 128 ] || fail "abort: the daemon crashed on the aborted connection: $(describe_status "$rc")"
grep -iE 'BUG|sanitizer|assert' "$(fs_log "$M")" && fail "abort: the daemon logged a bug (above)"
_fsp_pid[$(realpath "$M")]=""
if is_mounted "$M"; then
	umount -l "$M" || fail "abort: umount -l of the aborted mount failed"
fi
is_mounted "$M" && fail "abort: $M is still mounted"
_fsp_forget "$(realpath "$M")"

# --- SIGSTOP / SIGCONT under load, then data intact up to the unmount --------
step "stop: the daemon is stopped for 2 s under load"
M=$T/mnt-stop
fs_mount "$M"
pid=$(fs_pid "$M")
start_clients "$M" stop
within 20 acked_at_least stop 20 || fail "stop: the clients made no progress"
kill -STOP "$pid"
sleep 0.3
before=$(acked_count stop)
sleep 1.7
during=$(acked_count stop)
echo "stopped: $before acknowledged when stopped, $during after 2 s"
# a client may finish the request it had in hand; nothing more goes through
assert_le "$during" $((before + NCLIENTS)) "stop: files acknowledged while the daemon was stopped"
for c in "${clients[@]}"; do
	pid_alive "$c" || fail "stop: a client ended while the daemon was stopped: $(cat "$T"/stop-*.log | grep -v '^ACK\|^DEL' | head -n 3)"
done
kill -CONT "$pid"
within 20 acked_at_least stop $((during + 40)) ||
	fail "stop: the clients did not resume after SIGCONT ($(acked_count stop) acknowledged)"
touch "$M/stop"
for i in $(seq 1 $NCLIENTS); do
	c=${clients[$((i - 1))]}
	within 20 gone "$c" || fail "stop: client $i did not finish"
	rc=$(client_status "$c")
	[ "$rc" = 0 ] || fail "stop: client $i failed ($(describe_status "$rc")): $(grep -v '^ACK\|^DEL' "$T/stop-$i.log" | head -n 3)"
done
echo "stop: $(acked_count stop) files acknowledged in all"
step "stop: every acknowledged file reads back right before the unmount"
verify_acked "$M" stop || fail "stop: acknowledged data lost or corrupt (above)"
fs_umount "$M"

# --- umount -l with requests in flight ---------------------------------------
step "lazy: umount -l while requests are in flight"
M=$T/mnt-lazy
fs_mount "$M"
pid=$(fs_pid "$M")
# one directory per client: creates in different directories do not wait
# for each other's directory lock, so all of them reach the daemon
mkdir -p "$M"/w/d{1..4}
seq 1 20000 >"$M/held"
exec 3<"$M/held"
# the clients move into their directories while the daemon still answers
clients=()
mkdir -p "$T/lazy-ctl"
for i in $(seq 1 $NCLIENTS); do
	: >"$T/lazy-$i.log"
	CLIENT_CHDIR=$M/w/d$i CLIENT_GO=$T/lazy-ctl/go CLIENT_PAUSE=0.02 \
		python3 "$T/client.py" . "$i" "$T/lazy-$i.log" "$T/lazy-ctl/stop" &
	clients+=($!)
done
ready() { [ "$(cat "$T"/lazy-*.log | grep -c '^READY')" -eq $NCLIENTS ]; }
within 20 ready || fail "lazy: the clients did not start"
# ... and then block in their first requests: in flight at the unmount
kill -STOP "$pid"
touch "$T/lazy-ctl/go"
# the kernel counts the requests waiting for an answer
waiting=/sys/fs/fuse/connections/$(mount_devno "$M" | cut -d: -f2)/waiting
within 20 waiting_at_least "$waiting" $NCLIENTS ||
	fail "lazy: the clients' requests did not reach the stopped daemon ($(cat "$waiting") waiting)"
echo "lazy: $(cat "$waiting") requests in flight at the unmount"
umount -l "$M" || fail "lazy: umount -l failed"
is_mounted "$M" && fail "lazy: $M is still mounted after umount -l"
kill -CONT "$pid"
within 20 acked_at_least lazy 40 ||
	fail "lazy: the clients in flight at the unmount made no progress after it ($(acked_count lazy) acknowledged)"
touch "$T/lazy-ctl/stop"
for i in $(seq 1 $NCLIENTS); do
	c=${clients[$((i - 1))]}
	within 20 gone "$c" || fail "lazy: client $i did not finish"
	rc=$(client_status "$c")
	[ "$rc" = 0 ] || fail "lazy: client $i failed after the lazy unmount ($(describe_status "$rc")): $(grep -v '^ACK\|^DEL' "$T/lazy-$i.log" | head -n 3)"
done
assert_eq "$(head -n 2 <&3 | tr '\n' ' ')" "1 2 " "lazy: a file held open across the lazy unmount"
pid_alive "$pid" || fail "lazy: the daemon exited while a file was still open"
exec 3<&-
within 15 gone "$pid" || fail "lazy: the daemon did not exit within 15s of the last close"
exit_status "$pid"; rc=$_fsp_status
assert_eq "$rc" 0 "lazy: the daemon's exit status after the last user left ($(describe_status "$rc"))"
echo "lazy: $(acked_count lazy) files acknowledged through the detached mount; daemon exit 0"
_fsp_forget "$(realpath "$M")"
exit 0
