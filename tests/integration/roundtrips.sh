#!/bin/bash
# roundtrips: a smoke run of bench/roundtrips.sh at tiny size (20
# directories, 60 files): it mounts fsp-memfs, runs the big copy's phases
# (cp -a in from outside, cp -a inside, diff -r, rm -rf) and prints the
# requests per object of each phase, per opcode, from fspctl counter
# deltas. Checked: it runs, every phase copies correctly (diff finds
# nothing), and each phase reports requests. The counts themselves are not
# asserted: they are the benchmark's output, not a test's.
. "$(dirname "$0")/../lib.sh"
need_memfs "it counts fsp-memfs's requests"
need_fuse
need_cmd python3
out=$T/rt.out
BUILD="$BUILD_DIR" bash "$ROOT/bench/roundtrips.sh" --tiny >"$out" 2>&1 ||
	{ cat "$out"; fail "bench/roundtrips.sh --tiny failed"; }
cat "$out"
for p in create cp diff rm; do
	n=$(awk -v p="$p" '/^== summary/ { s = 1; next } s && $1 == p { print $2 }' "$out")
	[ -n "$n" ] && [ "$n" -gt 0 ] || fail "phase $p reported no requests"
done
grep -q '^  LOOKUP ' "$out" || fail "no per-opcode lines in the output"
echo "roundtrips: every phase ran and reported its requests"
