/* sd_notify.c — tell a service manager (systemd, Type=notify) how we are:
 * the sd_notify protocol without libsystemd. One datagram of "KEY=VALUE\n"
 * lines to the AF_UNIX socket named by $NOTIFY_SOCKET: a path, or "@name"
 * for the abstract namespace (a leading NUL, the length says where it ends).
 *
 * Invariants: never fails the caller's work: no socket, a full or closed
 * socket, a bad variable are reported as a return value, never fatal; the
 * socket is not kept open between calls.
 */
#include "fsp_i.h"
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int fsp__sd_notify(const char *state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = getenv("NOTIFY_SOCKET");
	size_t n;
	int fd, rc = 0;

	if (!path || !*path)
		return 1;
	n = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || n < 2 || n >= sizeof(sa.sun_path))
		return -EINVAL;
	memcpy(sa.sun_path, path, n);
	if (path[0] == '@')
		sa.sun_path[0] = 0;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* an abstract name is exactly n bytes long; a path ends at its NUL */
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '/'));
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, len) < 0)
		rc = -errno;
	close(fd);
	return rc;
}
