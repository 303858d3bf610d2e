/* dispatch.c — INIT negotiation, the worker pool and the request loop.
 *
 * Invariants:
 *  - INIT is answered on the session fd by the main thread before any worker
 *    starts, so every worker knows the negotiated sizes and flags, which are
 *    immutable afterwards.
 *  - Each worker owns one channel (a cloned fd where the kernel allows) and
 *    two buffers of bufsize bytes; nothing on the request path takes a lock
 *    shared by all workers (node and handle tables are sharded).
 *  - Every byte of a request is checked before use: header length equals what
 *    was read, extensions fit, the opcode is known, the body is at least the
 *    op's minimum. Bad requests get EIO (unknown: ENOSYS) and one log line.
 *  - A worker leaves its loop on ENODEV (session over), on a fatal device
 *    error (which makes the session dead: sticky), or when `stopping` is set.
 */
#include "fsp_i.h"
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Sent to workers blocked in read() to make them look at `stopping`. */
#define WAKE_SIGNAL (SIGRTMIN + 3)

/* ---- request accessors (public) ---- */

uid_t fsp_req_uid(const fsp_req *r) { return r->in->uid; }
gid_t fsp_req_gid(const fsp_req *r) { return r->in->gid; }
pid_t fsp_req_pid(const fsp_req *r) { return (pid_t)r->in->pid; }
mode_t fsp_req_umask(const fsp_req *r) { return r->umask; }
fsp_session *fsp_req_session(const fsp_req *r) { return r->s; }
const char *fsp_req_opname(const fsp_req *r) { return fsp__opname(r->opcode); }

int fsp_req_interrupted(const fsp_req *r)
{
	return atomic_load_explicit(&r->w->interrupted, memory_order_relaxed);
}

int fsp_req_groups(const fsp_req *r, gid_t *list, int n)
{
	for (uint32_t i = 0; i < r->ngroups && (int)i < n; i++) {
		uint32_t g;
		memcpy(&g, &r->groups[i], sizeof(g));
		list[i] = g;
	}
	return (int)r->ngroups;
}

/* ---- INIT ---- */

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
	return f;
}

int fsp__dispatch_init_request(fsp_session *s)
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
		if (s->cfg.passthrough && !(agreed & FW_INIT_PASSTHROUGH))
			fsp_log(2, "kernel passthrough not offered; using the regular data path");

		uint32_t max_write = s->cfg.max_write ? s->cfg.max_write : 1024 * 1024;
		if (max_write < 4096)
			max_write = 4096;
		if (max_write > 256u * 4096u * 4u)  /* kernel's max_pages limit is 256 by default */
			max_write = 256u * 4096u * 4u;
		if (!(agreed & FW_INIT_MAX_PAGES) && max_write > 32 * 4096)
			max_write = 32 * 4096;
		struct fw_init_out io;
		memset(&io, 0, sizeof(io));
		io.major = FW_KERNEL_VERSION;
		io.minor = FW_KERNEL_MINOR_VERSION;
		io.max_readahead = ii.max_readahead;
		io.flags = (uint32_t)agreed;
		io.flags2 = (uint32_t)(agreed >> 32);
		io.max_background = 64;
		io.congestion_threshold = 48;
		io.max_write = max_write;
		io.time_gran = 1;
		io.max_pages = (uint16_t)((max_write + 4095) / 4096);
		if (agreed & FW_INIT_PASSTHROUGH)
			io.max_stack_depth = 1;
		s->proto_minor = ii.minor < FW_KERNEL_MINOR_VERSION ? ii.minor : FW_KERNEL_MINOR_VERSION;
		s->flags = agreed;
		s->max_write = max_write;
		/* a WRITE is header + write_in + payload; READ/READDIR replies
		 * are at most max_pages pages */
		s->bufsize = max_write + 4096;
		rc = reply_init(s, in->unique, 0, &io, sizeof(io));
		if (rc < 0) {
			fsp_log(0, "answering INIT: %s", strerror(-rc));
			goto out;
		}
		s->init_done = true;
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

/* ---- the request loop ---- */

static void log_unknown(fsp_session *s, uint32_t opcode)
{
	if (opcode < 64) {
		uint64_t bit = 1ULL << opcode;
		if (atomic_fetch_or(&s->unknown_logged, bit) & bit)
			return;
	}
	fsp_log(1, "unknown or unsupported request opcode %u (%s); answering ENOSYS", opcode,
		fsp__opname(opcode));
}

/* Supplementary groups extension: validated, borrowed from the buffer. */
static int parse_ext(fsp_req *r, const char *ext, size_t len)
{
	while (len >= sizeof(struct fw_ext_header)) {
		struct fw_ext_header eh;
		memcpy(&eh, ext, sizeof(eh));
		if (eh.size < sizeof(eh) || eh.size > len || eh.size % 8)
			return -EIO;
		if (eh.type == FW_EXT_GROUPS && eh.size >= sizeof(eh) + 4) {
			uint32_t nr;
			memcpy(&nr, ext + sizeof(eh), 4);
			if ((uint64_t)nr * 4 > eh.size - sizeof(eh) - 4)
				return -EIO;
			r->groups = (const uint32_t *)(ext + sizeof(eh) + 4);
			r->ngroups = nr;
		}
		ext += eh.size;
		len -= eh.size;
	}
	return len ? -EIO : 0;
}

/* One record per request: kind 0, length (LE 16 bits), bytes. Requests
 * over 64 KiB (big writes) are cut: the fuzzer's inputs are small anyway. */
static void trace(fsp_session *s, const char *buf, size_t len)
{
	if (len > 0xffff)
		len = 0xffff;
	unsigned char hdr[3] = { 0, (unsigned char)(len & 0xff), (unsigned char)(len >> 8) };
	struct iovec iov[2] = { { hdr, 3 }, { (void *)buf, len } };
	ssize_t w = writev(s->trace_fd, iov, 2);
	(void)w;
}

void fsp__dispatch(struct fsp__worker *w, size_t len)
{
	fsp_session *s = w->s;
	const struct fw_in_header *in = (const void *)w->inbuf;
	const struct fsp__op_desc *d;
	fsp_req r;

	if (s->trace_fd >= 0)
		trace(s, w->inbuf, len);
	if (len < sizeof(*in)) {
		/* no unique to answer to: the kernel never does this */
		FSP__STAT_ADD(w->st.malformed, 1);
		fsp_log(1, "request of %zu bytes is shorter than a header; dropped", len);
		return;
	}
	memset(&r, 0, sizeof(r));
	r.s = s;
	r.w = w;
	r.chan = w->chan;
	r.in = in;
	r.opcode = in->opcode;
	r.body = (const char *)(in + 1);
	r.body_len = len - sizeof(*in);
	d = fsp__op_desc(in->opcode);
	size_t extlen = (size_t)in->total_extlen * 8;

	if (in->len != len || extlen > r.body_len) {
		FSP__STAT_ADD(w->st.malformed, 1);
		fsp_log(1, "%s: header says %u bytes (%zu of extensions), read %zu; answering EIO",
			fsp__opname(in->opcode), in->len, extlen, len);
		if (!d || !(d->flags & FSP__OP_NOREPLY))
			fsp__reply_err(&r, -EIO);
		return;
	}
	r.body_len -= extlen;
	if (!d || in->opcode == FW_INIT) {
		FSP__STAT_ADD(w->st.unknown, 1);
		log_unknown(s, in->opcode);
		fsp__reply_err(&r, in->opcode == FW_INIT ? -EIO : -ENOSYS);
		return;
	}
	if (r.body_len < d->min_in || (extlen && parse_ext(&r, r.body + r.body_len, extlen) < 0)) {
		FSP__STAT_ADD(w->st.malformed, 1);
		fsp_log(1, "%s: body of %zu bytes is malformed (needs %u); %s", d->name, r.body_len,
			d->min_in, d->flags & FSP__OP_NOREPLY ? "dropped" : "answering EIO");
		if (!(d->flags & FSP__OP_NOREPLY))
			fsp__reply_err(&r, -EIO);
		return;
	}
	FSP__STAT_ADD(w->st.requests[in->opcode], 1);
	if (s->cfg.debug)
		fsp_log(3, "<- %s unique %llu node %llu len %u uid %u pid %u", d->name,
			(unsigned long long)in->unique, (unsigned long long)in->nodeid, in->len,
			in->uid, in->pid);
	atomic_store_explicit(&w->interrupted, 0, memory_order_relaxed);
	atomic_store_explicit(&w->cur_unique, in->unique, memory_order_release);
	if (d->flags & FSP__OP_NODE) {
		if (fsp__node_get(s->nodes, in->nodeid, &r.node) < 0) {
			fsp__reply_err(&r, -ESTALE);
			goto done;
		}
	}
	d->handler(&r);
	if (!r.replied && !(d->flags & FSP__OP_NOREPLY)) {
		FSP__BUG("%s handler sent no reply", d->name);
		fsp__reply_err(&r, -EIO);
	}
	if (r.node)
		fsp__node_put(s->nodes, r.node);
done:
	atomic_store_explicit(&w->cur_unique, 0, memory_order_release);
}

/* Why this reading policy. A FUSE round trip costs two wake-ups: the
 * kernel wakes a worker for the request, the worker's reply wakes the
 * caller. On virtual machines a wake-up of an idle CPU dominates everything
 * else (the daemon's own work is ~1% of a request). So worker 0 keeps
 * polling the queue for spin_ns after each request: the next request of a
 * sequential caller (cp, tar, git) is picked up without any wake-up. Other
 * workers blocked in read() would be woken for every request anyway (the
 * kernel wakes one sleeping reader per request) and mostly find it taken,
 * so they park in user space until worker 0 sees requests waiting when it
 * comes back for more — parallel callers — and then read alongside it until
 * the queue goes quiet again. */

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool should_stop(fsp_session *s)
{
	return atomic_load_explicit(&s->stopping, memory_order_relaxed) ||
	       atomic_load_explicit(&s->dead, memory_order_relaxed);
}

/* Handle one recv result; false when the worker must leave. */
static bool take(struct fsp__worker *w, ssize_t n)
{
	fsp_session *s = w->s;
	if (n == -EINTR || n == -EAGAIN || n == -ENOENT)
		return true;   /* ENOENT: the request was interrupted before we read it */
	if (n == -ENODEV) {
		atomic_store(&s->dead, 1);   /* unmounted or aborted: session over */
		return false;
	}
	if (n < 0) {
		fsp_log(0, "reading /dev/fuse: %s; stopping", strerror((int)-n));
		atomic_store(&s->dead, 1);
		return false;
	}
	fsp__dispatch(w, (size_t)n);
	return true;
}

static void set_helping(fsp_session *s, int on)
{
	if (atomic_load_explicit(&s->helping, memory_order_relaxed) == on)
		return;
	pthread_mutex_lock(&s->park_lock);
	atomic_store(&s->helping, on);
	if (on)
		pthread_cond_broadcast(&s->park_cond);
	pthread_mutex_unlock(&s->park_lock);
	if (!on) {
		/* helpers asleep in read() look at the flag again */
		for (int i = 1; i < s->nworkers; i++)
			if (s->workers[i].started)
				pthread_kill(s->workers[i].thread, WAKE_SIGNAL);
	}
}

static void *leader_main(struct fsp__worker *w)
{
	fsp_session *s = w->s;
	bool polling = s->spin_ns && w->chan->ops->set_nonblock(w->chan) == 0;
	unsigned backlog = 0;   /* requests in a row that were already waiting */

	while (!should_stop(s)) {
		ssize_t n = w->chan->ops->recv(w->chan, w->inbuf, s->bufsize);
		if (!polling) {
			if (!take(w, n))
				break;
			continue;
		}
		if (n >= 0) {
			/* A request was already waiting. One caller alone leaves
			 * short runs of these (its async RELEASEs); a long run
			 * means callers in parallel: wake the helpers. */
			if (++backlog >= 16 && s->nworkers > 1)
				set_helping(s, 1);
			if (!take(w, n))
				break;
			continue;
		}
		backlog = 0;
		if (n != -EAGAIN) {
			if (!take(w, n))
				break;
			continue;
		}
		uint64_t until = now_ns() + s->spin_ns;
		do {
			__builtin_ia32_pause();
			n = w->chan->ops->recv(w->chan, w->inbuf, s->bufsize);
		} while (n == -EAGAIN && now_ns() < until && !should_stop(s));
		if (n == -EAGAIN) {
			/* quiet: helpers go back to their parking place */
			set_helping(s, 0);
			w->chan->ops->wait(w->chan);
			continue;
		}
		if (!take(w, n))
			break;
	}
	return NULL;
}

static void *helper_main(struct fsp__worker *w)
{
	fsp_session *s = w->s;

	while (!should_stop(s)) {
		if (s->spin_ns && !atomic_load(&s->helping)) {
			pthread_mutex_lock(&s->park_lock);
			while (!atomic_load(&s->helping) && !should_stop(s))
				pthread_cond_wait(&s->park_cond, &s->park_lock);
			pthread_mutex_unlock(&s->park_lock);
			continue;
		}
		if (!take(w, w->chan->ops->recv(w->chan, w->inbuf, s->bufsize)))
			break;
	}
	return NULL;
}

static void *worker_main(void *arg)
{
	struct fsp__worker *w = arg;
	if (w->index == 0)
		leader_main(w);
	else
		helper_main(w);
	atomic_fetch_sub(&w->s->live_workers, 1);
	return NULL;
}

static void wake_handler(int sig)
{
	(void)sig;
}

int fsp__workers_start(fsp_session *s)
{
	struct sigaction sa;
	int i, rc;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = wake_handler;   /* no SA_RESTART: read() returns EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(WAKE_SIGNAL, &sa, NULL);

	s->workers = fsp__calloc(s->nworkers, sizeof(*s->workers));
	if (!s->workers)
		return -ENOMEM;
	for (i = 0; i < s->nworkers; i++) {
		struct fsp__worker *w = &s->workers[i];
		w->s = s;
		w->index = i;
		w->inbuf = fsp__malloc(s->bufsize);
		w->outbuf = fsp__malloc(s->bufsize);
		if (!w->inbuf || !w->outbuf)
			return -ENOMEM;
		/* worker 0 keeps the session fd; the others clone it */
		rc = fsp__chan_dev_open(s->fd, i > 0, &w->chan);
		if (rc < 0)
			return rc;
	}
	sigset_t set, old;
	sigfillset(&set);
	sigdelset(&set, WAKE_SIGNAL);
	sigdelset(&set, SIGSEGV);
	sigdelset(&set, SIGBUS);
	sigdelset(&set, SIGFPE);
	sigdelset(&set, SIGILL);
	sigdelset(&set, SIGABRT);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	for (i = 0; i < s->nworkers; i++) {
		struct fsp__worker *w = &s->workers[i];
		atomic_fetch_add(&s->live_workers, 1);
		rc = pthread_create(&w->thread, NULL, worker_main, w);
		if (rc) {
			atomic_fetch_sub(&s->live_workers, 1);
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			return -rc;
		}
		w->started = true;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return 0;
}

/* Stop and join every worker, free their resources. Idempotent. */
void fsp__workers_stop(fsp_session *s)
{
	if (!s->workers)
		return;
	atomic_store(&s->stopping, 1);
	pthread_mutex_lock(&s->park_lock);
	pthread_cond_broadcast(&s->park_cond);
	pthread_mutex_unlock(&s->park_lock);
	for (int round = 0; atomic_load(&s->live_workers) > 0; round++) {
		pthread_mutex_lock(&s->park_lock);
		pthread_cond_broadcast(&s->park_cond);
		pthread_mutex_unlock(&s->park_lock);
		for (int i = 0; i < s->nworkers; i++)
			if (s->workers[i].started)
				pthread_kill(s->workers[i].thread, WAKE_SIGNAL);
		usleep(round < 10 ? 1000 : 20000);
	}
	for (int i = 0; i < s->nworkers; i++) {
		struct fsp__worker *w = &s->workers[i];
		if (w->started)
			pthread_join(w->thread, NULL);
		if (w->chan)
			w->chan->ops->close(w->chan);
		fsp__free(w->inbuf);
		fsp__free(w->outbuf);
	}
	fsp__free(s->workers);
	s->workers = NULL;
	s->nworkers = 0;
}
