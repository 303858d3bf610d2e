/* dirbuf.c — directory listings in the kernel's dirent / direntplus format.
 *
 * Invariants: an entry is written whole or not at all; in plus mode every
 * entry the node table counted is remembered (inos) so that handlers.c can
 * uncount them if the reply never reaches the kernel.
 */
#include "fsp_i.h"
#include <errno.h>
#include <limits.h>
#include <string.h>

int fsp_dirbuf_is_plus(const fsp_dirbuf *db)
{
	return db->plus;
}

static int check_name(const char *name, size_t *len)
{
	size_t n = strnlen(name, NAME_MAX + 1);
	if (n == 0 || memchr(name, '/', n))
		return -EINVAL;
	if (n > NAME_MAX)
		return -ENAMETOOLONG;
	*len = n;
	return 0;
}

/* Room for one record of namelen; returns where it goes, or NULL if full. */
static char *reserve(fsp_dirbuf *db, size_t namelen, size_t *reclen)
{
	size_t base = db->plus ? FW_NAME_OFFSET_DIRENTPLUS : FW_NAME_OFFSET;
	size_t rec = FW_DIRENT_ALIGN(base + namelen);
	if (db->len + rec > db->size)
		return NULL;
	*reclen = rec;
	return db->buf + db->len;
}

static void put_dirent(char *p, const char *name, size_t namelen, uint64_t ino, mode_t mode,
		       off_t next_off, size_t reclen, size_t base)
{
	struct fw_dirent d;
	d.ino = ino;
	d.off = (uint64_t)next_off;
	d.namelen = (uint32_t)namelen;
	d.type = (mode & S_IFMT) >> 12;
	char *dp = p + base - FW_NAME_OFFSET;
	memcpy(dp, &d, FW_NAME_OFFSET);
	memcpy(dp + FW_NAME_OFFSET, name, namelen);
	/* padding must not leak stale buffer bytes to the kernel */
	memset(p + base + namelen, 0, reclen - base - namelen);
}

int fsp_dirbuf_add(fsp_dirbuf *db, const char *name, uint64_t ino, mode_t mode, off_t next_off)
{
	size_t namelen, reclen;
	int rc = check_name(name, &namelen);
	if (rc < 0)
		return rc;
	char *p = reserve(db, namelen, &reclen);
	if (!p)
		return 1;
	size_t base = FW_NAME_OFFSET;
	if (db->plus) {
		/* nodeid 0: the kernel makes no dentry and counts no lookup */
		memset(p, 0, sizeof(struct fw_entry_out));
		base = FW_NAME_OFFSET_DIRENTPLUS;
	}
	put_dirent(p, name, namelen, ino ? ino : 1, mode, next_off, reclen, base);
	db->len += reclen;
	return 0;
}

int fsp_dirbuf_add_plus(fsp_dirbuf *db, const char *name, const struct fsp_entry *e,
			off_t next_off)
{
	fsp_session *s = db->r->s;
	size_t namelen, reclen;
	int rc = check_name(name, &namelen);
	if (rc < 0)
		return rc;
	if (e->ino == 0 || (e->attr.st_mode & S_IFMT) == 0)
		return -EINVAL;
	char *p = reserve(db, namelen, &reclen);
	if (!p)
		return 1;
	/* the kernel skips "." and ".." in direntplus: count nothing for it */
	bool dots = name[0] == '.' && (namelen == 1 || (namelen == 2 && name[1] == '.'));
	bool counted = db->plus && !dots;
	if (counted && db->ninos == db->cap) {
		size_t cap = db->cap ? db->cap * 2 : 64;
		uint64_t *n = fsp__realloc(db->inos, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		db->inos = n;
		db->cap = cap;
	}
	rc = fsp__node_add_entry(s->nodes, e, counted);
	if (rc < 0)
		return rc;
	if (counted)
		db->inos[db->ninos++] = e->ino;
	uint64_t dino = e->attr.st_ino ? (uint64_t)e->attr.st_ino : e->ino;
	if (db->plus) {
		struct fw_entry_out eo;
		memset(&eo, 0, sizeof(eo));
		if (counted) {
			eo.nodeid = e->ino;
			eo.generation = fsp__node_generation(s->nodes, e);
			fsp__timeout_split(e->entry_timeout, &eo.entry_valid, &eo.entry_valid_nsec);
			fsp__timeout_split(e->attr_timeout, &eo.attr_valid, &eo.attr_valid_nsec);
			fsp__fill_attr(&eo.attr, &e->attr, e->ino);
		}
		memcpy(p, &eo, sizeof(eo));
		put_dirent(p, name, namelen, dino, e->attr.st_mode, next_off, reclen,
			   FW_NAME_OFFSET_DIRENTPLUS);
	} else {
		put_dirent(p, name, namelen, dino, e->attr.st_mode, next_off, reclen,
			   FW_NAME_OFFSET);
	}
	db->len += reclen;
	return 0;
}
