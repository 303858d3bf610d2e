/* node.c — ptfs's node table and descriptor cache.
 *
 * Invariants:
 *  - A node is hashed under (dev, ino) in its table shard from creation until
 *    its last reference is dropped or a newer object with the same (dev, ino)
 *    replaces it (the old one is then marked stale and unhashed, so it answers
 *    ESTALE for the rest of its life).
 *  - refs counts the references the library holds (one per entry handed over,
 *    all given back by forget) plus short-lived ones of our own. The node is
 *    freed when refs reaches 0. The root's own reference is never dropped.
 *  - A node's fd is either pinned (held for the node's life: no file handle,
 *    the root, O_TMPFILE) or cached in its cache shard's LRU list. A cached fd
 *    with pins > 0 is never closed; the shard may then exceed its share of the
 *    limit by the number of pinned-in-use entries.
 *  - The janitor thread closes cached fds of objects with no link left.
 *  - Locks: table shard lock, cache shard lock, mount lock, janitor lock.
 *    Each function holds at most one of them at a time, and none while
 *    calling into the kernel, except close() and fstat() of cached fds.
 */
#include "ptfs_i.h"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define TSHARDS 64
#define CSHARDS 16
#define MAX_MOUNTS 64

struct tshard {
	pthread_mutex_t lock;
	struct pt_node **b;
	size_t nb;          /* power of two */
	size_t count;
} __attribute__((aligned(64)));

struct cshard {
	pthread_mutex_t lock;
	struct pt_node *head, *tail;  /* most recently used first */
	size_t count, max;
} __attribute__((aligned(64)));

static struct tshard tsh[TSHARDS];
static struct cshard csh[CSHARDS];

static struct {
	pthread_mutex_t lock;
	int n;
	int id[MAX_MOUNTS];
	int fd[MAX_MOUNTS];   /* O_RDONLY directory on that mount (O_PATH is refused) */
	bool warned;
} mounts = { .lock = PTHREAD_MUTEX_INITIALIZER };

static atomic_uint_fast64_t next_id = FSP_ROOT_INO + 1;
static atomic_long n_nodes, n_cached, n_pinned, n_handle_opens, n_stale, n_evicted;

static inline uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

static inline uint64_t key_hash(dev_t dev, ino_t ino)
{
	return mix((uint64_t)ino ^ mix((uint64_t)dev + 0x9e3779b97f4a7c15ULL));
}

static inline struct tshard *tshard_of(uint64_t h)
{
	return &tsh[h & (TSHARDS - 1)];
}

static inline struct cshard *cshard_of(const struct pt_node *n)
{
	return &csh[mix(n->id) & (CSHARDS - 1)];
}

/* ---- file handles and mounts ---- */

static struct file_handle *make_handle(int fd, int *mnt_id, int *err)
{
	union {
		struct file_handle h;
		char buf[sizeof(struct file_handle) + MAX_HANDLE_SZ];
	} u;
	u.h.handle_bytes = MAX_HANDLE_SZ;
	if (name_to_handle_at(fd, "", &u.h, mnt_id, AT_EMPTY_PATH) < 0) {
		*err = -errno;
		return NULL;
	}
	struct file_handle *h = malloc(sizeof(*h) + u.h.handle_bytes);
	if (!h) {
		*err = -ENOMEM;
		return NULL;
	}
	memcpy(h, &u.h, sizeof(*h) + u.h.handle_bytes);
	return h;
}

static bool same_handle(const struct file_handle *a, const struct file_handle *b)
{
	return a->handle_type == b->handle_type && a->handle_bytes == b->handle_bytes &&
	       memcmp(a->f_handle, b->f_handle, a->handle_bytes) == 0;
}

/* Index of the mount mnt_id in the table, adding it with a directory
 * descriptor made from pathfd (an O_PATH fd on that mount); -1 when that is
 * not possible (the caller then pins a descriptor instead). */
static int mount_index(int mnt_id, int pathfd, mode_t type)
{
	int i, fd;

	pthread_mutex_lock(&mounts.lock);
	for (i = 0; i < mounts.n; i++) {
		if (mounts.id[i] == mnt_id) {
			pthread_mutex_unlock(&mounts.lock);
			return i;
		}
	}
	pthread_mutex_unlock(&mounts.lock);
	/* A new mount below SOURCE: open_by_handle_at wants a real (not
	 * O_PATH) descriptor on it. Only a directory gives one cheaply. */
	if (!S_ISDIR(type) || pathfd < 0)
		return -1;
	fd = openat(pathfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	pthread_mutex_lock(&mounts.lock);
	for (i = 0; i < mounts.n && mounts.id[i] != mnt_id; i++)
		;
	if (i == mounts.n) {
		if (mounts.n == MAX_MOUNTS) {
			i = -1;
			if (!mounts.warned)
				fsp_log(1, "more than %d mounts below %s: nodes on the others keep "
					"a descriptor each", MAX_MOUNTS, pt.source);
			mounts.warned = true;
		} else {
			mounts.id[i] = mnt_id;
			mounts.fd[i] = fd;
			mounts.n++;
			fd = -1;
		}
	}
	pthread_mutex_unlock(&mounts.lock);
	if (fd >= 0)
		close(fd);
	return i;
}

/* ---- descriptor cache ---- */

static void lru_unlink(struct cshard *cs, struct pt_node *n)
{
	if (n->lprev)
		n->lprev->lnext = n->lnext;
	else
		cs->head = n->lnext;
	if (n->lnext)
		n->lnext->lprev = n->lprev;
	else
		cs->tail = n->lprev;
	n->lprev = n->lnext = NULL;
}

static void lru_push(struct cshard *cs, struct pt_node *n)
{
	n->lprev = NULL;
	n->lnext = cs->head;
	if (cs->head)
		cs->head->lprev = n;
	cs->head = n;
	if (!cs->tail)
		cs->tail = n;
}

/* Shard lock held: close unpinned descriptors from the cold end until the
 * shard is within its share. */
static void evict(struct cshard *cs)
{
	struct pt_node *v = cs->tail, *prev;
	for (; v && cs->count > cs->max; v = prev) {
		prev = v->lprev;
		if (v->pins)
			continue;
		lru_unlink(cs, v);
		close(v->fd);
		v->fd = -1;
		cs->count--;
		atomic_fetch_sub(&n_cached, 1);
		atomic_fetch_add(&n_evicted, 1);
	}
}

/* Offer fd (O_PATH of n's object) to the cache; closes it if n has one. */
static void cache_put_fd(struct pt_node *n, int fd)
{
	struct cshard *cs = cshard_of(n);
	pthread_mutex_lock(&cs->lock);
	if (n->fd < 0 && !atomic_load(&n->stale)) {
		n->fd = fd;
		fd = -1;
		lru_push(cs, n);
		cs->count++;
		atomic_fetch_add(&n_cached, 1);
		evict(cs);
	}
	pthread_mutex_unlock(&cs->lock);
	if (fd >= 0)
		close(fd);
}

int pt_node_fd(struct pt_node *n)
{
	struct cshard *cs = cshard_of(n);
	struct stat st;
	int fd, extra = -1;

	if (atomic_load(&n->stale))
		return -ESTALE;
	pthread_mutex_lock(&cs->lock);
	if (n->fd >= 0) {
		n->pins++;
		if (!n->pinned && cs->head != n) {
			lru_unlink(cs, n);
			lru_push(cs, n);
		}
		fd = n->fd;
		pthread_mutex_unlock(&cs->lock);
		return fd;
	}
	pthread_mutex_unlock(&cs->lock);
	if (!n->fh)
		return -ESTALE;   /* a pinned node lost its fd: cannot happen */
	/* Needs CAP_DAC_READ_SEARCH: callers get descriptors before they
	 * take on a caller's credentials. */
	fd = open_by_handle_at(mounts.fd[n->mnt], n->fh, O_PATH | O_CLOEXEC);
	atomic_fetch_add(&n_handle_opens, 1);
	if (fd < 0) {
		int e = errno;
		if (e == ESTALE || e == ENOENT) {
			pt_node_mark_stale(n);
			return -ESTALE;
		}
		return -e;
	}
	/* The handle names an inode and its generation; check anyway that it
	 * is the object we know, so a reused handle can never give other data. */
	if (fstat(fd, &st) < 0 || st.st_dev != n->dev || st.st_ino != n->ino ||
	    (st.st_mode & S_IFMT) != n->type) {
		close(fd);
		pt_node_mark_stale(n);
		return -ESTALE;
	}
	pthread_mutex_lock(&cs->lock);
	if (n->fd >= 0) {
		extra = fd;
		if (!n->pinned && cs->head != n) {
			lru_unlink(cs, n);
			lru_push(cs, n);
		}
	} else {
		n->fd = fd;
		lru_push(cs, n);
		cs->count++;
		atomic_fetch_add(&n_cached, 1);
	}
	n->pins++;
	fd = n->fd;
	evict(cs);
	pthread_mutex_unlock(&cs->lock);
	if (extra >= 0)
		close(extra);
	return fd;
}

void pt_node_fd_put(struct pt_node *n)
{
	struct cshard *cs = cshard_of(n);
	pthread_mutex_lock(&cs->lock);
	if (n->pins == 0) {
		pthread_mutex_unlock(&cs->lock);
		fsp_log(0, "ptfs bug: node %llu: descriptor pin count below zero",
			(unsigned long long)n->id);
		abort();
	}
	n->pins--;
	pthread_mutex_unlock(&cs->lock);
}

void pt_node_mark_stale(struct pt_node *n)
{
	bool was = atomic_exchange(&n->stale, true);
	if (!was)
		atomic_fetch_add(&n_stale, 1);
}

/* ---- the table ---- */

static struct pt_node **find_slot(struct tshard *t, uint64_t h, dev_t dev, ino_t ino)
{
	struct pt_node **p = &t->b[(h >> 6) & (t->nb - 1)];
	while (*p && ((*p)->dev != dev || (*p)->ino != ino))
		p = &(*p)->hnext;
	return p;
}

static void unhash(struct tshard *t, struct pt_node *n)
{
	struct pt_node **p = find_slot(t, key_hash(n->dev, n->ino), n->dev, n->ino);
	/* the chain may hold only this node for (dev, ino) */
	if (*p != n) {
		fsp_log(0, "ptfs bug: node %llu missing from its table", (unsigned long long)n->id);
		abort();
	}
	*p = n->hnext;
	n->hnext = NULL;
	n->hashed = false;
	t->count--;
}

static void maybe_grow(struct tshard *t)
{
	if (t->count <= t->nb * 2)
		return;
	size_t nb = t->nb * 4;
	struct pt_node **b = calloc(nb, sizeof(*b));
	if (!b)
		return;   /* longer chains, nothing lost */
	for (size_t i = 0; i < t->nb; i++) {
		struct pt_node *n = t->b[i], *next;
		for (; n; n = next) {
			next = n->hnext;
			size_t k = (key_hash(n->dev, n->ino) >> 6) & (nb - 1);
			n->hnext = b[k];
			b[k] = n;
		}
	}
	free(t->b);
	t->b = b;
	t->nb = nb;
}

static void node_free(struct pt_node *n)
{
	struct cshard *cs = cshard_of(n);
	pthread_mutex_lock(&cs->lock);
	if (n->pins)
		fsp_log(0, "ptfs bug: node %llu freed with its descriptor in use",
			(unsigned long long)n->id);
	if (n->fd >= 0) {
		if (n->pinned) {
			atomic_fetch_sub(&n_pinned, 1);
		} else {
			lru_unlink(cs, n);
			cs->count--;
			atomic_fetch_sub(&n_cached, 1);
		}
		close(n->fd);
		n->fd = -1;
	}
	pthread_mutex_unlock(&cs->lock);
	pthread_mutex_destroy(&n->lock);
	free(n->fh);
	free(n);
	atomic_fetch_sub(&n_nodes, 1);
}

static struct pt_node *node_alloc(const struct stat *st)
{
	struct pt_node *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->dev = st->st_dev;
	n->ino = st->st_ino;
	n->type = st->st_mode & S_IFMT;
	n->fd = -1;
	n->mnt = -1;
	pthread_mutex_init(&n->lock, NULL);
	return n;
}

int pt_node_get(int pathfd, int anyfd, const struct stat *st, bool tmp, struct pt_node **out)
{
	uint64_t h = key_hash(st->st_dev, st->st_ino);
	struct tshard *t = tshard_of(h);
	struct file_handle *fh = NULL;
	struct pt_node *n, *fresh = NULL;
	int mnt_id = 0, err = 0, midx = -1;

	if (pt.handles) {
		fh = make_handle(anyfd, &mnt_id, &err);
		if (fh) {
			midx = mount_index(mnt_id, pathfd >= 0 ? pathfd : anyfd, st->st_mode);
			if (midx < 0) {
				free(fh);
				fh = NULL;
			}
		} else if (err == -ENOMEM) {
			goto fail;
		}
	}

	pthread_mutex_lock(&t->lock);
	n = *find_slot(t, h, st->st_dev, st->st_ino);
	if (n) {
		/* Same (dev, ino) is the same object unless the inode number was
		 * reused: a pinned fd keeps the old inode alive (no reuse
		 * possible); otherwise the handles tell (generation). */
		if (!atomic_load(&n->stale) &&
		    (n->pinned || !fh || !n->fh || same_handle(n->fh, fh))) {
			n->refs++;
			pthread_mutex_unlock(&t->lock);
			free(fh);
			if (pathfd >= 0) {
				if (n->pinned)
					close(pathfd);
				else
					cache_put_fd(n, pathfd);
			}
			*out = n;
			return 0;
		}
		unhash(t, n);
		pt_node_mark_stale(n);
	}
	pthread_mutex_unlock(&t->lock);

	fresh = node_alloc(st);
	if (!fresh) {
		err = -ENOMEM;
		goto fail;
	}
	fresh->tmp = tmp;
	fresh->fh = fh;
	fresh->mnt = midx;
	fh = NULL;
	if (!fresh->fh || tmp) {
		/* No handle (or an unnamed file that a handle cannot reopen):
		 * the node keeps a descriptor for its whole life. */
		if (pathfd < 0) {
			pathfd = pt_reopen(anyfd, O_PATH);
			if (pathfd < 0) {
				err = pathfd;
				pthread_mutex_destroy(&fresh->lock);
				free(fresh->fh);
				free(fresh);
				return err;
			}
		}
		fresh->fd = pathfd;
		fresh->pinned = true;
		pathfd = -1;
	}
	fresh->id = atomic_fetch_add(&next_id, 1);
	fresh->refs = 1;

	pthread_mutex_lock(&t->lock);
	n = *find_slot(t, h, st->st_dev, st->st_ino);
	if (n && !atomic_load(&n->stale) &&
	    (n->pinned || !fresh->fh || !n->fh || same_handle(n->fh, fresh->fh))) {
		/* Another thread made it first: use that one. */
		n->refs++;
		pthread_mutex_unlock(&t->lock);
		if (fresh->pinned) {
			close(fresh->fd);
			fresh->fd = -1;
			fresh->pinned = false;
		}
		pthread_mutex_destroy(&fresh->lock);
		free(fresh->fh);
		free(fresh);
		if (pathfd >= 0) {
			if (n->pinned)
				close(pathfd);
			else
				cache_put_fd(n, pathfd);
		}
		*out = n;
		return 0;
	}
	if (n) {
		unhash(t, n);
		pt_node_mark_stale(n);
	}
	struct pt_node **p = find_slot(t, h, st->st_dev, st->st_ino);
	fresh->hnext = *p;
	*p = fresh;
	fresh->hashed = true;
	t->count++;
	maybe_grow(t);
	pthread_mutex_unlock(&t->lock);
	atomic_fetch_add(&n_nodes, 1);
	if (fresh->pinned)
		atomic_fetch_add(&n_pinned, 1);
	if (pathfd >= 0)
		cache_put_fd(fresh, pathfd);   /* we hold a reference: fresh lives */
	*out = fresh;
	return 0;
fail:
	free(fh);
	if (pathfd >= 0)
		close(pathfd);
	return err;
}

void pt_node_ref(struct pt_node *n)
{
	struct tshard *t = tshard_of(key_hash(n->dev, n->ino));
	pthread_mutex_lock(&t->lock);
	n->refs++;
	pthread_mutex_unlock(&t->lock);
}

void pt_node_unref(struct pt_node *n, uint64_t count)
{
	struct tshard *t = tshard_of(key_hash(n->dev, n->ino));
	bool dead = false;

	pthread_mutex_lock(&t->lock);
	if (count > n->refs || (n == pt.root && count >= n->refs)) {
		pthread_mutex_unlock(&t->lock);
		fsp_log(0, "ptfs bug: node %llu: dropping %llu references of %llu",
			(unsigned long long)n->id, (unsigned long long)count,
			(unsigned long long)n->refs);
		abort();
	}
	n->refs -= count;
	if (n->refs == 0) {
		if (n->hashed)
			unhash(t, n);
		dead = true;
	}
	pthread_mutex_unlock(&t->lock);
	if (dead)
		node_free(n);
}

/* ---- the janitor ----
 * A cached descriptor of a file removed behind the mount keeps its inode,
 * and its space, in use. Every two seconds the janitor closes the cached
 * descriptors (not in use) of objects with no link left. The object itself
 * stays as it is: while something else still holds the inode (an open file
 * of a client) its handle reopens it; once it is gone, ESTALE. */

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool running, stop;
} jan = { .lock = PTHREAD_MUTEX_INITIALIZER };

static atomic_long n_swept;

static void sweep(void)
{
	struct stat st;
	for (int i = 0; i < CSHARDS; i++) {
		struct cshard *cs = &csh[i];
		pthread_mutex_lock(&cs->lock);
		for (struct pt_node *v = cs->head, *next; v; v = next) {
			next = v->lnext;
			if (v->pins || v->tmp || fstat(v->fd, &st) < 0 || st.st_nlink > 0)
				continue;
			lru_unlink(cs, v);
			close(v->fd);
			v->fd = -1;
			cs->count--;
			atomic_fetch_sub(&n_cached, 1);
			atomic_fetch_add(&n_swept, 1);
		}
		pthread_mutex_unlock(&cs->lock);
	}
}

static void *janitor_main(void *arg)
{
	sigset_t all;
	(void)arg;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);   /* signals are the main thread's */
	pthread_mutex_lock(&jan.lock);
	while (!jan.stop) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += 2;
		pthread_cond_timedwait(&jan.cond, &jan.lock, &ts);
		if (jan.stop)
			break;
		pthread_mutex_unlock(&jan.lock);
		sweep();
		pthread_mutex_lock(&jan.lock);
	}
	pthread_mutex_unlock(&jan.lock);
	return NULL;
}

void pt_janitor_start(void)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&jan.cond, &ca);
	pthread_condattr_destroy(&ca);
	jan.stop = false;
	if (pthread_create(&jan.thread, NULL, janitor_main, NULL) == 0)
		jan.running = true;
	else
		fsp_log(1, "no janitor thread: descriptors of files removed behind the mount "
			"are closed only when evicted");
}

void pt_janitor_stop(void)
{
	if (!jan.running)
		return;
	pthread_mutex_lock(&jan.lock);
	jan.stop = true;
	pthread_cond_signal(&jan.cond);
	pthread_mutex_unlock(&jan.lock);
	pthread_join(jan.thread, NULL);
	pthread_cond_destroy(&jan.cond);
	jan.running = false;
}

/* ---- start and end ---- */

int pt_nodes_init(int root_fd, int mnt_fd, unsigned cache_max)
{
	struct stat st;
	int mnt_id = 0, err = 0;

	for (int i = 0; i < TSHARDS; i++) {
		pthread_mutex_init(&tsh[i].lock, NULL);
		tsh[i].nb = 64;
		tsh[i].b = calloc(tsh[i].nb, sizeof(*tsh[i].b));
		if (!tsh[i].b)
			return -ENOMEM;
	}
	for (int i = 0; i < CSHARDS; i++) {
		pthread_mutex_init(&csh[i].lock, NULL);
		csh[i].max = cache_max / CSHARDS ? cache_max / CSHARDS : 1;
	}
	if (fstat(root_fd, &st) < 0)
		return -errno;
	struct pt_node *n = node_alloc(&st);
	if (!n)
		return -ENOMEM;
	n->id = FSP_ROOT_INO;
	n->fd = root_fd;
	n->pinned = true;
	n->refs = 1;   /* ours, for the session's life */

	/* File handles: needs the backing file system's support and
	 * CAP_DAC_READ_SEARCH to open them again. */
	pt.handles = false;
	struct file_handle *fh = make_handle(root_fd, &mnt_id, &err);
	if (!fh) {
		struct rlimit rl = { 0, 0 };
		getrlimit(RLIMIT_NOFILE, &rl);
		fsp_log(1, "%s: no file handles (%s); keeping one descriptor per node, so at most "
			"about %llu files can be known at once (the open file limit)", pt.source,
			strerror(-err), (unsigned long long)rl.rlim_cur);
	} else {
		int fd = open_by_handle_at(mnt_fd, fh, O_PATH | O_CLOEXEC);
		if (fd < 0) {
			fsp_log(1, "%s: cannot reopen file handles (%s%s); keeping one descriptor "
				"per node", pt.source, strerror(errno),
				errno == EPERM ? ": needs CAP_DAC_READ_SEARCH" : "");
			free(fh);
		} else {
			close(fd);
			pt.handles = true;
			mounts.id[0] = mnt_id;
			mounts.fd[0] = mnt_fd;
			mounts.n = 1;
			mnt_fd = -1;
			n->fh = fh;
			n->mnt = 0;
		}
	}
	if (mnt_fd >= 0)
		close(mnt_fd);
	struct tshard *t = tshard_of(key_hash(n->dev, n->ino));
	struct pt_node **p = find_slot(t, key_hash(n->dev, n->ino), n->dev, n->ino);
	*p = n;
	n->hashed = true;
	t->count++;
	atomic_fetch_add(&n_nodes, 1);
	atomic_fetch_add(&n_pinned, 1);
	pt.root = n;
	return 0;
}

void pt_nodes_free(void)
{
	/* After the session: every other node was forgotten. */
	if (pt.root) {
		struct tshard *t = tshard_of(key_hash(pt.root->dev, pt.root->ino));
		if (pt.root->hashed)
			unhash(t, pt.root);
		node_free(pt.root);   /* closes root_fd */
		pt.root = NULL;
	}
	long left = atomic_load(&n_nodes);
	if (left)
		fsp_log(1, "%ld nodes were not forgotten at the end", left);
	for (int i = 0; i < mounts.n; i++)
		close(mounts.fd[i]);
	mounts.n = 0;
	for (int i = 0; i < TSHARDS; i++) {
		free(tsh[i].b);
		tsh[i].b = NULL;
	}
}

size_t pt_nodes_stats(char *buf, size_t size)
{
	pthread_mutex_lock(&mounts.lock);
	int nmounts = mounts.n;
	pthread_mutex_unlock(&mounts.lock);
	int n = snprintf(buf, size,
			 "ptfs.nodes %ld\nptfs.fd_cached %ld\nptfs.fd_cache_max %u\n"
			 "ptfs.fd_pinned %ld\nptfs.handle_opens %ld\nptfs.fd_evicted %ld\n"
			 "ptfs.stale %ld\nptfs.fd_swept %ld\nptfs.file_handles %d\n"
			 "ptfs.mounts %d\n",
			 atomic_load(&n_nodes), atomic_load(&n_cached), pt.fd_cache_max,
			 atomic_load(&n_pinned), atomic_load(&n_handle_opens),
			 atomic_load(&n_evicted), atomic_load(&n_stale), atomic_load(&n_swept),
			 pt.handles ? 1 : 0, nmounts);
	if (n < 0)
		return 0;
	return (size_t)n < size ? (size_t)n : size ? size - 1 : 0;
}
