#!/bin/sh
# tests/deps.sh — install what the test suite needs on a Debian 12 machine.
#
# Idempotent and fast when everything is there: each needed command is looked
# up first, and apt-get (update included) runs only when something is missing.
# As root the missing packages are installed quietly; otherwise the missing
# packages are named and the script exits 1.
#
# Usage: sh tests/deps.sh        (make deps)

set -u

# "what package" pairs: a command the tests run (or an absolute path they
# need), and the Debian package that provides it. A package is installed when
# its command or path is missing.
NEEDS="
fusermount3 fuse3
setfattr attr
getfattr attr
fio fio
sqlite3 sqlite3
git git
gcc gcc
/usr/include/stdio.h libc6-dev
make make
tar tar
python3 python3
valgrind valgrind
rsync rsync
fuser psmisc
pgrep procps
mount mount
timeout coreutils
fallocate util-linux
setpriv util-linux
flock util-linux
diff diffutils
cmp diffutils
find findutils
awk mawk
clang clang
/usr/share/doc/libclang-rt-14-dev libclang-rt-14-dev
pkg-config pkgconf
readelf binutils
dpkg-deb dpkg
man man-db
unshare util-linux
/sbin/mount.fuse3 fuse3
/usr/lib/python3/dist-packages/matplotlib python3-matplotlib
"

PATH="$PATH:/usr/sbin:/sbin"

# have WHAT: the command is on PATH, or the absolute path exists.
have() {
	case "$1" in
	/*) [ -e "$1" ] ;;
	*) command -v "$1" >/dev/null 2>&1 ;;
	esac
}

# missing_pkgs: print the packages whose command is missing, each once.
missing_pkgs() {
	out=""
	# shellcheck disable=SC2086 # split NEEDS into cmd/pkg words
	set -- $NEEDS
	while [ $# -ge 2 ]; do
		if ! have "$1"; then
			case " $out " in *" $2 "*) ;; *) out="$out $2" ;; esac
		fi
		shift 2
	done
	echo $out
}

missing=$(missing_pkgs)

if [ -z "$missing" ]; then
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages: $missing" >&2
	echo "deps: run as root: apt-get install $missing" >&2
	exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
	echo "deps: missing packages: $missing (and no apt-get to install them)" >&2
	exit 1
fi

echo "deps: installing: $missing"
export DEBIAN_FRONTEND=noninteractive
log="${TMPDIR:-/tmp}/fsp-deps-apt.log"
if ! apt-get update -q >"$log" 2>&1; then
	echo "deps: apt-get update failed; last lines of $log:" >&2
	tail -n 20 "$log" >&2
	exit 1
fi
# shellcheck disable=SC2086 # word splitting of the package list is intended
if ! apt-get install -y -q --no-install-recommends $missing >>"$log" 2>&1; then
	echo "deps: apt-get install failed; last lines of $log:" >&2
	tail -n 20 "$log" >&2
	exit 1
fi
rm -f "$log"

# Check again: a package that installed but did not provide its command is an
# error worth seeing now rather than as a confusing test failure later.
still=$(missing_pkgs)
if [ -n "$still" ]; then
	echo "deps: still missing after install: $still" >&2
	exit 1
fi
echo "deps: done"
exit 0
