/*
 * fsp-stress: verification of a tree against the generator's record.
 *
 * Each entry is checked on its own (type, mode, size, mtime to the
 * nanosecond, link count, content hash, symlink target, user.* xattrs) and
 * each directory is listed to catch entries that should not be there.
 * Hard links are checked last by comparing inode numbers.
 */
#include "fsp-stress.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

struct vctx {
	const struct record *rec;
	const char *root, *label;
	struct phase *p;
	_Atomic size_t next;
	ino_t *inos;
};

__attribute__((format(printf, 3, 4)))
static void bad(struct vctx *v, const struct entry *e, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	v->p->errors++;
	mismatch("verify %s: %s: %s", v->label, *e->path ? e->path : ".", s ? s : "?");
	free(s);
}

static const char *type_name(mode_t m)
{
	return S_ISREG(m) ? "file" : S_ISDIR(m) ? "directory" : S_ISLNK(m) ? "symlink"
	     : S_ISFIFO(m) ? "fifo" : "special file";
}

static bool type_ok(const struct entry *e, mode_t m)
{
	switch (e->type) {
	case ET_DIR: return S_ISDIR(m);
	case ET_FILE:
	case ET_HARDLINK: return S_ISREG(m);
	case ET_SYMLINK: return S_ISLNK(m);
	default: return S_ISFIFO(m);
	}
}

/* Re-read and compare with the regenerated stream to say *where* the data
 * went wrong; only runs after a hash mismatch. */
static void locate_diff(struct vctx *v, const struct entry *e, const char *full, uint8_t *buf)
{
	uint8_t *want = xmalloc(FSS_BUF);
	int fd = CK(open(full, O_RDONLY | O_NOFOLLOW | O_CLOEXEC));

	for (uint64_t off = 0; fd >= 0;) {
		ssize_t n = pread_full(fd, buf, FSS_BUF, (off_t)off);

		if (n <= 0)
			break;
		content_fill(e->key, e->sparse, off, want, n);
		for (ssize_t k = 0; k < n; k++)
			if (buf[k] != want[k]) {
				bad(v, e, "content differs at offset %llu (0x%02x, expected 0x%02x)",
				    (unsigned long long)(off + k), buf[k], want[k]);
				goto out;
			}
		off += n;
	}
	bad(v, e, "content hash differs, but a re-read matched (unstable reads?)");
out:
	if (fd >= 0)
		close(fd);
	free(want);
}

static void check_content(struct vctx *v, const struct entry *e, const char *full, uint8_t *buf)
{
	uint64_t off = 0;
	struct fh h;
	int fd;

	fd = CK(open(full, O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
	if (fd < 0) {
		bad(v, e, "open: %s", strerror(-fd));
		return;
	}
	fh_init(&h);
	for (;;) {
		ssize_t n = pread_full(fd, buf, FSS_BUF, (off_t)off);

		if (n < 0) {
			bad(v, e, "read at %llu: %s", (unsigned long long)off, strerror((int)-n));
			close(fd);
			return;
		}
		if (n == 0)
			break;
		fh_update(&h, buf, n);
		off += n;
		v->p->bytes += n;
	}
	close(fd);
	if (off != e->size)
		bad(v, e, "read %llu bytes, expected %llu", (unsigned long long)off,
		    (unsigned long long)e->size);
	else if (fh_final(&h) != e->hash)
		locate_diff(v, e, full, buf);
}

static void check_xattrs(struct vctx *v, const struct entry *e, const char *full)
{
	char *list = NULL, *val = xmalloc(65536);
	bool *seen = xcalloc(e->nxattr + 1, sizeof(*seen));
	ssize_t len = CK(llistxattr(full, NULL, 0));

	if (len > 0) {
		list = xmalloc(len);
		len = CK(llistxattr(full, list, len));
	}
	if (len < 0) {
		bad(v, e, "listxattr: %s", strerror((int)-len));
		goto out;
	}
	for (char *n = list; n && n < list + len; n += strlen(n) + 1) {
		unsigned k;
		ssize_t vl;

		if (strncmp(n, "user.", 5))
			continue;
		for (k = 0; k < e->nxattr && strcmp(e->xattrs[k].name, n); k++)
			;
		if (k == e->nxattr) {
			bad(v, e, "unexpected xattr %.40s", n);
			continue;
		}
		seen[k] = true;
		vl = CK(lgetxattr(full, n, val, 65536));
		if (vl < 0)
			bad(v, e, "getxattr %.40s: %s", n, strerror((int)-vl));
		else if ((size_t)vl != e->xattrs[k].len || memcmp(val, e->xattrs[k].val, vl))
			bad(v, e, "xattr %.40s: value differs (%zd bytes, expected %u)", n, vl,
			    e->xattrs[k].len);
	}
	for (unsigned k = 0; k < e->nxattr; k++)
		if (!seen[k])
			bad(v, e, "missing xattr %.40s", e->xattrs[k].name);
out:
	free(list);
	free(val);
	free(seen);
}

static void check_listing(struct vctx *v, const struct entry *e, const char *full)
{
	char **names;
	size_t n;
	int r = dir_entries(full, &names, &n);

	if (r < 0) {
		bad(v, e, "readdir: %s", strerror(-r));
		return;
	}
	for (size_t i = 0; i < n; i++) {
		char *rel = *e->path ? xasprintf("%s/%s", e->path, names[i]) : xstrdup(names[i]);

		if (rec_lookup(v->rec, rel, strlen(rel)) < 0)
			bad(v, e, "unexpected entry \"%s\"", names[i]);
		free(rel);
	}
	free_names(names, n);
}

static void check_entry(struct vctx *v, size_t i, uint8_t *buf)
{
	const struct entry *e = &v->rec->ents[i];
	const struct entry *pe = e->type == ET_HARDLINK ? &v->rec->ents[e->primary] : e;
	char *full = path_cat(v->root, e->path);
	struct stat st;
	int r;

	v->p->ops++;
	r = CK(lstat(full, &st));
	if (r < 0) {
		bad(v, e, "%s", r == -ENOENT ? "missing" : strerror(-r));
		goto out;
	}
	if (!type_ok(e, st.st_mode)) {
		bad(v, e, "is a %s", type_name(st.st_mode));
		goto out;
	}
	v->inos[i] = st.st_ino;
	if (e->type != ET_SYMLINK && (st.st_mode & 07777) != pe->mode)
		bad(v, e, "mode %04o, expected %04o", st.st_mode & 07777, pe->mode);
	if (e->type != ET_SYMLINK && (st.st_mtim.tv_sec != pe->mtime.tv_sec ||
				      st.st_mtim.tv_nsec != pe->mtime.tv_nsec))
		bad(v, e, "mtime %lld.%09ld, expected %lld.%09ld", (long long)st.st_mtim.tv_sec,
		    st.st_mtim.tv_nsec, (long long)pe->mtime.tv_sec, pe->mtime.tv_nsec);
	switch (e->type) {
	case ET_FILE:
	case ET_HARDLINK:
		if ((uint64_t)st.st_size != pe->size)
			bad(v, e, "size %lld, expected %llu", (long long)st.st_size,
			    (unsigned long long)pe->size);
		if (st.st_nlink != pe->nlink)
			bad(v, e, "link count %lu, expected %u", (unsigned long)st.st_nlink, pe->nlink);
		if (e->type == ET_FILE) {
			check_content(v, e, full, buf);
			if (v->rec->xattrs_ok)
				check_xattrs(v, e, full);
		}
		break;
	case ET_DIR:
		if (v->rec->xattrs_ok)
			check_xattrs(v, e, full);
		check_listing(v, e, full);
		break;
	case ET_SYMLINK: {
		char t[PATH_MAX];
		ssize_t n = CK(readlink(full, t, sizeof(t) - 1));

		if (n < 0) {
			bad(v, e, "readlink: %s", strerror((int)-n));
		} else {
			t[n] = 0;
			if (strcmp(t, e->target))
				bad(v, e, "symlink target \"%.60s\", expected \"%.60s\"", t, e->target);
		}
		break;
	}
	}
out:
	free(full);
}

static void *vworker(void *arg)
{
	struct vctx *v = arg;
	uint8_t *buf = xmalloc(FSS_BUF);

	for (size_t i; (i = v->next++) < v->rec->n;)
		check_entry(v, i, buf);
	free(buf);
	return NULL;
}

int verify_tree(const struct record *rec, const char *root, const char *label,
		unsigned threads, struct phase *p)
{
	struct vctx v = { .rec = rec, .root = root, .label = label, .p = p };
	pthread_t *tids = xcalloc(threads, sizeof(*tids));
	unsigned started = 0;

	v.inos = xcalloc(rec->n, sizeof(*v.inos));
	for (; started < threads; started++)
		if (pthread_create(&tids[started], NULL, vworker, &v))
			break;
	if (!started)
		vworker(&v);
	for (unsigned i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	for (size_t i = 0; i < rec->n; i++) {
		const struct entry *e = &rec->ents[i];

		if (e->type == ET_HARDLINK && v.inos[i] && v.inos[e->primary] &&
		    v.inos[i] != v.inos[e->primary])
			bad(&v, e, "not a hard link of \"%.60s\" (inode %llu vs %llu)",
			    rec->ents[e->primary].path, (unsigned long long)v.inos[i],
			    (unsigned long long)v.inos[e->primary]);
	}
	g_verified += rec->n;
	phase_set(p, "entries", rec->n);
	phase_set(p, "mismatches", p->errors);
	free(v.inos);
	free(tids);
	return p->errors ? -EIO : 0;
}
