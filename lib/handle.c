/* handle.c — the handle table: the fh number the kernel holds for an open
 * file or directory -> the file system's per-open value.
 *
 * Invariants:
 *  - ids are never reused (64-bit counter), so a stale or forged fh from the
 *    kernel can only miss (EBADF), never hit another open.
 *  - A handle is in the table from open until RELEASE; refs is 1 for the
 *    table plus 1 per request using it. Whoever drops refs to 0 — RELEASE or
 *    the last request — calls release/releasedir, exactly once, then drops
 *    the handle's user reference on its node.
 *  - Shard locks guard the chains only; refs is atomic.
 */
#include "fsp_i.h"
#include <errno.h>

#define NSHARDS 64

struct shard {
	pthread_mutex_t lock;
	struct fsp__handle **buckets;
	size_t nbuckets;
	size_t count;
} __attribute__((aligned(64)));

struct fsp__handle_table {
	fsp_session *s;
	_Atomic uint64_t next_id;
	struct shard shards[NSHARDS];
};

static inline struct shard *shard_of(struct fsp__handle_table *t, uint64_t id)
{
	return &t->shards[id & (NSHARDS - 1)];
}

static inline size_t bucket_of(const struct shard *sh, uint64_t id)
{
	return (id / NSHARDS) & (sh->nbuckets - 1);
}

int fsp__handles_new(fsp_session *s, struct fsp__handle_table **out)
{
	struct fsp__handle_table *t = fsp__calloc(1, sizeof(*t));
	int i;

	if (!t)
		return -ENOMEM;
	t->s = s;
	atomic_init(&t->next_id, 1);
	for (i = 0; i < NSHARDS; i++) {
		pthread_mutex_init(&t->shards[i].lock, NULL);
		t->shards[i].nbuckets = 16;
		t->shards[i].buckets = fsp__calloc(16, sizeof(struct fsp__handle *));
		if (!t->shards[i].buckets)
			goto nomem;
	}
	*out = t;
	return 0;
nomem:
	for (i = 0; i < NSHARDS; i++) {
		fsp__free(t->shards[i].buckets);
		pthread_mutex_destroy(&t->shards[i].lock);
	}
	fsp__free(t);
	return -ENOMEM;
}

static void maybe_grow(struct shard *sh)
{
	size_t nb = sh->nbuckets * 2;
	struct fsp__handle **b;

	if (sh->count <= sh->nbuckets)
		return;
	b = fsp__calloc(nb, sizeof(*b));
	if (!b)
		return;
	for (size_t i = 0; i < sh->nbuckets; i++) {
		struct fsp__handle *h = sh->buckets[i], *next;
		for (; h; h = next) {
			size_t k = (h->id / NSHARDS) & (nb - 1);
			next = h->next;
			h->next = b[k];
			b[k] = h;
		}
	}
	fsp__free(sh->buckets);
	sh->buckets = b;
	sh->nbuckets = nb;
}

static void destroy(struct fsp__handle_table *t, struct fsp__handle *h)
{
	fsp_session *s = t->s;
	if (h->is_dir) {
		if (s->ops.releasedir)
			s->ops.releasedir(s, h->node->obj, h->fh);
	} else if (s->ops.release) {
		s->ops.release(s, h->node->obj, h->fh, h->flags);
	}
	fsp__node_put(s->nodes, h->node);
	fsp__free(h);
}

int fsp__handle_new(struct fsp__handle_table *t, struct fsp__node *node, void *fh,
		    int flags, bool is_dir, struct fsp__handle **out)
{
	struct fsp__handle *h = fsp__calloc(1, sizeof(*h));
	struct shard *sh;

	if (!h)
		return -ENOMEM;
	h->id = atomic_fetch_add(&t->next_id, 1);
	h->node = node;
	h->fh = fh;
	h->flags = flags;
	h->is_dir = is_dir;
	atomic_init(&h->refs, 1);
	fsp__node_hold(t->s->nodes, node);
	sh = shard_of(t, h->id);
	pthread_mutex_lock(&sh->lock);
	size_t k = bucket_of(sh, h->id);
	h->next = sh->buckets[k];
	sh->buckets[k] = h;
	sh->count++;
	maybe_grow(sh);
	pthread_mutex_unlock(&sh->lock);
	*out = h;
	return 0;
}

int fsp__handle_get(struct fsp__handle_table *t, uint64_t id, bool is_dir,
		    struct fsp__handle **out)
{
	struct shard *sh = shard_of(t, id);
	struct fsp__handle *h;

	pthread_mutex_lock(&sh->lock);
	for (h = sh->buckets[bucket_of(sh, id)]; h && h->id != id; h = h->next)
		;
	if (h && h->is_dir == is_dir)
		atomic_fetch_add(&h->refs, 1);
	else
		h = NULL;
	pthread_mutex_unlock(&sh->lock);
	*out = h;
	return h ? 0 : -EBADF;
}

void fsp__handle_put(struct fsp__handle_table *t, struct fsp__handle *h)
{
	unsigned old = atomic_fetch_sub(&h->refs, 1);
	if (old == 0)
		FSP__BUG("handle %llu: reference count below zero", (unsigned long long)h->id);
	else if (old == 1)
		destroy(t, h);
}

int fsp__handle_release(struct fsp__handle_table *t, uint64_t id, bool is_dir)
{
	struct shard *sh = shard_of(t, id);
	struct fsp__handle **p, *h;

	pthread_mutex_lock(&sh->lock);
	for (p = &sh->buckets[bucket_of(sh, id)]; *p && (*p)->id != id; p = &(*p)->next)
		;
	h = *p;
	if (h && h->is_dir == is_dir) {
		*p = h->next;
		sh->count--;
	} else {
		h = NULL;
	}
	pthread_mutex_unlock(&sh->lock);
	if (!h)
		return -EBADF;
	fsp__handle_put(t, h);
	return 0;
}

uint64_t fsp__handles_count(struct fsp__handle_table *t)
{
	uint64_t c = 0;
	for (int i = 0; i < NSHARDS; i++) {
		pthread_mutex_lock(&t->shards[i].lock);
		c += t->shards[i].count;
		pthread_mutex_unlock(&t->shards[i].lock);
	}
	return c;
}

void fsp__handles_free(struct fsp__handle_table *t)
{
	if (!t)
		return;
	/* Workers are gone; opens the kernel never released (aborted
	 * connection, lazy unmount) are released here, exactly once. */
	for (int i = 0; i < NSHARDS; i++) {
		struct shard *sh = &t->shards[i];
		for (size_t b = 0; b < sh->nbuckets; b++) {
			struct fsp__handle *h = sh->buckets[b], *next;
			for (; h; h = next) {
				next = h->next;
				fsp__handle_put(t, h);
			}
		}
		fsp__free(sh->buckets);
		pthread_mutex_destroy(&sh->lock);
	}
	fsp__free(t);
}
