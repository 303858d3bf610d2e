/* transport.c — moving bytes between the kernel and the dispatcher.
 *
 * The dispatcher sees only struct fsp__chan: receive one request, send one
 * reply. This file implements it on /dev/fuse (read/writev); an io_uring
 * transport (FUSE_OVER_IO_URING) is another fsp__chan_ops, nothing above
 * this layer changes.
 * Invariants: a channel owns its fd unless it shares the session fd
 * (clone failed), which the session closes; recv never returns a partial
 * request (the kernel hands out whole requests or fails with EINVAL when the
 * buffer is too small, which is a fatal sizing bug).
 */
#include "fsp_i.h"
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <poll.h>
#include <unistd.h>

struct dev_chan {
	struct fsp__chan c;
	bool owns_fd;
};

static ssize_t dev_recv(struct fsp__chan *c, void *buf, size_t size)
{
	ssize_t n = read(c->fd, buf, size);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ENODEV;  /* never seen, but don't spin on it */
	return n;
}

static int dev_send(struct fsp__chan *c, const struct iovec *iov, int n)
{
	size_t want = 0;
	for (int i = 0; i < n; i++)
		want += iov[i].iov_len;
	ssize_t w = writev(c->fd, iov, n);
	if (w < 0)
		return -errno;
	/* The kernel takes a reply whole or not at all. */
	return (size_t)w == want ? 0 : -EIO;
}

static int dev_set_nonblock(struct fsp__chan *c)
{
	int fl = fcntl(c->fd, F_GETFL);
	if (fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static int dev_wait(struct fsp__chan *c)
{
	struct pollfd p = { .fd = c->fd, .events = POLLIN };
	if (poll(&p, 1, -1) < 0)
		return -errno;
	/* POLLERR: the session is gone; the next recv says ENODEV */
	return 0;
}

static void dev_close(struct fsp__chan *c)
{
	struct dev_chan *d = (struct dev_chan *)c;
	if (d->owns_fd && c->fd >= 0)
		close(c->fd);
	fsp__free(d);
}

static const struct fsp__chan_ops dev_ops = {
	.recv = dev_recv,
	.send = dev_send,
	.close = dev_close,
	.set_nonblock = dev_set_nonblock,
	.wait = dev_wait,
};

int fsp__chan_dev_open(int session_fd, int clone, struct fsp__chan **out)
{
	struct dev_chan *d = fsp__calloc(1, sizeof(*d));
	int fd = -1;

	if (!d)
		return -ENOMEM;
	d->c.ops = &dev_ops;
	d->c.fd = session_fd;
	if (clone) {
		/* A cloned fd has its own processing queue in the kernel, so
		 * workers don't contend on one queue lock for every reply. */
		fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
		if (fd >= 0) {
			uint32_t master = (uint32_t)session_fd;
			if (ioctl(fd, FW_DEV_IOC_CLONE, &master) == 0) {
				d->c.fd = fd;
				d->owns_fd = true;
			} else {
				close(fd);
			}
		}
	}
	*out = &d->c;
	return 0;
}
