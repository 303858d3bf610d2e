/* ptfs_i.h — fsp-ptfs internals shared by its files.
 *
 * fsp-ptfs mirrors a directory (SOURCE). Its objects are nodes (struct
 * pt_node), one per backing inode, keyed by (st_dev, st_ino); hard links are
 * one node. A node does not keep a descriptor: it keeps a file handle
 * (name_to_handle_at) and gets an O_PATH descriptor from a bounded LRU cache,
 * reopened with open_by_handle_at on demand. Where the backing file system has
 * no file handles the node keeps its O_PATH descriptor for its whole life
 * ("pinned").
 *
 * Confinement: every backing operation is relative to a node's descriptor with
 * a single name, never a path built from parts: openat2 with RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS for names from the kernel, *at()
 * calls with AT_SYMLINK_NOFOLLOW / AT_EMPTY_PATH, and our own /proc/self/fd/N
 * for the few calls that have no *at form (reopen, xattrs, link).
 *
 * Files: main.c (options, start, daemon, callback table), node.c (node table,
 * handles, descriptor cache), creds.c (per-thread caller credentials),
 * ops_node.c (names and attributes), ops_file.c (open files, passthrough),
 * ops_dir.c (directory listings), ops_lock.c (record locks and flock on the
 * backing files).
 *
 * Locks: an open directory's lock (ops_dir.c) is held across the lookups of
 * a listing, which take a table shard lock and a cache shard lock (node.c),
 * never both at once; node->lock (passthrough registration), the mount
 * table lock and the janitor lock are taken alone. No other lock is ever held while taking one.
 */
#ifndef PTFS_I_H
#define PTFS_I_H

#include <fsp/fsp.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

struct pt_node {
	/* Immutable after the node is published. */
	uint64_t id;              /* node id, never reused; FSP_ROOT_INO for SOURCE */
	dev_t dev;                /* backing identity */
	ino_t ino;
	mode_t type;              /* S_IFMT bits */
	bool tmp;                 /* made by tmpfile: nlink 0 is its normal state */
	struct file_handle *fh;   /* NULL: identity kept by a pinned descriptor */
	int mnt;                  /* mount table index for open_by_handle_at */
	atomic_bool stale;        /* the backing object is gone or was replaced */

	/* Guarded by the node's table shard lock. */
	uint64_t refs;            /* entries handed to the library + our own */
	bool hashed;              /* findable by (dev, ino) */
	struct pt_node *hnext;

	/* Guarded by the node's cache shard lock. */
	int fd;                   /* O_PATH descriptor, or -1 when not cached */
	unsigned pins;            /* users of fd right now; never evicted while > 0 */
	struct pt_node *lprev, *lnext;
	bool pinned;              /* fd lives as long as the node (no handle, the
				   * root, O_TMPFILE); immutable once published */

	/* Guarded by lock: one passthrough registration shared by all opens
	 * of the node (the kernel refuses two backing files for one inode). */
	pthread_mutex_t lock;
	int backing_id;
	unsigned backing_opens;
	/* Also guarded by lock: the opens of the node (its last release ends
	 * every lock on it) and the lock owners' descriptors (ops_lock.c). */
	unsigned opens;
	struct pt_lockowner *owners;
};

/* One open of a regular file (the per-open value of open/create/tmpfile). */
struct pt_file {
	int fd;          /* backing descriptor, or -1 with passthrough */
	int flags;       /* the open(2) flags of this open */
	bool backing;    /* holds one of the node's backing_opens */
	atomic_int lock_fd; /* passthrough: descriptor for flock, opened on first
			     * use (-1 before); otherwise unused (fd serves) */
};

enum { PT_AUTO, PT_ON, PT_OFF };

struct ptfs {
	const char *source;       /* as given */
	int root_fd;              /* O_PATH of SOURCE (the root node's fd) */
	int proc_fd;              /* O_PATH of /proc/self/fd */
	dev_t root_dev;
	struct pt_node *root;
	fsp_session *s;
	int pt_mode;              /* -o passthrough= */
	const char *pt_off_why;   /* why pt_mode is PT_OFF, for the log */
	atomic_int pt_state;      /* 1 passthrough in use, 0 not (after init) */
	bool handles;             /* file handles usable on SOURCE's file system */
	bool switch_creds;        /* allow_other as root: act as the caller */
	bool writeback;
	unsigned fd_cache_max;
	int ready_fd;             /* daemon: pipe to the waiting parent, else -1 */
	bool failed;              /* a startup check failed after mount */
	uid_t my_uid;
	gid_t my_gid;
	int ngroups;              /* the daemon's own supplementary groups */
	gid_t *groups;
	double entry_timeout, attr_timeout;
};

extern struct ptfs pt;

/* ---- node.c ---- */
int pt_nodes_init(int root_fd, int mnt_fd, unsigned cache_max);
void pt_nodes_free(void);
/* Find or make the node of the object open at anyfd (any kind of descriptor)
 * whose attributes are *st. pathfd: an O_PATH descriptor of the same object
 * to keep (consumed: cached, kept or closed), or -1. tmp: an O_TMPFILE.
 * On success one reference to *out is taken. */
int pt_node_get(int pathfd, int anyfd, const struct stat *st, bool tmp, struct pt_node **out);
void pt_node_ref(struct pt_node *n);
/* Drop count references; the node is freed at zero (never the root). */
void pt_node_unref(struct pt_node *n, uint64_t count);
/* An O_PATH descriptor of n, valid until pt_node_fd_put(n); or -ESTALE when
 * the backing object is gone, or another negative errno. */
int pt_node_fd(struct pt_node *n);
void pt_node_fd_put(struct pt_node *n);
void pt_node_mark_stale(struct pt_node *n);
size_t pt_nodes_stats(char *buf, size_t size);
/* The thread that closes cached descriptors of removed files (node.c). */
void pt_janitor_start(void);
void pt_janitor_stop(void);

/* ---- creds.c ---- */
struct pt_creds {
	bool on;
};
int pt_creds_init(void);
/* Act as the caller of r on this thread (fsuid, fsgid, groups) when
 * switch_creds is set; 0 or -errno. Always pair with pt_creds_leave. */
int pt_creds_enter(fsp_req *r, struct pt_creds *c);
void pt_creds_leave(struct pt_creds *c);

/* ---- ops_node.c ---- */
bool pt_name_ok(const char *name);
/* Was the directory open at dirfd removed (no links left)? */
bool pt_dir_gone(int dirfd);
/* Reopen our own descriptor fd (O_PATH) with flags through /proc/self/fd. */
int pt_reopen(int fd, int flags);
void pt_proc_path(char *buf, size_t size, int fd);
void pt_fill_stat(struct stat *st);
/* Look name up in the directory open at dirfd: fills e->ino/obj/attr, one
 * reference taken. Leaves the timeouts alone. */
int pt_lookup_at(int dirfd, const char *name, struct fsp_entry *e);
int pt_lookup(fsp_req *r, void *dir, const char *name, struct fsp_entry *e);
void pt_forget(fsp_session *s, void *obj, uint64_t n);
int pt_getattr(fsp_req *r, void *obj, void *fh, struct stat *st);
int pt_setattr(fsp_req *r, void *obj, void *fh, const struct fsp_setattr *sa, struct stat *st);
int pt_readlink(fsp_req *r, void *obj, char *buf, size_t size);
int pt_mknod(fsp_req *r, void *dir, const char *name, mode_t mode, dev_t rdev,
	     struct fsp_entry *e);
int pt_mkdir(fsp_req *r, void *dir, const char *name, mode_t mode, struct fsp_entry *e);
int pt_symlink(fsp_req *r, void *dir, const char *name, const char *target,
	       struct fsp_entry *e);
int pt_link(fsp_req *r, void *obj, void *newdir, const char *newname, struct fsp_entry *e);
int pt_unlink(fsp_req *r, void *dir, const char *name);
int pt_rmdir(fsp_req *r, void *dir, const char *name);
int pt_rename(fsp_req *r, void *dir, const char *name, void *newdir, const char *newname,
	      unsigned flags);
int pt_statfs(fsp_req *r, void *obj, struct statvfs *st);
int pt_setxattr(fsp_req *r, void *obj, const char *name, const void *value, size_t size,
		int flags);
ssize_t pt_getxattr(fsp_req *r, void *obj, const char *name, void *buf, size_t size);
ssize_t pt_listxattr(fsp_req *r, void *obj, char *buf, size_t size);
int pt_removexattr(fsp_req *r, void *obj, const char *name);
int pt_access(fsp_req *r, void *obj, int mask);

/* ---- ops_file.c ---- */
struct pt_file;
int pt_open(fsp_req *r, void *obj, int flags, struct fsp_open_out *o);
int pt_create(fsp_req *r, void *dir, const char *name, mode_t mode, int flags,
	      struct fsp_entry *e, struct fsp_open_out *o);
int pt_tmpfile(fsp_req *r, void *dir, mode_t mode, int flags, struct fsp_entry *e,
	       struct fsp_open_out *o);
ssize_t pt_read(fsp_req *r, void *obj, void *fh, void *buf, size_t size, off_t off);
ssize_t pt_write(fsp_req *r, void *obj, void *fh, const void *data, size_t size, off_t off,
		 uint32_t flags);
int pt_flush(fsp_req *r, void *obj, void *fh, uint64_t lock_owner);
void pt_release(fsp_session *s, void *obj, void *fh, int flags);
int pt_fsync(fsp_req *r, void *obj, void *fh, int datasync);
int pt_fallocate(fsp_req *r, void *obj, void *fh, int mode, off_t off, off_t len);
off_t pt_lseek(fsp_req *r, void *obj, void *fh, off_t off, int whence);
ssize_t pt_copy_file_range(fsp_req *r, void *obj_in, void *fh_in, off_t off_in, void *obj_out,
			   void *fh_out, off_t off_out, size_t len, unsigned flags);
/* The descriptor of an open file for fstat/ftruncate, or -1 (passthrough). */
int pt_file_fd(void *fh);
void pt_passthrough_probe(fsp_session *s);

/* ---- ops_lock.c ---- */
int pt_getlk(fsp_req *r, void *obj, void *fh, uint64_t owner, struct fsp_lock *lk);
int pt_setlk(fsp_req *r, void *obj, void *fh, uint64_t owner, const struct fsp_lock *lk,
	     int wait);
int pt_flock(fsp_req *r, void *obj, void *fh, int op);
/* An open of n was released (ops_file.c): at the last one, every lock
 * owner's descriptor on n is closed. */
void pt_locks_drop(struct pt_node *n);

/* ---- ops_dir.c ---- */
int pt_opendir(fsp_req *r, void *obj, int flags, struct fsp_open_out *o);
int pt_readdir(fsp_req *r, void *obj, void *fh, off_t off, fsp_dirbuf *db);
void pt_releasedir(fsp_session *s, void *obj, void *fh);
int pt_fsyncdir(fsp_req *r, void *obj, void *fh, int datasync);

#endif
