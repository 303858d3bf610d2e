#!/bin/bash
# fuzz: libFuzzer over the whole request path with fsp-memfs behind it
# (tests/fuzz/fuzz_requests.c, built with clang, ASan and UBSan) for a fixed
# budget, seeded with tests/fuzz/corpus: traces of real programs recorded
# with -o trace=FILE (cp -a, tar, git, xattrs, renames, truncate/fallocate, a
# big directory) and every earlier finding (crash-*), which therefore runs
# again first, as a regression test. New inputs go to a copy of the corpus.
# Passes when the fuzzer reports nothing: no crash, no sanitizer report, no
# leak, no malformed reply, no request left without its one reply or given
# two (or a reply where none is due), no FSP__BUG (the target is built with
# FSP_DEBUG, which makes them abort), no timeout. A finding is kept in
# $BUILD_DIR/fuzz-findings/ and its stack is in the log.
# FSP_FUZZ_SECONDS=N fuzzes longer (default 60); `make fuzz FUZZ_SECONDS=N`
# does the same outside the test runner.
# timeout: 400
. "$(dirname "$0")/../lib.sh"
need_memfs "it fuzzes fsp-memfs in-process"
need_cmd clang make

SECS=${FSP_FUZZ_SECONDS:-60}
is_quick && SECS=${FSP_FUZZ_SECONDS:-20}
BIN=$ROOT/build-fuzz/fuzz_requests
FINDINGS=$BUILD_DIR/fuzz-findings

step "build build-fuzz/fuzz_requests"
if ! make -C "$ROOT" build-fuzz/fuzz_requests >"$T/make.log" 2>&1; then
	tail -n 20 "$T/make.log"
	if grep -q 'libclang_rt.fuzzer\|cannot find.*fuzzer' "$T/make.log"; then
		skip "clang has no libFuzzer runtime (package libclang-rt-14-dev; sh tests/deps.sh installs it)"
	fi
	fail "building the fuzzer failed (above)"
fi
[ -x "$BIN" ] || fail "$BIN was not built"

step "fuzz for ${SECS}s"
mkdir "$T/corpus"
cp "$ROOT"/tests/fuzz/corpus/* "$T/corpus/"
nseeds=$(count_entries "$T/corpus")
echo "seeds: $nseeds inputs, $(du -sk "$T/corpus" | cut -f1) KiB (traces: $(cd "$T/corpus" && echo trace-*))"
mkdir -p "$FINDINGS"
rc=0
# exit codes: libFuzzer's default for a finding is 77, which means "skip" to
# the runner, so ask for 1 (finding) and 2 (timeout) instead
(cd "$T" && "$BIN" -max_total_time="$SECS" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
	-error_exitcode=1 -timeout_exitcode=2 -print_final_stats=1 \
	-artifact_prefix="$FINDINGS/" "$T/corpus") >"$T/fuzz.log" 2>&1 || rc=$?
grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)' "$T/fuzz.log" || true
grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$T/fuzz.log" || true
if [ $rc -ne 0 ] || grep -qE '^==[0-9]+== ?ERROR|runtime error:|^SUMMARY: ' "$T/fuzz.log"; then
	# the report: the sanitizer's or libFuzzer's lines and the stack
	grep -vE '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse|RELOAD)' "$T/fuzz.log" | tail -n 60
	art=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$T/fuzz.log" | tail -n 1)
	fail "the fuzzer found a problem ($(describe_status $rc)); input: ${art:-none written}; replay: $BIN ${art:-INPUT}"
fi
grep -q 'INITED' "$T/fuzz.log" || fail "the fuzzer did not start: $(tail -n 5 "$T/fuzz.log")"
echo "fuzz: ${SECS}s, no finding; $(($(count_entries "$T/corpus") - nseeds)) new inputs (discarded)"
