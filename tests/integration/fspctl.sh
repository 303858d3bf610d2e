#!/bin/bash
# fspctl: the launcher's view of the machine's fsp mounts.
#  - `fspctl list` (and --json) shows each of two mounts with its file
#    system, daemon pid, uptime, transport and counters;
#  - `fspctl stats MNT` (and --json, and one KEY) answers pid and transport;
#  - `fspctl stop MNT` fails honestly on a busy mount and leaves it mounted,
#    unmounts and waits for the daemon once it is free, reports a daemon that
#    does not exit within --timeout, and with --force detaches a busy mount
#    and ends its daemon. A path that is no fsp mount fails with status 1.
# timeout: 120
. "$(dirname "$0")/../lib.sh"
need_fs fuse "fspctl talks to fsp daemons"
need_cmd python3
F=$BUILD_DIR/fspctl
[ -x "$F" ] || fail "fspctl is not built: $F"
want_transport=dev
[ "${FSP_TEST_TRANSPORT:-dev}" = dev ] || want_transport=io_uring

fs_mount "$T/a"
fs_mount "$T/b"
A=$(realpath "$T/a") B=$(realpath "$T/b")
pa=$(fs_pid "$A") pb=$(fs_pid "$B")
touch "$A/x" "$B/y"

step "fspctl list"
"$F" list >"$T/list" || fail "fspctl list failed"
cat "$T/list"
head -n 1 "$T/list" | grep "MOUNTPOINT" >/dev/null || fail "fspctl list has no header"
for m in "$A" "$B"; do
	row=$(awk -v m="$m" '$NF == m' "$T/list")
	[ -n "$row" ] || fail "fspctl list does not show $m"
	read -r fs pid up tr nodes handles reqs mp <<<"$row"
	assert_eq "$fs" "$(fs_daemon)" "the file system of $m in fspctl list"
	assert_eq "$pid" "$("$F" stats "$m" pid)" "the pid of $m in fspctl list"
	assert_eq "$tr" "$want_transport" "the transport of $m"
	assert_match "$up" '^[0-9]+[smhd]' "the uptime of $m"
	assert_ge "$nodes" 1 "nodes of $m"
	assert_ge "$reqs" 1 "requests of $m"
	kill -0 "$pid" || fail "pid $pid of $m in fspctl list is not a process"
done

step "fspctl list --json"
"$F" list --json >"$T/list.json" || fail "fspctl list --json failed"
python3 - "$T/list.json" "$A" "$B" "$want_transport" <<'PY' || fail "fspctl list --json is wrong (above)"
import json, os, sys
mounts = json.load(open(sys.argv[1]))
assert isinstance(mounts, list), "not a list"
by = {m["mountpoint"]: m for m in mounts}
for mp in sys.argv[2:4]:
    m = by.get(mp)
    assert m, "%s missing from %s" % (mp, list(by))
    assert m["answers"] is True, m
    for k in ("pid", "started", "uptime", "nodes", "handles", "inflight", "requests"):
        assert isinstance(m[k], int), "%s: %s is not a number: %r" % (mp, k, m[k])
    assert m["transport"] == sys.argv[4], m
    assert m["uptime"] >= 0 and m["nodes"] >= 1, m
    assert os.path.exists("/proc/%d" % m["pid"]), m
print("list --json:", len(mounts), "mounts, both of ours there")
PY

step "fspctl stats --json, stats KEY"
"$F" stats --json "$A" >"$T/stats.json" || fail "fspctl stats --json failed"
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert isinstance(d["requests"], int) and isinstance(d["pid"], int), d
assert d["transport"] in ("dev", "io_uring") and d["mountpoint"] == sys.argv[2], d
print("stats --json:", len(d), "keys")' "$T/stats.json" "$A" || fail "fspctl stats --json is wrong"
assert_eq "$("$F" stats "$A" transport)" "$want_transport" "fspctl stats MNT transport"
assert_eq "$("$F" stats "$A" mountpoint)" "$A" "fspctl stats MNT mountpoint"

step "fspctl stop: not an fsp mount"
rc=0; "$F" stop "$T" 2>"$T/err" || rc=$?
assert_eq "$rc" 1 "fspctl stop on a plain directory ($(cat "$T/err"))"

step "fspctl stop: busy, then free"
exec {fd}<"$A/x"
rc=0; "$F" stop "$A" 2>"$T/err" || rc=$?
cat "$T/err"
if is_root; then
	assert_eq "$rc" 1 "fspctl stop on a mount with an open file"
	grep -q busy "$T/err" || fail "fspctl stop on a busy mount does not say busy"
	is_mounted "$A" || fail "fspctl stop unmounted a busy mount without --force"
fi
exec {fd}<&-
if is_mounted "$A"; then
	out=$("$F" stop "$A") || fail "fspctl stop $A failed: $out"
	echo "$out"
fi
is_mounted "$A" && fail "$A is still mounted after fspctl stop"
pid_alive "$pa" && fail "the daemon of $A (pid $pa) still runs after fspctl stop returned"
fs_umount "$A"   # the daemon's exit status: 0

step "fspctl stop --force --timeout: a daemon that does not exit in time is reported"
# slowfs (tests/helpers) holds a stuck-* lookup while the gate file exists,
# even when the session ends: the lookup keeps the mount busy, and the
# daemon cannot end before it returns
if is_root && ! is_ptfs_mode; then
	touch "$T/gate"
	FSP_MEMFS=$BUILD_DIR/test/slowfs fs_mount "$T/c" "gate=$T/gate"
	C=$(realpath "$T/c") pc=$(fs_pid "$T/c")
	stat -- "$C/stuck-1" >/dev/null 2>&1 &   # a callback that ignores the stop
	blocker=$!
	wait_until 10 grep -q "blocked 1" "$C/stats" || fail "the lookup did not reach slowfs"
	rc=0; "$F" stop "$C" 2>"$T/err" || rc=$?
	cat "$T/err"
	assert_eq "$rc" 1 "fspctl stop of a mount with a lookup in progress"
	rc=0; "$F" stop --force --timeout 1 "$C" 2>"$T/err" || rc=$?
	cat "$T/err"
	assert_eq "$rc" 1 "fspctl stop --force --timeout 1 while the daemon's callback blocks"
	grep -q "still running" "$T/err" || fail "fspctl stop does not say the daemon still runs"
	pid_alive "$pc" || fail "the daemon of $C is gone although its callback blocks"
	rm -f "$T/gate"
	wait_dead "$pc" 10 || fail "the daemon of $C did not exit once its callback returned"
	kill "$blocker" 2>/dev/null || true
	fs_umount "$C"
fi

step "fspctl stop --force on a busy mount"
(cd "$B" && exec sleep 60) &
holder=$!
wait_until 5 test -e "/proc/$holder/cwd"
rc=0; "$F" stop "$B" 2>"$T/err" || rc=$?
if [ $rc = 0 ]; then
	note "a working directory does not make $B busy here (not root: fusermount3)"
else
	out=$("$F" stop --force "$B" 2>&1) || fail "fspctl stop --force failed: $out"
	echo "$out"
fi
is_mounted "$B" && fail "$B is still mounted after fspctl stop --force"
kill "$holder" 2>/dev/null || true
fs_umount "$B" any
echo "fspctl: list, stats and stop on $(fs_label)"
