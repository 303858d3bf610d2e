/*
 * fsp-stress: the tree generator and its record.
 *
 * The plan is a pure function of the seed, so a failing run can be
 * reproduced exactly with --seed.  The record — not the source tree — is
 * the reference every copy is verified against: a file system that
 * corrupts the source and the copy the same way must still fail.
 */
#include "fsp-stress.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#define NAME_MAX_BYTES 255
#define LONG_TARGET 1024	/* FUSE caps symlink targets at a page; stay well inside */

static const char *words[] = {
	"alpha", "beta", "report", "data", "notes", "img", "backup", "final", "copy",
	"draft", "x", "readme", "cache", "src", "lib", "test", "Makefile", "q",
};
static const char *utf8[] = {
	"é", "ü", "ß", "Ω", "日本", "語", "🙂", "ñ", "ø", "Ж", "€", "你好", "ä", "ﬁ", "𝄞",
};
static const char *exts[] = {
	".txt", ".c", ".tar.gz", ".bin", ".jpg", ".md", "", ".", ".d.e.f", ".o",
};
static const char misc_chars[] = "-_+=()[]{}@#$%^&',;! ";
static const mode_t file_modes[] = {
	0644, 0600, 0640, 0755, 0700, 0444, 0400, 0664, 0666, 0604, 0750, 0711,
};
static const mode_t dir_modes[] = { 0755, 0700, 0750, 0775, 0711, 01777, 01755, 0777 };
static const mode_t fifo_modes[] = { 0644, 0600, 0666, 0640 };

#define PICK(r, a) ((a)[rng_below((r), sizeof(a) / sizeof((a)[0]))])

struct sbuf {
	char b[1024];
	size_t n;
};

static void sb_add(struct sbuf *s, const char *t)
{
	size_t k = strlen(t);

	if (s->n + k >= sizeof(s->b))
		k = sizeof(s->b) - 1 - s->n;
	memcpy(s->b + s->n, t, k);
	s->n += k;
	s->b[s->n] = 0;
}

/* Cut to at most n bytes without splitting a UTF-8 sequence. */
static void sb_cut(struct sbuf *s, size_t n)
{
	if (s->n <= n)
		return;
	while (n && ((unsigned char)s->b[n] & 0xc0) == 0x80)
		n--;
	s->n = n;
	s->b[n] = 0;
}

static void sb_random_piece(struct sbuf *s, struct rng *r)
{
	switch (rng_below(r, 4)) {
	case 0: sb_add(s, PICK(r, utf8)); break;
	case 1: sb_add(s, " "); break;
	default: sb_add(s, PICK(r, words)); break;
	}
}

/*
 * A name for entry IDX of at most MAXLEN bytes.  Every name carries the
 * entry index, which keeps names unique per directory no matter what the
 * decoration came out as; the decoration is what exercises the file system
 * (spaces, UTF-8, dot games, 255-byte names).  NULL if MAXLEN is too small.
 */
static char *make_name(struct rng *r, uint32_t idx, size_t maxlen, bool dir)
{
	const char *ext = dir ? "" : PICK(r, exts);
	struct sbuf s = { .n = 0 };
	unsigned cat = rng_below(r, 100);
	char tok[16];
	size_t tl;

	if (maxlen > NAME_MAX_BYTES)
		maxlen = NAME_MAX_BYTES;
	tl = snprintf(tok, sizeof(tok), "_%x", idx);
	if (maxlen < tl + 1)
		return NULL;
	s.b[0] = 0;
	if (cat < 35) {
		sb_add(&s, PICK(r, words));
		sb_add(&s, tok);
		sb_add(&s, ext);
	} else if (cat < 50) {
		sb_add(&s, PICK(r, words));
		sb_add(&s, " ");
		sb_add(&s, PICK(r, words));
		sb_add(&s, " ");
		sb_add(&s, tok);
		sb_add(&s, ext);
	} else if (cat < 62) {
		sb_add(&s, PICK(r, utf8));
		sb_add(&s, PICK(r, words));
		sb_add(&s, PICK(r, utf8));
		sb_add(&s, tok);
		sb_add(&s, ext);
	} else if (cat < 72) {
		switch (rng_below(r, 5)) {
		case 0: sb_add(&s, "."); sb_add(&s, PICK(r, words)); sb_add(&s, tok); break;
		case 1: sb_add(&s, PICK(r, words)); sb_add(&s, ".."); sb_add(&s, tok); break;
		case 2: sb_add(&s, PICK(r, words)); sb_add(&s, tok); sb_add(&s, "."); break;
		case 3: sb_add(&s, "..."); sb_add(&s, tok); break;
		default: sb_add(&s, ".."); sb_add(&s, tok); sb_add(&s, ".tar.gz"); break;
		}
	} else if (cat < 88) {
		/* Long names; some exactly at NAME_MAX, which is where length
		 * checks in a FUSE implementation are most likely off by one. */
		size_t want = cat < 82 ? 100 + rng_below(r, 156) : NAME_MAX_BYTES;

		if (want > maxlen)
			want = maxlen;
		while (s.n + tl < want)
			sb_random_piece(&s, r);
		sb_cut(&s, want - tl);
		while (s.n + tl < want)
			sb_add(&s, "x");
		sb_add(&s, tok);
	} else {
		sb_add(&s, PICK(r, words));
		for (unsigned k = 1 + rng_below(r, 8); k; k--) {
			char c[2] = { misc_chars[rng_below(r, sizeof(misc_chars) - 1)], 0 };

			sb_add(&s, c);
		}
		sb_add(&s, tok);
	}
	if (s.n > maxlen) {
		s.n = 0;
		s.b[0] = 0;
		sb_add(&s, dir ? "d" : "f");
		sb_add(&s, tok);
		if (s.n > maxlen)
			return NULL;
	}
	return xstrdup(s.b);
}

static struct timespec rand_time(struct rng *r)
{
	unsigned c = rng_below(r, 100);
	struct timespec ts;

	if (c < 3) {
		ts.tv_sec = 1 + rng_below(r, 100);	/* near the epoch */
		ts.tv_nsec = 0;
	} else if (c < 6) {
		/* Past 2038 and past 2100: 32-bit time handling shows up here. */
		ts.tv_sec = 4102444800LL + rng_below(r, 3155760000ULL);
		ts.tv_nsec = rng_below(r, 1000000000);
	} else if (c < 10) {
		ts.tv_sec = 978307200LL + rng_below(r, 946728000ULL);
		ts.tv_nsec = rng_pct(r, 50) ? 0 : 999999999;
	} else {
		ts.tv_sec = 978307200LL + rng_below(r, 946728000ULL);
		ts.tv_nsec = rng_below(r, 1000000000);
	}
	return ts;
}

/* At most ~2 KB of names and values per inode: ext4 keeps all of an
 * inode's xattrs in one 4 KiB block, and the point is to test the file
 * system under test, not to find everyone's xattr size limit. */
#define XATTR_BUDGET 2000

static void rand_xattrs(struct rng *r, struct entry *e)
{
	size_t budget = XATTR_BUDGET;

	e->nxattr = 1 + rng_below(r, 3);
	e->xattrs = xcalloc(e->nxattr, sizeof(*e->xattrs));
	for (unsigned i = 0; i < e->nxattr; i++) {
		struct xattr *x = &e->xattrs[i];
		unsigned c = rng_below(r, 100);
		size_t cost;

		if (rng_pct(r, 20)) {
			char pad[161];

			memset(pad, 'n', 160);
			pad[160] = 0;
			x->name = xasprintf("user.fsp.%u.%s", i, pad);
		} else {
			x->name = xasprintf("user.fsp.%u", i);
		}
		x->len = c < 10 ? 0 : c < 70 ? rng_below(r, 64) : c < 95 ? 64 + rng_below(r, 960)
									   : 1024 + rng_below(r, 900);
		cost = strlen(x->name) + 16;
		budget = budget > cost ? budget - cost : 0;
		if (x->len > budget)
			x->len = budget;
		budget -= x->len;
		x->val = xmalloc(x->len);
		for (uint32_t k = 0; k < x->len; k++)
			x->val[k] = (uint8_t)rng_next(r);
	}
}

static struct entry *add(struct record *rec, uint8_t type, uint32_t parent, char *name)
{
	struct entry *e;

	if (rec->n == rec->cap) {
		rec->cap = rec->cap ? rec->cap * 2 : 1024;
		rec->ents = xrealloc(rec->ents, rec->cap * sizeof(*rec->ents));
	}
	e = &rec->ents[rec->n++];
	memset(e, 0, sizeof(*e));
	e->type = type;
	e->primary = -1;
	if (name) {
		const struct entry *pe = &rec->ents[parent];

		e->path = path_cat(pe->path, name);
		if (!*pe->path) {
			free(e->path);
			e->path = xstrdup(name);
		}
		e->depth = pe->depth + 1;
		free(name);
	} else {
		e->path = xstrdup("");
	}
	return e;
}

/* Name a new child of PARENT within the path budget, or fail so that the
 * caller can pick a shallower parent. */
static char *child_name(struct record *rec, struct rng *r, uint32_t parent, size_t max_path,
			bool dir)
{
	size_t used = strlen(rec->ents[parent].path) + 1;

	if (used >= max_path)
		return NULL;
	return make_name(r, (uint32_t)rec->n, max_path - used, dir);
}

static uint64_t rand_size(struct rng *r, uint64_t max, bool *sparse, bool *first_large)
{
	unsigned c = rng_below(r, 1000);
	uint64_t sz;

	*sparse = false;
	if (c < 60) {
		sz = 0;
	} else if (c < 840) {
		sz = 1 + rng_below(r, 4096);
	} else if (c < 995 || max <= 65536) {
		sz = 4097 + rng_below(r, 65536 - 4096);
	} else {
		/* Log-uniform between 64 KiB and max: a few really big ones,
		 * and the very first one exactly max so the limit is always hit. */
		uint64_t lo = 65537, span = max - lo + 1;

		if (*first_large) {
			sz = max;
			*first_large = false;
		} else {
			unsigned bits = 0;

			while ((span >> bits) > 1)
				bits++;
			sz = lo + rng_below(r, (1ULL << rng_below(r, bits + 1)));
		}
		*sparse = sz >= 2 * FSS_HOLE_BLK && rng_pct(r, 50);
	}
	return sz > max ? max : sz;
}

static char *rel_target(const char *from_dir, const char *to)
{
	const char *a = from_dir, *b = to;
	size_t ups = 0;
	struct sbuf s = { .n = 0 };

	s.b[0] = 0;
	/* Skip the common leading components. */
	for (;;) {
		size_t la = strcspn(a, "/"), lb = strcspn(b, "/");

		if (!*a || !*b || la != lb || memcmp(a, b, la))
			break;
		a += la + (a[la] == '/');
		b += lb + (b[lb] == '/');
	}
	if (*a)
		for (ups = 1; *a; a++)
			ups += *a == '/';
	while (ups--)
		sb_add(&s, "../");
	sb_add(&s, b);
	if (!s.n)
		sb_add(&s, ".");
	else if (s.b[s.n - 1] == '/')
		s.b[--s.n] = 0;
	return xstrdup(s.b);
}

static char *parent_path(const char *p)
{
	const char *sl = strrchr(p, '/');

	return sl ? strndup(p, sl - p) : xstrdup("");
}

static uint64_t hash_path(const char *p, size_t len)
{
	struct fh h;

	fh_init(&h);
	fh_update(&h, p, len);
	return fh_final(&h);
}

long rec_lookup(const struct record *rec, const char *path, size_t len)
{
	size_t mask = rec->index_cap - 1, i = hash_path(path, len) & mask;

	for (; rec->index[i]; i = (i + 1) & mask) {
		const struct entry *e = &rec->ents[rec->index[i] - 1];

		if (!strncmp(e->path, path, len) && !e->path[len])
			return rec->index[i] - 1;
	}
	return -1;
}

static void build_index(struct record *rec)
{
	size_t mask;

	rec->index_cap = 1024;
	while (rec->index_cap < 2 * rec->n)
		rec->index_cap *= 2;
	rec->index = xcalloc(rec->index_cap, sizeof(*rec->index));
	mask = rec->index_cap - 1;
	for (size_t k = 0; k < rec->n; k++) {
		size_t i = hash_path(rec->ents[k].path, strlen(rec->ents[k].path)) & mask;

		while (rec->index[i])
			i = (i + 1) & mask;
		rec->index[i] = (uint32_t)k + 1;
	}
}

int gen_plan(struct record *rec, uint64_t seed, size_t max_path)
{
	uint32_t *cand = xmalloc((opt.dirs + 1) * sizeof(*cand)), *alldirs;
	size_t ncand = 0, nall = 0, first_file, nfiles_plan;
	bool first_large = true;
	uint32_t wide = 0;
	struct entry *e;
	struct rng r;

	memset(rec, 0, sizeof(*rec));
	rec->seed = seed;
	rng_seed(&r, seed);
	alldirs = xmalloc((opt.dirs + 1) * sizeof(*alldirs));

	e = add(rec, ET_DIR, 0, NULL);
	e->mode = 0755;
	e->mtime = rand_time(&r);
	e->atime = rand_time(&r);
	cand[ncand++] = 0;
	alldirs[nall++] = 0;

	/* Directories: first one chain to the full depth so --depth is really
	 * reached, then a mix of uniform parents and recently made ones (which
	 * gives both bushy and deep subtrees). */
	for (unsigned d = 0; d < opt.dirs; d++) {
		uint32_t parent;
		char *name = NULL;

		if (d < opt.depth)
			parent = d == 0 ? 0 : (uint32_t)rec->n - 1;
		else if (rng_pct(&r, 50) || ncand < 16)
			parent = cand[rng_below(&r, ncand)];
		else
			parent = cand[ncand - 1 - rng_below(&r, 16)];
		name = child_name(rec, &r, parent, max_path, true);
		if (!name) {
			parent = 0;
			name = child_name(rec, &r, parent, max_path, true);
		}
		if (!name) {
			free(cand);
			free(alldirs);
			return -ENAMETOOLONG;
		}
		e = add(rec, ET_DIR, parent, name);
		e->mode = rng_pct(&r, 70) ? 0755 : PICK(&r, dir_modes);
		e->mtime = rand_time(&r);
		e->atime = rand_time(&r);
		if (rng_pct(&r, 10))
			rand_xattrs(&r, e);
		if (e->depth < opt.depth)
			cand[ncand++] = (uint32_t)rec->n - 1;
		alldirs[nall++] = (uint32_t)rec->n - 1;
		if (!wide && e->depth == 1 && d >= opt.depth)
			wide = (uint32_t)rec->n - 1;
		rec->ndirs++;
	}
	free(cand);

	/* One wide directory collects ~8% of the files: large readdir
	 * listings need several getdents calls, which is where FUSE readdir
	 * offset handling breaks. */
	first_file = rec->n;
	nfiles_plan = opt.files;
	for (size_t f = 0; f < nfiles_plan; f++) {
		uint32_t parent = wide && opt.files >= 1000 && rng_pct(&r, 8)
					  ? wide : alldirs[rng_below(&r, nall)];
		char *name = child_name(rec, &r, parent, max_path, false);
		bool sparse;

		if (!name)
			name = child_name(rec, &r, parent = 0, max_path, false);
		if (!name)
			goto toolong;
		e = add(rec, ET_FILE, parent, name);
		e->size = rand_size(&r, opt.max_size, &sparse, &first_large);
		e->sparse = sparse;
		e->key = content_key(seed, rec->n - 1);
		e->mode = rng_pct(&r, 60) ? 0644 : PICK(&r, file_modes);
		e->mtime = rand_time(&r);
		e->atime = rand_time(&r);
		e->nlink = 1;
		if (rng_pct(&r, 10))
			rand_xattrs(&r, e);
		rec->nfiles++;
		rec->bytes += e->size;
	}

	/* Symlinks: most point at something that exists (relative, so they
	 * stay valid in every copy); the rest dangle, a few with long targets. */
	for (size_t s = 0; s < opt.files / 20; s++) {
		uint32_t parent = alldirs[rng_below(&r, nall)];
		char *name = child_name(rec, &r, parent, max_path, false), *pdir;
		unsigned c = rng_below(&r, 100);

		if (!name)
			goto toolong;
		e = add(rec, ET_SYMLINK, parent, name);
		e->mode = 0777;
		pdir = parent_path(e->path);
		if (c < 65 && rec->n > 2) {
			const char *to = rec->ents[1 + rng_below(&r, rec->n - 2)].path;

			e->target = rel_target(pdir, to);
			if (strlen(e->target) > LONG_TARGET) {
				free(e->target);
				e->target = xasprintf("dangling_%zx", rec->n);
			}
		} else if (c < 80) {
			e->target = xasprintf("missing_%zx", rec->n);
		} else if (c < 92) {
			e->target = xasprintf("../gone %zx/ü/x", rec->n);
		} else {
			struct sbuf sb = { .n = 0 };

			sb.b[0] = 0;
			while (sb.n < LONG_TARGET - 40)
				sb_add(&sb, rng_pct(&r, 50) ? "deep/" : "tiefer/");
			sb_add(&sb, "nowhere");
			e->target = xstrdup(sb.b);
		}
		free(pdir);
		rec->nsym++;
	}

	/* Hard links, some to files that already have one (link count 3+). */
	for (size_t h = 0; rec->nfiles && h < opt.files / 40; h++) {
		uint32_t prim = (uint32_t)(first_file + rng_below(&r, rec->nfiles));
		uint32_t parent = alldirs[rng_below(&r, nall)];
		char *name = child_name(rec, &r, parent, max_path, false);

		if (!name)
			goto toolong;
		rec->ents[prim].nlink++;
		e = add(rec, ET_HARDLINK, parent, name);
		e->primary = (int32_t)prim;
		rec->nhard++;
	}

	for (size_t q = 0; q < (opt.files ? opt.files / 500 + 1 : 0) && q < 32; q++) {
		uint32_t parent = alldirs[rng_below(&r, nall)];
		char *name = child_name(rec, &r, parent, max_path, false);

		if (!name)
			goto toolong;
		e = add(rec, ET_FIFO, parent, name);
		e->mode = PICK(&r, fifo_modes);
		e->mtime = rand_time(&r);
		e->atime = rand_time(&r);
		rec->nfifo++;
	}
	free(alldirs);
	build_index(rec);
	return 0;
toolong:
	free(alldirs);
	return -ENAMETOOLONG;
}

static bool xattr_unsupported(int e)
{
	return e == -ENOTSUP || e == -EOPNOTSUPP;
}

static int set_xattrs(struct record *rec, const struct entry *e, int fd, const char *path)
{
	for (unsigned i = 0; rec->xattrs_ok && i < e->nxattr; i++) {
		const struct xattr *x = &e->xattrs[i];
		int r = fd >= 0 ? CK(fsetxattr(fd, x->name, x->val, x->len, XATTR_CREATE))
				: CK(lsetxattr(path, x->name, x->val, x->len, XATTR_CREATE));

		if (xattr_unsupported(r)) {
			rec->xattrs_ok = false;
			note("xattrs are not supported here (%s); skipping xattr checks",
			     strerror(-r));
			return 0;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

static int make_file(struct record *rec, struct entry *e, const char *full, uint8_t *buf,
		     struct phase *p)
{
	struct timespec ts[2] = { e->atime, e->mtime };
	const char *what = "create";
	struct fh h;
	int fd, r = 0;

	fd = CK(open(full, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
	if (fd < 0)
		return fd;
	fh_init(&h);
	if (e->sparse && (r = CK(ftruncate(fd, (off_t)e->size))) < 0) {
		what = "ftruncate";
		goto out;
	}
	for (uint64_t off = 0; off < e->size;) {
		size_t n = e->size - off < FSS_BUF ? e->size - off : FSS_BUF;

		content_fill(e->key, e->sparse, off, buf, n);
		fh_update(&h, buf, n);
		what = "write";
		if (!e->sparse) {
			r = pwrite_full(fd, buf, n, (off_t)off);
			if (r < 0)
				goto out;
		} else {
			/* Leave holes where the content is zero by construction. */
			for (size_t k = 0; k < n; k += FSS_HOLE_BLK) {
				size_t m = n - k < FSS_HOLE_BLK ? n - k : FSS_HOLE_BLK;

				if (content_hole(e->key, (off + k) / FSS_HOLE_BLK))
					continue;
				r = pwrite_full(fd, buf + k, m, (off_t)(off + k));
				if (r < 0)
					goto out;
			}
		}
		off += n;
		p->bytes += n;
	}
	e->hash = fh_final(&h);
	what = "setxattr";
	if ((r = set_xattrs(rec, e, fd, full)) < 0)
		goto out;
	what = "fchmod";
	if ((r = CK(fchmod(fd, e->mode))) < 0)
		goto out;
	what = "futimens";
	r = CK(futimens(fd, ts));
out:
	if (r < 0) {
		mismatch("generate: %s %s: %s", what, e->path, strerror(-r));
		close(fd);
		return r;
	}
	r = CK(close(fd));
	if (r < 0)
		mismatch("generate: close %s: %s", e->path, strerror(-r));
	return r;
}

int gen_materialize(struct record *rec, const char *root, struct phase *p)
{
	uint8_t *buf = xmalloc(FSS_BUF);
	char *full = NULL;
	int r = 0;

	rec->xattrs_ok = true;
	for (size_t i = 0; i < rec->n; i++) {
		struct entry *e = &rec->ents[i];
		struct timespec ts[2] = { e->atime, e->mtime };
		const char *what = "mkdir";

		full = path_cat(root, e->path);
		switch (e->type) {
		case ET_DIR:
			/* Permissions and times come last: children change them. */
			r = CK(mkdir(full, 0700));
			break;
		case ET_FILE:
			r = make_file(rec, e, full, buf, p);
			if (r < 0)
				goto out;
			break;
		case ET_SYMLINK:
			what = "symlink";
			r = CK(symlink(e->target, full));
			break;
		case ET_HARDLINK: {
			char *pf = path_cat(root, rec->ents[e->primary].path);

			what = "link";
			r = CK(link(pf, full));
			free(pf);
			break;
		}
		case ET_FIFO:
			what = "mkfifo";
			r = CK(mkfifo(full, e->mode));
			if (!r) {
				what = "utimensat";
				r = CK(utimensat(AT_FDCWD, full, ts, AT_SYMLINK_NOFOLLOW));
			}
			break;
		}
		p->ops++;
		if (r < 0) {
			mismatch("generate: %s %s: %s", what, *e->path ? e->path : ".", strerror(-r));
			goto out;
		}
		free(full);
		full = NULL;
	}
	/* Children before parents, so setting a directory's times is the last
	 * thing that touches it. */
	for (size_t i = rec->n; i-- > 0;) {
		struct entry *e = &rec->ents[i];
		struct timespec ts[2] = { e->atime, e->mtime };
		const char *what = "setxattr";

		if (e->type != ET_DIR)
			continue;
		full = path_cat(root, e->path);
		r = set_xattrs(rec, e, -1, full);
		if (!r) {
			what = "chmod";
			r = CK(chmod(full, e->mode));
		}
		if (!r) {
			what = "utimensat";
			r = CK(utimensat(AT_FDCWD, full, ts, AT_SYMLINK_NOFOLLOW));
		}
		p->ops++;
		if (r < 0) {
			mismatch("generate: %s %s: %s", what, *e->path ? e->path : ".", strerror(-r));
			goto out;
		}
		free(full);
		full = NULL;
	}
out:
	free(full);
	free(buf);
	return r;
}

void gen_free(struct record *rec)
{
	for (size_t i = 0; i < rec->n; i++) {
		struct entry *e = &rec->ents[i];

		free(e->path);
		free(e->target);
		for (unsigned k = 0; k < e->nxattr; k++) {
			free(e->xattrs[k].name);
			free(e->xattrs[k].val);
		}
		free(e->xattrs);
	}
	free(rec->ents);
	free(rec->index);
	memset(rec, 0, sizeof(*rec));
}
