#!/bin/bash
# ptfs-readdir-errors: a listing through fsp-ptfs is never silently short.
# The library's allocations are made to fail from the Nth on
# (FSP_FAIL_ALLOC_AT=N, FSP_FAIL_ALLOC_LEN large), for N swept across the
# first listing of a directory made on SOURCE directly (so that nothing
# about it is known to the mount before): `ls` then either lists every name
# or fails with an error (ENOMEM), never succeeds with fewer names.
# It always tests fsp-ptfs: in memfs mode (the default run) over a tmpfs, as
# FSP_TEST_FS=ptfs; in ptfs-ext4 mode over ext4; skipped in tmpfs mode.
[ "${FSP_TEST_FS:-memfs}" = memfs ] && export FSP_TEST_FS=ptfs
. "$(dirname "$0")/../lib.sh"
need_fs ptfs,ptfs-ext4 "it injects allocation failures into fsp-ptfs"
need_root "fsp-ptfs mounts with mount(2) here"

N=50
full=0 errors=0
# FSP_PTFS_UNDER_TEST: another build of fsp-ptfs (to show that the test
# catches a short listing)
FSP_PTFS=${FSP_PTFS_UNDER_TEST:-$FSP_PTFS}
up_or_dead() { is_mounted "$M" || ! pid_alive "$pid"; }
# from the first point where the daemon starts at all (found in steps of
# 16), 40 points in steps of 2, and one where nothing fails
first=
try_k() {
	# a fresh daemon for each point (allocations before the listing depend
	# on the start-up, hence the wide sweep), over a directory in $T
	M=$T/mnt.$k S=$T/src.$k
	mkdir -p "$M" "$S/d"
	(cd "$S/d" && for i in $(seq 1 $N); do : >"name-$i"; done)
	FSP_FAIL_ALLOC_AT=$k FSP_FAIL_ALLOC_LEN=1000000000 \
		"$FSP_PTFS" -f "$S" "$M" >"$T/ptfs.$k.log" 2>&1 &
	pid=$!
	wait_until 5 up_or_dead || true
	if ! is_mounted "$M" || ! timeout 5 stat "$M" >/dev/null 2>&1; then
		echo "k=$k: did not mount or answer"
		umount -l "$M" 2>/dev/null || true
		kill -KILL "$pid" 2>/dev/null || true
		return 1
	fi
	rc=0
	out=$(timeout 20 ls -1 "$M/d" 2>&1) || rc=$?
	got=$(printf '%s\n' "$out" | grep -c '^name-' || true)
	echo "k=$k: ls exit $rc, $got of $N names $(printf '%s\n' "$out" | grep -v '^name-' | head -n 1 || true)"
	umount -l "$M"
	wait_dead "$pid" 10 || kill -KILL "$pid"
	if [ "$rc" = 0 ]; then
		assert_eq "$got" "$N" "ls succeeded (allocations failing from the ${k}th): names listed"
		full=$((full + 1))
	else
		errors=$((errors + 1))
	fi
	return 0
}
for k in $(seq 0 16 2000); do
	try_k && { first=$k; break; }
done
[ -n "$first" ] || fail "fsp-ptfs did not start with allocations failing from the 2000th on"
for k in $(seq $((first + 2)) 2 $((first + 80))) 100000000; do
	try_k || true
done
echo "$full complete listings, $errors failed with an error"
[ "$errors" -gt 0 ] || note "no listing failed: each one met its failed allocations where a name-only entry stands in (a plus entry the library could not count)"
assert_ge "$full" 1 "listings without one"
