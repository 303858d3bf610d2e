/* mount.c — checking the mount point, mounting and unmounting.
 *
 * As root: mount(2) with an fd= option on a freshly opened /dev/fuse. As
 * anyone else: fusermount3, which mounts for us and passes the /dev/fuse fd
 * back over a socket named by _FUSE_COMMFD (SCM_RIGHTS).
 * Invariants: s->mounted is true exactly while a mount we made may exist; we
 * unmount only the mount we made (same device number), never one that
 * replaced it. Every failure is one clear line naming the mount point.
 */
#include "fsp_i.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

int fsp__check_mountpoint(const char *path, char **canon)
{
	struct statx stx;
	char *real;

	if (!path || !*path) {
		fsp_log(0, "no mount point given");
		return -EINVAL;
	}
	if (statx(AT_FDCWD, path, 0, STATX_TYPE, &stx) < 0) {
		int e = errno;
		if (e == ENOTCONN)
			fsp_log(0, "mount point %s is a stale FUSE mount (its file system is gone); "
				"unmount it first: fusermount3 -u %s", path, path);
		else if (e == ENOENT)
			fsp_log(0, "mount point %s does not exist", path);
		else if (e == ENOTDIR)
			fsp_log(0, "mount point %s: a component of the path is not a directory", path);
		else if (e == EACCES)
			fsp_log(0, "mount point %s: permission denied", path);
		else
			fsp_log(0, "mount point %s: %s", path, strerror(e));
		return -e;
	}
	if (!S_ISDIR(stx.stx_mode)) {
		fsp_log(0, "mount point %s is not a directory", path);
		return -ENOTDIR;
	}
	if ((stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
	    (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) && strcmp(path, "/") != 0) {
		/* The kernel may have answered from its cache; ask the mounted
		 * file system itself: a dead FUSE daemon shows as ENOTCONN. */
		if (statx(AT_FDCWD, path, AT_STATX_FORCE_SYNC, STATX_TYPE, &stx) < 0 &&
		    errno == ENOTCONN) {
			fsp_log(0, "mount point %s is a stale FUSE mount (its file system is gone); "
				"unmount it first: fusermount3 -u %s", path, path);
			return -ENOTCONN;
		}
		fsp_log(0, "mount point %s is busy: something is already mounted there "
			"(unmount it first: umount %s)", path, path);
		return -EBUSY;
	}
	real = realpath(path, NULL);
	if (!real) {
		int e = errno;
		fsp_log(0, "mount point %s: %s", path, strerror(e));
		return -e;
	}
	*canon = real;
	return 0;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
	char *d = s;
	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 4;
		} else {
			*d++ = *s++;
		}
	}
	*d = 0;
}

int fsp__mount_device(const char *path, unsigned *maj, unsigned *min)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	int rc = -ENOENT;

	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		unsigned a, b;
		char mp[PATH_MAX + 1], *sep, fstype[256];
		if (sscanf(line, "%*u %*u %u:%u %*s %4096s", &a, &b, mp) != 3)
			continue;
		sep = strstr(line, " - ");
		if (!sep || sscanf(sep + 3, "%255s", fstype) != 1)
			continue;
		if (strncmp(fstype, "fuse", 4) != 0)
			continue;
		unescape(mp);
		if (strcmp(mp, path) == 0) {
			*maj = a;
			*min = b;
			rc = 0;  /* keep going: the last one is on top */
		}
	}
	free(line);
	fclose(f);
	return rc;
}

static int build_opts(fsp_session *s, char *buf, size_t size, bool for_fusermount, int fd)
{
	const struct fsp_config *c = &s->cfg;
	int n;
	if (for_fusermount)
		n = snprintf(buf, size, "%s,fsname=%s,subtype=%s%s%s%s%s%s",
			     c->read_only ? "ro" : "rw", s->fsname, s->subtype,
			     (c->mount_flags & MS_NOSUID) ? ",nosuid" : "",
			     (c->mount_flags & MS_NODEV) ? ",nodev" : "",
			     c->default_permissions ? ",default_permissions" : "",
			     c->allow_other ? ",allow_other" : "",
			     c->auto_unmount ? ",auto_unmount" : "");
	else
		n = snprintf(buf, size, "fd=%d,rootmode=40000,user_id=%u,group_id=%u%s%s", fd,
			     (unsigned)getuid(), (unsigned)getgid(),
			     c->default_permissions ? ",default_permissions" : "",
			     c->allow_other ? ",allow_other" : "");
	if (n > 0 && c->mount_opts && *c->mount_opts)
		n += snprintf(buf + n, size - n, ",%s", c->mount_opts);
	return n < 0 || (size_t)n >= size ? -E2BIG : 0;
}

static int mount_direct(fsp_session *s)
{
	char opts[1024], type[300];
	unsigned long flags = s->cfg.mount_flags | (s->cfg.read_only ? MS_RDONLY : 0);
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		int e = errno;
		if (e == ENOENT || e == ENODEV || e == ENXIO)
			fsp_log(0, "/dev/fuse is missing: the kernel has no FUSE support loaded "
				"(try: modprobe fuse)");
		else
			fsp_log(0, "cannot open /dev/fuse: %s", strerror(e));
		return -e;
	}
	int rc = build_opts(s, opts, sizeof(opts), false, fd);
	if (rc < 0) {
		fsp_log(0, "mount options too long");
		close(fd);
		return rc;
	}
	snprintf(type, sizeof(type), "fuse.%s", s->subtype);
	if (mount(s->fsname, s->mountpoint, type, flags, opts) < 0) {
		int e = errno;
		if (e == EPERM)
			fsp_log(0, "mounting %s: not permitted", s->mountpoint);
		else if (e == ENODEV)
			fsp_log(0, "mounting %s: the kernel does not know the fuse file system type",
				s->mountpoint);
		else
			fsp_log(0, "mounting %s: %s (options %s)", s->mountpoint, strerror(e), opts);
		close(fd);
		return -e;
	}
	s->fd = fd;
	return 0;
}

static int run_fusermount(fsp_session *s, char *const argv[], int commfd)
{
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		char env[32];
		if (commfd >= 0) {
			snprintf(env, sizeof(env), "%d", commfd);
			setenv("_FUSE_COMMFD", env, 1);
		}
		execvp("fusermount3", argv);
		fprintf(stderr, "%s: cannot run fusermount3: %s (install the fuse3 package)\n",
			program_invocation_short_name, strerror(errno));
		_exit(127);
	}
	(void)s;
	return pid;
}

static int mount_fusermount(fsp_session *s)
{
	char opts[1024];
	int sv[2] = { -1, -1 };
	int rc = build_opts(s, opts, sizeof(opts), true, -1);

	if (rc < 0) {
		fsp_log(0, "mount options too long");
		return rc;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return -errno;
	fcntl(sv[1], F_SETFD, FD_CLOEXEC);
	char *argv[] = { "fusermount3", "-o", opts, "--", s->mountpoint, NULL };
	int pid = run_fusermount(s, argv, sv[0]);
	close(sv[0]);
	if (pid < 0) {
		close(sv[1]);
		return pid;
	}
	/* Receive the /dev/fuse fd. */
	char cbuf[CMSG_SPACE(sizeof(int))], byte;
	struct iovec iov = { &byte, 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			      .msg_controllen = sizeof(cbuf) };
	ssize_t n;
	do
		n = recvmsg(sv[1], &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	int fd = -1;
	struct cmsghdr *cm = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL;
	if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
		memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
	if (!s->cfg.auto_unmount) {
		int st;
		waitpid(pid, &st, 0);
		close(sv[1]);
	}
	/* with auto_unmount, fusermount3 waits on sv[1] and unmounts when we
	 * die; the socket stays open for the life of the process */
	if (fd < 0) {
		fsp_log(0, "mounting %s with fusermount3 failed (see its message above)",
			s->mountpoint);
		return -EPERM;
	}
	s->fd = fd;
	s->via_fusermount = true;
	return 0;
}

#ifndef STATX_MNT_ID_UNIQUE
#define STATX_MNT_ID_UNIQUE 0x4000U   /* Linux 6.8 */
#endif

/* The id of the mount at path, without a request to any FUSE file system
 * (AT_STATX_DONT_SYNC: cached attributes are fine, we want only the mount
 * id). The unique id (6.8+) is never reused; the plain one can be. */
static uint64_t mount_id(const char *path)
{
	struct statx stx;
	if (statx(AT_FDCWD, path, AT_STATX_DONT_SYNC, STATX_MNT_ID_UNIQUE | STATX_MNT_ID, &stx) < 0)
		return 0;
	if (!(stx.stx_mask & (STATX_MNT_ID_UNIQUE | STATX_MNT_ID)))
		return 0;
	return stx.stx_mnt_id;
}

int fsp__mount(fsp_session *s)
{
	int rc = geteuid() == 0 ? mount_direct(s) : mount_fusermount(s);
	if (rc < 0)
		return rc;
	s->mounted = true;
	s->mnt_id = mount_id(s->mountpoint);
	if (fsp__mount_device(s->mountpoint, &s->dev_major, &s->dev_minor) < 0)
		fsp_log(1, "mounted, but %s is not in /proc/self/mountinfo", s->mountpoint);
	return 0;
}

void fsp__unmount(fsp_session *s)
{
	unsigned maj, min;

	if (!s->mounted)
		return;
	s->mounted = false;
	/* Only our own mount: it may be gone (umount from outside), and the
	 * same path may already hold a new mount, even of the same device
	 * number, which the kernel reuses at once. */
	if (fsp__mount_device(s->mountpoint, &maj, &min) < 0 || maj != s->dev_major ||
	    min != s->dev_minor)
		return;
	if (!s->mnt_id || mount_id(s->mountpoint) != s->mnt_id)
		return;
	if (!s->via_fusermount || geteuid() == 0) {
		if (umount2(s->mountpoint, MNT_DETACH) == 0 || errno == EINVAL)
			return;
		if (geteuid() == 0) {
			fsp_log(1, "unmounting %s: %s", s->mountpoint, strerror(errno));
			return;
		}
	}
	char *argv[] = { "fusermount3", "-u", "-q", "-z", "--", s->mountpoint, NULL };
	int pid = run_fusermount(s, argv, -1);
	if (pid > 0) {
		int st;
		waitpid(pid, &st, 0);
	}
}
