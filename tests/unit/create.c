/* create.c — CREATE's failure paths after a successful create callback: the
 * file system's open is released exactly once on each (entry without a
 * type, node id reported for two objects, reply lost), and the reference
 * that came with the entry is handed back. Then a race: a thread FORGETs
 * each new node id while CREATEs of it run (a forged FORGET, as a confused
 * kernel or a fuzzer could send), which used to make the node vanish between
 * counting and holding it and leak the open. Requests are built by hand and
 * go through fsp__dispatch with a fake channel, no kernel. */
#include "fsp_i.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures, checks;
#define CHECK(cond, ...) do { checks++; if (!(cond)) { failures++; \
	printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

/* ---- fake channel ---- */
static char last_reply[1 << 16];
static int nreplies;
static int fail_next_send;

static int fake_send(struct fsp__chan *c, const struct iovec *iov, int n)
{
	size_t len = 0;
	(void)c;
	for (int i = 0; i < n; i++) {
		memcpy(last_reply + len, iov[i].iov_base, iov[i].iov_len);
		len += iov[i].iov_len;
	}
	nreplies++;
	int e = fail_next_send;
	fail_next_send = 0;
	return e;
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

/* ---- a file system whose create is told what to return ---- */
static int root_obj, obj_a, obj_b;
static atomic_int creates, releases, forgets;   /* forgets: references handed back */
static atomic_uint_fast64_t next_ino = 100, pending_ino;
static enum { C_OK, C_NO_TYPE, C_SAME_INO_OTHER_OBJ } create_mode;
static uint64_t fixed_ino;

static int t_create(fsp_req *r, void *dir, const char *name, mode_t mode, int flags,
		    struct fsp_entry *e, struct fsp_open_out *o)
{
	(void)r, (void)dir, (void)name, (void)flags;
	e->ino = create_mode == C_SAME_INO_OTHER_OBJ ? fixed_ino : atomic_fetch_add(&next_ino, 1);
	e->obj = create_mode == C_SAME_INO_OTHER_OBJ ? &obj_b : &obj_a;
	e->attr.st_mode = create_mode == C_NO_TYPE ? 0 : (mode | S_IFREG);
	e->attr.st_nlink = 1;
	o->fh = &obj_a;
	atomic_store(&pending_ino, e->ino);
	atomic_fetch_add(&creates, 1);
	return 0;
}

static int t_lookup(fsp_req *r, void *dir, const char *name, struct fsp_entry *e)
{
	(void)r, (void)dir, (void)name;
	e->ino = fixed_ino;
	e->obj = &obj_a;
	e->attr.st_mode = S_IFREG | 0644;
	return 0;
}

static void t_release(fsp_session *s, void *obj, void *fh, int flags)
{
	(void)s, (void)obj, (void)fh, (void)flags;
	atomic_fetch_add(&releases, 1);
}

static void t_forget(fsp_session *s, void *obj, uint64_t n)
{
	(void)s;
	if (obj != &root_obj)
		atomic_fetch_add(&forgets, (int)n);
}

static const struct fsp_operations t_ops = {
	.create = t_create, .lookup = t_lookup, .release = t_release, .forget = t_forget,
};

/* ---- requests ---- */
static uint64_t next_unique = 1;
static struct fsp__worker worker;

static int send_req(uint32_t opcode, uint64_t nodeid, const void *body, size_t blen)
{
	struct fw_in_header in;
	memset(&in, 0, sizeof(in));
	in.len = (uint32_t)(sizeof(in) + blen);
	in.opcode = opcode;
	in.unique = next_unique++;
	in.nodeid = nodeid;
	memcpy(worker.inbuf, &in, sizeof(in));
	memcpy(worker.inbuf + sizeof(in), body, blen);
	nreplies = 0;
	fsp__dispatch(&worker, sizeof(in) + blen);
	return nreplies ? reply_error() : 1;
}

/* CREATE "f" in the root; *fh and *ino from the reply when it succeeded. */
static int create(uint64_t *fh, uint64_t *ino)
{
	char body[sizeof(struct fw_create_in) + 2];
	struct fw_create_in ci = { .flags = 0, .mode = 0644 };
	memcpy(body, &ci, sizeof(ci));
	memcpy(body + sizeof(ci), "f", 2);
	int rc = send_req(FW_CREATE, FSP_ROOT_INO, body, sizeof(body));
	if (rc == 0) {
		struct fw_entry_out eo;
		struct fw_open_out oo;
		memcpy(&eo, last_reply + sizeof(struct fw_out_header), sizeof(eo));
		memcpy(&oo, last_reply + sizeof(struct fw_out_header) + sizeof(eo), sizeof(oo));
		*fh = oo.fh;
		*ino = eo.nodeid;
	}
	return rc;
}

static int release(uint64_t ino, uint64_t fh)
{
	struct fw_release_in r = { .fh = fh };
	return send_req(FW_RELEASE, ino, &r, sizeof(r));
}

static void forget(uint64_t ino, uint64_t n)
{
	struct fw_forget_in f = { .nlookup = n };
	send_req(FW_FORGET, ino, &f, sizeof(f));
}

/* ---- the race: FORGET each new node id while it is being created ---- */
static atomic_int stop;
static fsp_session *sess;

static void *forger(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		uint64_t ino = atomic_load(&pending_ino);
		if (ino)
			fsp__node_forget(sess->nodes, ino, 1);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct fsp_config cfg;
	uint64_t fh = 0, ino = 0;
	int rounds = argc > 1 ? atoi(argv[1]) : 20000;

	fsp_config_init(&cfg);
	cfg.mountpoint = "/nonexistent";
	if (fsp_session_new(&t_ops, &cfg, &root_obj, NULL, &sess) < 0) {
		printf("FAIL session_new\n");
		return 1;
	}
	sess->bufsize = 1 << 16;
	sess->init_done = true;
	worker.s = sess;
	worker.chan = &fake_chan;
	worker.inbuf = malloc(sess->bufsize);
	worker.outbuf = malloc(sess->bufsize);
	sess->workers = &worker;

	/* success: released once, by RELEASE */
	create_mode = C_OK;
	CHECK(create(&fh, &ino) == 0, "create");
	CHECK(release(ino, fh) == 0 && releases == 1, "released once by RELEASE (%d)", releases);
	forget(ino, 1);
	CHECK(forgets == 1, "entry reference handed back");

	/* an entry without a file type: EIO, released once, reference back */
	create_mode = C_NO_TYPE;
	CHECK(create(&fh, &ino) == -EIO, "entry without a type -> EIO");
	CHECK(creates == 2 && releases == 2 && forgets == 2, "released and handed back (%d %d)",
	      releases, forgets);

	/* a node id the library holds for another object: EIO, released once */
	fixed_ino = 50;
	CHECK(send_req(FW_LOOKUP, FSP_ROOT_INO, "a", 2) == 0, "lookup a (node 50)");
	create_mode = C_SAME_INO_OTHER_OBJ;
	CHECK(create(&fh, &ino) == -EIO, "node id of another object -> EIO");
	CHECK(creates == 3 && releases == 3 && forgets == 3, "released and handed back (%d %d)",
	      releases, forgets);
	forget(50, 1);
	CHECK(forgets == 4, "a forgotten");

	/* the reply is lost: released once, the entry uncounted */
	create_mode = C_OK;
	fail_next_send = -ENOENT;
	CHECK(create(&fh, &ino) == 0, "create, reply lost");
	CHECK(creates == 4 && releases == 4 && forgets == 5, "lost create released (%d %d)",
	      releases, forgets);
	CHECK(fsp__nodes_count(sess->nodes) == 1 && fsp__handles_count(sess->handles) == 0,
	      "only the root left");

	/* the race */
	fsp__log_quiet = 1;   /* the forged FORGETs are logged by design */
	pthread_t th;
	pthread_create(&th, NULL, forger, NULL);
	int ok = 0, eio = 0, other = 0;
	for (int i = 0; i < rounds; i++) {
		int rc = create(&fh, &ino);
		if (rc == 0) {
			ok++;
			release(ino, fh);
		} else if (rc == -EIO) {
			eio++;
		} else {
			other++;
		}
	}
	atomic_store(&stop, 1);
	pthread_join(th, NULL);
	/* what the forger did not forget, the kernel would */
	for (uint64_t i = 100; i < atomic_load(&next_ino); i++)
		fsp__node_forget(sess->nodes, i, 1);
	fsp__log_quiet = 0;
	printf("race: %d creates answered, %d EIO, %d other\n", ok, eio, other);
	CHECK(other == 0, "%d creates failed with another error", other);
	CHECK(releases == creates, "every successful create callback released once: %d creates, "
	      "%d releases", creates, releases);
	CHECK(fsp__nodes_count(sess->nodes) == 1 && fsp__handles_count(sess->handles) == 0,
	      "only the root left (%llu nodes, %llu handles)",
	      (unsigned long long)fsp__nodes_count(sess->nodes),
	      (unsigned long long)fsp__handles_count(sess->handles));
	CHECK(forgets == creates + 1, "every entry reference handed back (%d of %d)", forgets,
	      creates + 1);

	sess->workers = NULL;
	fsp__handles_free(sess->handles);
	fsp__nodes_free(sess->nodes);
	free(worker.inbuf);
	free(worker.outbuf);
	free(sess->fsname);
	free(sess->subtype);
	free(sess);
	printf("%s create (%d checks, %d failed)\n", failures ? "FAIL" : "PASS", checks, failures);
	return failures ? 1 : 0;
}
