/* fsp_i.h — the library's internal shapes, shared by its layers.
 *
 * Layers (data moves down, replies move back up, nothing reaches back):
 *   transport.c  channel: receive one request buffer, send one reply (iovecs)
 *   proto.c      opcode table, validation, reply encoding
 *   handlers.c   one handler per opcode: decode the body, call the file system
 *   dispatch.c   worker threads, the request loop, INIT, INTERRUPT
 *   node.c       node table: node id -> object, kernel lookup counts, users
 *   handle.c     handle table: kernel fh -> open object, released once
 *   mount.c      mount(2) / fusermount3, unmount, mount point checks
 *   session.c    session life, options, fsp_main; stats.c counters + socket
 *
 * Lock order: written once, at the top of the node/handle section below.
 */
#ifndef FSP_I_H
#define FSP_I_H

#include <fsp/fsp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/uio.h>

#include "wire_i.h"

#define FSP__OPCODE_MAX 64      /* opcodes we count and dispatch: 0..63 */
#define FSP__MAX_WORKERS 64

/* ---- allocation (alloc.c): one wrapper so failures can be injected ---- */
void *fsp__malloc(size_t n);
void *fsp__calloc(size_t nmemb, size_t n);
void *fsp__realloc(void *p, size_t n);
void fsp__free(void *p);

/* ---- logging (log.c) ---- */
void fsp__log_set_detached(int detached);
/* 1: drop warnings and info (the fuzzer, which provokes them by design). */
extern int fsp__log_quiet;
extern int fsp__debug_level;

/* Invariant violations: abort in debug builds (FSP_DEBUG), log otherwise. */
#ifdef FSP_DEBUG
#define FSP__BUG(...) do { fsp_log(0, "BUG: " __VA_ARGS__); abort(); } while (0)
#else
#define FSP__BUG(...) fsp_log(0, "BUG: " __VA_ARGS__)
#endif

/* ---- node and handle tables (node.c, handle.c, over hash.c) ----
 *
 * Lock order. The only locks of this section are the shard locks of the two
 * tables' hashes, and each is a leaf: nothing else is locked while one is
 * held — not a shard of the other table, not another shard of the same one
 * (fsp__*_count takes them one after another) — and no file system callback
 * runs under one. Where a handle operation touches its node (new: hold;
 * last put: release callback, then node put) it does so with no handle
 * shard lock held. So no two of these locks are ever held at once.
 *
 * Lifetime counts (nlookup, users, handle refs) abort the process on
 * underflow in every build, not only with FSP_DEBUG: a count below zero
 * means an object is about to be used after it was handed back, and going
 * on would hand the file system freed objects. One BUG line names it. */
#define FSP__COUNT_BUG(...) do { fsp_log(0, "BUG: " __VA_ARGS__); abort(); } while (0)

/* Intrusive sharded hash keyed by uint64 (hash.c). The caller embeds a
 * struct fsp__hlink in its object and owns the object; the hash chains it.
 * Shard locks as above. */
struct fsp__hlink {
	struct fsp__hlink *next;  /* chain; guarded by the shard lock */
	uint64_t key;             /* set before insert; immutable while linked */
};
#define FSP__CONTAINER_OF(p, type, member) \
	((type *)(void *)((char *)(p) - __builtin_offsetof(type, member)))
struct fsp__hash;
struct fsp__hash_shard;
/* 0 or -ENOMEM. */
int fsp__hash_new(struct fsp__hash **out);
/* The hash must be empty (drained). NULL is a no-op. */
void fsp__hash_free(struct fsp__hash *h);
/* Lock the shard of key and return it; the calls below take that shard,
 * locked, and the key (or link key) must be one of that shard's. */
struct fsp__hash_shard *fsp__hash_lock(struct fsp__hash *h, uint64_t key);
void fsp__hash_unlock(struct fsp__hash_shard *sh);
/* The link with key, or NULL. */
struct fsp__hlink *fsp__hash_find(struct fsp__hash_shard *sh, uint64_t key);
/* Link l (l->key not present yet). Never fails. */
void fsp__hash_insert(struct fsp__hash_shard *sh, struct fsp__hlink *l);
/* Unlink l: 0, or -ENOENT if l is not linked there. */
int fsp__hash_remove(struct fsp__hash_shard *sh, struct fsp__hlink *l);
/* Links in the hash (each shard locked in turn: a snapshot, not atomic). */
uint64_t fsp__hash_count(struct fsp__hash *h);
/* Only when no other thread uses h: unlink every link and return them
 * chained through next (NULL when empty). */
struct fsp__hlink *fsp__hash_drain(struct fsp__hash *h);

/* Node table (node.c) */
struct fsp__node {
	uint64_t ino;          /* key; immutable */
	uint64_t generation;   /* immutable */
	void *obj;             /* immutable */
	/* Guarded by the shard lock: */
	uint64_t nlookup;      /* entries the kernel got, minus its FORGETs */
	uint64_t fs_refs;      /* references the fs handed over this period */
	uint32_t users;        /* requests in flight + open handles + 1 for the root */
	bool forget_clamped;   /* a FORGET exceeded nlookup this period */
	struct fsp__hlink link;/* in the table's hash, key ino */
};

struct fsp__node_table;
int fsp__nodes_new(fsp_session *s, struct fsp__node_table **out);
/* Forgets every node still held (each exactly once), then frees the table. */
void fsp__nodes_free(struct fsp__node_table *t);
/* Root: held for the whole session. */
int fsp__nodes_add_root(struct fsp__node_table *t, void *root);
/* Find node ino and take a user reference. -ESTALE if not held. */
int fsp__node_get(struct fsp__node_table *t, uint64_t ino, struct fsp__node **out);
/* Take one more user reference on a node already held by the caller. */
void fsp__node_hold(struct fsp__node_table *t, struct fsp__node *n);
/* Drop a user reference; the last one of a forgotten node forgets it. */
void fsp__node_put(struct fsp__node_table *t, struct fsp__node *n);
/* An entry is about to go to the kernel: count it (nlookup and fs_refs).
 * counted_by_kernel 0 for "."/".." direntplus entries the kernel ignores.
 * Returns 0, or -ENOMEM, or -EIO when the fs broke the node-id contract; on
 * failure the reference is not taken: the caller hands it back (forget). */
int fsp__node_add_entry(struct fsp__node_table *t, const struct fsp_entry *e,
			int counted_by_kernel);
/* The same, and on success also a user reference on the node (*out; drop
 * it with fsp__node_put), taken under the same lock as the count: the node
 * cannot go between counting the entry and holding it. */
int fsp__node_add_entry_get(struct fsp__node_table *t, const struct fsp_entry *e,
			    int counted_by_kernel, struct fsp__node **out);
/* The entry for ino never reached the kernel: undo its nlookup. */
void fsp__node_unsent(struct fsp__node_table *t, uint64_t ino);
/* FORGET from the kernel. */
void fsp__node_forget(struct fsp__node_table *t, uint64_t ino, uint64_t nlookup);
uint64_t fsp__nodes_count(struct fsp__node_table *t);

/* Handle table (handle.c) */
struct fsp__handle {
	uint64_t id;              /* the fh the kernel sees; immutable */
	struct fsp__node *node;   /* holds a user reference on it */
	void *fh;                 /* the file system's per-open value */
	int flags;                /* open flags */
	bool is_dir;
	atomic_uint refs;         /* 1 for the table + one per request using it */
	struct fsp__hlink link;   /* in the table's hash, key id, until RELEASE */
};
struct fsp__handle_table;
int fsp__handles_new(fsp_session *s, struct fsp__handle_table **out);
/* Releases every handle still open (each exactly once), frees the table. */
void fsp__handles_free(struct fsp__handle_table *t);
/* New handle for node (a user reference is taken on node). */
int fsp__handle_new(struct fsp__handle_table *t, struct fsp__node *node, void *fh,
		    int flags, bool is_dir, struct fsp__handle **out);
/* Look up id for a request; -EBADF if unknown or of the wrong kind. */
int fsp__handle_get(struct fsp__handle_table *t, uint64_t id, bool is_dir,
		    struct fsp__handle **out);
void fsp__handle_put(struct fsp__handle_table *t, struct fsp__handle *h);
/* RELEASE/RELEASEDIR: unpublish; the release callback runs when the last
 * request using it is done. -EBADF if unknown. */
int fsp__handle_release(struct fsp__handle_table *t, uint64_t id, bool is_dir);
uint64_t fsp__handles_count(struct fsp__handle_table *t);

/* ---- transport (transport.c) ---- */
struct fsp__chan;
struct fsp__chan_ops {
	/* Receive one request into buf. Returns its length, or -EINTR/-EAGAIN/
	 * -ENOENT (try again), -ENODEV (session ended), other -errno (fatal). */
	ssize_t (*recv)(struct fsp__chan *c, void *buf, size_t size);
	/* Send one reply or notification. Returns 0 or -errno; -ENOENT means
	 * the kernel no longer waits for that request (interrupted/aborted). */
	int (*send)(struct fsp__chan *c, const struct iovec *iov, int n);
	void (*close)(struct fsp__chan *c);
	/* Make recv return -EAGAIN instead of sleeping (for a polling reader). */
	int (*set_nonblock)(struct fsp__chan *c);
	/* Sleep until a request is ready or a signal comes: 0, or -errno. */
	int (*wait)(struct fsp__chan *c);
};
struct fsp__chan {
	const struct fsp__chan_ops *ops;
	int fd;
};
/* A channel on the session fd, or (clone != 0) a clone of it where the
 * kernel allows, falling back to sharing the session fd. */
int fsp__chan_dev_open(int session_fd, int clone, struct fsp__chan **out);

/* ---- request (dispatch.c) ---- */
struct fsp__worker;
struct fsp_req {
	fsp_session *s;
	struct fsp__worker *w;
	struct fsp__chan *chan;
	const struct fw_in_header *in;
	const char *body;        /* in + 1 */
	size_t body_len;
	uint32_t opcode;
	bool replied;
	mode_t umask;            /* from create-type requests, else 0 */
	struct fsp__node *node;  /* held for the request when the op names one */
	/* Supplementary groups extension (7.40+), validated; may be NULL. */
	const uint32_t *groups;
	uint32_t ngroups;
};

/* Written only by the owning worker, read by anyone: relaxed atomics, so a
 * reader never sees a torn value and the writer needs no locked instruction. */
struct fsp__worker_stats {
	_Atomic uint64_t requests[FSP__OPCODE_MAX];
	_Atomic uint64_t errors[FSP__OPCODE_MAX];
	_Atomic uint64_t bytes_read, bytes_written;
	_Atomic uint64_t unknown, malformed;
};
#define FSP__STAT_ADD(field, n) atomic_store_explicit(&(field), \
	atomic_load_explicit(&(field), memory_order_relaxed) + (n), memory_order_relaxed)
#define FSP__STAT_GET(field) atomic_load_explicit(&(field), memory_order_relaxed)

struct fsp__worker {
	fsp_session *s;
	pthread_t thread;
	int index;
	bool started;
	struct fsp__chan *chan;
	char *inbuf;             /* request buffer, bufsize bytes */
	char *outbuf;            /* reply payload buffer, bufsize bytes */
	/* Read by other threads (stats, INTERRUPT): */
	_Atomic uint64_t cur_unique;    /* request being served, 0 when idle */
	atomic_int interrupted;         /* INTERRUPT seen for cur_unique */
	struct fsp__worker_stats st;
};

/* ---- session (session.c) ---- */
struct fsp_session {
	struct fsp_operations ops;
	struct fsp_config cfg;
	void *userdata;
	void *root;
	char *mountpoint;         /* canonical path, owned */
	char *fsname, *subtype;   /* owned */
	int fd;                   /* /dev/fuse session fd, -1 when none */
	int trace_fd;             /* -o trace=FILE, -1 when off */
	bool mounted;
	bool via_fusermount;
	unsigned dev_major, dev_minor;   /* of the mount, for fusectl and stats */
	uint64_t mnt_id;          /* mount id at mount time (0: unknown, never unmount) */

	/* Negotiated at INIT (dispatch.c) */
	uint32_t proto_minor;
	uint64_t flags;           /* FW_INIT_* agreed */
	uint32_t max_write;
	size_t bufsize;
	bool init_done;

	struct fsp__node_table *nodes;
	struct fsp__handle_table *handles;

	int nworkers;
	struct fsp__worker *workers;
	atomic_int live_workers;
	atomic_int dead;           /* sticky: fatal device error or ENODEV */
	volatile sig_atomic_t exit_requested;  /* fsp_session_exit() was called */
	atomic_int stopping;       /* workers finish their request and leave */
	atomic_uint_fast64_t unknown_logged;  /* one log line per unknown opcode < 64 */
	/* Reading policy (dispatch.c): worker 0 polls the queue for spin_ns
	 * after each request; the other workers read only while `helping`
	 * (set when worker 0 finds requests waiting), else they park. */
	uint64_t spin_ns;
	atomic_int helping;
	pthread_mutex_t park_lock;
	pthread_cond_t park_cond;

	/* stats.c control socket */
	int stats_fd;
	char *stats_path;
	dev_t stats_dev;          /* identity of the socket file we bound */
	ino_t stats_ino;
	pthread_t stats_thread;
	bool stats_started;
	atomic_int stats_stop;
};

/* dispatch.c */
int fsp__dispatch_init_request(fsp_session *s);  /* read+answer INIT */
int fsp__workers_start(fsp_session *s);
void fsp__workers_stop(fsp_session *s);
void fsp__dispatch(struct fsp__worker *w, size_t len);

/* proto.c */
struct fsp__op_desc {
	const char *name;
	uint32_t min_in;          /* body bytes the op needs at least */
	void (*handler)(fsp_req *r);
	uint8_t flags;
};
#define FSP__OP_NODE      1   /* resolve in->nodeid to a held node first */
#define FSP__OP_NOREPLY   2   /* the kernel expects no reply */
const struct fsp__op_desc *fsp__op_desc(uint32_t opcode);
const char *fsp__opname(uint32_t opcode);
/* Replies. err is 0 or -errno, range-checked. Each returns the send result. */
int fsp__reply_err(fsp_req *r, int err);
int fsp__reply_buf(fsp_req *r, const void *data, size_t len);
int fsp__reply_iov(fsp_req *r, struct iovec *iov, int n);   /* iov[0] reserved */
void fsp__fill_attr(struct fw_attr *a, const struct stat *st, uint64_t ino);
void fsp__timeout_split(double t, uint64_t *sec, uint32_t *nsec);
/* Name at off in the body: NUL inside the body, length 1..NAME_MAX. Returns
 * the length of the name, or -EIO (malformed) / -ENAMETOOLONG. */
int fsp__body_name(fsp_req *r, size_t off, const char **name);

/* handlers.c */
extern const struct fsp__op_desc fsp__ops_table[FSP__OPCODE_MAX];

/* mount.c */
int fsp__mount(fsp_session *s);
void fsp__unmount(fsp_session *s);
int fsp__check_mountpoint(const char *path, char **canon);
/* The device of the topmost fuse mount at path (canonical): 0, or -ENOENT. */
int fsp__mount_device(const char *path, unsigned *maj, unsigned *min);

/* stats.c */
int fsp__stats_start(fsp_session *s);
void fsp__stats_stop(fsp_session *s);
int fsp__stats_format(fsp_session *s, char *buf, size_t size);
int fsp__stats_socket_path(unsigned maj, unsigned min, char *buf, size_t size);

/* dirbuf (dirbuf.c) */
struct fsp_dirbuf {
	fsp_req *r;
	char *buf;
	size_t size, len;
	bool plus;
	/* entries handed to the node table in this buffer, to undo if unsent */
	uint64_t *inos;
	size_t ninos, cap;
};

#endif
