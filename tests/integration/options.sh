#!/bin/bash
# options: fsp-memfs refuses bad command lines and bad mount points with a
# non-zero exit and a one-line message on stderr that names the problem;
# --help and --version exit 0. Only about fsp-memfs: skipped in tmpfs mode.
. "$(dirname "$0")/../lib.sh"
need_memfs "it checks fsp-memfs's command line"
need_fuse

# bad DESC REGEX ARGS...: fsp-memfs ARGS must fail, with one line on stderr
# that matches REGEX (case-insensitive).
bad() {
	local desc=$1 re=$2 rc=0 lines
	shift 2
	timeout 10 "$FSP_MEMFS" "$@" >"$T/out" 2>"$T/err" </dev/null || rc=$?
	echo "fsp-memfs $* -> status $rc; stderr: $(cat "$T/err")"
	# whatever happened, leave nothing mounted
	for d in "$T"/mp "$T"/busy; do
		if is_mounted "$d" && [ "$d" != "$T/busy" ]; then
			umount -l "$d"
			fail "$desc: fsp-memfs mounted $d although it should have refused"
		fi
	done
	[ $rc -ne 124 ] || fail "$desc: fsp-memfs did not exit within 10s (it should refuse at once)"
	[ $rc -ne 0 ] || fail "$desc: fsp-memfs exited 0"
	[ $rc -lt 128 ] || fail "$desc: fsp-memfs died: $(describe_status $rc)"
	[ -s "$T/err" ] || fail "$desc: nothing on stderr"
	lines=$(grep -c . "$T/err" || true)
	[ "$lines" -eq 1 ] || fail "$desc: $lines lines on stderr, expected one: $(head -n 5 "$T/err")"
	grep -qiE -- "$re" "$T/err" || fail "$desc: the message does not name the problem (/$re/): $(cat "$T/err")"
}

mkdir "$T/mp"
: >"$T/afile"

step "bad options"
bad "unknown -o option" 'bogus_opt' -f -o bogus_opt "$T/mp"
bad "unknown -o option with a value" 'bogus_key' -f -o bogus_key=1 "$T/mp"
bad "unknown flag" 'bogus|unknown|unrecognized|invalid' -f --bogus "$T/mp"
bad "size=abc" 'size|abc' -f -o size=abc "$T/mp"
bad "size=-1" 'size|-1' -f -o size=-1 "$T/mp"
bad "size=12Q" 'size|12Q' -f -o size=12Q "$T/mp"
bad "nodes=abc" 'nodes|abc' -f -o nodes=abc "$T/mp"
bad "nodes=-5" 'nodes|-5' -f -o nodes=-5 "$T/mp"
bad "max_file_size=xyz" 'max_file_size|xyz' -f -o max_file_size=xyz "$T/mp"
bad "threads=abc" 'threads|abc' -f -o threads=abc "$T/mp"
bad "threads=-2" 'threads|-2' -f -o threads=-2 "$T/mp"
bad "-o without a value" '-o|option|argument' -f "$T/mp" -o

step "bad mount points"
bad "no mount point" 'mount ?point|usage|missing' -f
bad "SOURCE, mount point and one more" 'argument|usage|extra|too many|mount ?point' -f "$T/mp" "$T/mp" "$T/mp"
bad "missing mount point" 'does-not-exist|no such' -f "$T/does-not-exist"
bad "mount point is a file" 'afile|not a directory' -f "$T/afile"
bad "missing mount point (no -f)" 'does-not-exist|no such' "$T/does-not-exist"

step "busy mount point"
fs_mount "$T/busy"
echo keep >"$T/busy/keep"
bad "mount point already mounted" 'busy|mounted|already' -f "$T/busy"
assert_eq "$(cat "$T/busy/keep")" keep "the first mount still works"
fs_umount "$T/busy"

step "--help, --version"
for a in --help -h; do
	rc=0
	"$FSP_MEMFS" $a >"$T/out" 2>&1 || rc=$?
	assert_eq "$rc" 0 "exit status of fsp-memfs $a"
	grep -q -- '-o' "$T/out" || fail "fsp-memfs $a does not describe -o: $(head -n 5 "$T/out")"
	grep -q 'size' "$T/out" || fail "fsp-memfs $a does not mention size=: $(head -n 5 "$T/out")"
done
for a in --version -V; do
	rc=0
	"$FSP_MEMFS" $a >"$T/out" 2>&1 || rc=$?
	assert_eq "$rc" 0 "exit status of fsp-memfs $a"
	grep -q '[0-9]' "$T/out" || fail "fsp-memfs $a prints no version: $(cat "$T/out")"
done

step "good options mount"
fs_mount "$T/mp" threads=1,size=1G,nodes=1000,max_file_size=100M,entry_timeout=0,attr_timeout=0
echo ok >"$T/mp/f"
assert_eq "$(cat "$T/mp/f")" ok "a mount with explicit options works"
fs_umount "$T/mp"
