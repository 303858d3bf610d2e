#!/bin/bash
# fstab: fsp file systems mount the way every Linux file system does:
# `mount -t fuse.fsp-memfs SOURCE DIR -o OPTS` and the same line in an fstab
# (`mount -T FILE DIR`), for fsp-memfs and fsp-ptfs (whose SOURCE is the
# directory it mirrors). mount(8) runs /sbin/mount.fuse3 (package fuse3),
# which runs `/bin/sh -c 'fsp-memfs SOURCE DIR -o OPTS'`: the program takes a
# source, ignores fstab-only options (mount.fuse3 passes some of them on),
# detaches once the mount is up, and `umount DIR` ends it.
#
# mount(8) drops PATH from the helper's environment, so the shell finds the
# program only in its default path (/usr/local/bin, /usr/bin, ...). The test
# runs in a private mount namespace and bind-mounts a DESTDIR `make install`
# (PREFIX=/usr/local) over /usr/local/bin there: the machine's own
# /usr/local/bin is never touched, and the namespace (with every mount made
# in it) is gone when the test's processes are.
# timeout: 120
if [ -z "${FSP_FSTAB_NS:-}" ] && [ "$(id -u)" = 0 ] && command -v unshare >/dev/null 2>&1; then
	FSP_FSTAB_NS=1 exec unshare --mount --propagation private bash "$0" "$@"
fi
. "$(dirname "$0")/../lib.sh"
need_memfs "tests mount(8) and fstab with fsp-memfs and fsp-ptfs themselves"
[ "${FSP_TEST_TRANSPORT:-dev}" = dev ] || skip "does not depend on the transport: runs in the /dev/fuse run only"
need_root "mount(8) with a FUSE type, and a private mount namespace"
[ "${FSP_FSTAB_NS:-}" = 1 ] || skip "no unshare(1) for a private mount namespace"
need_cmd mount.fuse3 pgrep
need_fuse

step "install into $T/root (PREFIX=/usr/local), bind it over /usr/local/bin in this namespace"
make -s -C "$ROOT" BUILD="$BUILD_DIR" DESTDIR="$T/root" PREFIX=/usr/local install >"$T/install.log" 2>&1 ||
	fail "make install failed: $(tail -n 5 "$T/install.log")"
mount --bind "$T/root/usr/local/bin" /usr/local/bin
[ "$(env -i /bin/sh -c 'command -v fsp-memfs')" = /usr/local/bin/fsp-memfs ] ||
	fail "the helper's shell does not find fsp-memfs in /usr/local/bin"

# daemon_of PROG DIR: the pid of PROG serving DIR (it detached: not our child)
daemon_of() {
	pgrep -n -f -- "^(/usr/local/bin/)?$1 .*$2( |$)" || true
}

# expect_unmount DIR PID: `umount DIR` unmounts and the daemon exits.
expect_unmount() {
	local out
	out=$(umount -- "$1" 2>&1) || fail "umount $1 failed: $out"
	is_mounted "$1" && fail "$1 is still mounted after umount"
	wait_dead "$2" 10 || fail "the daemon (pid $2) did not exit within 10 s of umount $1"
	echo "umount $1: unmounted, daemon $2 gone"
}

# mounted DIR SOURCE TYPE: DIR is mounted, showing SOURCE and fuse.TYPE.
mounted() {
	local line
	line=$(awk -v d="$1" '$5 == d { for (i = 6; i <= NF; i++) if ($i == "-") print $(i + 1), $(i + 2) }' \
		/proc/self/mountinfo | tail -n 1)
	assert_eq "$line" "fuse.$3 $2" "type and source of $1 in /proc/self/mountinfo"
}

step "mount -t fuse.fsp-memfs memfs DIR -o size=64M,nodes=1000,noatime"
M=$T/m1
mkdir -p "$M"
_fsp_mounts+=("$M")   # lib.sh's EXIT trap unmounts it, whatever happens
mount -t fuse.fsp-memfs memfs "$M" -o size=64M,nodes=1000,noatime >"$T/m1.log" 2>&1 ||
	fail "mount -t fuse.fsp-memfs failed: $(cat "$T/m1.log")"
# mount(8) returned: the program detached only once the mount was up
is_mounted "$M" || fail "mount returned 0 but $M is not mounted"
mounted "$M" memfs fsp-memfs
grep -E "^[^ ]+ $M " /proc/mounts | grep noatime >/dev/null || fail "noatime did not reach the mount: $(grep " $M " /proc/mounts)"
pid=$(daemon_of fsp-memfs "$M")
[ -n "$pid" ] || fail "no fsp-memfs process serves $M"
echo hello >"$M/f"
assert_eq "$(cat "$M/f")" hello "a file written and read back"
blocks=$(stat -f -c '%b %S' "$M" | awk '{ print $1 * $2 }')
assert_eq "$blocks" $((64 << 20)) "statfs total bytes with size=64M"
expect_unmount "$M" "$pid"

step "mount.fuse3 passes fstab-only options on: the program ignores them"
M=$T/m2
mkdir -p "$M"
_fsp_mounts+=("$M")
mount.fuse3 memfs2 "$M" -t fuse.fsp-memfs \
	-o defaults,_netdev,x-systemd.automount,x-systemd.requires=network.target,comment=fsp,owner,group,loop,ro \
	>"$T/m2.log" 2>&1 || fail "mount.fuse3 with fstab options failed: $(cat "$T/m2.log")"
is_mounted "$M" || fail "mount.fuse3 returned 0 but $M is not mounted"
mounted "$M" memfs2 fsp-memfs
assert_errno EROFS "open('$M/x', 'w')" "creating a file on a ro mount"
expect_unmount "$M" "$(daemon_of fsp-memfs "$M")"

step "a bad option through mount(8) fails, says why, and mounts nothing"
M=$T/m3
mkdir -p "$M"
_fsp_mounts+=("$M")
rc=0
mount -t fuse.fsp-memfs memfs "$M" -o bogus_option=1 >"$T/m3.log" 2>&1 || rc=$?
sed 's/^/  mount| /' "$T/m3.log"
[ $rc -ne 0 ] || fail "mount -o bogus_option=1 succeeded"
grep -q "bogus_option" "$T/m3.log" || fail "the failure does not name the bad option"
is_mounted "$M" && fail "$M was mounted despite the bad option"

step "an fstab: fsp-memfs and fsp-ptfs lines, mount -T FILE DIR"
mkdir -p "$T/m4" "$T/m5" "$T/src"
_fsp_mounts+=("$T/m4" "$T/m5")
echo "from the source" >"$T/src/file"
cat >"$T/fstab" <<TAB
# a temporary fstab, as /etc/fstab would have it
memfs     $T/m4  fuse.fsp-memfs  defaults,noauto,nofail,_netdev,x-systemd.automount,comment=fsp-test,size=32M,mode=0750  0 0
$T/src    $T/m5  fuse.fsp-ptfs   defaults,nofail,x-systemd.requires=local-fs.target,passthrough=off,nosuid,nodev  0 0
TAB
cat "$T/fstab"
out=$(mount -T "$T/fstab" "$T/m4" 2>&1) || fail "mount -T fstab $T/m4 failed: $out"
mounted "$T/m4" memfs fsp-memfs
assert_eq "$(stat -c %a "$T/m4")" 750 "mode= of the fstab line on the root"
assert_eq "$(stat -f -c '%b %S' "$T/m4" | awk '{ print $1 * $2 }')" $((32 << 20)) "size=32M from fstab"
out=$(mount -T "$T/fstab" "$T/m5" 2>&1) || fail "mount -T fstab $T/m5 (fsp-ptfs) failed: $out"
mounted "$T/m5" "$T/src" fsp-ptfs
assert_eq "$(cat "$T/m5/file")" "from the source" "fsp-ptfs mirrors its fstab source"
echo "through the mount" >"$T/m5/new"
assert_eq "$(cat "$T/src/new")" "through the mount" "a file written through fsp-ptfs, in the source"
p4=$(daemon_of fsp-memfs "$T/m4")
p5=$(daemon_of fsp-ptfs "$T/m5")
[ -n "$p4" ] && [ -n "$p5" ] || fail "no daemons found for the fstab mounts ($p4, $p5)"
expect_unmount "$T/m4" "$p4"
expect_unmount "$T/m5" "$p5"
[ -z "$(pgrep -f -- "^(/usr/local/bin/)?fsp-(memfs|ptfs) .*$T/m[0-9]" || true)" ] ||
	fail "fsp daemons are left: $(pgrep -a -f -- "$T/m[0-9]")"
echo "fstab: mount -t, mount.fuse3 and fstab lines for fsp-memfs and fsp-ptfs"
