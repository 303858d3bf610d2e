#!/bin/bash
# rsync: rsync -aHAX of a real tree into the mount; a second run finds nothing
# to do (sizes, mtimes, modes, links and xattrs all kept); --delete and -c.
# timeout: 600
. "$(dirname "$0")/../lib.sh"
need_cmd rsync

src=$(source_tree small)   # the metadata matters here, not the volume
M=$T/mnt
fs_mount "$M"
# a source with hard links and xattrs
mkdir "$T/src"
cp -a "$src" "$T/src/tree"
echo linked >"$T/src/a"
ln "$T/src/a" "$T/src/b"
setfattr -n user.tag -v v "$T/src/a" 2>/dev/null || note "the host file system has no user xattrs"

step "rsync -aHX into the mount"
rsync -aHX "$T/src/" "$M/dst/"
diff -r --no-dereference "$T/src" "$M/dst" >&2 || fail "diff after rsync"
assert_eq "$(stat -c %i "$M/dst/a")" "$(stat -c %i "$M/dst/b")" "hard link kept by rsync -H"
step "second rsync: nothing to do"
rsync -aHX --itemize-changes "$T/src/" "$M/dst/" >"$T/changes"
[ ! -s "$T/changes" ] || { head -n 20 "$T/changes" >&2; fail "a second rsync -a found changes"; }
rsync -aHXc --itemize-changes "$T/src/" "$M/dst/" >"$T/changes"
[ ! -s "$T/changes" ] || { head -n 20 "$T/changes" >&2; fail "rsync -c found changes"; }
compare_backing "$M" dst

step "rsync --delete, in place updates"
rm -rf "$T/src/tree/$(ls "$T/src/tree" | head -n 1)"
echo changed >>"$T/src/a"
rsync -aHX --delete "$T/src/" "$M/dst/"
rsync -aHX --inplace --no-whole-file "$T/src/" "$M/dst/"
diff -r --no-dereference "$T/src" "$M/dst" >&2 || fail "diff after rsync --delete"
compare_backing "$M" dst
step "rsync out of the mount"
rsync -aHX "$M/dst/" "$T/back/"
diff -r --no-dereference "$T/src" "$T/back" >&2 || fail "diff after rsync out of the mount"
rm -rf "$M/dst"
fs_umount "$M"
