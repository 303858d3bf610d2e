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
 *  - generation is what every entry of the node says, the whole session:
 *    the fs's, or the session's own when the fs gives 0 (fsp__node_generation;
 *    the root keeps 0, as the kernel's root inode has). The kernel marks an
 *    inode bad when an entry names it with another generation, and compares
 *    it with the one in a file handle (open_by_handle_at, NFS export): with
 *    node ids that restart each session, a handle from an earlier session
 *    must not match.
 *  - A count going below zero is our bug and aborts in every build
 *    (FSP__COUNT_BUG, one line naming the node): users at a put, nlookup
 *    when we undo an entry that was never sent. fs_refs never goes down.
 *    A FORGET of more than nlookup is the kernel's count disagreeing with
 *    ours (input, not our invariant): logged and clamped, never an abort;
 *    after one, that node's nlookup is a guess and an undo below zero is
 *    clamped too. An undo or FORGET for a node not held is logged.
 * Locks: the shard locks of the hash (hash.c), each a leaf; none is held
 * while a file system callback runs (forget is called after unlocking).
 */
#include "fsp_i.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct fsp__node_table {
	fsp_session *s;
	struct fsp__hash *hash;   /* ino -> node; its shard locks guard the counts */
	uint32_t generation;      /* this session's, for entries the fs gives 0; immutable */
};

/* Non-zero, 32 bits (the kernel keeps i_generation in 32 bits and compares
 * it with what each entry says), and new in every session: the clock, the
 * pid and a count of tables in this process, mixed. */
static uint32_t session_generation(void)
{
	static atomic_uint_fast64_t tables;
	struct timespec ts;
	uint64_t x;

	clock_gettime(CLOCK_REALTIME, &ts);
	x = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	x ^= (uint64_t)getpid() << 40;
	x += atomic_fetch_add(&tables, 1) * 0x9e3779b97f4a7c15ULL;
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x = (x ^ (x >> 32)) & 0xffffffffu;
	return x ? (uint32_t)x : 1;
}

static inline struct fsp__node *node_of(struct fsp__hlink *l)
{
	return l ? FSP__CONTAINER_OF(l, struct fsp__node, link) : NULL;
}

static struct fsp__node *find(struct fsp__hash_shard *sh, uint64_t ino)
{
	return node_of(fsp__hash_find(sh, ino));
}

int fsp__nodes_new(fsp_session *s, struct fsp__node_table **out)
{
	struct fsp__node_table *t = fsp__calloc(1, sizeof(*t));
	int rc = -ENOMEM;

	*out = NULL;
	if (!t)
		goto out;
	t->s = s;
	t->generation = session_generation();
	rc = fsp__hash_new(&t->hash);
	if (rc < 0)
		goto out;
	*out = t;
	t = NULL;
out:
	fsp__free(t);
	return rc;
}

/* Shard lock held. If the node's period is over, unlink it and return it for
 * the caller to forget after unlocking; else NULL. */
static struct fsp__node *maybe_unlink(struct fsp__hash_shard *sh, struct fsp__node *n)
{
	if (n->nlookup || n->users)
		return NULL;
	if (fsp__hash_remove(sh, &n->link) < 0) {
		FSP__BUG("node %llu missing from its table", (unsigned long long)n->ino);
		return NULL;
	}
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
	struct fsp__node *n = fsp__calloc(1, sizeof(*n));
	struct fsp__hash_shard *sh;

	if (!n)
		return -ENOMEM;
	n->ino = FSP_ROOT_INO;
	n->link.key = FSP_ROOT_INO;
	n->obj = root;
	n->users = 1;
	sh = fsp__hash_lock(t->hash, FSP_ROOT_INO);
	fsp__hash_insert(sh, &n->link);
	fsp__hash_unlock(sh);
	return 0;
}

int fsp__node_get(struct fsp__node_table *t, uint64_t ino, struct fsp__node **out)
{
	struct fsp__hash_shard *sh = fsp__hash_lock(t->hash, ino);
	struct fsp__node *n = find(sh, ino);

	if (n)
		n->users++;
	fsp__hash_unlock(sh);
	*out = n;
	return n ? 0 : -ESTALE;
}

void fsp__node_hold(struct fsp__node_table *t, struct fsp__node *n)
{
	struct fsp__hash_shard *sh = fsp__hash_lock(t->hash, n->ino);
	n->users++;
	fsp__hash_unlock(sh);
}

void fsp__node_put(struct fsp__node_table *t, struct fsp__node *n)
{
	struct fsp__hash_shard *sh = fsp__hash_lock(t->hash, n->ino);
	struct fsp__node *dead = NULL;

	if (n->users == 0)
		FSP__COUNT_BUG("node %llu: user count below zero", (unsigned long long)n->ino);
	n->users--;
	dead = maybe_unlink(sh, n);
	fsp__hash_unlock(sh);
	end_period(t, dead);
}

/* held: also take a user reference, under the same lock as the count. */
static int add_entry(struct fsp__node_table *t, const struct fsp_entry *e,
		     int counted_by_kernel, struct fsp__node **held)
{
	struct fsp__hash_shard *sh;
	struct fsp__node *n, *fresh = NULL, *dead;
	int err = 0;

	if (e->ino == 0)
		return -EIO;
	sh = fsp__hash_lock(t->hash, e->ino);
	n = find(sh, e->ino);
	if (!n) {
		/* Allocate outside the lock: a new node wastes one malloc/free
		 * only when two lookups of it race. */
		fsp__hash_unlock(sh);
		fresh = fsp__calloc(1, sizeof(*fresh));
		if (!fresh) {
			err = -ENOMEM;
			goto out;
		}
		fresh->ino = e->ino;
		fresh->link.key = e->ino;
		fresh->generation = fsp__node_generation(t, e);
		fresh->obj = e->obj;
		sh = fsp__hash_lock(t->hash, e->ino);
		n = find(sh, e->ino);
		if (!n) {
			n = fresh;
			fresh = NULL;
			fsp__hash_insert(sh, &n->link);
		}
	}
	if (n->obj != e->obj || n->generation != fsp__node_generation(t, e)) {
		fsp__hash_unlock(sh);
		fsp_log(0, "file system bug: node id %llu reported for two objects "
			"(or two generations) at once", (unsigned long long)e->ino);
		err = -EIO;
		goto out;
	}
	n->fs_refs++;
	if (counted_by_kernel)
		n->nlookup++;
	if (held) {
		n->users++;
		*held = n;
	}
	/* A "."/".." entry of a node nobody holds ends its period right away. */
	dead = maybe_unlink(sh, n);
	fsp__hash_unlock(sh);
	end_period(t, dead);
out:
	fsp__free(fresh);
	return err;
}

uint64_t fsp__node_generation(struct fsp__node_table *t, const struct fsp_entry *e)
{
	if (e->generation || e->ino == 0 || e->ino == FSP_ROOT_INO)
		return e->generation;
	return t->generation;
}

int fsp__node_add_entry(struct fsp__node_table *t, const struct fsp_entry *e,
			int counted_by_kernel)
{
	return add_entry(t, e, counted_by_kernel, NULL);
}

int fsp__node_add_entry_get(struct fsp__node_table *t, const struct fsp_entry *e,
			    int counted_by_kernel, struct fsp__node **out)
{
	*out = NULL;
	return add_entry(t, e, counted_by_kernel, out);
}

/* ours: the count is our own undo (an entry never sent), so more than
 * nlookup is our bug; else it is the kernel's FORGET. */
static void sub_lookup(struct fsp__node_table *t, uint64_t ino, uint64_t count, bool ours,
		       const char *why)
{
	struct fsp__hash_shard *sh = fsp__hash_lock(t->hash, ino);
	struct fsp__node *n = find(sh, ino), *dead;

	if (!n) {
		fsp__hash_unlock(sh);
		/* The kernel forgetting a node we don't hold means our count
		 * and its count disagree: a bug on one side. Never a crash. */
		fsp_log(1, "%s of unknown node %llu ignored", why, (unsigned long long)ino);
		return;
	}
	/* After a clamped FORGET our count is the kernel's guess too. */
	if (count > n->nlookup && ours && !n->forget_clamped)
		FSP__COUNT_BUG("node %llu: lookup count below zero (%s)", (unsigned long long)ino, why);
	if (count > n->nlookup) {
		n->forget_clamped |= !ours;
		/* The count comes from the kernel: validated input, not our
		 * invariant, so a warning and a clamp, never an abort. */
		fsp_log(1, "node %llu: %s of %llu exceeds lookup count %llu; clamped",
			(unsigned long long)ino, why, (unsigned long long)count,
			(unsigned long long)n->nlookup);
		count = n->nlookup;
	}
	n->nlookup -= count;
	dead = maybe_unlink(sh, n);
	fsp__hash_unlock(sh);
	end_period(t, dead);
}

void fsp__node_unsent(struct fsp__node_table *t, uint64_t ino)
{
	sub_lookup(t, ino, 1, true, "unsent entry");
}

void fsp__node_forget(struct fsp__node_table *t, uint64_t ino, uint64_t nlookup)
{
	/* The root is counted like any node ("..", file handles); its extra
	 * user reference keeps it for the whole session. */
	sub_lookup(t, ino, nlookup, false, "FORGET");
}

uint64_t fsp__nodes_count(struct fsp__node_table *t)
{
	return fsp__hash_count(t->hash);
}

void fsp__nodes_free(struct fsp__node_table *t)
{
	struct fsp__node *root = NULL;
	struct fsp__hlink *l, *next;

	if (!t)
		return;
	/* No worker runs any more: every node still here ends its period now,
	 * the root last so a file system may tear down its tree from it. */
	for (l = fsp__hash_drain(t->hash); l; l = next) {
		struct fsp__node *n = node_of(l);
		next = l->next;
		if (n->ino == FSP_ROOT_INO) {
			root = n;
			continue;
		}
		if (n->users)
			FSP__BUG("node %llu still has %u users at shutdown",
				 (unsigned long long)n->ino, n->users);
		end_period(t, n);
	}
	end_period(t, root);
	fsp__hash_free(t->hash);
	fsp__free(t);
}
