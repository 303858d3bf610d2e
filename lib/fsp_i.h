/* fsp_i.h — the library's internal shapes, shared by its layers.
 *
 * Layers (data moves down, replies move back up, nothing reaches back):
 *   transport_dev.c, transport_uring.c
 *                channel: receive one request, send one reply (iovecs)
 *   engine.c     the worker pool, the life of one request, INTERRUPT marks
 *   proto.c      opcode names, request validation (decoder), reply encoding
 *   handlers.c   one handler per opcode: decode the body, call the file system
 *   init.c       the INIT handshake
 *   node.c       node table: node id -> object, kernel lookup counts, users
 *   handle.c     handle table: kernel fh -> open object, released once
 *   hash.c       the sharded hash under both tables
 *   mount.c      mount(2) / fusermount3, unmount, mount point checks
 *   session.c    session life, options, fsp_main; stats.c counters + socket
 *
 * Lock order: for the node and handle tables' shard locks at the top of
 * their section below; for a worker pool's lock in engine.c; for a
 * transport's own locks in its file.
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
#define FSP__EARLY_MARKS 16     /* INTERRUPTs remembered before their request */
/* Ends a worker's blocking read() at stop; never sent otherwise. */
#define FSP__WAKE_SIGNAL (SIGRTMIN + 3)

/* ---- what ThreadSanitizer cannot see (util.c) ----
 * The kernel orders a reply before the requests it causes (RELEASE after
 * OPEN's reply, FORGET after LOOKUP's): through system calls TSan models
 * (/dev/fuse read/write) or through ring memory it does not (io_uring). So
 * under TSan every transport releases before it hands a reply to the kernel
 * and acquires after it takes a request; elsewhere these are empty. */
#if defined(__SANITIZE_THREAD__)
#define FSP__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FSP__TSAN 1
#endif
#endif
#ifdef FSP__TSAN
extern atomic_ulong fsp__kernel_order;
static inline void fsp__kernel_release(void)
{
	atomic_fetch_add_explicit(&fsp__kernel_order, 1, memory_order_release);
}
static inline void fsp__kernel_acquire(void)
{
	(void)atomic_load_explicit(&fsp__kernel_order, memory_order_acquire);
}
#else
static inline void fsp__kernel_release(void) {}
static inline void fsp__kernel_acquire(void) {}
#endif

/* ---- small portable helpers (util.c) ---- */
uint64_t fsp__now_ns(void);          /* CLOCK_MONOTONIC */
uint32_t fsp__page_size(void);
/* A polite pause inside a spin loop, on any architecture. */
static inline void fsp__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
	__asm__ __volatile__("yield" ::: "memory");
#elif defined(__powerpc__) || defined(__powerpc64__)
	__asm__ __volatile__("or 27,27,27" ::: "memory");
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

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
	uint64_t generation;   /* sent with every entry of ino (fsp__node_generation); immutable */
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
/* The generation to send with entry e (every entry, every op): the file
 * system's, or when that is 0 the session's own (non-zero, 32 bits, new in
 * every session) so that a file handle from an earlier session, whose node
 * id may name another object now, never matches. The root and negative
 * entries keep the fs's (0: the kernel's root inode has generation 0). */
uint64_t fsp__node_generation(struct fsp__node_table *t, const struct fsp_entry *e);
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

/* ---- transports (transport_dev.c, transport_uring.c) ----
 * A channel is one worker's view of a transport: each worker owns one and
 * only that worker calls recv/send on it; wake may come from any thread.
 * Several channels may share one device or one ring queue underneath; the
 * transport makes that safe.
 * Life of a request on a channel: recv hands out the request bytes (and
 * where to build a large reply); they stay valid until the worker's next
 * call of recv, finish or send on that channel. Every request received is
 * ended by exactly one send (its reply) or finish (no reply: FORGET and
 * friends, or a request dropped as unanswerable); a ring entry is given
 * back to the kernel only then. */
struct fsp__chan;
struct fsp__chan_ops {
	const char *name;        /* "dev" or "io_uring": the startup line says it */
	/* Take one request. spin_ns > 0: poll for up to that long and return
	 * -EAGAIN if none came (never sleep); 0: sleep until one comes.
	 * Returns its length with *in set to the request (fw_in_header, body
	 * contiguous) and *out to a buffer of at least bufsize bytes for the
	 * reply payload (the worker's own or the transport's), or -EINTR /
	 * -EAGAIN / -ENOENT (nothing: call again), -ENODEV (session ended),
	 * other -errno (fatal device error). */
	ssize_t (*recv)(struct fsp__chan *c, uint64_t spin_ns, char **in, char **out);
	/* Send the reply to the request last received (iov[0] is its
	 * fw_out_header). Ends the request. 0, or -ENOENT when the kernel no
	 * longer waits for it (interrupted, aborted), or -errno. */
	int (*send)(struct fsp__chan *c, const struct iovec *iov, int n);
	/* End the request last received without a reply. May be NULL (dev). */
	void (*finish)(struct fsp__chan *c);
	/* Make a recv blocked on this channel return soon (-EAGAIN), without
	 * a signal where the transport can (stop). May be NULL. */
	void (*wake)(struct fsp__chan *c);
	void (*close)(struct fsp__chan *c);
};
struct fsp__chan {
	const struct fsp__chan_ops *ops;
	int fd;                  /* /dev/fuse fd notifications may use, or -1 */
};
/* A channel on the session fd, or (clone != 0) a clone of it where the
 * kernel allows, falling back to sharing the session fd. Owns a request
 * buffer of bufsize bytes; *out of recv is outbuf (the worker's). */
int fsp__chan_dev_open(int session_fd, int clone, size_t bufsize, char *outbuf,
		       struct fsp__chan **out);

/* FUSE over io_uring (transport_uring.c): one ring queue per possible CPU,
 * depth entries each, registered after INIT agreed FW_INIT_OVER_IO_URING.
 * fsp__uring_new returns -EOPNOTSUPP where io_uring or the command is not
 * available (the caller then stays on /dev/fuse, or fails for io_uring=on). */
struct fsp__uring;
#define FSP__URING_PARAM "/sys/module/fuse/parameters/enable_uring"
/* The kernel would offer the ring now (its module parameter says Y). */
bool fsp__uring_enabled(void);
/* io_uring itself works for this process (io_uring_setup with SQE128). Once
 * INIT agrees to the ring the kernel holds requests until a ring is ready
 * or refused, so INIT asks only when this holds. */
bool fsp__uring_usable(void);
int fsp__uring_new(fsp_session *s, int depth, struct fsp__uring **out);
int fsp__uring_nqueues(const struct fsp__uring *u);
/* A worker's channel on queue q (several may share one queue). */
int fsp__uring_chan_open(struct fsp__uring *u, int q, char *outbuf, struct fsp__chan **out);
/* After every channel is closed. */
void fsp__uring_free(struct fsp__uring *u);

/* ---- request (engine.c, proto.c) ---- */
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

struct fsp__pool;
struct fsp__worker {
	fsp_session *s;
	struct fsp__pool *pool;  /* the workers waiting on the same channel kind */
	pthread_t thread;
	int index;
	atomic_bool started;     /* thread exists (joined at stop) */
	struct fsp__chan *chan;
	char *inbuf;             /* the request being served (from recv) */
	char *outbuf;            /* reply payload buffer, bufsize bytes */
	char *ownbuf;            /* the worker's own reply buffer (freed at stop) */
	/* Read by other threads (stats, INTERRUPT): */
	_Atomic uint64_t cur_unique;    /* request being served, 0 when idle */
	_Atomic uint64_t interrupted;   /* unique of an INTERRUPT for cur_unique */
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

	/* Negotiated at INIT (init.c) */
	uint32_t proto_minor;
	uint64_t flags;           /* FW_INIT_* agreed */
	uint32_t max_write;
	size_t bufsize;
	bool init_done;

	struct fsp__node_table *nodes;
	struct fsp__handle_table *handles;

	/* Engine (engine.c). pools and workers are allocated once by
	 * fsp__engine_start and freed by fsp__engine_free (session free). */
	int npools, nslots;
	struct fsp__pool *pools;
	struct fsp__worker *workers;   /* nslots slots; a slot's thread may not exist */
	struct fsp__uring *uring;      /* the ring, or NULL (/dev/fuse only) */
	atomic_int live_workers;
	atomic_int dead;           /* sticky: fatal device error or ENODEV */
	volatile sig_atomic_t exit_requested;  /* fsp_session_exit() was called */
	atomic_int stopping;       /* workers finish their request and leave */
	atomic_uint_fast64_t unknown_logged;  /* one log line per unknown opcode < 64 */
	uint64_t spin_ns;          /* one worker per pool polls this long */
	/* INTERRUPTs that came before their request was being served */
	_Atomic uint64_t early[FSP__EARLY_MARKS];
	atomic_uint early_next;
	atomic_int early_count;

	/* stats.c control socket */
	int stats_fd;
	char *stats_path;
	dev_t stats_dev;          /* identity of the socket file we bound */
	ino_t stats_ino;
	pthread_t stats_thread;
	bool stats_started;
	atomic_int stats_stop;
	int64_t started;          /* CLOCK_REALTIME seconds when serving began */
};

/* init.c: read and answer INIT on the session fd (main thread, before any
 * worker); 0 or -errno after one log line. */
int fsp__init_negotiate(fsp_session *s);

/* engine.c */
int fsp__engine_start(fsp_session *s);
void fsp__engine_stop(fsp_session *s);   /* join workers; idempotent */
void fsp__engine_free(fsp_session *s);   /* stop, then free the slots */
/* Serve the request of len bytes at w->inbuf on w->chan (replies built in
 * w->outbuf): decode, run its handler, end it. */
void fsp__dispatch(struct fsp__worker *w, size_t len);
/* INTERRUPT for unique: 1 when it is being served (now marked), 0 when not
 * (remembered, in case its request is about to be served). */
int fsp__engine_interrupt(fsp_session *s, uint64_t unique);

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
/* Validate the len bytes at buf as a request and fill r (in, opcode, body,
 * body_len, groups). Returns the op's row, or NULL when the request was
 * malformed or unknown: then it has been answered (EIO, ENOSYS) or, when
 * no answer is possible or expected, dropped, with one log line. */
const struct fsp__op_desc *fsp__decode(fsp_req *r, const char *buf, size_t len);
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

/* sd_notify.c: send state (e.g. "READY=1") to the service manager at
 * $NOTIFY_SOCKET, if set (a path, or @name in the abstract namespace).
 * 0, 1 when there is no $NOTIFY_SOCKET, or -errno. Any thread. */
int fsp__sd_notify(const char *state);

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
