#!/bin/bash
# concurrent: parallel writers to different offsets of one file and to
# different files, parallel create/mkdir/rename in one directory, O_EXCL races
# with one winner each, readdir while the directory changes.
# timeout: 600
. "$(dirname "$0")/../lib.sh"

M=$T/mnt
fs_mount "$M" threads=4
cd "$M"
W=8
is_quick && W=4

# wait_all PIDS...: every background worker succeeded
wait_all() {
	local p rc=0 bad=0
	for p in "$@"; do
		rc=0
		wait "$p" || rc=$?
		[ $rc -eq 0 ] || bad=$((bad + 1))
	done
	[ $bad -eq 0 ] || fail "$bad of $# parallel workers failed (their errors are above)"
}

step "$W writers, different offsets of one file"
# worker i writes its 1 MiB region [i MiB, i+1 MiB) in 4 KiB pieces, in an
# order that interleaves with the others, with a pattern naming the piece.
cat >"$T/region.py" <<'PY'
import os, sys, random
path, i, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
seed = 1000 + i
rnd = random.Random(seed)
fd = os.open(path, os.O_RDWR)
pieces = list(range(256))
rnd.shuffle(pieces)
def piece(i, k):
    return ((b"w%02d-p%03d|" % (i, k)) * 456)[:4096]
if mode == "write":
    for k in pieces:
        os.pwrite(fd, piece(i, k), i * 1048576 + k * 4096)
else:
    for k in range(256):
        got = os.pread(fd, 4096, i * 1048576 + k * 4096)
        if got != piece(i, k):
            sys.exit("region %d piece %d is wrong: %r..." % (i, k, got[:20]))
PY
: >one
pids=()
for i in $(seq 0 $((W - 1))); do
	python3 "$T/region.py" one "$i" write &
	pids+=($!)
done
wait_all "${pids[@]}"
assert_eq "$(stat -c %s one)" $((W * 1048576)) "size of the file written in parallel"
drop_cache one
for i in $(seq 0 $((W - 1))); do
	python3 "$T/region.py" one "$i" check || fail "content of region $i after parallel writes"
done

step "$W writers, one file each"
pids=()
for i in $(seq 1 $W); do
	(head -c $((3 * 1048576 + i * 1000)) /dev/urandom >"$T/src$i" &&
		dd if="$T/src$i" of="file$i" bs=$((4096 * i + 512)) status=none) &
	pids+=($!)
done
wait_all "${pids[@]}"
for i in $(seq 1 $W); do drop_cache "file$i"; done
for i in $(seq 1 $W); do
	assert_same_file "file$i" "$T/src$i" "file $i written in parallel"
done
compare_backing "$M"
rm -f one file*

step "$W processes creating files and directories in one directory"
mkdir shared
cat >"$T/creator.py" <<'PY'
import os, sys
d, i, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for k in range(n):
    fd = os.open("%s/f-%d-%d" % (d, i, k), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, b"%d %d" % (i, k))
    os.close(fd)
    if k % 10 == 0:
        os.mkdir("%s/d-%d-%d" % (d, i, k))
    if k % 7 == 0:
        os.rename("%s/f-%d-%d" % (d, i, k), "%s/r-%d-%d" % (d, i, k))
# races on shared names: O_EXCL and mkdir must have exactly one winner
wins = 0
for k in range(100):
    try:
        os.close(os.open("%s/race-%d" % (d, k), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        wins += 1
    except FileExistsError:
        pass
    try:
        os.mkdir("%s/drace-%d" % (d, k))
        wins += 1
    except FileExistsError:
        pass
open("%s.wins.%d" % (d, i), "w").write(str(wins))
PY
N=500
is_quick && N=200
pids=()
for i in $(seq 1 $W); do
	python3 "$T/creator.py" shared "$i" "$N" &
	pids+=($!)
done
# a reader lists the directory while it changes: no errors, no duplicates
python3 - shared <<'PY' &
import os, sys, time
end = time.time() + 3
while time.time() < end:
    names = os.listdir(sys.argv[1])
    if len(names) != len(set(names)):
        sys.exit("readdir returned a name twice")
PY
pids+=($!)
wait_all "${pids[@]}"
wins=0
for i in $(seq 1 $W); do wins=$((wins + $(cat "shared.wins.$i"))); done
assert_eq "$wins" 200 "winners of 100 O_EXCL races and 100 mkdir races"
ndirs=$((W * ((N + 9) / 10)))
assert_eq "$(count_entries shared)" $((W * N + ndirs + 200)) "entries after parallel creates"
assert_eq "$(find shared -maxdepth 1 -type d | wc -l)" $((ndirs + 100 + 1)) "directories after parallel mkdirs"
assert_eq "$(stat -c %h shared)" $((ndirs + 100 + 2)) "link count of the shared directory"
assert_eq "$(cat shared/r-3-7)" "3 7" "content of a renamed file"
compare_backing "$M" shared

step "$W processes removing in parallel"
pids=()
for i in $(seq 1 $W); do
	(rm -rf shared/*-"$i"-* && rm -f "shared.wins.$i") &
	pids+=($!)
done
wait_all "${pids[@]}"
rm -rf shared/race-* shared/drace-*
assert_eq "$(count_entries shared)" 0 "entries after parallel removal"
rmdir shared
assert_eq "$(count_entries .)" 0 "entries left"
cd "$T"
fs_umount "$M"
