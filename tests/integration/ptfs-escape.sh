#!/bin/bash
# fs/ptfs/tests/escape.sh — fsp-ptfs must never reach outside SOURCE.
#
# Mounts build/fsp-ptfs (with -o allow_other, so the client's credentials are
# used) over a temporary SOURCE next to a directory OUTSIDE holding a secret,
# then tries to reach the secret through the mount: "..", relative, absolute
# and /proc/self/... symlinks made by the client and by the host, writes and
# metadata changes through them, and two races: the host swapping a
# directory of SOURCE with symlinks to OUTSIDE while a client works inside it,
# and a client doing the same through the mount.
#
# How a leak is seen: every client runs as nobody in a private mount
# namespace in which OUTSIDE is hidden under an empty tmpfs. The client can
# therefore never see the secret by itself (the kernel resolves symlinks on
# the client side); if any output shows it, the daemon followed a link out of
# SOURCE. Afterwards OUTSIDE must be byte-for-byte as it was (nothing made,
# changed or removed there through the daemon).
#
# Protocol (as tests/run.sh): exit 0 pass, 77 skip ("SKIP: why" last), other
# failure ("FAIL: why" first). Needs root, /dev/fuse, unshare, setpriv.
# Environment: BUILD_DIR (default <repo>/build), FSP_PTFS (the binary),
# ESCAPE_SECONDS (race duration, default 10; FSP_QUICK=1: 3).
# timeout: 180

set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
PTFS=${FSP_PTFS:-$BUILD_DIR/fsp-ptfs}
SECS=${ESCAPE_SECONDS:-10}
[ "${FSP_QUICK:-0}" = 1 ] && SECS=${ESCAPE_SECONDS:-3}
export LC_ALL=C PATH="$PATH:/usr/sbin:/sbin"

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 77; }
# It makes its own backing file systems whatever FSP_TEST_FS says: it runs
# in the memfs pass (the default) only, not again in the other modes.
case "${FSP_TEST_FS:-memfs}" in
memfs) ;;
*) skip "runs fsp-ptfs over its own backing file systems whatever the mode: part of the memfs run" ;;
esac
step() { echo "== $*"; }

[ "$(id -u)" = 0 ] || skip "needs root (allow_other, mount namespaces, setpriv)"
[ -c /dev/fuse ] || skip "no /dev/fuse"
for c in unshare setpriv timeout mountpoint; do
	command -v "$c" >/dev/null || skip "needs $c"
done
[ -x "$PTFS" ] || fail "$PTFS is missing: run make first"
unshare -m true 2>/dev/null || skip "cannot make a mount namespace here"

T=$(mktemp -d /tmp/ptfs-escape.XXXXXX) || fail "mktemp"
chmod 755 "$T"
SRC=$T/src
OUTSIDE=$T/outside
MNT=$T/m/mnt
SECRET="OUTSIDE-SECRET-$RANDOM$RANDOM$RANDOM"
DPID=
declare -a BG=()
export T SRC OUTSIDE MNT SECRET SECS

cleanup() {
	local p
	for p in "${BG[@]}"; do
		kill "$p" 2>/dev/null
	done
	wait "${BG[@]}" 2>/dev/null
	if mountpoint -q "$MNT" 2>/dev/null; then
		umount -l "$MNT" 2>/dev/null
	fi
	if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then
		sleep 0.5
		kill "$DPID" 2>/dev/null
	fi
	if ! mountpoint -q "$MNT" 2>/dev/null; then
		rm -rf --one-file-system "$T"
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# --- the layout ---------------------------------------------------------------
mkdir -p "$SRC/inside/sub" "$OUTSIDE/dir" "$T/m/mnt" "$T/out"
echo INSIDE >"$SRC/inside/secret"
echo INSIDE >"$SRC/inside/sub/secret"
echo "$SECRET" >"$OUTSIDE/secret"
echo "$SECRET" >"$OUTSIDE/dir/secret"
chmod 644 "$OUTSIDE/secret" "$OUTSIDE/dir/secret"
chmod 755 "$OUTSIDE" "$OUTSIDE/dir" "$T/m"
chmod 1777 "$SRC" "$SRC/inside" "$SRC/inside/sub"
chmod 666 "$SRC/inside/secret" "$SRC/inside/sub/secret"
# links made by the host, straight in SOURCE
ln -s ../outside/secret "$SRC/h-rel"
ln -s ../../../../../../../../..$OUTSIDE/secret "$SRC/h-reldeep"
ln -s "$OUTSIDE/secret" "$SRC/h-abs"
ln -s "$OUTSIDE" "$SRC/h-dir"
ln -s ../outside "$SRC/h-reldir"
ln -s "/proc/self/root$OUTSIDE/secret" "$SRC/h-proc"
ln -s /proc/self/fd/3/../outside/secret "$SRC/h-procfd"
ln -s h-chain2 "$SRC/h-chain1"
ln -s ../outside "$SRC/h-chain2"
mkdir -p "$SRC/race"
echo INSIDE >"$SRC/race/secret"
chmod 1777 "$SRC/race"
chmod 666 "$SRC/race/secret"
snapshot() {
	(cd "$OUTSIDE" && find . -printf '%p %y %m %U %G %s %T@ %C@\n' | sort &&
		find . -type f -exec md5sum {} + | sort)
}
snapshot >"$T/outside.before"

# --- mount --------------------------------------------------------------------
step "mount $PTFS -o allow_other $SRC $MNT"
"$PTFS" -f -o allow_other "$SRC" "$MNT" 2>"$T/daemon.log" &
DPID=$!
for _ in $(seq 100); do
	mountpoint -q "$MNT" && break
	kill -0 "$DPID" 2>/dev/null || break
	sleep 0.1
done
mountpoint -q "$MNT" || { cat "$T/daemon.log" >&2; fail "fsp-ptfs did not mount"; }
cat "$T/daemon.log"

# as_client SCRIPT: bash -c SCRIPT as nobody, in a mount namespace where
# OUTSIDE is an empty directory.
as_client() {
	timeout $((SECS + 60)) unshare -m --propagation private bash -c '
		mount -t tmpfs -o size=64k,mode=0755 ptfs-mask "$OUTSIDE" || exit 99
		exec setpriv --reuid=65534 --regid=65534 --clear-groups bash -c "$1"' bash "$1"
}

leaks=0
check_no_secret() {   # FILE WHAT
	if grep -q "$SECRET" "$1"; then
		echo "LEAK in $2:" >&2
		grep -n -B2 "$SECRET" "$1" | head -20 >&2
		leaks=$((leaks + 1))
	fi
}

# --- sanity: the mask works and the mount is usable by the client -------------
step "sanity"
out=$(as_client 'cat "$OUTSIDE/secret" 2>&1; cat "$MNT/inside/secret"; id -u') ||
	fail "client sanity run failed: $out"
echo "$out"
case "$out" in *"$SECRET"*) fail "the namespace mask does not hide OUTSIDE: test broken" ;; esac
case "$out" in *INSIDE*65534*) ;; *) fail "the client cannot read through the mount: $out" ;; esac

# --- one-shot attempts ---------------------------------------------------------
step "one-shot attempts"
as_client '
	try() { echo "-- $*"; "$@" 2>&1; echo "   -> status $?"; }
	cd "$MNT/inside" || exit 1
	try cat "$MNT/../outside/secret"
	try cat "$MNT/inside/../../outside/secret"
	try cat "$MNT/inside/sub/../../../outside/dir/secret"
	# links made by the client
	ln -s ../../outside/secret c-rel
	ln -s "../../../../../../../../..$OUTSIDE/secret" c-reldeep
	ln -s "$OUTSIDE/secret" c-abs
	ln -s "$OUTSIDE" c-dir
	ln -s ../../outside c-reldir
	ln -s "/proc/self/root$OUTSIDE/secret" c-proc
	ln -s /proc/self/cwd/../../outside/secret c-proccwd
	ln -s /proc/self/fd/3/../outside/secret c-procfd
	for l in c-rel c-reldeep c-abs c-proc c-proccwd c-procfd \
		 ../h-rel ../h-reldeep ../h-abs ../h-proc ../h-procfd; do
		try cat "$l"
		try head -c 100 "$l"
	done
	for d in c-dir c-reldir ../h-dir ../h-reldir ../h-chain1; do
		try ls -la "$d/"
		try cat "$d/secret" "$d/dir/secret"
		# writes and metadata through the links
		try sh -c "echo pwned > $d/pwned"
		try mkdir "$d/pwned-dir"
		try ln -s x "$d/pwned-link"
		try touch "$d/secret"
		try chmod 777 "$d/secret"
		try truncate -s 0 "$d/secret"
		try mv "$d/secret" "$d/moved"
		try rm -f "$d/secret"
		try ln "$d/secret" hard-from-outside
		command -v setfattr >/dev/null && try setfattr -n user.pwned -v 1 "$d/secret"
	done
	for l in c-abs c-rel ../h-abs ../h-rel; do
		try sh -c "echo pwned >> $l"
		try truncate -s 0 "$l"
		try chmod 777 "$l"
		try ln "$l" "hard-$(basename $l)"
		try cat "hard-$(basename $l)"
		command -v setfattr >/dev/null && try setfattr -h -n user.pwned -v 1 "$l"
	done
	try ln "$MNT/../outside/secret" hard-dotdot
	try mv "$MNT/inside/secret" "$MNT/../outside/moved"
	try cat "$MNT/inside/secret"
' >"$T/out/oneshot" 2>&1
cat "$T/out/oneshot" | head -400
check_no_secret "$T/out/oneshot" "one-shot attempts"
grep -q INSIDE "$T/out/oneshot" || fail "the one-shot client read nothing through the mount"

# --- races --------------------------------------------------------------------
# Python workers when there is a python3 (thousands of operations a second),
# else shell loops (fewer, but the same operations).
PY=
for p in /usr/bin/python3 python3; do
	command -v "$p" >/dev/null 2>&1 && { PY=$(command -v "$p"); break; }
done
export PY

# host: a directory of SOURCE becomes an absolute symlink to OUTSIDE, a
# relative one, a /proc one, then the directory again (atomic exchanges)
host_swapper_py='
import ctypes, os, sys
src, outside = os.environ["SRC"], os.environ["OUTSIDE"]
libc = ctypes.CDLL(None, use_errno=True)
race, tmp = (src + "/race").encode(), (src + "/race.x").encode()
targets = [outside, "../outside", "/proc/self/root" + outside]
i = 0
while True:
    t = targets[i % len(targets)]; i += 1
    try:
        os.symlink(t, tmp)
    except OSError:
        pass
    libc.renameat2(-100, race, -100, tmp, 2)   # RENAME_EXCHANGE: race is the link
    libc.renameat2(-100, race, -100, tmp, 2)   # and the directory again
    try:
        os.unlink(tmp)
    except OSError:
        pass
'
host_swapper_sh='
while :; do
	mv -T "$SRC/race" "$SRC/race.d" 2>/dev/null
	ln -s "$OUTSIDE" "$SRC/race" 2>/dev/null; rm -f "$SRC/race" 2>/dev/null
	ln -s ../outside "$SRC/race" 2>/dev/null; rm -f "$SRC/race" 2>/dev/null
	mv -T "$SRC/race.d" "$SRC/race" 2>/dev/null
done
'
# client: the same swap through the mount
client_swapper_py='
import os, time
mnt, outside, secs = os.environ["MNT"], os.environ["OUTSIDE"], float(os.environ["SECS"])
os.chdir(mnt + "/inside/cs")
end = time.time() + secs
targets = [outside, "../../../outside", "/proc/self/root" + outside]
i = 0
while time.time() < end:
    try:
        os.rename("d", "d.real")
        os.symlink(targets[i % 3], "d"); i += 1
        os.unlink("d")
        os.rename("d.real", "d")
    except OSError:
        pass
print("client swaps", i)
'
client_swapper_sh='
cd "$MNT/inside/cs" || exit 1
end=$((SECONDS + SECS)); i=0
while [ $SECONDS -lt $end ]; do
	mv -T d d.real 2>/dev/null
	ln -s "$OUTSIDE" d 2>/dev/null; rm -f d 2>/dev/null
	ln -s ../../../outside d 2>/dev/null; rm -f d 2>/dev/null
	mv -T d.real d 2>/dev/null; i=$((i + 1))
done
echo "client swaps $i"
'
# clients working in the swapped directories: everything they read or list
# goes to stdout
worker_py='
import os, sys, time
mnt, secs = os.environ["MNT"], float(os.environ["SECS"])
dirs = [mnt + "/race", mnt + "/inside/cs/d"]
pid, n, out = os.getpid(), 0, []
def q(f, *a, **k):
    try:
        return f(*a, **k)
    except OSError:
        return None
def rd(path, **k):
    fd = q(os.open, path, os.O_RDONLY, **k)
    if fd is not None:
        out.append(q(os.read, fd, 200) or b"")
        os.close(fd)
end = time.time() + secs
while time.time() < end:
    for d in dirs:
        rd(d + "/secret"); rd(d + "/dir/secret")
        names = q(os.listdir, d)
        if names:
            out.append(" ".join(names).encode())
        f = "%s/w.%d.%d" % (d, pid, n)
        fd = q(os.open, f, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        if fd is not None:
            os.write(fd, b"pwned"); os.close(fd); q(os.unlink, f)
        if q(os.mkdir, f) is None:
            q(os.rmdir, f)
        if q(os.symlink, "x", f) is None:
            q(os.unlink, f)
        q(os.utime, d + "/secret")
        q(os.chmod, d + "/secret", 0o666)
        q(os.truncate, d + "/pwned-trunc", 0)
        dfd = q(os.open, d, os.O_RDONLY | os.O_DIRECTORY)
        if dfd is not None:
            rd("secret", dir_fd=dfd); rd("../secret", dir_fd=dfd)
            os.close(dfd)
    n += 1
    if len(out) > 1000:
        sys.stdout.buffer.write(b"\n".join(out) + b"\n"); out = []
sys.stdout.buffer.write(b"\n".join(out) + b"\n")
print("iterations", n)
'
worker_sh='
end=$((SECONDS + SECS)); n=0
while [ $SECONDS -lt $end ]; do
	for dir in "$MNT/race" "$MNT/inside/cs/d"; do
		cat "$dir/secret" "$dir/dir/secret" 2>/dev/null
		ls "$dir/" 2>/dev/null
		f="$dir/w.$$.$n"
		echo pwned > "$f" 2>/dev/null && rm -f "$f" 2>/dev/null
		mkdir "$dir/d.$$.$n" 2>/dev/null && rmdir "$dir/d.$$.$n" 2>/dev/null
		ln -s x "$dir/l.$$.$n" 2>/dev/null && rm -f "$dir/l.$$.$n" 2>/dev/null
		touch "$dir/secret" 2>/dev/null
		chmod 666 "$dir/secret" 2>/dev/null
		(cd "$dir" 2>/dev/null && cat secret ../secret 2>/dev/null)
	done
	n=$((n + 1))
done
echo "iterations $n"
'
if [ -n "$PY" ]; then
	host_swapper() { exec "$PY" -c "$host_swapper_py"; }   # exec: $! is the swapper
	client_script() { printf '"$PY" -c %q' "$1"; }
	CSWAP=$client_swapper_py WORKER=$worker_py
else
	host_swapper() { exec bash -c "$host_swapper_sh"; }
	client_script() { printf '%s' "$1"; }
	CSWAP=$client_swapper_sh WORKER=$worker_sh
fi

step "races for $SECS s: swaps of $SRC/race (host) and inside/cs/d (client) with symlinks out, ${PY:+python }clients working in them"
mkdir -p "$SRC/inside/cs/d"
echo INSIDE >"$SRC/inside/cs/d/secret"
chmod 666 "$SRC/inside/cs/d/secret"
chown -R 65534:65534 "$SRC/inside/cs"
touch "$OUTSIDE/$SECRET.name"   # a name only OUTSIDE lists
snapshot >"$T/outside.before"
host_swapper &
BG+=($!)
as_client "$(client_script "$CSWAP")" >"$T/out/cswap" 2>&1 &
BG+=($!)
for i in 1 2 3; do
	as_client "$(client_script "$WORKER")" >"$T/out/race$i" 2>&1 &
	BG+=($!)
done
# a reader that keeps its directory open while the swaps happen
as_client '
	end=$((SECONDS + SECS))
	cd "$MNT/race" 2>/dev/null || exit 0
	while [ $SECONDS -lt $end ]; do cat secret ./secret 2>/dev/null; ls 2>/dev/null; done
' >"$T/out/race-cwd" 2>&1 &
BG+=($!)
sleep "$SECS"
sleep 2
kill "${BG[0]}" 2>/dev/null
wait "${BG[@]}" 2>/dev/null
BG=()
if [ -L "$SRC/race" ] || [ ! -e "$SRC/race" ]; then
	rm -f "$SRC/race"
	if [ -d "$SRC/race.x" ]; then mv -T "$SRC/race.x" "$SRC/race"; fi
	if [ -d "$SRC/race.d" ]; then mv -T "$SRC/race.d" "$SRC/race"; fi
fi
[ -d "$SRC/race" ] && [ ! -L "$SRC/race" ] || fail "the host swapper did not stop"
for f in "$T"/out/race* "$T/out/cswap"; do
	check_no_secret "$f" "$(basename "$f")"
done
inside=$(cat "$T"/out/race* | grep -c INSIDE || true)
echo "race: $(grep -h -e iterations -e swaps "$T"/out/race* "$T/out/cswap" | tr '\n' ' '); INSIDE read $inside times"
[ "$inside" -gt 0 ] || fail "the race clients never read the inside file: the race tested nothing"

# --- the end: OUTSIDE untouched, the daemon healthy ------------------------------
step "OUTSIDE unchanged, daemon healthy"
snapshot >"$T/outside.after"
if ! diff -u "$T/outside.before" "$T/outside.after"; then
	leaks=$((leaks + 1))
	echo "LEAK: OUTSIDE was changed through the mount" >&2
fi
ls "$MNT/inside" >/dev/null || fail "the mount stopped answering"
kill -0 "$DPID" 2>/dev/null || fail "fsp-ptfs died: $(cat "$T/daemon.log")"
umount "$MNT" || umount -l "$MNT"
for _ in $(seq 50); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
wait "$DPID"
st=$?
DPID=
grep -i "bug" "$T/daemon.log" && fail "fsp-ptfs logged a bug"
[ "$st" = 0 ] || fail "fsp-ptfs exited with status $st: $(cat "$T/daemon.log")"
[ "$leaks" = 0 ] || fail "$leaks escape(s) found (see above)"
echo "PASS: no escape"
exit 0
