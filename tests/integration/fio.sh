#!/bin/bash
# fio: random and sequential writes with checksums verified, several jobs at
# once, through read/write and through mmap.
# timeout: 600
. "$(dirname "$0")/../lib.sh"
need_cmd fio

M=$T/mnt
fs_mount "$M"
SIZE=64m
is_quick && SIZE=16m

run_fio() {
	local name=$1
	shift
	fio --name="$name" --directory="$M" --size=$SIZE --numjobs=2 --group_reporting \
		--verify=crc32c --verify_fatal=1 --do_verify=1 --output="$T/fio-$name.out" "$@" ||
		{ tail -n 30 "$T/fio-$name.out" >&2; fail "fio $name: $*"; }
	grep -E 'err= *[1-9]' "$T/fio-$name.out" >&2 && fail "fio $name reported errors"
	grep -E '(READ|WRITE):' "$T/fio-$name.out" || true
}
step "random writes, 4k, psync"
run_fio randwrite --rw=randwrite --bs=4k --ioengine=psync
step "sequential writes, 1m, psync"
run_fio seqwrite --rw=write --bs=1m --ioengine=psync
step "random writes, mixed sizes, mmap"
run_fio mmap --rw=randwrite --bsrange=512-64k --ioengine=mmap
step "random read/write, 8k, pvsync, fsync every 32"
run_fio randrw --rw=randrw --bs=8k --ioengine=pvsync --fsync=32 --verify=md5
rm -f "$M"/*
assert_eq "$(count_entries "$M")" 0 "entries left"
fs_umount "$M"
