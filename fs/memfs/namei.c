/* namei.c — names: lookup, create, link, unlink, rmdir, rename, readdir.
 *
 * Locking (order: fs->rename_lock -> dlock -> node->lock, see memfs_i.h):
 *  - A directory's dlock guards its entries. Holding it, even for reading,
 *    keeps every node it names linked and therefore alive, so a reference
 *    for the library is taken (memfs_node_get) before the dlock is dropped.
 *  - A directory's count/dead/parent live under its node->lock, a leaf lock:
 *    rmdir tests "empty" and marks the victim dead without taking the
 *    victim's dlock (that would nest a child's dlock in its parent's and
 *    invert the order a rename may use). Whoever inserts into a directory
 *    first raises count under node->lock after checking dead, so a directory
 *    being filled can never be removed, and a dead one is never filled.
 *  - Only a cross-directory rename holds two dlocks, and only after taking
 *    fs->rename_lock: two such holders never wait on each other and nobody
 *    else ever waits for a second dlock, so their order is free (address
 *    order). rename_lock also freezes every parent pointer (only a
 *    cross-directory rename moves a directory), which makes the walk up from
 *    the target directory (EINVAL for a move into its own subtree) exact.
 *  - A directory's parent pointer changes before the old parent's count
 *    drops, so whoever reads parent under the child's lock finds a parent
 *    that is still non-empty, hence alive (lookup of "..", readdir).
 * The last reference is dropped only after every lock is released.
 */
#include "memfs_i.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

/* Every change goes through the one kernel that caches, so its page cache
 * stays right across opens; and flush has nothing to do, so close(2) need
 * not wait for a round trip (the kernel still flushes with writeback_cache). */
#define OPEN_FLAGS (FSP_OPEN_KEEP_CACHE | FSP_OPEN_NOFLUSH)

static int check_name(const char *name, size_t *lenp)
{
	size_t len = strnlen(name, MEMFS_NAME_MAX + 1);

	if (len > MEMFS_NAME_MAX)
		return -ENAMETOOLONG;
	if (len == 0)
		return -ENOENT;
	if (memchr(name, '/', len))
		return -EINVAL;
	*lenp = len;
	return 0;
}

static bool is_dot(const char *name)
{
	return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

static void set_dir_times(struct memfs_node *d, struct timespec now)
{
	d->mtime = now;
	d->ctime = now;
}

/* A new node named `name` in d. mode carries the type. */
static int new_child(fsp_req *r, struct memfs_node *d, const char *name, mode_t mode,
		     dev_t rdev, const char *target, struct fsp_entry *e)
{
	struct memfs *fs = memfs_of(r);
	struct memfs_dir *dd;
	struct memfs_node *n = NULL;
	struct memfs_dentry *de = NULL;
	struct timespec now;
	size_t len;
	int rc;

	if (!S_ISDIR(d->type))
		return -ENOTDIR;
	rc = check_name(name, &len);
	if (rc)
		return rc;
	if (is_dot(name))
		return -EEXIST;
	dd = d->u.dir;
	rc = memfs_node_new(fs, mode, fsp_req_uid(r), fsp_req_gid(r), rdev, target, &n);
	if (rc)
		goto out;
	rc = memfs_dentry_new(fs, name, len, &de);
	if (rc)
		goto out;

	pthread_rwlock_wrlock(&dd->dlock);
	if (memfs_dir_find(fs, dd, name, len)) {
		rc = -EEXIST;
		goto unlock;
	}
	rc = memfs_dir_prepare(fs, dd);
	if (rc)
		goto unlock;
	now = memfs_now();
	pthread_rwlock_wrlock(&d->lock);
	if (dd->dead) {
		pthread_rwlock_unlock(&d->lock);
		rc = -ENOENT;
		goto unlock;
	}
	/* BSD group semantics of a set-gid directory, as tmpfs. */
	if (d->mode & S_ISGID) {
		n->gid = d->gid;
		if (S_ISDIR(mode))
			n->mode |= S_ISGID;
	}
	dd->count++;
	if (S_ISDIR(mode)) {
		d->nlink++;
		n->u.dir->parent = d;
	}
	set_dir_times(d, now);
	pthread_rwlock_unlock(&d->lock);

	n->atime = n->mtime = n->ctime = now;
	n->nlink = S_ISDIR(mode) ? 2 : 1;
	atomic_store_explicit(&n->refs, 2, memory_order_relaxed); /* linked + e */
	memfs_fill_entry(n, e);
	de->node = n;
	memfs_dir_insert(fs, dd, de);
	n = NULL;
	de = NULL;
unlock:
	pthread_rwlock_unlock(&dd->dlock);
out:
	memfs_dentry_free(fs, de);
	if (n)
		memfs_node_free(fs, n);
	return rc;
}

int memfs_lookup(fsp_req *r, void *dir, const char *name, struct fsp_entry *e)
{
	struct memfs *fs = memfs_of(r);
	struct memfs_node *d = dir, *n;
	struct memfs_dentry *de;
	size_t len;
	int rc;

	if (!S_ISDIR(d->type))
		return -ENOTDIR;
	rc = check_name(name, &len);
	if (rc)
		return rc;
	if (strcmp(name, ".") == 0) {
		n = d;
		memfs_node_get(n);
		goto fill;
	}
	if (strcmp(name, "..") == 0) {
		pthread_rwlock_rdlock(&d->lock);
		n = d->u.dir->parent;
		if (n)
			memfs_node_get(n);
		pthread_rwlock_unlock(&d->lock);
		if (!n)
			return -ENOENT;
		goto fill;
	}

	pthread_rwlock_rdlock(&d->u.dir->dlock);
	de = memfs_dir_find(fs, d->u.dir, name, len);
	if (!de) {
		const struct fsp_config *cfg;

		pthread_rwlock_unlock(&d->u.dir->dlock);
		/* memfs is the only writer: a miss may be cached like a hit. */
		cfg = fsp_session_config(fsp_req_session(r));
		if (cfg->negative_timeout <= 0)
			return -ENOENT;
		e->ino = 0;
		e->obj = NULL;
		e->entry_timeout = cfg->negative_timeout;
		return 0;
	}
	n = de->node;
	memfs_node_get(n);
	pthread_rwlock_rdlock(&n->lock);
	memfs_fill_entry(n, e);
	pthread_rwlock_unlock(&n->lock);
	pthread_rwlock_unlock(&d->u.dir->dlock);
	return 0;

fill:
	pthread_rwlock_rdlock(&n->lock);
	memfs_fill_entry(n, e);
	pthread_rwlock_unlock(&n->lock);
	return 0;
}

int memfs_mknod(fsp_req *r, void *dir, const char *name, mode_t mode, dev_t rdev,
		struct fsp_entry *e)
{
	switch (mode & S_IFMT) {
	case 0:
		mode |= S_IFREG;
		/* fallthrough */
	case S_IFREG:
	case S_IFIFO:
	case S_IFSOCK:
		rdev = 0;
		break;
	case S_IFCHR:
	case S_IFBLK:
		break;
	default:
		return -EINVAL;
	}
	return new_child(r, dir, name, (mode & S_IFMT) | (mode & 07777), rdev, NULL, e);
}

int memfs_mkdir(fsp_req *r, void *dir, const char *name, mode_t mode, struct fsp_entry *e)
{
	return new_child(r, dir, name, S_IFDIR | (mode & 07777), 0, NULL, e);
}

int memfs_symlink(fsp_req *r, void *dir, const char *name, const char *target,
		  struct fsp_entry *e)
{
	size_t len = strnlen(target, MEMFS_SYMLINK_MAX + 1);

	if (len == 0)
		return -ENOENT;
	if (len > MEMFS_SYMLINK_MAX)
		return -ENAMETOOLONG;
	return new_child(r, dir, name, S_IFLNK | 0777, 0, target, e);
}

int memfs_create(fsp_req *r, void *dir, const char *name, mode_t mode, int flags,
		 struct fsp_entry *e, struct fsp_open_out *o)
{
	int rc;

	(void)flags;
	rc = new_child(r, dir, name, S_IFREG | (mode & 07777), 0, NULL, e);
	if (rc)
		return rc;
	o->fh = NULL;
	o->flags = OPEN_FLAGS;
	return 0;
}

int memfs_tmpfile(fsp_req *r, void *dir, mode_t mode, int flags, struct fsp_entry *e,
		  struct fsp_open_out *o)
{
	struct memfs *fs = memfs_of(r);
	struct memfs_node *d = dir, *n;
	int rc;

	(void)flags;
	if (!S_ISDIR(d->type))
		return -ENOTDIR;
	rc = memfs_node_new(fs, S_IFREG | (mode & 07777), fsp_req_uid(r), fsp_req_gid(r),
			    0, NULL, &n);
	if (rc)
		return rc;
	pthread_rwlock_rdlock(&d->lock);
	if (d->mode & S_ISGID)
		n->gid = d->gid;
	pthread_rwlock_unlock(&d->lock);
	n->nlink = 0;
	n->linkable = true;
	atomic_store_explicit(&n->refs, 1, memory_order_relaxed); /* e only */
	memfs_fill_entry(n, e);
	o->fh = NULL;
	o->flags = OPEN_FLAGS;
	return 0;
}

int memfs_link(fsp_req *r, void *obj, void *newdir, const char *newname,
	       struct fsp_entry *e)
{
	struct memfs *fs = memfs_of(r);
	struct memfs_node *n = obj, *d = newdir;
	struct memfs_dir *dd;
	struct memfs_dentry *de = NULL;
	struct timespec now;
	size_t len;
	int rc;

	if (S_ISDIR(n->type))
		return -EPERM;
	if (!S_ISDIR(d->type))
		return -ENOTDIR;
	rc = check_name(newname, &len);
	if (rc)
		return rc;
	if (is_dot(newname))
		return -EEXIST;
	dd = d->u.dir;
	rc = memfs_dentry_new(fs, newname, len, &de);
	if (rc)
		return rc;

	pthread_rwlock_wrlock(&dd->dlock);
	if (memfs_dir_find(fs, dd, newname, len)) {
		rc = -EEXIST;
		goto unlock;
	}
	rc = memfs_dir_prepare(fs, dd);
	if (rc)
		goto unlock;
	pthread_rwlock_wrlock(&d->lock);
	if (dd->dead)
		rc = -ENOENT;
	else
		dd->count++;      /* reserved: d cannot die now */
	pthread_rwlock_unlock(&d->lock);
	if (rc)
		goto unlock;

	now = memfs_now();
	pthread_rwlock_wrlock(&n->lock);
	if (n->nlink == 0 && !n->linkable) {
		rc = -ENOENT;     /* deleted, not an O_TMPFILE */
	} else if (n->nlink >= MEMFS_NLINK_MAX) {
		rc = -EMLINK;
	} else {
		if (n->nlink == 0) {
			n->linkable = false;
			memfs_node_get(n);      /* linked again */
		}
		n->nlink++;
		n->ctime = now;
		memfs_node_get(n);              /* e */
		memfs_fill_entry(n, e);
	}
	pthread_rwlock_unlock(&n->lock);

	pthread_rwlock_wrlock(&d->lock);
	if (rc)
		dd->count--;
	else
		set_dir_times(d, now);
	pthread_rwlock_unlock(&d->lock);
	if (rc)
		goto unlock;
	de->node = n;
	memfs_dir_insert(fs, dd, de);
	de = NULL;
unlock:
	pthread_rwlock_unlock(&dd->dlock);
	memfs_dentry_free(fs, de);
	return rc;
}

int memfs_unlink(fsp_req *r, void *dir, const char *name)
{
	struct memfs *fs = memfs_of(r);
	struct memfs_node *d = dir, *n = NULL;
	struct memfs_dentry *de = NULL;
	struct timespec now;
	bool last = false;
	size_t len;
	int rc;

	if (!S_ISDIR(d->type))
		return -ENOTDIR;
	rc = check_name(name, &len);
	if (rc)
		return rc;
	if (is_dot(name))
		return -EISDIR;
	pthread_rwlock_wrlock(&d->u.dir->dlock);
	de = memfs_dir_find(fs, d->u.dir, name, len);
	if (!de) {
		rc = -ENOENT;
		goto unlock;
	}
	n = de->node;
	if (S_ISDIR(n->type)) {
		rc = -EISDIR;
		de = NULL;
		goto unlock;
	}
	memfs_dir_remove(fs, d->u.dir, de);
	now = memfs_now();
	pthread_rwlock_wrlock(&n->lock);
	n->nlink--;
	n->ctime = now;
	last = n->nlink == 0;
	pthread_rwlock_unlock(&n->lock);
	pthread_rwlock_wrlock(&d->lock);
	d->u.dir->count--;
	set_dir_times(d, now);
	pthread_rwlock_unlock(&d->lock);
unlock:
	pthread_rwlock_unlock(&d->u.dir->dlock);
	if (rc == 0) {
		memfs_dentry_free(fs, de);
		if (last)
			memfs_node_put(fs, n, 1);
	}
	return rc;
}

/* Marks the empty directory c dead (no links, no parent). -ENOTEMPTY if it
 * is not empty. Its link reference is the caller's to drop. */
static int kill_dir(struct memfs_node *c, struct timespec now)
{
	int rc = 0;

	pthread_rwlock_wrlock(&c->lock);
	if (c->u.dir->count) {
		rc = -ENOTEMPTY;
	} else {
		c->u.dir->dead = true;
		c->u.dir->parent = NULL;
		c->nlink = 0;
		c->ctime = now;
	}
	pthread_rwlock_unlock(&c->lock);
	return rc;
}

int memfs_rmdir(fsp_req *r, void *dir, const char *name)
{
	struct memfs *fs = memfs_of(r);
	struct memfs_node *d = dir, *c = NULL;
	struct memfs_dentry *de;
	struct timespec now = memfs_now();
	size_t len;
	int rc;

	if (!S_ISDIR(d->type))
		return -ENOTDIR;
	rc = check_name(name, &len);
	if (rc)
		return rc;
	if (strcmp(name, ".") == 0)
		return -EINVAL;
	if (strcmp(name, "..") == 0)
		return -ENOTEMPTY;
	pthread_rwlock_wrlock(&d->u.dir->dlock);
	de = memfs_dir_find(fs, d->u.dir, name, len);
	if (!de) {
		rc = -ENOENT;
		goto unlock;
	}
	c = de->node;
	if (!S_ISDIR(c->type)) {
		rc = -ENOTDIR;
		goto unlock;
	}
	rc = kill_dir(c, now);
	if (rc)
		goto unlock;
	memfs_dir_remove(fs, d->u.dir, de);
	pthread_rwlock_wrlock(&d->lock);
	d->u.dir->count--;
	d->nlink--;
	set_dir_times(d, now);
	pthread_rwlock_unlock(&d->lock);
unlock:
	pthread_rwlock_unlock(&d->u.dir->dlock);
	if (rc == 0) {
		memfs_dentry_free(fs, de);
		memfs_node_put(fs, c, 1);
	}
	return rc;
}

/* Is a equal to d or one of d's ancestors? Under rename_lock, with d kept
 * non-empty (so the chain up from d is fixed). */
static bool is_ancestor(struct memfs_node *a, struct memfs_node *d)
{
	for (;;) {
		struct memfs_node *p;

		if (d == a)
			return true;
		pthread_rwlock_rdlock(&d->lock);
		p = d->u.dir->parent;
		pthread_rwlock_unlock(&d->lock);
		if (!p || p == d)
			return false;
		d = p;
	}
}

static void set_parent(struct memfs_node *c, struct memfs_node *p, struct timespec now)
{
	pthread_rwlock_wrlock(&c->lock);
	if (S_ISDIR(c->type))
		c->u.dir->parent = p;
	c->ctime = now;
	pthread_rwlock_unlock(&c->lock);
}

int memfs_rename(fsp_req *r, void *dir, const char *name, void *newdir,
		 const char *newname, unsigned flags)
{
	struct memfs *fs = memfs_of(r);
	struct memfs_node *od = dir, *nd = newdir, *s, *t = NULL, *put = NULL;
	struct memfs_dir *odd, *ndd;
	struct memfs_dentry *sde = NULL, *tde = NULL, *nde = NULL;
	bool cross = od != nd, reserved = false, sdir, tdir;
	bool exchange = flags & RENAME_EXCHANGE;
	struct timespec now;
	size_t len, newlen;
	int rc;

	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	if ((flags & RENAME_NOREPLACE) && exchange)
		return -EINVAL;
	if (!S_ISDIR(od->type) || !S_ISDIR(nd->type))
		return -ENOTDIR;
	rc = check_name(name, &len);
	if (!rc)
		rc = check_name(newname, &newlen);
	if (rc)
		return rc;
	if (is_dot(name) || is_dot(newname))
		return -EINVAL;
	odd = od->u.dir;
	ndd = nd->u.dir;
	if (!exchange) {
		rc = memfs_dentry_new(fs, newname, newlen, &nde);
		if (rc)
			return rc;
	}

	if (cross) {
		pthread_mutex_lock(&fs->rename_lock);
		pthread_rwlock_wrlock(odd < ndd ? &odd->dlock : &ndd->dlock);
		pthread_rwlock_wrlock(odd < ndd ? &ndd->dlock : &odd->dlock);
	} else {
		pthread_rwlock_wrlock(&odd->dlock);
	}

	sde = memfs_dir_find(fs, odd, name, len);
	if (!sde) {
		rc = -ENOENT;
		goto unlock;
	}
	s = sde->node;
	tde = memfs_dir_find(fs, ndd, newname, newlen);
	t = tde ? tde->node : NULL;
	if (t && (flags & RENAME_NOREPLACE)) {
		rc = -EEXIST;
		goto unlock;
	}
	if (!t && exchange) {
		rc = -ENOENT;
		goto unlock;
	}
	if (t == s)     /* two names of one file (or one name): nothing to do */
		goto unlock;
	sdir = S_ISDIR(s->type);
	tdir = t && S_ISDIR(t->type);
	if (t && !exchange) {
		if (sdir && !tdir) {
			rc = -ENOTDIR;
			goto unlock;
		}
		if (!sdir && tdir) {
			rc = -EISDIR;
			goto unlock;
		}
	}
	if (cross && !t) {
		/* nd gains an entry: reserve it, which also keeps nd alive and
		 * the chain above it fixed for is_ancestor. */
		pthread_rwlock_wrlock(&nd->lock);
		if (ndd->dead)
			rc = -ENOENT;
		else
			ndd->count++;
		pthread_rwlock_unlock(&nd->lock);
		if (rc)
			goto unlock;
		reserved = true;
	}
	if (cross && ((sdir && is_ancestor(s, nd)) || (exchange && tdir && is_ancestor(t, od)))) {
		rc = -EINVAL;
		goto unlock;
	}
	if (!exchange) {
		rc = memfs_dir_prepare(fs, ndd);
		if (rc)
			goto unlock;
	}
	now = memfs_now();
	/* The last step that can fail: after it, everything is committed. */
	if (tdir && !exchange) {
		rc = kill_dir(t, now);
		if (rc)
			goto unlock;
		put = t;
	}

	if (exchange) {
		sde->node = t;
		tde->node = s;
		tde = NULL;     /* both dentries stay */
		sde = NULL;
		set_parent(s, nd, now);
		set_parent(t, od, now);
		if (cross && sdir != tdir) {
			int delta = sdir ? 1 : -1;      /* a directory moved od -> nd */

			pthread_rwlock_wrlock(&od->lock);
			od->nlink -= delta;
			set_dir_times(od, now);
			pthread_rwlock_unlock(&od->lock);
			pthread_rwlock_wrlock(&nd->lock);
			nd->nlink += delta;
			set_dir_times(nd, now);
			pthread_rwlock_unlock(&nd->lock);
		} else {
			pthread_rwlock_wrlock(&od->lock);
			set_dir_times(od, now);
			pthread_rwlock_unlock(&od->lock);
			if (cross) {
				pthread_rwlock_wrlock(&nd->lock);
				set_dir_times(nd, now);
				pthread_rwlock_unlock(&nd->lock);
			}
		}
		goto unlock;
	}

	/* Parent first: see the top of this file. */
	set_parent(s, nd, now);
	/* Insert before removing: a removal that empties nd would free the
	 * room prepare made (removal unlinks by pointer, so the name being
	 * there twice for a moment is harmless). */
	nde->node = s;
	memfs_dir_insert(fs, ndd, nde);
	nde = NULL;
	if (t) {
		memfs_dir_remove(fs, ndd, tde);
		if (!tdir) {
			pthread_rwlock_wrlock(&t->lock);
			t->nlink--;
			t->ctime = now;
			if (t->nlink == 0)
				put = t;
			pthread_rwlock_unlock(&t->lock);
		}
	}
	memfs_dir_remove(fs, odd, sde);
	pthread_rwlock_wrlock(&od->lock);
	if (cross) {
		odd->count--;
		if (sdir)
			od->nlink--;
	} else if (t) {
		odd->count--;
		if (tdir)
			od->nlink--;
	}
	set_dir_times(od, now);
	pthread_rwlock_unlock(&od->lock);
	if (cross) {
		/* count: s came and t left, or s came into the reserved place. */
		pthread_rwlock_wrlock(&nd->lock);
		nd->nlink += (sdir ? 1 : 0) - (tdir ? 1 : 0);
		set_dir_times(nd, now);
		pthread_rwlock_unlock(&nd->lock);
	}
	rc = 0;
	goto unlock_keep;       /* the reservation is used: keep it */

unlock:
	sde = NULL;
	tde = NULL;
	if (reserved) {
		pthread_rwlock_wrlock(&nd->lock);
		ndd->count--;
		pthread_rwlock_unlock(&nd->lock);
	}
unlock_keep:
	pthread_rwlock_unlock(&odd->dlock);
	if (cross) {
		pthread_rwlock_unlock(&ndd->dlock);
		pthread_mutex_unlock(&fs->rename_lock);
	}
	memfs_dentry_free(fs, sde);
	memfs_dentry_free(fs, tde);
	memfs_dentry_free(fs, nde);
	if (put)
		memfs_node_put(fs, put, 1);
	return rc;
}

int memfs_readlink(fsp_req *r, void *obj, char *buf, size_t size)
{
	struct memfs_node *n = obj;
	size_t len;
	bool due;

	(void)r;
	if (!S_ISLNK(n->type))
		return -EINVAL;
	len = strlen(n->u.target);      /* immutable */
	memcpy(buf, n->u.target, len < size ? len : size);
	pthread_rwlock_rdlock(&n->lock);
	due = memfs_atime_due(n);
	pthread_rwlock_unlock(&n->lock);
	if (due)
		memfs_touch_atime(n);
	return (int)(len < size ? len : size);
}

int memfs_open(fsp_req *r, void *obj, int flags, struct fsp_open_out *o)
{
	struct memfs *fs = memfs_of(r);
	struct memfs_node *n = obj;
	int rc = 0;

	if ((flags & O_TRUNC) && S_ISREG(n->type)) {
		/* Linux truncates on O_TRUNC even when read-only, and moves
		 * mtime/ctime even if the file was empty. */
		struct timespec now = memfs_now();

		pthread_rwlock_wrlock(&n->lock);
		rc = memfs_data_truncate(fs, n, 0);
		if (!rc)
			n->mtime = n->ctime = now;
		pthread_rwlock_unlock(&n->lock);
		if (rc)
			return rc;
	}
	o->fh = NULL;
	o->flags = S_ISREG(n->type) ? OPEN_FLAGS : FSP_OPEN_NOFLUSH;
	return 0;
}

int memfs_opendir(fsp_req *r, void *obj, int flags, struct fsp_open_out *o)
{
	struct memfs_node *n = obj;

	(void)r;
	(void)flags;
	if (!S_ISDIR(n->type))
		return -ENOTDIR;
	o->fh = NULL;   /* offsets are seqs: a stream needs no state */
	/* every change to a directory passes through this kernel, which then
	 * drops its cached listing: it may keep one */
	o->flags = FSP_OPEN_CACHE_DIR | FSP_OPEN_KEEP_CACHE;
	return 0;
}

/* Offsets: "." ends at 1, ".." at 2, an entry at its seq (>= 3). */
int memfs_readdir(fsp_req *r, void *obj, void *fh, off_t off, fsp_dirbuf *db)
{
	struct memfs_node *d = obj, *c;
	struct memfs_dir *dd;
	struct memfs_dentry *de;
	const struct fsp_config *cfg = fsp_session_config(fsp_req_session(r));
	bool plus = fsp_dirbuf_is_plus(db);
	size_t pos;
	bool due;
	int rc = 0;

	(void)fh;
	if (!S_ISDIR(d->type))
		return -ENOTDIR;
	if (off < 0)
		return -EINVAL;
	dd = d->u.dir;
	pthread_rwlock_rdlock(&dd->dlock);
	if (off < 1) {
		rc = fsp_dirbuf_add(db, ".", d->ino, S_IFDIR, 1);
		if (rc)
			goto out;
	}
	if (off < 2) {
		uint64_t pino;

		pthread_rwlock_rdlock(&d->lock);
		pino = dd->parent ? dd->parent->ino : d->ino;
		pthread_rwlock_unlock(&d->lock);
		rc = fsp_dirbuf_add(db, "..", pino, S_IFDIR, 2);
		if (rc)
			goto out;
	}
	pos = memfs_dir_seek(dd, (uint64_t)off);
	for (size_t n = 1; (de = memfs_dir_next(dd, &pos)); n++) {
		/* an interrupted caller stops a long listing early: the 1023
		 * entries in the buffer are a valid short answer */
		if ((n & 1023) == 0 && fsp_req_interrupted(r))
			break;
		c = de->node;
		if (plus) {
			struct fsp_entry e;

			memset(&e, 0, sizeof(e));
			e.entry_timeout = cfg->entry_timeout;
			e.attr_timeout = cfg->attr_timeout;
			pthread_rwlock_rdlock(&c->lock);
			memfs_fill_entry(c, &e);
			pthread_rwlock_unlock(&c->lock);
			rc = fsp_dirbuf_add_plus(db, de->name, &e, (off_t)de->seq);
			if (rc == 0)
				memfs_node_get(c);      /* dlock still held */
		} else {
			rc = fsp_dirbuf_add(db, de->name, c->ino, c->type, (off_t)de->seq);
		}
		if (rc)
			break;
	}
out:
	pthread_rwlock_unlock(&dd->dlock);
	pthread_rwlock_rdlock(&d->lock);
	due = memfs_atime_due(d);
	pthread_rwlock_unlock(&d->lock);
	if (due)
		memfs_touch_atime(d);
	return rc < 0 ? rc : 0;
}

/* destroy, or the end of main when the session never ran: every remaining
 * node is linked (the library has forgotten the rest), so walking the tree
 * finds them all. Directories to visit are chained through dir->parent,
 * which is no longer needed: no recursion, no allocation. */
void memfs_free_tree(struct memfs *fs, struct memfs_node *root)
{
	struct memfs_node *todo = root, *d, *c;
	struct memfs_dentry *de;
	uint64_t leaked = 0;

	root->u.dir->parent = NULL;
	while ((d = todo)) {
		size_t pos = 0;

		todo = d->u.dir->parent;
		while ((de = memfs_dir_next(d->u.dir, &pos))) {
			c = de->node;
			memfs_dentry_free(fs, de);
			if (S_ISDIR(c->type)) {
				c->u.dir->parent = todo;
				todo = c;
			} else if (--c->nlink == 0) {
				if (atomic_load(&c->refs) != 1)
					leaked++;
				memfs_node_free(fs, c);
			}
		}
		if (atomic_load(&d->refs) != 1)
			leaked++;
		memfs_node_free(fs, d);
	}
	if (leaked)
		fsp_log(1, "memfs: %llu nodes still had library references at destroy",
			(unsigned long long)leaked);
}
