#!/bin/bash
# stats-dir: the daemon uses its stats socket directory only when it is a
# real directory (not a symlink) owned by its effective user with no access
# for group or others, and makes it 0700 when missing. A directory that is
# open to others, someone else's, a symlink or not a directory is refused:
# one log line, the mount works, `fspctl stats` does not answer, and
# nothing is created through the symlink.
# As root the directory is /run/fsp. So that the test never touches the
# /run/fsp of other mounts or test runs on this machine, it runs in a
# private mount namespace with a fresh tmpfs on /run: whatever it does to
# /run/fsp there is gone with the namespace when the test ends.
if [ -z "${FSP_STATS_DIR_NS:-}" ] && [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null 2>&1; then
	FSP_STATS_DIR_NS=1 exec unshare -m --propagation private bash "$0" "$@"
fi
. "$(dirname "$0")/../lib.sh"
need_root "the socket directory of root's daemons is /run/fsp"
need_memfs "the socket directory logic is the library's; one daemon is enough"
need_cmd unshare
[ "${FSP_STATS_DIR_NS:-}" = 1 ] || skip "could not enter a private mount namespace"
mount -t tmpfs -o mode=0755 fsp-test-run /run || skip "cannot mount a tmpfs on /run in the namespace"
FSPCTL=$BUILD_DIR/fspctl
D=/run/fsp
M=$T/mnt

# mount, use, expect stats to answer (ok) or not (refused), unmount
try() {
	local want=$1 what=$2 log out
	fs_mount "$M"
	echo hi >"$M/f"
	assert_eq "$(cat "$M/f")" hi "$what: the mount works"
	log=$(fs_log "$M")
	if [ "$want" = ok ]; then
		out=$("$FSPCTL" stats "$M") || fail "$what: fspctl stats failed"
		assert_match "$out" "^nodes " "$what: stats answer"
		grep -q "stats socket directory" "$log" && fail "$what: unexpected refusal: $(cat "$log")"
	else
		if out=$("$FSPCTL" stats "$M" 2>&1); then
			fail "$what: fspctl stats answered from a refused directory: $out"
		fi
		assert_eq "$(grep -c "stats socket directory $D .*not using it" "$log")" 1 \
			"$what: one refusal line in the daemon's log ($(cat "$log"))"
	fi
	fs_umount "$M"
}

step "no directory: made 0700, stats answer"
rm -rf "$D"
try ok "fresh"
assert_eq "$(stat -c '%F %a %u' "$D")" "directory 700 0" "the directory made"
assert_eq "$(find "$D" -mindepth 1 | wc -l)" 0 "the socket is removed at unmount"

step "mode 0777: refused"
chmod 0777 "$D"
try refused "mode 0777"

step "mode 0750: refused"
chmod 0750 "$D"
try refused "mode 0750"

step "owned by another user: refused"
chmod 0700 "$D"
chown nobody "$D" 2>/dev/null || chown 65534 "$D"
try refused "owner nobody"

step "a symlink to a directory of ours: refused, nothing made through it"
rm -rf "$D"
mkdir -m 0700 "$T/elsewhere"
ln -s "$T/elsewhere" "$D"
try refused "symlink"
assert_eq "$(find "$T/elsewhere" -mindepth 1 | wc -l)" 0 "nothing created through the symlink"
[ -L "$D" ] || fail "the symlink was replaced"

step "a regular file: refused"
rm -f "$D"
: >"$D"
try refused "regular file"

step "back to a good directory: stats answer"
rm -f "$D"
mkdir -m 0700 "$D"
try ok "restored"
