#!/bin/bash
# roundtrips.sh — requests per object for each phase of the big copy, per
# opcode, from `fspctl stats` counter deltas.
#
#   bench/roundtrips.sh [--quick|--tiny] [--dirs N --files N] [--uring]
#                       [-o MEMFS_OPTS] [--keep-going]
#
# Mounts a fresh fsp-memfs, makes the bench tree (bench/mktree.py) outside
# it, then runs the phases one after the other:
#   create   cp -a TREE MNT/a       (the tree copied in from outside)
#   cp       cp -a MNT/a MNT/b      (the copy inside the mount)
#   diff     diff -r MNT/a MNT/b
#   rm       rm -rf MNT/a MNT/b
# and prints, per phase, the requests of each opcode divided by the number
# of objects of the tree (directories + files; the rm phase removes two
# trees, so it is divided by twice that), then the totals. The page cache
# is dropped between phases (as root), so diff and cp read through the file
# system as a cold cache would. Exits non-zero if a phase fails or diff
# finds a difference. Numbers are counts, not times: they do not depend on
# the machine's load.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
B=${BUILD:-$here/build}
DIRS=3200 FILES=12000 OPTS="" URING=0
while [ $# -gt 0 ]; do
	case $1 in
	--quick) DIRS=400 FILES=1500 ;;
	--tiny) DIRS=20 FILES=60 ;;
	--dirs) DIRS=$2; shift ;;
	--files) FILES=$2; shift ;;
	--uring) URING=1 ;;
	-o) OPTS=$2; shift ;;
	-h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "roundtrips.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
	shift
done

work=$(mktemp -d /tmp/fsp-rt.XXXXXX)
pid=""
uparam=/sys/module/fuse/parameters/enable_uring
cleanup() {
	mountpoint -q "$work/m" 2>/dev/null && { fusermount3 -u "$work/m" 2>/dev/null || umount -l "$work/m"; }
	[ -n "$pid" ] && kill "$pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

python3 "$here/bench/mktree.py" "$work/tree" "$DIRS" "$FILES" 1 || exit 1
nobj=$(find "$work/tree" -mindepth 1 | wc -l)
mkdir -p "$work/m"
if [ $URING = 1 ]; then
	OPTS="${OPTS:+$OPTS,}io_uring=on"
	old=$(cat "$uparam" 2>/dev/null) || { echo "roundtrips.sh: no $uparam" >&2; exit 1; }
	echo Y >"$uparam"
fi
"$B/fsp-memfs" -f ${OPTS:+-o "$OPTS"} "$work/m" &
pid=$!
for _ in $(seq 100); do mountpoint -q "$work/m" && stat "$work/m" >/dev/null && break; sleep 0.05; done
[ $URING = 1 ] && echo "$old" >"$uparam"
mountpoint -q "$work/m" || { echo "roundtrips.sh: fsp-memfs did not mount" >&2; exit 1; }

snap() { "$B/fspctl" stats "$work/m" | awk '/^op\./ { sub(/^op\./, "", $1); print $1, $2 }' | sort; }
dropcaches() { sync; [ -w /proc/sys/vm/drop_caches ] && echo 3 >/proc/sys/vm/drop_caches; true; }

# phase NAME DIVISOR CMD...: run CMD, print the per-opcode delta
phases=() totals=()
fail=0
phase() {
	local name=$1 div=$2 before after
	shift 2
	dropcaches
	before=$(snap)
	"$@" || { echo "roundtrips.sh: phase $name: '$*' failed" >&2; fail=1; }
	after=$(snap)
	local out
	out=$(join -a 2 -e 0 -o 0,1.2,2.2 <(echo "$before") <(echo "$after") |
		awk -v d="$div" '{ n = $3 - $2; if (n > 0) { t += n; printf "%s %d %.2f\n", $1, n, n / d } }
			END { printf "TOTAL %d %.2f\n", t, t / d }')
	phases+=("$name")
	totals+=("$(echo "$out" | awk '$1 == "TOTAL" { print $2, $3 }')")
	echo "== $name ($*): requests per object (of $div)"
	echo "$out" | grep -v '^TOTAL' | sort -k2,2nr | awk '{ printf "  %-18s %9d %8s\n", $1, $2, $3 }'
	echo "$out" | awk '$1 == "TOTAL" { printf "  %-18s %9d %8s\n", "total", $2, $3 }'
}

echo "tree: $DIRS directories, $FILES files ($nobj objects); fsp-memfs${OPTS:+ -o $OPTS}"
phase create "$nobj" cp -a "$work/tree" "$work/m/a"
phase cp "$nobj" cp -a "$work/m/a" "$work/m/b"
phase diff "$nobj" diff -r "$work/m/a" "$work/m/b"
phase rm $((2 * nobj)) rm -rf "$work/m/a" "$work/m/b"
echo "== summary: requests, per object, per file"
for i in "${!phases[@]}"; do
	set -- ${totals[$i]}
	d=$nobj; [ "${phases[$i]}" = rm ] && d=$((2 * nobj))
	printf '  %-8s %10s %8s %8s\n' "${phases[$i]}" "$1" "$2" \
		"$(awk -v n="$1" -v f="$FILES" -v k=$((d / nobj)) 'BEGIN { printf "%.2f", n / (f * k) }')"
done
exit $fail
