#!/bin/bash
# sdnotify: run by systemd (Type=notify), the daemon says READY=1 on
# $NOTIFY_SOCKET once the mount is up and served, and STOPPING=1 when it
# ends; a path socket and an abstract one (@name) both work. The test
# listens itself (python3), as systemd would, and checks that the mount was
# there when READY=1 came. The template unit fsp-memfs@.service, as
# installed, passes `systemd-analyze verify` where systemd-analyze exists.
# timeout: 60
. "$(dirname "$0")/../lib.sh"
need_fs fuse "the daemon's readiness protocol"
need_cmd python3

# listen SOCKET OUT MNT: receive datagrams on SOCKET (a path, or @name) until
# STOPPING=1 or 30 s; write "mounted=0|1 MESSAGE" per datagram to OUT.
listen() {
	python3 - "$@" <<'PY' &
import os, socket, sys, time
addr, out, mnt = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + addr[1:] if addr.startswith("@") else addr)
open(out + ".ready", "w").close()
s.settimeout(30)
def mounted():
    with open("/proc/self/mountinfo") as f:
        return any(l.split()[4] == mnt for l in f)
with open(out, "w") as f:
    try:
        while True:
            msg = s.recv(4096).decode()
            f.write("mounted=%d %s\n" % (mounted(), msg.replace("\n", " ").strip()))
            f.flush()
            if "STOPPING=1" in msg:
                break
    except socket.timeout:
        f.write("timeout\n")
PY
	listener=$!
	wait_until 10 test -e "$2.ready" || fail "the listener on $1 did not start"
}

n=0
for sock in "$T/notify.sock" "@fsp-test-notify-$$"; do
	step "NOTIFY_SOCKET=$sock"
	M=$T/mnt
	out=$T/notify.$((++n)).out
	listen "$sock" "$out" "$(realpath -m "$M")"
	NOTIFY_SOCKET=$sock fs_mount "$M"
	wait_until 10 grep -q READY=1 "$out" || fail "no READY=1 on $sock: $(cat "$out")"
	fs_umount "$M"
	wait_dead "$listener" 10 || fail "no STOPPING=1 on $sock: $(cat "$out")"
	cat "$out"
	grep -q "^mounted=1 READY=1" "$out" || fail "READY=1 came before the mount was up: $(cat "$out")"
	grep -q "STATUS=serving $(realpath -m "$M")" "$out" || fail "no STATUS=serving line: $(cat "$out")"
	grep -q "STOPPING=1" "$out" || fail "no STOPPING=1 at the end: $(cat "$out")"
done

step "without NOTIFY_SOCKET, and with a socket nobody listens on: it just runs"
NOTIFY_SOCKET=$T/nobody.sock fs_mount "$T/mnt2"
fs_umount "$T/mnt2"

step "the unit file"
if command -v systemd-analyze >/dev/null 2>&1 && is_memfs_mode; then
	make -s -C "$ROOT" BUILD="$BUILD_DIR" DESTDIR="$T/root" PREFIX=/usr install >"$T/install.log" 2>&1 ||
		fail "make install failed: $(tail -n 5 "$T/install.log")"
	u=$T/root/usr/lib/systemd/system/fsp-memfs@.service
	grep -q '^Type=notify' "$u" || fail "the unit is not Type=notify"
	grep -q '^ExecStart=/usr/bin/fsp-memfs -f ' "$u" || fail "the unit does not run fsp-memfs -f: $(grep ExecStart "$u")"
	# verify an instance; ExecStart must name an existing program: point it at the build
	mkdir -p "$T/units"
	sed "s|/usr/bin/fsp-memfs|$BUILD_DIR/fsp-memfs|" "$u" >"$T/units/fsp-memfs@srv-x.service"
	out=$(systemd-analyze verify --man=no "$T/units/fsp-memfs@srv-x.service" 2>&1) ||
		fail "systemd-analyze verify: $out"
	[ -z "$out" ] || note "systemd-analyze verify says: $out"
	assert_eq "$(systemd-escape --path /srv/x)" srv-x "the instance name of /srv/x"
else
	note "no systemd-analyze here: the unit is not verified"
fi
echo "sdnotify: READY=1 and STOPPING=1 on path and abstract sockets"
