/*
 * fsp-stress: churn — concurrent readers, listers, renamers, truncaters,
 * deleters and writers on one copied tree, optionally with the kernel
 * dropping its dentry/inode caches underneath (forget).
 *
 * Nobody tracks paths: every thread finds its targets by a random descent
 * from the tree root with *at() calls, so paths going stale is just another
 * race.  What a file should contain is decided by inode number: a map from
 * inode to record entry is built before the threads start, and anything
 * that changes a file's content (a truncater, or a writer whose new file
 * may reuse a freed inode number) marks the entry modified *before* the
 * change, so a reader that sees the mark unset both before and after its
 * read knows it has read the original bytes.
 */
#include "fsp-stress.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAXD 32		/* descent limit; also bounds fds held by a lister */
#define DBUF 32768
#define WSLOTS 8	/* files each writer keeps open */
#define WMAX (1u << 20)	/* writer files stop growing here */

enum role { R_READ, R_LIST, R_RENAME, R_TRUNC, R_DELETE, R_WRITE };
enum { W_FILE, W_ANY, W_DIR };

struct imap {
	ino_t ino;
	uint32_t idx;
	bool used;
};

struct churn {
	const struct record *rec;
	const char *tree, *priv;
	int rootfd;
	struct phase *p;
	atomic_bool stop;
	struct imap *map;
	size_t map_cap, initial_files;
	atomic_uchar *modified;
	pthread_mutex_t own_mu;
	ino_t *owned;
	size_t nowned, owned_cap;
	_Atomic uint64_t nmodified;
	_Atomic uint64_t reads, read_checks, lists, renames, exch_ok, exch_inval, norep_ok,
		norep_inval, truncs, unlinks, rmdirs, wfiles, wchecks, benign, estale, settled;
};

struct worker {
	struct churn *c;
	enum role role;
	int id;
	struct rng rng;
	uint8_t *buf, *want;
	char *dbuf;
	pthread_t tid;
};

struct dent64 {
	uint64_t ino;
	int64_t off;
	unsigned short reclen;
	unsigned char type;
	char name[];
};

__attribute__((format(printf, 2, 3)))
static void cfail(struct churn *c, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	c->p->errors++;
	mismatch("churn: %s", s ? s : "?");
	free(s);
}

/* Errors a path operation may legitimately get while other threads move
 * and delete things; anything else fails the run. */
static void path_err(struct churn *c, const char *op, int r)
{
	switch (-r) {
	case ESTALE:
		c->estale++;
		/* fall through */
	case ENOENT: case ENOTEMPTY: case EEXIST: case ENOTDIR: case EISDIR: case EINVAL:
	case ELOOP: case ENXIO: case EBUSY: case EMLINK: case ENAMETOOLONG: case EACCES:
	case EPERM: case ETXTBSY:
		c->benign++;
		return;
	}
	cfail(c, "%s: %s", op, strerror(-r));
}

/* getdents on a directory fd: a directory removed meanwhile may say
 * ENOENT, but ESTALE or EIO on an fd we hold is the file system's fault. */
static void dir_fd_err(struct churn *c, const char *op, int r)
{
	if (r == -ENOENT)
		c->benign++;
	else
		cfail(c, "%s on open directory fd: %s", op, strerror(-r));
}

static size_t imap_slot(const struct churn *c, ino_t ino)
{
	return mix64(ino) & (c->map_cap - 1);
}

static long imap_get(const struct churn *c, ino_t ino)
{
	for (size_t i = imap_slot(c, ino); c->map[i].used; i = (i + 1) & (c->map_cap - 1))
		if (c->map[i].ino == ino)
			return c->map[i].idx;
	return -1;
}

static void imap_put(struct churn *c, ino_t ino, uint32_t idx)
{
	size_t i = imap_slot(c, ino);

	for (; c->map[i].used; i = (i + 1) & (c->map_cap - 1))
		if (c->map[i].ino == ino)
			return;
	c->map[i] = (struct imap){ ino, idx, true };
}

static void mark_modified(struct churn *c, ino_t ino)
{
	long idx = imap_get(c, ino);

	if (idx >= 0 && !atomic_exchange(&c->modified[idx], 1))
		c->nmodified++;
}

static bool owned(struct churn *c, ino_t ino)
{
	bool r = false;

	pthread_mutex_lock(&c->own_mu);
	for (size_t i = 0; i < c->nowned && !r; i++)
		r = c->owned[i] == ino;
	pthread_mutex_unlock(&c->own_mu);
	return r;
}

static void own(struct churn *c, ino_t ino, bool add)
{
	pthread_mutex_lock(&c->own_mu);
	if (add) {
		if (c->nowned == c->owned_cap) {
			c->owned_cap = c->owned_cap ? c->owned_cap * 2 : 64;
			c->owned = xrealloc(c->owned, c->owned_cap * sizeof(*c->owned));
		}
		c->owned[c->nowned++] = ino;
	} else {
		for (size_t i = 0; i < c->nowned; i++)
			if (c->owned[i] == ino) {
				c->owned[i] = c->owned[--c->nowned];
				break;
			}
	}
	pthread_mutex_unlock(&c->own_mu);
}

static unsigned char dtype_of(int dfd, const char *name, unsigned char t)
{
	struct stat st;

	if (t != DT_UNKNOWN || fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW))
		return t;
	return S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG
	     : S_ISLNK(st.st_mode) ? DT_LNK : DT_FIFO;
}

/*
 * Random descent from the root.  Returns an open directory fd (the
 * caller's to close) and, unless WANT is W_DIR, the name of a random
 * entry of the wanted kind inside it.  Reservoir sampling keeps one
 * candidate of each kind per directory, so a listing is read only once.
 */
static int walk(struct worker *w, int want, int *dfd, char *name, unsigned char *dtype)
{
	struct churn *c = w->c;
	int fd, r;

	fd = CK(openat(c->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (fd < 0)
		return fd;
	for (int depth = 0;; depth++) {
		char dn[256] = "", fn[256] = "", an[256] = "";
		unsigned nd = 0, nf = 0, na = 0;
		unsigned char at = 0;
		bool down;

		if (lseek(fd, 0, SEEK_SET) < 0) {
			r = CKERR();
			goto fail;
		}
		for (;;) {
			long nb = CK(syscall(SYS_getdents64, fd, w->dbuf, DBUF));

			if (nb < 0) {
				dir_fd_err(c, "walk: getdents", (int)nb);
				r = -ENOENT;	/* reported; to the caller it is a lost race */
				goto fail;
			}
			if (!nb)
				break;
			for (long pos = 0; pos < nb;) {
				struct dent64 *de = (void *)(w->dbuf + pos);
				unsigned char t;

				pos += de->reclen;
				if (de->name[0] == '.' && (!de->name[1] ||
							   (de->name[1] == '.' && !de->name[2])))
					continue;
				t = dtype_of(fd, de->name, de->type);
				if (!rng_below(&w->rng, ++na)) {
					snprintf(an, sizeof(an), "%s", de->name);
					at = t;
				}
				if (t == DT_DIR && !rng_below(&w->rng, ++nd))
					snprintf(dn, sizeof(dn), "%s", de->name);
				if (t == DT_REG && !rng_below(&w->rng, ++nf))
					snprintf(fn, sizeof(fn), "%s", de->name);
			}
		}
		down = nd && depth < MAXD &&
		       (want == W_DIR ? rng_pct(&w->rng, 65) :
			want == W_FILE ? !nf || rng_pct(&w->rng, 60) : rng_pct(&w->rng, 50));
		if (down) {
			int sub = CK(openat(fd, dn, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));

			if (sub < 0) {
				r = sub;
				goto fail;
			}
			close(fd);
			fd = sub;
			continue;
		}
		if (want == W_DIR || (want == W_FILE && nf) || (want == W_ANY && na)) {
			if (want == W_FILE) {
				memcpy(name, fn, sizeof(fn));
				*dtype = DT_REG;
			} else if (want == W_ANY) {
				memcpy(name, an, sizeof(an));
				*dtype = at;
			}
			*dfd = fd;
			return 0;
		}
		r = -ENOENT;	/* nothing of the wanted kind on this path */
		goto fail;
	}
fail:
	close(fd);
	return r;
}

/* Read a whole file through FD, hashing it; 0 or negative errno. */
static int hash_fd(struct worker *w, int fd, uint64_t *size, uint64_t *hash)
{
	uint64_t off = 0;
	struct fh h;

	fh_init(&h);
	for (;;) {
		ssize_t n = pread_full(fd, w->buf, FSS_BUF, (off_t)off);

		if (n < 0)
			return (int)n;
		if (!n)
			break;
		fh_update(&h, w->buf, n);
		off += n;
	}
	w->c->p->bytes += off;
	*size = off;
	*hash = fh_final(&h);
	return 0;
}

/* Check an open regular file against the record if it is still pristine.
 * Returns true if it was checked. */
static bool check_pristine(struct worker *w, int fd, const struct stat *st, const char *who)
{
	struct churn *c = w->c;
	long idx = imap_get(c, st->st_ino);
	uint64_t size = 0, hash = 0;
	int r;

	if (idx >= 0 && atomic_load(&c->modified[idx]))
		idx = -1;
	r = hash_fd(w, fd, &size, &hash);
	if (r < 0) {
		cfail(c, "%s: read (inode %llu): %s", who, (unsigned long long)st->st_ino,
		      strerror(-r));
		return false;
	}
	if (idx < 0 || atomic_load(&c->modified[idx]))
		return false;
	if (size != c->rec->ents[idx].size || hash != c->rec->ents[idx].hash)
		cfail(c, "%s: file first created as \"%s\" (inode %llu): read %llu bytes, hash "
		      "%016llx; expected %llu bytes, hash %016llx", who, c->rec->ents[idx].path,
		      (unsigned long long)st->st_ino, (unsigned long long)size,
		      (unsigned long long)hash, (unsigned long long)c->rec->ents[idx].size,
		      (unsigned long long)c->rec->ents[idx].hash);
	return true;
}

/* Open a file for a reader: by original path now and then (uniform over
 * the record, but stale once a directory above moved), otherwise by a
 * random descent (always current, but it keeps landing in the same few
 * directories, where writers' and truncated files pile up). */
static int reader_open(struct worker *w)
{
	struct churn *c = w->c;
	unsigned char t;
	char name[256];
	int dfd, fd;

	if (rng_pct(&w->rng, 30)) {
		const struct entry *e = &c->rec->ents[rng_below(&w->rng, c->rec->n)];

		if (e->type == ET_FILE || e->type == ET_HARDLINK)
			return CK(openat(c->rootfd, e->path,
					 O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
	}
	fd = walk(w, W_FILE, &dfd, name, &t);
	if (fd < 0)
		return fd;
	fd = CK(openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
	close(dfd);
	return fd;
}

static void do_read(struct worker *w)
{
	struct churn *c = w->c;
	struct stat st;
	int fd, r;

	/* Prefer files that can be checked, without refusing the others:
	 * reading a file while it is being changed is a test as well. */
	for (int attempt = 0;; attempt++) {
		long idx;

		fd = reader_open(w);
		if (fd < 0) {
			path_err(c, "reader: open", fd);
			return;
		}
		r = CK(fstat(fd, &st));
		if (r < 0) {
			cfail(c, "reader: fstat on open fd: %s", strerror(-r));
			close(fd);
			return;
		}
		idx = imap_get(c, st.st_ino);
		if (attempt == 3 || (idx >= 0 && !atomic_load(&c->modified[idx])))
			break;
		close(fd);
	}
	if (S_ISREG(st.st_mode) && check_pristine(w, fd, &st, "reader"))
		c->read_checks++;
	c->reads++;
	close(fd);
}

/* Recursive listing with fstatat of every entry.  SETTLE (after the
 * threads stopped) also re-reads every still-pristine file. */
static void list_dir(struct worker *w, int fd, int depth, bool settle)
{
	struct churn *c = w->c;
	char **names = NULL;
	size_t n = 0, cap = 0;

	if (lseek(fd, 0, SEEK_SET) < 0)
		return;
	for (;;) {
		long nb = CK(syscall(SYS_getdents64, fd, w->dbuf, DBUF));

		if (nb <= 0) {
			if (nb < 0)
				dir_fd_err(c, "lister: getdents", (int)nb);
			break;
		}
		for (long pos = 0; pos < nb;) {
			struct dent64 *de = (void *)(w->dbuf + pos);

			pos += de->reclen;
			if (de->name[0] == '.' && (!de->name[1] || (de->name[1] == '.' && !de->name[2])))
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				names = xrealloc(names, cap * sizeof(*names));
			}
			names[n++] = xstrdup(de->name);
		}
	}
	c->lists++;
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		int r;

		if (!settle && atomic_load(&c->stop))
			break;
		r = CK(fstatat(fd, names[i], &st, AT_SYMLINK_NOFOLLOW));
		c->p->ops++;
		if (r < 0) {
			path_err(c, "lister: stat", r);
		} else if (S_ISDIR(st.st_mode) && depth < MAXD) {
			int sub = CK(openat(fd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));

			if (sub < 0) {
				path_err(c, "lister: open dir", sub);
			} else {
				list_dir(w, sub, depth + 1, settle);
				close(sub);
			}
		} else if (S_ISLNK(st.st_mode)) {
			char t[PATH_MAX];

			r = CK(readlinkat(fd, names[i], t, sizeof(t)));
			if (r < 0)
				path_err(c, "lister: readlink", r);
		} else if (settle && S_ISREG(st.st_mode) && imap_get(c, st.st_ino) >= 0) {
			int f = CK(openat(fd, names[i], O_RDONLY | O_NOFOLLOW | O_CLOEXEC));

			if (f < 0) {
				cfail(c, "settle: open %s: %s", names[i], strerror(-f));
			} else {
				if (!fstat(f, &st) && check_pristine(w, f, &st, "settle"))
					c->settled++;
				close(f);
			}
		}
		free(names[i]);
		names[i] = NULL;
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static void do_list(struct worker *w)
{
	int fd = CK(openat(w->c->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));

	if (fd < 0) {
		path_err(w->c, "lister: open root", fd);
		return;
	}
	list_dir(w, fd, 0, false);
	close(fd);
}

static void fresh_name(struct worker *w, char *out)
{
	unsigned c = rng_below(&w->rng, 100);
	unsigned long long k = rng_next(&w->rng) & 0xffffffffffULL;

	if (c < 10)	/* long, to keep NAME_MAX-sized names moving around */
		snprintf(out, 256, "renamed %02d %llx %s", w->id, k,
			 "ünïcödé-ünïcödé-ünïcödé-ünïcödé-ünïcödé-ünïcödé-ünïcödé-ünïcödé-"
			 "padpadpadpadpadpadpadpadpadpadpadpadpadpadpadpadpadpadpadpadpad");
	else if (c < 30)
		snprintf(out, 256, "r %d.%llx .moved", w->id, k);
	else
		snprintf(out, 256, "r%d-%llx", w->id, k);
}

static void do_rename(struct worker *w)
{
	struct churn *c = w->c;
	unsigned k = rng_below(&w->rng, 100), flags = 0;
	char sn[256], dn[256];
	unsigned char st, dt;
	int sfd, dfd, r;

	r = walk(w, W_ANY, &sfd, sn, &st);
	if (r < 0) {
		path_err(c, "renamer: walk", r);
		return;
	}
	/* Moving a directory invalidates every path below it; do it often
	 * enough to race with lookups, not so often that nothing is ever
	 * found twice. */
	if (st == DT_DIR && rng_pct(&w->rng, 75)) {
		close(sfd);
		return;
	}
	if (k < 50) {
		/* Move somewhere under a new name. */
		r = walk(w, W_DIR, &dfd, NULL, NULL);
		fresh_name(w, dn);
		flags = k < 25 ? 0 : RENAME_NOREPLACE;
	} else {
		/* Onto an existing entry: replace it, refuse, or swap. */
		r = walk(w, W_ANY, &dfd, dn, &dt);
		flags = k < 65 ? 0 : k < 75 ? RENAME_NOREPLACE : RENAME_EXCHANGE;
	}
	if (r < 0) {
		path_err(c, "renamer: walk", r);
		close(sfd);
		return;
	}
	r = CK(renameat2(sfd, sn, dfd, dn, flags));
	if (flags == RENAME_EXCHANGE) {
		if (!r)
			c->exch_ok++;
		else if (r == -EINVAL)
			c->exch_inval++;
	} else if (flags == RENAME_NOREPLACE) {
		if (!r)
			c->norep_ok++;
		else if (r == -EINVAL)
			c->norep_inval++;
	}
	if (r < 0)
		path_err(c, "renamer: renameat2", r);
	else
		c->renames++;
	close(sfd);
	close(dfd);
}

static void do_truncate(struct worker *w)
{
	struct churn *c = w->c;
	unsigned char t;
	char name[256];
	struct stat st;
	int dfd, fd, r;
	long idx;
	off_t len;

	r = walk(w, W_FILE, &dfd, name, &t);
	if (r < 0) {
		path_err(c, "truncater: walk", r);
		return;
	}
	fd = CK(openat(dfd, name, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
	close(dfd);
	if (fd < 0) {
		path_err(c, "truncater: open", fd);
		return;
	}
	r = CK(fstat(fd, &st));
	if (r < 0) {
		cfail(c, "truncater: fstat on open fd: %s", strerror(-r));
		goto out;
	}
	/* Writers' files are theirs to check; leave them alone. */
	if (!S_ISREG(st.st_mode) || owned(c, st.st_ino))
		goto out;
	/* Keep most of the tree pristine so that readers have something to
	 * check: past a quarter, only files already spoilt are truncated. */
	idx = imap_get(c, st.st_ino);
	if (idx >= 0 && !atomic_load(&c->modified[idx]) && c->nmodified >= c->initial_files / 4) {
		sleep_ms(1);
		goto out;
	}
	mark_modified(c, st.st_ino);
	switch (rng_below(&w->rng, 4)) {
	case 0: len = 0; break;
	case 1: len = st.st_size / 2; break;
	case 2: len = st.st_size + (off_t)rng_below(&w->rng, 3 * FSS_HOLE_BLK); break;
	default: len = (off_t)rng_below(&w->rng, 2 * FSS_HOLE_BLK); break;
	}
	r = CK(ftruncate(fd, len));
	if (r < 0) {
		cfail(c, "truncater: ftruncate(%lld) on open fd: %s", (long long)len, strerror(-r));
		goto out;
	}
	/* Only this thread changes sizes of non-writer files. */
	r = CK(fstat(fd, &st));
	if (r < 0)
		cfail(c, "truncater: fstat on open fd: %s", strerror(-r));
	else if (st.st_size != len)
		cfail(c, "truncater: size %lld right after ftruncate(%lld)", (long long)st.st_size,
		      (long long)len);
	c->truncs++;
out:
	close(fd);
}

static void do_delete(struct worker *w)
{
	struct churn *c = w->c;
	unsigned char t;
	char name[256];
	int dfd, r;

	/* Slow down once half the files are gone, so that the others still
	 * have something to race on for the whole run. */
	if (c->unlinks > c->initial_files / 2)
		sleep_ms(5);
	r = walk(w, W_ANY, &dfd, name, &t);
	if (r < 0) {
		path_err(c, "deleter: walk", r);
		return;
	}
	r = CK(unlinkat(dfd, name, t == DT_DIR ? AT_REMOVEDIR : 0));
	close(dfd);
	if (r < 0)
		path_err(c, "deleter: unlink", r);
	else if (t == DT_DIR)
		c->rmdirs++;
	else
		c->unlinks++;
}

/* ---- writers ---------------------------------------------------------- */

struct wslot {
	int fd;
	uint64_t key, size;
	ino_t ino;
	char name[64];
};

static int wcheck(struct worker *w, struct wslot *s)
{
	struct churn *c = w->c;
	struct stat st;
	int r = CK(fstat(s->fd, &st));

	if (r < 0) {
		cfail(c, "writer %d: fstat on own fd (%s): %s", w->id, s->name, strerror(-r));
		return r;
	}
	if ((uint64_t)st.st_size != s->size) {
		cfail(c, "writer %d: own file %s: size %lld, wrote %llu", w->id, s->name,
		      (long long)st.st_size, (unsigned long long)s->size);
		return -EIO;
	}
	for (uint64_t off = 0; off < s->size;) {
		size_t n = s->size - off < FSS_BUF ? s->size - off : FSS_BUF;
		ssize_t got = pread_full(s->fd, w->buf, n, (off_t)off);

		if (got < 0) {
			cfail(c, "writer %d: read own fd (%s): %s", w->id, s->name, strerror((int)-got));
			return (int)got;
		}
		content_fill(s->key, false, off, w->want, n);
		if ((size_t)got != n || memcmp(w->buf, w->want, n)) {
			size_t k = 0;

			while (k < (size_t)got && w->buf[k] == w->want[k])
				k++;
			cfail(c, "writer %d: own fd (%s) reads back wrong data at offset %llu",
			      w->id, s->name, (unsigned long long)(off + k));
			return -EIO;
		}
		off += n;
		c->p->bytes += n;
	}
	c->wchecks++;
	return 0;
}

static int wwrite(struct worker *w, struct wslot *s, uint64_t off, size_t n)
{
	int r;

	while (n) {
		size_t m = n < FSS_BUF ? n : FSS_BUF;

		content_fill(s->key, false, off, w->buf, m);
		r = pwrite_full(s->fd, w->buf, m, (off_t)off);
		if (r < 0) {
			cfail(w->c, "writer %d: write own fd (%s): %s", w->id, s->name, strerror(-r));
			return r;
		}
		w->c->p->bytes += m;
		off += m;
		n -= m;
	}
	return 0;
}

static void wclose(struct worker *w, struct wslot *s)
{
	wcheck(w, s);
	close(s->fd);
	own(w->c, s->ino, false);
	s->fd = -1;
}

static void wcreate(struct worker *w, struct wslot *s, int pfd, unsigned n)
{
	struct churn *c = w->c;
	char dn[256], dn2[256];
	struct stat st;
	int dfd, r;

	snprintf(s->name, sizeof(s->name), "w%d-%u", w->id, n);
	s->fd = CK(openat(pfd, s->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
	if (s->fd < 0) {
		cfail(c, "writer %d: create %s: %s", w->id, s->name, strerror(-s->fd));
		s->fd = -1;
		return;
	}
	r = CK(fstat(s->fd, &st));
	if (r < 0) {
		cfail(c, "writer %d: fstat on own fd: %s", w->id, strerror(-r));
		close(s->fd);
		s->fd = -1;
		return;
	}
	/* Claim the inode before anyone else can reach it: its number may
	 * be a recycled one that the reader map still knows. */
	s->ino = st.st_ino;
	own(c, s->ino, true);
	mark_modified(c, s->ino);
	s->key = mix64(c->rec->seed ^ ((uint64_t)w->id << 40) ^ n);
	s->size = rng_below(&w->rng, 128 * 1024);
	c->wfiles++;
	if (wwrite(w, s, 0, s->size) < 0)
		return;
	/* Publish it into the churn tree, then sometimes pull the name out
	 * from under the open fd straight away. */
	r = walk(w, W_DIR, &dfd, NULL, NULL);
	if (r < 0) {
		path_err(c, "writer: walk", r);
		CK(unlinkat(pfd, s->name, 0));
		return;
	}
	snprintf(dn, sizeof(dn), "%s.w", s->name);
	r = CK(renameat(pfd, s->name, dfd, dn));
	if (r < 0) {
		path_err(c, "writer: rename into tree", r);
		CK(unlinkat(pfd, s->name, 0));
	} else if (rng_pct(&w->rng, 25)) {
		r = CK(unlinkat(dfd, dn, 0));
		if (r < 0)
			path_err(c, "writer: unlink own file", r);
	} else if (rng_pct(&w->rng, 30)) {
		snprintf(dn2, sizeof(dn2), "%s.moved", s->name);
		r = CK(renameat(dfd, dn, dfd, dn2));
		if (r < 0)
			path_err(c, "writer: rename own file", r);
	}
	close(dfd);
}

static void writer_loop(struct worker *w)
{
	struct churn *c = w->c;
	struct wslot slots[WSLOTS];
	char *pd = xasprintf("%s/w%d", c->priv, w->id);
	int pfd = CK(open(pd, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	unsigned n = 0;

	free(pd);
	if (pfd < 0) {
		cfail(c, "writer %d: open private dir: %s", w->id, strerror(-pfd));
		return;
	}
	for (int i = 0; i < WSLOTS; i++)
		slots[i].fd = -1;
	while (!atomic_load(&c->stop)) {
		struct wslot *s = &slots[rng_below(&w->rng, WSLOTS)];
		unsigned k = rng_below(&w->rng, 100);

		c->p->ops++;
		g_churn_ops++;
		if (s->fd < 0) {
			wcreate(w, s, pfd, n++);
		} else if (k < 40 && s->size < WMAX) {
			size_t add = 1 + rng_below(&w->rng, 64 * 1024);

			if (!wwrite(w, s, s->size, add))
				s->size += add;
		} else if (k < 55 && s->size) {
			/* Rewrite a range with the bytes it already holds. */
			uint64_t off = rng_below(&w->rng, s->size);
			size_t len = 1 + rng_below(&w->rng, 32 * 1024);

			wwrite(w, s, off, len < s->size - off ? len : s->size - off);
		} else if (k < 90) {
			wcheck(w, s);
		} else {
			wclose(w, s);
		}
	}
	for (int i = 0; i < WSLOTS; i++)
		if (slots[i].fd >= 0)
			wclose(w, &slots[i]);
	close(pfd);
}

static void *churn_thread(void *arg)
{
	struct worker *w = arg;
	struct churn *c = w->c;

	if (w->role == R_WRITE) {
		writer_loop(w);
		return NULL;
	}
	while (!atomic_load(&c->stop)) {
		switch (w->role) {
		case R_READ: do_read(w); break;
		case R_LIST: do_list(w); break;
		case R_RENAME: do_rename(w); break;
		case R_TRUNC: do_truncate(w); break;
		case R_DELETE: do_delete(w); break;
		case R_WRITE: break;
		}
		c->p->ops++;
		g_churn_ops++;
	}
	return NULL;
}

/* ---- forget ----------------------------------------------------------- */

static pthread_t forget_tid;
static atomic_bool forget_halt, forget_on;
static _Atomic uint64_t forget_count;

static void *forget_thread(void *arg)
{
	(void)arg;
	/* Mostly dentries+inodes (2); now and then the page cache too (3),
	 * so that reads go back to the file system as well. */
	for (unsigned i = 0; !atomic_load(&forget_halt); i++) {
		if (drop_caches(i % 8 == 7 ? 3 : 2) == 0)
			forget_count++;
		sleep_ms(50);
	}
	return NULL;
}

int forget_start(void)
{
	int r;

	if (geteuid() != 0)
		return -EPERM;
	r = drop_caches(2);
	if (r < 0)
		return r;
	forget_halt = false;
	forget_count = 0;
	if (pthread_create(&forget_tid, NULL, forget_thread, NULL))
		return -EAGAIN;
	forget_on = true;
	return 0;
}

uint64_t forget_stop(void)
{
	if (!forget_on)
		return 0;
	forget_halt = true;
	pthread_join(forget_tid, NULL);
	forget_on = false;
	return forget_count;
}

/* ---- setup ------------------------------------------------------------ */

static void build_map(struct churn *c)
{
	const struct record *rec = c->rec;

	c->map_cap = 1024;
	while (c->map_cap < 2 * (rec->nfiles + rec->nhard))
		c->map_cap *= 2;
	c->map = xcalloc(c->map_cap, sizeof(*c->map));
	c->modified = xcalloc(rec->n, sizeof(*c->modified));
	for (size_t i = 0; i < rec->n; i++) {
		const struct entry *e = &rec->ents[i];
		char *full;
		struct stat st;

		if (e->type != ET_FILE && e->type != ET_HARDLINK)
			continue;
		full = path_cat(c->tree, e->path);
		if (!CK(lstat(full, &st)) && S_ISREG(st.st_mode)) {
			imap_put(c, st.st_ino, e->type == ET_FILE ? (uint32_t)i : (uint32_t)e->primary);
			if (e->type == ET_FILE)
				c->initial_files++;
		}
		free(full);
	}
}

static struct worker *spawn(struct churn *c, enum role role, int id)
{
	struct worker *w = xcalloc(1, sizeof(*w));

	w->c = c;
	w->role = role;
	w->id = id;
	rng_seed(&w->rng, c->rec->seed ^ ((uint64_t)(role + 1) << 56) ^ (uint64_t)id);
	w->buf = xmalloc(FSS_BUF);
	w->want = xmalloc(FSS_BUF);
	w->dbuf = xmalloc(DBUF);
	if (pthread_create(&w->tid, NULL, churn_thread, w)) {
		cfail(c, "cannot start a thread");
		free(w->buf);
		free(w->want);
		free(w->dbuf);
		free(w);
		return NULL;
	}
	return w;
}

int churn_run(const struct record *rec, const char *tree, const char *priv, bool forget,
	      struct phase *p)
{
	struct churn c = { .rec = rec, .tree = tree, .priv = priv, .p = p, .rootfd = -1 };
	/* Capped so that even --threads 256 stays within a few hundred fds:
	 * a lister holds one per level, a writer two per open file. */
	unsigned t = opt.threads < 32 ? opt.threads : 32, half = t / 2 ? t / 2 : 1;
	struct { enum role role; unsigned n; } mix[] = {
		{ R_READ, t }, { R_LIST, t / 4 ? (t / 4 < 2 ? t / 4 : 2) : 1 },
		{ R_RENAME, half < 8 ? half : 8 }, { R_TRUNC, 1 }, { R_DELETE, 1 },
		{ R_WRITE, half < 4 ? half : 4 },
	};
	struct worker **ws = NULL;
	uint64_t forgets = 0;
	size_t nw = 0;
	double end;
	int r;

	pthread_mutex_init(&c.own_mu, NULL);
	build_map(&c);
	c.rootfd = CK(open(tree, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (c.rootfd < 0) {
		cfail(&c, "open %s: %s", tree, strerror(-c.rootfd));
		goto out;
	}
	r = CK(mkdir(priv, 0700));
	for (unsigned i = 0; !r && i < mix[5].n; i++) {
		char *d = xasprintf("%s/w%u", priv, i);

		r = CK(mkdir(d, 0700));
		free(d);
	}
	if (r < 0) {
		cfail(&c, "mkdir %s: %s", priv, strerror(-r));
		goto out;
	}
	if (forget) {
		r = forget_start();
		if (r < 0) {
			note("forget: cannot write /proc/sys/vm/drop_caches (%s); skipping",
			     strerror(-r));
			forget = false;
		}
	}
	for (size_t m = 0; m < sizeof(mix) / sizeof(mix[0]); m++)
		for (unsigned i = 0; i < mix[m].n; i++) {
			struct worker *w = spawn(&c, mix[m].role, (int)i);

			if (w) {
				ws = xrealloc(ws, (nw + 1) * sizeof(*ws));
				ws[nw++] = w;
			}
		}
	end = now_mono() + opt.seconds;
	while (now_mono() < end)
		sleep_ms(50);
	atomic_store(&c.stop, true);
	for (size_t i = 0; i < nw; i++) {
		pthread_join(ws[i]->tid, NULL);
		if (i)
			free(ws[i]->buf), free(ws[i]->want), free(ws[i]->dbuf), free(ws[i]);
	}
	if (forget)
		forgets = forget_stop();
	/* Whatever survived untouched must still be exactly the original. */
	if (nw) {
		int fd = CK(openat(c.rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));

		if (fd >= 0) {
			list_dir(ws[0], fd, 0, true);
			close(fd);
		} else {
			cfail(&c, "settle: open tree: %s", strerror(-fd));
		}
		free(ws[0]->buf), free(ws[0]->want), free(ws[0]->dbuf), free(ws[0]);
	}
	r = rmtree(priv, NULL);
	if (r < 0)
		cfail(&c, "remove %s: %s", priv, strerror(-r));
	if (c.exch_inval && !c.exch_ok)
		note("churn: RENAME_EXCHANGE never succeeded (EINVAL %llu times): unsupported?",
		     (unsigned long long)c.exch_inval);
	if (c.norep_inval && !c.norep_ok)
		note("churn: RENAME_NOREPLACE never succeeded (EINVAL %llu times): unsupported?",
		     (unsigned long long)c.norep_inval);
	if (c.estale)
		note("churn: %llu ESTALE on path operations (counted as races)",
		     (unsigned long long)c.estale);
out:
	phase_set(p, "reads", c.reads);
	phase_set(p, "checked reads", c.read_checks);
	phase_set(p, "listings", c.lists);
	phase_set(p, "renames", c.renames);
	phase_set(p, "exchanges", c.exch_ok);
	phase_set(p, "truncates", c.truncs);
	phase_set(p, "unlinks", c.unlinks);
	phase_set(p, "rmdirs", c.rmdirs);
	phase_set(p, "writer files", c.wfiles);
	phase_set(p, "fd checks", c.wchecks);
	phase_set(p, "races", c.benign);
	phase_set(p, "settled files", c.settled);
	if (forget)
		phase_set(p, "cache drops", forgets);
	if (c.rootfd >= 0)
		close(c.rootfd);
	free(ws);
	free(c.map);
	free((void *)c.modified);
	free(c.owned);
	pthread_mutex_destroy(&c.own_mu);

	return p->errors ? -EIO : 0;
}
