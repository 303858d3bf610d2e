/* ops_lock.c — locks that reach SOURCE: fcntl record locks and flock.
 *
 * Record locks have POSIX semantics: the locks of one owner (a process's file
 * table) on a file are one set, merged across all its opens of the file, and
 * a close of any of them ends the set (the library then unlocks the whole
 * file for that owner). They become open file description locks (F_OFD_*)
 * on a backing descriptor of the owner's own: one per (node, owner), opened
 * on the owner's first lock with the access mode of the open the request came
 * through, closed when an unlock of the whole file leaves it with nothing, and
 * at the node's last release in any case. Two owners are two descriptions, so
 * their locks conflict as two processes' would (also after fork, where parent
 * and child share an open but are two owners).
 *
 * flock locks belong to one open (the kernel's struct file): flock(2) on that
 * open's backing descriptor, or, for a passthrough open (which keeps none),
 * on one opened on first use. Both kinds conflict with what programs take on
 * SOURCE directly (OFD and classic POSIX record locks conflict with each
 * other; flock with flock), and the kernel drops them when the descriptors
 * close: at release, or when the daemon dies.
 *
 * Waiting (SETLKW, blocking flock): F_OFD_SETLKW and a blocking flock cannot
 * be woken by the kernel's INTERRUPT, so the wait polls the non-blocking call
 * with a backoff from 1 to 10 ms and ends with EINTR once
 * fsp_req_interrupted() says the caller gave up (or the session ends). A
 * waiter polls, so a program on SOURCE blocked in F_SETLKW may get a freed
 * range first.
 *
 * Invariants: node->owners and each owner's users/keep are guarded by
 * node->lock, which is never held across a call that can block (the fcntl
 * calls under it are non-blocking F_OFD_GETLK). An owner in the list has an
 * open fd; it leaves the list when its last user puts it without keep (the
 * last successful operation was an unlock of the whole file, or there never
 * was one), or at the node's last release, and its fd is closed by whoever
 * took it out, outside the lock.
 */
#include "ptfs_i.h"
#include <errno.h>
#include <stdlib.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#define NODE(o) ((struct pt_node *)(o))

struct pt_lockowner {
	struct pt_lockowner *next;
	uint64_t owner;
	int fd;          /* the owner's open file description on the backing file */
	int mode;        /* its access mode (O_RDONLY, O_WRONLY, O_RDWR) */
	pid_t pid;       /* process of the owner's last lock, for getlk answers */
	unsigned users;  /* requests using fd now */
	bool keep;       /* may hold locks: stays when its users are done */
};

/* The access mode for an owner's descriptor: that of the open (fh). */
static int open_mode(void *fh)
{
	return fh ? ((struct pt_file *)fh)->flags & O_ACCMODE : O_RDWR;
}

/* Wait a little before trying again; -EINTR when the caller gave up. */
static int backoff(fsp_req *r, unsigned *us)
{
	if (fsp_req_interrupted(r))
		return -EINTR;
	struct timespec ts = { 0, (long)*us * 1000L };
	nanosleep(&ts, NULL);
	*us = *us * 2 > 10000 ? 10000 : *us * 2;
	return fsp_req_interrupted(r) ? -EINTR : 0;
}

/* node->lock held: owner's entry, or NULL. */
static struct pt_lockowner *owner_find(struct pt_node *n, uint64_t owner)
{
	struct pt_lockowner *o = n->owners;
	while (o && o->owner != owner)
		o = o->next;
	return o;
}

/* Find or make owner's entry on n, one user taken. create false: -ENOENT
 * when there is none. */
static int owner_get(struct pt_node *n, void *fh, uint64_t owner, bool create,
		     struct pt_lockowner **out)
{
	struct pt_lockowner *o, *fresh;
	int fd, nfd, mode;

	pthread_mutex_lock(&n->lock);
	o = owner_find(n, owner);
	if (o)
		o->users++;
	pthread_mutex_unlock(&n->lock);
	if (o || !create) {
		*out = o;
		return o ? 0 : -ENOENT;
	}
	fresh = calloc(1, sizeof(*fresh));
	if (!fresh)
		return -ENOMEM;
	fd = pt_node_fd(n);
	if (fd < 0) {
		free(fresh);
		return fd;
	}
	/* As the daemon: the kernel checked the caller's open. */
	mode = open_mode(fh);
	nfd = pt_reopen(fd, mode);
	if (nfd < 0 && !fh) {
		mode = O_RDONLY;
		nfd = pt_reopen(fd, mode);
	}
	pt_node_fd_put(n);
	if (nfd < 0) {
		free(fresh);
		return nfd;
	}
	fresh->owner = owner;
	fresh->fd = nfd;
	fresh->mode = mode;
	fresh->users = 1;
	pthread_mutex_lock(&n->lock);
	o = owner_find(n, owner);
	if (o) {
		o->users++;   /* another request of the owner made it first */
	} else {
		fresh->next = n->owners;
		n->owners = fresh;
		o = fresh;
		fresh = NULL;
	}
	pthread_mutex_unlock(&n->lock);
	if (fresh) {
		close(fresh->fd);
		free(fresh);
	}
	*out = o;
	return 0;
}

/* Give back a user of o. set: the operation succeeded, and keep says
 * whether o may hold locks now. */
static void owner_put(struct pt_node *n, struct pt_lockowner *o, bool set, bool keep)
{
	bool gone = false;

	pthread_mutex_lock(&n->lock);
	if (set)
		o->keep = keep;
	if (--o->users == 0 && !o->keep) {
		struct pt_lockowner **p = &n->owners;
		while (*p != o)
			p = &(*p)->next;
		*p = o->next;
		gone = true;
	}
	pthread_mutex_unlock(&n->lock);
	if (gone) {
		close(o->fd);   /* drops whatever it still held */
		free(o);
	}
}

void pt_locks_drop(struct pt_node *n)
{
	struct pt_lockowner *list = NULL;

	pthread_mutex_lock(&n->lock);
	if (n->opens && --n->opens == 0) {
		/* no open left, so no request uses an owner (users are 0) */
		list = n->owners;
		n->owners = NULL;
	}
	pthread_mutex_unlock(&n->lock);
	while (list) {
		struct pt_lockowner *o = list;
		list = o->next;
		close(o->fd);
		free(o);
	}
}

static void to_flock(const struct fsp_lock *lk, struct flock *fl)
{
	fl->l_type = (short)lk->type;
	fl->l_whence = SEEK_SET;
	fl->l_start = lk->start;
	fl->l_len = lk->end == FSP_LOCK_END ? 0 : lk->end - lk->start + 1;
	fl->l_pid = 0;   /* the OFD calls insist */
}

static bool same_range(const struct flock *a, const struct flock *b)
{
	return a->l_type == b->l_type && a->l_start == b->l_start && a->l_len == b->l_len;
}

/* node->lock held. The OFD answer names no process (l_pid -1): if the lock
 * in the way (*got) is one of our owners', its process. An owner holds it
 * when, asked from its own description, that lock is not in the way. */
static pid_t holder_pid(struct pt_node *n, struct pt_lockowner *self,
			const struct flock *want, const struct flock *got)
{
	for (struct pt_lockowner *o = n->owners; o; o = o->next) {
		struct flock t = *want;
		if (o == self || !o->keep)
			continue;
		if (fcntl(o->fd, F_OFD_GETLK, &t) == 0 && !same_range(&t, got))
			return o->pid;
	}
	return 0;
}

int pt_getlk(fsp_req *r, void *obj, void *fh, uint64_t owner, struct fsp_lock *lk)
{
	struct pt_node *n = NODE(obj);
	struct pt_lockowner *o;
	struct flock fl, want;
	int rc;

	(void)r;
	/* a new owner (no locks yet) tests from a description of its own */
	rc = owner_get(n, fh, owner, true, &o);
	if (rc < 0)
		return rc;
	to_flock(lk, &fl);
	want = fl;
	rc = fcntl(o->fd, F_OFD_GETLK, &fl) < 0 ? -errno : 0;
	if (rc == 0) {
		lk->type = fl.l_type;
		if (fl.l_type != F_UNLCK) {
			lk->start = fl.l_start;
			lk->end = fl.l_len == 0 ? FSP_LOCK_END : fl.l_start + fl.l_len - 1;
			lk->pid = fl.l_pid;
			if (fl.l_pid <= 0) {
				pthread_mutex_lock(&n->lock);
				lk->pid = holder_pid(n, o, &want, &fl);
				pthread_mutex_unlock(&n->lock);
			}
		}
	}
	owner_put(n, o, false, false);
	return rc;
}

int pt_setlk(fsp_req *r, void *obj, void *fh, uint64_t owner, const struct fsp_lock *lk,
	     int wait)
{
	struct pt_node *n = NODE(obj);
	bool unlock = lk->type == F_UNLCK;
	bool all = unlock && lk->start == 0 && lk->end == FSP_LOCK_END;
	struct pt_lockowner *o;
	struct flock fl;
	unsigned us = 1000;
	int rc;

	rc = owner_get(n, fh, owner, !unlock, &o);
	if (rc == -ENOENT && unlock)
		return 0;   /* the owner holds nothing on this file */
	if (rc < 0)
		return rc;
	to_flock(lk, &fl);
	for (;;) {
		if (fcntl(o->fd, F_OFD_SETLK, &fl) == 0) {
			rc = 0;
			break;
		}
		rc = -errno;
		if (rc == -EACCES)
			rc = -EAGAIN;
		if (rc != -EAGAIN || !wait)
			break;
		rc = backoff(r, &us);
		if (rc < 0)
			break;
	}
	if (rc == 0 && !unlock) {
		pthread_mutex_lock(&n->lock);
		o->pid = lk->pid;
		pthread_mutex_unlock(&n->lock);
	}
	/* an unlock of the whole file leaves the owner with nothing */
	owner_put(n, o, rc == 0, !all);
	return rc;
}

/* The descriptor that carries the flock locks of the open f. */
static int flock_fd(struct pt_node *n, struct pt_file *f)
{
	if (f->fd >= 0)
		return f->fd;
	int fd = atomic_load(&f->lock_fd);
	if (fd >= 0)
		return fd;
	int nfd = pt_node_fd(n);
	if (nfd < 0)
		return nfd;
	fd = pt_reopen(nfd, O_RDONLY);
	if (fd == -EACCES)
		fd = pt_reopen(nfd, O_WRONLY);
	pt_node_fd_put(n);
	if (fd < 0)
		return fd;
	int none = -1;
	if (!atomic_compare_exchange_strong(&f->lock_fd, &none, fd)) {
		close(fd);   /* another request of this open made it first */
		fd = none;
	}
	return fd;
}

int pt_flock(fsp_req *r, void *obj, void *fh, int op)
{
	unsigned us = 1000;
	int fd, rc;

	if (!fh)
		return -ENOLCK;
	fd = flock_fd(NODE(obj), fh);
	if (fd < 0)
		return fd;
	if ((op & LOCK_NB) || (op & ~LOCK_NB) == LOCK_UN)
		return flock(fd, op) < 0 ? -errno : 0;
	for (;;) {
		if (flock(fd, op | LOCK_NB) == 0)
			return 0;
		rc = -errno;
		if (rc != -EWOULDBLOCK)
			return rc;
		rc = backoff(r, &us);
		if (rc < 0)
			return rc;
	}
}
