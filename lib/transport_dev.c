/* transport_dev.c — requests and replies over /dev/fuse (read / writev).
 *
 * Invariants:
 *  - A channel is one worker's: its own clone of the session fd where the
 *    kernel allows (its own file, so its own O_NONBLOCK state), else the
 *    session fd itself, which the session closes. It owns its request
 *    buffer; the reply buffer is the worker's.
 *  - recv never returns a partial request (the kernel hands out whole
 *    requests, or fails with EINVAL when the buffer is too small: a sizing
 *    bug, fatal).
 *  - Spinning reads with O_NONBLOCK and gives up with -EAGAIN; sleeping is
 *    a blocking read(), so the kernel wakes exactly one sleeping reader per
 *    request.
 *  - FSP__WAKE_SIGNAL is blocked in the worker except inside that blocking
 *    read; wake() signals a channel only while its owner is inside it. A
 *    signal sent as the window closes stays pending and ends the next
 *    blocking read early (EINTR, read again). It never reaches a callback.
 */
#include "fsp_i.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

struct dev_chan {
	struct fsp__chan c;
	bool owns_fd;
	bool nonblock;            /* the fd's O_NONBLOCK, as last set */
	char *inbuf, *outbuf;     /* inbuf owned; outbuf the worker's */
	size_t bufsize;
	pthread_t owner;          /* set before in_read is first raised */
	atomic_int in_read;       /* owner is inside the blocking read */
};

static int set_nonblock(struct dev_chan *d, bool on)
{
	if (d->nonblock == on)
		return 0;
	int fl = fcntl(d->c.fd, F_GETFL);
	if (fl < 0 || fcntl(d->c.fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK) < 0)
		return -errno;
	d->nonblock = on;
	return 0;
}

static ssize_t read_one(struct dev_chan *d)
{
	ssize_t n = read(d->c.fd, d->inbuf, d->bufsize);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ENODEV;  /* never seen, but don't spin on it */
	fsp__kernel_acquire();
	return n;
}

static ssize_t dev_recv(struct fsp__chan *c, uint64_t spin_ns, char **in, char **out)
{
	struct dev_chan *d = (struct dev_chan *)c;
	ssize_t n = -EAGAIN;

	*in = d->inbuf;
	*out = d->outbuf;
	/* Spinning needs a file of our own: O_NONBLOCK on a shared fd would
	 * turn the other workers' sleeping reads into busy ones. */
	if (spin_ns && d->owns_fd && set_nonblock(d, true) == 0) {
		uint64_t until = fsp__now_ns() + spin_ns;
		do {
			n = read_one(d);
			if (n != -EAGAIN)
				return n;
			fsp__cpu_relax();
		} while (fsp__now_ns() < until);
		return -EAGAIN;
	}
	if (set_nonblock(d, false) < 0)
		return -EAGAIN;
	sigset_t wake, old;
	sigemptyset(&wake);
	sigaddset(&wake, FSP__WAKE_SIGNAL);
	d->owner = pthread_self();
	atomic_store(&d->in_read, 1);
	pthread_sigmask(SIG_UNBLOCK, &wake, &old);
	n = read_one(d);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	atomic_store(&d->in_read, 0);
	return n;
}

static int dev_send(struct fsp__chan *c, const struct iovec *iov, int n)
{
	size_t want = 0;
	for (int i = 0; i < n; i++)
		want += iov[i].iov_len;
	fsp__kernel_release();
	ssize_t w = writev(c->fd, iov, n);
	if (w < 0)
		return -errno;
	/* The kernel takes a reply whole or not at all. */
	return (size_t)w == want ? 0 : -EIO;
}

static void dev_wake(struct fsp__chan *c)
{
	struct dev_chan *d = (struct dev_chan *)c;
	if (atomic_load(&d->in_read))
		pthread_kill(d->owner, FSP__WAKE_SIGNAL);
}

static void dev_close(struct fsp__chan *c)
{
	struct dev_chan *d = (struct dev_chan *)c;
	if (d->owns_fd && c->fd >= 0)
		close(c->fd);
	fsp__free(d->inbuf);
	fsp__free(d);
}

static const struct fsp__chan_ops dev_ops = {
	.name = "dev",
	.recv = dev_recv,
	.send = dev_send,
	.wake = dev_wake,
	.close = dev_close,
};

int fsp__chan_dev_open(int session_fd, int clone, size_t bufsize, char *outbuf,
		       struct fsp__chan **out)
{
	struct dev_chan *d = fsp__calloc(1, sizeof(*d));
	int fd = -1;

	if (!d)
		return -ENOMEM;
	d->inbuf = fsp__malloc(bufsize);
	if (!d->inbuf) {
		fsp__free(d);
		return -ENOMEM;
	}
	d->bufsize = bufsize;
	d->outbuf = outbuf;
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
	if (!d->owns_fd) {
		int fl = fcntl(session_fd, F_GETFL);
		d->nonblock = fl >= 0 && (fl & O_NONBLOCK);
	}
	*out = &d->c;
	return 0;
}
