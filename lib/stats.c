/* stats.c — counters, and the socket that serves them to `fspctl stats`.
 *
 * The socket lives outside the mount (/run/fsp/MAJ:MIN.sock for root,
 * $XDG_RUNTIME_DIR/fsp/ or /tmp/fsp-UID/ otherwise), named by the mount's
 * device number, so a reader finds it from the mount point through
 * /proc/self/mountinfo without touching the file system — it answers even
 * when the file system is stuck.
 * Invariants: one thread serves the socket; it reads only counters that are
 * safe to read from any thread; the socket file is removed at stop. The
 * directory is used only when it is a real directory (not a symlink) of
 * the effective user with no access for group or others: /tmp/fsp-UID is a
 * name anyone can take first, and a socket bound in someone else's
 * directory, or through their symlink, is theirs to replace or to serve.
 */
#include "fsp_i.h"
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

static int socket_dir(char *buf, size_t size)
{
	int n;
	if (geteuid() == 0) {
		n = snprintf(buf, size, "/run/fsp");
	} else {
		const char *x = getenv("XDG_RUNTIME_DIR");
		if (x && *x)
			n = snprintf(buf, size, "%s/fsp", x);
		else
			n = snprintf(buf, size, "/tmp/fsp-%u", (unsigned)geteuid());
	}
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* Make dir (0700), or check the one that is there. 0, or -EPERM (logged:
 * one line naming what is wrong) or -errno. */
static int socket_dir_ready(const char *dir)
{
	const char *why = NULL;
	struct stat st;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		int rc = -errno;
		fsp_log(1, "stats socket directory %s: mkdir: %s", dir, strerror(-rc));
		return rc;
	}
	/* lstat: a symlink (ours or not) is refused, never followed */
	if (lstat(dir, &st) < 0)
		return -errno;
	if (S_ISLNK(st.st_mode))
		why = "is a symbolic link";
	else if (!S_ISDIR(st.st_mode))
		why = "is not a directory";
	else if (st.st_uid != geteuid())
		why = "is owned by another user";
	else if (st.st_mode & 077)
		why = "is open to group or others";
	if (why) {
		fsp_log(1, "stats socket directory %s %s (uid %u, mode %04o): not using it",
			dir, why, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

int fsp__stats_socket_path(unsigned maj, unsigned min, char *buf, size_t size)
{
	char dir[200];
	int rc = socket_dir(dir, sizeof(dir));
	if (rc < 0)
		return rc;
	int n = snprintf(buf, size, "%s/%u:%u.sock", dir, maj, min);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* A reader who is not root may be asking about root's mount: its socket is
 * under /run/fsp, not under the reader's own directory. */
static int root_socket_path(unsigned maj, unsigned min, char *buf, size_t size)
{
	int n = snprintf(buf, size, "/run/fsp/%u:%u.sock", maj, min);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static size_t add(char *buf, size_t size, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static size_t add(char *buf, size_t size, size_t len, const char *fmt, ...)
{
	va_list ap;
	if (len >= size)
		return len;
	va_start(ap, fmt);
	int n = vsnprintf(buf + len, size - len, fmt, ap);
	va_end(ap);
	return n < 0 ? len : len + (size_t)n;
}

int fsp__stats_format(fsp_session *s, char *buf, size_t size)
{
	struct fsp_stats st;
	uint64_t req[FSP__OPCODE_MAX] = { 0 }, err[FSP__OPCODE_MAX] = { 0 }, unknown = 0, bad = 0;
	size_t len = 0;

	fsp_session_stats(s, &st);
	for (int i = 0; i < s->nslots && s->workers; i++) {
		struct fsp__worker *w = &s->workers[i];
		for (int op = 0; op < FSP__OPCODE_MAX; op++) {
			req[op] += FSP__STAT_GET(w->st.requests[op]);
			err[op] += FSP__STAT_GET(w->st.errors[op]);
		}
		unknown += FSP__STAT_GET(w->st.unknown);
		bad += FSP__STAT_GET(w->st.malformed);
	}
	len = add(buf, size, len,
		  "nodes %llu\nhandles %llu\ninflight %llu\nrequests %llu\nerrors %llu\n"
		  "bytes_read %llu\nbytes_written %llu\nworkers %d\nunknown %llu\nmalformed %llu\n",
		  (unsigned long long)st.nodes, (unsigned long long)st.handles,
		  (unsigned long long)st.inflight, (unsigned long long)st.requests,
		  (unsigned long long)st.errors, (unsigned long long)st.bytes_read,
		  (unsigned long long)st.bytes_written, atomic_load(&s->live_workers),
		  (unsigned long long)unknown,
		  (unsigned long long)bad);
	/* who serves the mount, for `fspctl list` and `fspctl stop` */
	len = add(buf, size, len, "pid %d\nstarted %lld\ntransport %s\nversion %s\n"
		  "fsname %s\nsubtype %s\nmountpoint %s\n", (int)getpid(), (long long)s->started,
		  s->uring ? "io_uring" : "dev", FSP_VERSION_STRING, s->fsname, s->subtype,
		  s->mountpoint ? s->mountpoint : "");
	for (int op = 0; op < FSP__OPCODE_MAX; op++)
		if (req[op])
			len = add(buf, size, len, "op.%s %llu\n", fsp__opname(op),
				  (unsigned long long)req[op]);
	for (int op = 0; op < FSP__OPCODE_MAX; op++)
		if (err[op])
			len = add(buf, size, len, "err.%s %llu\n", fsp__opname(op),
				  (unsigned long long)err[op]);
	if (s->ops.stats && len < size)
		len += s->ops.stats(s, buf + len, size - len);
	if (len >= size)
		len = size - 1;
	buf[len] = 0;
	return (int)len;
}

static void *serve(void *arg)
{
	fsp_session *s = arg;
	char *buf = fsp__malloc(64 * 1024);

	while (!atomic_load(&s->stats_stop)) {
		struct pollfd p = { .fd = s->stats_fd, .events = POLLIN };
		if (poll(&p, 1, 100) <= 0)
			continue;
		int c = accept4(s->stats_fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		if (buf) {
			int n = fsp__stats_format(s, buf, 64 * 1024);
			const char *p2 = buf;
			while (n > 0) {
				ssize_t w = send(c, p2, (size_t)n, MSG_NOSIGNAL);
				if (w <= 0)
					break;
				p2 += w;
				n -= (int)w;
			}
		}
		close(c);
	}
	fsp__free(buf);
	return NULL;
}

int fsp__stats_start(fsp_session *s)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[200];
	int fd, rc;

	if (!s->dev_major && !s->dev_minor)
		return -ENOENT;
	rc = socket_dir(dir, sizeof(dir));
	if (rc < 0)
		return rc;
	rc = socket_dir_ready(dir);
	if (rc < 0)
		return rc;
	rc = fsp__stats_socket_path(s->dev_major, s->dev_minor, sa.sun_path, sizeof(sa.sun_path));
	if (rc < 0)
		return rc;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(sa.sun_path);  /* left by a daemon that died with this device number */
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	struct stat st;
	if (stat(sa.sun_path, &st) == 0) {
		s->stats_dev = st.st_dev;
		s->stats_ino = st.st_ino;
	}
	s->stats_path = strdup(sa.sun_path);
	s->stats_fd = fd;
	atomic_store(&s->stats_stop, 0);
	rc = pthread_create(&s->stats_thread, NULL, serve, s);
	if (rc) {
		close(fd);
		s->stats_fd = -1;
		return -rc;
	}
	s->stats_started = true;
	return 0;
}

void fsp__stats_stop(fsp_session *s)
{
	if (s->stats_started) {
		atomic_store(&s->stats_stop, 1);
		pthread_join(s->stats_thread, NULL);
		s->stats_started = false;
	}
	if (s->stats_fd >= 0) {
		close(s->stats_fd);
		s->stats_fd = -1;
	}
	if (s->stats_path) {
		/* The device number is free again the moment the kernel ends
		 * our mount, and a new daemon may have bound the same path:
		 * remove only the socket we made. */
		struct stat st;
		if (stat(s->stats_path, &st) == 0 && st.st_dev == s->stats_dev &&
		    st.st_ino == s->stats_ino)
			unlink(s->stats_path);
		free(s->stats_path);
		s->stats_path = NULL;
	}
}

int fsp_stats_query(const char *mountpoint, char *buf, size_t size)
{
	unsigned maj, min;
	char *real;
	int rc;

	if (!buf || size == 0)
		return -EINVAL;
	real = realpath(mountpoint, NULL);
	if (!real)
		return -errno;
	rc = fsp__mount_device(real, &maj, &min);
	free(real);
	if (rc < 0)
		return rc;
	return fsp_stats_query_dev(maj, min, buf, size);
}

int fsp_stats_query_dev(unsigned maj, unsigned min, char *buf, size_t size)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, rc;
	size_t len = 0;

	if (!buf || size == 0)
		return -EINVAL;
	rc = fsp__stats_socket_path(maj, min, sa.sun_path, sizeof(sa.sun_path));
	if (rc < 0)
		return rc;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	if (rc == -ENOENT && geteuid() != 0 &&
	    root_socket_path(maj, min, sa.sun_path, sizeof(sa.sun_path)) == 0)
		rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	if (rc < 0) {
		/* no socket file: a FUSE mount, but nobody answers for it */
		close(fd);
		return rc == -ENOENT ? -ECONNREFUSED : rc;
	}
	/* a stopped or wedged daemon accepts (the kernel queues the
	 * connection) but never writes: give up rather than hang a reader */
	struct timeval tv = { 2, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (;;) {
		ssize_t n = read(fd, buf + len, size - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && len == 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			rc = -ETIMEDOUT;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == size - 1)
			break;
	}
	close(fd);
	buf[len] = 0;
	return rc < 0 ? rc : (int)len;
}
