/* handlers.c — one handler per opcode, and the opcode table.
 *
 * A handler runs after dispatch.c validated the header, checked that the body
 * is at least the table's min_in bytes and, for FSP__OP_NODE ops, resolved the
 * node id to a held node (r->node). A handler decodes the rest of its body,
 * calls the file system and sends exactly one reply (none for NOREPLY ops).
 *
 * Lifetime rules kept here:
 *  - An entry is counted in the node table BEFORE its reply is sent (the
 *    kernel may use the node id the moment it reads the reply) and uncounted
 *    if the send fails.
 *  - Every fsp__handle_get is paired with fsp__handle_put on every path.
 *  - No-open (cfg.no_open/no_opendir, kernel support): OPEN/OPENDIR (and
 *    CREATE, when mknod exists) answer ENOSYS so that the kernel opens by
 *    itself; its fh 0 then names the request's node, held for the request.
 */
#include "fsp_i.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <string.h>
#include <sys/file.h>
#include <sys/xattr.h>

#define BODY(r, type) ((const type *)(r)->body)

/* ---- helpers ---- */

static void entry_init(fsp_req *r, struct fsp_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->entry_timeout = r->s->cfg.entry_timeout;
	e->attr_timeout = r->s->cfg.attr_timeout;
}

static int check_entry(fsp_req *r, const struct fsp_entry *e)
{
	if (e->ino == 0 || (e->attr.st_mode & S_IFMT) == 0) {
		fsp_log(0, "%s: file system returned an entry without %s",
			fsp__opname(r->opcode), e->ino ? "a file type" : "a node id");
		return -EIO;
	}
	return 0;
}

/* Hand back the one reference that came with an entry we could not use. */
static void give_back(fsp_session *s, void *obj)
{
	if (s->ops.forget)
		s->ops.forget(s, obj, 1);
}

static void fill_entry_out(fsp_req *r, struct fw_entry_out *eo, const struct fsp_entry *e)
{
	memset(eo, 0, sizeof(*eo));
	eo->nodeid = e->ino;
	eo->generation = fsp__node_generation(r->s->nodes, e);
	fsp__timeout_split(e->entry_timeout, &eo->entry_valid, &eo->entry_valid_nsec);
	fsp__timeout_split(e->attr_timeout, &eo->attr_valid, &eo->attr_valid_nsec);
	if (e->ino)
		fsp__fill_attr(&eo->attr, &e->attr, e->ino);
}

/* Hand e to the node table and the kernel. rc is the callback's result; on
 * success one fs reference to e->obj came with it. */
static void reply_entry(fsp_req *r, int rc, const struct fsp_entry *e)
{
	struct fw_entry_out eo;

	if (rc < 0) {
		fsp__reply_err(r, rc);
		return;
	}
	if (e->ino == 0 && r->opcode == FW_LOOKUP) {
		/* negative entry: cache the miss, nothing is counted */
		fill_entry_out(r, &eo, e);
		fsp__reply_buf(r, &eo, sizeof(eo));
		return;
	}
	rc = check_entry(r, e);
	if (rc == 0)
		rc = fsp__node_add_entry(r->s->nodes, e, 1);
	if (rc < 0) {
		give_back(r->s, e->obj);
		fsp__reply_err(r, rc);
		return;
	}
	fill_entry_out(r, &eo, e);
	if (fsp__reply_buf(r, &eo, sizeof(eo)) == -ENOENT)
		fsp__node_unsent(r->s->nodes, e->ino);
}

static uint32_t fopen_flags(uint32_t f)
{
	uint32_t o = 0;
	if (f & FSP_OPEN_DIRECT_IO) o |= FW_FOPEN_DIRECT_IO;
	if (f & FSP_OPEN_KEEP_CACHE) o |= FW_FOPEN_KEEP_CACHE;
	if (f & FSP_OPEN_NONSEEKABLE) o |= FW_FOPEN_NONSEEKABLE;
	if (f & FSP_OPEN_CACHE_DIR) o |= FW_FOPEN_CACHE_DIR;
	if (f & FSP_OPEN_STREAM) o |= FW_FOPEN_STREAM;
	if (f & FSP_OPEN_NOFLUSH) o |= FW_FOPEN_NOFLUSH;
	if (f & FSP_OPEN_PARALLEL_DIRECT_WRITES) o |= FW_FOPEN_PARALLEL_DIRECT_WRITES;
	if (f & FSP_OPEN_PASSTHROUGH) o |= FW_FOPEN_PASSTHROUGH;
	return o;
}

static void release_fs_open(fsp_session *s, void *obj, const struct fsp_open_out *o,
			    int flags, bool is_dir)
{
	if (is_dir) {
		if (s->ops.releasedir)
			s->ops.releasedir(s, obj, o->fh);
	} else if (s->ops.release) {
		s->ops.release(s, obj, o->fh, flags);
	}
}

/* Publish an open: a handle for node, then fill oo. On failure the file
 * system's open is released here. */
static int make_handle(fsp_req *r, struct fsp__node *node, const struct fsp_open_out *o,
		       int flags, bool is_dir, struct fw_open_out *oo, uint64_t *id)
{
	struct fsp__handle *h;
	int rc = fsp__handle_new(r->s->handles, node, o->fh, flags, is_dir, &h);

	if (rc < 0) {
		release_fs_open(r->s, node->obj, o, flags, is_dir);
		return rc;
	}
	memset(oo, 0, sizeof(*oo));
	oo->fh = h->id;
	oo->open_flags = fopen_flags(o->flags);
	/* Without a flush callback a FLUSH per close(2) would be a wasted
	 * round trip. */
	if (!is_dir && !r->s->ops.flush && !(r->s->flags & FW_INIT_POSIX_LOCKS))
		oo->open_flags |= FW_FOPEN_NOFLUSH;
	if (o->flags & FSP_OPEN_PASSTHROUGH)
		oo->backing_id = o->backing_id;
	*id = h->id;
	return 0;
}

/* No-open (cfg.no_open / no_opendir, where the kernel supports it): the
 * kernel opens without asking and sends fh 0; such a request acts on its
 * node, held for the request like any other, with fh NULL. */
static bool no_open_active(const fsp_session *s, bool is_dir)
{
	return is_dir ? s->cfg.no_opendir && (s->flags & FW_INIT_NO_OPENDIR_SUPPORT)
		      : s->cfg.no_open && (s->flags & FW_INIT_NO_OPEN_SUPPORT);
}

/* The open a request names: a handle, or (no-open, fh 0) the node. */
struct open_ref {
	struct fsp__handle *h;
	struct fsp__node *node;   /* held when h is NULL */
	void *obj, *fh;
};

static int get_open(fsp_req *r, uint64_t nodeid, uint64_t fh, bool is_dir, struct open_ref *o)
{
	memset(o, 0, sizeof(*o));
	if (fh == 0 && no_open_active(r->s, is_dir)) {
		if (fsp__node_get(r->s->nodes, nodeid, &o->node) < 0)
			return -ESTALE;
		o->obj = o->node->obj;
		return 0;
	}
	if (fsp__handle_get(r->s->handles, fh, is_dir, &o->h) < 0)
		return -EBADF;
	o->obj = o->h->node->obj;
	o->fh = o->h->fh;
	return 0;
}

static void put_open(fsp_req *r, struct open_ref *o)
{
	if (o->h)
		fsp__handle_put(r->s->handles, o->h);
	else if (o->node)
		fsp__node_put(r->s->nodes, o->node);
}

/* get_open for the request's own node; replies on failure. */
static bool need_open(fsp_req *r, uint64_t fh, bool is_dir, struct open_ref *o)
{
	int rc = get_open(r, r->in->nodeid, fh, is_dir, o);
	if (rc < 0)
		fsp__reply_err(r, rc);
	return rc == 0;
}

#define NEED_OP(r, op) do { if (!(r)->s->ops.op) { fsp__reply_err(r, -ENOSYS); return; } } while (0)

/* Body name at off, replying on failure. */
#define GET_NAME(r, off, var) \
	const char *var; do { int _n = fsp__body_name(r, off, &var); \
	if (_n < 0) { if (_n == -EIO) fsp_log(1, "%s: malformed name", fsp__opname((r)->opcode)); \
		fsp__reply_err(r, _n); return; } } while (0)

/* ---- lookups and names ---- */

static void h_lookup(fsp_req *r)
{
	struct fsp_entry e;
	GET_NAME(r, 0, name);
	NEED_OP(r, lookup);
	entry_init(r, &e);
	int rc = r->s->ops.lookup(r, r->node->obj, name, &e);
	if (rc == -ENOENT && r->s->cfg.negative_timeout > 0) {
		memset(&e, 0, sizeof(e));
		e.entry_timeout = r->s->cfg.negative_timeout;
		rc = 0;
	}
	reply_entry(r, rc, &e);
}

static void h_forget(fsp_req *r)
{
	fsp__node_forget(r->s->nodes, r->in->nodeid, BODY(r, struct fw_forget_in)->nlookup);
}

static void h_batch_forget(fsp_req *r)
{
	const struct fw_batch_forget_in *b = BODY(r, struct fw_batch_forget_in);
	size_t room = (r->body_len - sizeof(*b)) / sizeof(struct fw_forget_one);
	const struct fw_forget_one *one = (const void *)(b + 1);

	if (b->count > room) {
		fsp_log(1, "BATCH_FORGET: %u entries announced, %zu sent; using those",
			b->count, room);
	}
	size_t n = b->count < room ? b->count : room;
	for (size_t i = 0; i < n; i++) {
		struct fw_forget_one f;
		memcpy(&f, &one[i], sizeof(f));  /* alignment-safe */
		fsp__node_forget(r->s->nodes, f.nodeid, f.nlookup);
	}
}

static void reply_attr(fsp_req *r, const struct stat *st)
{
	struct fw_attr_out ao;
	memset(&ao, 0, sizeof(ao));
	fsp__timeout_split(r->s->cfg.attr_timeout, &ao.attr_valid, &ao.attr_valid_nsec);
	fsp__fill_attr(&ao.attr, st, r->node->ino);
	fsp__reply_buf(r, &ao, sizeof(ao));
}

/* The open a GETATTR/SETATTR names by fh, or NULL. The fh is optional
 * there: one we don't hold, or one opened on another node, is ignored (the
 * request acts on r->node, and an fh of another file would have the file
 * system act on the wrong one: fsp-ptfs would truncate the wrong backing
 * file). The kernel never sends such an fh, so it is logged, once per
 * process, not per request. */
static struct fsp__handle *attr_handle(fsp_req *r, uint64_t fh)
{
	static atomic_flag logged = ATOMIC_FLAG_INIT;
	struct fsp__handle *h = NULL;

	if (fsp__handle_get(r->s->handles, fh, false, &h) < 0)
		return NULL;
	if (h->node != r->node) {
		if (!atomic_flag_test_and_set(&logged))
			fsp_log(1, "%s of node %llu with fh %llu of node %llu: fh ignored",
				fsp__opname(r->opcode), (unsigned long long)r->node->ino,
				(unsigned long long)fh, (unsigned long long)h->node->ino);
		fsp__handle_put(r->s->handles, h);
		h = NULL;
	}
	return h;
}

static void h_getattr(fsp_req *r)
{
	const struct fw_getattr_in *in = BODY(r, struct fw_getattr_in);
	struct fsp__handle *h = NULL;
	struct stat st;
	int rc;

	NEED_OP(r, getattr);
	if (in->getattr_flags & FW_GETATTR_FH)
		h = attr_handle(r, in->fh);
	memset(&st, 0, sizeof(st));
	rc = r->s->ops.getattr(r, r->node->obj, h ? h->fh : NULL, &st);
	if (h)
		fsp__handle_put(r->s->handles, h);
	if (rc < 0)
		fsp__reply_err(r, rc);
	else
		reply_attr(r, &st);
}

static void h_setattr(fsp_req *r)
{
	const struct fw_setattr_in *in = BODY(r, struct fw_setattr_in);
	struct fsp__handle *h = NULL;
	struct fsp_setattr sa;
	struct stat st;
	int rc;

	NEED_OP(r, setattr);
	memset(&sa, 0, sizeof(sa));
	if (in->valid & FW_FATTR_MODE) { sa.valid |= FSP_SET_MODE; sa.mode = in->mode & 07777; }
	if (in->valid & FW_FATTR_UID) { sa.valid |= FSP_SET_UID; sa.uid = in->uid; }
	if (in->valid & FW_FATTR_GID) { sa.valid |= FSP_SET_GID; sa.gid = in->gid; }
	if (in->valid & FW_FATTR_SIZE) {
		if (in->size > (uint64_t)INT64_MAX) {
			fsp__reply_err(r, -EFBIG);
			return;
		}
		sa.valid |= FSP_SET_SIZE;
		sa.size = (off_t)in->size;
	}
	if (in->valid & FW_FATTR_ATIME) {
		sa.valid |= FSP_SET_ATIME;
		sa.atime.tv_sec = (time_t)in->atime;
		sa.atime.tv_nsec = in->atimensec % 1000000000u;
		if (in->valid & FW_FATTR_ATIME_NOW)
			sa.valid |= FSP_SET_ATIME_NOW;
	}
	if (in->valid & FW_FATTR_MTIME) {
		sa.valid |= FSP_SET_MTIME;
		sa.mtime.tv_sec = (time_t)in->mtime;
		sa.mtime.tv_nsec = in->mtimensec % 1000000000u;
		if (in->valid & FW_FATTR_MTIME_NOW)
			sa.valid |= FSP_SET_MTIME_NOW;
	}
	if (in->valid & FW_FATTR_CTIME) {
		sa.valid |= FSP_SET_CTIME;
		sa.ctime.tv_sec = (time_t)in->ctime;
		sa.ctime.tv_nsec = in->ctimensec % 1000000000u;
	}
	if (in->valid & FW_FATTR_KILL_SUIDGID)
		sa.valid |= FSP_SET_KILL_SUIDGID;
	if (in->valid & FW_FATTR_FH)
		h = attr_handle(r, in->fh);
	memset(&st, 0, sizeof(st));
	rc = r->s->ops.setattr(r, r->node->obj, h ? h->fh : NULL, &sa, &st);
	if (h)
		fsp__handle_put(r->s->handles, h);
	if (rc < 0)
		fsp__reply_err(r, rc);
	else
		reply_attr(r, &st);
}

static void h_readlink(fsp_req *r)
{
	NEED_OP(r, readlink);
	size_t size = r->s->bufsize < PATH_MAX ? r->s->bufsize : PATH_MAX;
	int rc = r->s->ops.readlink(r, r->node->obj, r->w->outbuf, size);
	if (rc < 0)
		fsp__reply_err(r, rc);
	else
		fsp__reply_buf(r, r->w->outbuf, (size_t)rc > size ? size : (size_t)rc);
}

static void h_mknod(fsp_req *r)
{
	const struct fw_mknod_in *in = BODY(r, struct fw_mknod_in);
	struct fsp_entry e;
	GET_NAME(r, sizeof(*in), name);
	NEED_OP(r, mknod);
	r->umask = in->umask;
	entry_init(r, &e);
	int rc = r->s->ops.mknod(r, r->node->obj, name, in->mode, in->rdev, &e);
	reply_entry(r, rc, &e);
}

static void h_mkdir(fsp_req *r)
{
	const struct fw_mkdir_in *in = BODY(r, struct fw_mkdir_in);
	struct fsp_entry e;
	GET_NAME(r, sizeof(*in), name);
	NEED_OP(r, mkdir);
	r->umask = in->umask;
	entry_init(r, &e);
	int rc = r->s->ops.mkdir(r, r->node->obj, name, (in->mode & 07777) | S_IFDIR, &e);
	reply_entry(r, rc, &e);
}

static void h_symlink(fsp_req *r)
{
	struct fsp_entry e;
	GET_NAME(r, 0, name);
	size_t off = strlen(name) + 1;
	const char *target = r->body + off;
	/* the target is a path, not a name: up to PATH_MAX, NUL inside the body */
	if (off >= r->body_len || !memchr(target, 0, r->body_len - off)) {
		fsp_log(1, "SYMLINK: malformed target");
		fsp__reply_err(r, -EIO);
		return;
	}
	if (strlen(target) >= PATH_MAX || !*target) {
		fsp__reply_err(r, *target ? -ENAMETOOLONG : -ENOENT);
		return;
	}
	NEED_OP(r, symlink);
	entry_init(r, &e);
	int rc = r->s->ops.symlink(r, r->node->obj, name, target, &e);
	reply_entry(r, rc, &e);
}

static void h_link(fsp_req *r)
{
	const struct fw_link_in *in = BODY(r, struct fw_link_in);
	struct fsp__node *old;
	struct fsp_entry e;
	GET_NAME(r, sizeof(*in), name);
	NEED_OP(r, link);
	if (fsp__node_get(r->s->nodes, in->oldnodeid, &old) < 0) {
		fsp__reply_err(r, -ESTALE);
		return;
	}
	entry_init(r, &e);
	int rc = r->s->ops.link(r, old->obj, r->node->obj, name, &e);
	fsp__node_put(r->s->nodes, old);
	reply_entry(r, rc, &e);
}

static void h_unlink(fsp_req *r)
{
	GET_NAME(r, 0, name);
	NEED_OP(r, unlink);
	fsp__reply_err(r, r->s->ops.unlink(r, r->node->obj, name));
}

static void h_rmdir(fsp_req *r)
{
	GET_NAME(r, 0, name);
	NEED_OP(r, rmdir);
	fsp__reply_err(r, r->s->ops.rmdir(r, r->node->obj, name));
}

static void do_rename(fsp_req *r, uint64_t newdir_id, unsigned flags, size_t off)
{
	struct fsp__node *newdir;
	GET_NAME(r, off, name);
	GET_NAME(r, off + strlen(name) + 1, newname);
	NEED_OP(r, rename);
	if (fsp__node_get(r->s->nodes, newdir_id, &newdir) < 0) {
		fsp__reply_err(r, -ESTALE);
		return;
	}
	int rc = r->s->ops.rename(r, r->node->obj, name, newdir->obj, newname, flags);
	fsp__node_put(r->s->nodes, newdir);
	fsp__reply_err(r, rc);
}

static void h_rename(fsp_req *r)
{
	do_rename(r, BODY(r, struct fw_rename_in)->newdir, 0, sizeof(struct fw_rename_in));
}

static void h_rename2(fsp_req *r)
{
	const struct fw_rename2_in *in = BODY(r, struct fw_rename2_in);
	do_rename(r, in->newdir, in->flags, sizeof(*in));
}

/* ---- opens ---- */

static void do_open(fsp_req *r, bool is_dir)
{
	const struct fw_open_in *in = BODY(r, struct fw_open_in);
	struct fsp_open_out o = { 0 };
	struct fw_open_out oo;
	uint64_t id;
	int rc = 0;
	int (*open_cb)(fsp_req *, void *, int, struct fsp_open_out *) =
		is_dir ? r->s->ops.opendir : r->s->ops.open;

	if (no_open_active(r->s, is_dir)) {
		/* the kernel opens by itself from now on, without RELEASE */
		fsp__reply_err(r, -ENOSYS);
		return;
	}
	if (!is_dir && (in->open_flags & FW_OPEN_KILL_SUIDGID) && r->s->ops.setattr) {
		/* O_TRUNC by a caller without CAP_FSETID: set-id bits go, as a
		 * write would clear them (handle_killpriv) */
		struct fsp_setattr sa = { .valid = FSP_SET_KILL_SUIDGID };
		struct stat st;
		rc = r->s->ops.setattr(r, r->node->obj, NULL, &sa, &st);
		if (rc < 0) {
			fsp__reply_err(r, rc);
			return;
		}
	}
	if (open_cb)
		rc = open_cb(r, r->node->obj, (int)in->flags, &o);
	if (rc < 0) {
		fsp__reply_err(r, rc);
		return;
	}
	if ((o.flags & FSP_OPEN_PASSTHROUGH) && !(r->s->flags & FW_INIT_PASSTHROUGH))
		o.flags &= ~FSP_OPEN_PASSTHROUGH;
	rc = make_handle(r, r->node, &o, (int)in->flags, is_dir, &oo, &id);
	if (rc < 0) {
		fsp__reply_err(r, rc);
		return;
	}
	if (fsp__reply_buf(r, &oo, sizeof(oo)) == -ENOENT)
		fsp__handle_release(r->s->handles, id, is_dir);
}

static void h_open(fsp_req *r) { do_open(r, false); }
static void h_opendir(fsp_req *r) { do_open(r, true); }

static void do_create(fsp_req *r, bool tmpfile)
{
	const struct fw_create_in *in = BODY(r, struct fw_create_in);
	struct fsp_open_out o = { 0 };
	struct fsp_entry e;
	struct fsp__node *node;
	struct {
		struct fw_entry_out eo;
		struct fw_open_out oo;
	} out;
	uint64_t id;
	const char *name = NULL;
	int rc;

	if (!tmpfile && r->s->ops.mknod && no_open_active(r->s, false)) {
		/* the kernel makes the file with MKNOD and opens it without
		 * asking: one request instead of CREATE and RELEASE */
		fsp__reply_err(r, -ENOSYS);
		return;
	}
	if (!tmpfile) {
		int n = fsp__body_name(r, sizeof(*in), &name);
		if (n < 0) {
			fsp__reply_err(r, n);
			return;
		}
	}
	r->umask = in->umask;
	entry_init(r, &e);
	if (tmpfile) {
		NEED_OP(r, tmpfile);
		rc = r->s->ops.tmpfile(r, r->node->obj, in->mode, (int)in->flags, &e, &o);
	} else {
		NEED_OP(r, create);
		rc = r->s->ops.create(r, r->node->obj, name, in->mode, (int)in->flags, &e, &o);
	}
	if (rc < 0) {
		fsp__reply_err(r, rc);
		return;
	}
	/* From here the fs's open is ours to release on every failure: here
	 * when the entry can't be counted, in make_handle when the handle
	 * can't be made, by the handle after that. Counting and holding the
	 * node are one step: a FORGET (forged: the kernel has not seen the
	 * node yet) can't take it away in between. */
	rc = check_entry(r, &e);
	if (rc == 0)
		rc = fsp__node_add_entry_get(r->s->nodes, &e, 1, &node);
	if (rc < 0) {
		/* the open first: the reference may be all that keeps obj */
		release_fs_open(r->s, e.obj, &o, (int)in->flags, false);
		give_back(r->s, e.obj);
		fsp__reply_err(r, rc);
		return;
	}
	if ((o.flags & FSP_OPEN_PASSTHROUGH) && !(r->s->flags & FW_INIT_PASSTHROUGH))
		o.flags &= ~FSP_OPEN_PASSTHROUGH;
	rc = make_handle(r, node, &o, (int)in->flags, false, &out.oo, &id);
	fsp__node_put(r->s->nodes, node);
	if (rc < 0) {
		fsp__node_unsent(r->s->nodes, e.ino);
		fsp__reply_err(r, rc);
		return;
	}
	fill_entry_out(r, &out.eo, &e);
	if (fsp__reply_buf(r, &out, sizeof(out)) == -ENOENT) {
		fsp__handle_release(r->s->handles, id, false);
		fsp__node_unsent(r->s->nodes, e.ino);
	}
}

static void h_create(fsp_req *r) { do_create(r, false); }
static void h_tmpfile(fsp_req *r) { do_create(r, true); }

static void h_release(fsp_req *r)
{
	const struct fw_release_in *in = BODY(r, struct fw_release_in);
	bool is_dir = r->opcode == FW_RELEASEDIR;
	struct open_ref o;
	if (!is_dir && (in->release_flags & FW_RELEASE_FLOCK_UNLOCK) && r->s->ops.flock &&
	    get_open(r, r->in->nodeid, in->fh, false, &o) == 0) {
		/* the open's flock lock ends with it; the kernel sends no unlock */
		r->s->ops.flock(r, o.obj, o.fh, LOCK_UN);
		put_open(r, &o);
	}
	int rc = fsp__handle_release(r->s->handles, in->fh, is_dir);
	if (rc < 0)
		fsp_log(1, "%s of unknown handle %llu", fsp__opname(r->opcode),
			(unsigned long long)in->fh);
	fsp__reply_err(r, rc);
}

static void h_flush(fsp_req *r)
{
	const struct fw_flush_in *in = BODY(r, struct fw_flush_in);
	struct open_ref o;
	bool locks = (r->s->flags & FW_INIT_POSIX_LOCKS) && r->s->ops.setlk;
	/* ENOSYS: the kernel sends no FLUSH any more (opens made without
	 * asking have no FOPEN_NOFLUSH) */
	if (!locks)
		NEED_OP(r, flush);
	if (!need_open(r, in->fh, false, &o))
		return;
	int rc = 0;
	if (locks) {
		/* a close ends the owner's record locks on the file (POSIX);
		 * the kernel leaves that to the FLUSH */
		struct fsp_lock lk = { .type = F_UNLCK, .start = 0, .end = FSP_LOCK_END };
		rc = r->s->ops.setlk(r, o.obj, o.fh, in->lock_owner, &lk, 0);
	}
	if (r->s->ops.flush) {
		int frc = r->s->ops.flush(r, o.obj, o.fh, in->lock_owner);
		if (rc == 0)
			rc = frc;
	}
	put_open(r, &o);
	fsp__reply_err(r, rc);
}

ssize_t fsp_reply_read_iov(fsp_req *r, const struct iovec *iov, int n)
{
	struct iovec v[FSP_READ_IOV_MAX + 1];
	size_t len = 0, max;
	int rc;

	if (r->opcode != FW_READ || r->replied || n < 0 || n > FSP_READ_IOV_MAX)
		return -EINVAL;
	max = BODY(r, struct fw_read_in)->size;
	if (max > r->s->bufsize)
		max = r->s->bufsize;
	for (int i = 0; i < n; i++) {
		len += iov[i].iov_len;
		v[i + 1] = iov[i];
	}
	if (len > max)
		return -EINVAL;
	rc = fsp__reply_iov(r, v, n + 1);
	if (rc < 0)
		return rc;
	FSP__STAT_ADD(r->w->st.bytes_read, (uint64_t)len);
	return (ssize_t)len;
}

static void h_read(fsp_req *r)
{
	const struct fw_read_in *in = BODY(r, struct fw_read_in);
	size_t size = in->size;
	struct open_ref o;

	if (in->offset > (uint64_t)INT64_MAX) {
		fsp__reply_err(r, -EINVAL);
		return;
	}
	if (size > r->s->bufsize)
		size = r->s->bufsize;  /* the kernel never asks more than max_pages */
	NEED_OP(r, read);
	if (!need_open(r, in->fh, false, &o))
		return;
	ssize_t n = r->s->ops.read(r, o.obj, o.fh, r->w->outbuf, size, (off_t)in->offset);
	put_open(r, &o);
	if (r->replied)
		return;   /* fsp_reply_read_iov sent it */
	if (n < 0) {
		fsp__reply_err(r, (int)n);
		return;
	}
	if ((size_t)n > size)
		n = (ssize_t)size;
	FSP__STAT_ADD(r->w->st.bytes_read, (uint64_t)n);
	fsp__reply_buf(r, r->w->outbuf, (size_t)n);
}

static void h_write(fsp_req *r)
{
	const struct fw_write_in *in = BODY(r, struct fw_write_in);
	struct fw_write_out wo = { 0 };
	struct open_ref o;
	uint32_t flags = 0;

	if (r->body_len - sizeof(*in) < in->size) {
		fsp_log(1, "WRITE: %u bytes announced, %zu received", in->size,
			r->body_len - sizeof(*in));
		fsp__reply_err(r, -EIO);
		return;
	}
	if (in->offset > (uint64_t)INT64_MAX - in->size) {
		fsp__reply_err(r, -EFBIG);
		return;
	}
	NEED_OP(r, write);
	if (!need_open(r, in->fh, false, &o))
		return;
	if (in->write_flags & FW_WRITE_CACHE) flags |= FSP_WRITE_CACHE;
	if (in->write_flags & FW_WRITE_KILL_SUIDGID) flags |= FSP_WRITE_KILL_SUIDGID;
	ssize_t n = r->s->ops.write(r, o.obj, o.fh, in + 1, in->size, (off_t)in->offset, flags);
	put_open(r, &o);
	if (n < 0) {
		fsp__reply_err(r, (int)n);
		return;
	}
	if ((size_t)n > in->size)
		n = in->size;
	FSP__STAT_ADD(r->w->st.bytes_written, (uint64_t)n);
	wo.size = (uint32_t)n;
	fsp__reply_buf(r, &wo, sizeof(wo));
}

static void h_fsync(fsp_req *r)
{
	const struct fw_fsync_in *in = BODY(r, struct fw_fsync_in);
	bool is_dir = r->opcode == FW_FSYNCDIR;
	int (*cb)(fsp_req *, void *, void *, int) = is_dir ? r->s->ops.fsyncdir : r->s->ops.fsync;
	struct open_ref o;
	if (!need_open(r, in->fh, is_dir, &o))
		return;
	int rc = cb ? cb(r, o.obj, o.fh, in->fsync_flags & FW_FSYNC_FDATASYNC) : 0;
	put_open(r, &o);
	fsp__reply_err(r, rc);
}

static void h_fallocate(fsp_req *r)
{
	const struct fw_fallocate_in *in = BODY(r, struct fw_fallocate_in);
	NEED_OP(r, fallocate);
	if (in->offset > (uint64_t)INT64_MAX || in->length > (uint64_t)INT64_MAX ||
	    in->length == 0) {
		fsp__reply_err(r, -EINVAL);
		return;
	}
	struct open_ref o;
	if (!need_open(r, in->fh, false, &o))
		return;
	int rc = r->s->ops.fallocate(r, o.obj, o.fh, (int)in->mode, (off_t)in->offset,
				     (off_t)in->length);
	put_open(r, &o);
	fsp__reply_err(r, rc);
}

static void h_lseek(fsp_req *r)
{
	const struct fw_lseek_in *in = BODY(r, struct fw_lseek_in);
	struct fw_lseek_out lo = { 0 };
	NEED_OP(r, lseek);
	struct open_ref o;
	if (!need_open(r, in->fh, false, &o))
		return;
	off_t pos = r->s->ops.lseek(r, o.obj, o.fh, (off_t)in->offset, (int)in->whence);
	put_open(r, &o);
	if (pos < 0) {
		fsp__reply_err(r, (int)pos);
		return;
	}
	lo.offset = (uint64_t)pos;
	fsp__reply_buf(r, &lo, sizeof(lo));
}

static void h_copy_file_range(fsp_req *r)
{
	const struct fw_copy_file_range_in *in = BODY(r, struct fw_copy_file_range_in);
	struct open_ref oi, oo;
	NEED_OP(r, copy_file_range);
	if (!need_open(r, in->fh_in, false, &oi))
		return;
	int rc = get_open(r, in->nodeid_out, in->fh_out, false, &oo);
	if (rc < 0) {
		put_open(r, &oi);
		fsp__reply_err(r, rc);
		return;
	}
	size_t len = in->len;
	if (r->opcode == FW_COPY_FILE_RANGE && len > UINT32_MAX)
		len = UINT32_MAX;  /* the old reply has 32 bits for the count */
	ssize_t n = r->s->ops.copy_file_range(r, oi.obj, oi.fh, (off_t)in->off_in,
					      oo.obj, oo.fh, (off_t)in->off_out, len,
					      (unsigned)in->flags);
	put_open(r, &oi);
	put_open(r, &oo);
	if (n < 0) {
		fsp__reply_err(r, (int)n);
	} else if (r->opcode == FW_COPY_FILE_RANGE) {
		struct fw_write_out wo = { .size = (uint32_t)n };
		fsp__reply_buf(r, &wo, sizeof(wo));
	} else {
		struct fw_copy_file_range_out co = { .bytes_copied = (uint64_t)n };
		fsp__reply_buf(r, &co, sizeof(co));
	}
}

/* ---- directories ---- */

static void do_readdir(fsp_req *r, bool plus)
{
	const struct fw_read_in *in = BODY(r, struct fw_read_in);
	struct fsp_dirbuf db;
	struct open_ref o;

	NEED_OP(r, readdir);
	if (!need_open(r, in->fh, true, &o))
		return;
	memset(&db, 0, sizeof(db));
	db.r = r;
	db.buf = r->w->outbuf;
	db.size = in->size < r->s->bufsize ? in->size : r->s->bufsize;
	db.plus = plus;
	int rc = r->s->ops.readdir(r, o.obj, o.fh, (off_t)in->offset, &db);
	put_open(r, &o);
	if (rc < 0)
		fsp__reply_err(r, rc);
	else if (fsp__reply_buf(r, db.buf, db.len) == 0)
		db.ninos = 0;   /* delivered: the kernel counts them now */
	for (size_t i = 0; i < db.ninos; i++)
		fsp__node_unsent(r->s->nodes, db.inos[i]);
	fsp__free(db.inos);
}

static void h_readdir(fsp_req *r) { do_readdir(r, false); }
static void h_readdirplus(fsp_req *r) { do_readdir(r, true); }

/* ---- locks ---- */

/* The lock of a GETLK/SETLK/SETLKW; replies EIO and returns false when the
 * kernel's description is not one. */
static bool lock_in(fsp_req *r, const struct fw_file_lock *w, struct fsp_lock *lk)
{
	if ((w->type != F_RDLCK && w->type != F_WRLCK && w->type != F_UNLCK) ||
	    w->start > (uint64_t)INT64_MAX || w->end > (uint64_t)INT64_MAX || w->end < w->start) {
		fsp_log(1, "%s: malformed lock (type %u, %llu..%llu)", fsp__opname(r->opcode),
			w->type, (unsigned long long)w->start, (unsigned long long)w->end);
		fsp__reply_err(r, -EIO);
		return false;
	}
	lk->type = (int)w->type;
	lk->start = (off_t)w->start;
	lk->end = (off_t)w->end;
	lk->pid = (pid_t)w->pid;
	return true;
}

static void h_getlk(fsp_req *r)
{
	const struct fw_lk_in *in = BODY(r, struct fw_lk_in);
	struct fw_lk_out lo;
	struct fsp_lock lk;
	struct open_ref o;

	NEED_OP(r, getlk);
	if (!lock_in(r, &in->lk, &lk) || !need_open(r, in->fh, false, &o))
		return;
	int rc = r->s->ops.getlk(r, o.obj, o.fh, in->owner, &lk);
	put_open(r, &o);
	memset(&lo, 0, sizeof(lo));
	lo.lk.type = F_UNLCK;
	if (rc == 0 && lk.type != F_UNLCK) {
		if ((lk.type != F_RDLCK && lk.type != F_WRLCK) || lk.start < 0 ||
		    lk.end < lk.start) {
			fsp_log(0, "GETLK: file system returned a malformed lock");
			rc = -EIO;
		}
		lo.lk.type = (uint32_t)lk.type;
		lo.lk.start = (uint64_t)lk.start;
		lo.lk.end = (uint64_t)lk.end;
		lo.lk.pid = lk.pid > 0 ? (uint32_t)lk.pid : 0;
	}
	if (rc < 0)
		fsp__reply_err(r, rc);
	else
		fsp__reply_buf(r, &lo, sizeof(lo));
}

/* SETLK and SETLKW (waits); FW_LK_FLOCK: flock(2) semantics. */
static void h_setlk(fsp_req *r)
{
	const struct fw_lk_in *in = BODY(r, struct fw_lk_in);
	int wait = r->opcode == FW_SETLKW;
	bool flock = in->lk_flags & FW_LK_FLOCK;
	struct fsp_lock lk;
	struct open_ref o;
	int rc;

	if (flock)
		NEED_OP(r, flock);
	else
		NEED_OP(r, setlk);
	if (!lock_in(r, &in->lk, &lk) || !need_open(r, in->fh, false, &o))
		return;
	if (flock) {
		int op = lk.type == F_RDLCK ? LOCK_SH : lk.type == F_WRLCK ? LOCK_EX : LOCK_UN;
		if (!wait && op != LOCK_UN)
			op |= LOCK_NB;
		rc = r->s->ops.flock(r, o.obj, o.fh, op);
	} else {
		rc = r->s->ops.setlk(r, o.obj, o.fh, in->owner, &lk, wait);
	}
	put_open(r, &o);
	fsp__reply_err(r, rc);
}

/* ---- file system wide ---- */

static void h_statfs(fsp_req *r)
{
	struct fw_statfs_out so;
	struct statvfs sv;
	int rc = 0;

	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = sv.f_frsize = 4096;
	sv.f_namemax = NAME_MAX;
	if (r->s->ops.statfs)
		rc = r->s->ops.statfs(r, r->node->obj, &sv);
	if (rc < 0) {
		fsp__reply_err(r, rc);
		return;
	}
	memset(&so, 0, sizeof(so));
	so.st.blocks = sv.f_blocks;
	so.st.bfree = sv.f_bfree;
	so.st.bavail = sv.f_bavail;
	so.st.files = sv.f_files;
	so.st.ffree = sv.f_ffree;
	so.st.bsize = (uint32_t)sv.f_bsize;
	so.st.namelen = (uint32_t)sv.f_namemax;
	so.st.frsize = (uint32_t)(sv.f_frsize ? sv.f_frsize : sv.f_bsize);
	fsp__reply_buf(r, &so, sizeof(so));
}

static void h_access(fsp_req *r)
{
	const struct fw_access_in *in = BODY(r, struct fw_access_in);
	int rc = r->s->ops.access ? r->s->ops.access(r, r->node->obj, (int)in->mask) : 0;
	fsp__reply_err(r, rc);
}

static void h_destroy(fsp_req *r)
{
	/* The kernel is done with us; the device will report ENODEV next. */
	fsp__reply_err(r, 0);
}

static void h_interrupt(fsp_req *r)
{
	uint64_t target = BODY(r, struct fw_interrupt_in)->unique;
	if (fsp__engine_interrupt(r->s, target))
		return;   /* being served: marked, and no answer is due */
	/* Not being served: already answered, or read by a worker that has
	 * not published it yet. EAGAIN asks the kernel to queue the INTERRUPT
	 * again; it finds the request only on the fd that read it (else
	 * ENOENT, and the early mark made above catches the request). */
	struct fw_out_header oh = { .len = sizeof(oh), .error = -EAGAIN,
				    .unique = r->in->unique };
	struct iovec iov = { &oh, sizeof(oh) };
	sched_yield();   /* don't bounce it back before the reader publishes */
	r->chan->ops->send(r->chan, &iov, 1);
}

/* Ops the kernel copes without: for most ENOSYS makes it stop asking (STATX
 * falls back to GETATTR, SYNCFS becomes a no-op, POLL always ready); IOCTL
 * (cp's FICLONE) becomes ENOTTY. Expected traffic, so no log line. */
static void h_enosys(fsp_req *r)
{
	fsp__reply_err(r, -ENOSYS);
}

static void h_noreply(fsp_req *r)
{
	(void)r;   /* NOTIFY_REPLY: we never ask the kernel for data (RETRIEVE) */
}

/* ---- extended attributes ---- */

static void h_setxattr(fsp_req *r)
{
	const struct fw_setxattr_in *in = BODY(r, struct fw_setxattr_in);
	size_t hdr = (r->s->flags & FW_INIT_SETXATTR_EXT) ? sizeof(*in) : FW_COMPAT_SETXATTR_IN_SIZE;
	GET_NAME(r, hdr, name);
	size_t voff = hdr + strlen(name) + 1;
	if (voff > r->body_len || r->body_len - voff < in->size) {
		fsp_log(1, "SETXATTR: value of %u bytes runs past the request", in->size);
		fsp__reply_err(r, -EIO);
		return;
	}
	NEED_OP(r, setxattr);
	fsp__reply_err(r, r->s->ops.setxattr(r, r->node->obj, name, r->body + voff, in->size,
					     (int)in->flags));
}

static void reply_xattr_size(fsp_req *r, ssize_t n, uint32_t size)
{
	if (n < 0) {
		fsp__reply_err(r, (int)n);
	} else if (size == 0) {
		struct fw_getxattr_out go = { .size = (uint32_t)n };
		fsp__reply_buf(r, &go, sizeof(go));
	} else if ((size_t)n > size) {
		fsp__reply_err(r, -ERANGE);
	} else {
		fsp__reply_buf(r, r->w->outbuf, (size_t)n);
	}
}

static void h_getxattr(fsp_req *r)
{
	const struct fw_getxattr_in *in = BODY(r, struct fw_getxattr_in);
	GET_NAME(r, sizeof(*in), name);
	NEED_OP(r, getxattr);
	uint32_t size = in->size < r->s->bufsize ? in->size : (uint32_t)r->s->bufsize;
	ssize_t n = r->s->ops.getxattr(r, r->node->obj, name, size ? r->w->outbuf : NULL, size);
	reply_xattr_size(r, n, size);
}

static void h_listxattr(fsp_req *r)
{
	const struct fw_getxattr_in *in = BODY(r, struct fw_getxattr_in);
	NEED_OP(r, listxattr);
	uint32_t size = in->size < r->s->bufsize ? in->size : (uint32_t)r->s->bufsize;
	ssize_t n = r->s->ops.listxattr(r, r->node->obj, size ? r->w->outbuf : NULL, size);
	reply_xattr_size(r, n, size);
}

static void h_removexattr(fsp_req *r)
{
	GET_NAME(r, 0, name);
	NEED_OP(r, removexattr);
	fsp__reply_err(r, r->s->ops.removexattr(r, r->node->obj, name));
}

/* ---- the table ---- */

#define N FSP__OP_NODE
#define NR FSP__OP_NOREPLY
#define OP(code, fn, type, fl) [code] = { &(#code)[3], sizeof(type), fn, fl }
#define OP0(code, fn, fl) [code] = { &(#code)[3], 0, fn, fl }

/* Valid replies, per op: entry ops -> fw_entry_out or error; OPEN/OPENDIR ->
 * fw_open_out; CREATE/TMPFILE -> entry_out + open_out; READ/READDIR*/
/* READLINK/GETXATTR/LISTXATTR -> data; WRITE/COPY_FILE_RANGE -> write_out;
 * GETLK -> fw_lk_out;
 * everything else -> error only (0 = success). INIT is handled by dispatch.c. */
const struct fsp__op_desc fsp__ops_table[FSP__OPCODE_MAX] = {
	OP0(FW_LOOKUP, h_lookup, N),
	OP(FW_FORGET, h_forget, struct fw_forget_in, NR),
	OP(FW_GETATTR, h_getattr, struct fw_getattr_in, N),
	OP(FW_SETATTR, h_setattr, struct fw_setattr_in, N),
	OP0(FW_READLINK, h_readlink, N),
	OP0(FW_SYMLINK, h_symlink, N),
	OP(FW_MKNOD, h_mknod, struct fw_mknod_in, N),
	OP(FW_MKDIR, h_mkdir, struct fw_mkdir_in, N),
	OP0(FW_UNLINK, h_unlink, N),
	OP0(FW_RMDIR, h_rmdir, N),
	OP(FW_RENAME, h_rename, struct fw_rename_in, N),
	OP(FW_LINK, h_link, struct fw_link_in, N),
	OP(FW_OPEN, h_open, struct fw_open_in, N),
	OP(FW_READ, h_read, struct fw_read_in, 0),
	OP(FW_WRITE, h_write, struct fw_write_in, 0),
	OP0(FW_STATFS, h_statfs, N),
	OP(FW_RELEASE, h_release, struct fw_release_in, 0),
	OP(FW_FSYNC, h_fsync, struct fw_fsync_in, 0),
	OP(FW_SETXATTR, h_setxattr, struct fw_getxattr_in /* compat: 8 */, N),
	OP(FW_GETXATTR, h_getxattr, struct fw_getxattr_in, N),
	OP(FW_LISTXATTR, h_listxattr, struct fw_getxattr_in, N),
	OP0(FW_REMOVEXATTR, h_removexattr, N),
	OP(FW_FLUSH, h_flush, struct fw_flush_in, 0),
	OP(FW_OPENDIR, h_opendir, struct fw_open_in, N),
	OP(FW_READDIR, h_readdir, struct fw_read_in, 0),
	OP(FW_RELEASEDIR, h_release, struct fw_release_in, 0),
	OP(FW_FSYNCDIR, h_fsync, struct fw_fsync_in, 0),
	OP(FW_GETLK, h_getlk, struct fw_lk_in, 0),
	OP(FW_SETLK, h_setlk, struct fw_lk_in, 0),
	OP(FW_SETLKW, h_setlk, struct fw_lk_in, 0),
	OP(FW_ACCESS, h_access, struct fw_access_in, N),
	OP(FW_CREATE, h_create, struct fw_create_in, N),
	OP(FW_INTERRUPT, h_interrupt, struct fw_interrupt_in, NR),
	OP0(FW_DESTROY, h_destroy, 0),
	OP0(FW_NOTIFY_REPLY, h_noreply, NR),
	OP(FW_BATCH_FORGET, h_batch_forget, struct fw_batch_forget_in, NR),
	OP(FW_FALLOCATE, h_fallocate, struct fw_fallocate_in, 0),
	OP(FW_READDIRPLUS, h_readdirplus, struct fw_read_in, 0),
	OP(FW_RENAME2, h_rename2, struct fw_rename2_in, N),
	OP(FW_LSEEK, h_lseek, struct fw_lseek_in, 0),
	OP(FW_COPY_FILE_RANGE, h_copy_file_range, struct fw_copy_file_range_in, 0),
	OP(FW_COPY_FILE_RANGE_64, h_copy_file_range, struct fw_copy_file_range_in, 0),
	OP(FW_TMPFILE, h_tmpfile, struct fw_create_in, N),
	OP0(FW_STATX, h_enosys, 0),
	OP0(FW_SYNCFS, h_enosys, 0),
	OP0(FW_IOCTL, h_enosys, 0),     /* the kernel turns it into ENOTTY */
	OP0(FW_POLL, h_enosys, 0),      /* the kernel then treats files as always ready */
	OP0(FW_BMAP, h_enosys, 0),
};
