/* transport_uring.c — FUSE over io_uring (protocol 7.42+, Linux 6.14+).
 *
 * The kernel keeps one request queue per *possible* CPU (a caller on CPU n
 * is served by queue n). We give each queue its own io_uring instance and
 * `depth` ring entries. An entry is a pair of buffers registered with the
 * kernel by an IORING_OP_URING_CMD SQE on the /dev/fuse fd: a header buffer
 * (struct fw_uring_req_header) and a payload buffer. The kernel completes
 * the SQE of an entry when it has put a request into it; we answer and ask
 * for the next request in one SQE (COMMIT_AND_FETCH), so a round trip costs
 * one io_uring_enter instead of a read plus a write.
 *
 * Kernel layout of a request in an entry (fs/fuse/dev_uring.c):
 *   header.in_out      fw_in_header (40 bytes)
 *   header.op_in       the op's first argument (0..128 bytes; 0 for LOOKUP,
 *                      whose name is the payload)
 *   payload            the other arguments (names, write data, extensions),
 *                      ring_ent_in_out.payload_sz bytes
 *   ring_ent_in_out    commit_id (the request's unique), payload_sz
 * and of a reply: fw_out_header in in_out, the whole reply body in the
 * payload, payload_sz = body length (header excluded), commit_id in the
 * SQE's command area. in_header.len keeps the /dev/fuse meaning (header +
 * op_in + payload), so op_in's size is len - 40 - payload_sz.
 *
 * Our memory layout of an entry, one mapping of page + payload size:
 *   [header buffer ... | gap: in_header + op_in copy][payload, page aligned]
 * recv copies in_header and op_in into the gap right before the payload, so
 * the request is contiguous without moving the payload (write data, names).
 *
 * Invariants:
 *  - An entry is owned by the kernel (an SQE of it is in flight), or by
 *    exactly one channel (its cur, from the CQE until send/finish), or lost
 *    (its REGISTER failed). Only the owner touches its buffers.
 *  - On each queue at most one channel is the *leader*: the only one that
 *    spins on or sleeps in the CQ ring and reaps CQEs; the others wait on
 *    q_wait_cond. A leader reaps one request and hands the role on before
 *    it returns, so no channel keeps the CQ while it runs a request. (A
 *    flag and a condition variable rather than a mutex held while waiting:
 *    wake() must reach one channel, and a thread blocked on a mutex can't
 *    be told to give up.)
 *  - The SQ ring is written only under q_sq_lock, and every SQE written is
 *    submitted (io_uring_enter without waiting) before the lock is dropped.
 *  - Lock order: none. q_wait_lock and q_sq_lock are never held together and
 *    never while waiting; the leader holds no lock while it sleeps in
 *    io_uring_enter (leadership is a flag under q_wait_lock).
 *  - u_dead is sticky: once the connection is known gone every recv says
 *    -ENODEV.
 *  - Every thread that submits on a queue (the caller of fsp__uring_new for
 *    the REGISTERs, the workers for COMMIT_AND_FETCH) must live as long as
 *    the session: the kernel delivers a request into an entry as task work
 *    of the thread that submitted the entry's SQE, and cancels (-ENOTCONN)
 *    the entries of a thread that exits. An entry cancelled that way is
 *    registered again (see entry_failed); a request that was on its way
 *    into it as the thread died stays with the kernel until unmount.
 *
 * Why no liburing: a handful of raw syscalls and the uapi header are all the
 * ring needs; Debian 12 ships liburing 2.3, and keeping the library free of a
 * dependency keeps it buildable and linkable everywhere fsp is.
 */
#include "fsp_i.h"
#include <errno.h>
#include <string.h>

#if defined(__has_include)
#if __has_include(<linux/io_uring.h>)
#define FSP_HAVE_IO_URING 1
#endif
#endif

#ifdef FSP_HAVE_IO_URING
#include <fcntl.h>
#include <linux/io_uring.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

/* The io_uring syscalls have the same numbers on every architecture but
 * alpha; libc headers older than the kernel's may lack the names. */
#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#endif
#ifndef __NR_io_uring_enter
#define __NR_io_uring_enter 426
#endif

#define SQE_SIZE 128              /* IORING_SETUP_SQE128 */
#define SQE_CMD_OFF 48            /* the 80-byte command area of a 128-byte SQE */
#define WAKE_TAG 0                /* user_data of a wake NOP; entries are pointers */
#define FW_IN_SZ ((uint32_t)sizeof(struct fw_in_header))

_Static_assert(offsetof(struct io_uring_sqe, addr3) == SQE_CMD_OFF, "SQE command area");
_Static_assert(sizeof(struct fw_uring_cmd_req) <= SQE_SIZE - SQE_CMD_OFF, "cmd_req fits");
_Static_assert(sizeof(struct io_uring_cqe) == 16, "plain 16-byte CQEs");

enum ent_state { ENT_KERNEL, ENT_USER, ENT_LOST };
enum ent_last { LAST_REGISTER, LAST_COMMIT, LAST_RETRY };  /* the entry's last SQE */

struct uq;
struct ent {
	struct uq *e_q;                   /* immutable */
	struct fw_uring_req_header *e_hdr;/* immutable: start of the mapping */
	char *e_payload;                  /* immutable: mapping + page */
	struct iovec e_iov[2];            /* immutable: read by the kernel at REGISTER */
	/* Written by the owner only (see the invariants): */
	enum ent_state e_state;
	enum ent_last e_last;
	uint64_t e_commit_id;             /* unique of the request in it */
	/* Ownership passes through the kernel (SQE -> CQE reaped by maybe
	 * another thread), which a race detector can't see: a release store
	 * before each SQE and an acquire load after its CQE say it. */
	atomic_uint e_handoff;
};

struct uchan;
struct uq {
	struct fsp__uring *q_u;
	int q_id;
	int q_fd;                         /* the io_uring fd */
	/* SQ ring, guarded by q_sq_lock */
	pthread_mutex_t q_sq_lock;
	uint32_t *q_sq_head, *q_sq_tail, *q_sq_array;
	uint32_t q_sq_mask, q_sq_entries;
	char *q_sqes;
	/* CQ ring, read and advanced by the leader only */
	uint32_t *q_cq_head, *q_cq_tail;
	uint32_t q_cq_mask;
	struct io_uring_cqe *q_cqes;
	/* Leadership, guarded by q_wait_lock */
	pthread_mutex_t q_wait_lock;
	pthread_cond_t q_wait_cond;
	struct uchan *q_leader;
	int q_waiters;
	bool q_locks_init;
	atomic_int q_live;                /* entries not lost */
	/* Mappings */
	void *q_sq_map, *q_cq_map, *q_sqe_map;
	size_t q_sq_map_len, q_cq_map_len, q_sqe_map_len;
	char *q_buf;                      /* the entries' buffers, one mapping */
	size_t q_buf_len;
	struct ent *q_ents;
	int q_nents;
};

struct fsp__uring {
	fsp_session *u_s;
	int u_nq, u_depth;
	size_t u_pg;                      /* page size */
	size_t u_psize;                   /* payload buffer bytes per entry */
	size_t u_stride;                  /* bytes per entry mapping: page + payload */
	atomic_int u_dead;
	struct uq *u_q;
};

struct uchan {
	struct fsp__chan c;               /* first: the engine holds &c */
	struct uq *ch_q;
	char *ch_outbuf;                  /* the worker's reply buffer (bufsize bytes) */
	struct ent *ch_cur;               /* entry of the request being served */
	atomic_int ch_woken;              /* wake() asked recv to return */
};

/* ---- raw io_uring ---- */

static int sys_setup(unsigned entries, struct io_uring_params *p)
{
	long r = syscall(__NR_io_uring_setup, entries, p);
	return r < 0 ? -errno : (int)r;
}

static int sys_enter(int fd, unsigned to_submit, unsigned min_complete, unsigned flags)
{
	long r = syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, NULL, 0);
	return r < 0 ? -errno : (int)r;
}

static uint32_t load_acq(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void store_rel(uint32_t *p, uint32_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* What one SQE says. */
struct sqe_args {
	uint8_t opcode;
	uint32_t cmd_op;
	struct ent *e;                /* NULL for a wake NOP */
	uint64_t commit_id;
	uint32_t len;                 /* iovec count (2; 1 to provoke a refusal) */
};

/* Write one SQE and submit it (and any left by an earlier failure).
 * 0 or -errno; on error the SQE may still go with a later submission. */
static int submit(struct uq *q, const struct sqe_args *a)
{
	int rc = 0;

	pthread_mutex_lock(&q->q_sq_lock);
	uint32_t tail = *q->q_sq_tail;
	if (tail - load_acq(q->q_sq_head) >= q->q_sq_entries) {
		/* Never seen: we submit every SQE before the lock is dropped. */
		rc = -EBUSY;
		goto out;
	}
	uint32_t idx = tail & q->q_sq_mask;
	char *slot = q->q_sqes + (size_t)idx * SQE_SIZE;
	struct io_uring_sqe *sqe = (struct io_uring_sqe *)slot;
	memset(slot, 0, SQE_SIZE);
	sqe->opcode = a->opcode;
	if (a->e) {
		struct fw_uring_cmd_req cr = { .commit_id = a->commit_id,
					       .qid = (uint16_t)q->q_id };
		sqe->fd = q->q_u->u_s->fd;
		sqe->cmd_op = a->cmd_op;
		sqe->addr = (uint64_t)(uintptr_t)a->e->e_iov;
		sqe->len = a->len;
		sqe->user_data = (uint64_t)(uintptr_t)a->e;
		memcpy(slot + SQE_CMD_OFF, &cr, sizeof(cr));
	} else {
		sqe->fd = -1;
		sqe->user_data = WAKE_TAG;
	}
	q->q_sq_array[idx] = idx;
	store_rel(q->q_sq_tail, tail + 1);

	/* Submit everything between the kernel's head and our tail. */
	for (int tries = 0;;) {
		uint32_t pending = *q->q_sq_tail - load_acq(q->q_sq_head);
		if (pending == 0)
			break;
		int r = sys_enter(q->q_fd, pending, 0, 0);
		if (r > 0 || r == -EINTR)
			continue;
		if ((r == 0 || r == -EAGAIN || r == -EBUSY) && ++tries < 1000) {
			sched_yield();
			continue;
		}
		rc = r < 0 ? r : -EAGAIN;
		break;
	}
out:
	pthread_mutex_unlock(&q->q_sq_lock);
	return rc;
}


/* To the kernel. Everything about e is written before the SQE is visible:
 * from then on its CQE may be reaped by another thread at any time. */
static void hand_over(struct ent *e, enum ent_last last)
{
	e->e_last = last;
	e->e_state = ENT_KERNEL;
	atomic_fetch_add_explicit(&e->e_handoff, 1, memory_order_release);
}

/* From the kernel (a CQE of e was reaped). */
static void take_back(struct ent *e)
{
	(void)atomic_load_explicit(&e->e_handoff, memory_order_acquire);
}

static int submit_register(struct ent *e, enum ent_last last)
{
	struct sqe_args a = { .opcode = IORING_OP_URING_CMD, .cmd_op = FW_IO_URING_CMD_REGISTER,
			      .e = e, .len = 2 };
	hand_over(e, last);
	return submit(e->e_q, &a);
}

static int submit_commit(struct ent *e)
{
	struct sqe_args a = { .opcode = IORING_OP_URING_CMD,
			      .cmd_op = FW_IO_URING_CMD_COMMIT_AND_FETCH, .e = e,
			      .commit_id = e->e_commit_id, .len = 2 };
	hand_over(e, LAST_COMMIT);
	return submit(e->e_q, &a);
}

static int submit_wake(struct uq *q)
{
	struct sqe_args a = { .opcode = IORING_OP_NOP };
	return submit(q, &a);
}

/* ---- CQ ring: read and advanced by the queue's leader only ---- */

static bool reap_one(struct uq *q, struct io_uring_cqe *out)
{
	uint32_t head = *q->q_cq_head;
	if (head == load_acq(q->q_cq_tail))
		return false;
	*out = q->q_cqes[head & q->q_cq_mask];
	store_rel(q->q_cq_head, head + 1);
	return true;
}

static bool cq_ready(struct uq *q)
{
	return *q->q_cq_head != load_acq(q->q_cq_tail);
}

/* ---- leadership and wake-ups ---- */

static void mark_dead(struct fsp__uring *u)
{
	if (atomic_exchange(&u->u_dead, 1))
		return;
	for (int i = 0; i < u->u_nq; i++) {
		struct uq *q = &u->u_q[i];
		pthread_mutex_lock(&q->q_wait_lock);
		pthread_cond_broadcast(&q->q_wait_cond);
		pthread_mutex_unlock(&q->q_wait_lock);
		submit_wake(q);   /* for a leader asleep in io_uring_enter */
	}
}

/* 0: c leads its queue now; -EAGAIN: woken; -ENODEV: dead. */
static int lead(struct uchan *c)
{
	struct uq *q = c->ch_q;
	int rc;

	pthread_mutex_lock(&q->q_wait_lock);
	for (;;) {
		if (atomic_load(&q->q_u->u_dead)) {
			rc = -ENODEV;
			break;
		}
		if (atomic_exchange(&c->ch_woken, 0)) {
			rc = -EAGAIN;
			break;
		}
		if (!q->q_leader) {
			q->q_leader = c;
			rc = 0;
			break;
		}
		q->q_waiters++;
		pthread_cond_wait(&q->q_wait_cond, &q->q_wait_lock);
		q->q_waiters--;
	}
	/* We may have taken the signal meant for the next leader: pass it on. */
	if (rc && !q->q_leader && q->q_waiters)
		pthread_cond_signal(&q->q_wait_cond);
	pthread_mutex_unlock(&q->q_wait_lock);
	return rc;
}

static void unlead(struct uchan *c)
{
	struct uq *q = c->ch_q;
	pthread_mutex_lock(&q->q_wait_lock);
	q->q_leader = NULL;
	if (q->q_waiters)
		pthread_cond_signal(&q->q_wait_cond);
	pthread_mutex_unlock(&q->q_wait_lock);
}

/* A channel waiting for leadership sees ch_woken at once (broadcast); a
 * leader asleep in the kernel needs a CQE, so it gets a NOP. The waker
 * never takes the leader role and never blocks on it. */
static void uring_wake(struct fsp__chan *fc)
{
	struct uchan *c = (struct uchan *)fc;
	struct uq *q = c->ch_q;

	pthread_mutex_lock(&q->q_wait_lock);
	atomic_store(&c->ch_woken, 1);
	bool leads = q->q_leader == c;
	if (q->q_waiters)
		pthread_cond_broadcast(&q->q_wait_cond);
	pthread_mutex_unlock(&q->q_wait_lock);
	if (leads)
		submit_wake(q);
}

/* ---- entries ---- */

static bool conn_gone(int res)
{
	return res == -ENOTCONN || res == -ECONNABORTED || res == -ENODEV;
}

/* A CQE with res < 0 for entry e; the caller leads e's queue. What the
 * kernel does (fs/fuse/dev_uring.c, 6.14..6.18):
 *  - A failed COMMIT_AND_FETCH (-ENOTCONN: connection or queue stopped;
 *    -ENOENT: the request is gone, e.g. expired; -EIO: entry state) leaves
 *    the kernel's entry parked as "in user space" with no SQE: the kernel
 *    will never fill it again, but it keeps the buffers' address only for
 *    teardown. Registering the same buffers again makes a new entry.
 *  - A registered entry is completed with -ENOTCONN at teardown (unmount,
 *    abort) and when the thread that submitted its SQE exits (io_uring
 *    cancels that thread's commands); with -ECANCELED when that thread was
 *    exiting as a request arrived (that request then waits for teardown).
 * So after any failed COMMIT, and after -ENOTCONN / -ECANCELED on a
 * REGISTER, we register once more; a dead connection refuses that at once
 * (-ENOTCONN, -ECONNABORTED), which is how the session's end is told from
 * a cancelled thread. A REGISTER refused otherwise loses the entry; a queue
 * without entries would leave its CPU's callers waiting forever: fatal.
 * Returns 0 (go on waiting), -ENODEV or -EIO. */
static int entry_failed(struct ent *e, int res)
{
	struct uq *q = e->e_q;
	struct fsp__uring *u = q->q_u;

	if (e->e_last == LAST_COMMIT ||
	    (e->e_last == LAST_REGISTER && (res == -ENOTCONN || res == -ECANCELED))) {
		if (u->u_s->cfg.debug)
			fsp_log(3, "io_uring queue %d: %s returned %s; registering the entry again",
				q->q_id, e->e_last == LAST_COMMIT ? "commit" : "register",
				strerror(-res));
		int r = submit_register(e, LAST_RETRY);
		if (r == 0)
			return 0;
		res = r;
	}
	if (conn_gone(res) || atomic_load(&u->u_dead)) {
		mark_dead(u);
		return -ENODEV;
	}
	e->e_state = ENT_LOST;
	fsp_log(1, "io_uring queue %d: a ring entry was refused (%s)", q->q_id, strerror(-res));
	if (atomic_fetch_sub(&q->q_live, 1) == 1) {
		fsp_log(0, "io_uring queue %d has no ring entry left", q->q_id);
		return -EIO;
	}
	return 0;
}

/* The entry holds a request: make it contiguous in front of the payload. */
static ssize_t present(struct uchan *c, struct ent *e, char **in, char **out)
{
	struct fsp__uring *u = c->ch_q->q_u;
	struct fw_in_header ih;
	struct fw_uring_ent_in_out eio;

	memcpy(&ih, e->e_hdr->in_out, sizeof(ih));
	memcpy(&eio, &e->e_hdr->ring_ent_in_out, sizeof(eio));
	e->e_state = ENT_USER;
	e->e_commit_id = eio.commit_id;
	c->ch_cur = e;

	uint64_t fixed = (uint64_t)FW_IN_SZ + eio.payload_sz;
	uint64_t op = ih.len >= fixed ? ih.len - fixed : UINT64_MAX;
	if (op <= FW_URING_OP_IN_OUT_SZ && op % 8 == 0 && eio.payload_sz <= u->u_psize) {
		char *start = e->e_payload - op - FW_IN_SZ;   /* 8-aligned: payload is page-aligned */
		memcpy(start, &ih, FW_IN_SZ);
		memcpy(start + FW_IN_SZ, e->e_hdr->op_in, op);
		*in = start;
		/* Without a payload, nothing of the request is in the payload
		 * buffer: the reply can be built there and go back uncopied. */
		*out = eio.payload_sz ? c->ch_outbuf : e->e_payload;
		return (ssize_t)ih.len;
	}
	/* Malformed (a kernel we don't understand): hand out the header alone
	 * with a length that differs from ih.len, so the caller's check
	 * (in->len == length) rejects it and answers EIO to ih.unique; that
	 * reply gives the entry back. */
	fsp_log(1, "io_uring queue %d: malformed request (len %u, payload %u)",
		c->ch_q->q_id, ih.len, eio.payload_sz);
	char *start = e->e_payload - FW_IN_SZ;
	memcpy(start, &ih, FW_IN_SZ);
	*in = start;
	*out = c->ch_outbuf;
	return ih.len == FW_IN_SZ ? FW_IN_SZ + 8 : FW_IN_SZ;
}

static int uring_commit(struct uchan *c, struct ent *e)
{
	c->ch_cur = NULL;
	fsp__kernel_release();
	int r = submit_commit(e);
	/* On failure the SQE may still reach the kernel with a later
	 * submission, so the entry is not touched again here. */
	if (r < 0)
		fsp_log(0, "io_uring queue %d: submitting a reply: %s", c->ch_q->q_id, strerror(-r));
	return r;
}

/* Give the entry back with an error reply (no body). */
static int end_with_error(struct uchan *c, int err)
{
	struct ent *e = c->ch_cur;
	struct fw_out_header oh = { .len = sizeof(oh), .error = err, .unique = e->e_commit_id };
	memcpy(e->e_hdr->in_out, &oh, sizeof(oh));
	e->e_hdr->ring_ent_in_out.payload_sz = 0;
	return uring_commit(c, e);
}

static bool overlaps(const void *p, size_t n, const void *b, size_t bn)
{
	uintptr_t a = (uintptr_t)p, lo = (uintptr_t)b;
	return n && bn && a < lo + bn && lo < a + n;
}

/* Lay the body segments out in the payload buffer, back to back. A segment
 * already in its place (the zero-copy case) is not copied; one that lives
 * elsewhere in the payload buffer is moved first, before copies from
 * outside could overwrite it; with several such, the body is assembled in
 * the worker's buffer first. */
static int gather(struct uchan *c, struct ent *e, const struct iovec *v, int n, size_t total)
{
	struct fsp__uring *u = c->ch_q->q_u;
	char *pl = e->e_payload;
	size_t off = 0;
	int movers = 0, mover = -1;

	for (int i = 0; i < n; off += v[i].iov_len, i++) {
		if (v[i].iov_base != pl + off && overlaps(v[i].iov_base, v[i].iov_len, pl, u->u_psize)) {
			movers++;
			mover = i;
		}
	}
	if (movers > 1) {
		char *b = c->ch_outbuf;
		if (!b || total > u->u_s->bufsize)
			return -EIO;
		for (int i = 0; i < n; i++)
			if (overlaps(v[i].iov_base, v[i].iov_len, b, u->u_s->bufsize))
				return -EIO;
		off = 0;
		for (int i = 0; i < n; off += v[i].iov_len, i++)
			if (v[i].iov_len)
				memcpy(b + off, v[i].iov_base, v[i].iov_len);
		memcpy(pl, b, total);
		return 0;
	}
	if (mover >= 0) {
		off = 0;
		for (int i = 0; i < mover; i++)
			off += v[i].iov_len;
		memmove(pl + off, v[mover].iov_base, v[mover].iov_len);
	}
	off = 0;
	for (int i = 0; i < n; off += v[i].iov_len, i++)
		if (i != mover && v[i].iov_len && v[i].iov_base != pl + off)
			memcpy(pl + off, v[i].iov_base, v[i].iov_len);
	return 0;
}

/* ---- channel ops ---- */

/* Spin on the CQ tail; false once spin time is over. */
static bool spin_wait(struct uchan *c, const struct timespec *deadline)
{
	struct uq *q = c->ch_q;
	for (int i = 0; i < 64; i++) {
		if (cq_ready(q) || atomic_load_explicit(&c->ch_woken, memory_order_relaxed) ||
		    atomic_load_explicit(&q->q_u->u_dead, memory_order_relaxed))
			return true;
		fsp__cpu_relax();
	}
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec < deadline->tv_sec ||
	       (now.tv_sec == deadline->tv_sec && now.tv_nsec < deadline->tv_nsec);
}

static ssize_t uring_recv(struct fsp__chan *fc, uint64_t spin_ns, char **in, char **out)
{
	struct uchan *c = (struct uchan *)fc;
	struct uq *q = c->ch_q;
	struct fsp__uring *u = q->q_u;
	struct timespec deadline;
	bool spin = spin_ns > 0;
	ssize_t rc;

	if (c->ch_cur) {
		FSP__BUG("io_uring: recv before the last request was ended");
		end_with_error(c, -EIO);
	}
	rc = lead(c);
	if (rc)
		return rc;
	if (spin) {
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_sec += (time_t)(spin_ns / 1000000000u);
		deadline.tv_nsec += (long)(spin_ns % 1000000000u);
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
	}
	for (;;) {
		struct io_uring_cqe cqe;
		if (atomic_load(&u->u_dead)) {
			rc = -ENODEV;
			break;
		}
		if (!reap_one(q, &cqe)) {
			if (atomic_exchange(&c->ch_woken, 0)) {
				rc = -EAGAIN;
				break;
			}
			if (spin) {
				if (spin_wait(c, &deadline))
					continue;
				rc = -EAGAIN;   /* spun out: the caller decides who sleeps */
				break;
			}
			/* Also runs our task work: the kernel fills an entry
			 * in the context of the thread that submitted it. */
			int r = sys_enter(q->q_fd, 0, 1, IORING_ENTER_GETEVENTS);
			if (r == -EINTR) {
				rc = -EINTR;
				break;
			}
			if (r < 0 && r != -EAGAIN && r != -EBUSY) {
				fsp_log(0, "io_uring queue %d: waiting: %s", q->q_id, strerror(-r));
				rc = r;
				break;
			}
			continue;
		}
		if (cqe.user_data == WAKE_TAG)
			continue;   /* the checks above say whether it was for us */
		struct ent *e = (struct ent *)(uintptr_t)cqe.user_data;
		take_back(e);
		if (cqe.res < 0) {
			rc = entry_failed(e, cqe.res);
			if (rc)
				break;
			continue;
		}
		fsp__kernel_acquire();
		rc = present(c, e, in, out);
		break;
	}
	unlead(c);
	return rc;
}

static int uring_send(struct fsp__chan *fc, const struct iovec *iov, int n)
{
	struct uchan *c = (struct uchan *)fc;
	struct ent *e = c->ch_cur;
	struct fsp__uring *u = c->ch_q->q_u;
	size_t total = 0;

	if (!e) {
		FSP__BUG("io_uring: send without a request");
		return -EINVAL;
	}
	struct fw_out_header oh;
	if (n < 1 || iov[0].iov_len != sizeof(oh)) {
		end_with_error(c, -EIO);
		return -EINVAL;
	}
	memcpy(&oh, iov[0].iov_base, sizeof(oh));
	for (int i = 1; i < n; i++) {
		if (iov[i].iov_len > u->u_psize - total) {
			fsp_log(1, "io_uring: a reply larger than the ring buffer (%zu bytes)", u->u_psize);
			end_with_error(c, -EIO);
			return -EIO;
		}
		total += iov[i].iov_len;
	}
	if (gather(c, e, iov + 1, n - 1, total) < 0) {
		fsp_log(1, "io_uring: reply segments overlap in a way we can't lay out");
		end_with_error(c, -EIO);
		return -EIO;
	}
	memcpy(e->e_hdr->in_out, &oh, sizeof(oh));
	e->e_hdr->ring_ent_in_out.payload_sz = (uint32_t)total;
	return uring_commit(c, e);
}

static void uring_finish(struct fsp__chan *fc)
{
	struct uchan *c = (struct uchan *)fc;
	if (c->ch_cur)
		end_with_error(c, -EIO);
}

static void uring_close(struct fsp__chan *fc)
{
	struct uchan *c = (struct uchan *)fc;
	if (c->ch_cur && !atomic_load(&c->ch_q->q_u->u_dead))
		end_with_error(c, -EIO);
	fsp__free(c);
}

static const struct fsp__chan_ops uring_ops = {
	.name = "io_uring",
	.recv = uring_recv,
	.send = uring_send,
	.finish = uring_finish,
	.wake = uring_wake,
	.close = uring_close,
};

/* ---- setup and teardown ---- */

/* The kernel has one queue per possible CPU (num_possible_cpus()); a ring
 * becomes ready only when every one of them has an entry, so the count
 * must be exact. */
static int possible_cpus(void)
{
	char buf[512];
	int n = 0;
	FILE *f = fopen("/sys/devices/system/cpu/possible", "re");

	if (f) {
		if (fgets(buf, sizeof(buf), f)) {
			char *p = buf;
			while (*p && *p != '\n') {
				char *end;
				long a = strtol(p, &end, 10), b = a;
				if (end == p)
					break;
				p = end;
				if (*p == '-') {
					b = strtol(p + 1, &end, 10);
					p = end;
				}
				if (b >= a)
					n += (int)(b - a + 1);
				if (*p == ',')
					p++;
			}
		}
		fclose(f);
	}
	if (n <= 0) {
		n = get_nprocs_conf();
		fsp_log(1, "io_uring: can't read /sys/devices/system/cpu/possible; assuming %d CPUs", n);
	}
	return n;
}

static void *map_ring(int fd, size_t len, off_t off)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, off);
	return p == MAP_FAILED ? NULL : p;
}

static int queue_setup(struct fsp__uring *u, struct uq *q)
{
	struct io_uring_params p;
	int rc;

	memset(&p, 0, sizeof(p));
	/* SQE128: the command area must hold fw_uring_cmd_req. One SQE is in
	 * the SQ at a time (written and submitted under q_sq_lock); the CQ
	 * holds at most one CQE per entry plus wake NOPs. */
	p.flags = IORING_SETUP_SQE128 | IORING_SETUP_CQSIZE;
	p.cq_entries = (unsigned)(2 * u->u_depth + 16);
	int fd = sys_setup(8, &p);
	if (fd < 0)
		return fd;
	q->q_fd = fd;

	q->q_sq_map_len = p.sq_off.array + p.sq_entries * sizeof(uint32_t);
	q->q_cq_map_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	if (p.features & IORING_FEAT_SINGLE_MMAP) {
		if (q->q_cq_map_len > q->q_sq_map_len)
			q->q_sq_map_len = q->q_cq_map_len;
		q->q_cq_map_len = 0;
	}
	rc = -ENOMEM;
	q->q_sq_map = map_ring(fd, q->q_sq_map_len, IORING_OFF_SQ_RING);
	if (!q->q_sq_map)
		goto out_errno;
	if (q->q_cq_map_len) {
		q->q_cq_map = map_ring(fd, q->q_cq_map_len, IORING_OFF_CQ_RING);
		if (!q->q_cq_map)
			goto out_errno;
	}
	q->q_sqe_map_len = (size_t)p.sq_entries * SQE_SIZE;
	q->q_sqe_map = map_ring(fd, q->q_sqe_map_len, IORING_OFF_SQES);
	if (!q->q_sqe_map)
		goto out_errno;

	char *sq = q->q_sq_map, *cq = q->q_cq_map ? q->q_cq_map : q->q_sq_map;
	q->q_sq_head = (uint32_t *)(sq + p.sq_off.head);
	q->q_sq_tail = (uint32_t *)(sq + p.sq_off.tail);
	q->q_sq_mask = *(uint32_t *)(sq + p.sq_off.ring_mask);
	q->q_sq_entries = *(uint32_t *)(sq + p.sq_off.ring_entries);
	q->q_sq_array = (uint32_t *)(sq + p.sq_off.array);
	q->q_sqes = q->q_sqe_map;
	q->q_cq_head = (uint32_t *)(cq + p.cq_off.head);
	q->q_cq_tail = (uint32_t *)(cq + p.cq_off.tail);
	q->q_cq_mask = *(uint32_t *)(cq + p.cq_off.ring_mask);
	q->q_cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);

	/* Entries: one private mapping, page + payload each. */
	q->q_nents = u->u_depth;
	q->q_ents = fsp__calloc((size_t)q->q_nents, sizeof(struct ent));
	if (!q->q_ents)
		return -ENOMEM;
	q->q_buf_len = (size_t)q->q_nents * u->u_stride;
	void *b = mmap(NULL, q->q_buf_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b == MAP_FAILED)
		goto out_errno;
	q->q_buf = b;
	for (int i = 0; i < q->q_nents; i++) {
		struct ent *e = &q->q_ents[i];
		char *base = q->q_buf + (size_t)i * u->u_stride;
		e->e_q = q;
		e->e_hdr = (struct fw_uring_req_header *)base;
		e->e_payload = base + u->u_pg;
		e->e_iov[0].iov_base = e->e_hdr;
		e->e_iov[0].iov_len = sizeof(struct fw_uring_req_header);
		e->e_iov[1].iov_base = e->e_payload;
		e->e_iov[1].iov_len = u->u_psize;
		e->e_state = ENT_LOST;   /* until registered */
	}
	return 0;
out_errno:
	rc = -errno;
	return rc ? rc : -ENOMEM;
}

/* Make the kernel give up waiting for the ring: any refused REGISTER clears
 * the connection's io_uring mode and wakes the callers blocked until the ring
 * is ready, so requests flow on /dev/fuse again. An iovec count of 1 is
 * refused before anything is registered. */
static void refuse_ring(struct fsp__uring *u)
{
	for (int i = 0; u && u->u_q && i < u->u_nq; i++) {
		struct uq *q = &u->u_q[i];
		if (q->q_sqes && q->q_ents) {
			struct sqe_args a = { .opcode = IORING_OP_URING_CMD,
					      .cmd_op = FW_IO_URING_CMD_REGISTER,
					      .e = &q->q_ents[0], .len = 1 };
			submit(q, &a);
			return;
		}
	}
	/* Agreeing FW_INIT_OVER_IO_URING is a promise only a working
	 * io_uring can keep: probe it before INIT. */
	fsp_log(0, "io_uring: no ring to tell the kernel; the mount's requests wait until "
		"it is unmounted or aborted");
}

/* ready: the kernel may have put requests into our buffers. */
static void teardown(struct fsp__uring *u, bool ready)
{
	if (!u)
		return;
	for (int i = 0; u->u_q && i < u->u_nq; i++) {
		struct uq *q = &u->u_q[i];
		/* Closing the ring cancels its commands; the kernel forgets
		 * registered entries then (or at the connection's teardown). */
		if (q->q_fd >= 0)
			close(q->q_fd);
		if (q->q_sq_map)
			munmap(q->q_sq_map, q->q_sq_map_len);
		if (q->q_cq_map)
			munmap(q->q_cq_map, q->q_cq_map_len);
		if (q->q_sqe_map)
			munmap(q->q_sqe_map, q->q_sqe_map_len);
		if (q->q_buf) {
			if (ready && !atomic_load(&u->u_dead)) {
				/* The connection lives: the kernel might still
				 * write into an entry it had picked before the
				 * cancel. Drop the memory but keep the addresses
				 * reserved, so such a write faults instead of
				 * landing in a later mapping. */
				mmap(q->q_buf, q->q_buf_len, PROT_NONE,
				     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
			} else {
				munmap(q->q_buf, q->q_buf_len);
			}
		}
		if (q->q_locks_init) {
			pthread_mutex_destroy(&q->q_sq_lock);
			pthread_mutex_destroy(&q->q_wait_lock);
			pthread_cond_destroy(&q->q_wait_cond);
		}
		fsp__free(q->q_ents);
	}
	fsp__free(u->u_q);
	fsp__free(u);
}

/* Consume the error CQEs at the head of q's CQ (refused REGISTERs; they
 * are posted before io_uring_enter returns). Stops at a request. Returns
 * the first error seen, or 0. */
static int reap_refusals(struct uq *q)
{
	int first = 0;
	for (;;) {
		uint32_t head = *q->q_cq_head;
		if (head == load_acq(q->q_cq_tail))
			break;
		struct io_uring_cqe *cqe = &q->q_cqes[head & q->q_cq_mask];
		if (cqe->res >= 0 || cqe->user_data == WAKE_TAG)
			break;
		struct ent *e = (struct ent *)(uintptr_t)cqe->user_data;
		if (!first)
			first = cqe->res;
		e->e_state = ENT_LOST;
		atomic_fetch_sub(&q->q_live, 1);
		store_rel(q->q_cq_head, head + 1);
	}
	return first;
}

static bool not_supported(int err)
{
	return err == -ENOSYS || err == -EINVAL || err == -EOPNOTSUPP;
}

int fsp__uring_new(fsp_session *s, int depth, struct fsp__uring **out)
{
	struct fsp__uring *u = NULL;
	bool ready = false, kernel_left = false;
	int rc;

	*out = NULL;
	if (!(s->flags & FW_INIT_OVER_IO_URING)) {
		fsp_log(2, "FUSE over io_uring: not agreed at INIT");
		return -EOPNOTSUPP;
	}
	if (depth < 1)
		depth = 1;
	if (depth > 1024)
		depth = 1024;
	rc = -ENOMEM;
	u = fsp__calloc(1, sizeof(*u));
	if (!u)
		goto out;
	u->u_s = s;
	u->u_depth = depth;
	u->u_pg = fsp__page_size();
	/* The kernel refuses a payload buffer smaller than
	 * max(FUSE_MIN_READ_BUFFER, max_write, max_pages * PAGE_SIZE), where
	 * max_pages is what INIT said (32 without FW_INIT_MAX_PAGES). We also
	 * build replies of up to bufsize bytes in it. */
	size_t max_pages = (s->flags & FW_INIT_MAX_PAGES) ?
		(s->max_write + u->u_pg - 1) / u->u_pg : 32;
	size_t need = FW_MIN_READ_BUFFER;
	if (need < s->max_write)
		need = s->max_write;
	if (need < max_pages * u->u_pg)
		need = max_pages * u->u_pg;
	if (need < s->bufsize)
		need = s->bufsize;
	u->u_psize = (need + u->u_pg - 1) / u->u_pg * u->u_pg;
	/* The page in front of the payload holds the header buffer (288
	 * bytes) at its start and the contiguous request copy (<= 168 bytes)
	 * at its end. */
	u->u_stride = u->u_pg + u->u_psize;
	_Static_assert(sizeof(struct fw_uring_req_header) + sizeof(struct fw_in_header) +
		       FW_URING_OP_IN_OUT_SZ <= 4096, "entry front page");

	u->u_nq = possible_cpus();
	u->u_q = fsp__calloc((size_t)u->u_nq, sizeof(struct uq));
	if (!u->u_q)
		goto out;
	for (int i = 0; i < u->u_nq; i++) {
		struct uq *q = &u->u_q[i];
		q->q_u = u;
		q->q_id = i;
		q->q_fd = -1;
	}
	for (int i = 0; i < u->u_nq; i++) {
		struct uq *q = &u->u_q[i];
		pthread_mutex_init(&q->q_sq_lock, NULL);
		pthread_mutex_init(&q->q_wait_lock, NULL);
		pthread_cond_init(&q->q_wait_cond, NULL);
		q->q_locks_init = true;
		rc = queue_setup(u, q);
		if (rc < 0) {
			if (i == 0 && (not_supported(rc) || rc == -EPERM)) {
				fsp_log(2, "FUSE over io_uring: io_uring_setup: %s%s", strerror(-rc),
					rc == -EPERM ? " (see sysctl kernel.io_uring_disabled)" : "");
				rc = -EOPNOTSUPP;
			} else {
				fsp_log(0, "io_uring queue %d: %s", i, strerror(-rc));
			}
			goto out;
		}
	}

	/* Register. The ring becomes ready (the kernel switches every request
	 * to it) when the last queue gets its first entry; until then a
	 * failure can still leave the session on /dev/fuse. Refusals come
	 * back as CQEs before io_uring_enter returns; a successful REGISTER
	 * completes only when a request arrives in it. */
	for (int i = 0; i < u->u_nq; i++) {
		struct uq *q = &u->u_q[i];
		bool last = i == u->u_nq - 1;
		atomic_store(&q->q_live, 0);
		for (int k = 0; k < q->q_nents; k++) {
			rc = submit_register(&q->q_ents[k], LAST_REGISTER);
			if (rc < 0) {
				q->q_ents[k].e_state = ENT_LOST;
				if (ready) {
					/* Fewer entries on the last queue: still a ring. */
					fsp_log(1, "io_uring queue %d: %d of %d entries: %s", i, k,
						q->q_nents, strerror(-rc));
					break;
				}
				fsp_log(0, "io_uring queue %d: submitting: %s", i, strerror(-rc));
				goto out;
			}
			atomic_fetch_add(&q->q_live, 1);
			if (last && k == 0) {
				/* The last queue's first entry decides. */
				rc = reap_refusals(q);
				if (rc)
					goto refused;
				ready = true;
			}
		}
		rc = reap_refusals(q);
		if (atomic_load(&q->q_live) == 0)
			goto refused;
		if (rc)
			fsp_log(1, "io_uring queue %d: %d of %d entries refused (%s)", i,
				q->q_nents - atomic_load(&q->q_live), q->q_nents, strerror(-rc));
	}
	*out = u;
	return 0;

refused:
	/* A refused REGISTER made the kernel leave io_uring mode already. */
	kernel_left = true;
	if (not_supported(rc)) {
		fsp_log(2, "FUSE over io_uring: the kernel refused to register a ring entry: %s",
			strerror(-rc));
		rc = -EOPNOTSUPP;
	} else {
		fsp_log(0, "io_uring: registering ring entries: %s", strerror(-rc));
	}
out:
	/* INIT agreed io_uring, so the kernel holds every new request until
	 * the ring is ready or a REGISTER is refused: tell it to give up. */
	if (!ready && !kernel_left)
		refuse_ring(u);
	teardown(u, ready);
	return rc;
}

int fsp__uring_nqueues(const struct fsp__uring *u)
{
	return u->u_nq;
}

int fsp__uring_chan_open(struct fsp__uring *u, int q, char *outbuf, struct fsp__chan **out)
{
	*out = NULL;
	if (q < 0 || q >= u->u_nq || !outbuf)
		return -EINVAL;
	struct uchan *c = fsp__calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->c.ops = &uring_ops;
	c->c.fd = u->u_s->fd;   /* notifications go on /dev/fuse */
	c->ch_q = &u->u_q[q];
	c->ch_outbuf = outbuf;
	*out = &c->c;
	return 0;
}

void fsp__uring_free(struct fsp__uring *u)
{
	teardown(u, true);
}

bool fsp__uring_usable(void)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_SQE128;
	int fd = sys_setup(1, &p);
	if (fd < 0) {
		fsp_log(2, "FUSE over io_uring: io_uring_setup: %s; not asking for it",
			strerror(-fd));
		return false;
	}
	close(fd);
	return true;
}

#else /* no <linux/io_uring.h> */

bool fsp__uring_usable(void)
{
	return false;
}

int fsp__uring_new(fsp_session *s, int depth, struct fsp__uring **out)
{
	(void)s;
	(void)depth;
	*out = NULL;
	fsp_log(2, "FUSE over io_uring: built without <linux/io_uring.h>");
	return -EOPNOTSUPP;
}

int fsp__uring_nqueues(const struct fsp__uring *u)
{
	(void)u;
	return 0;
}

int fsp__uring_chan_open(struct fsp__uring *u, int q, char *outbuf, struct fsp__chan **out)
{
	(void)u;
	(void)q;
	(void)outbuf;
	*out = NULL;
	return -EOPNOTSUPP;
}

void fsp__uring_free(struct fsp__uring *u)
{
	(void)u;
}

#endif
