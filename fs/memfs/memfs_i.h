/* memfs_i.h — fsp-memfs internals shared by its files.
 *
 * Objects: one struct memfs_node per inode. A node lives while it is linked
 * (named in a directory, or it is the root) or the library holds references
 * to it; both are folded into one atomic count, node->refs:
 *
 *   refs = (library references) + (1 while linked)
 *
 * "Linked" is nlink > 0 for files and !dead for directories; it changes only
 * under node->lock, and the +1 is taken/dropped with that change. Whoever
 * takes refs to 0 frees the node: forget (library count gone after the last
 * unlink) or unlink/rmdir/rename (last link gone after forget). Because both
 * reasons live in one atomic, exactly one of them sees 0: no double free, no
 * leak. refs never rises from 0: a reference is only taken through a live
 * directory entry (its directory's dlock held), through a directory's parent
 * pointer (the child's lock held, see namei.c), or on an object the library
 * already holds.
 *
 * Lock order (see namei.c for the reasoning):
 *   fs->rename_lock  ->  dir->dlock (at most two: rename only)  ->  node->lock
 * node->lock is a leaf: never two at once, never a dlock while holding one.
 * The last reference is never dropped with a lock held (freeing may be long).
 */
#ifndef MEMFS_I_H
#define MEMFS_I_H

#include <fsp/fsp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#define MEMFS_BLOCK_SHIFT 12
#define MEMFS_BLOCK_SIZE (1u << MEMFS_BLOCK_SHIFT)  /* file data granule, as tmpfs pages */
#define MEMFS_NAME_MAX 255
#define MEMFS_SYMLINK_MAX 4095                     /* PATH_MAX - 1 */
#define MEMFS_BOGO_DIRENT 20                       /* tmpfs's directory st_size per entry */
#define MEMFS_XATTR_NAME_MAX 255
#define MEMFS_XATTR_SIZE_MAX 65536
#define MEMFS_NLINK_MAX 0xffffffffu

/* The file system: limits (set while parsing options, read-only after the
 * mount) and accounting (atomics, any thread). */
struct memfs {
	uint64_t size_limit;        /* bytes of data + metadata; 0 = none */
	uint64_t nodes_limit;       /* nodes; 0 = none */
	off_t max_file_size;        /* EFBIG beyond */
	uint64_t hash_seed;         /* directory name hash */
	atomic_uint_fast64_t mem_bytes;  /* everything charged with memfs_charge() */
	atomic_uint_fast64_t mem_nodes;  /* nodes alive */
	atomic_uint_fast64_t next_ino;   /* never reused: node ids need no generation */
	pthread_mutex_t rename_lock;     /* serializes cross-directory renames */
	struct memfs_node *root;
	bool destroyed;             /* destroy ran: the tree is freed */
};

/* File data: a radix tree of 64-way nodes over 4 KiB blocks. height 0: root
 * is block 0 itself. NULL anywhere is a hole. Bytes of a block beyond the
 * file size are always zero, so growing the size exposes zeros only. */
struct memfs_bmap {
	void *root;
	unsigned height;
	uint64_t nblocks;           /* blocks allocated (st_blocks) */
};

struct memfs_xattr;
struct memfs_dir;

struct memfs_node {
	/* Immutable after creation. */
	uint64_t ino;
	mode_t type;                /* S_IFMT bits of mode */
	/* See the top of this file. */
	atomic_uint_fast64_t refs;
	/* Guards every field below, the file data and the xattrs; for a
	 * directory also dir->count, dir->dead and dir->parent. */
	pthread_rwlock_t lock;
	mode_t mode;                /* type | permission bits */
	uid_t uid;
	gid_t gid;
	dev_t rdev;
	nlink_t nlink;              /* dirs: 2 + subdirs while alive, 0 after rmdir */
	off_t size;                 /* regular files; others computed in stat */
	struct timespec atime, mtime, ctime;
	bool linkable;              /* O_TMPFILE not linked yet: link may revive it */
	struct memfs_xattr *xattrs; /* insertion order */
	union {
		struct memfs_bmap data; /* S_IFREG */
		char *target;           /* S_IFLNK, immutable */
		struct memfs_dir *dir;  /* S_IFDIR */
	} u;
};

static inline struct memfs *memfs_of(fsp_req *r)
{
	return fsp_session_userdata(fsp_req_session(r));
}

static inline struct timespec memfs_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts;
}

/* node.c — accounting, objects, references, attributes. */
int memfs_charge(struct memfs *fs, uint64_t bytes);   /* 0 or -ENOSPC */
bool memfs_fail_alloc(void);   /* injected allocation failure (MEMFS_FAIL_ALLOC_AT) */
void memfs_uncharge(struct memfs *fs, uint64_t bytes);
void *memfs_alloc(struct memfs *fs, size_t size, int *err); /* charged, zeroed */
void *memfs_realloc(struct memfs *fs, void *p, size_t old, size_t size, int *err);
void memfs_free(struct memfs *fs, void *p, size_t size);
int memfs_node_new(struct memfs *fs, mode_t mode, uid_t uid, gid_t gid, dev_t rdev,
		   const char *target, struct memfs_node **out);
void memfs_node_free(struct memfs *fs, struct memfs_node *n);
void memfs_node_get(struct memfs_node *n);
void memfs_node_put(struct memfs *fs, struct memfs_node *n, uint64_t k);
void memfs_node_stat(const struct memfs_node *n, struct stat *st);
void memfs_fill_entry(struct memfs_node *n, struct fsp_entry *e);
bool memfs_atime_due(const struct memfs_node *n);
void memfs_touch_atime(struct memfs_node *n);
bool memfs_kill_suidgid(struct memfs_node *n);
void memfs_forget(fsp_session *s, void *obj, uint64_t n);
int memfs_getattr(fsp_req *r, void *obj, void *fh, struct stat *st);
int memfs_setattr(fsp_req *r, void *obj, void *fh, const struct fsp_setattr *sa,
		  struct stat *st);

/* dir.c — a directory's entries: a hash table by name (lookup O(1)) and
 * slots[] in insertion (seq) order (readdir). Details at the top of dir.c. */
struct memfs_dentry {
	struct memfs_dentry *hnext; /* hash chain */
	struct memfs_node *node;
	uint64_t hash;
	uint64_t seq;               /* readdir position; never reused in the dir */
	size_t slot;                /* index in dir->slots */
	uint16_t namelen;
	char name[];                /* NUL-terminated */
};

struct memfs_slot;

struct memfs_dir {
	pthread_rwlock_t dlock;     /* guards the entries: fields down to next_seq */
	struct memfs_dentry **buckets;  /* NULL while empty */
	size_t nbuckets;            /* power of two */
	size_t nlive;               /* entries */
	struct memfs_slot *slots;   /* seq order, live or tombstone; NULL while empty */
	size_t nslots, capslots, ntomb;
	uint64_t next_seq;
	/* Under the directory node's lock. count is changed only with dlock
	 * also held for writing. */
	size_t count;               /* entries + insertions in progress; 0 = empty */
	bool dead;                  /* removed: nothing may be inserted any more */
	struct memfs_node *parent;  /* the root's is itself; NULL once dead */
};

int memfs_dir_new(struct memfs *fs, struct memfs_dir **out);
void memfs_dir_free(struct memfs *fs, struct memfs_dir *d);
int memfs_dentry_new(struct memfs *fs, const char *name, size_t len,
		     struct memfs_dentry **out);
void memfs_dentry_free(struct memfs *fs, struct memfs_dentry *de);
/* These three need dlock held (read is enough). */
struct memfs_dentry *memfs_dir_find(struct memfs *fs, struct memfs_dir *d,
				    const char *name, size_t len);
size_t memfs_dir_seek(struct memfs_dir *d, uint64_t off);
struct memfs_dentry *memfs_dir_next(struct memfs_dir *d, size_t *pos);
/* These need dlock held for writing. prepare makes room for one insert (the
 * only step that can fail: -ENOSPC/-ENOMEM); insert then cannot fail. */
int memfs_dir_prepare(struct memfs *fs, struct memfs_dir *d);
void memfs_dir_insert(struct memfs *fs, struct memfs_dir *d, struct memfs_dentry *de);
void memfs_dir_remove(struct memfs *fs, struct memfs_dir *d, struct memfs_dentry *de);

/* namei.c — the name space callbacks. */
int memfs_lookup(fsp_req *r, void *dir, const char *name, struct fsp_entry *e);
int memfs_mknod(fsp_req *r, void *dir, const char *name, mode_t mode, dev_t rdev,
		struct fsp_entry *e);
int memfs_mkdir(fsp_req *r, void *dir, const char *name, mode_t mode, struct fsp_entry *e);
int memfs_symlink(fsp_req *r, void *dir, const char *name, const char *target,
		  struct fsp_entry *e);
int memfs_link(fsp_req *r, void *obj, void *newdir, const char *newname,
	       struct fsp_entry *e);
int memfs_unlink(fsp_req *r, void *dir, const char *name);
int memfs_rmdir(fsp_req *r, void *dir, const char *name);
int memfs_rename(fsp_req *r, void *dir, const char *name, void *newdir,
		 const char *newname, unsigned flags);
int memfs_readlink(fsp_req *r, void *obj, char *buf, size_t size);
int memfs_open(fsp_req *r, void *obj, int flags, struct fsp_open_out *o);
int memfs_create(fsp_req *r, void *dir, const char *name, mode_t mode, int flags,
		 struct fsp_entry *e, struct fsp_open_out *o);
int memfs_tmpfile(fsp_req *r, void *dir, mode_t mode, int flags, struct fsp_entry *e,
		  struct fsp_open_out *o);
int memfs_opendir(fsp_req *r, void *obj, int flags, struct fsp_open_out *o);
int memfs_readdir(fsp_req *r, void *obj, void *fh, off_t off, fsp_dirbuf *db);
void memfs_free_tree(struct memfs *fs, struct memfs_node *root);

/* data.c — file contents. The data_* calls need node->lock (write for the
 * ones that change something). */
void memfs_data_free(struct memfs *fs, struct memfs_bmap *m);
int memfs_data_truncate(struct memfs *fs, struct memfs_node *n, off_t size);
ssize_t memfs_read(fsp_req *r, void *obj, void *fh, void *buf, size_t size, off_t off);
ssize_t memfs_write(fsp_req *r, void *obj, void *fh, const void *data, size_t size,
		    off_t off, uint32_t flags);
int memfs_fallocate(fsp_req *r, void *obj, void *fh, int mode, off_t off, off_t len);
off_t memfs_lseek(fsp_req *r, void *obj, void *fh, off_t off, int whence);

/* xattr.c */
void memfs_xattr_free_all(struct memfs *fs, struct memfs_node *n);
int memfs_setxattr(fsp_req *r, void *obj, const char *name, const void *value,
		   size_t size, int flags);
ssize_t memfs_getxattr(fsp_req *r, void *obj, const char *name, void *buf, size_t size);
ssize_t memfs_listxattr(fsp_req *r, void *obj, char *buf, size_t size);
int memfs_removexattr(fsp_req *r, void *obj, const char *name);

#endif
