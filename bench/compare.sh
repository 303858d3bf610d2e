#!/bin/sh
# compare.sh — side-by-side benchmark, all targets in one run on this machine:
# tmpfs (the ceiling), fsp-memfs on /dev/fuse and on FUSE over io_uring,
# fsp-ptfs over tmpfs, and the FUSE file systems Debian packages (bindfs,
# fuse-overlayfs) when installed.
#
#   bench/compare.sh [--quick] [TARGET...]
#     targets: tmpfs memfs memfs-uring ptfs bindfs overlayfs (over tmpfs), and
#              ext4 ptfs-ext4 bindfs-ext4 (a loop-mounted ext4: bare, and as backing)
#     memfs-uring needs root: enable_uring is set to Y for its mount and put back.
#
# Per target: the big copy (a 3,200-dir / 12,000-file tree: cp -a inside the
# mount, diff -r, rm -rf; timed together), creates/s, stats/s, unlinks/s, and
# sequential 1 MiB write and read (caches dropped before the read). Prints a table; the
# ratio column is relative to tmpfs. Numbers, not assertions: this is never
# part of make check.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
B=${BUILD:-$here/build}
quick=0
[ "${1:-}" = "--quick" ] && { quick=1; shift; }
targets=${*:-tmpfs memfs memfs-uring ptfs bindfs overlayfs}
if [ $quick = 1 ]; then DIRS=400 FILES=1500 MIB=256 NCREATE=5000
else DIRS=3200 FILES=12000 MIB=1024 NCREATE=20000; fi

work=$(mktemp -d /tmp/fsp-bench.XXXXXX)
pids=""
cleanup() {
	for m in $(awk -v w="$work" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r); do
		umount -l "$m" 2>/dev/null
	done
	for p in $pids; do kill "$p" 2>/dev/null; done
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

mkdir -p "$work/tree"
python3 "$here/bench/mktree.py" "$work/tree/src" $DIRS $FILES 1

mount_target() { # name mnt -> 0 if mounted
	t=$1 m=$2 back=$work/back-$t
	mkdir -p "$m"
	case $t in
	tmpfs) mount -t tmpfs -o size=8G tmpfs "$m" ;;
	memfs) "$B/fsp-memfs" -o io_uring=off "$m" ;;
	memfs-uring)
		u=/sys/module/fuse/parameters/enable_uring
		[ -w "$u" ] || return 1
		old=$(cat "$u"); echo Y > "$u"
		# the kernel checks enable_uring until the ring is registered:
		# put it back once the mount has answered
		"$B/fsp-memfs" -o io_uring=on "$m" 2>/dev/null && stat "$m" >/dev/null; rc=$?
		echo "$old" > "$u"
		[ $rc = 0 ] || return 1 ;;
	ptfs) mkdir -p "$back" && mount -t tmpfs -o size=8G tmpfs "$back" && "$B/fsp-ptfs" "$back" "$m" ;;
	bindfs) command -v bindfs >/dev/null || return 1
		mkdir -p "$back" && mount -t tmpfs -o size=8G tmpfs "$back" && bindfs "$back" "$m" ;;
	overlayfs) command -v fuse-overlayfs >/dev/null || return 1
		mkdir -p "$back/l" "$back/u" "$back/w" && mount -t tmpfs -o size=8G tmpfs "$back/u" &&
		mkdir -p "$back/u/up" "$back/u/wk" &&
		fuse-overlayfs -o lowerdir="$back/l",upperdir="$back/u/up",workdir="$back/u/wk" "$m" ;;
	ext4|ptfs-ext4|bindfs-ext4)
		# a fresh ext4 on a loop image: the bare directory, or the backing
		img=$work/$t.img
		truncate -s 8G "$img" && mkfs.ext4 -q -F "$img" || return 1
		if [ $t = ext4 ]; then mount -o loop "$img" "$m" || return 1
		else
			mkdir -p "$back" && mount -o loop "$img" "$back" || return 1
			if [ $t = ptfs-ext4 ]; then "$B/fsp-ptfs" "$back" "$m"; else bindfs "$back" "$m"; fi
		fi ;;
	*) return 1 ;;
	esac
	for i in 1 2 3 4 5 6 7 8 9 10; do mountpoint -q "$m" && return 0; sleep 0.2; done
	return 1
}

now() { date +%s.%N; }
dropcaches() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; }

printf '%-12s %10s %6s %10s %10s %10s %10s %10s\n' target bigcopy_s ratio creates/s stats/s unlinks/s write_MB/s read_MB/s
base=""
for t in $targets; do
	m=$work/mnt-$t
	if ! mount_target "$t" "$m"; then printf '%-12s %10s\n' "$t" "(not available)"; continue; fi
	cp -a "$work/tree/src" "$m/src"
	dropcaches
	t0=$(now)
	ok=1
	cp -a "$m/src" "$m/dst" && diff -r "$m/src" "$m/dst" >/dev/null && rm -rf "$m/dst" || ok=0
	t1=$(now)
	big=$(echo "$t1 - $t0" | bc)
	[ $ok = 1 ] || big="FAILED"
	[ -z "$base" ] && [ "$t" = tmpfs ] && base=$big
	ratio=-
	[ -n "$base" ] && [ $ok = 1 ] && ratio=$(echo "scale=2; $big / $base" | bc)
	rm -rf "$m/src"
	mkdir -p "$m/c"
	out=$("$B/fsp-bench" creates "$m/c" $NCREATE)
	cr=$(echo "$out" | awk '/^creates/ {print $2}')
	ul=$(echo "$out" | awk '/^unlinks/ {print $2}')
	st=$("$B/fsp-bench" stat "$m/c" $NCREATE | awk '/^stat/ {print $2}')
	wr=$("$B/fsp-bench" seqwrite "$m/big" $MIB | awk '{print $2}')
	dropcaches
	rd=$("$B/fsp-bench" seqread "$m/big" | awk '{print $2}')
	rm -f "$m/big"
	printf '%-12s %10s %6s %10s %10s %10s %10s %10s\n' "$t" "$big" "$ratio" "${cr:-FAILED}" \
		"${st:-FAILED}" "${ul:-FAILED}" "${wr:-FAILED}" "${rd:-FAILED}"
	umount -l "$m"
	[ -d "$work/back-$t" ] && umount -l "$work/back-$t" 2>/dev/null
done
