/* node.c — the node table: node id -> the file system's object, and the
 * counts that decide when the object's period with the kernel ends.
 *
 * Invariants (each guarded by the node's shard lock):
 *  - A node is in the table iff nlookup > 0 or users > 0. The moment both are
 *    0 it is unlinked, under the lock, by exactly one thread; that thread then
 *    calls forget(obj, fs_refs) outside the lock and frees the node. So forget
 *    runs once per period and after the last user.
 *  - nlookup counts what the kernel holds: +1 per entry sent, -n per FORGET.
 *    fs_refs counts references the file system handed over in this period; it
 *    only grows, and all of it is handed back by the one forget.
 *  - users counts requests in flight that resolved this node, open handles,
 *    and 1 for the root for the session's whole life.
 *  - users going below zero is our bug: FSP__BUG names the node (debug
 *    builds abort). nlookup going below zero is the kernel's count
 *    disagreeing with ours: logged and clamped, never an abort.
 * No lock is held while a file system callback runs.
 */
#include "fsp_i.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NSHARDS 64   /* power of two; enough that 64 workers rarely collide */

struct shard {
	pthread_mutex_t lock;
	struct fsp__node **buckets;
	size_t nbuckets;   /* power of two */
	size_t count;
} __attribute__((aligned(64)));

struct fsp__node_table {
	fsp_session *s;
	struct shard shards[NSHARDS];
};

static inline uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

static inline struct shard *shard_of(struct fsp__node_table *t, uint64_t h)
{
	return &t->shards[h & (NSHARDS - 1)];
}

static inline size_t bucket_of(const struct shard *sh, uint64_t h)
{
	return (h >> 6) & (sh->nbuckets - 1);
}

int fsp__nodes_new(fsp_session *s, struct fsp__node_table **out)
{
	struct fsp__node_table *t = fsp__calloc(1, sizeof(*t));
	int i;

	if (!t)
		return -ENOMEM;
	t->s = s;
	for (i = 0; i < NSHARDS; i++) {
		struct shard *sh = &t->shards[i];
		pthread_mutex_init(&sh->lock, NULL);
		sh->nbuckets = 16;
		sh->buckets = fsp__calloc(sh->nbuckets, sizeof(*sh->buckets));
		if (!sh->buckets)
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

/* Called with the shard lock held. A failed grow is harmless: chains get
 * longer, nothing is lost. */
static void maybe_grow(struct shard *sh)
{
	size_t nb = sh->nbuckets * 2, i;
	struct fsp__node **b;

	if (sh->count <= sh->nbuckets)
		return;
	b = fsp__calloc(nb, sizeof(*b));
	if (!b)
		return;
	for (i = 0; i < sh->nbuckets; i++) {
		struct fsp__node *n = sh->buckets[i], *next;
		for (; n; n = next) {
			size_t k = (mix(n->ino) >> 6) & (nb - 1);
			next = n->next;
			n->next = b[k];
			b[k] = n;
		}
	}
	fsp__free(sh->buckets);
	sh->buckets = b;
	sh->nbuckets = nb;
}

static struct fsp__node **find_slot(struct shard *sh, uint64_t h, uint64_t ino)
{
	struct fsp__node **p = &sh->buckets[bucket_of(sh, h)];
	while (*p && (*p)->ino != ino)
		p = &(*p)->next;
	return p;
}

/* Shard lock held. If the node's period is over, unlink it and return it for
 * the caller to forget after unlocking; else NULL. */
static struct fsp__node *maybe_unlink(struct shard *sh, struct fsp__node *n)
{
	if (n->nlookup || n->users)
		return NULL;
	struct fsp__node **p = find_slot(sh, mix(n->ino), n->ino);
	if (*p != n) {
		FSP__BUG("node %llu missing from its table", (unsigned long long)n->ino);
		return NULL;
	}
	*p = n->next;
	sh->count--;
	return n;
}

static void end_period(struct fsp__node_table *t, struct fsp__node *n)
{
	if (!n)
		return;
	if (t->s->ops.forget && (n->fs_refs || n->ino == FSP_ROOT_INO))
		t->s->ops.forget(t->s, n->obj, n->fs_refs);
	fsp__free(n);
}

int fsp__nodes_add_root(struct fsp__node_table *t, void *root)
{
	uint64_t h = mix(FSP_ROOT_INO);
	struct shard *sh = shard_of(t, h);
	struct fsp__node *n = fsp__calloc(1, sizeof(*n));

	if (!n)
		return -ENOMEM;
	n->ino = FSP_ROOT_INO;
	n->obj = root;
	n->users = 1;
	pthread_mutex_lock(&sh->lock);
	struct fsp__node **p = find_slot(sh, h, FSP_ROOT_INO);
	n->next = NULL;
	*p = n;
	sh->count++;
	pthread_mutex_unlock(&sh->lock);
	return 0;
}

int fsp__node_get(struct fsp__node_table *t, uint64_t ino, struct fsp__node **out)
{
	uint64_t h = mix(ino);
	struct shard *sh = shard_of(t, h);
	struct fsp__node *n;

	pthread_mutex_lock(&sh->lock);
	n = *find_slot(sh, h, ino);
	if (n)
		n->users++;
	pthread_mutex_unlock(&sh->lock);
	*out = n;
	return n ? 0 : -ESTALE;
}

void fsp__node_hold(struct fsp__node_table *t, struct fsp__node *n)
{
	struct shard *sh = shard_of(t, mix(n->ino));
	pthread_mutex_lock(&sh->lock);
	n->users++;
	pthread_mutex_unlock(&sh->lock);
}

void fsp__node_put(struct fsp__node_table *t, struct fsp__node *n)
{
	struct shard *sh = shard_of(t, mix(n->ino));
	struct fsp__node *dead = NULL;

	pthread_mutex_lock(&sh->lock);
	if (n->users == 0)
		FSP__BUG("node %llu: user count below zero", (unsigned long long)n->ino);
	else
		n->users--;
	dead = maybe_unlink(sh, n);
	pthread_mutex_unlock(&sh->lock);
	end_period(t, dead);
}

int fsp__node_add_entry(struct fsp__node_table *t, const struct fsp_entry *e,
			int counted_by_kernel)
{
	uint64_t h = mix(e->ino);
	struct shard *sh = shard_of(t, h);
	struct fsp__node *n, *fresh = NULL;
	int err = 0;

	if (e->ino == 0)
		return -EIO;
	/* Allocate before locking: the common case (node exists) wastes one
	 * malloc/free only when two lookups of a new node race. */
	pthread_mutex_lock(&sh->lock);
	n = *find_slot(sh, h, e->ino);
	if (!n) {
		pthread_mutex_unlock(&sh->lock);
		fresh = fsp__calloc(1, sizeof(*fresh));
		if (!fresh) {
			err = -ENOMEM;
			goto give_back;
		}
		fresh->ino = e->ino;
		fresh->generation = e->generation;
		fresh->obj = e->obj;
		pthread_mutex_lock(&sh->lock);
		struct fsp__node **p = find_slot(sh, h, e->ino);
		n = *p;
		if (!n) {
			n = fresh;
			fresh = NULL;
			*p = n;
			sh->count++;
			maybe_grow(sh);
		}
	}
	if (n->obj != e->obj || n->generation != e->generation) {
		pthread_mutex_unlock(&sh->lock);
		fsp_log(0, "file system bug: node id %llu reported for two objects "
			"(or two generations) at once", (unsigned long long)e->ino);
		err = -EIO;
		goto give_back;
	}
	n->fs_refs++;
	if (counted_by_kernel)
		n->nlookup++;
	/* A "."/".." entry of a node nobody holds ends its period right away. */
	struct fsp__node *dead = maybe_unlink(sh, n);
	pthread_mutex_unlock(&sh->lock);
	fsp__free(fresh);
	end_period(t, dead);
	return 0;
give_back:
	fsp__free(fresh);
	return err;
}

static void sub_lookup(struct fsp__node_table *t, uint64_t ino, uint64_t count, const char *why)
{
	uint64_t h = mix(ino);
	struct shard *sh = shard_of(t, h);
	struct fsp__node *n, *dead = NULL;

	pthread_mutex_lock(&sh->lock);
	n = *find_slot(sh, h, ino);
	if (!n) {
		pthread_mutex_unlock(&sh->lock);
		/* The kernel forgetting a node we don't hold means our count
		 * and its count disagree: a bug on one side. Never a crash. */
		fsp_log(1, "%s of unknown node %llu ignored", why, (unsigned long long)ino);
		return;
	}
	if (count > n->nlookup) {
		/* The count comes from the kernel: validated input, not our
		 * invariant, so a warning and a clamp, never an abort. */
		fsp_log(1, "node %llu: %s of %llu exceeds lookup count %llu; clamped",
			(unsigned long long)ino, why, (unsigned long long)count,
			(unsigned long long)n->nlookup);
		count = n->nlookup;
	}
	n->nlookup -= count;
	dead = maybe_unlink(sh, n);
	pthread_mutex_unlock(&sh->lock);
	end_period(t, dead);
}

void fsp__node_unsent(struct fsp__node_table *t, uint64_t ino)
{
	sub_lookup(t, ino, 1, "unsent entry");
}

void fsp__node_forget(struct fsp__node_table *t, uint64_t ino, uint64_t nlookup)
{
	/* The root is counted like any node ("..", file handles); its extra
	 * user reference keeps it for the whole session. */
	sub_lookup(t, ino, nlookup, "FORGET");
}

uint64_t fsp__nodes_count(struct fsp__node_table *t)
{
	uint64_t c = 0;
	for (int i = 0; i < NSHARDS; i++) {
		pthread_mutex_lock(&t->shards[i].lock);
		c += t->shards[i].count;
		pthread_mutex_unlock(&t->shards[i].lock);
	}
	return c;
}

void fsp__nodes_free(struct fsp__node_table *t)
{
	if (!t)
		return;
	/* No worker runs any more: every node still here ends its period now,
	 * the root last so a file system may tear down its tree from it. */
	struct fsp__node *root = NULL;
	for (int i = 0; i < NSHARDS; i++) {
		struct shard *sh = &t->shards[i];
		for (size_t b = 0; b < sh->nbuckets; b++) {
			struct fsp__node *n = sh->buckets[b], *next;
			for (; n; n = next) {
				next = n->next;
				if (n->ino == FSP_ROOT_INO) {
					root = n;
					continue;
				}
				if (n->users)
					FSP__BUG("node %llu still has %u users at shutdown",
						 (unsigned long long)n->ino, n->users);
				end_period(t, n);
			}
		}
		fsp__free(sh->buckets);
		pthread_mutex_destroy(&sh->lock);
	}
	end_period(t, root);
	fsp__free(t);
}
