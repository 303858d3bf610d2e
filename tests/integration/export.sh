#!/bin/bash
# export: file handles (name_to_handle_at / open_by_handle_at, what NFS
# export and fanotify use) on fsp-memfs. The kernel checks a handle's
# generation against its inode's; memfs gives generation 0 and its node ids
# restart each session, so the library stamps a per-session generation:
#  - within a session a handle opens its file, also after drop_caches and
#    after readdirplus reported the same node (a generation that differed
#    between entry kinds would make the kernel mark the inode bad);
#  - a handle taken before a remount fails with ESTALE after it, even though
#    the new session gives the same node id to a new file of the same name.
. "$(dirname "$0")/../lib.sh"
need_root "open_by_handle_at needs CAP_DAC_READ_SEARCH; drop_caches needs root"
need_memfs "node ids that restart with each session are memfs's"
need_cmd cc

# fh get PATH FILE: save PATH's handle in FILE and print "nodeid gen".
# fh open MNT FILE: open the saved handle on MNT's mount; print OK and the
# first line of the file, or the errno name.
cat >"$T/fh.c" <<'C'
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	char buf[sizeof(struct file_handle) + MAX_HANDLE_SZ];
	struct file_handle *h = (void *)buf;
	int mid, fd;
	FILE *f;
	if (argc != 4)
		return 2;
	if (!strcmp(argv[1], "get")) {
		h->handle_bytes = MAX_HANDLE_SZ;
		if (name_to_handle_at(AT_FDCWD, argv[2], h, &mid, 0) < 0) {
			printf("%s\n", strerrorname_np(errno));
			return 1;
		}
		if (!(f = fopen(argv[3], "wb")) ||
		    fwrite(buf, sizeof(*h) + h->handle_bytes, 1, f) != 1 || fclose(f))
			return 3;
		unsigned *w = (unsigned *)h->f_handle;
		if (h->handle_bytes < 12)
			return 4;
		printf("%llu %u\n", ((unsigned long long)w[0] << 32) | w[1], w[2]);
		return 0;
	}
	if (!(f = fopen(argv[3], "rb")) || fread(buf, 1, sizeof(buf), f) < sizeof(*h))
		return 3;
	fclose(f);
	int mfd = open(argv[2], O_RDONLY | O_DIRECTORY);
	if (mfd < 0)
		return 3;
	fd = open_by_handle_at(mfd, h, O_RDONLY);
	if (fd < 0) {
		printf("%s\n", strerrorname_np(errno));
		return 0;
	}
	char line[256] = "";
	ssize_t n = read(fd, line, sizeof(line) - 1);
	line[n > 0 ? n : 0] = 0;
	line[strcspn(line, "\n")] = 0;
	printf("OK %s\n", line);
	return 0;
}
C
cc -O0 -o "$T/fh" "$T/fh.c" || fail "cannot build the file handle helper"
FH=$T/fh

drop_caches_all() {
	sync
	echo 2 >/proc/sys/vm/drop_caches
}

M=$T/mnt
step "session 1: a handle opens its file"
fs_mount "$M"
echo one >"$M/f"
mkdir "$M/d"
echo deep >"$M/d/g"
read -r f_id f_gen < <("$FH" get "$M/f" "$T/f.h")
read -r g_id g_gen < <("$FH" get "$M/d/g" "$T/g.h")
echo "f: node $f_id generation $f_gen; d/g: node $g_id generation $g_gen"
assert_ne "$f_gen" 0 "generation of a memfs node (memfs gives 0: the session's is used)"
assert_eq "$g_gen" "$f_gen" "every node of the session has the session's generation"
assert_eq "$("$FH" open "$M" "$T/f.h")" "OK one" "open_by_handle_at of f"

step "session 1: after readdirplus and drop_caches"
ls -l "$M" "$M/d" >/dev/null      # readdirplus entries for f, d and g
assert_eq "$(cat "$M/f")" one "f readable after readdirplus named it"
assert_eq "$("$FH" get "$M/f" "$T/f2.h")" "$f_id $f_gen" "handle of f after readdirplus"
exec 7<"$M/f" 8<"$M/d/g"          # keep the inodes: the library can only
drop_caches_all                   # answer for nodes the kernel still holds
assert_eq "$("$FH" open "$M" "$T/f.h")" "OK one" "open_by_handle_at of f after drop_caches"
assert_eq "$("$FH" open "$M" "$T/g.h")" "OK deep" "open_by_handle_at of d/g after drop_caches"
exec 7<&- 8<&-
drop_caches_all
# Once the kernel forgot a node the library does not hold it either, and
# has no way to ask memfs for a node id: such a handle is stale (ESTALE),
# never another file.
got=$("$FH" open "$M" "$T/g.h")
case "$got" in
"OK deep") note "d/g still cached after drop_caches" ;;
ESTALE) note "evicted node: ESTALE (no lookup by node id)" ;;
*) fail "open_by_handle_at of an evicted node: expected ESTALE or its own content, got $got" ;;
esac
fs_umount "$M"

step "session 2: the same node id for a new file; the old handle is stale"
fs_mount "$M"
echo two >"$M/f"
read -r f2_id f2_gen < <("$FH" get "$M/f" "$T/f2.h")
echo "new f: node $f2_id generation $f2_gen"
assert_eq "$f2_id" "$f_id" "node id of the new f (memfs restarts its counter)"
assert_ne "$f2_gen" "$f_gen" "the generation differs between sessions"
assert_ne "$f2_gen" 0 "generation in session 2"
exec 7<"$M/f"                      # the kernel holds node $f_id again
assert_eq "$("$FH" open "$M" "$T/f.h")" ESTALE "a handle from session 1 on the new f"
assert_eq "$("$FH" open "$M" "$T/f2.h")" "OK two" "a handle from session 2"
drop_caches_all
assert_eq "$("$FH" open "$M" "$T/f.h")" ESTALE "a handle from session 1 after drop_caches"
exec 7<&-
fs_umount "$M"
