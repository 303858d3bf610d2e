#!/bin/bash
# seqio.sh — sequential 1 MiB writes and reads, fsp-memfs side by side with
# tmpfs, in interleaved rounds, medians printed.
#
#   bench/seqio.sh [-r ROUNDS] [-s MIB] [TARGET=MEMFS_OPTS ...]
#
# Each target is mounted once; every round runs each target in turn:
# fsp-bench seqwrite (1 MiB writes, then fsync) of a fresh file, the page
# cache dropped (as root), fsp-bench seqread of the whole file, the file
# removed. Targets: "tmpfs" and any number of NAME=OPTS, an fsp-memfs
# mounted with -o OPTS (e.g. memfs= memfs-ra=read_ahead_kb=1024). Prints each
# round's MB/s and, per target, the median of the rounds and its ratio to
# tmpfs's median. Default: -r 5 -s 1024 tmpfs memfs=
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
B=${BUILD:-$here/build}
R=5 MIB=1024
while getopts r:s: o; do
	case $o in r) R=$OPTARG ;; s) MIB=$OPTARG ;; *) exit 2 ;; esac
done
shift $((OPTIND - 1))
targets=("${@:-tmpfs}")
[ $# -eq 0 ] && targets=(tmpfs memfs=)
work=$(mktemp -d /tmp/fsp-seqio.XXXXXX)
cleanup() {
	for m in "$work"/m-*; do mountpoint -q "$m" && umount -l "$m"; done
	rm -rf "$work"
}
trap cleanup EXIT INT TERM
for t in "${targets[@]}"; do
	name=${t%%=*} m=$work/m-${t%%=*}
	mkdir -p "$m"
	if [ "$t" = tmpfs ]; then
		mount -t tmpfs -o size=$((MIB * 2))M tmpfs "$m" || exit 1
	else
		opts=${t#*=}
		"$B/fsp-memfs" ${opts:+-o "$opts"} "$m" || exit 1
	fi
done
dropcaches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
declare -A W RD
for i in $(seq "$R"); do
	for t in "${targets[@]}"; do
		name=${t%%=*} m=$work/m-${t%%=*}
		w=$("$B/fsp-bench" seqwrite "$m/big" "$MIB" | awk '{print $2}')
		dropcaches
		r=$("$B/fsp-bench" seqread "$m/big" | awk '{print $2}')
		rm -f "$m/big"
		W[$name]="${W[$name]:-} $w" RD[$name]="${RD[$name]:-} $r"
		printf 'round %d %-12s write %8s MB/s  read %8s MB/s\n' "$i" "$name" "$w" "$r"
	done
done
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR] = $1} END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
printf '%-12s %12s %8s %12s %8s\n' target write_MB/s ×tmpfs read_MB/s ×tmpfs
tw=$(echo "${W[tmpfs]:-}" | median) tr=$(echo "${RD[tmpfs]:-}" | median)
for t in "${targets[@]}"; do
	name=${t%%=*}
	w=$(echo "${W[$name]}" | median) r=$(echo "${RD[$name]}" | median)
	printf '%-12s %12s %8s %12s %8s\n' "$name" "$w" \
		"$( [ -n "$tw" ] && awk -v a="$w" -v b="$tw" 'BEGIN { printf "%.2f", a / b }')" "$r" \
		"$( [ -n "$tr" ] && awk -v a="$r" -v b="$tr" 'BEGIN { printf "%.2f", a / b }')"
done
