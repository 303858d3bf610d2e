#!/bin/bash
# engine: no request waits behind a slow one, on each transport the kernel
# offers. A test file system (tests/helpers/slowfs.c) blocks block-* lookups
# until a gate file goes; while up to threads-1 of them block, other
# lookups are answered at once; an interrupted slow lookup returns EINTR to
# its caller and no later request sees the interrupt; no signal reaches a
# callback (slowfs counts sleeps ended by EINTR). With root, FUSE over
# io_uring too: enable_uring is set to Y for the mount and put back.
# timeout: 240
. "$(dirname "$0")/../lib.sh"
need_memfs "it serves its own test file system, whatever the mode"
# it picks each transport itself (fs_mount would add io_uring=on otherwise)
FSP_TEST_TRANSPORT=dev

SLOWFS=$BUILD_DIR/test/slowfs
SIGSTAT=$BUILD_DIR/test/sigstat
[ -x "$SLOWFS" ] && [ -x "$SIGSTAT" ] || fail "$SLOWFS or $SIGSTAT is not built"
M=$T/mnt
GATE=$T/gate
URING=/sys/module/fuse/parameters/enable_uring
uring_old=
restore_uring() {
	[ -z "$uring_old" ] || echo "$uring_old" >"$URING" 2>/dev/null || true
	uring_old=
}
trap 'rc=$?; restore_uring; _fsp_exit $rc' EXIT

stat_of() {   # stat_of NAME: the counter NAME of slowfs
	awk -v k="$1" '$1 == k { print $2 }' "$M/stats"
}

# quick NAME: a lookup that must be answered (ENOENT) within 5 s
quick() {
	local rc=0
	timeout 5 stat -- "$M/$1" >/dev/null 2>&1 || rc=$?
	[ $rc -ne 124 ] || fail "$transport: lookup of $1 was not answered within 5s while $(stat_of blocked) callbacks block"
	[ $rc -eq 1 ] || fail "$transport: lookup of $1 ended with status $rc, expected ENOENT"
}

run() {   # run TRANSPORT THREADS
	transport=$1
	# threads-2 block at first: one worker is left to read the INTERRUPT
	local threads=$2 blockers=$(($2 - 2)) i
	touch "$GATE"
	FSP_MEMFS=$SLOWFS fs_mount "$M" "gate=$GATE,threads=$threads,io_uring=$transport"
	restore_uring
	grep -q "over $([ "$transport" = on ] && echo io_uring || echo /dev/fuse)" "$(fs_log "$M")" ||
		fail "$transport: the startup line does not name the transport: $(head -n 3 "$(fs_log "$M")")"

	step "$transport: $blockers blocked callbacks, threads=$threads: other requests are answered"
	for i in $(seq 1 "$blockers"); do
		stat -- "$M/block-$i" >/dev/null 2>&1 &
	done
	wait_until 20 eval '[ "$(stat_of blocked)" = "$blockers" ]' ||
		fail "$transport: only $(stat_of blocked) of $blockers lookups reached the file system"
	for i in $(seq 1 20); do
		quick "check-$i"
	done
	# callers in parallel while the others block
	local pids=()
	for i in $(seq 1 4); do
		(for j in $(seq 1 10); do quick "check-p$i-$j"; done) &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || fail "$transport: a parallel caller failed"; done

	step "$transport: an interrupted slow request ends with EINTR, the next ones are not marked"
	local before got
	before=$(stat_of interrupted)
	got=$(timeout 20 "$SIGSTAT" "$M/block-intr" 300) || fail "$transport: the interrupted lookup did not end within 20s"
	assert_eq "$got" EINTR "$transport: result of the interrupted lookup"
	assert_eq "$(stat_of interrupted)" $((before + 1)) "$transport: slowfs saw the interrupt"
	for i in $(seq 1 10); do quick "check-after-$i"; done
	assert_eq "$(stat_of marked)" 0 "$transport: requests wrongly marked interrupted"

	step "$transport: threads-1 callbacks blocked: the last worker still answers"
	stat -- "$M/block-last" >/dev/null 2>&1 &
	wait_until 20 eval '[ "$(stat_of blocked)" = $((blockers + 1)) ]' ||
		fail "$transport: the last blocking lookup did not reach the file system"
	for i in $(seq 1 10); do quick "check-last-$i"; done

	step "$transport: the gate opens, every blocked lookup ends, no callback saw a signal"
	rm -f "$GATE"
	wait_until 20 eval '[ "$(stat_of blocked)" = 0 ]' || fail "$transport: blocked lookups did not end"
	assert_eq "$(stat_of eintr)" 0 "$transport: sleeps in callbacks ended by a signal"
	fs_umount "$M"
	assert_eq "$(stat_of eintr 2>/dev/null || echo 0)" 0 "after unmount"
}

run off 4
run off 9
if is_root && [ -w "$URING" ]; then
	uring_old=$(cat "$URING")
	echo Y >"$URING"
	run on 4
else
	skip "FUSE over io_uring: needs root and $URING (the /dev/fuse runs passed)"
fi
