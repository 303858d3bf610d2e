#!/bin/bash
# install: `make install` into a DESTDIR lays out what a user of the library
# needs (programs, libfsp.so.VERSION with its soname link and dev link,
# libfsp.a, headers under include/fsp/, libfsp.pc, man pages, the systemd
# unit); a file system outside the tree builds against it with nothing but
# `cc $(pkg-config --cflags --libs libfsp)` and mounts; `make uninstall`
# removes every file it installed.
# timeout: 120
. "$(dirname "$0")/../lib.sh"
need_memfs "checks the installed files, not a file system"
[ "${FSP_TEST_TRANSPORT:-dev}" = dev ] || skip "does not depend on the transport: runs in the /dev/fuse run only"
need_cmd cc pkg-config readelf make
need_fuse

D=$T/destdir
P=/usr/local
version=$(sed -n 's/^#define FSP_VERSION_STRING "\(.*\)"/\1/p' "$ROOT/include/fsp/common.h")
major=${version%%.*}
[ -n "$version" ] || fail "no FSP_VERSION_STRING in include/fsp/common.h"

step "make install DESTDIR=$D PREFIX=$P"
make -s -C "$ROOT" BUILD="$BUILD_DIR" DESTDIR="$D" PREFIX="$P" install >"$T/install.log" 2>&1 ||
	fail "make install failed: $(tail -n 5 "$T/install.log")"
find "$D" \( -type f -o -type l \) -printf '%P\n' | sort >"$T/files"
sed 's/^/  /' "$T/files"

for f in bin/fsp-memfs bin/fsp-ptfs bin/fspctl bin/fsp-stress bin/fsp-bench \
	lib/libfsp.a lib/libfsp.so.$version lib/pkgconfig/libfsp.pc \
	include/fsp/fsp.h include/fsp/session.h include/fsp/ops.h \
	lib/systemd/system/fsp-memfs@.service share/doc/fsp/examples/hello.c; do
	[ -e "$D$P/$f" ] || fail "make install did not install $P/$f"
done
# every page of man/ (the manpages test checks that each program has one)
for m in "$ROOT"/man/*.[1-8]; do
	s=${m##*.}
	[ -e "$D$P/share/man/man$s/${m##*/}.gz" ] || fail "make install did not install the man page ${m##*/}"
	zcat "$D$P/share/man/man$s/${m##*/}.gz" | cmp -s - "$m" || fail "the installed ${m##*/} differs"
done
for h in "$ROOT"/include/fsp/*.h; do
	cmp -s "$h" "$D$P/include/fsp/${h##*/}" || fail "installed header ${h##*/} differs from the tree's"
done
for p in fsp-memfs fsp-ptfs fspctl fsp-stress fsp-bench; do
	[ -x "$D$P/bin/$p" ] || fail "$P/bin/$p is not executable"
done
assert_eq "$(readlink "$D$P/lib/libfsp.so.$major")" "libfsp.so.$version" "the soname link"
assert_eq "$(readlink "$D$P/lib/libfsp.so")" "libfsp.so.$major" "the development link"
soname=$(readelf -d "$D$P/lib/libfsp.so.$version" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
assert_eq "$soname" "libfsp.so.$major" "SONAME of libfsp.so.$version"
grep -q "ExecStart=$P/bin/fsp-memfs " "$D$P/lib/systemd/system/fsp-memfs@.service" ||
	fail "the unit does not run $P/bin/fsp-memfs: $(grep ExecStart "$D$P/lib/systemd/system/fsp-memfs@.service")"

step "pkg-config against the DESTDIR install"
export PKG_CONFIG_PATH=$D$P/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$D
assert_eq "$(pkg-config --modversion libfsp)" "$version" "pkg-config --modversion libfsp"
flags=$(pkg-config --cflags --libs libfsp)
echo "pkg-config --cflags --libs libfsp: $flags"
assert_match "$flags" "-I$D$P/include" "the include path"
assert_match "$flags" "-L$D$P/lib.*-lfsp" "the library"

step "build examples/hello.c out of the tree"
mkdir "$T/out"
cp "$ROOT/examples/hello.c" "$T/out/"
# shellcheck disable=SC2046 # pkg-config's output is a list of words
(cd "$T/out" && cc -o hello hello.c $(pkg-config --cflags --libs libfsp)) >"$T/cc.log" 2>&1 ||
	fail "cc hello.c \$(pkg-config --cflags --libs libfsp) failed: $(head -n 5 "$T/cc.log")"
readelf -d "$T/out/hello" | grep "NEEDED.*\[libfsp.so.$major\]" >/dev/null ||
	fail "hello is not linked against libfsp.so.$major: $(readelf -d "$T/out/hello" | grep NEEDED)"
# shellcheck disable=SC2046
(cd "$T/out" && cc -static-libgcc -o hello-static hello.c $(pkg-config --cflags libfsp) \
	"$D$P/lib/libfsp.a" $(pkg-config --libs-only-other --static libfsp)) >"$T/cc2.log" 2>&1 ||
	fail "linking hello.c with the installed libfsp.a failed: $(head -n 5 "$T/cc2.log")"

step "run it: mount, read hello, unmount"
export LD_LIBRARY_PATH=$D$P/lib
FSP_MEMFS=$T/out/hello fs_mount "$T/mnt"
assert_eq "$(cat "$T/mnt/hello")" "Hello, world!" "the hello file read through the mount"
grep -q "libfsp.so.$version" "/proc/$(fs_pid "$T/mnt")/maps" ||
	fail "the running hello did not map the installed libfsp.so.$version"
fs_umount "$T/mnt"
unset LD_LIBRARY_PATH

step "make uninstall"
make -s -C "$ROOT" BUILD="$BUILD_DIR" DESTDIR="$D" PREFIX="$P" uninstall >"$T/uninstall.log" 2>&1 ||
	fail "make uninstall failed: $(tail -n 5 "$T/uninstall.log")"
left=$(find "$D" \( -type f -o -type l \) -printf '%P\n')
[ -z "$left" ] || fail "make uninstall left files behind: $(echo $left)"
echo "install: $(wc -l <"$T/files") files installed and removed"
