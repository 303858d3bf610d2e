/* node.c — memory accounting, nodes, their references and attributes.
 *
 * Accounting: every allocation memfs keeps is charged to fs->mem_bytes at
 * the size it was charged with, and uncharged with that same size when
 * freed, so mem_bytes returns exactly to its baseline when everything is
 * deleted. A charge that would pass size= fails with -ENOSPC; a failed
 * malloc is -ENOMEM. Freeing never fails and never needs memory.
 *
 * References: see the top of memfs_i.h. memfs_node_put() is the only place a
 * linked-or-referenced node is freed; unpublished nodes (never handed out,
 * never linked) are freed directly with memfs_node_free().
 */
#include "memfs_i.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int memfs_charge(struct memfs *fs, uint64_t bytes)
{
	uint64_t old = atomic_fetch_add_explicit(&fs->mem_bytes, bytes, memory_order_relaxed);

	if (fs->size_limit && old + bytes > fs->size_limit) {
		atomic_fetch_sub_explicit(&fs->mem_bytes, bytes, memory_order_relaxed);
		return -ENOSPC;
	}
	return 0;
}

void memfs_uncharge(struct memfs *fs, uint64_t bytes)
{
	uint64_t old = atomic_fetch_sub_explicit(&fs->mem_bytes, bytes, memory_order_relaxed);

	if (old < bytes) {
		fsp_log(0, "memfs: memory accounting underflow (%" PRIu64 " - %" PRIu64 ")",
			old, bytes);
		abort();
	}
}

/* Allocation failure injection, for the sweep of tests/unit/memfs_allocfail.c
 * (as lib/alloc.c does for the library, with a counter of its own):
 * MEMFS_FAIL_ALLOC_AT=N makes memfs's Nth allocation (0-based, counted from
 * the start of the process) and the MEMFS_FAIL_ALLOC_LEN-1 after it (default
 * 1 in all) fail as if malloc had; unset, nothing is counted. Read once. */
static atomic_ulong fail_count;
static long fail_at = -1, fail_len = 1;
static pthread_once_t fail_once = PTHREAD_ONCE_INIT;

static void fail_init(void)
{
	const char *v = getenv("MEMFS_FAIL_ALLOC_AT");
	const char *l = getenv("MEMFS_FAIL_ALLOC_LEN");

	if (v && *v)
		fail_at = strtol(v, NULL, 10);
	if (l && *l)
		fail_len = strtol(l, NULL, 10);
}

bool memfs_fail_alloc(void)
{
	unsigned long n;

	pthread_once(&fail_once, fail_init);
	if (fail_at < 0)
		return false;
	n = atomic_fetch_add_explicit(&fail_count, 1, memory_order_relaxed);
	return (long)n >= fail_at && (long)n < fail_at + fail_len;
}

void *memfs_alloc(struct memfs *fs, size_t size, int *err)
{
	void *p;
	int rc = memfs_charge(fs, size);

	if (rc) {
		*err = rc;
		return NULL;
	}
	p = memfs_fail_alloc() ? NULL : calloc(1, size);
	if (!p) {
		memfs_uncharge(fs, size);
		*err = -ENOMEM;
	}
	return p;
}

/* Growing charges the difference first; shrinking uncharges after. On
 * failure p is untouched and still charged at old. */
void *memfs_realloc(struct memfs *fs, void *p, size_t old, size_t size, int *err)
{
	void *np;
	int rc;

	if (size > old) {
		rc = memfs_charge(fs, size - old);
		if (rc) {
			*err = rc;
			return NULL;
		}
	}
	np = memfs_fail_alloc() ? NULL : realloc(p, size);
	if (!np) {
		if (size > old)
			memfs_uncharge(fs, size - old);
		*err = -ENOMEM;
		return NULL;
	}
	if (size < old)
		memfs_uncharge(fs, old - size);
	return np;
}

void memfs_free(struct memfs *fs, void *p, size_t size)
{
	if (!p)
		return;
	free(p);
	memfs_uncharge(fs, size);
}

/* A new node with no links and no references (refs 0): the caller links it
 * or hands it out, and sets refs accordingly before anyone else can see it.
 * target: the symlink target for S_IFLNK, else NULL. */
int memfs_node_new(struct memfs *fs, mode_t mode, uid_t uid, gid_t gid, dev_t rdev,
		   const char *target, struct memfs_node **out)
{
	struct memfs_node *n = NULL;
	pthread_rwlockattr_t attr;
	uint64_t old;
	int rc = 0;

	old = atomic_fetch_add_explicit(&fs->mem_nodes, 1, memory_order_relaxed);
	if (fs->nodes_limit && old >= fs->nodes_limit) {
		atomic_fetch_sub_explicit(&fs->mem_nodes, 1, memory_order_relaxed);
		return -ENOSPC;
	}
	n = memfs_alloc(fs, sizeof(*n), &rc);
	if (!n)
		goto fail_count;
	/* Writers first: a stream of reads must not starve a write. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	rc = pthread_rwlock_init(&n->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	if (rc) {
		rc = -ENOMEM;
		goto fail_mem;
	}
	n->type = mode & S_IFMT;
	if (S_ISDIR(mode)) {
		rc = memfs_dir_new(fs, &n->u.dir);
		if (rc)
			goto fail_lock;
	} else if (S_ISLNK(mode)) {
		size_t len = strlen(target);

		n->u.target = memfs_alloc(fs, len + 1, &rc);
		if (!n->u.target)
			goto fail_lock;
		memcpy(n->u.target, target, len + 1);
	}
	n->ino = atomic_fetch_add_explicit(&fs->next_ino, 1, memory_order_relaxed);
	n->mode = mode;
	n->uid = uid;
	n->gid = gid;
	n->rdev = rdev;
	n->atime = n->mtime = n->ctime = memfs_now();
	*out = n;
	return 0;

fail_lock:
	pthread_rwlock_destroy(&n->lock);
fail_mem:
	memfs_free(fs, n, sizeof(*n));
fail_count:
	atomic_fetch_sub_explicit(&fs->mem_nodes, 1, memory_order_relaxed);
	return rc;
}

void memfs_node_free(struct memfs *fs, struct memfs_node *n)
{
	if (S_ISREG(n->type))
		memfs_data_free(fs, &n->u.data);
	else if (S_ISLNK(n->type))
		memfs_free(fs, n->u.target, strlen(n->u.target) + 1);
	else if (S_ISDIR(n->type))
		memfs_dir_free(fs, n->u.dir);
	memfs_xattr_free_all(fs, n);
	pthread_rwlock_destroy(&n->lock);
	memfs_free(fs, n, sizeof(*n));
	atomic_fetch_sub_explicit(&fs->mem_nodes, 1, memory_order_relaxed);
}

/* Only while something already keeps n alive (see memfs_i.h): never from 0. */
void memfs_node_get(struct memfs_node *n)
{
	atomic_fetch_add_explicit(&n->refs, 1, memory_order_relaxed);
}

void memfs_node_put(struct memfs *fs, struct memfs_node *n, uint64_t k)
{
	uint64_t old = atomic_fetch_sub_explicit(&n->refs, k, memory_order_acq_rel);

	if (old < k) {
		fsp_log(0, "memfs: node %" PRIu64 ": reference count underflow (%" PRIu64
			" - %" PRIu64 ")", n->ino, old, k);
		abort();
	}
	if (old == k)
		memfs_node_free(fs, n);
}

void memfs_forget(fsp_session *s, void *obj, uint64_t n)
{
	memfs_node_put(fsp_session_userdata(s), obj, n);
}

/* n->lock held (or n not yet visible to anyone else). */
void memfs_node_stat(const struct memfs_node *n, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = n->ino;
	st->st_mode = n->mode;
	st->st_nlink = n->nlink;
	st->st_uid = n->uid;
	st->st_gid = n->gid;
	st->st_rdev = n->rdev;
	st->st_blksize = MEMFS_BLOCK_SIZE;
	if (S_ISREG(n->type)) {
		st->st_size = n->size;
		st->st_blocks = (blkcnt_t)(n->u.data.nblocks * (MEMFS_BLOCK_SIZE / 512));
	} else if (S_ISDIR(n->type)) {
		st->st_size = (off_t)(2 + n->u.dir->count) * MEMFS_BOGO_DIRENT;
	} else if (S_ISLNK(n->type)) {
		st->st_size = (off_t)strlen(n->u.target);
	}
	st->st_atim = n->atime;
	st->st_mtim = n->mtime;
	st->st_ctim = n->ctime;
}

/* n->lock held. The timeouts are left as the library set them. */
void memfs_fill_entry(struct memfs_node *n, struct fsp_entry *e)
{
	e->ino = n->ino;
	e->generation = 0;
	e->obj = n;
	memfs_node_stat(n, &e->attr);
}

static int ts_cmp(struct timespec a, struct timespec b)
{
	if (a.tv_sec != b.tv_sec)
		return a.tv_sec < b.tv_sec ? -1 : 1;
	if (a.tv_nsec != b.tv_nsec)
		return a.tv_nsec < b.tv_nsec ? -1 : 1;
	return 0;
}

/* relatime, as mounts get by default (tmpfs included): an access updates
 * atime only when atime is not newer than mtime or ctime, or is a day old.
 * n->lock held. */
bool memfs_atime_due(const struct memfs_node *n)
{
	struct timespec now = memfs_now();

	if (ts_cmp(n->mtime, n->atime) >= 0 || ts_cmp(n->ctime, n->atime) >= 0)
		return true;
	return now.tv_sec - n->atime.tv_sec >= 24 * 60 * 60;
}

/* After an access that found memfs_atime_due(): takes n->lock. */
void memfs_touch_atime(struct memfs_node *n)
{
	pthread_rwlock_wrlock(&n->lock);
	if (memfs_atime_due(n))
		n->atime = memfs_now();
	pthread_rwlock_unlock(&n->lock);
}

/* What a write or chown by an unprivileged caller does to set-id bits
 * (the kernel decides when; see FSP_SET_KILL_SUIDGID). n->lock held.
 * Returns true if a bit went: the kernel's cached mode is then stale (it
 * leaves killing to us) and the caller invalidates it after unlocking. */
bool memfs_kill_suidgid(struct memfs_node *n)
{
	mode_t old = n->mode;

	if (S_ISDIR(n->type))
		return false;
	n->mode &= ~(mode_t)S_ISUID;
	if (n->mode & S_IXGRP)
		n->mode &= ~(mode_t)S_ISGID;
	return n->mode != old;
}

int memfs_getattr(fsp_req *r, void *obj, void *fh, struct stat *st)
{
	struct memfs_node *n = obj;

	(void)r;
	(void)fh;
	pthread_rwlock_rdlock(&n->lock);
	memfs_node_stat(n, st);
	pthread_rwlock_unlock(&n->lock);
	return 0;
}

int memfs_setattr(fsp_req *r, void *obj, void *fh, const struct fsp_setattr *sa,
		  struct stat *st)
{
	struct memfs *fs = memfs_of(r);
	struct memfs_node *n = obj;
	uint32_t v = sa->valid;
	struct timespec now = memfs_now();
	int rc = 0;

	(void)fh;
	if (v & FSP_SET_SIZE) {
		if (S_ISDIR(n->type))
			return -EISDIR;
		if (!S_ISREG(n->type) || sa->size < 0)
			return -EINVAL;
		if (sa->size > fs->max_file_size)
			return -EFBIG;
	}
	pthread_rwlock_wrlock(&n->lock);
	if (v & FSP_SET_SIZE) {
		/* Only truncate(2), ftruncate(2) and O_TRUNC send a size, and on
		 * Linux they always move mtime; the kernel does not say so. */
		if (!(v & FSP_SET_MTIME))
			n->mtime = now;
		rc = memfs_data_truncate(fs, n, sa->size);
		if (rc)
			goto out;
	}
	if (v & FSP_SET_MODE)
		n->mode = (n->mode & S_IFMT) | (sa->mode & 07777);
	if (v & FSP_SET_UID)
		n->uid = sa->uid;
	if (v & FSP_SET_GID)
		n->gid = sa->gid;
	if (v & FSP_SET_KILL_SUIDGID)
		memfs_kill_suidgid(n);
	if (v & FSP_SET_ATIME)
		n->atime = (v & FSP_SET_ATIME_NOW) ? now : sa->atime;
	if (v & FSP_SET_MTIME)
		n->mtime = (v & FSP_SET_MTIME_NOW) ? now : sa->mtime;
	/* Every change of the inode is a change of ctime (notify_change). */
	n->ctime = (v & FSP_SET_CTIME) ? sa->ctime : now;
	memfs_node_stat(n, st);
out:
	pthread_rwlock_unlock(&n->lock);
	return rc;
}
