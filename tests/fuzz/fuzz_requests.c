/* fuzz_requests.c — libFuzzer target: arbitrary request sequences through the
 * whole request path (validation, dispatcher, node and handle tables) into a
 * fresh fsp-memfs per input, no kernel involved.
 *
 * Input: records, each  kind(1) len(2, LE) bytes(len).
 *   kind even: a raw request, as the kernel would write it (only the unique is
 *              replaced); -o trace=FILE writes exactly these, so a recorded
 *              mount is a seed corpus.
 *   kind odd:  the bytes are header fields and body, but the node id and any
 *              fh are picked from those the replies handed out so far, so
 *              lifetimes get exercised: (opcode, node pick, fh pick, body...).
 * Checks: every reply is well formed (length, unique, error in (-512, 0]);
 * every request gets exactly one reply, malformed or not, except those the
 * kernel expects none for (FORGET, BATCH_FORGET, NOTIFY_REPLY; bytes too
 * short to be a header, which name no request), and INTERRUPT, which may get
 * one only with -EAGAIN (the kernel's "ask again later"); at the end every
 * handle is released and every node forgotten exactly once, memfs's memory
 * accounting returns to zero, and ASan/LSan see no error or leak. Built with
 * FSP_DEBUG, so the library's own checks (FSP__BUG: a second reply, a
 * handler that sent none, a count below zero) abort too. */
#define main memfs_program_main
#include "../../fs/memfs/memfs.c"
#undef main

#include "fsp_i.h"
#include <stdlib.h>
#include <string.h>

#define MAXK 256
static uint64_t known_nodes[MAXK], known_fhs[MAXK], known_dirs[MAXK];
static int nnodes, nfhs, ndirs;
static uint64_t cur_unique;
static uint32_t cur_opcode;
static int replies;

static void bad_replies(const char *why)
{
	fprintf(stderr, "fuzz_requests: %s (opcode %u, unique %llu, %d replies)\n", why,
		cur_opcode, (unsigned long long)cur_unique, replies);
	abort();
}

static void remember(uint64_t *set, int *n, uint64_t v)
{
	if (*n < MAXK)
		set[(*n)++] = v;
	else
		set[v % MAXK] = v;
}

static int f_send(struct fsp__chan *c, const struct iovec *iov, int n)
{
	static char buf[1 << 20];
	size_t len = 0;
	(void)c;
	for (int i = 0; i < n; i++) {
		if (len + iov[i].iov_len > sizeof(buf))
			abort();
		memcpy(buf + len, iov[i].iov_base, iov[i].iov_len);
		len += iov[i].iov_len;
	}
	struct fw_out_header oh;
	if (len < sizeof(oh))
		abort();
	memcpy(&oh, buf, sizeof(oh));
	if (oh.len != len || oh.unique != cur_unique || oh.error > 0 || oh.error <= -512)
		abort();
	if (oh.error && len != sizeof(oh))
		abort();   /* an error reply carries no payload */
	if (cur_opcode == FW_FORGET || cur_opcode == FW_BATCH_FORGET ||
	    cur_opcode == FW_NOTIFY_REPLY)
		bad_replies("a reply to a request that takes none");
	if (cur_opcode == FW_INTERRUPT && oh.error != -EAGAIN)
		bad_replies("a reply to INTERRUPT other than -EAGAIN");
	if (++replies > 1)
		bad_replies("a second reply");
	/* learn node ids and handles from successful replies */
	const char *p = buf + sizeof(oh);
	size_t plen = len - sizeof(oh);
	if (oh.error == 0) {
		struct fw_entry_out eo;
		struct fw_open_out oo;
		switch (cur_opcode) {
		case FW_LOOKUP: case FW_MKNOD: case FW_MKDIR: case FW_SYMLINK: case FW_LINK:
			if (plen == sizeof(eo)) {
				memcpy(&eo, p, sizeof(eo));
				if (eo.nodeid)
					remember(known_nodes, &nnodes, eo.nodeid);
			}
			break;
		case FW_CREATE: case FW_TMPFILE:
			if (plen == sizeof(eo) + sizeof(oo)) {
				memcpy(&eo, p, sizeof(eo));
				memcpy(&oo, p + sizeof(eo), sizeof(oo));
				remember(known_nodes, &nnodes, eo.nodeid);
				remember(known_fhs, &nfhs, oo.fh);
			}
			break;
		case FW_OPEN:
			if (plen == sizeof(oo)) {
				memcpy(&oo, p, sizeof(oo));
				remember(known_fhs, &nfhs, oo.fh);
			}
			break;
		case FW_OPENDIR:
			if (plen == sizeof(oo)) {
				memcpy(&oo, p, sizeof(oo));
				remember(known_dirs, &ndirs, oo.fh);
			}
			break;
		}
	}
	return 0;
}

static void f_close(struct fsp__chan *c) { (void)c; }
/* Only what fsp__dispatch uses (it never receives): designated, so that it
 * does not depend on the order or the number of the other members. */
static const struct fsp__chan_ops f_ops = { .send = f_send, .close = f_close };
static struct fsp__chan f_chan = { .ops = &f_ops, .fd = -1 };

/* Ops whose body starts with a u64 fh, and where it lies. */
static int fh_offset(uint32_t op, bool *dir)
{
	*dir = false;
	switch (op) {
	case FW_READ: case FW_WRITE: case FW_RELEASE: case FW_FLUSH: case FW_FSYNC:
	case FW_FALLOCATE: case FW_LSEEK: case FW_COPY_FILE_RANGE: case FW_COPY_FILE_RANGE_64:
		return 0;
	case FW_READDIR: case FW_READDIRPLUS: case FW_RELEASEDIR: case FW_FSYNCDIR:
		*dir = true;
		return 0;
	case FW_GETATTR: case FW_SETATTR:
		return 8;
	}
	return -1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	fsp__log_quiet = 1;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct memfs fs;
	static struct fsp__worker w;
	struct fsp_config cfg;
	fsp_session *s;
	size_t bufsize = 128 * 1024 + 4096;

	memset(&fs, 0, sizeof(fs));
	if (setup(&fs) < 0)
		return 0;
	fs.size_limit = 64 << 20;       /* ENOSPC paths, and bounded memory */
	fs.nodes_limit = 4096;
	fs.max_file_size = 16 << 20;
	fsp_config_init(&cfg);
	cfg.mountpoint = "/fuzz";
	cfg.entry_timeout = cfg.attr_timeout = 1;
	if (fsp_session_new(&memfs_ops, &cfg, fs.root, &fs, &s) < 0) {
		memfs_free_tree(&fs, fs.root);
		pthread_mutex_destroy(&fs.rename_lock);
		return 0;
	}
	s->bufsize = bufsize;
	s->max_write = 128 * 1024;
	s->init_done = true;
	s->flags = FW_INIT_SETXATTR_EXT | FW_INIT_DO_READDIRPLUS;
	memset(&w, 0, sizeof(w));
	w.s = s;
	w.chan = &f_chan;
	w.inbuf = malloc(bufsize);
	w.outbuf = malloc(bufsize);
	/* w is not put in the session's worker table: requests are served one
	 * at a time, so an INTERRUPT never finds another one being served, and
	 * the table's layout is the engine's business. */
	nnodes = nfhs = ndirs = 0;
	known_nodes[nnodes++] = FSP_ROOT_INO;

	while (size >= 3) {
		uint8_t kind = data[0];
		size_t len = data[1] | (size_t)data[2] << 8;
		data += 3;
		size -= 3;
		if (len > size)
			len = size;
		if (len > bufsize)
			len = bufsize;
		memcpy(w.inbuf, data, len);
		data += len;
		size -= len;
		if (kind & 1) {
			/* structured: opcode, node pick, fh pick, then the body */
			if (len < 3)
				continue;
			uint8_t op = w.inbuf[0], npick = w.inbuf[1], fpick = w.inbuf[2];
			size_t blen = len - 3;
			struct fw_in_header in;
			memset(&in, 0, sizeof(in));
			in.opcode = op % 54;
			in.len = (uint32_t)(sizeof(in) + blen);
			in.nodeid = npick == 255 ? 0xdeadbeefULL : known_nodes[npick % nnodes];
			in.uid = in.gid = 0;
			memmove(w.inbuf + sizeof(in), w.inbuf + 3, blen);
			memcpy(w.inbuf, &in, sizeof(in));
			bool dir;
			int off = fh_offset(in.opcode, &dir);
			uint64_t *set = dir ? known_dirs : known_fhs;
			int n = dir ? ndirs : nfhs;
			if (off >= 0 && n && fpick != 255 && blen >= (size_t)off + 8)
				memcpy(w.inbuf + sizeof(in) + off, &set[fpick % n], 8);
			len = in.len;
		}
		/* how many replies the request must get: 0, 1, or (INTERRUPT)
		 * 0 or 1 */
		int want = 0, want_max = 0;
		if (len >= sizeof(struct fw_in_header)) {
			struct fw_in_header in;
			memcpy(&in, w.inbuf, sizeof(in));
			in.unique = ++cur_unique;
			memcpy(w.inbuf, &in, sizeof(in));
			cur_opcode = in.opcode;
			bool noreply = in.opcode == FW_FORGET || in.opcode == FW_BATCH_FORGET ||
				       in.opcode == FW_NOTIFY_REPLY || in.opcode == FW_INTERRUPT;
			if (!noreply)
				want = want_max = 1;
			else if (in.opcode == FW_INTERRUPT)
				want_max = 1;   /* only -EAGAIN; f_send checks */
		} else {
			cur_opcode = 0;  /* no header: nothing to answer to */
		}
		replies = 0;
		fsp__dispatch(&w, len);
		if (replies < want)
			bad_replies("no reply to a request that needs one");
		if (replies > want_max)
			bad_replies("a reply to a request that takes none");
	}

	/* The end of a session: everything released and forgotten once. */
	free(w.inbuf);
	free(w.outbuf);
	fsp_session_free(s);    /* not mounted: releases, forgets, destroy */
	if (atomic_load(&fs.mem_bytes) != 0 || atomic_load(&fs.mem_nodes) != 0) {
		fprintf(stderr, "memfs accounting after destroy: %llu bytes, %llu nodes\n",
			(unsigned long long)atomic_load(&fs.mem_bytes),
			(unsigned long long)atomic_load(&fs.mem_nodes));
		abort();
	}
	pthread_mutex_destroy(&fs.rename_lock);
	return 0;
}
