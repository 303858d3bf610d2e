/* ops_dir.c — directory listings.
 *
 * An open directory keeps a backing descriptor of its own and a buffer of
 * getdents64 records. Offsets are the backing file system's own cookies
 * (d_off, "telldir" values), which stay valid while the directory changes:
 * each entry carries the cookie of the entry after it; a readdir at another
 * offset than where the previous one stopped seeks there.
 *
 * Invariants: the state of one open directory is guarded by its lock; in plus
 * mode each entry but "." and ".." is looked up (one reference handed over
 * per entry the buffer took, none for the others). A listing is never
 * silently short: a record that cannot be added ends the answer before it,
 * and an answer that would start with it is that error (ENOMEM, ...); only
 * a name removed since getdents is left out. An entry whose lookup fails
 * (permission, ...) is still listed, by name only.
 */
#include "ptfs_i.h"
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NODE(o) ((struct pt_node *)(o))

struct pt_dir {
	pthread_mutex_t lock;
	int fd;
	off_t next;      /* cookie of the record at pos: where a listing goes on */
	size_t pos, len; /* records in buf[pos, len) not yet handed out */
	char buf[32768] __attribute__((aligned(8)));
};

struct ld64 {        /* the kernel's struct linux_dirent64 */
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

int pt_opendir(fsp_req *r, void *obj, int flags, struct fsp_open_out *o)
{
	struct pt_node *n = NODE(obj);
	struct pt_creds c;
	int fd, dfd, rc;

	(void)flags;
	if (!S_ISDIR(n->type))
		return -ENOTDIR;
	struct pt_dir *d = malloc(sizeof(*d));
	if (!d)
		return -ENOMEM;
	fd = pt_node_fd(n);
	if (fd < 0) {
		free(d);
		return fd;
	}
	rc = pt_creds_enter(r, &c);
	if (rc < 0) {
		dfd = rc;
	} else if (pt_dir_gone(fd)) {
		dfd = -ESTALE;   /* removed behind the mount: look it up again */
	} else {
		/* through our magic link, not "." (which needs search
		 * permission): opening a directory needs only read */
		dfd = pt_reopen(fd, O_RDONLY | O_DIRECTORY);
	}
	pt_creds_leave(&c);
	pt_node_fd_put(n);
	if (dfd < 0) {
		free(d);
		return dfd;
	}
	pthread_mutex_init(&d->lock, NULL);
	d->fd = dfd;
	d->next = 0;
	d->pos = d->len = 0;
	o->fh = d;
	return 0;
}

static bool is_dot(const char *name)
{
	return name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0));
}

/* Add one record: 0 added, 2 left out (removed since getdents), 1 no room,
 * or a negative errno (nothing added). */
static int add_entry(struct pt_dir *d, const struct ld64 *de, bool plus, fsp_dirbuf *db)
{
	const char *name = de->d_name;
	mode_t type = de->d_type == DT_UNKNOWN ? 0 : DTTOIF(de->d_type);
	int rc;

	if (plus && !is_dot(name)) {
		struct fsp_entry e;
		memset(&e, 0, sizeof(e));
		e.entry_timeout = pt.entry_timeout;
		e.attr_timeout = pt.attr_timeout;
		rc = pt_lookup_at(d->fd, name, &e);
		if (rc == -ENOENT)
			return 2;   /* removed since getdents: not listed */
		if (rc == 0) {
			rc = fsp_dirbuf_add_plus(db, name, &e, (off_t)de->d_off);
			if (rc != 0)
				pt_node_unref(e.obj, 1);  /* not handed over */
			return rc;
		}
		/* no entry (permission, ...): the plain name still lists */
	}
	return fsp_dirbuf_add(db, name, de->d_ino, type, (off_t)de->d_off);
}

int pt_readdir(fsp_req *r, void *obj, void *fh, off_t off, fsp_dirbuf *db)
{
	struct pt_dir *d = fh;
	struct pt_creds c = { 0 };
	bool plus = fsp_dirbuf_is_plus(db);
	int rc = 0, added = 0;

	(void)obj;
	pthread_mutex_lock(&d->lock);
	if (off != d->next) {
		if (lseek(d->fd, off, SEEK_SET) < 0) {
			rc = -errno;
			goto out;
		}
		d->pos = d->len = 0;
		d->next = off;
	}
	if (plus) {
		rc = pt_creds_enter(r, &c);   /* the lookups are the caller's */
		if (rc < 0)
			goto out;
	}
	for (;;) {
		if (d->pos >= d->len) {
			long n = getdents64(d->fd, d->buf, sizeof(d->buf));
			if (n < 0) {
				rc = added ? 0 : -errno;
				break;
			}
			if (n == 0)
				break;
			d->len = (size_t)n;
			d->pos = 0;
		}
		const struct ld64 *de = (const struct ld64 *)(d->buf + d->pos);
		int arc = add_entry(d, de, plus, db);
		if (arc < 0) {
			/* what was added goes; this record is asked for next,
			 * and fails then if it still does */
			rc = added ? 0 : arc;
			break;
		}
		if (arc == 1)
			break;   /* no room: this record is the next one asked for */
		d->pos += de->d_reclen;
		d->next = (off_t)de->d_off;
		if (arc == 0)
			added++;   /* an answer of no entries would mean the end */
	}
out:
	pt_creds_leave(&c);
	pthread_mutex_unlock(&d->lock);
	return rc;
}

void pt_releasedir(fsp_session *s, void *obj, void *fh)
{
	struct pt_dir *d = fh;
	(void)s, (void)obj;
	if (!d)
		return;
	close(d->fd);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

int pt_fsyncdir(fsp_req *r, void *obj, void *fh, int datasync)
{
	struct pt_dir *d = fh;
	(void)r, (void)obj;
	return (datasync ? fdatasync(d->fd) : fsync(d->fd)) < 0 ? -errno : 0;
}
