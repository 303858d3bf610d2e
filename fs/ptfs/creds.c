/* creds.c — acting as the caller, per thread.
 *
 * With -o allow_other as root, an operation runs with the caller's fsuid,
 * fsgid and supplementary groups, so that the backing file system checks
 * permissions and assigns owners as it would for the caller. setfsuid,
 * setfsgid and setgroups are per-thread in the kernel; glibc's wrappers
 * of setgroups (and set*id) broadcast to every thread, so the raw system
 * calls are used.
 *
 * Invariants: a thread is back to the daemon's own credentials whenever no
 * callback runs on it (pt_creds_leave restores them). A caller with fsuid
 * != 0 loses the file system capabilities (CAP_DAC_*, CAP_FOWNER, ...) for
 * the operation: descriptors that need them (open_by_handle_at) are taken
 * before pt_creds_enter.
 *
 * Supplementary groups: the protocol sends them only with create-type
 * requests (and only the one that matters there), so they are read from
 * /proc/PID/status of the caller, checked against the request's fsuid and
 * fsgid, and remembered per thread for a second.
 */
#include "ptfs_i.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_GROUPS 256

static __thread struct {
	pid_t pid;
	uid_t uid;
	gid_t gid;
	struct timespec when;
	int n;
	gid_t g[MAX_GROUPS];
} gcache;

int pt_creds_init(void)
{
	pt.my_uid = geteuid();
	pt.my_gid = getegid();
	int n = getgroups(0, NULL);
	if (n < 0)
		return -errno;
	pt.groups = calloc(n ? (size_t)n : 1, sizeof(gid_t));
	if (!pt.groups)
		return -ENOMEM;
	n = getgroups(n, pt.groups);
	if (n < 0)
		return -errno;
	pt.ngroups = n;
	return 0;
}

/* Fields 4 of "Uid:" and "Gid:" are the fs ids. */
static bool fs_id_is(const char *line, unsigned long want)
{
	unsigned long a, b, c, d;
	return sscanf(line, "%lu %lu %lu %lu", &a, &b, &c, &d) == 4 && d == want;
}

/* The caller's supplementary groups into g (at most max); 0 when unknown. */
static int proc_groups(pid_t pid, uid_t uid, gid_t gid, gid_t *g, int max)
{
	char path[64], buf[16384];
	int n = 0, fd;
	ssize_t len;
	bool uid_ok = false, gid_ok = false;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return 0;
	buf[len] = 0;
	for (char *line = buf, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		if (!strncmp(line, "Uid:", 4)) {
			uid_ok = fs_id_is(line + 4, uid);
		} else if (!strncmp(line, "Gid:", 4)) {
			gid_ok = fs_id_is(line + 4, gid);
		} else if (!strncmp(line, "Groups:", 7)) {
			char *p = line + 7, *end;
			while (n < max) {
				unsigned long v = strtoul(p, &end, 10);
				if (end == p)
					break;
				g[n++] = (gid_t)v;
				p = end;
			}
		}
	}
	/* A process that changed ids (or a reused pid) since it made the
	 * request: trust only the ids the kernel sent. */
	return uid_ok && gid_ok ? n : 0;
}

static int caller_groups(fsp_req *r, uid_t uid, gid_t gid, gid_t *g, int max)
{
	int n = fsp_req_groups(r, g, max);
	pid_t pid = fsp_req_pid(r);
	struct timespec now;

	if (n > max)
		n = max;
	if (n < 0)
		n = 0;
	if (pid <= 0)
		return n;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
	if (gcache.pid != pid || gcache.uid != uid || gcache.gid != gid ||
	    now.tv_sec - gcache.when.tv_sec > 1) {
		gcache.n = proc_groups(pid, uid, gid, gcache.g, MAX_GROUPS);
		gcache.pid = pid;
		gcache.uid = uid;
		gcache.gid = gid;
		gcache.when = now;
	}
	for (int i = 0; i < gcache.n && n < max; i++)
		g[n++] = gcache.g[i];
	return n;
}

int pt_creds_enter(fsp_req *r, struct pt_creds *c)
{
	gid_t g[MAX_GROUPS + 8];

	c->on = false;
	if (!pt.switch_creds)
		return 0;
	uid_t uid = fsp_req_uid(r);
	gid_t gid = fsp_req_gid(r);
	if (uid == pt.my_uid && gid == pt.my_gid)
		return 0;
	int n = caller_groups(r, uid, gid, g, MAX_GROUPS + 8);
	if (syscall(SYS_setgroups, (size_t)n, g) < 0)
		return -errno;
	c->on = true;
	syscall(SYS_setfsgid, gid);
	syscall(SYS_setfsuid, uid);
	/* setfsuid reports nothing; asking again returns the current one */
	if ((uid_t)syscall(SYS_setfsuid, uid) != uid || (gid_t)syscall(SYS_setfsgid, gid) != gid) {
		pt_creds_leave(c);
		fsp_log(1, "could not take on uid %u gid %u", (unsigned)uid, (unsigned)gid);
		return -EPERM;
	}
	return 0;
}

void pt_creds_leave(struct pt_creds *c)
{
	if (!c->on)
		return;
	syscall(SYS_setfsuid, pt.my_uid);
	syscall(SYS_setfsgid, pt.my_gid);
	if (syscall(SYS_setgroups, (size_t)pt.ngroups, pt.groups) < 0) {
		/* A thread stuck with a caller's groups would be a security
		 * problem: stop rather than continue. */
		fsp_log(0, "restoring the daemon's groups failed: %s", strerror(errno));
		abort();
	}
	c->on = false;
}
