/* data.c — regular file contents.
 *
 * A file is a radix tree (struct memfs_bmap) of 64-way interior nodes over
 * 4 KiB blocks. NULL is a hole: sparse files cost only what they store, and
 * SEEK_DATA/SEEK_HOLE skip whole empty subtrees. Invariants, under
 * node->lock:
 *  - bytes of a block past the file size are zero (a new block is zeroed
 *    where not written, truncate zeroes the tail of the last block), so
 *    growing the size exposes zeros only;
 *  - every block and interior node is charged to fs->mem_bytes; nblocks
 *    counts the blocks; an interior node with no children is freed, and an
 *    empty tree is root NULL with height 0.
 * read replies straight from the blocks (fsp_reply_read_iov, under the
 * node's read lock, holes from a shared zero block) and write copies
 * straight from the library's buffer: one copy each way. A write that runs out of space part
 * way returns the count it did write.
 *
 * Blocks come from 2 MiB slabs (transparent huge pages where the kernel
 * gives them, prefaulted in one call) and go back to a free list; the slabs
 * are unmapped when no block is in use. malloc'ing each 4 KiB block made
 * every fresh page a separate page fault and glibc grow and trim its heap
 * on every large write: a 1 MiB write cost 256 traps. blk_lock is a leaf
 * (taken under node locks, takes nothing). Under ASan blocks are malloc'd,
 * so that its use-after-free checks still see them.
 */
#include "memfs_i.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#define FAN_SHIFT 6
#define FAN (1u << FAN_SHIFT)
#define BS ((uint64_t)MEMFS_BLOCK_SIZE)
#define BMASK (BS - 1)

struct bnode {
	void *slot[FAN];
};

/* Blocks covered by a (sub)tree of height h. Block indexes stay below 2^51
 * (off_t / 4096), so h <= 9 and this never overflows. */
static uint64_t span(unsigned h)
{
	return (uint64_t)1 << (FAN_SHIFT * h);
}

static unsigned height_for(uint64_t idx)
{
	unsigned h = 0;

	while (idx >= span(h))
		h++;
	return h;
}

static void *bmap_get(const struct memfs_bmap *m, uint64_t idx)
{
	void *p = m->root;

	if (idx >= span(m->height))
		return NULL;
	for (unsigned h = m->height; h > 0 && p; h--)
		p = ((struct bnode *)p)->slot[(idx >> (FAN_SHIFT * (h - 1))) & (FAN - 1)];
	return p;
}

/* The place of block idx, making interior nodes as needed. Nodes made before
 * a failure stay (empty, charged): freed with the file or by the next punch. */
static int bmap_slot(struct memfs *fs, struct memfs_bmap *m, uint64_t idx, void ***out)
{
	void **pp;
	int rc = 0;

	if (!m->root)
		m->height = height_for(idx);
	while (idx >= span(m->height)) {
		struct bnode *b = memfs_alloc(fs, sizeof(*b), &rc);

		if (!b)
			return rc;
		b->slot[0] = m->root;
		m->root = b;
		m->height++;
	}
	pp = &m->root;
	for (unsigned h = m->height; h > 0; h--) {
		if (!*pp) {
			*pp = memfs_alloc(fs, sizeof(struct bnode), &rc);
			if (!*pp)
				return rc;
		}
		pp = &((struct bnode *)*pp)->slot[(idx >> (FAN_SHIFT * (h - 1))) & (FAN - 1)];
	}
	*out = pp;
	return 0;
}

/* A block, uninitialized. */
#if defined(__SANITIZE_ADDRESS__)
#define BLOCKS_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define BLOCKS_MALLOC 1
#endif
#endif

#ifndef BLOCKS_MALLOC
#define SLAB_SIZE ((size_t)2 << 20)

struct slab {
	struct slab *next;
	char *base;                 /* SLAB_SIZE bytes, mmap'd */
};

static pthread_mutex_t blk_lock = PTHREAD_MUTEX_INITIALIZER;
static struct slab *slabs;      /* every slab, for the unmap */
static void *blk_free;          /* free blocks, linked through their first word */
static char *slab_next;         /* uncarved rest of the newest slab */
static size_t slab_left;
static uint64_t blk_used;       /* blocks handed out and not freed */

/* A fresh slab, aligned to its size so that it can be one huge page. */
static char *slab_map(void)
{
	size_t len = 2 * SLAB_SIZE;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *a;

	if (p == MAP_FAILED)
		return NULL;
	a = (char *)(((uintptr_t)p + SLAB_SIZE - 1) & ~(uintptr_t)(SLAB_SIZE - 1));
	if (a > p)
		munmap(p, (size_t)(a - p));
	if (p + len > a + SLAB_SIZE)
		munmap(a + SLAB_SIZE, (size_t)(p + len - (a + SLAB_SIZE)));
#ifdef MADV_HUGEPAGE
	madvise(a, SLAB_SIZE, MADV_HUGEPAGE);
#endif
#ifdef MADV_POPULATE_WRITE
	madvise(a, SLAB_SIZE, MADV_POPULATE_WRITE);   /* best effort: one call, no traps */
#endif
	return a;
}
#endif

static void *block_alloc(void)
{
#ifdef BLOCKS_MALLOC
	return malloc(BS);
#else
	void *b = NULL;

	pthread_mutex_lock(&blk_lock);
	if (blk_free) {
		b = blk_free;
		memcpy(&blk_free, b, sizeof(void *));
	} else {
		if (!slab_left) {
			struct slab *sl = malloc(sizeof(*sl));
			char *base = sl ? slab_map() : NULL;

			if (!base) {
				free(sl);
				goto out;
			}
			sl->base = base;
			sl->next = slabs;
			slabs = sl;
			slab_next = base;
			slab_left = SLAB_SIZE;
		}
		b = slab_next;
		slab_next += BS;
		slab_left -= BS;
	}
	blk_used++;
out:
	pthread_mutex_unlock(&blk_lock);
	return b;
#endif
}

static void block_release(void *b)
{
#ifdef BLOCKS_MALLOC
	free(b);
#else
	pthread_mutex_lock(&blk_lock);
	memcpy(b, &blk_free, sizeof(void *));
	blk_free = b;
	if (--blk_used == 0) {
		/* nothing stored: give every slab back */
		while (slabs) {
			struct slab *sl = slabs;

			slabs = sl->next;
			munmap(sl->base, SLAB_SIZE);
			free(sl);
		}
		blk_free = NULL;
		slab_next = NULL;
		slab_left = 0;
	}
	pthread_mutex_unlock(&blk_lock);
#endif
}

static int block_new(struct memfs *fs, void **out)
{
	int rc = memfs_charge(fs, BS);

	if (rc)
		return rc;
	*out = memfs_fail_alloc() ? NULL : block_alloc();
	if (!*out) {
		memfs_uncharge(fs, BS);
		return -ENOMEM;
	}
	return 0;
}

static void block_free(struct memfs *fs, void *b)
{
	block_release(b);
	memfs_uncharge(fs, BS);
}

/* Frees the blocks with index in [from, to) under *pp (height h, first block
 * base) and the interior nodes left empty. Returns the blocks freed. */
static uint64_t punch(struct memfs *fs, void **pp, unsigned h, uint64_t base,
		      uint64_t from, uint64_t to)
{
	struct bnode *b = *pp;
	uint64_t n = 0, cs;
	bool empty = true;

	if (!b || base >= to || base + span(h) <= from)
		return 0;
	if (h == 0) {
		block_free(fs, b);
		*pp = NULL;
		return 1;
	}
	cs = span(h - 1);
	for (unsigned i = 0; i < FAN; i++) {
		n += punch(fs, &b->slot[i], h - 1, base + i * cs, from, to);
		if (b->slot[i])
			empty = false;
	}
	if (empty) {
		memfs_free(fs, b, sizeof(*b));
		*pp = NULL;
	}
	return n;
}

static void bmap_punch(struct memfs *fs, struct memfs_bmap *m, uint64_t from, uint64_t to)
{
	m->nblocks -= punch(fs, &m->root, m->height, 0, from, to);
	if (!m->root)
		m->height = 0;
}

static uint64_t count_blocks(void *p, unsigned h, uint64_t base, uint64_t from, uint64_t to)
{
	uint64_t n = 0, cs;

	if (!p || base >= to || base + span(h) <= from)
		return 0;
	if (h == 0)
		return 1;
	cs = span(h - 1);
	for (unsigned i = 0; i < FAN; i++)
		n += count_blocks(((struct bnode *)p)->slot[i], h - 1, base + i * cs, from, to);
	return n;
}

/* First block >= from that is present. */
static bool find_data(void *p, unsigned h, uint64_t base, uint64_t from, uint64_t *out)
{
	uint64_t cs;

	if (!p || base + span(h) <= from)
		return false;
	if (h == 0) {
		*out = base;
		return true;
	}
	cs = span(h - 1);
	for (unsigned i = 0; i < FAN; i++)
		if (find_data(((struct bnode *)p)->slot[i], h - 1, base + i * cs, from, out))
			return true;
	return false;
}

/* First block >= from that is a hole. */
static bool find_hole(void *p, unsigned h, uint64_t base, uint64_t from, uint64_t *out)
{
	uint64_t cs;

	if (base + span(h) <= from)
		return false;
	if (!p) {
		*out = base > from ? base : from;
		return true;
	}
	if (h == 0)
		return false;
	cs = span(h - 1);
	for (unsigned i = 0; i < FAN; i++)
		if (find_hole(((struct bnode *)p)->slot[i], h - 1, base + i * cs, from, out))
			return true;
	return false;
}

void memfs_data_free(struct memfs *fs, struct memfs_bmap *m)
{
	bmap_punch(fs, m, 0, UINT64_MAX);
}

/* Zeroes [from, to) where blocks exist; holes are zero already. */
static void zero_bytes(struct memfs_bmap *m, uint64_t from, uint64_t to)
{
	while (from < to) {
		uint64_t bo = from & BMASK, chunk = BS - bo;
		char *blk = bmap_get(m, from >> MEMFS_BLOCK_SHIFT);

		if (chunk > to - from)
			chunk = to - from;
		if (blk)
			memset(blk + bo, 0, chunk);
		from += chunk;
	}
}

/* Makes [from, to) a hole: whole blocks freed, partial ones zeroed. */
static void punch_bytes(struct memfs *fs, struct memfs_bmap *m, uint64_t from, uint64_t to)
{
	uint64_t fb = (from + BMASK) >> MEMFS_BLOCK_SHIFT, lb = to >> MEMFS_BLOCK_SHIFT;

	if (fb < lb) {
		zero_bytes(m, from, fb << MEMFS_BLOCK_SHIFT);
		zero_bytes(m, lb << MEMFS_BLOCK_SHIFT, to);
		bmap_punch(fs, m, fb, lb);
	} else {
		zero_bytes(m, from, to);
	}
}

int memfs_data_truncate(struct memfs *fs, struct memfs_node *n, off_t size)
{
	struct memfs_bmap *m = &n->u.data;

	/* As tmpfs: not growing drops everything past the new end, blocks
	 * preallocated past the old end included. */
	if (size <= n->size) {
		uint64_t usize = (uint64_t)size;

		bmap_punch(fs, m, (usize + BMASK) >> MEMFS_BLOCK_SHIFT, UINT64_MAX);
		zero_bytes(m, usize, (usize + BMASK) & ~BMASK);
	}
	n->size = size;
	return 0;
}

static const char zero_block[MEMFS_BLOCK_SIZE];

ssize_t memfs_read(fsp_req *r, void *obj, void *fh, void *buf, size_t size, off_t off)
{
	struct memfs_node *n = obj;
	size_t done = 0;
	ssize_t rc = 0;
	bool due;

	(void)fh;
	if (!S_ISREG(n->type))
		return -EINVAL;
	if (off < 0)
		return -EINVAL;
	pthread_rwlock_rdlock(&n->lock);
	if (off < n->size) {
		if ((uint64_t)size > (uint64_t)(n->size - off))
			size = (size_t)(n->size - off);
	} else {
		size = 0;
	}
	if (size && size / BS + 2 <= FSP_READ_IOV_MAX) {
		/* the reply goes out from the blocks themselves */
		struct iovec iov[FSP_READ_IOV_MAX];
		int cnt = 0;

		while (done < size) {
			uint64_t pos = (uint64_t)off + done, bo = pos & BMASK;
			size_t chunk = (size_t)(BS - bo);
			const char *blk = bmap_get(&n->u.data, pos >> MEMFS_BLOCK_SHIFT);

			if (chunk > size - done)
				chunk = size - done;
			iov[cnt].iov_base = (void *)(blk ? blk + bo : zero_block);
			iov[cnt].iov_len = chunk;
			cnt++;
			done += chunk;
		}
		rc = fsp_reply_read_iov(r, iov, cnt);
	} else {
		while (done < size) {
			uint64_t pos = (uint64_t)off + done, bo = pos & BMASK;
			size_t chunk = (size_t)(BS - bo);
			const char *blk = bmap_get(&n->u.data, pos >> MEMFS_BLOCK_SHIFT);

			if (chunk > size - done)
				chunk = size - done;
			if (blk)
				memcpy((char *)buf + done, blk + bo, chunk);
			else
				memset((char *)buf + done, 0, chunk);
			done += chunk;
		}
		rc = (ssize_t)done;
	}
	due = memfs_atime_due(n);
	pthread_rwlock_unlock(&n->lock);
	if (due)
		memfs_touch_atime(n);
	return rc;
}

ssize_t memfs_write(fsp_req *r, void *obj, void *fh, const void *data, size_t size,
		    off_t off, uint32_t flags)
{
	struct memfs *fs = memfs_of(r);
	struct memfs_node *n = obj;
	struct memfs_bmap *m = &n->u.data;
	size_t done = 0;
	int rc = 0;

	(void)fh;
	if (!S_ISREG(n->type))
		return -EINVAL;
	if (off < 0)
		return -EINVAL;
	if (size == 0)
		return 0;
	if (off >= fs->max_file_size)
		return -EFBIG;
	if ((uint64_t)size > (uint64_t)(fs->max_file_size - off))
		size = (size_t)(fs->max_file_size - off);

	bool killed = false;
	pthread_rwlock_wrlock(&n->lock);
	if (flags & FSP_WRITE_KILL_SUIDGID)
		killed = memfs_kill_suidgid(n);
	while (done < size) {
		uint64_t pos = (uint64_t)off + done, bo = pos & BMASK;
		size_t chunk = (size_t)(BS - bo);
		void **pp;
		char *blk;

		if (chunk > size - done)
			chunk = size - done;
		rc = bmap_slot(fs, m, pos >> MEMFS_BLOCK_SHIFT, &pp);
		if (rc)
			break;
		blk = *pp;
		if (!blk) {
			rc = block_new(fs, (void **)&blk);
			if (rc)
				break;
			memset(blk, 0, bo);
			memset(blk + bo + chunk, 0, BS - bo - chunk);
			*pp = blk;
			m->nblocks++;
		}
		memcpy(blk + bo, (const char *)data + done, chunk);
		done += chunk;
	}
	if (done) {
		if (off + (off_t)done > n->size)
			n->size = off + (off_t)done;
		n->mtime = n->ctime = memfs_now();
	}
	pthread_rwlock_unlock(&n->lock);
	/* attributes only (off -1): takes no page lock the writer may hold */
	if (killed)
		fsp_notify_inval_inode(fsp_req_session(r), n->ino, -1, 0);
	return done ? (ssize_t)done : rc;
}

/* Allocates (zeroed) every missing block touching [from, to). Fails up front
 * when the holes cannot fit; blocks made before a later failure stay (they
 * read as zeros, as the holes did). */
static int allocate(fsp_req *r, struct memfs *fs, struct memfs_bmap *m, uint64_t from,
		    uint64_t to)
{
	uint64_t fb = from >> MEMFS_BLOCK_SHIFT, lb = (to + BMASK) >> MEMFS_BLOCK_SHIFT;
	uint64_t holes = (lb - fb) - count_blocks(m->root, m->height, 0, fb, lb);

	if (fs->size_limit) {
		uint64_t used = atomic_load_explicit(&fs->mem_bytes, memory_order_relaxed);

		if (used > fs->size_limit || holes > (fs->size_limit - used) / BS)
			return -ENOSPC;
	}
	for (uint64_t idx = fb; idx < lb; idx++) {
		void **pp;
		int rc;

		if ((idx & 1023) == 1023 && fsp_req_interrupted(r))
			return -EINTR;
		rc = bmap_slot(fs, m, idx, &pp);
		if (rc)
			return rc;
		if (!*pp) {
			rc = block_new(fs, pp);
			if (rc)
				return rc;
			memset(*pp, 0, BS);
			m->nblocks++;
		}
	}
	return 0;
}

int memfs_fallocate(fsp_req *r, void *obj, void *fh, int mode, off_t off, off_t len)
{
	struct memfs *fs = memfs_of(r);
	struct memfs_node *n = obj;
	uint64_t end;
	int rc = 0;

	(void)fh;
	if (!S_ISREG(n->type))
		return -ENODEV;
	if (off < 0 || len <= 0)
		return -EINVAL;
	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
		return -EOPNOTSUPP;
	if ((mode & FALLOC_FL_PUNCH_HOLE) && (mode & FALLOC_FL_ZERO_RANGE))
		return -EINVAL;
	if ((mode & FALLOC_FL_PUNCH_HOLE) && !(mode & FALLOC_FL_KEEP_SIZE))
		return -EOPNOTSUPP;
	if (len > fs->max_file_size - off)
		return -EFBIG;
	end = (uint64_t)off + (uint64_t)len;

	pthread_rwlock_wrlock(&n->lock);
	if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
		punch_bytes(fs, &n->u.data, (uint64_t)off, end);
	if (!(mode & FALLOC_FL_PUNCH_HOLE))
		rc = allocate(r, fs, &n->u.data, (uint64_t)off, end);
	if (rc == 0) {
		if (!(mode & FALLOC_FL_KEEP_SIZE) && (off_t)end > n->size)
			n->size = (off_t)end;
		n->mtime = n->ctime = memfs_now();
	}
	pthread_rwlock_unlock(&n->lock);
	return rc;
}

off_t memfs_lseek(fsp_req *r, void *obj, void *fh, off_t off, int whence)
{
	struct memfs_node *n = obj;
	struct memfs_bmap *m = &n->u.data;
	uint64_t idx, pos;
	off_t rc;

	(void)r;
	(void)fh;
	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	if (!S_ISREG(n->type))
		return -EINVAL;
	if (off < 0)
		return -ENXIO;
	pthread_rwlock_rdlock(&n->lock);
	if (off >= n->size) {
		rc = -ENXIO;
	} else if (whence == SEEK_DATA) {
		if (!find_data(m->root, m->height, 0, (uint64_t)off >> MEMFS_BLOCK_SHIFT, &idx)) {
			rc = -ENXIO;
		} else {
			pos = idx << MEMFS_BLOCK_SHIFT;
			if (pos < (uint64_t)off)
				pos = (uint64_t)off;
			rc = pos >= (uint64_t)n->size ? -ENXIO : (off_t)pos;
		}
	} else {
		if (!find_hole(m->root, m->height, 0, (uint64_t)off >> MEMFS_BLOCK_SHIFT, &idx))
			idx = span(m->height);
		/* The end of the file is a hole too. */
		if (idx > (uint64_t)n->size >> MEMFS_BLOCK_SHIFT) {
			rc = n->size;
		} else {
			pos = idx << MEMFS_BLOCK_SHIFT;
			if (pos < (uint64_t)off)
				pos = (uint64_t)off;
			rc = pos > (uint64_t)n->size ? n->size : (off_t)pos;
		}
	}
	pthread_rwlock_unlock(&n->lock);
	return rc;
}
