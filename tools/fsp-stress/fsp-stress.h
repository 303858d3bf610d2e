/*
 * fsp-stress: shared declarations.
 *
 * The tool is deliberately libc-only: it has to run against any mount point
 * (a plain tmpfs is the reference), so nothing here may depend on libfsp.
 */
#ifndef FSP_STRESS_H
#define FSP_STRESS_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#define FSS_VERSION "1.0"
#define FSS_SHOW_ERRORS 20	/* mismatches printed in full; the rest are counted */
#define FSS_BUF (1u << 20)	/* per-thread I/O buffer */
#define FSS_HOLE_BLK 65536u	/* granularity of holes in sparse generated files */

enum {
	SC_COPY = 1,
	SC_VERIFY = 2,
	SC_CHURN = 4,
	SC_FORGET = 8,
	SC_DELETE = 16,
	SC_ALL = 31,
};

struct opts {
	uint64_t seed;
	bool seed_set;
	unsigned dirs, files, depth, threads, rounds;
	uint64_t max_size;
	double seconds;
	unsigned scen;
	const char *counters;
	bool json, quiet;
	pid_t pid;
	const char *dir;
};
extern struct opts opt;

/* ---- util.c ---------------------------------------------------------- */

/* Every syscall result funnels through here so that ENOTCONN (the FUSE
 * daemon is gone) ends the run wherever it shows up. */
long fss_check(long r, const char *file, int line);
int fss_checkerr(int e, const char *file, int line);
#define CK(x) fss_check((long)(x), __FILE__, __LINE__)
#define CKERR() fss_checkerr(errno, __FILE__, __LINE__)

struct rng {
	uint64_t s[4];
};
uint64_t mix64(uint64_t x);
void rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_next(struct rng *r);
uint64_t rng_below(struct rng *r, uint64_t n);
bool rng_pct(struct rng *r, unsigned pct);

struct fh {
	uint64_t v[4];
	uint8_t buf[32];
	size_t blen;
	uint64_t total;
};
void fh_init(struct fh *h);
void fh_update(struct fh *h, const void *p, size_t n);
uint64_t fh_final(const struct fh *h);

uint64_t content_key(uint64_t seed, uint64_t idx);
bool content_hole(uint64_t key, uint64_t blk);
void content_fill(uint64_t key, bool sparse, uint64_t off, void *buf, size_t len);

double now_mono(void);
void sleep_ms(unsigned ms);
/* Allocation failure ends the run, so these never return NULL. */
#define FSS_NONNULL __attribute__((returns_nonnull, warn_unused_result))
void *xmalloc(size_t n) FSS_NONNULL;
void *xcalloc(size_t n, size_t sz) FSS_NONNULL;
void *xrealloc(void *p, size_t n) FSS_NONNULL;
char *xstrdup(const char *s) FSS_NONNULL;
char *xasprintf(const char *fmt, ...) FSS_NONNULL __attribute__((format(printf, 1, 2)));
char *path_cat(const char *a, const char *b) FSS_NONNULL;
int pwrite_full(int fd, const void *buf, size_t len, off_t off);
ssize_t pread_full(int fd, void *buf, size_t len, off_t off);
int rmtree(const char *path, uint64_t *removed);
int run_cmd(char *const argv[]);
int drop_caches(int level);
bool parse_u64(const char *s, uint64_t *out);
bool parse_size(const char *s, uint64_t *out);
int dir_entries(const char *path, char ***names, size_t *n);
void free_names(char **names, size_t n);

/* ---- report.c -------------------------------------------------------- */

#define PHASE_EXTRA 20
struct phase {
	int round;
	char name[40];
	double t0, secs;
	_Atomic uint64_t ops, bytes, errors;
	int nextra;
	struct {
		char key[24];
		uint64_t val;
	} extra[PHASE_EXTRA];
};

struct phase *phase_begin(int round, const char *name);
void phase_set(struct phase *p, const char *key, uint64_t val);
void phase_end(struct phase *p);
void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void mismatch(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fail_reason(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
uint64_t mismatch_count(void);
bool failed(void);
void set_child(pid_t pid);
void report_counter(int round, const char *key, long long base, long long now);
__attribute__((noreturn, format(printf, 1, 2))) void fs_died(const char *fmt, ...);
void report_init(void);
int report_final(void);

/* Totals for the verdict line, fed by the phases. */
extern _Atomic uint64_t g_verified, g_churn_ops;
extern _Atomic int g_rounds_done;

/* ---- gen.c ----------------------------------------------------------- */

enum ent_type { ET_DIR, ET_FILE, ET_HARDLINK, ET_SYMLINK, ET_FIFO };

struct xattr {
	char *name;
	uint8_t *val;
	uint32_t len;
};

struct entry {
	char *path;		/* relative to the tree root; "" is the root */
	uint8_t type;
	bool sparse;
	uint16_t nxattr;
	uint32_t depth;
	mode_t mode;		/* permission bits incl. sticky */
	uint32_t nlink;		/* files: final link count */
	int32_t primary;	/* hard links: index of the file they name */
	uint64_t size, hash, key;
	struct timespec atime, mtime;
	char *target;		/* symlinks */
	struct xattr *xattrs;
};

struct record {
	uint64_t seed;
	struct entry *ents;
	size_t n, cap;
	uint32_t *index;	/* open-addressing path -> entry index + 1 */
	size_t index_cap;
	size_t ndirs, nfiles, nhard, nsym, nfifo;
	uint64_t bytes;
	bool xattrs_ok;
};

int gen_plan(struct record *rec, uint64_t seed, size_t max_path);
int gen_materialize(struct record *rec, const char *root, struct phase *p);
void gen_free(struct record *rec);
long rec_lookup(const struct record *rec, const char *path, size_t len);

/* ---- copy.c / verify.c / churn.c / delete.c / counters.c ------------- */

int copy_cp(const char *src, const char *dst, struct phase *p);
int copy_own(const char *src, const char *dst, unsigned threads, struct phase *p);
int verify_tree(const struct record *rec, const char *root, const char *label,
		unsigned threads, struct phase *p);
int churn_run(const struct record *rec, const char *tree, const char *priv,
	      bool forget, struct phase *p);
int forget_start(void);
uint64_t forget_stop(void);
int delete_run(const char *workdir, const char *cp_tree, uint64_t cp_entries,
	       char *const own_trees[], size_t n_own, struct phase *p);

struct counters {
	size_t n;
	char **keys;
	long long *vals;
};
int counters_read(const char *cmd, struct counters *c);
void counters_free(struct counters *c);
int counters_check(const char *cmd, const struct counters *base, int round);

#endif
