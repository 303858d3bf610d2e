#!/bin/bash
# stress: fsp-stress (tools/fsp-stress) on the mount: a generated tree copied
# with cp -a and a multi-threaded copier, verified against its record,
# churned by concurrent readers/renamers/truncaters/writers (with the kernel
# dropping its caches underneath, as root) and deleted. Against fsp-memfs it
# also watches the daemon (--pid) and checks that fspctl's counters (nodes,
# handles, inflight) return to their baseline.
# The seed is printed first ("fsp-stress: seed N"); FSP_SEED=N repeats it.
# timeout: 900
. "$(dirname "$0")/../lib.sh"

STRESS=$BUILD_DIR/fsp-stress
[ -x "$STRESS" ] || fail "fsp-stress is not built: $STRESS (run make)"
M=$T/mnt
fs_mount "$M"

args=(--threads 4)
if is_quick; then
	args+=(--dirs 200 --files 1000 --seconds 3)
else
	args+=(--dirs 800 --files 4000 --seconds 10)
fi
[ -n "${FSP_SEED:-}" ] && args+=(--seed "$FSP_SEED")
if ! is_tmpfs_mode; then
	args+=(--pid "$(fs_pid "$M")")
	# the leak check: fsp-stress fails if these counters are missing
	[ -x "$BUILD_DIR/fspctl" ] || fail "fspctl is not built: $BUILD_DIR/fspctl (run make)"
	args+=(--counters "$BUILD_DIR/fspctl stats $M")
fi
step "fsp-stress ${args[*]} $M"
rc=0
"$STRESS" "${args[@]}" "$M" >"$T/stress.out" 2>&1 || rc=$?
cat "$T/stress.out"
seed=$(sed -n 's/^fsp-stress: seed //p' "$T/stress.out" | head -n 1)
[ $rc -eq 0 ] || fail "fsp-stress failed with status $rc (seed ${seed:-?}; FSP_SEED=${seed:-N} repeats it)"
assert_eq "$(count_entries "$M")" 0 "entries left after fsp-stress"
fs_umount "$M"
