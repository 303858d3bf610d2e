/* hash.c — the sharded hash under the node table and the handle table: an
 * intrusive map from a uint64 key to a struct fsp__hlink embedded in the
 * caller's object. The caller owns the objects; the hash only chains them.
 *
 * Invariants:
 *  - A key's shard is fixed by mix(key): every thread that looks for the key
 *    takes the same shard lock, so a link is found, inserted and removed only
 *    under its shard's lock. Keys are unique within the hash (callers look
 *    before they insert).
 *  - count is the number of links in the shard; nbuckets is a power of two
 *    and grows (doubles) when count passes it. A failed grow is harmless:
 *    chains get longer, nothing is lost.
 * Lock order: a shard lock is a leaf. While it is held no other lock is
 * taken (no other shard's, no other table's, no callback runs), so callers
 * may hold it only around their own counters, never around a call out.
 */
#include "fsp_i.h"
#include <errno.h>

#define NSHARDS 64   /* power of two; enough that 64 workers rarely collide */
#define SHARD_BITS 6

struct fsp__hash_shard {
	pthread_mutex_t lock;
	struct fsp__hlink **buckets;   /* guarded by lock */
	size_t nbuckets;               /* power of two; guarded by lock */
	size_t count;                  /* links in buckets; guarded by lock */
} __attribute__((aligned(64)));

struct fsp__hash {
	struct fsp__hash_shard shards[NSHARDS];
};

/* Sequential keys (handle ids, counters as node ids) spread over shards and
 * buckets alike. */
static inline uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

static inline size_t bucket_of(size_t nbuckets, uint64_t key)
{
	return (size_t)(mix(key) >> SHARD_BITS) & (nbuckets - 1);
}

int fsp__hash_new(struct fsp__hash **out)
{
	struct fsp__hash *h = fsp__calloc(1, sizeof(*h));
	int i, rc = -ENOMEM;

	*out = NULL;
	if (!h)
		goto out;
	for (i = 0; i < NSHARDS; i++) {
		struct fsp__hash_shard *sh = &h->shards[i];
		pthread_mutex_init(&sh->lock, NULL);
		sh->nbuckets = 16;
		sh->buckets = fsp__calloc(sh->nbuckets, sizeof(*sh->buckets));
		if (!sh->buckets)
			goto out;
	}
	*out = h;
	h = NULL;
	rc = 0;
out:
	fsp__hash_free(h);
	return rc;
}

void fsp__hash_free(struct fsp__hash *h)
{
	if (!h)
		return;
	for (int i = 0; i < NSHARDS; i++) {
		struct fsp__hash_shard *sh = &h->shards[i];
		if (sh->count)
			FSP__BUG("hash freed with %zu links in shard %d", sh->count, i);
		fsp__free(sh->buckets);
		pthread_mutex_destroy(&sh->lock);
	}
	fsp__free(h);
}

struct fsp__hash_shard *fsp__hash_lock(struct fsp__hash *h, uint64_t key)
{
	struct fsp__hash_shard *sh = &h->shards[mix(key) & (NSHARDS - 1)];
	pthread_mutex_lock(&sh->lock);
	return sh;
}

void fsp__hash_unlock(struct fsp__hash_shard *sh)
{
	pthread_mutex_unlock(&sh->lock);
}

static struct fsp__hlink **find_slot(struct fsp__hash_shard *sh, uint64_t key)
{
	struct fsp__hlink **p = &sh->buckets[bucket_of(sh->nbuckets, key)];
	while (*p && (*p)->key != key)
		p = &(*p)->next;
	return p;
}

struct fsp__hlink *fsp__hash_find(struct fsp__hash_shard *sh, uint64_t key)
{
	return *find_slot(sh, key);
}

static void maybe_grow(struct fsp__hash_shard *sh)
{
	size_t nb = sh->nbuckets * 2;
	struct fsp__hlink **b;

	if (sh->count <= sh->nbuckets)
		return;
	b = fsp__calloc(nb, sizeof(*b));
	if (!b)
		return;
	for (size_t i = 0; i < sh->nbuckets; i++) {
		struct fsp__hlink *l = sh->buckets[i], *next;
		for (; l; l = next) {
			size_t k = bucket_of(nb, l->key);
			next = l->next;
			l->next = b[k];
			b[k] = l;
		}
	}
	fsp__free(sh->buckets);
	sh->buckets = b;
	sh->nbuckets = nb;
}

void fsp__hash_insert(struct fsp__hash_shard *sh, struct fsp__hlink *l)
{
	size_t k = bucket_of(sh->nbuckets, l->key);
	l->next = sh->buckets[k];
	sh->buckets[k] = l;
	sh->count++;
	maybe_grow(sh);
}

int fsp__hash_remove(struct fsp__hash_shard *sh, struct fsp__hlink *l)
{
	struct fsp__hlink **p = find_slot(sh, l->key);
	if (*p != l)
		return -ENOENT;
	*p = l->next;
	l->next = NULL;
	sh->count--;
	return 0;
}

uint64_t fsp__hash_count(struct fsp__hash *h)
{
	uint64_t c = 0;
	for (int i = 0; i < NSHARDS; i++) {
		pthread_mutex_lock(&h->shards[i].lock);
		c += h->shards[i].count;
		pthread_mutex_unlock(&h->shards[i].lock);
	}
	return c;
}

struct fsp__hlink *fsp__hash_drain(struct fsp__hash *h)
{
	struct fsp__hlink *all = NULL;
	for (int i = 0; i < NSHARDS; i++) {
		struct fsp__hash_shard *sh = &h->shards[i];
		for (size_t b = 0; b < sh->nbuckets; b++) {
			struct fsp__hlink *l = sh->buckets[b], *next;
			for (; l; l = next) {
				next = l->next;
				l->next = all;
				all = l;
			}
			sh->buckets[b] = NULL;
		}
		sh->count = 0;
	}
	return all;
}
