/* ops_file.c — open files: open/create/tmpfile, the data path, release.
 *
 * Two data paths. Passthrough (kernel 6.9+, root): the backing file is
 * registered with the kernel, which then reads and writes it without us; our
 * descriptor is closed right after. Regular: the open keeps a backing
 * descriptor (struct pt_file.fd) and read/write are pread/pwrite on it.
 *
 * Invariants:
 *  - The kernel allows one backing file per inode at a time, so a node's
 *    opens share one registration (node->backing_id, counted by
 *    node->backing_opens under node->lock); the last release drops it. The
 *    kernel opens its own backing file per open from the registered one's
 *    path, with that open's flags, so the mode of the registered file does
 *    not matter.
 *  - Only regular files are ever opened for data. A name that turns out not
 *    to be one (a FIFO or device put there behind our back) is never opened.
 *  - Opening a node whose backing file has no name left (replaced behind our
 *    back) answers ESTALE: the kernel then looks the name up again and opens
 *    the new file, instead of us serving the old content.
 */
#include "ptfs_i.h"
#include <errno.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NODE(o) ((struct pt_node *)(o))

#define PASS_FLAGS (O_ACCMODE | O_APPEND | O_NONBLOCK | O_DSYNC | O_SYNC | O_NOATIME | O_TRUNC)

/* Flags for our backing open: no O_CREAT/O_EXCL (handled apart), no
 * O_NOFOLLOW (it would refuse our own magic link), no O_DIRECT (our buffers
 * are not aligned for it; the passthrough open keeps the caller's flags). */
static int backing_flags(int flags)
{
	int f = flags & PASS_FLAGS;
	if (pt.writeback) {
		/* the kernel writes back pages at the offsets it chose, and may
		 * read to fill partial pages */
		f &= ~O_APPEND;
		if ((f & O_ACCMODE) == O_WRONLY)
			f = (f & ~O_ACCMODE) | O_RDWR;
	}
	return f | O_CLOEXEC;
}

int pt_file_fd(void *fh)
{
	return ((struct pt_file *)fh)->fd;
}

void pt_passthrough_probe(fsp_session *s)
{
	if (pt.pt_mode == PT_OFF) {
		atomic_store(&pt.pt_state, 0);
		fsp_log(2, "data path: read/write through the daemon (%s)",
			pt.pt_off_why ? pt.pt_off_why : "passthrough=off");
		return;
	}
	/* WORKAROUND until the API says whether passthrough was agreed
	 * (proposed: fsp_session_passthrough()). fd -1 is refused with EBADF
	 * by a kernel that agreed to passthrough, with EOPNOTSUPP by the
	 * library when the kernel did not, with EPERM by a kernel that turned
	 * it off after all (writeback_cache, no CAP_SYS_ADMIN). */
	int rc = fsp_backing_open(s, -1);
	if (rc > 0)
		fsp_backing_close(s, rc);
	if (rc != -EBADF) {
		atomic_store(&pt.pt_state, 0);
		const char *why = rc == -EOPNOTSUPP ? "the kernel offers no passthrough" :
				  rc == -EPERM ? "the kernel refuses backing files" :
				  strerror(-rc);
		if (pt.pt_mode == PT_ON) {
			fsp_log(0, "passthrough=on, but %s (needs Linux 6.9+ with "
				"CONFIG_FUSE_PASSTHROUGH, root, and no writeback_cache)", why);
			pt.failed = true;
			fsp_session_exit(s);
			return;
		}
		fsp_log(2, "data path: read/write through the daemon (%s)", why);
		return;
	}
	atomic_store(&pt.pt_state, 1);
	fsp_log(2, "data path: kernel passthrough (reads and writes bypass the daemon)");
}

/* Register ofd for n's opens (or share the registration they have). Returns
 * 1 when passthrough is set up in *o (ofd may be closed), 0 to use the
 * regular path, or a negative errno (passthrough=on only). */
static int attach_backing(struct pt_node *n, int ofd, struct pt_file *f, struct fsp_open_out *o)
{
	static atomic_bool warned;
	int id;

	if (atomic_load(&pt.pt_state) != 1)
		return 0;
	pthread_mutex_lock(&n->lock);
	if (n->backing_opens) {
		id = n->backing_id;
		n->backing_opens++;
	} else {
		id = fsp_backing_open(pt.s, ofd);
		if (id > 0) {
			n->backing_id = id;
			n->backing_opens = 1;
		}
	}
	pthread_mutex_unlock(&n->lock);
	if (id <= 0) {
		if (id == 0)
			id = -EIO;
		if (pt.pt_mode == PT_ON) {
			fsp_log(0, "passthrough=on: the kernel refused a backing file: %s",
				strerror(-id));
			return id;
		}
		if (!atomic_exchange(&warned, true))
			fsp_log(1, "the kernel refused a passthrough backing file (%s); "
				"using the regular data path%s", strerror(-id),
				id == -EOPNOTSUPP || id == -EPERM || id == -ELOOP ||
				id == -EINVAL ? " from now on" : " for it");
		/* Refusals that will repeat for every file: stop asking, so
		 * that all opens of an inode stay in one mode. */
		if (id == -EOPNOTSUPP || id == -EPERM || id == -ELOOP || id == -EINVAL)
			atomic_store(&pt.pt_state, 0);
		return 0;
	}
	o->flags |= FSP_OPEN_PASSTHROUGH;
	o->backing_id = id;
	f->backing = true;
	return 1;
}

static void detach_backing(struct pt_node *n)
{
	pthread_mutex_lock(&n->lock);
	if (n->backing_opens == 0) {
		pthread_mutex_unlock(&n->lock);
		fsp_log(0, "ptfs bug: node %llu: backing open count below zero",
			(unsigned long long)n->id);
		abort();
	}
	if (--n->backing_opens == 0) {
		fsp_backing_close(pt.s, n->backing_id);  /* opens keep their own */
		n->backing_id = 0;
	}
	pthread_mutex_unlock(&n->lock);
}

/* Finish an open of n: ofd (consumed) becomes the open's descriptor or the
 * passthrough registration. */
static int finish_open(struct pt_node *n, int ofd, int flags, struct fsp_open_out *o)
{
	struct pt_file *f = calloc(1, sizeof(*f));
	if (!f) {
		close(ofd);
		return -ENOMEM;
	}
	f->fd = ofd;
	f->flags = flags;
	atomic_init(&f->lock_fd, -1);
	int rc = attach_backing(n, ofd, f, o);
	if (rc < 0) {
		close(ofd);
		free(f);
		return rc;
	}
	if (rc == 1) {
		close(ofd);   /* the kernel keeps its own reference */
		f->fd = -1;
	}
	pthread_mutex_lock(&n->lock);
	n->opens++;
	pthread_mutex_unlock(&n->lock);
	o->fh = f;
	return 0;
}

int pt_open(fsp_req *r, void *obj, int flags, struct fsp_open_out *o)
{
	struct pt_node *n = NODE(obj);
	struct pt_creds c;
	struct stat st;
	int fd, ofd, rc;

	if (!S_ISREG(n->type))
		return S_ISDIR(n->type) ? -EISDIR : -ENXIO;
	fd = pt_node_fd(n);
	if (fd < 0)
		return fd;
	if (!n->tmp && fstatat(fd, "", &st, AT_EMPTY_PATH) == 0 && st.st_nlink == 0) {
		/* replaced or removed behind our back: make the kernel look
		 * the name up again rather than serve the old file */
		pt_node_fd_put(n);
		return -ESTALE;
	}
	rc = pt_creds_enter(r, &c);
	ofd = rc < 0 ? rc : pt_reopen(fd, backing_flags(flags));
	pt_creds_leave(&c);
	pt_node_fd_put(n);
	if (ofd < 0)
		return ofd;
	return finish_open(n, ofd, flags, o);
}

/* Create name in the directory open at dfd, as the caller, without ever
 * opening something that is not a regular file. */
static int create_at(int dfd, const char *name, mode_t mode, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(backing_flags(flags) | O_CREAT | O_EXCL | O_NOFOLLOW),
		.mode = mode & 07777,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS,
	};
	int fd = (int)syscall(SYS_openat2, dfd, name, &how, sizeof(how));
	if (fd >= 0 || errno != EEXIST || (flags & O_EXCL))
		return fd < 0 ? -errno : fd;
	/* It exists already (made behind the kernel's back): open it like
	 * open(2) would, if it is a regular file. */
	struct open_how phow = {
		.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS,
	};
	struct stat st;
	int p = (int)syscall(SYS_openat2, dfd, name, &phow, sizeof(phow));
	if (p < 0)
		return -errno;
	if (fstat(p, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(p);
		return -EEXIST;
	}
	fd = pt_reopen(p, backing_flags(flags));
	close(p);
	return fd;
}

static int new_file_entry(int ofd, bool tmp, struct fsp_entry *e)
{
	struct pt_node *n;
	struct stat st;
	int rc;

	if (fstat(ofd, &st) < 0)
		return -errno;
	rc = pt_node_get(-1, ofd, &st, tmp, &n);
	if (rc < 0)
		return rc;
	e->ino = n->id;
	e->generation = 0;
	e->obj = n;
	e->attr = st;
	pt_fill_stat(&e->attr);
	return 0;
}

static int create_common(fsp_req *r, struct pt_node *d, const char *name, mode_t mode,
			 int flags, struct fsp_entry *e, struct fsp_open_out *o)
{
	struct pt_creds c;
	int dfd, ofd, rc;

	if (name && !pt_name_ok(name))
		return -EINVAL;
	dfd = pt_node_fd(d);
	if (dfd < 0)
		return dfd;
	rc = pt_creds_enter(r, &c);
	if (rc < 0) {
		ofd = rc;
	} else if (name) {
		ofd = create_at(dfd, name, mode, flags);
		if (ofd == -ENOENT && pt_dir_gone(dfd))
			ofd = -ESTALE;   /* the kernel looks the directory up again */
	} else {
		int f = backing_flags(flags) & ~(O_TRUNC | O_APPEND);
		if ((f & O_ACCMODE) == O_RDONLY)
			f |= O_RDWR;   /* O_TMPFILE needs write access */
		ofd = openat(dfd, ".", f | O_TMPFILE | (flags & O_EXCL), mode & 07777);
		if (ofd < 0)
			ofd = -errno;
	}
	pt_creds_leave(&c);
	pt_node_fd_put(d);
	if (ofd < 0)
		return ofd;
	rc = new_file_entry(ofd, name == NULL, e);
	if (rc < 0) {
		close(ofd);
		return rc;
	}
	rc = finish_open(e->obj, ofd, flags, o);
	if (rc < 0) {
		pt_node_unref(e->obj, 1);
		e->obj = NULL;
	}
	return rc;
}

int pt_create(fsp_req *r, void *dir, const char *name, mode_t mode, int flags,
	      struct fsp_entry *e, struct fsp_open_out *o)
{
	return create_common(r, NODE(dir), name, mode, flags, e, o);
}

int pt_tmpfile(fsp_req *r, void *dir, mode_t mode, int flags, struct fsp_entry *e,
	       struct fsp_open_out *o)
{
	return create_common(r, NODE(dir), NULL, mode, flags, e, o);
}

/* A descriptor for an fd-less (passthrough) open when the kernel still sends
 * us a request for it: reopened from the node, as the daemon (the kernel has
 * checked the open's mode). *tmp receives it for the caller to close. */
static int data_fd(struct pt_node *n, struct pt_file *f, bool write, int *tmp)
{
	*tmp = -1;
	if (f->fd >= 0 && (!write || (f->flags & O_ACCMODE) != O_RDONLY))
		return f->fd;
	int fd = pt_node_fd(n);
	if (fd < 0)
		return fd;
	int w = pt_reopen(fd, write ? O_WRONLY : O_RDONLY);
	pt_node_fd_put(n);
	if (w >= 0)
		*tmp = w;
	return w;
}

static void close_tmp(int tmp)
{
	if (tmp >= 0)
		close(tmp);
}

ssize_t pt_read(fsp_req *r, void *obj, void *fh, void *buf, size_t size, off_t off)
{
	int tmp, fd = data_fd(NODE(obj), fh, false, &tmp);
	size_t done = 0;

	(void)r;
	if (fd < 0)
		return fd;
	while (done < size) {
		ssize_t n = pread(fd, (char *)buf + done, size - done, off + (off_t)done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (done)
				break;
			int e = errno;
			close_tmp(tmp);
			return -e;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	close_tmp(tmp);
	return (ssize_t)done;
}

ssize_t pt_write(fsp_req *r, void *obj, void *fh, const void *data, size_t size, off_t off,
		 uint32_t flags)
{
	int tmp, fd = data_fd(NODE(obj), fh, true, &tmp);
	size_t done = 0;

	(void)r, (void)flags;
	if (fd < 0)
		return fd;
	while (done < size) {
		ssize_t n = pwrite(fd, (const char *)data + done, size - done, off + (off_t)done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (done)
				break;
			int e = errno;
			close_tmp(tmp);
			return -e;
		}
		if (n == 0)
			break;
		done += (size_t)n;
	}
	close_tmp(tmp);
	return (ssize_t)done;
}

int pt_flush(fsp_req *r, void *obj, void *fh, uint64_t lock_owner)
{
	struct pt_file *f = fh;
	(void)r, (void)obj, (void)lock_owner;
	if (f->fd >= 0) {
		/* what close(2) of a duplicate does: flush-on-close file systems
		 * (NFS) write back here and report errors */
		int d = dup(f->fd);
		if (d < 0)
			return -errno;
		if (close(d) < 0)
			return -errno;
	}
	return 0;
}

void pt_release(fsp_session *s, void *obj, void *fh, int flags)
{
	struct pt_file *f = fh;
	(void)s, (void)flags;
	if (!f)
		return;
	if (f->fd >= 0)
		close(f->fd);   /* ends this open's flock lock */
	int lfd = atomic_load(&f->lock_fd);
	if (lfd >= 0)
		close(lfd);
	if (f->backing)
		detach_backing(NODE(obj));
	pt_locks_drop(NODE(obj));
	free(f);
}

int pt_fsync(fsp_req *r, void *obj, void *fh, int datasync)
{
	int tmp, fd = data_fd(NODE(obj), fh, false, &tmp), rc;
	(void)r;
	if (fd < 0)
		return fd;
	rc = (datasync ? fdatasync(fd) : fsync(fd)) < 0 ? -errno : 0;
	close_tmp(tmp);
	return rc;
}

int pt_fallocate(fsp_req *r, void *obj, void *fh, int mode, off_t off, off_t len)
{
	int tmp, fd = data_fd(NODE(obj), fh, true, &tmp), rc;
	(void)r;
	if (fd < 0)
		return fd;
	rc = fallocate(fd, mode, off, len) < 0 ? -errno : 0;
	close_tmp(tmp);
	return rc;
}

off_t pt_lseek(fsp_req *r, void *obj, void *fh, off_t off, int whence)
{
	int tmp, fd;
	off_t o;

	(void)r;
	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	fd = data_fd(NODE(obj), fh, false, &tmp);
	if (fd < 0)
		return fd;
	/* our descriptors are only used with pread/pwrite: moving their
	 * position is harmless */
	o = lseek(fd, off, whence);
	if (o < 0)
		o = -errno;
	close_tmp(tmp);
	return o;
}

ssize_t pt_copy_file_range(fsp_req *r, void *obj_in, void *fh_in, off_t off_in, void *obj_out,
			   void *fh_out, off_t off_out, size_t len, unsigned flags)
{
	int tin, tout, fin, fout;
	loff_t oi = off_in, oo = off_out;
	ssize_t n;

	(void)r;
	fin = data_fd(NODE(obj_in), fh_in, false, &tin);
	if (fin < 0)
		return fin;
	fout = data_fd(NODE(obj_out), fh_out, true, &tout);
	if (fout < 0) {
		close_tmp(tin);
		return fout;
	}
	n = copy_file_range(fin, &oi, fout, &oo, len, flags);
	if (n < 0)
		n = -errno;
	close_tmp(tin);
	close_tmp(tout);
	return n;
}
