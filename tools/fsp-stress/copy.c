/*
 * fsp-stress: the two copiers.  "cp -a" is what people actually run; the
 * own copier does the same job with several threads at once, so that
 * creates, writes, links and attribute changes race inside the mount.
 */
#include "fsp-stress.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

int copy_cp(const char *src, const char *dst, struct phase *p)
{
	char *argv[] = { "/bin/cp", "-a", (char *)src, (char *)dst, NULL };
	int r = run_cmd(argv);

	p->ops++;
	if (r < 0) {
		fail_reason("cp -a: cannot run /bin/cp: %s", strerror(-r));
		return r;
	}
	/* cp only tells us "it failed"; a dead mount is worth naming. */
	CK(access(dst, F_OK));
	if (r) {
		fail_reason("cp -a exited with status %d", r);
		return -EIO;
	}
	return 0;
}

struct hl {
	struct hl *next;
	dev_t dev;
	ino_t ino;
	char *rel;
};

struct dpost {
	char *rel;
	struct stat st;
	int depth;
};

struct copier {
	const char *src, *dst;
	struct phase *p;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	char **q;
	size_t nq, capq, pending;
	struct dpost *post;
	size_t npost, cappost;
	pthread_mutex_t hl_mu;
	struct hl *hl[1024];
	_Atomic uint64_t files, dirs, syms, links, special;
};

struct dent64 {
	uint64_t ino;
	int64_t off;
	unsigned short reclen;
	unsigned char type;
	char name[];
};

static void cerr(struct copier *c, const char *op, const char *rel, int r)
{
	c->p->errors++;
	mismatch("own copy: %s %s: %s", op, *rel ? rel : ".", strerror(-r));
}

static void push_dir(struct copier *c, char *rel, const struct stat *st)
{
	int depth = 0;

	for (const char *s = rel; *s; s++)
		depth += *s == '/';
	pthread_mutex_lock(&c->mu);
	if (c->nq == c->capq) {
		c->capq = c->capq ? c->capq * 2 : 256;
		c->q = xrealloc(c->q, c->capq * sizeof(*c->q));
	}
	c->q[c->nq++] = rel;
	c->pending++;
	if (c->npost == c->cappost) {
		c->cappost = c->cappost ? c->cappost * 2 : 256;
		c->post = xrealloc(c->post, c->cappost * sizeof(*c->post));
	}
	c->post[c->npost++] = (struct dpost){ xstrdup(rel), *st, *rel ? depth : -1 };
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

/* user.* only: other namespaces need privileges or belong to security
 * modules, and the record only ever sets user.* attributes. */
static int copy_xattrs(int in, int out)
{
	char *list = NULL, *val = NULL;
	ssize_t len, vlen;
	int r = 0;

	len = CK(flistxattr(in, NULL, 0));
	if (len <= 0)
		return len == -ENOTSUP || len == -EOPNOTSUPP ? 0 : (int)len;
	list = xmalloc(len);
	len = CK(flistxattr(in, list, len));
	if (len < 0) {
		r = (int)len;
		goto out;
	}
	val = xmalloc(65536);
	for (char *n = list; n < list + len; n += strlen(n) + 1) {
		if (strncmp(n, "user.", 5))
			continue;
		vlen = CK(fgetxattr(in, n, val, 65536));
		if (vlen < 0) {
			r = (int)vlen;
			goto out;
		}
		r = CK(fsetxattr(out, n, val, vlen, 0));
		if (r < 0)
			goto out;
	}
out:
	free(list);
	free(val);
	return r;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	return !n || (!p[0] && !memcmp(p, p + 1, n - 1));
}

static int copy_data(struct copier *c, int in, int out, uint8_t *buf)
{
	off_t off = 0;
	int r;

	for (;;) {
		ssize_t n = pread_full(in, buf, FSS_BUF, off);

		if (n < 0)
			return (int)n;
		if (n == 0)
			break;
		/* Zero blocks become holes, as cp --sparse=auto would do. */
		for (ssize_t k = 0; k < n; k += FSS_HOLE_BLK) {
			size_t m = n - k < FSS_HOLE_BLK ? n - k : FSS_HOLE_BLK;

			if (m == FSS_HOLE_BLK && all_zero(buf + k, m))
				continue;
			r = pwrite_full(out, buf + k, m, off + k);
			if (r < 0)
				return r;
		}
		off += n;
		c->p->bytes += n;
	}
	return CK(ftruncate(out, off));
}

static int copy_file(struct copier *c, int sfd, int dfd, const char *name, const char *rel,
		     const struct stat *st, uint8_t *buf)
{
	struct timespec ts[2] = { st->st_atim, st->st_mtim };
	const char *op = "create";
	int in = -1, out = -1, r;
	struct hl *h = NULL;

	if (st->st_nlink > 1) {
		/* Decide link-or-create under the lock, and create before
		 * unlocking, so a second name can always link to the first. */
		size_t b = (st->st_ino ^ st->st_dev) % 1024;

		pthread_mutex_lock(&c->hl_mu);
		for (h = c->hl[b]; h && (h->ino != st->st_ino || h->dev != st->st_dev); h = h->next)
			;
		if (h) {
			char *target = path_cat(c->dst, h->rel);

			r = CK(linkat(AT_FDCWD, target, dfd, name, 0));
			free(target);
			pthread_mutex_unlock(&c->hl_mu);
			if (r < 0)
				cerr(c, "link", rel, r);
			c->links++;
			return r;
		}
		out = CK(openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
		if (out >= 0) {
			h = xmalloc(sizeof(*h));
			*h = (struct hl){ c->hl[b], st->st_dev, st->st_ino, xstrdup(rel) };
			c->hl[b] = h;
		}
		pthread_mutex_unlock(&c->hl_mu);
	} else {
		out = CK(openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
	}
	if (out < 0) {
		r = out;
		goto out;
	}
	op = "open source";
	in = CK(openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
	if (in < 0) {
		r = in;
		goto out;
	}
	op = "copy data";
	if ((r = copy_data(c, in, out, buf)) < 0)
		goto out;
	op = "copy xattrs";
	if ((r = copy_xattrs(in, out)) < 0)
		goto out;
	op = "fchmod";
	if ((r = CK(fchmod(out, st->st_mode & 07777))) < 0)
		goto out;
	op = "futimens";
	if ((r = CK(futimens(out, ts))) < 0)
		goto out;
	op = "close";
	r = CK(close(out));
	out = -1;
out:
	if (r < 0)
		cerr(c, op, rel, r);
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	c->files++;
	return r;
}

/* Copies one directory's entries; subdirectories go back to the queue.
 * Every error is reported where it happens; the first one is returned. */
static int copy_dir(struct copier *c, const char *rel, uint8_t *buf)
{
	char *sp = path_cat(c->src, rel), *dp = path_cat(c->dst, rel);
	char *dbuf = xmalloc(32768), tbuf[PATH_MAX];
	int sfd, dfd = -1, r, first = 0;

	sfd = CK(open(sp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
	if (sfd < 0) {
		cerr(c, "open source dir", rel, first = sfd);
		goto out;
	}
	dfd = CK(open(dp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
	if (dfd < 0) {
		cerr(c, "open dir", rel, first = dfd);
		goto out;
	}
	for (;;) {
		long nb = CK(syscall(SYS_getdents64, sfd, dbuf, 32768));

		if (nb < 0) {
			cerr(c, "getdents", rel, r = (int)nb);
			first = first ? first : r;
			break;
		}
		if (nb == 0)
			break;
		for (long pos = 0; pos < nb;) {
			struct dent64 *de = (void *)(dbuf + pos);
			const char *name = de->name;
			struct stat st;
			char *crel;

			pos += de->reclen;
			if (name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2])))
				continue;
			crel = *rel ? xasprintf("%s/%s", rel, name) : xstrdup(name);
			c->p->ops++;
			r = CK(fstatat(sfd, name, &st, AT_SYMLINK_NOFOLLOW));
			if (r < 0) {
				cerr(c, "stat", crel, r);
			} else if (S_ISDIR(st.st_mode)) {
				r = CK(mkdirat(dfd, name, 0700));
				if (r < 0) {
					cerr(c, "mkdir", crel, r);
				} else {
					c->dirs++;
					push_dir(c, crel, &st);
					crel = NULL;	/* owned by the queue now */
				}
			} else if (S_ISREG(st.st_mode)) {
				r = copy_file(c, sfd, dfd, name, crel, &st, buf);
			} else if (S_ISLNK(st.st_mode)) {
				ssize_t n = CK(readlinkat(sfd, name, tbuf, PATH_MAX - 1));

				if (n < 0) {
					cerr(c, "readlink", crel, r = (int)n);
				} else {
					tbuf[n] = 0;
					r = CK(symlinkat(tbuf, dfd, name));
					if (r < 0)
						cerr(c, "symlink", crel, r);
					c->syms++;
				}
			} else {
				struct timespec ts[2] = { st.st_atim, st.st_mtim };

				r = CK(mknodat(dfd, name, st.st_mode & (S_IFMT | 07777), st.st_rdev));
				if (!r)
					r = CK(utimensat(dfd, name, ts, AT_SYMLINK_NOFOLLOW));
				if (r < 0)
					cerr(c, "mknod", crel, r);
				c->special++;
			}
			first = first ? first : (r < 0 ? r : 0);
			free(crel);
		}
	}
out:
	if (sfd >= 0)
		close(sfd);
	if (dfd >= 0)
		close(dfd);
	free(sp);
	free(dp);
	free(dbuf);
	return first;
}

static void *worker(void *arg)
{
	struct copier *c = arg;
	uint8_t *buf = xmalloc(FSS_BUF);

	for (;;) {
		char *rel;

		pthread_mutex_lock(&c->mu);
		while (!c->nq && c->pending)
			pthread_cond_wait(&c->cv, &c->mu);
		if (!c->nq) {
			pthread_mutex_unlock(&c->mu);
			break;
		}
		rel = c->q[--c->nq];
		pthread_mutex_unlock(&c->mu);
		copy_dir(c, rel, buf);
		free(rel);
		pthread_mutex_lock(&c->mu);
		if (!--c->pending)
			pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&c->mu);
	}
	free(buf);
	return NULL;
}

static int deeper_first(const void *a, const void *b)
{
	const struct dpost *x = a, *y = b;

	return (y->depth > x->depth) - (y->depth < x->depth);
}

/* Directory attributes last and deepest first: creating children changes
 * a directory's mtime, and a restrictive mode could block the children. */
static void finish_dirs(struct copier *c)
{
	qsort(c->post, c->npost, sizeof(*c->post), deeper_first);
	for (size_t i = 0; i < c->npost; i++) {
		struct dpost *d = &c->post[i];
		struct timespec ts[2] = { d->st.st_atim, d->st.st_mtim };
		char *sp = path_cat(c->src, d->rel), *dp = path_cat(c->dst, d->rel);
		int in = CK(open(sp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
		int out = CK(open(dp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
		const char *op = "open dir";
		int r = in < 0 ? in : out;

		if (r >= 0) {
			op = "copy xattrs";
			r = copy_xattrs(in, out);
		}
		if (r >= 0) {
			op = "fchmod";
			r = CK(fchmod(out, d->st.st_mode & 07777));
		}
		if (r >= 0) {
			op = "futimens";
			r = CK(futimens(out, ts));
		}
		if (r < 0)
			cerr(c, op, d->rel, r);
		if (in >= 0)
			close(in);
		if (out >= 0)
			close(out);
		c->p->ops++;
		free(sp);
		free(dp);
		free(d->rel);
	}
}

int copy_own(const char *src, const char *dst, unsigned threads, struct phase *p)
{
	struct copier c = { .src = src, .dst = dst, .p = p };
	pthread_t *tids = xcalloc(threads, sizeof(*tids));
	unsigned started = 0;
	struct stat st;
	int r;

	pthread_mutex_init(&c.mu, NULL);
	pthread_cond_init(&c.cv, NULL);
	pthread_mutex_init(&c.hl_mu, NULL);
	r = CK(lstat(src, &st));
	if (r < 0) {
		cerr(&c, "stat", src, r);
		goto out;
	}
	r = CK(mkdir(dst, 0700));
	if (r < 0) {
		cerr(&c, "mkdir", dst, r);
		goto out;
	}
	push_dir(&c, xstrdup(""), &st);
	for (; started < threads; started++)
		if (pthread_create(&tids[started], NULL, worker, &c))
			break;
	if (!started)
		worker(&c);
	for (unsigned i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	finish_dirs(&c);
	phase_set(p, "dirs", c.dirs);
	phase_set(p, "files", c.files);
	phase_set(p, "hardlinks", c.links);
	phase_set(p, "symlinks", c.syms);
	phase_set(p, "fifos", c.special);
	r = p->errors ? -EIO : 0;
out:
	for (size_t b = 0; b < 1024; b++)
		while (c.hl[b]) {
			struct hl *h = c.hl[b];

			c.hl[b] = h->next;
			free(h->rel);
			free(h);
		}
	free(c.q);
	free(c.post);
	free(tids);
	pthread_mutex_destroy(&c.mu);
	pthread_cond_destroy(&c.cv);
	pthread_mutex_destroy(&c.hl_mu);
	return r;
}
