/* memfs_allocfail.c — the allocation failure sweep: a recorded real workload
 * (traces from tests/fuzz/corpus, made with -o trace=FILE) replayed
 * in-process into fsp-memfs, once without failures to learn how many
 * allocations it makes, then once per allocation N with exactly the Nth one
 * failing: the library's (FSP_FAIL_ALLOC_AT, lib/alloc.c) and, separately,
 * memfs's own (MEMFS_FAIL_ALLOC_AT, fs/memfs/node.c). Each run is a child
 * process, so that both hooks read their variable afresh and each run's
 * leaks are its own. Every run checks:
 *   - every reply is well formed (length, unique, error in (-512, 0], no
 *     payload with an error, at most one reply, none for FORGET/INTERRUPT);
 *   - after the failure the same session keeps working: a second, hand-made
 *     workload (mkdir, create, write, read back, xattr, readdir, rename,
 *     unlink, rmdir, release, forget) must succeed step by step;
 *   - at the end of the session every handle is released and every node
 *     forgotten (memfs's mem_bytes and mem_nodes are 0), and, under `make
 *     asan`, LeakSanitizer finds no leak (the child's exit status says so).
 * The replay acts as a faithful kernel: FORGETs are clamped to the entries
 * this session really handed out (after a failure they differ from the
 * recorded ones). How many allocations a workload makes is found without a
 * counter: with a failure window that never closes (FAIL_ALLOC_LEN huge)
 * starting at N, the replies differ from the failure-free ones exactly when N
 * is below the count (binary search). Every allocation of each trace is
 * failed once; those of setting up a session (two loops of identical shard
 * allocations) sparsely, once. Sessions run on as many CPUs as there are.
 * Options: -v (each session), -j N (sessions at once), --trace FILE (sweep
 * that trace only), --stride N (every Nth allocation only, for big traces),
 * --only lib|memfs N (one session, N failing, each request shown). */
#define main memfs_program_main
#include "../../fs/memfs/memfs.c"
#undef main

#include "fsp_i.h"
#include <fcntl.h>
#include <libgen.h>
#include <sys/wait.h>

/* The traces swept in full (small: every allocation of each is failed once),
 * relative to tests/fuzz/corpus. */
static const char *const traces[] = {
	"trace-mixed", "trace-rename", "trace-xattr", "trace-trunc", "trace-cp",
};

static int verbose;
static int debug;        /* --only: one session, each request on stderr */
static long stride = 1;

static int failures, runs;
static const char *cur_trace = "", *cur_path = "";   /* for messages */
#define FAILF(...) do { failures++; printf("FAIL: " __VA_ARGS__); printf("\n"); \
	fflush(stdout); } while (0)

/* ---- the child: one session, one workload, one verdict ---- */

/* What a child reports through its pipe. */
struct result {
	int setup_failed;          /* setup() or fsp_session_new() refused: fine */
	int bad_reply;             /* a malformed reply (what: msg) */
	int wl2_failed;            /* the second workload failed (what: msg) */
	int leaked;                /* memfs accounting not 0 after the session */
	uint64_t nreq, nenomem, nerr;
	uint64_t fingerprint;      /* of workload 1's reply errors and lengths */
	char msg[200];
};

static struct result res;
static uint64_t cur_unique;
static uint32_t cur_opcode;
static int nreplies;
static char reply[1 << 20];
static size_t reply_len;

static void note_bad(const char *what)
{
	if (!res.bad_reply++)
		snprintf(res.msg, sizeof(res.msg), "%s (opcode %u, request %llu)", what,
			 cur_opcode, (unsigned long long)cur_unique);
}

static int c_send(struct fsp__chan *c, const struct iovec *iov, int n)
{
	struct fw_out_header oh;
	size_t len = 0;

	(void)c;
	for (int i = 0; i < n; i++) {
		if (len + iov[i].iov_len > sizeof(reply)) {
			note_bad("reply larger than 1 MiB");
			return 0;
		}
		memcpy(reply + len, iov[i].iov_base, iov[i].iov_len);
		len += iov[i].iov_len;
	}
	reply_len = len;
	nreplies++;
	if (len < sizeof(oh)) {
		note_bad("reply shorter than its header");
		return 0;
	}
	memcpy(&oh, reply, sizeof(oh));
	if (oh.len != len)
		note_bad("reply length differs from its header");
	if (oh.unique != cur_unique)
		note_bad("reply to the wrong unique");
	if (oh.error > 0 || oh.error <= -512)
		note_bad("error out of range");
	if (oh.error && len != sizeof(oh))
		note_bad("error reply with a payload");
	if (cur_opcode == FW_FORGET || cur_opcode == FW_BATCH_FORGET || cur_opcode == FW_INTERRUPT)
		note_bad("reply to a request that takes none");
	if (nreplies > 1)
		note_bad("second reply to one request");
	return 0;
}

static void c_close(struct fsp__chan *c) { (void)c; }
static const struct fsp__chan_ops c_ops = { .send = c_send, .close = c_close };
static struct fsp__chan c_chan = { &c_ops, -1 };
static struct fsp__worker w;

/* Dispatch the request in w.inbuf (len bytes). Returns the reply's error,
 * 1 if there was no reply. */
static int dispatch(size_t len)
{
	struct fw_in_header in;
	struct fw_out_header oh;

	cur_opcode = 0;
	if (len >= sizeof(in)) {
		memcpy(&in, w.inbuf, sizeof(in));
		in.unique = ++cur_unique;
		memcpy(w.inbuf, &in, sizeof(in));
		cur_opcode = in.opcode;
	}
	nreplies = 0;
	reply_len = 0;
	fsp__dispatch(&w, len);
	if (!nreplies || reply_len < sizeof(oh))
		return 1;
	memcpy(&oh, reply, sizeof(oh));
	return oh.error;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
	return h * 0xff51afd7ed558ccdULL;
}

/* ---- a faithful kernel: FORGET only what the replies handed out ----
 *
 * The trace's FORGETs count the lookups of the recorded session; once an
 * injected failure has made a reply differ, they may ask to forget more than
 * this session handed out, which the real kernel never does (and debug
 * builds abort on). So, as the kernel, the replay counts the entries each
 * successful reply hands out and clamps every FORGET to that count. */
#define KMAP 65536
static struct { uint64_t ino, n; } kmap[KMAP];

static uint64_t *kcount(uint64_t ino)
{
	size_t i = (size_t)(ino * 0x9e3779b97f4a7c15ULL >> 48) & (KMAP - 1);

	for (size_t k = 0; k < KMAP; k++, i = (i + 1) & (KMAP - 1)) {
		if (kmap[i].ino == ino)
			return &kmap[i].n;
		if (!kmap[i].ino) {
			kmap[i].ino = ino;
			return &kmap[i].n;
		}
	}
	abort();   /* more nodes than any trace here has */
}

/* After a successful reply to opcode: count the entries it handed out. */
static void kernel_learns(uint32_t opcode)
{
	const char *p = reply + sizeof(struct fw_out_header);
	size_t plen = reply_len - sizeof(struct fw_out_header);
	struct fw_entry_out eo;

	switch (opcode) {
	case FW_LOOKUP: case FW_MKNOD: case FW_MKDIR: case FW_SYMLINK: case FW_LINK:
	case FW_CREATE: case FW_TMPFILE:
		if (plen >= sizeof(eo)) {
			memcpy(&eo, p, sizeof(eo));
			if (eo.nodeid)
				(*kcount(eo.nodeid))++;
		}
		break;
	case FW_READDIRPLUS:
		/* the kernel takes no reference for ".", ".." or node id 0 */
		for (size_t off = 0; off + sizeof(struct fw_direntplus) <= plen;) {
			struct fw_direntplus de;
			const char *name = p + off + sizeof(de);

			memcpy(&de, p + off, sizeof(de));
			if (de.dirent.namelen > plen - off - sizeof(de))
				break;
			if (de.entry_out.nodeid &&
			    !(de.dirent.namelen == 1 && name[0] == '.') &&
			    !(de.dirent.namelen == 2 && name[0] == '.' && name[1] == '.'))
				(*kcount(de.entry_out.nodeid))++;
			off += (sizeof(de) + de.dirent.namelen + 7) & ~(size_t)7;
		}
		break;
	}
}

static uint64_t clamp_forget(uint64_t ino, uint64_t n)
{
	uint64_t *have = kcount(ino);

	if (n > *have)
		n = *have;
	*have -= n;
	return n;
}

/* Rewrite a FORGET or BATCH_FORGET in w.inbuf as the kernel would have sent
 * it. Returns the new length; 0 when nothing is left to forget. */
static size_t kernel_forgets(size_t len)
{
	struct fw_in_header in;
	char *body = w.inbuf + sizeof(in);

	if (len < sizeof(in))
		return len;
	memcpy(&in, w.inbuf, sizeof(in));
	if (in.opcode == FW_FORGET && len >= sizeof(in) + sizeof(struct fw_forget_in)) {
		struct fw_forget_in f;
		memcpy(&f, body, sizeof(f));
		f.nlookup = clamp_forget(in.nodeid, f.nlookup);
		memcpy(body, &f, sizeof(f));
		return f.nlookup ? len : 0;
	}
	if (in.opcode == FW_BATCH_FORGET && len >= sizeof(in) + sizeof(struct fw_batch_forget_in)) {
		struct fw_batch_forget_in b;
		struct fw_forget_one *one = (void *)(body + sizeof(b));
		size_t max = (len - sizeof(in) - sizeof(b)) / sizeof(*one);
		uint32_t kept = 0;

		memcpy(&b, body, sizeof(b));
		for (uint32_t i = 0; i < b.count && i < max; i++) {
			struct fw_forget_one o;
			memcpy(&o, &one[i], sizeof(o));
			o.nlookup = clamp_forget(o.nodeid, o.nlookup);
			if (o.nlookup)
				memcpy(&one[kept++], &o, sizeof(o));
		}
		b.count = kept;
		memcpy(body, &b, sizeof(b));
		in.len = (uint32_t)(sizeof(in) + sizeof(b) + kept * sizeof(*one));
		memcpy(w.inbuf, &in, sizeof(in));
		return kept ? in.len : 0;
	}
	return len;
}

/* Workload 1: the trace, records kind(1) len(2, LE) request(len). */
static void replay(const unsigned char *p, size_t size, size_t bufsize)
{
	while (size >= 3) {
		size_t len = p[1] | (size_t)p[2] << 8;
		int err;

		p += 3;
		size -= 3;
		if (len > size)
			len = size;
		if (len > bufsize)
			len = bufsize;
		memcpy(w.inbuf, p, len);
		p += len;
		size -= len;
		len = kernel_forgets(len);
		if (!len)
			continue;
		err = dispatch(len);
		if (debug) {
			struct fw_in_header ih;
			memcpy(&ih, w.inbuf, sizeof(ih));
			fprintf(stderr, "req %llu op %u node %llu -> %d\n", (unsigned long long)ih.unique, ih.opcode, (unsigned long long)ih.nodeid, err);
		}
		if (err == 0)
			kernel_learns(cur_opcode);
		res.nreq++;
		if (err < 0)
			res.nerr++;
		if (err == -ENOMEM)
			res.nenomem++;
		res.fingerprint = mix(res.fingerprint, (uint64_t)(uint32_t)err << 32 |
				      (err == 0 ? reply_len : 0));
		if (err == 0 && cur_opcode == FW_WRITE &&
		    reply_len >= sizeof(struct fw_out_header) + sizeof(uint32_t)) {
			uint32_t written;   /* a short write is a success too */
			memcpy(&written, reply + sizeof(struct fw_out_header), sizeof(written));
			res.fingerprint = mix(res.fingerprint, written);
		}
	}
}

/* ---- workload 2: hand-made requests, each must succeed ---- */

static int wl2_step;

static int req(uint32_t opcode, uint64_t nodeid, const void *b1, size_t l1,
	       const void *b2, size_t l2)
{
	struct fw_in_header in;

	memset(&in, 0, sizeof(in));
	in.len = (uint32_t)(sizeof(in) + l1 + l2);
	in.opcode = opcode;
	in.nodeid = nodeid;
	memcpy(w.inbuf, &in, sizeof(in));
	if (l1)
		memcpy(w.inbuf + sizeof(in), b1, l1);
	if (l2)
		memcpy(w.inbuf + sizeof(in) + l1, b2, l2);
	wl2_step++;
	return dispatch(in.len);
}

#define WL2(cond, what) do { if (!(cond)) { if (!res.wl2_failed++) \
	snprintf(res.msg, sizeof(res.msg), "second workload, step %d: %s (error %d)", \
		 wl2_step, what, err); return; } } while (0)

static const void *payload(void) { return reply + sizeof(struct fw_out_header); }

static void workload2(void)
{
	static char data[10000], name[64];
	struct fw_entry_out eo;
	struct fw_open_out oo;
	uint64_t dir, file, fh, dfh;
	int err;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)('a' + i % 23);
	/* a name the trace cannot have used */
	snprintf(name, sizeof(name), "allocfail-%d", (int)getpid());
	struct fw_mkdir_in mi = { .mode = S_IFDIR | 0755 };
	err = req(FW_MKDIR, FSP_ROOT_INO, &mi, sizeof(mi), name, strlen(name) + 1);
	WL2(err == 0, "mkdir");
	memcpy(&eo, payload(), sizeof(eo));
	dir = eo.nodeid;

	struct fw_create_in ci = { .flags = O_RDWR, .mode = S_IFREG | 0644 };
	err = req(FW_CREATE, dir, &ci, sizeof(ci), "file", 5);
	WL2(err == 0, "create");
	memcpy(&eo, payload(), sizeof(eo));
	memcpy(&oo, (const char *)payload() + sizeof(eo), sizeof(oo));
	file = eo.nodeid;
	fh = oo.fh;

	struct fw_write_in wi = { .fh = fh, .offset = 0, .size = sizeof(data) };
	err = req(FW_WRITE, file, &wi, sizeof(wi), data, sizeof(data));
	WL2(err == 0, "write");
	struct fw_write_out wo;
	memcpy(&wo, payload(), sizeof(wo));
	WL2(wo.size == sizeof(data), "short write");

	struct fw_read_in ri = { .fh = fh, .offset = 0, .size = sizeof(data) + 100 };
	err = req(FW_READ, file, &ri, sizeof(ri), NULL, 0);
	WL2(err == 0, "read");
	WL2(reply_len - sizeof(struct fw_out_header) == sizeof(data) &&
	    memcmp(payload(), data, sizeof(data)) == 0, "read back differs");

	struct fw_setxattr_in si = { .size = 5 };
	char xa[32] = "user.allocfail\0value";
	err = req(FW_SETXATTR, file, &si, sizeof(si), xa, 15 + 5);
	WL2(err == 0, "setxattr");
	struct fw_getxattr_in gi = { .size = 64 };
	err = req(FW_GETXATTR, file, &gi, sizeof(gi), "user.allocfail", 15);
	WL2(err == 0 && reply_len - sizeof(struct fw_out_header) == 5 &&
	    memcmp(payload(), "value", 5) == 0, "getxattr");

	struct fw_release_in rel = { .fh = fh };
	err = req(FW_RELEASE, file, &rel, sizeof(rel), NULL, 0);
	WL2(err == 0, "release");

	struct fw_open_in oi = { .flags = O_RDONLY };
	err = req(FW_OPENDIR, dir, &oi, sizeof(oi), NULL, 0);
	WL2(err == 0, "opendir");
	memcpy(&oo, payload(), sizeof(oo));
	dfh = oo.fh;
	struct fw_read_in rdi = { .fh = dfh, .offset = 0, .size = 4096 };
	err = req(FW_READDIR, dir, &rdi, sizeof(rdi), NULL, 0);
	WL2(err == 0, "readdir");
	bool found = false;
	for (size_t off = sizeof(struct fw_out_header); off + sizeof(struct fw_dirent) <= reply_len;) {
		struct fw_dirent de;
		memcpy(&de, reply + off, sizeof(de));
		if (de.namelen == 4 && memcmp(reply + off + sizeof(de), "file", 4) == 0)
			found = true;
		off += (sizeof(de) + de.namelen + 7) & ~(size_t)7;
	}
	WL2(found, "readdir does not list the new file");
	struct fw_release_in rdel = { .fh = dfh };
	err = req(FW_RELEASEDIR, dir, &rdel, sizeof(rdel), NULL, 0);
	WL2(err == 0, "releasedir");

	struct fw_rename2_in rn = { .newdir = dir };
	err = req(FW_RENAME2, dir, &rn, sizeof(rn), "file\0file2", 11);
	WL2(err == 0, "rename");
	err = req(FW_UNLINK, dir, "file2", 6, NULL, 0);
	WL2(err == 0, "unlink");
	struct fw_forget_in fg = { .nlookup = 1 };
	err = req(FW_FORGET, file, &fg, sizeof(fg), NULL, 0);
	WL2(err == 1, "forget of the file was answered");
	err = req(FW_RMDIR, FSP_ROOT_INO, name, strlen(name) + 1, NULL, 0);
	WL2(err == 0, "rmdir");
	err = req(FW_FORGET, dir, &fg, sizeof(fg), NULL, 0);
	WL2(err == 1, "forget of the directory was answered");
}

/* One session: returns through the pipe fd. */
static void child(const unsigned char *trace, size_t size, int do_wl2, int fd)
{
	static struct memfs fs;
	struct fsp_config cfg;
	fsp_session *s = NULL;
	size_t bufsize = 128 * 1024 + 4096;
	int rc;

	memset(&res, 0, sizeof(res));
	memset(&fs, 0, sizeof(fs));
	fsp__log_quiet = 1;
	rc = setup(&fs);
	if (rc < 0) {
		res.setup_failed = 1;
		if (atomic_load(&fs.mem_bytes) || atomic_load(&fs.mem_nodes)) {
			res.leaked = 1;
			snprintf(res.msg, sizeof(res.msg), "a failed setup() left memory accounted");
		}
		goto report;   /* setup() destroyed what it had made */
	}
	fs.size_limit = 256 << 20;
	fs.nodes_limit = 100000;
	fsp_config_init(&cfg);
	cfg.mountpoint = "/allocfail";
	if (fsp_session_new(&memfs_ops, &cfg, fs.root, &fs, &s) < 0) {
		res.setup_failed = 1;
		memfs_free_tree(&fs, fs.root);
		goto check;
	}
	s->bufsize = bufsize;
	s->max_write = 128 * 1024;
	s->init_done = true;
	s->flags = FW_INIT_SETXATTR_EXT | FW_INIT_DO_READDIRPLUS | FW_INIT_HANDLE_KILLPRIV_V2;
	memset(&w, 0, sizeof(w));
	w.s = s;
	w.chan = &c_chan;
	/* plain malloc: the worker's buffers are the test's, not the library's */
	w.inbuf = malloc(bufsize);
	w.outbuf = malloc(bufsize);
	s->workers = &w;
	s->nslots = 1;

	replay(trace, size, bufsize);
	if (do_wl2)
		workload2();

	s->workers = NULL;
	s->nslots = 0;
	free(w.inbuf);
	free(w.outbuf);
	fsp_session_free(s);   /* releases, forgets, destroy */
check:
	if (atomic_load(&fs.mem_bytes) || atomic_load(&fs.mem_nodes)) {
		res.leaked = 1;
		if (!res.msg[0])
			snprintf(res.msg, sizeof(res.msg), "memfs still accounts %llu bytes, %llu nodes",
				 (unsigned long long)atomic_load(&fs.mem_bytes),
				 (unsigned long long)atomic_load(&fs.mem_nodes));
	}
	pthread_mutex_destroy(&fs.rename_lock);
report:
	if (write(fd, &res, sizeof(res)) != (ssize_t)sizeof(res))
		_exit(3);
	close(fd);
	if (!do_wl2)
		_exit(0);   /* a counting run: no leak check, it costs more than the run */
	exit(0);        /* LeakSanitizer (make asan) checks at exit */
}

/* ---- the parent: runs children, compares ---- */

/* One session in a child process. */
struct job {
	pid_t pid;
	int fd;
	int lib;
	long at;
};

/* Start a session with the library's (lib=1) or memfs's failure window
 * [at, at+len); at < 0: no failure. */
static void start(struct job *j, const unsigned char *trace, size_t size, int lib, long at,
		  long len, int do_wl2)
{
	int p[2];
	char v[32];

	runs++;
	fflush(stdout);
	fflush(stderr);
	if (pipe(p) < 0) {
		perror("pipe");
		exit(2);
	}
	j->lib = lib;
	j->at = at;
	j->pid = fork();
	if (j->pid < 0) {
		perror("fork");
		exit(2);
	}
	if (j->pid == 0) {
		close(p[0]);
		unsetenv("FSP_FAIL_ALLOC_AT");
		unsetenv("FSP_FAIL_ALLOC_LEN");
		unsetenv("MEMFS_FAIL_ALLOC_AT");
		unsetenv("MEMFS_FAIL_ALLOC_LEN");
		if (at >= 0) {
			snprintf(v, sizeof(v), "%ld", at);
			setenv(lib ? "FSP_FAIL_ALLOC_AT" : "MEMFS_FAIL_ALLOC_AT", v, 1);
			snprintf(v, sizeof(v), "%ld", len);
			setenv(lib ? "FSP_FAIL_ALLOC_LEN" : "MEMFS_FAIL_ALLOC_LEN", v, 1);
		}
		child(trace, size, do_wl2, p[1]);
	}
	close(p[1]);
	j->fd = p[0];
}

/* Wait for a session: 0 and *out, or -1 when the child crashed or exited
 * non-zero (reported). */
static int finish(struct job *j, struct result *out)
{
	ssize_t n;
	int st;

	memset(out, 0, sizeof(*out));
	do
		n = read(j->fd, out, sizeof(*out));
	while (n < 0 && errno == EINTR);
	close(j->fd);
	while (waitpid(j->pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(st) || WEXITSTATUS(st) != 0 || n != (ssize_t)sizeof(*out)) {
		FAILF("%s, %s allocation %ld failing: the session %s %d%s (alone: memfs_allocfail "
		      "--trace %s --only %s %ld)", cur_trace, j->lib ? "library" : "memfs", j->at,
		      WIFSIGNALED(st) ? "was killed by signal" : "exited with status",
		      WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st),
		      WIFSIGNALED(st) ? "" : ": see the sanitizer's report above (LeakSanitizer: a leak)",
		      cur_path, j->lib ? "lib" : "memfs", j->at);
		return -1;
	}
	return 0;
}

static int run(const unsigned char *trace, size_t size, int lib, long at, long len,
	       int do_wl2, struct result *out)
{
	struct job j;

	start(&j, trace, size, lib, at, len, do_wl2);
	return finish(&j, out);
}

static int same(const struct result *a, const struct result *b)
{
	return a->fingerprint == b->fingerprint && a->nreq == b->nreq &&
	       a->setup_failed == b->setup_failed;
}

/* How many allocations (of one kind) a session makes up to the end of the
 * trace: the smallest N whose never-closing failure window changes nothing
 * (the replies of a shorter window differ: the first failure shows). */
static long count_allocs(const unsigned char *trace, size_t size, int lib,
			 const struct result *base)
{
	struct result r;
	long lo = 0, hi = 64;

	for (;;) {   /* an upper bound */
		if (run(trace, size, lib, hi, 1L << 40, 0, &r) < 0)
			return -1;
		if (same(&r, base))
			break;
		lo = hi + 1;
		hi *= 2;
		if (hi > 1L << 24)
			return -1;
	}
	while (lo < hi) {   /* the answer lies in [lo, hi] */
		long mid = lo + (hi - lo) / 2;
		if (run(trace, size, lib, mid, 1L << 40, 0, &r) < 0)
			return -1;
		if (same(&r, base))
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

static int njobs = 2;

/* Fail each allocation in [from, to) once, njobs sessions at a time. With
 * sparse, only the first and last 8 and every 8th between: the session's
 * setup is two loops of 64 identical shard allocations, whose failures all
 * take the same path (and each session costs a leak check under ASan). */
static long next_at(long n, long from, long to, int sparse)
{
	if (!sparse)
		return n + stride;
	if (n + 1 < from + 8 || n + 1 >= to - 8)
		return n + 1;
	return n + 8 < to - 8 ? n + 8 : to - 8;
}

static void sweep_range(const char *name, const unsigned char *trace, size_t size, int lib,
			long from, long to, const char *what, int sparse)
{
	struct job jobs[16];
	struct result r;
	long nenomem = 0, nsetup = 0, nbad = 0, nruns = 0, nerr = 0;
	int nj = 0;

	for (long n = from; n < to || nj > 0;) {
		if (n < to && nj < njobs) {
			start(&jobs[nj++], trace, size, lib, n, 1, 1);
			n = next_at(n, from, to, sparse);
			nruns++;
			continue;
		}
		struct job j = jobs[0];
		memmove(jobs, jobs + 1, (size_t)(--nj) * sizeof(jobs[0]));
		if (finish(&j, &r) < 0) {
			nbad++;
			continue;
		}
		nenomem += (long)r.nenomem;
		nerr += (long)r.nerr;
		nsetup += r.setup_failed;
		if (r.bad_reply || r.wl2_failed || r.leaked) {
			nbad++;
			FAILF("%s, %s allocation %ld failing: %s", name, lib ? "library" : "memfs",
			      j.at, r.msg);
		} else if (verbose) {
			printf("  %s %s allocation %ld: %llu requests, %llu errors (%llu ENOMEM)%s\n",
			       name, lib ? "library" : "memfs", j.at, (unsigned long long)r.nreq,
			       (unsigned long long)r.nerr, (unsigned long long)r.nenomem,
			       r.setup_failed ? ", setup refused" : "");
		}
	}
	printf("%s: %s allocations %ld..%ld (%s) failed one at a time%s: %ld sessions, "
	       "%ld error replies (%ld ENOMEM), %ld setups refused, %ld bad\n", name,
	       lib ? "library" : "memfs", from, to - 1, what,
	       sparse ? " (first/last 8, every 8th between)" : stride > 1 ? " (strided)" : "",
	       nruns, nerr, nenomem, nsetup, nbad);
}

/* Sweep one trace; the allocations of setting up a session (before the
 * first request) only when with_setup. */
static void sweep(const char *name, const unsigned char *trace, size_t size, int with_setup)
{
	static const unsigned char none[1];
	static long setups[2] = { -2, -2 };   /* [lib]: the same for every trace */
	struct result base, empty;

	if (run(trace, size, 1, -1, 0, 1, &base) < 0)
		return;
	if (base.setup_failed || base.bad_reply || base.wl2_failed || base.leaked) {
		FAILF("%s without failures: %s", name, base.msg);
		return;
	}
	for (int lib = 1; lib >= 0; lib--) {
		if (setups[lib] == -2)
			setups[lib] = run(none, 0, lib, -1, 0, 0, &empty) < 0 ? -1 :
				      count_allocs(none, 0, lib, &empty);
		long setup = setups[lib];
		long total = count_allocs(trace, size, lib, &base);

		if (setup < 0 || total < setup) {
			FAILF("%s: could not count the %s allocations", name, lib ? "library" : "memfs");
			continue;
		}
		if (with_setup)
			sweep_range(name, trace, size, lib, 0, setup, "session setup", 1);
		sweep_range(name, trace, size, lib, setup, total, "the trace", 0);
	}
}

static unsigned char *load(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n);
		if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		}
		*size = (size_t)n;
	}
	fclose(f);
	return buf;
}

/* tests/fuzz/corpus: from $ROOT (set by tests/run.sh), else next to the
 * binary (BUILD/unit/NAME -> BUILD/../tests/fuzz/corpus). */
static void corpus_dir(char *buf, size_t size)
{
	const char *root = getenv("ROOT");
	char exe[PATH_MAX];
	ssize_t n;

	if (root && *root) {
		snprintf(buf, size, "%s/tests/fuzz/corpus", root);
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = 0;
	snprintf(buf, size, "%s/../tests/fuzz/corpus", dirname(dirname(exe)));
}

int main(int argc, char **argv)
{
	char dir[PATH_MAX], path[PATH_MAX + 64];
	const char *one = NULL;
	long only_at = -2;
	int only_lib = 0;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	njobs = ncpu < 1 ? 1 : ncpu > 8 ? 8 : (int)ncpu;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-v"))
			verbose = 1;
		else if (!strcmp(argv[i], "--trace") && i + 1 < argc)
			one = argv[++i];
		else if (!strcmp(argv[i], "--only") && i + 2 < argc) {
			only_lib = !strcmp(argv[++i], "lib");
			only_at = atol(argv[++i]);
		} else if (!strcmp(argv[i], "--stride") && i + 1 < argc && atol(argv[i + 1]) > 0)
			stride = atol(argv[++i]);
		else if (!strcmp(argv[i], "-j") && i + 1 < argc && atoi(argv[i + 1]) > 0)
			njobs = atoi(argv[++i]) > 16 ? 16 : atoi(argv[i]);
		else {
			fprintf(stderr, "usage: memfs_allocfail [-v] [-j N] [--trace FILE] [--stride N]"
				" [--only lib|memfs N]\n");
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	corpus_dir(dir, sizeof(dir));
	for (size_t i = 0; i < (one ? 1 : sizeof(traces) / sizeof(traces[0])); i++) {
		size_t size = 0;
		unsigned char *t;

		if (one)
			snprintf(path, sizeof(path), "%s", one);
		else
			snprintf(path, sizeof(path), "%s/%s", dir, traces[i]);
		t = load(path, &size);
		if (!t) {
			FAILF("cannot read the trace %s", path);
			continue;
		}
		cur_trace = one ? one : traces[i];
		cur_path = path;
		if (only_at > -2) {
			struct result r;
			debug = 1;
			if (run(t, size, only_lib, only_at, 1, 1, &r) == 0)
				printf("%s: %s\n", path, r.msg[0] ? r.msg : "ok");
		} else {
			sweep(one ? one : traces[i], t, size, i == 0);
		}
		free(t);
	}
	printf("%s memfs_allocfail (%d sessions, %d failed checks)\n", failures ? "FAIL" : "PASS",
	       runs, failures);
	return failures ? 1 : 0;
}
