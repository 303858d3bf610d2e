/* dir.c — one directory's entries, under dir->dlock.
 *
 * Two views of the same dentries:
 *  - a hash table by name: chains over a power-of-two bucket array, doubled
 *    when entries outnumber buckets, halved below 1/8: lookup is O(1);
 *  - slots[] in increasing seq order: an insert appends (seq = next_seq++,
 *    never reused: a rename inserts anew), a remove leaves a tombstone.
 *    readdir offsets are seqs, so they stay meaningful whatever happens to
 *    the directory: "first live entry with seq > off" is a binary search over
 *    slots plus a hop over tombstones.
 * Tombstone invariant: the tombstone at i holds skip > i, and every slot in
 * (i, skip) is a tombstone too. Readers shorten the hops they walk (path
 * compression); they hold dlock only for reading, so slot values are
 * accessed with relaxed atomics, and any value a reader stores keeps the
 * invariant. Slots are compacted when tombstones outnumber live entries:
 * removal is O(1) amortized, a readdir call O(log n) plus O(1) per entry.
 * An empty directory holds no arrays, so its memory returns to the baseline.
 */
#include "memfs_i.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SEQ_FIRST 3     /* offsets 1 and 2 are "after ." and "after .." */
#define MIN_BUCKETS 8
#define MIN_SLOTS 8

/* v: the dentry pointer (aligned: low bit 0) or (skip << 1) | 1. */
struct memfs_slot {
	uint64_t seq;
	uintptr_t v;
};

#define TOMB(skip) (((uintptr_t)(skip) << 1) | 1)

static uintptr_t slot_load(const struct memfs_slot *s)
{
	return __atomic_load_n(&s->v, __ATOMIC_RELAXED);
}

static void slot_store(struct memfs_slot *s, uintptr_t v)
{
	__atomic_store_n(&s->v, v, __ATOMIC_RELAXED);
}

/* FNV-1a with a per-process seed and a final mix (the low bits pick the
 * bucket, so they must depend on every byte). */
static uint64_t name_hash(uint64_t seed, const char *name, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ seed;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)name[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

int memfs_dir_new(struct memfs *fs, struct memfs_dir **out)
{
	struct memfs_dir *d;
	int err = 0;

	d = memfs_alloc(fs, sizeof(*d), &err);
	if (!d)
		return err;
	if (pthread_rwlock_init(&d->dlock, NULL) != 0) {
		memfs_free(fs, d, sizeof(*d));
		return -ENOMEM;
	}
	d->next_seq = SEQ_FIRST;
	*out = d;
	return 0;
}

/* The dentries are the caller's (they may already be freed: only the
 * arrays are touched here). */
void memfs_dir_free(struct memfs *fs, struct memfs_dir *d)
{
	memfs_free(fs, d->buckets, d->nbuckets * sizeof(*d->buckets));
	memfs_free(fs, d->slots, d->capslots * sizeof(*d->slots));
	pthread_rwlock_destroy(&d->dlock);
	memfs_free(fs, d, sizeof(*d));
}

int memfs_dentry_new(struct memfs *fs, const char *name, size_t len,
		     struct memfs_dentry **out)
{
	struct memfs_dentry *de;
	int err = 0;

	de = memfs_alloc(fs, sizeof(*de) + len + 1, &err);
	if (!de)
		return err;
	memcpy(de->name, name, len);
	de->name[len] = '\0';
	de->namelen = (uint16_t)len;
	de->hash = name_hash(fs->hash_seed, name, len);
	*out = de;
	return 0;
}

void memfs_dentry_free(struct memfs *fs, struct memfs_dentry *de)
{
	if (de)
		memfs_free(fs, de, sizeof(*de) + de->namelen + 1);
}

struct memfs_dentry *memfs_dir_find(struct memfs *fs, struct memfs_dir *d,
				    const char *name, size_t len)
{
	struct memfs_dentry *de;
	uint64_t h;

	if (!d->buckets)
		return NULL;
	h = name_hash(fs->hash_seed, name, len);
	for (de = d->buckets[h & (d->nbuckets - 1)]; de; de = de->hnext)
		if (de->hash == h && de->namelen == len && memcmp(de->name, name, len) == 0)
			return de;
	return NULL;
}

/* Best effort: on failure the old table stays (slower, still correct). */
static void rehash(struct memfs *fs, struct memfs_dir *d, size_t nb)
{
	struct memfs_dentry **nbk, *de, *next;
	int err = 0;

	nbk = memfs_alloc(fs, nb * sizeof(*nbk), &err);
	if (!nbk)
		return;
	for (size_t i = 0; i < d->nbuckets; i++) {
		for (de = d->buckets[i]; de; de = next) {
			size_t b = de->hash & (nb - 1);

			next = de->hnext;
			de->hnext = nbk[b];
			nbk[b] = de;
		}
	}
	memfs_free(fs, d->buckets, d->nbuckets * sizeof(*d->buckets));
	d->buckets = nbk;
	d->nbuckets = nb;
}

static void compact(struct memfs *fs, struct memfs_dir *d)
{
	size_t j = 0;

	for (size_t i = 0; i < d->nslots; i++) {
		uintptr_t v = d->slots[i].v;

		if (v & 1)
			continue;
		d->slots[j] = d->slots[i];
		((struct memfs_dentry *)v)->slot = j;
		j++;
	}
	d->nslots = j;
	d->ntomb = 0;
	if (d->capslots > MIN_SLOTS && d->capslots > 4 * j) {
		size_t nc = 2 * j > MIN_SLOTS ? 2 * j : MIN_SLOTS;
		int err = 0;
		void *p = memfs_realloc(fs, d->slots, d->capslots * sizeof(*d->slots),
					nc * sizeof(*d->slots), &err);

		if (p) {
			d->slots = p;
			d->capslots = nc;
		}
	}
}

int memfs_dir_prepare(struct memfs *fs, struct memfs_dir *d)
{
	int err = 0;

	if (!d->buckets) {
		d->buckets = memfs_alloc(fs, MIN_BUCKETS * sizeof(*d->buckets), &err);
		if (!d->buckets)
			return err;
		d->nbuckets = MIN_BUCKETS;
	}
	if (d->nslots < d->capslots)
		return 0;
	if (d->ntomb > d->nslots / 4) {
		compact(fs, d);
		if (d->nslots < d->capslots)
			return 0;
	}
	size_t nc = d->capslots ? 2 * d->capslots : MIN_SLOTS;
	void *p = memfs_realloc(fs, d->slots, d->capslots * sizeof(*d->slots),
				nc * sizeof(*d->slots), &err);
	if (!p) {
		if (d->nlive == 0) {
			memfs_free(fs, d->buckets, d->nbuckets * sizeof(*d->buckets));
			d->buckets = NULL;
			d->nbuckets = 0;
		}
		return err;
	}
	d->slots = p;
	d->capslots = nc;
	return 0;
}

void memfs_dir_insert(struct memfs *fs, struct memfs_dir *d, struct memfs_dentry *de)
{
	size_t b;

	de->seq = d->next_seq++;
	de->slot = d->nslots;
	d->slots[d->nslots].seq = de->seq;
	slot_store(&d->slots[d->nslots], (uintptr_t)de);
	d->nslots++;
	d->nlive++;
	if (d->nlive > d->nbuckets)
		rehash(fs, d, 2 * d->nbuckets);
	b = de->hash & (d->nbuckets - 1);
	de->hnext = d->buckets[b];
	d->buckets[b] = de;
}

void memfs_dir_remove(struct memfs *fs, struct memfs_dir *d, struct memfs_dentry *de)
{
	struct memfs_dentry **pp = &d->buckets[de->hash & (d->nbuckets - 1)];

	while (*pp != de)
		pp = &(*pp)->hnext;
	*pp = de->hnext;
	slot_store(&d->slots[de->slot], TOMB(de->slot + 1));
	d->ntomb++;
	d->nlive--;
	if (d->nlive == 0) {
		memfs_free(fs, d->slots, d->capslots * sizeof(*d->slots));
		memfs_free(fs, d->buckets, d->nbuckets * sizeof(*d->buckets));
		d->slots = NULL;
		d->buckets = NULL;
		d->nslots = d->capslots = d->ntomb = d->nbuckets = 0;
		return;
	}
	if (d->ntomb > d->nlive && d->nslots >= 64)
		compact(fs, d);
	if (d->nbuckets > MIN_BUCKETS && d->nlive < d->nbuckets / 8)
		rehash(fs, d, d->nbuckets / 2);
}

size_t memfs_dir_seek(struct memfs_dir *d, uint64_t off)
{
	size_t lo = 0, hi = d->nslots;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (d->slots[mid].seq <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The first live slot at or after i (nslots if none), compressing the path. */
static size_t resolve(struct memfs_dir *d, size_t i)
{
	size_t j = i;
	uintptr_t v;

	while (j < d->nslots && ((v = slot_load(&d->slots[j])) & 1))
		j = v >> 1;
	while (i < j) {
		v = slot_load(&d->slots[i]);
		if ((v >> 1) != j)
			slot_store(&d->slots[i], TOMB(j));
		i = v >> 1;
	}
	return j;
}

struct memfs_dentry *memfs_dir_next(struct memfs_dir *d, size_t *pos)
{
	size_t i = resolve(d, *pos);

	if (i >= d->nslots) {
		*pos = d->nslots;
		return NULL;
	}
	*pos = i + 1;
	return (struct memfs_dentry *)slot_load(&d->slots[i]);
}
