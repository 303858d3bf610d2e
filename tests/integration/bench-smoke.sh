#!/bin/bash
# bench-smoke: bench/run.py and every fsp-bench suite test, once, at tiny
# size, against the file system under test (fs_mount) and a tmpfs (the
# reference the chart divides by): each test prints a positive number, the
# CSV, JSON and chart are written, and the runner leaves no mount behind.
# Checks that the benchmark works, not how fast anything is.
# timeout: 120
. "$(dirname "$0")/../lib.sh"
need_root "mounts tmpfs and runs the bench runner"
need_cmd python3
[ -x /usr/bin/python3 ] || skip "no /usr/bin/python3 (the runner uses Debian's)"
/usr/bin/python3 -c 'import matplotlib' 2>/dev/null ||
	skip "python3-matplotlib is not installed (sh tests/deps.sh or make bench installs it)"
B=$BUILD_DIR/fsp-bench
[ -x "$B" ] || fail "fsp-bench is not built: $B (run make)"

M=$T/mnt
fs_mount "$M"
REF=$T/ref
mkdir -p "$REF"
mount -t tmpfs -o size=1G fsp-bench-smoke "$REF"
# (the runner of the tests unmounts whatever is left under $T if this fails)

step "fsp-bench suite, every test at tiny size"
TESTS="file_create file_open iter.file_open file_overwrite file_attr file_list
file_list_single file_list_none file_delete file_mkdir file_rmdir rdwr_cc_write_page
rdwr_cc_read_page rdwr_cc_write_large rdwr_cc_read_large rdwr_nc_write_page
rdwr_nc_read_page rdwr_nc_write_large rdwr_nc_read_large mmap_write mmap_read"
"$B" suite "$M" --files 20 --iter 2 --list 2 --rdwr-size 256K --large 64K --passes 2 >"$T/suite.out"
cat "$T/suite.out"
for t in $TESTS; do
	line=$(awk -v t="$t" '$1 == t' "$T/suite.out")
	[ -n "$line" ] || fail "fsp-bench suite printed no line for $t"
	set -- $line
	[ $# -eq 3 ] || fail "$t: expected 'name value unit', got '$line'"
	[[ $2 =~ ^[0-9]+$ ]] && [ "$2" -gt 0 ] || fail "$t: not a positive number: '$line'"
	case $3 in ops/s | entries/s | MB/s) ;; *) fail "$t: unknown unit in '$line'" ;; esac
done
assert_eq "$(wc -l <"$T/suite.out")" 21 "lines of fsp-bench suite"
assert_eq "$(count_entries "$M")" 0 "names left behind by fsp-bench suite"

step "bench/run.py --tiny against $(fs_label) and tmpfs"
out=$T/results
BUILD=$BUILD_DIR /usr/bin/python3 "$ROOT/bench/run.py" --tiny --rounds 1 --warmup 0 --no-install \
	--targets "" --dir tmpfs="$REF" --dir under-test="$M" --out "$out" >"$T/run.out" 2>"$T/run.err" ||
	{ cat "$T/run.err" >&2; fail "bench/run.py failed"; }
cat "$T/run.out"
for f in bench.csv bench.json bench.md bench.png; do
	[ -s "$out/$f" ] || fail "bench/run.py did not write $f"
done
assert_eq "$(head -c 4 "$out/bench.png" | tail -c 3)" PNG "bench.png is a PNG"
python3 - "$out" <<'PY'
import csv, json, math, sys
out = sys.argv[1]
doc = json.load(open(out + "/bench.json"))
rows = list(csv.DictReader(open(out + "/bench.csv")))
tests = [r["test"] for r in rows]
assert tests == doc["tests"], (tests, doc["tests"])
assert len(tests) == 22 and "big_copy" in tests, tests
for r in rows:
    for t in ("tmpfs", "under-test"):
        v = float(r[t])
        assert v > 0 and math.isfinite(v), "%s on %s: %r" % (r["test"], t, r[t])
        assert doc["median"][t][r["test"]] == doc["values"][t][r["test"]][0]
for k in ("nproc", "memory_gb", "kernel"):
    assert doc["machine"][k], k
print("csv and json: %d tests x 2 targets, all positive" % len(rows))
PY
# --dir targets are the caller's: still mounted, left empty; no work dir left
is_mounted "$M" || fail "the runner unmounted a --dir target"
assert_eq "$(count_entries "$M")" 0 "names left in the mount by the runner"
work=$(sed -n 's/^work directory //p' "$T/run.err")
[ -n "$work" ] || fail "bench/run.py did not say where it worked"
left=$(awk -v w="$work" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo)
assert_eq "$left" "" "mounts the runner left behind"
[ ! -e "$work" ] || fail "bench/run.py left its work directory $work"

umount "$REF"
fs_umount "$M"
