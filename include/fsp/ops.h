/* fsp/ops.h — the callbacks a file system implements.
 *
 * A file system is a table of callbacks (struct fsp_operations) over its own
 * objects. The library never looks inside an object: it is a `void *` that
 * the file system hands out in entries (lookup, create, ...) and gets back in
 * later calls. The library keeps the kernel's view of those objects:
 *
 *   node id    Each object the kernel knows has a node id, chosen by the file
 *              system (struct fsp_entry.ino): unique among the objects the
 *              library holds, FSP_ROOT_INO for the root, never 0. A simple
 *              counter that is never reused is the easy way to get this right.
 *   lookups    Every successful entry (lookup, create, mknod, mkdir, symlink,
 *              link, tmpfile, and each fsp_dirbuf_add_plus() that returned 0)
 *              hands the library ONE reference to entry->obj. The library hands
 *              them all back in a single forget(obj, n) once the kernel has
 *              forgotten the node AND no request, open handle or directory
 *              stream uses it any more. forget is called exactly once per such
 *              period, never concurrently with another callback on the same
 *              object. An object must stay valid while the library holds a
 *              reference to it. A file system that keeps objects alive for its
 *              own reasons too (a directory entry, a cache) counts these
 *              references in the object — one atomic counter, incremented
 *              while whatever lock protects the object is still held — and
 *              frees the object when both its own reasons and the count are
 *              gone.
 *   handles    open/opendir/create return a per-open value (fsp_open_out.fh).
 *              The library gives the kernel its own handle number, checks it
 *              on every call and calls release/releasedir exactly once per
 *              successful open, after the last request that uses it. flush is
 *              called on every close(2) of a descriptor (the "cleanup" stage);
 *              release when the last descriptor sharing the open is gone.
 *   ESTALE     A request for a node id the library does not hold is answered
 *              ESTALE without calling the file system. A callback may return
 *              -ESTALE itself for an object it has dropped.
 *
 * Threads. Callbacks run on the library's worker threads, any number at a
 * time, for the same object too (directory operations in parallel). The file
 * system does its own locking. The library guarantees only what is written
 * above: objects passed in are held for the duration of the call, and forget/
 * release run after every other use of what they end.
 *
 * Returns. Every callback returns 0 (or a non-negative count where written)
 * or a negative errno. A missing (NULL) callback answers ENOSYS, except where
 * a default is written. Pointers passed in are borrowed for the call.
 */
#ifndef FSP_OPS_H
#define FSP_OPS_H

#include <fsp/common.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>

/* An object reported to the kernel: result of lookup and of the calls that
 * create a name. The library fills entry_timeout/attr_timeout with the
 * session's defaults before calling; the file system may change them. */
struct fsp_entry {
	uint64_t ino;          /* node id; 0 only for a negative lookup (see lookup) */
	uint64_t generation;   /* ino + generation must never repeat for another object */
	void *obj;             /* the file system's object; one reference handed over */
	struct stat attr;      /* st_ino 0 means "use ino"; st_mode must have the type */
	double entry_timeout;  /* seconds the kernel may cache the name */
	double attr_timeout;   /* seconds the kernel may cache attr */
};

/* What open/opendir/create return besides success. */
struct fsp_open_out {
	void *fh;          /* per-open value, passed back to read/write/.../release */
	uint32_t flags;    /* FSP_OPEN_* */
	int32_t backing_id;/* with FSP_OPEN_PASSTHROUGH: from fsp_backing_open() */
};

#define FSP_OPEN_DIRECT_IO       (1u << 0)  /* bypass the page cache for this open */
#define FSP_OPEN_KEEP_CACHE      (1u << 1)  /* keep cached data from earlier opens */
#define FSP_OPEN_NONSEEKABLE     (1u << 2)
#define FSP_OPEN_CACHE_DIR       (1u << 3)  /* opendir: the kernel may cache entries */
#define FSP_OPEN_STREAM          (1u << 4)
#define FSP_OPEN_NOFLUSH         (1u << 5)  /* don't send flush on close */
#define FSP_OPEN_PARALLEL_DIRECT_WRITES (1u << 6)
#define FSP_OPEN_PASSTHROUGH     (1u << 7)  /* I/O goes to the backing file */

/* Which fields of a setattr request are set. */
#define FSP_SET_MODE       (1u << 0)
#define FSP_SET_UID        (1u << 1)
#define FSP_SET_GID        (1u << 2)
#define FSP_SET_SIZE       (1u << 3)
#define FSP_SET_ATIME      (1u << 4)
#define FSP_SET_MTIME      (1u << 5)
#define FSP_SET_ATIME_NOW  (1u << 6)  /* with FSP_SET_ATIME: use the current time */
#define FSP_SET_MTIME_NOW  (1u << 7)
#define FSP_SET_CTIME      (1u << 8)
#define FSP_SET_KILL_SUIDGID (1u << 9) /* clear set-uid/set-gid as a write would */

struct fsp_setattr {
	uint32_t valid;    /* FSP_SET_* */
	mode_t mode;       /* permission bits and set-id bits; never the type */
	uid_t uid;
	gid_t gid;
	off_t size;
	struct timespec atime, mtime, ctime;
};

/* Write flags (fsp_operations.write). */
#define FSP_WRITE_CACHE        (1u << 0) /* from the page cache (delayed write) */
#define FSP_WRITE_KILL_SUIDGID (1u << 1) /* clear set-id bits */

/* A byte-range lock (getlk/setlk), as fcntl(2) record locks describe one. */
struct fsp_lock {
	int type;     /* F_RDLCK, F_WRLCK or F_UNLCK */
	off_t start;  /* first byte */
	off_t end;    /* last byte, inclusive; FSP_LOCK_END: to the end, however far */
	pid_t pid;    /* in: the caller's process (0 for unlocks); getlk's answer:
		       * the process holding the conflicting lock, 0 if unknown */
};
#define FSP_LOCK_END ((off_t)INT64_MAX)

struct fsp_operations {
	/* Called once when the kernel has accepted the session, before any other
	 * callback. May be NULL. */
	void (*init)(fsp_session *s);
	/* Called once at the very end, after every release and forget. NULL ok. */
	void (*destroy)(fsp_session *s);

	/* Find `name` in directory `dir`. On success fill *e (one reference to
	 * e->obj handed over). -ENOENT is a plain miss; to let the kernel cache the
	 * miss, return 0 with e->ino == 0 and e->entry_timeout > 0 instead (no
	 * reference handed over). `name` is never "." or ".." unless the kernel
	 * resolves file handles (then ".." asks for the parent: fill its entry). */
	int (*lookup)(fsp_req *r, void *dir, const char *name, struct fsp_entry *e);

	/* The library's references to obj: n of them, see the top of this file.
	 * No request uses obj when this runs. Never NULL-checked: provide it if
	 * objects are ever freed. */
	void (*forget)(fsp_session *s, void *obj, uint64_t n);

	/* Attributes. fh is the per-open value when the kernel asks through an
	 * open file, NULL otherwise. st_ino 0 means "the node id". */
	int (*getattr)(fsp_req *r, void *obj, void *fh, struct stat *st);
	/* Change what sa->valid says; fill *st with the attributes after. */
	int (*setattr)(fsp_req *r, void *obj, void *fh, const struct fsp_setattr *sa,
		       struct stat *st);

	/* Copy the target into buf (size bytes, PATH_MAX); return its length. */
	int (*readlink)(fsp_req *r, void *obj, char *buf, size_t size);

	int (*mknod)(fsp_req *r, void *dir, const char *name, mode_t mode, dev_t rdev,
		     struct fsp_entry *e);
	int (*mkdir)(fsp_req *r, void *dir, const char *name, mode_t mode,
		     struct fsp_entry *e);
	int (*symlink)(fsp_req *r, void *dir, const char *name, const char *target,
		       struct fsp_entry *e);
	/* A new name for obj. */
	int (*link)(fsp_req *r, void *obj, void *newdir, const char *newname,
		    struct fsp_entry *e);
	int (*unlink)(fsp_req *r, void *dir, const char *name);
	int (*rmdir)(fsp_req *r, void *dir, const char *name);
	/* flags: 0, RENAME_NOREPLACE, RENAME_EXCHANGE (RENAME_WHITEOUT if you
	 * support it; otherwise answer -EINVAL). */
	int (*rename)(fsp_req *r, void *dir, const char *name, void *newdir,
		      const char *newname, unsigned flags);

	/* Open a file. flags: the open(2) flags (O_CREAT/O_EXCL/O_NOCTTY removed
	 * by the kernel; O_TRUNC present, and the file system truncates). NULL
	 * open: every open succeeds with fh NULL. With cfg.handle_killpriv, an
	 * O_TRUNC open by a caller without CAP_FSETID is preceded by a setattr
	 * with only FSP_SET_KILL_SUIDGID. */
	int (*open)(fsp_req *r, void *obj, int flags, struct fsp_open_out *o);
	/* Create and open a new file. Both *e and *o are filled on success. */
	int (*create)(fsp_req *r, void *dir, const char *name, mode_t mode, int flags,
		      struct fsp_entry *e, struct fsp_open_out *o);
	/* An unnamed file in dir (O_TMPFILE). */
	int (*tmpfile)(fsp_req *r, void *dir, mode_t mode, int flags,
		       struct fsp_entry *e, struct fsp_open_out *o);

	/* Read up to size bytes at off into buf (borrowed, size bytes). Return the
	 * number read; 0 at end of file. Short reads mean end of file unless the
	 * open was FSP_OPEN_DIRECT_IO. */
	ssize_t (*read)(fsp_req *r, void *obj, void *fh, void *buf, size_t size, off_t off);
	/* Write size bytes at off from data (borrowed). Return the number written
	 * (all of it, unless an error stops it part way). */
	ssize_t (*write)(fsp_req *r, void *obj, void *fh, const void *data, size_t size,
			 off_t off, uint32_t flags);
	/* Each close(2) of a descriptor of this open; lock_owner identifies it. */
	int (*flush)(fsp_req *r, void *obj, void *fh, uint64_t lock_owner);
	/* The open is over. Exactly once per successful open/create/tmpfile. */
	void (*release)(fsp_session *s, void *obj, void *fh, int flags);
	int (*fsync)(fsp_req *r, void *obj, void *fh, int datasync);
	/* mode: the fallocate(2) mode flags. */
	int (*fallocate)(fsp_req *r, void *obj, void *fh, int mode, off_t off, off_t len);
	/* SEEK_DATA / SEEK_HOLE (others are done by the kernel). Return the offset. */
	off_t (*lseek)(fsp_req *r, void *obj, void *fh, off_t off, int whence);
	ssize_t (*copy_file_range)(fsp_req *r, void *obj_in, void *fh_in, off_t off_in,
				   void *obj_out, void *fh_out, off_t off_out, size_t len,
				   unsigned flags);

	/* Directories. NULL opendir: every opendir succeeds with fh NULL. */
	int (*opendir)(fsp_req *r, void *obj, int flags, struct fsp_open_out *o);
	/* Add entries starting after the position `off` (0 = the start) with
	 * fsp_dirbuf_add()/fsp_dirbuf_add_plus() until they return 1 (full) or the
	 * directory ends. `off` values are yours: each entry carries the offset of
	 * the entry after it. They must stay valid while the directory changes:
	 * an entry that exists throughout a listing is returned exactly once. */
	int (*readdir)(fsp_req *r, void *obj, void *fh, off_t off, fsp_dirbuf *db);
	void (*releasedir)(fsp_session *s, void *obj, void *fh);
	int (*fsyncdir)(fsp_req *r, void *obj, void *fh, int datasync);

	/* NULL statfs: zeros with a block size of 4096 and name length 255. */
	int (*statfs)(fsp_req *r, void *obj, struct statvfs *st);

	/* Extended attributes. get/list: with size 0 return the size needed;
	 * otherwise copy into buf and return the length, or -ERANGE. list: names
	 * each followed by a NUL. flags: XATTR_CREATE / XATTR_REPLACE. */
	int (*setxattr)(fsp_req *r, void *obj, const char *name, const void *value,
			size_t size, int flags);
	ssize_t (*getxattr)(fsp_req *r, void *obj, const char *name, void *buf, size_t size);
	ssize_t (*listxattr)(fsp_req *r, void *obj, char *buf, size_t size);
	int (*removexattr)(fsp_req *r, void *obj, const char *name);

	/* Permission check, only without default_permissions. mask: R_OK|W_OK|X_OK
	 * or F_OK. NULL: allowed. */
	int (*access)(fsp_req *r, void *obj, int mask);

	/* Extra "key value\n" lines for `fspctl stats` (e.g. memory in use).
	 * Write at most size bytes into buf, return the length. Any thread; must
	 * not block for long. NULL ok. */
	size_t (*stats)(fsp_session *s, char *buf, size_t size);

	/* Record locks (fcntl F_GETLK/F_SETLK/F_SETLKW, and lockf). Asked of
	 * the file system only when both getlk and setlk are set; otherwise the
	 * kernel keeps record locks to itself (they then do not reach whatever
	 * lies behind the file system). owner names the lock owner (a process's
	 * file table): an owner's locks on obj are one set, merged and split as
	 * fcntl(2) says, across all its opens of obj, never in conflict with each
	 * other. fh is the open the request came through. When an owner closes
	 * any descriptor of obj, its locks on obj end: the library calls setlk
	 * with F_UNLCK from 0 to FSP_LOCK_END for that owner before flush (the
	 * kernel sends no unlock of its own). After the last release of obj no
	 * lock on it is left.
	 * getlk: *lk is the lock the caller would set. Leave lk->type F_UNLCK
	 * when it could be set; otherwise fill *lk with one lock in its way.
	 * setlk: set *lk, or clear the range with F_UNLCK. wait 0: -EAGAIN when
	 * another owner's lock is in the way. wait 1 (F_SETLKW): block until it
	 * can be set, as long as it takes (the engine serves other requests
	 * meanwhile), but return -EINTR soon after fsp_req_interrupted(r)
	 * becomes true (the caller got a signal, or the session is ending):
	 * poll it at least every 10 ms. */
	int (*getlk)(fsp_req *r, void *obj, void *fh, uint64_t owner, struct fsp_lock *lk);
	int (*setlk)(fsp_req *r, void *obj, void *fh, uint64_t owner, const struct fsp_lock *lk,
		     int wait);
	/* flock(2) locks; asked of the file system only when set. A flock lock
	 * belongs to one open (fh). op: LOCK_SH, LOCK_EX or LOCK_UN, with
	 * LOCK_NB unless the caller waits (then the rule of setlk's wait 1
	 * holds). The library calls flock(LOCK_UN) before the release of an
	 * open that took one. */
	int (*flock)(fsp_req *r, void *obj, void *fh, int op);
};

#endif
