/* init.c — the INIT handshake: what fsp and the kernel agree on.
 *
 * Invariants:
 *  - INIT is read and answered on the session fd by the main thread before
 *    any worker starts; what it settles (protocol minor, flags, max_write,
 *    bufsize) is immutable afterwards, so workers read it without locks.
 *  - Only flags the kernel offered are agreed; a kernel older than 7.31 is
 *    refused with one line.
 *  - FUSE over io_uring is asked for only when the configuration allows it
 *    (io_uring=auto|on) and the kernel offers it (enable_uring=Y, 6.14+).
 */
#include "fsp_i.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>


static int reply_init(fsp_session *s, uint64_t unique, int err, const void *data, size_t len)
{
	struct fw_out_header oh = { .len = (uint32_t)(sizeof(oh) + len), .error = err,
				    .unique = unique };
	struct iovec iov[2] = { { &oh, sizeof(oh) }, { (void *)data, len } };
	size_t want = sizeof(oh) + len;
	ssize_t w = writev(s->fd, iov, len ? 2 : 1);
	if (w < 0)
		return -errno;
	return (size_t)w == want ? 0 : -EIO;
}

/* io_uring=auto takes the ring only on machines with many CPUs. Measured on
 * a 2-vCPU guest, the big copy over the ring took twice as long as over
 * /dev/fuse (each queue needs its own waiting worker, and a request's
 * delivery runs as task work of the thread that gave the entry back); the
 * published gains (creates 2.5-3.7x) come from many-core machines, where
 * per-CPU queues spare the shared /dev/fuse queue. */
#define URING_AUTO_MIN_CPUS 8

static bool want_uring(const fsp_session *s)
{
	if (s->cfg.io_uring == FSP_IO_URING_OFF)
		return false;
	if (s->cfg.io_uring == FSP_IO_URING_AUTO &&
	    sysconf(_SC_NPROCESSORS_ONLN) < URING_AUTO_MIN_CPUS)
		return false;
	return fsp__uring_enabled() && fsp__uring_usable();
}

static uint64_t wanted_flags(const fsp_session *s)
{
	uint64_t f = FW_INIT_ASYNC_READ | FW_INIT_ATOMIC_O_TRUNC | FW_INIT_EXPORT_SUPPORT |
		     FW_INIT_BIG_WRITES | FW_INIT_DO_READDIRPLUS | FW_INIT_READDIRPLUS_AUTO |
		     FW_INIT_ASYNC_DIO | FW_INIT_PARALLEL_DIROPS | FW_INIT_MAX_PAGES |
		     FW_INIT_CACHE_SYMLINKS | FW_INIT_EXT | FW_INIT_SETXATTR_EXT |
		     FW_INIT_HAS_EXPIRE_ONLY | FW_INIT_CREATE_SUPP_GROUP |
		     FW_INIT_DIRECT_IO_ALLOW_MMAP;
	if (s->cfg.writeback_cache)
		f |= FW_INIT_WRITEBACK_CACHE;
	/* the kernel turns passthrough off under a writeback cache: asking
	 * for both would make every backing registration fail */
	if (s->cfg.passthrough && !s->cfg.writeback_cache)
		f |= FW_INIT_PASSTHROUGH;
	if (s->cfg.handle_killpriv)
		f |= FW_INIT_HANDLE_KILLPRIV_V2;
	/* locks reach the file system only when it takes them; otherwise the
	 * kernel keeps them (local to this mount) */
	if (s->ops.getlk && s->ops.setlk)
		f |= FW_INIT_POSIX_LOCKS;
	if (s->ops.flock)
		f |= FW_INIT_FLOCK_LOCKS;
	/* no-open: O_TRUNC must come as a SETATTR, since no OPEN carries it */
	if (s->cfg.no_open)
		f = (f & ~FW_INIT_ATOMIC_O_TRUNC) | FW_INIT_NO_OPEN_SUPPORT;
	if (s->cfg.no_opendir)
		f |= FW_INIT_NO_OPENDIR_SUPPORT;
	if (want_uring(s))
		f |= FW_INIT_OVER_IO_URING;
	return f;
}

/* -o read_ahead_kb: the kernel takes the smaller of its bdi's read-ahead
 * and INIT's max_readahead, so a larger one is set on the bdi, once the
 * INIT reply (handled as it is written) has settled it. The READs it makes
 * are still at most max_pages. Failing is not fatal: the default stays. */
static void set_read_ahead(fsp_session *s)
{
	char path[80], val[24];
	int fd, n, rc = 0;

	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", s->dev_major,
		 s->dev_minor);
	n = snprintf(val, sizeof(val), "%u\n", s->cfg.read_ahead_kb);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, val, (size_t)n) != n)
		rc = -errno;
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		fsp_log(1, "read_ahead_kb=%u: %s: %s; the kernel's read-ahead stays",
			s->cfg.read_ahead_kb, path, strerror(-rc));
}

int fsp__init_negotiate(fsp_session *s)
{
	size_t size = 64 * 1024;
	char *buf = fsp__malloc(size);
	int rc = -EIO;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n = read(s->fd, buf, size);
		if (n < 0) {
			rc = -errno;
			if (rc == -EINTR || rc == -EAGAIN) {
				if (s->exit_requested)
					goto out;
				continue;
			}
			fsp_log(0, "reading INIT from /dev/fuse: %s", strerror(-rc));
			goto out;
		}
		const struct fw_in_header *in = (const void *)buf;
		if ((size_t)n < sizeof(*in) || in->len != (uint32_t)n) {
			fsp_log(0, "malformed first request from the kernel (%zd bytes)", n);
			rc = -EPROTO;
			goto out;
		}
		if (in->opcode != FW_INIT) {
			fsp_log(1, "%s before INIT; answering EIO", fsp__opname(in->opcode));
			reply_init(s, in->unique, -EIO, NULL, 0);
			continue;
		}
		struct fw_init_in ii;
		memset(&ii, 0, sizeof(ii));
		size_t blen = (size_t)n - sizeof(*in);
		if (blen < 8) {
			fsp_log(0, "INIT too short (%zu bytes)", blen);
			rc = -EPROTO;
			goto out;
		}
		memcpy(&ii, in + 1, blen < sizeof(ii) ? blen : sizeof(ii));
		if (ii.major > FW_KERNEL_VERSION) {
			/* Offer our major; the kernel asks again in our terms. */
			struct fw_init_out io = { .major = FW_KERNEL_VERSION,
						  .minor = FW_KERNEL_MINOR_VERSION };
			reply_init(s, in->unique, 0, &io, sizeof(io));
			continue;
		}
		if (ii.major < FW_KERNEL_VERSION || ii.minor < 31) {
			fsp_log(0, "the kernel speaks FUSE protocol %u.%u; fsp needs 7.31 or "
				"later (Linux 5.4+)", ii.major, ii.minor);
			reply_init(s, in->unique, -EPROTO, NULL, 0);
			rc = -EPROTO;
			goto out;
		}
		uint64_t kflags = ii.flags;
		if (kflags & FW_INIT_EXT)
			kflags |= (uint64_t)ii.flags2 << 32;
		uint64_t agreed = kflags & wanted_flags(s);
		if (s->cfg.io_uring == FSP_IO_URING_ON && !(agreed & FW_INIT_OVER_IO_URING)) {
			fsp_log(0, "io_uring=on, but the kernel does not offer FUSE over io_uring "
				"(it needs Linux 6.14+ and Y in %s)", FSP__URING_PARAM);
			reply_init(s, in->unique, -EPROTO, NULL, 0);
			rc = -EPROTONOSUPPORT;
			goto out;
		}
		if (s->cfg.passthrough && !(agreed & FW_INIT_PASSTHROUGH))
			fsp_log(2, "kernel passthrough not offered; using the regular data path");

		/* The kernel counts requests in pages (max_pages, 32 without
		 * MAX_PAGES, at most its fuse_max_pages_limit, 256 by default). */
		uint32_t pg = fsp__page_size();
		uint32_t max_write = s->cfg.max_write ? s->cfg.max_write : 1024 * 1024;
		if (max_write < pg)
			max_write = pg;
		if (max_write > 256u * pg)
			max_write = 256u * pg;
		if (!(agreed & FW_INIT_MAX_PAGES) && max_write > 32 * pg)
			max_write = 32 * pg;
		struct fw_init_out io;
		memset(&io, 0, sizeof(io));
		io.major = FW_KERNEL_VERSION;
		io.minor = FW_KERNEL_MINOR_VERSION;
		io.max_readahead = ii.max_readahead;
		if ((uint64_t)s->cfg.read_ahead_kb * 1024 > io.max_readahead)
			io.max_readahead = s->cfg.read_ahead_kb * 1024u;
		io.flags = (uint32_t)agreed;
		io.flags2 = (uint32_t)(agreed >> 32);
		io.max_background = 64;
		io.congestion_threshold = 48;
		io.max_write = max_write;
		io.time_gran = 1;
		io.max_pages = (uint16_t)((max_write + pg - 1) / pg);
		if (agreed & FW_INIT_PASSTHROUGH)
			io.max_stack_depth = 1;
		s->proto_minor = ii.minor < FW_KERNEL_MINOR_VERSION ? ii.minor : FW_KERNEL_MINOR_VERSION;
		s->flags = agreed;
		s->max_write = max_write;
		/* a WRITE is header + write_in + payload; READ/READDIR replies
		 * are at most max_pages pages */
		s->bufsize = max_write + pg;
		rc = reply_init(s, in->unique, 0, &io, sizeof(io));
		if (rc < 0) {
			fsp_log(0, "answering INIT: %s", strerror(-rc));
			goto out;
		}
		s->init_done = true;
		if (s->cfg.read_ahead_kb && (s->dev_major || s->dev_minor))
			set_read_ahead(s);
		if (s->cfg.debug)
			fsp_log(3, "INIT: protocol 7.%u, flags 0x%llx, max_write %u",
				s->proto_minor, (unsigned long long)agreed, max_write);
		rc = 0;
		goto out;
	}
out:
	fsp__free(buf);
	return rc;
}
