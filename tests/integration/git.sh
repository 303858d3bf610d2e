#!/bin/bash
# git: init/add/commit/log/gc/fsck inside the mount, clone inside the mount,
# and a clone of this project's own history into it.
# timeout: 600
. "$(dirname "$0")/../lib.sh"
need_cmd git

export HOME=$T GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME="fsp test" GIT_AUTHOR_EMAIL=test@fsp.invalid
export GIT_COMMITTER_NAME="fsp test" GIT_COMMITTER_EMAIL=test@fsp.invalid
M=$T/mnt
fs_mount "$M"

step "git init, add, commit"
cd "$M"
git init -q -b main repo
cd repo
cp "$ROOT"/tests/*.sh .
mkdir -p src/deep
for i in $(seq 1 40); do seq 1 $((i * 50)) >"src/deep/n$i.txt"; done
git add -A
git commit -q -m "first"
echo change >>lib.sh
git rm -q src/deep/n1.txt
git mv src/deep/n2.txt src/moved.txt
git commit -q -am "second"
git checkout -q -b topic
echo topic >topic.txt
git add topic.txt
git commit -q -m "topic"
git checkout -q main
git merge -q --no-edit topic
assert_eq "$(git log --oneline | wc -l)" 3 "commits in the log"
assert_eq "$(git status --porcelain | wc -l)" 0 "clean work tree"
git fsck --full --strict 2>&1 | tee "$T/fsck" | grep -qiE 'error|broken|missing' && fail "git fsck: $(head -n 3 "$T/fsck")"

step "git gc, fsck"
git gc -q --aggressive --prune=now
git fsck --full --strict
assert_eq "$(find .git/objects -type f -path '*/objects/??/*' | wc -l)" 0 "loose objects after gc"
git checkout -q HEAD~2 2>/dev/null
assert_eq "$(test -e src/deep/n1.txt && echo yes)" yes "old file back after checkout"
git checkout -q main
compare_backing "$M" repo

step "git clone inside the mount"
cd "$M"
git clone -q repo clone
git clone -q --no-local repo clone2
for c in clone clone2; do
	(cd "$c" && git fsck --full --strict) || fail "git fsck in $c"
	assert_eq "$(cd "$c" && git log --oneline | wc -l)" 3 "commits in $c"
	diff -r -x .git repo "$c" >&2 || fail "work tree of $c differs"
done
(cd clone && echo more >>topic.txt && git commit -q -am more && git push -q origin HEAD:pushed)
assert_eq "$(cd repo && git log --oneline pushed | wc -l)" 4 "commits after a push into the repository in the mount"
compare_backing "$M"

if [ -d "$ROOT/.git" ]; then
	step "git clone of this project into the mount"
	git clone -q --no-hardlinks "$ROOT" "$M/self"
	(cd "$M/self" && git fsck --full) || fail "git fsck of the clone of $ROOT"
	assert_eq "$(cd "$M/self" && git rev-parse HEAD)" "$(cd "$ROOT" && git rev-parse HEAD)" "HEAD of the clone"
fi

cd "$T"
rm -rf "$M"/*
assert_eq "$(count_entries "$M")" 0 "entries left"
fs_umount "$M"
