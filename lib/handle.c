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
 *  - refs going below zero is our bug: it aborts in every build
 *    (FSP__COUNT_BUG), as the handle may already be freed.
 *  - Shard locks (hash.c, each a leaf) guard the chains only; refs is
 *    atomic. The node is held and put, and release runs, with no shard
 *    lock of this table held.
 */
#include "fsp_i.h"
#include <errno.h>

struct fsp__handle_table {
	fsp_session *s;
	_Atomic uint64_t next_id;
	struct fsp__hash *hash;   /* id -> handle; its shard locks guard the chains */
};

static inline struct fsp__handle *handle_of(struct fsp__hlink *l)
{
	return l ? FSP__CONTAINER_OF(l, struct fsp__handle, link) : NULL;
}

int fsp__handles_new(fsp_session *s, struct fsp__handle_table **out)
{
	struct fsp__handle_table *t = fsp__calloc(1, sizeof(*t));
	int rc = -ENOMEM;

	*out = NULL;
	if (!t)
		goto out;
	t->s = s;
	atomic_init(&t->next_id, 1);
	rc = fsp__hash_new(&t->hash);
	if (rc < 0)
		goto out;
	*out = t;
	t = NULL;
out:
	fsp__free(t);
	return rc;
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
	struct fsp__hash_shard *sh;

	if (!h)
		return -ENOMEM;
	h->id = atomic_fetch_add(&t->next_id, 1);
	h->link.key = h->id;
	h->node = node;
	h->fh = fh;
	h->flags = flags;
	h->is_dir = is_dir;
	atomic_init(&h->refs, 1);
	fsp__node_hold(t->s->nodes, node);   /* before, not inside, the shard lock */
	sh = fsp__hash_lock(t->hash, h->id);
	fsp__hash_insert(sh, &h->link);
	fsp__hash_unlock(sh);
	*out = h;
	return 0;
}

int fsp__handle_get(struct fsp__handle_table *t, uint64_t id, bool is_dir,
		    struct fsp__handle **out)
{
	struct fsp__hash_shard *sh = fsp__hash_lock(t->hash, id);
	struct fsp__handle *h = handle_of(fsp__hash_find(sh, id));

	if (h && h->is_dir == is_dir)
		atomic_fetch_add(&h->refs, 1);
	else
		h = NULL;
	fsp__hash_unlock(sh);
	*out = h;
	return h ? 0 : -EBADF;
}

void fsp__handle_put(struct fsp__handle_table *t, struct fsp__handle *h)
{
	unsigned old = atomic_fetch_sub(&h->refs, 1);
	if (old == 0)
		FSP__COUNT_BUG("handle %llu: reference count below zero", (unsigned long long)h->id);
	if (old == 1)
		destroy(t, h);
}

int fsp__handle_release(struct fsp__handle_table *t, uint64_t id, bool is_dir)
{
	struct fsp__hash_shard *sh = fsp__hash_lock(t->hash, id);
	struct fsp__handle *h = handle_of(fsp__hash_find(sh, id));

	if (h && (h->is_dir != is_dir || fsp__hash_remove(sh, &h->link) < 0))
		h = NULL;
	fsp__hash_unlock(sh);
	if (!h)
		return -EBADF;
	fsp__handle_put(t, h);   /* the table's reference; no lock held */
	return 0;
}

uint64_t fsp__handles_count(struct fsp__handle_table *t)
{
	return fsp__hash_count(t->hash);
}

void fsp__handles_free(struct fsp__handle_table *t)
{
	struct fsp__hlink *l, *next;

	if (!t)
		return;
	/* Workers are gone; opens the kernel never released (aborted
	 * connection, lazy unmount) are released here, exactly once. */
	for (l = fsp__hash_drain(t->hash); l; l = next) {
		next = l->next;
		fsp__handle_put(t, handle_of(l));
	}
	fsp__hash_free(t->hash);
	fsp__free(t);
}
