#!/bin/bash
# tar: tar c of a real tree into the mount, tar x out of it elsewhere and into
# the mount, compare; the same with --xattrs.
# timeout: 900
. "$(dirname "$0")/../lib.sh"

src=$(source_tree)
M=$T/mnt
fs_mount "$M"
parent=$(dirname "$src")
base=$(basename "$src")

step "tar c of $src into the mount"
tar --sort=name -C "$parent" -cf "$M/tree.tar" "$base"
tar --sort=name -C "$parent" -cf "$T/ref.tar" "$base"
assert_same_file "$M/tree.tar" "$T/ref.tar" "archive written into the mount"
drop_cache "$M/tree.tar"
assert_eq "$(tar -tf "$M/tree.tar" | wc -l)" "$(tar -tf "$T/ref.tar" | wc -l)" "entries listed from the archive in the mount"

step "tar x out of the mount"
mkdir "$T/out"
tar -C "$T/out" -xpf "$M/tree.tar"
diff -r --no-dereference "$src" "$T/out/$base" >"$T/diff" 2>&1 || {
	head -n 20 "$T/diff" >&2
	fail "tree extracted from the archive in the mount differs from $src"
}

step "tar x into the mount"
mkdir "$M/x"
tar -C "$M/x" -xpf "$T/ref.tar"
diff -r --no-dereference "$src" "$M/x/$base" >"$T/diff" 2>&1 || {
	head -n 20 "$T/diff" >&2
	fail "tree extracted into the mount differs from $src"
}
tree_listing "$src" >"$T/l.src"
tree_listing "$M/x/$base" >"$T/l.x"
diff "$T/l.src" "$T/l.x" >"$T/ldiff" || {
	head -n 20 "$T/ldiff" >&2
	fail "metadata differs after tar x into the mount"
}
compare_backing "$M" x
step "tar c of the extracted tree matches the original archive"
tar --sort=name -C "$M/x" -cf "$T/again.tar" "$base"
assert_same_file "$T/again.tar" "$T/ref.tar" "archive of the tree in the mount"
rm -rf "$M/x" "$M/tree.tar"

step "--xattrs"
mkdir -p "$M/xa/sub"
for i in 1 2 3; do
	echo "file $i" >"$M/xa/f$i"
	setfattr -n user.num -v "$i" "$M/xa/f$i"
	setfattr -n user.other -v "v$i-$(printf 'y%.0s' $(seq 1 200))" "$M/xa/f$i"
done
setfattr -n user.dir -v sub "$M/xa/sub"
echo s >"$M/xa/sub/s"
setfattr -n user.deep -v deep "$M/xa/sub/s"
(cd "$M" && getfattr -R -d -m '^user\.' --absolute-names xa) | sort >"$T/x.ref"
assert_eq "$(grep -c '^user\.' "$T/x.ref")" 8 "xattrs set"
tar --xattrs --xattrs-include='user.*' -C "$M" -cf "$T/xa.tar" xa
mkdir "$M/back"
tar --xattrs --xattrs-include='user.*' -C "$M/back" -xf "$T/xa.tar"
(cd "$M/back" && getfattr -R -d -m '^user\.' --absolute-names xa) | sort >"$T/x.back"
diff "$T/x.ref" "$T/x.back" >&2 || fail "xattrs after tar --xattrs x into the mount"
compare_backing "$M"
tar --xattrs --xattrs-include='user.*' -C "$M" -cf "$M/xa2.tar" xa
assert_eq "$(tar --xattrs -tvvf "$M/xa2.tar" | grep -c 'x: ')" 8 "xattrs stored by tar c --xattrs into the mount"
rm -rf "$M/xa" "$M/back" "$M/xa2.tar"
assert_eq "$(count_entries "$M")" 0 "entries left"
fs_umount "$M"
