#!/bin/bash
# badinput: every program refuses bad command lines, bad paths and missing
# permissions with a non-zero exit (not a crash, not a hang) and a message
# on stderr whose first line names the problem (the option, the value or the
# path); --help and --version exit 0. One table for all the programs:
# fsp-memfs, hello and fsp-ptfs (the library's command line and mount
# checks, plus their own arguments), fspctl, fsp-stress and fsp-bench.
# The mount programs must also say exactly one line and leave nothing
# mounted. options.sh has fsp-memfs's own cases (unknown options, size=,
# nodes=, missing/busy/file mount points) and kill.sh its stale mount point:
# they are not repeated here for fsp-memfs.
# timeout: 120
. "$(dirname "$0")/../lib.sh"
need_memfs "it checks the programs' command lines"
need_fuse
need_cmd setpriv

B=$BUILD_DIR
PROGS=(fsp-memfs hello fspctl fsp-stress fsp-bench)
[ -x "$B/fsp-ptfs" ] && PROGS+=(fsp-ptfs) || note "fsp-ptfs is not built: its rows are left out"
for p in "${PROGS[@]}"; do
	[ -x "$B/$p" ] || fail "$p is not built: $B/$p (run make)"
done

# The unprivileged cases need to reach the test's directory (and the mount
# in it that fspctl is asked about as another user).
chmod 755 "$T"
W=$T/w
mkdir -m 755 "$W"
for p in "${PROGS[@]}"; do cp "$B/$p" "$W/"; done
mkdir "$W/mp" "$W/src" "$W/dir" "$W/rootonly"
chmod 700 "$W/rootonly"
: >"$W/afile"
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)

nrows=0

# bad ID REGEX [-n] [-m] -- CMD...: CMD must exit 1..127 within 10 s with
# the first non-empty line of stderr matching REGEX (grep -Ei). -n: run as
# nobody. -m: a mount program: exactly one line, nothing left mounted.
bad() {
	local id=$1 re=$2 nobody=0 mnt=0 rc=0 first lines why=""
	shift 2
	while [ "$1" != -- ]; do
		case "$1" in
		-n) nobody=1 ;;
		-m) mnt=1 ;;
		esac
		shift
	done
	shift
	if [ $nobody = 1 ] && ! is_root; then
		note "$id: not root, cannot run it as nobody: left out"
		return 0
	fi
	nrows=$((nrows + 1))
	if [ $nobody = 1 ]; then
		timeout 10 "${NOBODY[@]}" "$@" </dev/null >"$T/out" 2>"$T/err" || rc=$?
	else
		timeout 10 "$@" </dev/null >"$T/out" 2>"$T/err" || rc=$?
	fi
	first=$(grep -m 1 . "$T/err" || true)
	lines=$(grep -c . "$T/err" || true)
	printf '%-28s %s -> %s: %s%s\n' "$id" "$([ $nobody = 1 ] && echo "(nobody) ")${*#$W/}" \
		"$rc" "$first" "$([ "$lines" -gt 1 ] && echo " (+$((lines - 1)) lines)")"
	local m
	m=$(awk -v a="$W/mp" -v b="$T/mp" '$5 == a || $5 == b { print $5 }' /proc/self/mountinfo)
	if [ -n "$m" ]; then
		umount -l $m
		fail "$id: $* mounted $m although it should have refused"
	fi
	[ $rc -ne 124 ] && [ $rc -ne 137 ] || fail "$id: did not exit within 10 s: $*"
	[ $rc -lt 128 ] || fail "$id: crashed: $(describe_status $rc): $*"
	[ $rc -ne 0 ] || fail "$id: exited 0: $*"
	if [ -z "$first" ]; then
		why="nothing on stderr (stdout: $(head -n 2 "$T/out" | tr '\n' ' '))"
	elif ! printf '%s\n' "$first" | grep -qiE -- "$re"; then
		why="the first line of stderr does not name the problem (/$re/): $first"
	elif [ $mnt = 1 ] && [ $nobody = 0 ] && [ "$lines" -ne 1 ]; then
		why="$lines lines on stderr, expected one: $(head -n 3 "$T/err" | tr '\n' '|')"
	fi
	[ -z "$why" ] || fail "$id: $why"
}

# ok PROG ARG: exits 0 with something on stdout.
ok() {
	local rc=0
	timeout 10 "$B/$1" "$2" </dev/null >"$T/out" 2>"$T/err" || rc=$?
	[ $rc -eq 0 ] || fail "$1 $2: exit status $rc: $(head -n 2 "$T/err")"
	[ -s "$T/out" ] || fail "$1 $2: printed nothing on stdout"
	printf '%-28s %s %s -> 0: %s\n' "$1:$2" "$1" "$2" "$(head -n 1 "$T/out")"
}

step "--help and --version"
for p in "${PROGS[@]}"; do
	ok "$p" --help
	ok "$p" --version
done

step "a live mount (busy) and a stale one (its daemon was killed)"
fs_mount "$T/busy"
mkdir -p "$T/stale"
set -m
"$FSP_MEMFS" -f "$T/stale" </dev/null >"$T/stale.log" 2>&1 &
stale_pid=$!
set +m
_fsp_mounts+=("$(realpath "$T/stale")")   # lib.sh's EXIT trap unmounts it, whatever happens
wait_until 15 is_mounted "$T/stale" || fail "the mount to make stale did not appear"
kill -KILL "$stale_pid"
wait_dead "$stale_pid" 5 || fail "the daemon of the mount to make stale survived SIGKILL"
assert_errno ENOTCONN "os.stat('$T/stale')" "the stale mount point"
mkdir -p "$T/mp"

step "the mount programs (fsp-memfs, hello, fsp-ptfs)"
# fsp-ptfs takes SOURCE MOUNTPOINT; the others MOUNTPOINT
for p in fsp-memfs hello fsp-ptfs; do
	[ -x "$B/$p" ] || continue
	P=$B/$p
	S=()
	[ $p = fsp-ptfs ] && S=("$W/src")
	if [ $p != fsp-memfs ]; then   # fsp-memfs: options.sh
		bad "$p:unknown-option" "--bogus" -m -- "$P" -f --bogus "${S[@]}" "$T/mp"
		bad "$p:unknown-o" "bogus_opt" -m -- "$P" -f -o bogus_opt "${S[@]}" "$T/mp"
		bad "$p:size=abc" "size" -m -- "$P" -f -o size=abc "${S[@]}" "$T/mp"
		bad "$p:size=-1" "size" -m -- "$P" -f -o size=-1 "${S[@]}" "$T/mp"
		bad "$p:no-mountpoint" "mount ?point|missing|source" -m -- "$P" -f
		bad "$p:empty-mountpoint" "mount ?point|source|''" -m -- "$P" -f "${S[@]}" ""
		bad "$p:missing-mountpoint" "does-not-exist|no such" -m -- "$P" -f "${S[@]}" "$T/does-not-exist"
		bad "$p:file-mountpoint" "afile|not a directory" -m -- "$P" -f "${S[@]}" "$W/afile"
		bad "$p:busy-mountpoint" "busy|already|mounted" -m -- "$P" -f "${S[@]}" "$T/busy"
		bad "$p:stale-mountpoint" "fusermount3 -u" -m -- "$P" -f "${S[@]}" "$T/stale"
		bad "$p:too-many" "too many|argument|extra" -m -- "$P" -f "${S[@]}" "$T/mp" "$T/mp" "$T/mp"
	fi
	bad "$p:threads=0" "threads" -m -- "$P" -f -o threads=0 "${S[@]}" "$T/mp"
	bad "$p:threads=huge" "threads" -m -- "$P" -f -o threads=100000 "${S[@]}" "$T/mp"
	bad "$p:max_write=abc" "max_write" -m -- "$P" -f -o max_write=abc "${S[@]}" "$T/mp"
	bad "$p:entry_timeout=-1" "entry_timeout" -m -- "$P" -f -o entry_timeout=-1 "${S[@]}" "$T/mp"
	bad "$p:o-without-list" "-o" -m -- "$P" -f "${S[@]}" "$T/mp" -o
	bad "$p:trace-unwritable" "trace|/nonexistent" -m -- "$P" -f -o trace=/nonexistent/dir/t "${S[@]}" "$T/mp"
	bad "$p:nobody" "/dev/fuse|permission|not permitted" -n -m -- "$W/$p" -f "${S[@]}" "$W/mp"
done
if [ -x "$B/fsp-ptfs" ]; then
	P=$B/fsp-ptfs
	bad "fsp-ptfs:no-source" "source" -m -- "$P" -f "$T/mp"
	bad "fsp-ptfs:missing-source" "does-not-exist|no such" -m -- "$P" -f "$T/does-not-exist" "$T/mp"
	bad "fsp-ptfs:file-source" "afile|not a directory" -m -- "$P" -f "$W/afile" "$T/mp"
	bad "fsp-ptfs:passthrough=bad" "passthrough" -m -- "$P" -f -o passthrough=maybe "$W/src" "$T/mp"
	bad "fsp-ptfs:fd_cache=abc" "fd_cache" -m -- "$P" -f -o fd_cache=abc "$W/src" "$T/mp"
fi
assert_errno ENOTCONN "os.stat('$T/stale')" "the stale mount point after all that"
assert_eq "$(count_entries "$T/busy")" 0 "the busy mount still answers"

step "fspctl"
P=$B/fspctl
bad "fspctl:no-args" "stats|usage|expected" -- "$P"
bad "fspctl:unknown-command" "bogus" -- "$P" bogus "$T/busy"
bad "fspctl:unknown-option" "--bogus" -- "$P" --bogus
bad "fspctl:no-mountpoint" "mount ?point|expected" -- "$P" stats
bad "fspctl:missing-path" "does-not-exist" -- "$P" stats "$T/does-not-exist"
bad "fspctl:not-fuse" "$T/mp|no fuse" -- "$P" stats "$T/mp"
bad "fspctl:file" "afile" -- "$P" stats "$W/afile"
bad "fspctl:stale" "$T/stale|not connected|answer" -- "$P" stats "$T/stale"
bad "fspctl:no-such-key" "bogus_key" -- "$P" stats "$T/busy" bogus_key
bad "fspctl:too-many" "too many|argument|expected" -- "$P" stats "$T/busy" nodes extra
# the mount is root's: another user may not read its counters, and is told so
bad "fspctl:nobody" "permission|denied|another user|root" -n -- "$W/fspctl" stats "$T/busy"
bad "fspctl:nobody-no-access" "rootonly" -n -- "$W/fspctl" stats "$W/rootonly"

step "fsp-stress"
P=$B/fsp-stress
bad "fsp-stress:no-args" "DIR|missing" -- "$P"
bad "fsp-stress:unknown-option" "--bogus" -- "$P" --bogus "$W/dir"
bad "fsp-stress:dirs=abc" "dirs|abc" -- "$P" --dirs abc "$W/dir"
bad "fsp-stress:dirs=-1" "dirs|-1" -- "$P" --dirs -1 "$W/dir"
bad "fsp-stress:threads=0" "threads" -- "$P" --threads 0 "$W/dir"
bad "fsp-stress:max-size" "max-size|12Q" -- "$P" --max-size 12Q "$W/dir"
bad "fsp-stress:scenarios" "scenario|bogus" -- "$P" --scenarios bogus "$W/dir"
bad "fsp-stress:missing-value" "seed" -- "$P" "$W/dir" --seed
bad "fsp-stress:missing-dir" "does-not-exist|no such" -- "$P" "$T/does-not-exist"
bad "fsp-stress:file-dir" "afile|not a directory" -- "$P" "$W/afile"
bad "fsp-stress:too-many" "$W/dir|argument|too many" -- "$P" "$W/dir" "$W/dir"
# a --counters command without nodes, handles or inflight would check no leak
bad "fsp-stress:counters-incomplete" 'no "nodes" in the output' -- "$P" --counters "echo bogus 1" --scenarios delete "$W/dir"
bad "fsp-stress:nobody" "rootonly|permission" -n -- "$W/fsp-stress" --dirs 2 --files 2 "$W/rootonly"

step "fsp-bench"
P=$B/fsp-bench
bad "fsp-bench:no-args" "command|usage|expected" -- "$P"
bad "fsp-bench:unknown-option" "--bogus" -- "$P" --bogus "$W/dir"
bad "fsp-bench:unknown-command" "bogus" -- "$P" bogus "$W/dir"
bad "fsp-bench:no-path" "path|expected" -- "$P" creates
bad "fsp-bench:bad-number" "abc" -- "$P" creates "$W/dir" abc
bad "fsp-bench:missing-dir" "does-not-exist|no such" -- "$P" creates "$T/does-not-exist"
bad "fsp-bench:file-dir" "afile|not a directory" -- "$P" creates "$W/afile" 10
bad "fsp-bench:missing-file" "does-not-exist|no such" -- "$P" seqread "$T/does-not-exist"
bad "fsp-bench:too-many" "too many|argument|extra" -- "$P" stat "$W/dir" 1 2
bad "fsp-bench:nobody" "rootonly|permission" -n -- "$W/fsp-bench" creates "$W/rootonly" 10

step "clean up"
umount -l "$T/stale" 2>/dev/null || fusermount3 -u -z "$T/stale" ||
	fail "unmounting the stale mount point failed"
_fsp_forget "$(realpath "$T/stale")"
fs_umount "$T/busy"
echo "$nrows bad command lines refused as expected"
exit 0
