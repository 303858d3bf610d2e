/* ops_node.c — names and attributes: lookup, getattr/setattr, the calls that
 * make and remove names, statfs, extended attributes.
 *
 * Invariants: every backing call is relative to a node's descriptor with one
 * name component (never "", ".", ".." or a name with '/', except the export
 * lookups of "." and ".." handled on their own); nothing follows a symlink:
 * openat2 with RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH,
 * the *at calls with AT_SYMLINK_NOFOLLOW / AT_EMPTY_PATH. The only magic links
 * followed are our own /proc/self/fd/N of node descriptors.
 * Node descriptors are taken (as the daemon) before the caller's credentials
 * are put on, and given back after they are taken off.
 * What the kernel has already decided is not asked again as the caller: an
 * operation through an open file (ftruncate) was allowed by the open, and
 * the set-id bits the kernel clears after a write are cleared by the
 * daemon (as the backing file system does for any writer), not by a chmod
 * that only the owner may make.
 */
#include "ptfs_i.h"
#include <errno.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#define NODE(o) ((struct pt_node *)(o))

bool pt_name_ok(const char *name)
{
	return name && name[0] && !strchr(name, '/') && strcmp(name, ".") != 0 &&
	       strcmp(name, "..") != 0;
}

void pt_proc_path(char *buf, size_t size, int fd)
{
	snprintf(buf, size, "/proc/self/fd/%d", fd);
}

int pt_reopen(int fd, int flags)
{
	char nm[16];
	snprintf(nm, sizeof(nm), "%d", fd);
	int r = openat(pt.proc_fd, nm, flags | O_CLOEXEC);
	return r < 0 ? -errno : r;
}

static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 31;
	x *= 0x7fb5d329728ea185ULL;
	x ^= x >> 27;
	x *= 0x81dadef4bc2dd44dULL;
	x ^= x >> 33;
	return x;
}

void pt_fill_stat(struct stat *st)
{
	/* Users see the backing inode numbers. Objects on other file systems
	 * mounted below SOURCE could repeat a number (and fool hard link
	 * detection in cp, tar, rsync): give them one mixed with the device. */
	if (st->st_dev != pt.root_dev)
		st->st_ino = (ino_t)((mix64((uint64_t)st->st_dev) ^ (uint64_t)st->st_ino) |
				     (1ULL << 63));
}

static void fill_entry(struct fsp_entry *e, struct pt_node *n, const struct stat *st)
{
	e->ino = n->id;
	e->generation = 0;   /* node ids are never reused */
	e->obj = n;
	e->attr = *st;
	pt_fill_stat(&e->attr);
}

static int stat_fd(int fd, struct stat *st)
{
	return fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

bool pt_dir_gone(int dirfd)
{
	struct stat st;
	return fstatat(dirfd, "", &st, AT_EMPTY_PATH) == 0 && st.st_nlink == 0;
}

/* A name missing from a directory that was removed behind the mount: say
 * ESTALE, so that the kernel looks the directory up again (a new one may be
 * there now) instead of reporting that the name does not exist. */
static int gone_check(int dirfd, int rc)
{
	return rc == -ENOENT && pt_dir_gone(dirfd) ? -ESTALE : rc;
}

int pt_lookup_at(int dirfd, const char *name, struct fsp_entry *e)
{
	struct open_how how = {
		.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS,
	};
	struct pt_node *n;
	struct stat st;
	int fd, rc;

	if (!pt_name_ok(name))
		return -EINVAL;
	fd = (int)syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	rc = pt_node_get(fd, fd, &st, false, &n);   /* fd consumed */
	if (rc < 0)
		return rc;
	fill_entry(e, n, &st);
	return 0;
}

/* ".." of d (export lookups only): its parent, if that is still at or below
 * SOURCE; the root's parent is the root. */
static int lookup_parent(struct pt_node *d, struct fsp_entry *e)
{
	struct stat st, cst;
	struct pt_node *n;
	int fd, p = -1, c = -1, rc;

	if (d == pt.root) {
		fd = pt_node_fd(d);
		if (fd < 0)
			return fd;
		rc = stat_fd(fd, &st);
		pt_node_fd_put(d);
		if (rc < 0)
			return rc;
		pt_node_ref(d);
		fill_entry(e, d, &st);
		return 0;
	}
	fd = pt_node_fd(d);
	if (fd < 0)
		return fd;
	p = openat(fd, "..", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	pt_node_fd_put(d);
	if (p < 0)
		return -errno;
	/* Walk up from the parent until SOURCE (fine) or the top of the
	 * file system (the directory was moved out of SOURCE: not ours). */
	c = openat(p, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	rc = c < 0 ? -errno : -ESTALE;
	for (int depth = 0; c >= 0 && depth < 4096; depth++) {
		if (fstat(c, &cst) < 0) {
			rc = -errno;
			break;
		}
		if (cst.st_dev == pt.root->dev && cst.st_ino == pt.root->ino) {
			rc = 0;
			break;
		}
		int up = openat(c, "..", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		struct stat ust;
		if (up < 0 || fstat(up, &ust) < 0 ||
		    (ust.st_dev == cst.st_dev && ust.st_ino == cst.st_ino)) {
			if (up >= 0)
				close(up);
			break;   /* at "/" without meeting SOURCE */
		}
		close(c);
		c = up;
	}
	if (c >= 0)
		close(c);
	if (rc == 0 && fstat(p, &st) < 0)
		rc = -errno;
	if (rc < 0) {
		close(p);
		return rc;
	}
	rc = pt_node_get(p, p, &st, false, &n);
	if (rc < 0)
		return rc;
	fill_entry(e, n, &st);
	return 0;
}

int pt_lookup(fsp_req *r, void *dir, const char *name, struct fsp_entry *e)
{
	struct pt_node *d = NODE(dir);
	struct pt_creds c;
	struct stat st;
	int fd, rc;

	if (!strcmp(name, ".")) {
		fd = pt_node_fd(d);
		if (fd < 0)
			return fd;
		rc = stat_fd(fd, &st);
		pt_node_fd_put(d);
		if (rc < 0)
			return rc;
		pt_node_ref(d);
		fill_entry(e, d, &st);
		return 0;
	}
	if (!strcmp(name, ".."))
		return lookup_parent(d, e);
	fd = pt_node_fd(d);
	if (fd < 0)
		return fd;
	rc = pt_creds_enter(r, &c);
	if (rc == 0)
		rc = gone_check(fd, pt_lookup_at(fd, name, e));
	pt_creds_leave(&c);
	pt_node_fd_put(d);
	return rc;
}

void pt_forget(fsp_session *s, void *obj, uint64_t n)
{
	(void)s;
	if (n)
		pt_node_unref(NODE(obj), n);
}

int pt_getattr(fsp_req *r, void *obj, void *fh, struct stat *st)
{
	struct pt_node *n = NODE(obj);
	int ffd = fh ? pt_file_fd(fh) : -1, fd, rc;

	(void)r;
	if (ffd >= 0) {
		rc = fstat(ffd, st) < 0 ? -errno : 0;
	} else {
		fd = pt_node_fd(n);
		if (fd < 0)
			return fd;
		rc = stat_fd(fd, st);
		pt_node_fd_put(n);
	}
	if (rc == 0)
		pt_fill_stat(st);
	return rc;
}

/* Truncate through fd (an O_PATH descriptor of the node) or the open fh.
 * Called as the caller without fh, as the daemon with an fh open for
 * writing: the permission came with the open (a file created with mode 0
 * may be truncated through the descriptor that created it). */
static int truncate_node(int fd, void *fh, off_t size)
{
	int ffd = fh ? pt_file_fd(fh) : -1;
	if (ffd >= 0 && ftruncate(ffd, size) == 0)
		return 0;
	/* no descriptor of ours open for writing (passthrough): open one */
	int w = pt_reopen(fd, O_WRONLY);
	if (w < 0)
		return w;
	int rc = ftruncate(w, size) < 0 ? -errno : 0;
	close(w);
	return rc;
}

int pt_setattr(fsp_req *r, void *obj, void *fh, const struct fsp_setattr *sa, struct stat *st)
{
	struct pt_node *n = NODE(obj);
	struct pt_creds c = { 0 };
	struct stat cur;
	char nm[16];
	uint32_t valid = sa->valid;
	int fd, rc;

	fd = pt_node_fd(n);
	if (fd < 0)
		return fd;
	if ((valid & FSP_SET_SIZE) && fh && S_ISREG(n->type) &&
	    (((struct pt_file *)fh)->flags & O_ACCMODE) != O_RDONLY) {
		/* ftruncate: allowed by the open, as the daemon */
		rc = truncate_node(fd, fh, sa->size);
		if (rc < 0)
			goto out;
		valid &= ~FSP_SET_SIZE;
	}
	if ((valid & FSP_SET_MODE) && !(valid & (FSP_SET_UID | FSP_SET_GID)) &&
	    !S_ISLNK(n->type) && fsp_session_config(pt.s)->default_permissions && stat_fd(fd, &cur) == 0 &&
	    (sa->mode & 07777) != (cur.st_mode & 07777) &&
	    ((cur.st_mode & 07777) & ~(mode_t)(S_ISUID | S_ISGID)) == (sa->mode & 07777)) {
		/* Only set-id bits go: the kernel clearing them after a write
		 * or truncate by someone who may not chmod (it refuses a chmod
		 * by a non-owner itself), as the daemon. */
		snprintf(nm, sizeof(nm), "%d", fd);
		if (fchmodat(pt.proc_fd, nm, sa->mode & 07777, 0) < 0) {
			rc = -errno;
			goto out;
		}
		valid &= ~FSP_SET_MODE;
	}
	rc = pt_creds_enter(r, &c);
	if (rc < 0)
		goto out;
	/* Owner first: chown clears set-id bits that a mode in the same
	 * request may set again. */
	if (valid & (FSP_SET_UID | FSP_SET_GID)) {
		uid_t uid = (valid & FSP_SET_UID) ? sa->uid : (uid_t)-1;
		gid_t gid = (valid & FSP_SET_GID) ? sa->gid : (gid_t)-1;
		if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
			rc = -errno;
			goto out;
		}
	}
	if (valid & FSP_SET_MODE) {
		if (S_ISLNK(n->type)) {
			rc = -EOPNOTSUPP;
			goto out;
		}
		/* our own magic link: the node itself, which is no symlink */
		snprintf(nm, sizeof(nm), "%d", fd);
		if (fchmodat(pt.proc_fd, nm, sa->mode & 07777, 0) < 0) {
			rc = -errno;
			goto out;
		}
	}
	if (valid & FSP_SET_SIZE) {
		if (!S_ISREG(n->type)) {
			rc = S_ISDIR(n->type) ? -EISDIR : -EINVAL;
			goto out;
		}
		rc = truncate_node(fd, fh, sa->size);
		if (rc < 0)
			goto out;
	}
	if (valid & (FSP_SET_ATIME | FSP_SET_MTIME)) {
		struct timespec ts[2];
		ts[0].tv_sec = 0;
		ts[0].tv_nsec = UTIME_OMIT;
		ts[1] = ts[0];
		if (valid & FSP_SET_ATIME) {
			ts[0] = sa->atime;
			if (valid & FSP_SET_ATIME_NOW)
				ts[0].tv_nsec = UTIME_NOW;
		}
		if (valid & FSP_SET_MTIME) {
			ts[1] = sa->mtime;
			if (valid & FSP_SET_MTIME_NOW)
				ts[1].tv_nsec = UTIME_NOW;
		}
		if (utimensat(fd, "", ts, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
			rc = -errno;
			goto out;
		}
	}
	/* FSP_SET_CTIME: the backing file system sets ctime itself. */
	rc = 0;
out:
	pt_creds_leave(&c);
	if (rc == 0) {
		rc = stat_fd(fd, st);
		if (rc == 0)
			pt_fill_stat(st);
	}
	pt_node_fd_put(n);
	return rc;
}

int pt_readlink(fsp_req *r, void *obj, char *buf, size_t size)
{
	struct pt_node *n = NODE(obj);
	int fd;
	ssize_t len;

	(void)r;
	if (!S_ISLNK(n->type))
		return -EINVAL;
	fd = pt_node_fd(n);
	if (fd < 0)
		return fd;
	len = readlinkat(fd, "", buf, size);
	int rc = len < 0 ? -errno : (size_t)len >= size ? -ENAMETOOLONG : (int)len;
	pt_node_fd_put(n);
	return rc;
}

/* The common shape of mknod/mkdir/symlink: make the name as the caller, then
 * look it up to report it. */
enum mk_kind { MK_NOD, MK_DIR, MK_LNK };

static int make_name(fsp_req *r, struct pt_node *d, const char *name, enum mk_kind kind,
		     mode_t mode, dev_t rdev, const char *target, struct fsp_entry *e)
{
	struct pt_creds c;
	int fd, rc;

	if (!pt_name_ok(name))
		return -EINVAL;
	fd = pt_node_fd(d);
	if (fd < 0)
		return fd;
	rc = pt_creds_enter(r, &c);
	if (rc == 0) {
		if (kind == MK_NOD)
			rc = mknodat(fd, name, mode, rdev);
		else if (kind == MK_DIR)
			rc = mkdirat(fd, name, mode & 07777);
		else
			rc = symlinkat(target, fd, name);
		rc = rc < 0 ? gone_check(fd, -errno) : 0;
		if (rc == 0)
			rc = pt_lookup_at(fd, name, e);
	}
	pt_creds_leave(&c);
	pt_node_fd_put(d);
	return rc;
}

int pt_mknod(fsp_req *r, void *dir, const char *name, mode_t mode, dev_t rdev,
	     struct fsp_entry *e)
{
	return make_name(r, NODE(dir), name, MK_NOD, mode, rdev, NULL, e);
}

int pt_mkdir(fsp_req *r, void *dir, const char *name, mode_t mode, struct fsp_entry *e)
{
	return make_name(r, NODE(dir), name, MK_DIR, mode, 0, NULL, e);
}

int pt_symlink(fsp_req *r, void *dir, const char *name, const char *target,
	       struct fsp_entry *e)
{
	return make_name(r, NODE(dir), name, MK_LNK, 0, 0, target, e);
}

int pt_link(fsp_req *r, void *obj, void *newdir, const char *newname, struct fsp_entry *e)
{
	struct pt_node *n = NODE(obj), *d = NODE(newdir);
	struct pt_creds c;
	struct stat st;
	char nm[16];
	int fd, dfd, rc;

	if (!pt_name_ok(newname))
		return -EINVAL;
	fd = pt_node_fd(n);
	if (fd < 0)
		return fd;
	dfd = pt_node_fd(d);
	if (dfd < 0) {
		pt_node_fd_put(n);
		return dfd;
	}
	rc = pt_creds_enter(r, &c);
	if (rc == 0) {
		/* linkat(fd, "", AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH,
		 * which the caller lacks; our magic link needs nothing. */
		snprintf(nm, sizeof(nm), "%d", fd);
		rc = linkat(pt.proc_fd, nm, dfd, newname, AT_SYMLINK_FOLLOW) < 0 ? -errno : 0;
	}
	pt_creds_leave(&c);
	if (rc == 0)
		rc = stat_fd(fd, &st);
	if (rc == 0) {
		pt_node_ref(n);
		fill_entry(e, n, &st);
	}
	pt_node_fd_put(d);
	pt_node_fd_put(n);
	return rc;
}

static int remove_name(fsp_req *r, struct pt_node *d, const char *name, int flags)
{
	struct pt_creds c;
	int fd, rc;

	if (!pt_name_ok(name))
		return -EINVAL;
	fd = pt_node_fd(d);
	if (fd < 0)
		return fd;
	rc = pt_creds_enter(r, &c);
	if (rc == 0)
		rc = unlinkat(fd, name, flags) < 0 ? gone_check(fd, -errno) : 0;
	pt_creds_leave(&c);
	pt_node_fd_put(d);
	return rc;
}

int pt_unlink(fsp_req *r, void *dir, const char *name)
{
	return remove_name(r, NODE(dir), name, 0);
}

int pt_rmdir(fsp_req *r, void *dir, const char *name)
{
	return remove_name(r, NODE(dir), name, AT_REMOVEDIR);
}

int pt_rename(fsp_req *r, void *dir, const char *name, void *newdir, const char *newname,
	      unsigned flags)
{
	struct pt_node *d = NODE(dir), *nd = NODE(newdir);
	struct pt_creds c;
	int fd, nfd, rc;

	if (!pt_name_ok(name) || !pt_name_ok(newname))
		return -EINVAL;
	fd = pt_node_fd(d);
	if (fd < 0)
		return fd;
	nfd = pt_node_fd(nd);
	if (nfd < 0) {
		pt_node_fd_put(d);
		return nfd;
	}
	rc = pt_creds_enter(r, &c);
	if (rc == 0) {
		rc = renameat2(fd, name, nfd, newname, flags) < 0 ? -errno : 0;
		rc = gone_check(nfd, gone_check(fd, rc));
	}
	pt_creds_leave(&c);
	pt_node_fd_put(nd);
	pt_node_fd_put(d);
	return rc;
}

int pt_statfs(fsp_req *r, void *obj, struct statvfs *st)
{
	struct pt_node *n = NODE(obj);
	int fd = pt_node_fd(n), rc;

	(void)r;
	if (fd < 0)
		return fd;
	rc = fstatvfs(fd, st) < 0 ? -errno : 0;
	pt_node_fd_put(n);
	return rc;
}

/* ---- extended attributes ----
 * The xattr calls have no *at form that takes an O_PATH descriptor on every
 * kernel we support, so they go through our own /proc/self/fd/N. Its last
 * step is a jump to the node itself: a symlink node is not followed. */

enum xa_op { XA_SET, XA_GET, XA_LIST, XA_REMOVE };

static ssize_t xattr_op(fsp_req *r, struct pt_node *n, enum xa_op op, const char *name,
			void *buf, size_t size, int flags)
{
	struct pt_creds c;
	char path[64];
	ssize_t rc;
	int fd = pt_node_fd(n);

	if (fd < 0)
		return fd;
	pt_proc_path(path, sizeof(path), fd);
	rc = pt_creds_enter(r, &c);
	if (rc == 0) {
		switch (op) {
		case XA_SET:
			rc = setxattr(path, name, buf, size, flags);
			break;
		case XA_GET:
			rc = getxattr(path, name, buf, size);
			break;
		case XA_LIST:
			rc = listxattr(path, buf, size);
			break;
		case XA_REMOVE:
			rc = removexattr(path, name);
			break;
		}
		if (rc < 0)
			rc = -errno;
	}
	pt_creds_leave(&c);
	pt_node_fd_put(n);
	return rc;
}

int pt_setxattr(fsp_req *r, void *obj, const char *name, const void *value, size_t size,
		int flags)
{
	return (int)xattr_op(r, NODE(obj), XA_SET, name, (void *)value, size, flags);
}

ssize_t pt_getxattr(fsp_req *r, void *obj, const char *name, void *buf, size_t size)
{
	return xattr_op(r, NODE(obj), XA_GET, name, buf, size, 0);
}

ssize_t pt_listxattr(fsp_req *r, void *obj, char *buf, size_t size)
{
	return xattr_op(r, NODE(obj), XA_LIST, NULL, buf, size, 0);
}

int pt_removexattr(fsp_req *r, void *obj, const char *name)
{
	return (int)xattr_op(r, NODE(obj), XA_REMOVE, name, NULL, 0, 0);
}

int pt_access(fsp_req *r, void *obj, int mask)
{
	struct pt_node *n = NODE(obj);
	struct pt_creds c;
	int fd = pt_node_fd(n), rc;

	if (fd < 0)
		return fd;
	rc = pt_creds_enter(r, &c);
	if (rc == 0) {
		/* AT_EACCESS: check with the fsuid/fsgid just put on */
		rc = (int)syscall(SYS_faccessat2, fd, "", mask,
				  AT_EMPTY_PATH | AT_EACCESS | AT_SYMLINK_NOFOLLOW);
		rc = rc < 0 ? -errno : 0;
	}
	pt_creds_leave(&c);
	pt_node_fd_put(n);
	return rc;
}
