#!/bin/bash
# deb: `make deb` builds a Debian package with dpkg-deb; installed with
# dpkg -i on this machine it holds the programs, the library (found by the
# dynamic linker: the ldconfig trigger ran), headers, libfsp.pc on
# pkg-config's default path, man pages and the unit; `mount -t
# fuse.fsp-memfs` works with it, and fspctl list sees the mount; dpkg -r
# removes every file it installed. The package is removed whatever happens
# (EXIT trap). Skipped when a package of the same name or fsp programs in
# /usr/bin are already on the machine: the test never replaces them.
# timeout: 180
. "$(dirname "$0")/../lib.sh"
need_memfs "builds and installs the package; mounts fsp-memfs from it"
[ "${FSP_TEST_TRANSPORT:-dev}" = dev ] || skip "does not depend on the transport: runs in the /dev/fuse run only"
need_root "dpkg -i and mount(8)"
need_cmd dpkg dpkg-deb dpkg-query make cc pkg-config mount.fuse3
need_fuse
PKG=fsp
if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep installed >/dev/null; then
	skip "a package '$PKG' is already installed here; not replacing it"
fi
for p in fsp-memfs fsp-ptfs fspctl; do
	[ ! -e "/usr/bin/$p" ] || skip "/usr/bin/$p exists outside the package; not replacing it"
done

installed=0
remove_pkg() {
	[ $installed = 1 ] || return 0
	for m in "${_fsp_mounts[@]}"; do umount -l -- "$m" 2>/dev/null || true; done
	dpkg -r "$PKG" >/dev/null 2>&1 || echo "deb: dpkg -r $PKG failed in cleanup" >&2
	installed=0
}
trap 'rc=$?; remove_pkg; _fsp_exit $rc' EXIT

step "make deb"
make -s -C "$ROOT" BUILD="$BUILD_DIR" deb >"$T/deb.log" 2>&1 || fail "make deb failed: $(tail -n 5 "$T/deb.log")"
deb=$(ls "$BUILD_DIR"/"$PKG"_*_"$(dpkg --print-architecture)".deb | tail -n 1)
[ -f "$deb" ] || fail "make deb made no $PKG_*.deb in $BUILD_DIR"
cp "$deb" "$T/"
deb=$T/${deb##*/}
dpkg-deb -I "$deb" | sed 's/^/  /'
dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|' | sort >"$T/contents"
for f in /usr/bin/fsp-memfs /usr/bin/fsp-ptfs /usr/bin/fspctl /usr/bin/fsp-stress /usr/bin/fsp-bench \
	/usr/lib/libfsp.so /usr/lib/libfsp.so.0 /usr/lib/libfsp.a /usr/lib/pkgconfig/libfsp.pc \
	/usr/include/fsp/fsp.h /usr/lib/systemd/system/fsp-memfs@.service \
	/usr/share/man/man1/fsp-memfs.1.gz /usr/share/man/man1/fsp-ptfs.1.gz; do
	grep -qx -- "$f" "$T/contents" || fail "the package does not hold $f"
done
for m in "$ROOT"/man/*.[1-8]; do
	grep -qx -- "/usr/share/man/man${m##*.}/${m##*/}.gz" "$T/contents" ||
		fail "the package does not hold the man page ${m##*/}"
done
dpkg-deb -f "$deb" Depends | grep fuse3 >/dev/null || fail "the package does not depend on fuse3 (mount.fuse3)"

step "dpkg -i"
installed=1
dpkg -i "$deb" >"$T/dpkg-i.log" 2>&1 || fail "dpkg -i failed: $(tail -n 5 "$T/dpkg-i.log")"
dpkg -L "$PKG" | sort >"$T/owned"
ldconfig -p | grep 'libfsp.so.0 ' >/dev/null || fail "the dynamic linker does not know libfsp.so.0 after dpkg -i"
assert_eq "$(env -u PKG_CONFIG_PATH pkg-config --modversion libfsp)" \
	"$(sed -n 's/^#define FSP_VERSION_STRING "\(.*\)"/\1/p' "$ROOT/include/fsp/common.h")" \
	"pkg-config --modversion libfsp (the default search path)"
man -w fsp-memfs >/dev/null 2>&1 || fail "man -w fsp-memfs finds no page"
# shellcheck disable=SC2046
cc -o "$T/hello" /usr/share/doc/fsp/examples/hello.c $(pkg-config --cflags --libs libfsp) ||
	fail "the installed example does not build with pkg-config"
"$T/hello" --version | grep fsp >/dev/null || fail "hello linked with the packaged libfsp.so does not run"

step "mount -t fuse.fsp-memfs with the packaged programs"
M=$T/mnt
mkdir -p "$M"
_fsp_mounts+=("$M")
out=$(mount -t fuse.fsp-memfs memfs "$M" -o size=16M 2>&1) || fail "mount -t fuse.fsp-memfs failed: $out"
is_mounted "$M" || fail "$M is not mounted"
echo data >"$M/f"
assert_eq "$(cat "$M/f")" data "a file on the mount"
/usr/bin/fspctl list | awk -v m="$M" '$NF == m' | grep fsp-memfs >/dev/null || fail "fspctl list does not show $M"
pid=$(/usr/bin/fspctl stats "$M" pid)
umount "$M"
wait_dead "$pid" 10 || fail "the daemon (pid $pid) did not exit after umount"

step "dpkg -r"
dpkg -r "$PKG" >"$T/dpkg-r.log" 2>&1 || fail "dpkg -r failed: $(tail -n 5 "$T/dpkg-r.log")"
installed=0
left=()
while read -r f; do
	[ -d "$f" ] && [ ! -L "$f" ] && continue   # directories others share stay
	[ -e "$f" ] || [ -L "$f" ] && left+=("$f")
done <"$T/owned"
[ ${#left[@]} = 0 ] || fail "dpkg -r left files behind: ${left[*]}"
[ ! -d /usr/include/fsp ] || fail "/usr/include/fsp is left after dpkg -r"
ldconfig -p | grep 'libfsp.so' >/dev/null && fail "the dynamic linker still knows libfsp after dpkg -r"
dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep ' installed' >/dev/null && fail "$PKG is still installed"
echo "deb: $(wc -l <"$T/owned") paths installed by dpkg -i and removed by dpkg -r"
