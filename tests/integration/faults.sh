#!/bin/bash
# faults: the daemon is stopped, detached or killed in the middle of a big
# cp -a into fsp-memfs.
#   sigterm  SIGTERM to the daemon: it exits 0 promptly, the mount is gone,
#            the copy ends (with errors: expected) instead of hanging;
#   lazy     fusermount3 -u -z: the mount leaves the name space at once, the
#            daemon goes on serving what is still open and exits 0 when the
#            last user goes (the copy, and a file this test holds open);
#   sigkill  SIGKILL: the copy and new clients get ENOTCONN, nothing hangs,
#            and fusermount3 -u removes the dead mount.
# sigterm and lazy run again on the ASan+UBSan build (build-asan/, made when
# missing or out of date): no sanitizer report and no leak at exit.
# FSP_FAULTS_SRC=DIR copies DIR instead of the largest of /usr/share, /usr/lib,
# /usr/include.
# timeout: 360
. "$(dirname "$0")/../lib.sh"
need_memfs "it stops, detaches and kills fsp-memfs's daemon"
need_fuse

ASAN_DIR=${FSP_ASAN_DIR:-$ROOT/build-asan}
# the copy must still run when the fault comes: a tree of tens of thousands
# of entries, the fault after the first PROGRESS of them
PROGRESS=1500
SRC=${FSP_FAULTS_SRC:-}
if [ -z "$SRC" ]; then
	for d in /usr/share /usr/lib /usr/include; do
		[ -d "$d" ] && [ "$(find "$d" | head -n 20000 | wc -l)" -ge 20000 ] && { SRC=$d; break; }
	done
	[ -n "$SRC" ] || skip "no tree of 20,000 entries to copy (/usr/share, /usr/lib, /usr/include)"
fi
echo "copying $SRC ($(find "$SRC" | wc -l) entries, $(du -sm "$SRC" 2>/dev/null | cut -f1) MB)"

# reap PID: wait for a child in this shell and set $status (a command
# substitution cannot wait for a zombie this shell has not reaped yet).
reap() {
	status=0
	wait "$1" 2>/dev/null || status=$?
}

# start_copy MOUNT: cp -a $SRC MOUNT/copy in the background (pid in $cp,
# errors in $T/cp.err), then wait until it has made PROGRESS entries.
start_copy() {
	local dst=$1/copy n=0
	timeout -k 5 120 cp -a "$SRC" "$dst" 2>"$T/cp.err" &
	cp=$!
	if ! wait_until 60 eval '[ "$(find "$dst" 2>/dev/null | head -n $PROGRESS | wc -l)" -ge $PROGRESS ]'; then
		n=$(find "$dst" 2>/dev/null | wc -l)
		fail "cp -a made only $n entries in 60s"
	fi
	pid_alive "$cp" || fail "cp -a of $SRC finished before the fault (the tree is too small)"
	echo "cp -a is under way: $(find "$dst" | wc -l) entries so far"
}

# end_copy WHAT: the copy must end (not hang) within 30s of WHAT; prints how.
end_copy() {
	wait_dead "$cp" 30 || fail "cp -a still runs 30s after $1 (hung: $(cat /proc/"$cp"/wchan 2>/dev/null))"
	reap "$cp"
	[ $status -ne 124 ] && [ $status -ne 137 ] || fail "cp -a hung after $1 (killed by timeout)"
	echo "cp -a ended with status $status after $1; $(wc -l <"$T/cp.err") error lines, e.g.:"
	head -n 3 "$T/cp.err" | sed 's/^/  cp| /'
}

# daemon_exit LABEL PREFIX: the daemon must exit within 15s with status 0,
# and (when PREFIX names sanitizer logs) without a report.
daemon_exit() {
	local label=$1 prefix=$2 f found=0
	wait_dead "$pid" 15 || fail "$label: the daemon still runs 15s later (hung)"
	reap "$pid"
	if [ -n "$prefix" ]; then
		for f in "$prefix".*; do
			[ -s "$f" ] || continue
			found=1
			echo "--- $f:" >&2
			head -n 80 "$f" >&2
		done
		if grep -qE 'Sanitizer|runtime error:' "$(fs_log "$M")"; then
			found=1
			grep -E -A 40 'Sanitizer|runtime error:' "$(fs_log "$M")" | head -n 80 >&2
		fi
		[ $found -eq 0 ] || fail "$label: sanitizer report (above); the daemon ended with $(describe_status $status)"
	fi
	if [ $status -ne 0 ]; then
		tail -n 20 "$(fs_log "$M")" | sed 's/^/  daemon| /' >&2
		fail "$label: the daemon ended with $(describe_status $status), not 0"
	fi
}

# mount_under VARIANT LABEL: fs_mount $T/LABEL with the release or ASan
# daemon; sets M, pid and prefix (the sanitizer log prefix, or empty).
mount_under() {
	M=$T/$2
	prefix=
	if [ "$1" = asan ]; then
		prefix=$T/$2.san
		FSP_MEMFS=$ASAN_DIR/fsp-memfs \
		FS_WRAPPER="env ASAN_OPTIONS=halt_on_error=1:exitcode=66:detect_leaks=1:log_path=$prefix UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=67:log_path=$prefix" \
			fs_mount "$M"
	else
		fs_mount "$M"
	fi
	pid=$(fs_pid "$M")
}

# --- the faults --------------------------------------------------------------

fault_sigterm() {
	local label="sigterm ($1)"
	step "$label"
	mount_under "$1" "sigterm-$1"
	start_copy "$M"
	kill -TERM "$pid"
	daemon_exit "$label" "$prefix"
	is_mounted "$M" && fail "$label: $M is still mounted after the daemon exited"
	_fsp_forget "$(realpath "$M")"
	end_copy "SIGTERM"
	echo "$label: daemon exit status 0, mount gone, cp -a ended"
}

fault_lazy() {
	local label="lazy unmount ($1)"
	step "$label"
	mount_under "$1" "lazy-$1"
	seq 1 1000 >"$M/held"
	exec 3<"$M/held"
	start_copy "$M"
	fusermount3 -u -z -- "$M" || fail "$label: fusermount3 -u -z $M failed"
	is_mounted "$M" && fail "$label: $M is still mounted after fusermount3 -u -z"
	end_copy "fusermount3 -u -z"
	# the copy is gone, the held file is not: the daemon must still serve it
	pid_alive "$pid" || fail "$label: the daemon exited while a file was still open"
	assert_eq "$(head -n 3 <&3 | tr '\n' ' ')" "1 2 3 " "$label: reading the held file after the lazy unmount"
	exec 3<&-
	daemon_exit "$label" "$prefix"
	_fsp_forget "$(realpath "$M")"
	echo "$label: served the open file, then exit status 0 at the last close"
}

# notconn DESC CMD...: CMD fails with ENOTCONN within 5s.
notconn() {
	local desc=$1 rc=0
	shift
	timeout 5 "$@" >"$T/nc.out" 2>&1 || rc=$?
	[ $rc -ne 124 ] || fail "sigkill: $desc hangs on the mount of a killed daemon"
	[ $rc -ne 0 ] || fail "sigkill: $desc succeeded on the mount of a killed daemon"
	grep -q 'Transport endpoint is not connected' "$T/nc.out" ||
		fail "sigkill: $desc did not fail with ENOTCONN: $(head -n 2 "$T/nc.out")"
}

fault_sigkill() {
	local out
	step "sigkill"
	mount_under release sigkill
	start_copy "$M"
	kill -KILL "$pid"
	wait_dead "$pid" 5 || fail "sigkill: the daemon survived SIGKILL for 5s"
	reap "$pid"
	assert_eq "$status" 137 "sigkill: the daemon's status"
	end_copy "SIGKILL"
	grep -q 'Transport endpoint is not connected' "$T/cp.err" ||
		fail "sigkill: cp -a did not report ENOTCONN: $(head -n 3 "$T/cp.err")"
	# new names and opens must reach the (dead) daemon: no cache answers them
	notconn "stat of a new name" stat "$M/copy/no-such-name"
	notconn "ls of the copy" ls "$M/copy"
	notconn "creating a file" touch "$M/new-file"
	is_mounted "$M" || fail "sigkill: the mount vanished by itself (expected a dead mount to unmount)"
	out=$(timeout 10 fusermount3 -u -- "$M" 2>&1) || fail "sigkill: fusermount3 -u of the dead mount failed: $out"
	is_mounted "$M" && fail "sigkill: $M is still mounted after fusermount3 -u"
	_fsp_forget "$(realpath "$M")"
	echo "sigkill: clients got ENOTCONN, cp -a ended, the dead mount unmounted"
}

fault_sigterm release
fault_lazy release
fault_sigkill

# make is a no-op when build-asan is current
if [ "$ASAN_DIR" = "$ROOT/build-asan" ]; then
	step "make asan"
	make -C "$ROOT" -j"$(nproc)" asan >"$T/make-asan.log" 2>&1 || {
		tail -n 30 "$T/make-asan.log" >&2
		fail "make asan failed (above)"
	}
fi
[ -x "$ASAN_DIR/fsp-memfs" ] || fail "$ASAN_DIR/fsp-memfs is missing"
fault_sigterm asan
fault_lazy asan
