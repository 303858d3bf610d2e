/* engine.c — the worker pool and the life of one request in it.
 *
 * Invariants:
 *  - A pool is the set of workers waiting on one kind of channel: the
 *    /dev/fuse pool, and with FUSE over io_uring one pool per ring queue
 *    (a queue gets only its own CPU's requests, so each needs its waiter).
 *  - While fewer than `cap` workers of a pool are busy, at least one of them
 *    waits on the channel: a worker that takes a request and sees no other
 *    worker waiting wakes a parked one, or starts a new one, before it runs
 *    the callback (cover()). A callback may block for a minute and delay no
 *    request that does not wait for it.
 *  - A worker back from a request parks on the pool's condition variable
 *    when `reserve` others already wait; no signal steers a worker.
 *  - At most one worker of a pool spins (polls the channel) at a time: the
 *    cheap path for a single sequential caller costs no wake-up at all.
 *  - Worker threads run with every signal blocked. The /dev/fuse transport
 *    unblocks its stop signal only inside its blocking read(), so no signal
 *    lands in a callback; the ring is woken with a NOP.
 *  - s->workers holds every slot of every pool, allocated once and freed
 *    only by fsp_session_free: counters may be read at any time.
 *  - The in-flight registry is the slots' cur_unique. An INTERRUPT marks the
 *    request it names (by unique, never "the worker's current request");
 *    one that arrives before its request is being served is kept as an
 *    early mark and answered EAGAIN so the kernel queues it again.
 * Lock order: a pool's lock is a leaf (nothing is taken inside it but
 * pthread_create); node and handle shard locks are never held across
 * anything here.
 */
#include "fsp_i.h"
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { POOL_DEV, POOL_URING };

struct fsp__pool {
	fsp_session *s;
	int kind;                 /* POOL_DEV or POOL_URING; immutable */
	int queue;                /* ring queue of a POOL_URING pool; immutable */
	int first, cap;           /* its slots: s->workers[first .. first + cap) */
	int reserve;              /* idle workers kept waiting on the channel */
	atomic_int waiting;       /* workers in recv or on their way into it */
	atomic_int spinning;      /* 1 while one of them may spin */
	/* Guarded by lock: */
	pthread_mutex_t lock;
	pthread_cond_t cond;      /* parked workers wait here for a ticket */
	int started;              /* slots given a thread, first..first+started */
	int parked;
	int tickets;              /* wake-ups handed out, <= parked */
};

/* ---- request accessors (public) ---- */

uid_t fsp_req_uid(const fsp_req *r) { return r->in->uid; }
gid_t fsp_req_gid(const fsp_req *r) { return r->in->gid; }
pid_t fsp_req_pid(const fsp_req *r) { return (pid_t)r->in->pid; }
mode_t fsp_req_umask(const fsp_req *r) { return r->umask; }
fsp_session *fsp_req_session(const fsp_req *r) { return r->s; }
const char *fsp_req_opname(const fsp_req *r) { return fsp__opname(r->opcode); }

int fsp_req_interrupted(const fsp_req *r)
{
	/* a session that is ending interrupts everything: a callback that
	 * waits (SETLKW) must not hold up the join of its worker */
	return atomic_load_explicit(&r->w->interrupted, memory_order_relaxed) == r->in->unique ||
	       atomic_load_explicit(&r->s->dead, memory_order_relaxed) ||
	       atomic_load_explicit(&r->s->stopping, memory_order_relaxed);
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

/* ---- INTERRUPT ---- */

/* Early marks: INTERRUPTs whose request no worker serves yet. Uniques are
 * never reused within a connection, so a stale mark (its request was already
 * answered) can never hit another request; the oldest is overwritten. */
static void early_mark(fsp_session *s, uint64_t unique)
{
	unsigned i = atomic_fetch_add(&s->early_next, 1) % FSP__EARLY_MARKS;
	atomic_store(&s->early[i], unique);
	atomic_fetch_add(&s->early_count, 1);
}

/* Start serving unique: publish it, take an early mark made for it. */
static void register_request(struct fsp__worker *w, uint64_t unique)
{
	fsp_session *s = w->s;
	atomic_store_explicit(&w->interrupted, 0, memory_order_relaxed);
	atomic_store(&w->cur_unique, unique);
	if (atomic_load_explicit(&s->early_count, memory_order_relaxed) == 0)
		return;
	for (int i = 0; i < FSP__EARLY_MARKS; i++) {
		uint64_t u = unique;
		if (atomic_compare_exchange_strong(&s->early[i], &u, 0)) {
			atomic_fetch_sub(&s->early_count, 1);
			atomic_store(&w->interrupted, unique);
		}
	}
}

/* INTERRUPT for unique: 1 when a worker serves it (now marked), else 0
 * (an early mark is kept for it). */
int fsp__engine_interrupt(fsp_session *s, uint64_t unique)
{
	for (int i = 0; i < s->nslots; i++) {
		struct fsp__worker *w = &s->workers[i];
		if (atomic_load(&w->cur_unique) != unique)
			continue;
		atomic_store(&w->interrupted, unique);
		/* it may have moved on between the two loads: harmless, the
		 * mark names unique and no later request has it */
		return 1;
	}
	early_mark(s, unique);
	return 0;
}

/* ---- one request ---- */

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
	const struct fsp__op_desc *d;
	fsp_req r;

	if (s->trace_fd >= 0)
		trace(s, w->inbuf, len);
	memset(&r, 0, sizeof(r));
	r.s = s;
	r.w = w;
	r.chan = w->chan;
	d = fsp__decode(&r, w->inbuf, len);
	if (!d)
		goto out;
	if (s->cfg.debug)
		fsp_log(3, "<- %s unique %llu node %llu len %u uid %u pid %u", d->name,
			(unsigned long long)r.in->unique, (unsigned long long)r.in->nodeid,
			r.in->len, r.in->uid, r.in->pid);
	register_request(w, r.in->unique);
	if (d->flags & FSP__OP_NODE) {
		if (fsp__node_get(s->nodes, r.in->nodeid, &r.node) < 0) {
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
	atomic_store(&w->cur_unique, 0);
out:
	/* a ring entry goes back to the kernel only with a reply or this */
	if (!r.replied && w->chan->ops->finish)
		w->chan->ops->finish(w->chan);
}

/* ---- the pool ---- */

static bool should_stop(fsp_session *s)
{
	return atomic_load_explicit(&s->stopping, memory_order_relaxed) ||
	       atomic_load_explicit(&s->dead, memory_order_relaxed);
}

static void wake_all_parked(fsp_session *s)
{
	for (int i = 0; i < s->npools; i++) {
		struct fsp__pool *p = &s->pools[i];
		pthread_mutex_lock(&p->lock);
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
	}
}

static void set_dead(fsp_session *s)
{
	if (atomic_exchange(&s->dead, 1) == 0)
		wake_all_parked(s);
}

static void *worker_main(void *arg);
static int open_chan(struct fsp__worker *w);

/* Called with p->lock held. */
static int start_worker(struct fsp__pool *p)
{
	fsp_session *s = p->s;
	struct fsp__worker *w = &s->workers[p->first + p->started];
	int rc;

	/* the channel before the thread: whoever stops the pool sees it */
	if (!w->chan) {
		rc = open_chan(w);
		if (rc < 0) {
			fsp_log(1, "worker %d: opening its channel: %s", w->index, strerror(-rc));
			return rc;
		}
	}
	atomic_fetch_add(&s->live_workers, 1);
	rc = pthread_create(&w->thread, NULL, worker_main, w);
	if (rc) {
		atomic_fetch_sub(&s->live_workers, 1);
		fsp_log(1, "starting a worker thread: %s", strerror(rc));
		return -rc;
	}
	atomic_store(&w->started, true);
	p->started++;
	return 0;
}

/* Nobody else waits on the channel and this worker is about to serve a
 * request: make sure somebody will, unless every worker is busy. */
static void cover(struct fsp__pool *p)
{
	pthread_mutex_lock(&p->lock);
	if (p->parked > p->tickets) {
		p->tickets++;
		pthread_cond_signal(&p->cond);
	} else if (p->started < p->cap) {
		start_worker(p);
	}
	pthread_mutex_unlock(&p->lock);
}

static void park(struct fsp__pool *p)
{
	fsp_session *s = p->s;
	pthread_mutex_lock(&p->lock);
	p->parked++;
	while (!p->tickets && !should_stop(s))
		pthread_cond_wait(&p->cond, &p->lock);
	if (p->tickets)
		p->tickets--;
	p->parked--;
	pthread_mutex_unlock(&p->lock);
}

/* A recv that returned no request: true to go on, false to leave. */
static bool recv_error(fsp_session *s, ssize_t n)
{
	if (n == -EINTR || n == -EAGAIN || n == -ENOENT)
		return true;   /* ENOENT: the request was interrupted before we read it */
	if (n == -ENODEV) {
		set_dead(s);   /* unmounted or aborted: the session is over */
		return false;
	}
	fsp_log(0, "reading requests: %s; stopping", strerror((int)-n));
	set_dead(s);
	return false;
}

static int open_chan(struct fsp__worker *w)
{
	fsp_session *s = w->s;
	if (w->pool->kind == POOL_URING)
		return fsp__uring_chan_open(s->uring, w->pool->queue, w->ownbuf, &w->chan);
	/* A clone of the session fd: its own file, so its own blocking mode
	 * (the spinner reads without blocking, the others sleep in read). */
	return fsp__chan_dev_open(s->fd, 1, s->bufsize, w->ownbuf, &w->chan);
}

static void *worker_main(void *arg)
{
	struct fsp__worker *w = arg;
	struct fsp__pool *p = w->pool;
	fsp_session *s = w->s;

	while (!should_stop(s)) {
		char *in, *out;
		atomic_fetch_add(&p->waiting, 1);
		int spin = 0;
		if (s->spin_ns && atomic_load_explicit(&p->spinning, memory_order_relaxed) == 0)
			spin = atomic_exchange(&p->spinning, 1) == 0;
		ssize_t n = w->chan->ops->recv(w->chan, spin ? s->spin_ns : 0, &in, &out);
		if (spin) {
			/* spun out: sleep without the token, so that the next
			 * worker back from a request spins */
			atomic_store(&p->spinning, 0);
			if (n == -EAGAIN && !should_stop(s))
				n = w->chan->ops->recv(w->chan, 0, &in, &out);
		}
		int others = atomic_fetch_sub(&p->waiting, 1) - 1;
		if (n < 0) {
			if (!recv_error(s, n))
				break;
			continue;
		}
		if (others <= 0)
			cover(p);
		w->inbuf = in;
		w->outbuf = out;
		fsp__dispatch(w, (size_t)n);
		if (atomic_load(&p->waiting) >= p->reserve)
			park(p);
	}
	atomic_fetch_sub(&s->live_workers, 1);
	return NULL;
}

/* ---- start and stop ---- */

static int default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	n *= 4;
	return n < 4 ? 4 : n > 32 ? 32 : (int)n;
}

static void wake_handler(int sig)
{
	(void)sig;
}

static void pool_init(fsp_session *s, struct fsp__pool *p, int kind, int queue, int first,
		      int cap, int reserve)
{
	p->s = s;
	p->kind = kind;
	p->queue = queue;
	p->first = first;
	p->cap = cap;
	p->reserve = reserve;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	for (int i = 0; i < cap; i++) {
		s->workers[first + i].s = s;
		s->workers[first + i].pool = p;
		s->workers[first + i].index = first + i;
	}
}

/* Set up the ring if INIT agreed to it; 0 (ring or not), or -errno when
 * io_uring=on cannot be had. */
static int setup_uring(fsp_session *s, int threads)
{
	if (!(s->flags & FW_INIT_OVER_IO_URING))
		return 0;
	int depth = s->cfg.uring_depth ? (int)s->cfg.uring_depth : threads;
	int rc = fsp__uring_new(s, depth, &s->uring);
	if (rc == 0)
		return 0;
	s->uring = NULL;
	if (s->cfg.io_uring == FSP_IO_URING_ON) {
		fsp_log(0, "io_uring=on, but the ring could not be set up: %s", strerror(-rc));
		return rc;
	}
	fsp_log(2, "FUSE over io_uring offered but not usable (%s); using /dev/fuse",
		strerror(-rc));
	return 0;
}

int fsp__engine_start(fsp_session *s)
{
	struct sigaction sa;
	sigset_t all, old;
	int threads = s->cfg.threads ? s->cfg.threads : default_threads();
	int rc;

	rc = setup_uring(s, threads);
	if (rc < 0)
		return rc;
	int nq = s->uring ? fsp__uring_nqueues(s->uring) : 0;
	/* With the ring, /dev/fuse carries only FORGET, INTERRUPT and the
	 * requests of the moments before the ring is ready. */
	int dev_cap = s->uring ? (threads < 4 ? threads : 4) : threads;
	s->npools = 1 + nq;
	s->nslots = dev_cap + nq * threads;
	s->pools = fsp__calloc(s->npools, sizeof(*s->pools));
	s->workers = fsp__calloc(s->nslots, sizeof(*s->workers));
	if (!s->pools || !s->workers)
		return -ENOMEM;
	/* A single worker has nobody to cover for it: threads=1 serves one
	 * request at a time, as asked. */
	pool_init(s, &s->pools[0], POOL_DEV, 0, 0, dev_cap, s->uring ? 1 : 2);
	for (int q = 0; q < nq; q++)
		pool_init(s, &s->pools[1 + q], POOL_URING, q, dev_cap + q * threads, threads, 1);
	for (int i = 0; i < s->nslots; i++) {
		s->workers[i].ownbuf = fsp__malloc(s->bufsize);
		if (!s->workers[i].ownbuf)
			return -ENOMEM;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = wake_handler;   /* no SA_RESTART: read() returns EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(FSP__WAKE_SIGNAL, &sa, NULL);
	/* Workers inherit this: every signal blocked but the synchronous ones. */
	sigfillset(&all);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGFPE);
	sigdelset(&all, SIGILL);
	sigdelset(&all, SIGABRT);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = 0;
	for (int i = 0; i < s->npools && rc == 0; i++) {
		struct fsp__pool *p = &s->pools[i];
		pthread_mutex_lock(&p->lock);
		int want = p->reserve < p->cap ? p->reserve : p->cap;
		for (int k = 0; k < want && rc == 0; k++)
			rc = start_worker(p);
		pthread_mutex_unlock(&p->lock);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc == 0)
		fsp_log(2, "serving %s over %s (%d %s, up to %d threads%s)", s->mountpoint,
			s->uring ? "io_uring" : "/dev/fuse", s->uring ? nq : 1,
			s->uring ? "queues" : "queue", s->uring ? nq * threads : threads,
			s->spin_ns ? ", spinning" : "");
	return rc;
}

/* Stop and join every worker, close their channels. Idempotent. The slots
 * stay (counters) until fsp__engine_free. */
void fsp__engine_stop(fsp_session *s)
{
	if (!s->workers)
		return;
	atomic_store(&s->stopping, 1);
	for (int round = 0; atomic_load(&s->live_workers) > 0; round++) {
		wake_all_parked(s);
		for (int i = 0; i < s->nslots; i++) {
			struct fsp__worker *w = &s->workers[i];
			if (atomic_load(&w->started) && w->chan->ops->wake)
				w->chan->ops->wake(w->chan);
		}
		usleep(round < 10 ? 1000 : 20000);
	}
	for (int i = 0; i < s->nslots; i++) {
		struct fsp__worker *w = &s->workers[i];
		if (atomic_load(&w->started))
			pthread_join(w->thread, NULL);
		atomic_store(&w->started, false);
		if (w->chan)
			w->chan->ops->close(w->chan);
		w->chan = NULL;
	}
	if (s->uring)
		fsp__uring_free(s->uring);
	s->uring = NULL;
}

void fsp__engine_free(fsp_session *s)
{
	fsp__engine_stop(s);
	for (int i = 0; s->workers && i < s->nslots; i++)
		fsp__free(s->workers[i].ownbuf);
	for (int i = 0; s->pools && i < s->npools; i++) {
		pthread_mutex_destroy(&s->pools[i].lock);
		pthread_cond_destroy(&s->pools[i].cond);
	}
	fsp__free(s->workers);
	fsp__free(s->pools);
	s->workers = NULL;
	s->pools = NULL;
	s->nslots = s->npools = 0;
}
