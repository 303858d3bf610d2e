#!/bin/bash
# copy: cp -a of a real tree (headers or docs) into the mount, diff -r; cp -a
# inside the mount to a second tree, diff -r; rm -rf both; the mount is empty
# and its space is given back.
# timeout: 900
. "$(dirname "$0")/../lib.sh"

src=$(source_tree)
M=$T/mnt
fs_mount "$M"
used0=$(($(stat -f -c %b "$M") - $(stat -f -c %f "$M")))
nfiles=$(find "$src" | wc -l)
echo "source tree: $src ($nfiles entries, $(du -sh "$src" | cut -f1))"

step "cp -a into the mount"
cp -a "$src" "$M/a"
step "diff -r"
diff -r --no-dereference "$src" "$M/a" >"$T/diff" 2>&1 || {
	head -n 20 "$T/diff" >&2
	fail "diff -r between $src and its copy in the mount"
}
assert_eq "$(find "$M/a" | wc -l)" "$nfiles" "number of entries copied"
tree_listing "$src" >"$T/l.src"
tree_listing "$M/a" >"$T/l.a"
diff "$T/l.src" "$T/l.a" >"$T/ldiff" || {
	head -n 20 "$T/ldiff" >&2
	fail "metadata (type, mode, owner, size, mtime, link target) differs after cp -a"
}
compare_backing "$M" a

step "cp -a inside the mount"
cp -a "$M/a" "$M/b"
step "diff -r"
diff -r --no-dereference "$M/a" "$M/b" >"$T/diff" 2>&1 || {
	head -n 20 "$T/diff" >&2
	fail "diff -r between two trees in the mount"
}
tree_listing "$M/b" >"$T/l.b"
diff "$T/l.src" "$T/l.b" >"$T/ldiff" || {
	head -n 20 "$T/ldiff" >&2
	fail "metadata differs after cp -a inside the mount"
}
compare_backing "$M" b
drop_cache "$M/b" "$(find "$M/b" -type f | head -n 1)"
step "checksums after dropping caches"
(cd "$src" && find . -type f -print0 | sort -z | xargs -0 md5sum) >"$T/sum.src"
(cd "$M/b" && find . -type f -print0 | sort -z | xargs -0 md5sum) >"$T/sum.b"
cmp -s "$T/sum.src" "$T/sum.b" || fail "checksums of the second copy differ from the source"

step "mv of the whole tree, then rm -rf"
mv "$M/b" "$M/c"
assert_eq "$(find "$M/c" | wc -l)" "$nfiles" "entries after mv"
compare_backing "$M"
rm -rf "$M/a" "$M/c"
assert_eq "$(count_entries "$M")" 0 "entries left after rm -rf"
used1=$(($(stat -f -c %b "$M") - $(stat -f -c %f "$M")))
assert_le "$used1" $((used0 + 64)) "blocks in use after rm -rf (was $used0 before the copy)"

fs_umount "$M"
