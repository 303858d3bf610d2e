#!/bin/bash
# resources: fsp-memfs at the edges of what it holds.
#   size=     cp -a of a real tree bigger than the limit: cp gets ENOSPC and
#             nothing else; every file cp did not report is complete (no
#             silent truncation); after rm -rf the accounting is back to where
#             it started and the same cp fills it to exactly the same level.
#   nodes=    the same with the node limit.
#   handles   more than 100,000 files open at once, spread over processes
#             (the fd limit here is 20,000 each): `fspctl stats` counts them
#             all, and 0 again once they are closed.
#   depth     a directory chain deeper than PATH_MAX (made with relative
#             mkdir + chdir), walked, then removed with rm -rf.
#   names     255-byte names work for every call that makes a name; 256-byte
#             names get ENAMETOOLONG.
# limits.sh checks the plain limits (dd past size=, creates past nodes=).
# timeout: 240
. "$(dirname "$0")/../lib.sh"
need_memfs "it checks fsp-memfs's size=, nodes= and its handle table"
need_fuse
need_cmd python3

FSPCTL=$BUILD_DIR/fspctl
[ -x "$FSPCTL" ] || fail "fspctl is not built: $FSPCTL (run make)"

# within SECONDS CMD...: poll CMD until it succeeds, for at most SECONDS of
# wall time; 1 on timeout.
within() {
	local end=$((${EPOCHREALTIME/./} + $1 * 1000000))
	shift
	until "$@"; do
		[ "${EPOCHREALTIME/./}" -lt "$end" ] || return 1
		sleep 0.1
	done
}

# stat_of MNT KEY: one counter of `fspctl stats`.
stat_of() {
	"$FSPCTL" stats "$1" "$2"
}

stat_is() {
	[ "$(stat_of "$1" "$2")" = "$3" ]
}

# --- cp -a into a full file system ------------------------------------------

# check_copy SRC DST CPERR OUT: every regular file and symlink under DST that
# cp did not name in an error message is the same as in SRC; every error is
# ENOSPC. Writes the sorted list of complete files to OUT.
check_copy() {
	python3 - "$@" <<'EOF'
import os, re, sys
src, dst, cperr, out = sys.argv[1:5]
named = set()
other = []
for line in open(cperr, errors="replace"):
    line = line.rstrip("\n")
    if not line:
        continue
    if "No space left on device" not in line:
        other.append(line)
    for m in re.finditer(r"'([^']*)'", line):
        named.add(os.path.normpath(m.group(1)))
if other:
    print("FAIL: cp reported errors other than ENOSPC:", *other[:5], sep="\n  ")
    sys.exit(1)
complete, bad = [], []
for root, dirs, files in os.walk(dst):
    for n in files:
        d = os.path.join(root, n)
        s = os.path.join(src, os.path.relpath(d, dst))
        if d in named:
            continue
        if os.path.islink(d):
            if os.readlink(d) != os.readlink(s):
                bad.append("%s: symlink target differs" % d)
            complete.append(d)
            continue
        with open(d, "rb") as f:
            got = f.read()
        with open(s, "rb") as f:
            want = f.read()
        if got != want:
            bad.append("%s: %d bytes, the source has %d%s" % (d, len(got), len(want),
                       "" if len(got) != len(want) else " (content differs)"))
        complete.append(d)
    for n in dirs:
        d = os.path.join(root, n)
        if os.path.islink(d):
            complete.append(d)
if bad:
    print("FAIL: files cp did not report as failed are not complete:", *bad[:10], sep="\n  ")
    sys.exit(1)
with open(out, "w") as f:
    f.write("\n".join(sorted(os.path.relpath(p, dst) for p in complete)) + "\n")
print("%d files complete, %d names in cp's %s" % (len(complete), len(named), "errors"))
EOF
}

# fill_by_copy MNT SRC TAG: cp -a SRC into MNT/copy, which must fail with
# ENOSPC; checks the result (check_copy), keeps the list in T/TAG.list.
fill_by_copy() {
	local rc=0
	cp -a "$2" "$1/copy" 2>"$T/$3.err" || rc=$?
	[ $rc -ne 0 ] || fail "$3: cp -a of $2 ($(du -sh "$2" | cut -f1)) into a smaller file system succeeded"
	grep -q 'No space left on device' "$T/$3.err" ||
		fail "$3: cp -a failed without ENOSPC: $(head -n 3 "$T/$3.err")"
	echo "$3: cp -a failed as expected, $(grep -c . "$T/$3.err") error lines"
	check_copy "$2" "$1/copy" "$T/$3.err" "$T/$3.list" || fail "$3: the copy (above)"
}

# limit_cycle OPTS SRC TAG: mount with OPTS, fill with cp -a twice with an
# rm -rf between; the accounting returns to its start and the second fill is
# the same as the first.
limit_cycle() {
	local opts=$1 src=$2 tag=$3 M=$T/mnt-$3 b0 n0 b1 n1
	step "$tag: cp -a of $src into -o $opts"
	fs_mount "$M" "$opts"
	b0=$(stat_of "$M" mem_bytes)
	n0=$(stat_of "$M" mem_nodes)
	fill_by_copy "$M" "$src" "$tag-1"
	b1=$(stat_of "$M" mem_bytes)
	n1=$(stat_of "$M" mem_nodes)
	echo "$tag: full at $b1 bytes, $n1 nodes (empty: $b0 bytes, $n0 nodes)"
	rm -rf "$M/copy"
	# forgets arrive asynchronously: the accounting settles shortly
	within 20 stat_is "$M" mem_nodes "$n0" ||
		fail "$tag: after rm -rf, $(stat_of "$M" mem_nodes) nodes are accounted, not $n0"
	within 20 stat_is "$M" mem_bytes "$b0" ||
		fail "$tag: after rm -rf, $(stat_of "$M" mem_bytes) bytes are accounted, not $b0"
	assert_eq "$(count_entries "$M")" 0 "$tag: entries left after rm -rf"
	step "$tag: the same copy again fills it to the same level"
	fill_by_copy "$M" "$src" "$tag-2"
	cmp -s "$T/$tag-1.list" "$T/$tag-2.list" ||
		fail "$tag: the second fill differs from the first: $(diff "$T/$tag-1.list" "$T/$tag-2.list" | head -n 5)"
	assert_eq "$(stat_of "$M" mem_nodes)" "$n1" "$tag: nodes at the second fill"
	echo "$tag: second fill: the same $(grep -c . "$T/$tag-1.list") complete files, $(stat_of "$M" mem_bytes) bytes"
	rm -rf "$M/copy"
	fs_umount "$M"
}

SRC=$(source_tree)
# a limit below the tree whatever its size (FSP_QUICK picks a small tree)
src_kb=$(du -sk "$SRC" | cut -f1)
limit_kb=$((src_kb / 2))
[ "$limit_kb" -lt 24576 ] || limit_kb=24576
limit_cycle size=${limit_kb}K "$SRC" size
limit_cycle nodes=400 "$SRC" nodes

# --- more than 100,000 open handles -----------------------------------------
step "handles: more than 100,000 files open at once"
M=$T/mnt-handles
fs_mount "$M"
NPROC=6
PER=17500          # under the per-process limit of 20,000 descriptors
mkdir "$M/h"
for i in $(seq 1 50); do echo "file $i" >"$M/h/f$i"; done
h0=$(stat_of "$M" handles)
# each opener: opens PER descriptors over the 50 files, says "open N", waits
# for T/release, checks one read per file, closes everything
cat >"$T/opener.py" <<'EOF'
import os, resource, sys, time
d, n, ctl = sys.argv[1], int(sys.argv[2]), sys.argv[3]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 100), hard))
fds = [os.open("%s/f%d" % (d, 1 + i % 50), os.O_RDONLY) for i in range(n)]
print("open", len(fds), flush=True)
while not os.path.exists(ctl):
    time.sleep(0.05)
for i, fd in enumerate(fds[:50]):
    assert os.pread(fd, 64, 0) == ("file %d\n" % (1 + i % 50)).encode()
for fd in fds:
    os.close(fd)
print("closed", flush=True)
EOF
openers=()
for i in $(seq 1 $NPROC); do
	python3 "$T/opener.py" "$M/h" $PER "$T/release" >"$T/opener-$i.log" 2>&1 &
	openers+=($!)
done
all_open() { [ "$(cat "$T"/opener-*.log | grep -c '^open ')" -eq $NPROC ]; }
within 120 all_open || {
	tail -n 3 "$T"/opener-*.log
	fail "handles: the openers did not open $PER files each (above)"
}
h=$(stat_of "$M" handles)
echo "handles: $h open in the daemon with $((NPROC * PER)) descriptors open ($h0 before)"
assert_ge "$h" $((h0 + NPROC * PER)) "handles: fspctl stats handles with $((NPROC * PER)) files open"
assert_ge "$h" 100000 "handles: open at once"
touch "$T/release"
for p in "${openers[@]}"; do
	rc=0
	wait "$p" || rc=$?
	[ $rc -eq 0 ] || fail "handles: an opener failed ($(describe_status $rc)): $(cat "$T"/opener-*.log | grep -v '^open\|^closed' | head -n 3)"
done
within 30 stat_is "$M" handles "$h0" ||
	fail "handles: $(stat_of "$M" handles) handles still open after every descriptor was closed (expected $h0)"
echo "handles: back to $h0 after the close"
fs_umount "$M"

# --- deeper than PATH_MAX ----------------------------------------------------
step "depth: a directory chain deeper than PATH_MAX"
M=$T/mnt-deep
fs_mount "$M"
n0=$(stat_of "$M" mem_nodes)
DEPTH=2600         # "d/" per level: 5200 bytes of path, PATH_MAX is 4096
python3 - "$M" $DEPTH <<'EOF'
import errno, os, sys
m, depth = sys.argv[1], int(sys.argv[2])
top = os.open(m, os.O_RDONLY | os.O_DIRECTORY)
os.chdir(m)
for i in range(depth):
    os.mkdir("d")
    os.chdir("d")
with open("bottom", "w") as f:
    f.write("deep\n")
# the absolute path is now longer than PATH_MAX: the kernel refuses it
path = m + "/d" * depth + "/bottom"
try:
    os.stat(path)
    sys.exit("stat of a %d-byte path succeeded" % len(path))
except OSError as e:
    assert e.errno == errno.ENAMETOOLONG, e
# walk down again with openat from the top, one level at a time
fd = os.dup(top)
for i in range(depth):
    nfd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
    os.close(fd)
    fd = nfd
assert os.listdir(fd) == ["bottom"], os.listdir(fd)
with open(os.open("bottom", os.O_RDONLY, dir_fd=fd)) as f:
    assert f.read() == "deep\n"
os.close(fd)
os.chdir("/")
print("made and walked %d levels (a path of %d bytes)" % (depth, len(path)))
EOF
[ "$(stat_of "$M" mem_nodes)" -ge $((n0 + DEPTH)) ] ||
	fail "depth: memfs counts $(stat_of "$M" mem_nodes) nodes with $DEPTH directories made"
rm -rf "$M/d" || fail "depth: rm -rf of the deep chain failed"
assert_eq "$(count_entries "$M")" 0 "depth: entries left after rm -rf"
within 20 stat_is "$M" mem_nodes "$n0" ||
	fail "depth: after rm -rf, $(stat_of "$M" mem_nodes) nodes are accounted, not $n0"
fs_umount "$M"

# --- 255 and 256-byte names ---------------------------------------------------
step "names: 255 bytes work, 256 bytes get ENAMETOOLONG"
M=$T/mnt-names
fs_mount "$M"
python3 - "$M" <<'EOF'
import errno, os, sys
m = sys.argv[1]
os.chdir(m)
ok = {"ascii": "a" * 255,
      "utf-8": "\u00e9" * 127 + "x"}          # 2 * 127 + 1 = 255 bytes
long = {"ascii": "b" * 256,
        "utf-8": "\u00e9" * 128}              # 256 bytes
for kind, n in ok.items():
    assert len(n.encode()) == 255
    with open(n, "w") as f:
        f.write(kind)
    assert open(n).read() == kind
    assert n in os.listdir(".")
    os.stat(n)
    os.rename(n, n[:-1] + "Z")
    os.link(n[:-1] + "Z", n)
    os.unlink(n[:-1] + "Z")
    os.mkdir("D" + n[1:])
    os.symlink(n, "S" + n[1:])
    assert os.readlink("S" + n[1:]) == n
    os.mkfifo("F" + n[1:])
    for p in (n, "D" + n[1:], "S" + n[1:], "F" + n[1:]):
        (os.rmdir if p.startswith("D") else os.unlink)(p)
for kind, n in long.items():
    assert len(n.encode()) == 256
    open("src", "w").close()
    calls = {
        "create": lambda: os.open(n, os.O_CREAT | os.O_WRONLY, 0o644),
        "mkdir": lambda: os.mkdir(n),
        "symlink": lambda: os.symlink("src", n),
        "link": lambda: os.link("src", n),
        "rename": lambda: os.rename("src", n),
        "mknod": lambda: os.mkfifo(n),
        "stat": lambda: os.stat(n),
        "unlink": lambda: os.unlink(n),
    }
    for name, call in calls.items():
        try:
            call()
            sys.exit("%s of a 256-byte %s name succeeded" % (name, kind))
        except OSError as e:
            if e.errno != errno.ENAMETOOLONG:
                sys.exit("%s of a 256-byte %s name: %s, expected ENAMETOOLONG" % (name, kind, e))
    os.unlink("src")
assert os.listdir(".") == [], os.listdir(".")
print("255-byte names: create, rename, link, mkdir, symlink, mkfifo, unlink, rmdir work;"
      " 256-byte names: ENAMETOOLONG for each call")
EOF
fs_umount "$M"
exit 0
