/* lifetime.c — the library's request path in-process, no kernel: a fake
 * channel records replies, requests are built by hand. Checks validation
 * (malformed -> EIO, unknown -> ENOSYS, bad names, bad handles) and lifetime
 * (lookup counts, forget exactly once with the right count, ESTALE, handles
 * released exactly once, also when RELEASE overtakes nothing and FORGET
 * overtakes RELEASE). */
#include "fsp_i.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures, checks;
#define CHECK(cond, ...) do { checks++; if (!(cond)) { failures++; \
	printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

/* ---- fake channel ---- */
static char last_reply[1 << 16];
static size_t last_len;
static int nreplies;
static int fail_next_send;   /* -ENOENT: the kernel forgot the request */

static int fake_send(struct fsp__chan *c, const struct iovec *iov, int n)
{
	(void)c;
	last_len = 0;
	for (int i = 0; i < n; i++) {
		memcpy(last_reply + last_len, iov[i].iov_base, iov[i].iov_len);
		last_len += iov[i].iov_len;
	}
	nreplies++;
	if (fail_next_send) {
		int e = fail_next_send;
		fail_next_send = 0;
		return e;
	}
	return 0;
}

static void fake_close(struct fsp__chan *c) { (void)c; }
static const struct fsp__chan_ops fake_ops = { .send = fake_send, .close = fake_close };
static struct fsp__chan fake_chan = { &fake_ops, -1 };

static int reply_error(void)
{
	struct fw_out_header oh;
	memcpy(&oh, last_reply, sizeof(oh));
	return oh.error;
}

/* ---- a tiny file system: objects are ints, ino = 100 + index ---- */
#define NOBJ 8
static int objs[NOBJ];
static uint64_t forgotten[NOBJ];   /* sum of n passed to forget */
static int forget_calls[NOBJ];
static int releases;
static int attr_releases;          /* of objects f and g (attr fh checks) */
static int root_obj;

static int idx(void *o) { return (int)((int *)o - objs); }

static int t_lookup(fsp_req *r, void *dir, const char *name, struct fsp_entry *e)
{
	(void)r, (void)dir;
	if (name[0] < 'a' || name[0] >= 'a' + NOBJ || name[1])
		return -ENOENT;
	int i = name[0] - 'a';
	e->ino = 100 + i;
	e->obj = &objs[i];
	e->attr.st_mode = S_IFREG | 0644;
	e->attr.st_nlink = 1;
	return 0;
}

static void t_forget(fsp_session *s, void *obj, uint64_t n)
{
	(void)s;
	if (obj == &root_obj)
		return;
	forgotten[idx(obj)] += n;
	forget_calls[idx(obj)]++;
}

static int t_open(fsp_req *r, void *obj, int flags, struct fsp_open_out *o)
{
	(void)r, (void)flags;
	o->fh = obj;
	return 0;
}

static void t_release(fsp_session *s, void *obj, void *fh, int flags)
{
	(void)s, (void)fh, (void)flags;
	if (idx(obj) >= 5)
		attr_releases++;
	else
		releases++;
}

static ssize_t t_read(fsp_req *r, void *obj, void *fh, void *buf, size_t size, off_t off)
{
	(void)r, (void)obj, (void)fh, (void)off;
	memset(buf, 'x', size);
	return (ssize_t)size;
}

/* what the last getattr/setattr was called with */
static void *attr_obj, *attr_fh;
static int attr_calls;

static int t_getattr(fsp_req *r, void *obj, void *fh, struct stat *st)
{
	(void)r;
	attr_obj = obj, attr_fh = fh, attr_calls++;
	st->st_mode = S_IFREG | 0644;
	return 0;
}

static int t_setattr(fsp_req *r, void *obj, void *fh, const struct fsp_setattr *sa,
		     struct stat *st)
{
	(void)r, (void)sa;
	attr_obj = obj, attr_fh = fh, attr_calls++;
	st->st_mode = S_IFREG | 0644;
	return 0;
}

static const struct fsp_operations t_ops = {
	.lookup = t_lookup, .forget = t_forget, .open = t_open, .release = t_release,
	.read = t_read, .getattr = t_getattr, .setattr = t_setattr,
};

/* ---- request building ---- */
static char req[1 << 16];
static uint64_t next_unique = 1;
static struct fsp__worker worker;

static size_t build(uint32_t opcode, uint64_t nodeid, const void *body, size_t blen)
{
	struct fw_in_header in;
	memset(&in, 0, sizeof(in));
	in.len = (uint32_t)(sizeof(in) + blen);
	in.opcode = opcode;
	in.unique = next_unique++;
	in.nodeid = nodeid;
	memcpy(req, &in, sizeof(in));
	if (blen)
		memcpy(req + sizeof(in), body, blen);
	return sizeof(in) + blen;
}

static int send_req(uint32_t opcode, uint64_t nodeid, const void *body, size_t blen)
{
	size_t len = build(opcode, nodeid, body, blen);
	memcpy(worker.inbuf, req, len);
	nreplies = 0;
	fsp__dispatch(&worker, len);
	return nreplies ? reply_error() : 1;  /* 1: no reply */
}

static int lookup(const char *name)
{
	return send_req(FW_LOOKUP, FSP_ROOT_INO, name, strlen(name) + 1);
}

static void forget(uint64_t ino, uint64_t n)
{
	struct fw_forget_in f = { .nlookup = n };
	CHECK(send_req(FW_FORGET, ino, &f, sizeof(f)) == 1, "FORGET must not be answered");
}

static uint64_t open_file(uint64_t ino)
{
	struct fw_open_in o = { .flags = 0 };
	CHECK(send_req(FW_OPEN, ino, &o, sizeof(o)) == 0, "OPEN of %llu", (unsigned long long)ino);
	struct fw_open_out oo;
	memcpy(&oo, last_reply + sizeof(struct fw_out_header), sizeof(oo));
	return oo.fh;
}

static int release_file(uint64_t ino, uint64_t fh)
{
	struct fw_release_in r = { .fh = fh };
	return send_req(FW_RELEASE, ino, &r, sizeof(r));
}

/* GETATTR/SETATTR of node ino naming fh: the fh callback argument. */
static void *getattr_fh(uint64_t ino, uint64_t fh)
{
	struct fw_getattr_in g = { .getattr_flags = FW_GETATTR_FH, .fh = fh };
	int n = attr_calls;
	attr_fh = (void *)1;
	CHECK(send_req(FW_GETATTR, ino, &g, sizeof(g)) == 0 && attr_calls == n + 1 &&
	      attr_obj == &objs[ino - 100], "GETATTR of %llu", (unsigned long long)ino);
	return attr_fh;
}

static void *setattr_fh(uint64_t ino, uint64_t fh)
{
	struct fw_setattr_in sa = { .valid = FW_FATTR_FH | FW_FATTR_SIZE, .fh = fh, .size = 0 };
	int n = attr_calls;
	attr_fh = (void *)1;
	CHECK(send_req(FW_SETATTR, ino, &sa, sizeof(sa)) == 0 && attr_calls == n + 1 &&
	      attr_obj == &objs[ino - 100], "SETATTR of %llu", (unsigned long long)ino);
	return attr_fh;
}

/* An fh is used by GETATTR/SETATTR only on the node it was opened on; one
 * of another node is ignored (as if none was given), never passed on. */
static void attr_fh_checks(void)
{
	CHECK(lookup("f") == 0 && lookup("g") == 0, "lookup f, g");
	uint64_t ff = open_file(105);   /* the fs's fh for f is &objs[5] */
	CHECK(getattr_fh(105, ff) == &objs[5], "GETATTR of f with f's fh gets it");
	CHECK(getattr_fh(106, ff) == NULL, "GETATTR of g with f's fh gets no fh");
	CHECK(getattr_fh(106, 9999) == NULL, "GETATTR with an unknown fh gets no fh");
	CHECK(setattr_fh(105, ff) == &objs[5], "SETATTR of f with f's fh gets it");
	CHECK(setattr_fh(106, ff) == NULL, "SETATTR (truncate) of g with f's fh gets no fh");
	CHECK(setattr_fh(106, 9999) == NULL, "SETATTR with an unknown fh gets no fh");
	CHECK(release_file(105, ff) == 0 && attr_releases == 1, "f's open released once");
	forget(105, 1);
	forget(106, 1);
	CHECK(forget_calls[5] == 1 && forget_calls[6] == 1, "f and g forgotten");
}

int main(void)
{
	struct fsp_config cfg;
	fsp_session *s;

	fsp_config_init(&cfg);
	cfg.mountpoint = "/nonexistent";
	if (fsp_session_new(&t_ops, &cfg, &root_obj, NULL, &s) < 0) {
		printf("FAIL session_new\n");
		return 1;
	}
	s->bufsize = 1 << 16;
	s->init_done = true;
	s->flags = FW_INIT_SETXATTR_EXT;
	worker.s = s;
	worker.chan = &fake_chan;
	worker.inbuf = malloc(s->bufsize);
	worker.outbuf = malloc(s->bufsize);
	s->workers = &worker;
	s->nslots = 1;

	/* validation */
	memset(worker.inbuf, 0, 8);
	nreplies = 0;
	fsp__dispatch(&worker, 8);
	CHECK(nreplies == 0, "a request shorter than a header has no unique to answer");

	size_t len = build(FW_GETATTR, FSP_ROOT_INO, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
	memcpy(worker.inbuf, req, len);
	nreplies = 0;
	fsp__dispatch(&worker, len - 4);   /* header says more than was read */
	CHECK(nreplies == 1 && reply_error() == -EIO, "length mismatch -> EIO, got %d", reply_error());

	CHECK(send_req(63, 1, NULL, 0) == -ENOSYS, "unknown opcode -> ENOSYS");
	CHECK(send_req(9999, 1, NULL, 0) == -ENOSYS, "huge opcode -> ENOSYS");
	CHECK(send_req(FW_GETATTR, 1, "x", 1) == -EIO, "short body -> EIO");
	CHECK(send_req(FW_LOOKUP, 1, "abc", 3) == -EIO, "name without NUL -> EIO");
	CHECK(send_req(FW_LOOKUP, 1, "", 1) == -EIO, "empty name -> EIO");
	char longname[300];
	memset(longname, 'n', 256);
	longname[256] = 0;
	CHECK(send_req(FW_LOOKUP, 1, longname, 257) == -ENAMETOOLONG, "256-byte name");
	longname[255] = 0;
	CHECK(send_req(FW_LOOKUP, 1, longname, 256) == -ENOENT, "255-byte name reaches the fs");
	CHECK(send_req(FW_GETATTR, 12345, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16) == -ESTALE,
	      "unknown node -> ESTALE");
	struct fw_read_in rd = { .fh = 777, .size = 10 };
	CHECK(send_req(FW_READ, 1, &rd, sizeof(rd)) == -EBADF, "unknown fh -> EBADF");
	struct fw_batch_forget_in bf = { .count = 1000 };
	CHECK(send_req(FW_BATCH_FORGET, 0, &bf, sizeof(bf)) == 1, "bogus BATCH_FORGET: no reply, no crash");
	forget(4242, 1);   /* unknown node: logged, ignored */
	CHECK(fsp__nodes_count(s->nodes) == 1, "only the root is held");

	/* lookup counts: three lookups, forgets of 1 and 2 -> forget(obj, 3) once */
	CHECK(lookup("a") == 0 && lookup("a") == 0 && lookup("a") == 0, "lookups");
	CHECK(fsp__nodes_count(s->nodes) == 2, "node a held");
	forget(100, 1);
	CHECK(forget_calls[0] == 0, "no forget while the kernel holds lookups");
	forget(100, 2);
	CHECK(forget_calls[0] == 1 && forgotten[0] == 3, "forget once with n=3 (calls %d, n %llu)",
	      forget_calls[0], (unsigned long long)forgotten[0]);
	CHECK(send_req(FW_GETATTR, 100, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16) == -ESTALE,
	      "forgotten node -> ESTALE");
	forget(100, 1);   /* over-forget: logged, no crash */
	CHECK(forget_calls[0] == 1, "no second forget");

	/* an open file holds its node past FORGET; RELEASE ends both */
	CHECK(lookup("b") == 0, "lookup b");
	uint64_t fh = open_file(101);
	forget(101, 1);   /* FORGET overtakes RELEASE (the kernel queues it first) */
	CHECK(forget_calls[1] == 0, "open handle keeps the node");
	rd.fh = fh;
	rd.size = 100;
	CHECK(send_req(FW_READ, 101, &rd, sizeof(rd)) == 0, "read through the handle");
	CHECK(release_file(101, fh) == 0 && releases == 1, "release once");
	CHECK(forget_calls[1] == 1 && forgotten[1] == 1, "forget after release");
	CHECK(release_file(101, fh) == -EBADF && releases == 1, "second RELEASE -> EBADF, no call");

	/* an entry whose reply never reached the kernel is uncounted */
	fail_next_send = -ENOENT;
	CHECK(lookup("c") == 0, "lookup c (reply lost)");
	CHECK(forget_calls[2] == 1 && forgotten[2] == 1, "lost entry handed back");

	/* an open whose reply was lost is released */
	CHECK(lookup("d") == 0, "lookup d");
	fail_next_send = -ENOENT;
	open_file(103);
	CHECK(releases == 2, "lost open released (%d)", releases);
	forget(103, 1);
	CHECK(forget_calls[3] == 1, "d forgotten");

	attr_fh_checks();

	/* notifications: exact encoding on the device fd */
	int pfd[2];
	if (pipe(pfd) == 0) {
		char nb[512];
		struct fw_out_header oh;
		s->fd = pfd[1];
		CHECK(fsp_notify_inval_entry(s, 7, "name") == 0, "inval_entry sent");
		ssize_t n = read(pfd[0], nb, sizeof(nb));
		memcpy(&oh, nb, sizeof(oh));
		struct fw_notify_inval_entry_out ie;
		memcpy(&ie, nb + sizeof(oh), sizeof(ie));
		CHECK(n == (ssize_t)(sizeof(oh) + sizeof(ie) + 5) && oh.len == n && oh.unique == 0 &&
		      oh.error == FW_NOTIFY_INVAL_ENTRY && ie.parent == 7 && ie.namelen == 4 &&
		      !memcmp(nb + sizeof(oh) + sizeof(ie), "name", 5), "inval_entry encoding");
		CHECK(fsp_notify_inval_inode(s, 9, -1, 0) == 0, "inval_inode sent");
		n = read(pfd[0], nb, sizeof(nb));
		memcpy(&oh, nb, sizeof(oh));
		struct fw_notify_inval_inode_out ii;
		memcpy(&ii, nb + sizeof(oh), sizeof(ii));
		CHECK(n == (ssize_t)(sizeof(oh) + sizeof(ii)) && oh.error == FW_NOTIFY_INVAL_INODE &&
		      ii.ino == 9 && ii.off == -1 && ii.len == 0, "inval_inode encoding");
		CHECK(fsp_notify_delete(s, 1, 9, "x") == 0, "delete sent");
		n = read(pfd[0], nb, sizeof(nb));
		memcpy(&oh, nb, sizeof(oh));
		struct fw_notify_delete_out de;
		memcpy(&de, nb + sizeof(oh), sizeof(de));
		CHECK(oh.error == FW_NOTIFY_DELETE && de.parent == 1 && de.child == 9 &&
		      de.namelen == 1 && n == (ssize_t)(sizeof(oh) + sizeof(de) + 2), "delete encoding");
		char big[300];
		memset(big, 'a', 299);
		big[299] = 0;
		CHECK(fsp_notify_inval_entry(s, 1, big) == -ENAMETOOLONG, "long name refused");
		CHECK(fsp_notify_inval_entry(s, 1, "") == -EINVAL, "empty name refused");
		s->fd = -1;
		close(pfd[0]);
		close(pfd[1]);
	}

	/* shutdown: a node and a handle still held are ended exactly once */
	CHECK(lookup("e") == 0, "lookup e");
	open_file(104);
	s->workers = NULL;
	s->nslots = 0;
	fsp__handles_free(s->handles);
	s->handles = NULL;
	CHECK(releases == 3, "open handle released at shutdown");
	fsp__nodes_free(s->nodes);
	s->nodes = NULL;
	CHECK(forget_calls[4] == 1 && forgotten[4] == 1, "held node forgotten at shutdown");
	for (int i = 0; i < NOBJ; i++)
		CHECK(forget_calls[i] <= 1, "object %d forgotten %d times", i, forget_calls[i]);
	free(worker.inbuf);
	free(worker.outbuf);
	free(s->fsname);
	free(s->subtype);
	free(s);

	printf("%s lifetime (%d checks, %d failed)\n", failures ? "FAIL" : "PASS", checks, failures);
	return failures ? 1 : 0;
}
