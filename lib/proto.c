/* proto.c — the decoder (every request validated before any handler sees
 * it), reply encoding, and the parts of requests every handler needs (names,
 * attributes, timeouts).
 *
 * Invariants:
 *  - A request reaches a handler only when its header length equals what was
 *    received, its extensions fit and parse, its opcode has a table row and
 *    its body is at least the row's minimum. Otherwise: EIO (unknown: ENOSYS)
 *    and one log line, or nothing for ops the kernel expects no answer to.
 *  - Every reply carries the request's unique and an error in (-512, 0]; an
 *    error outside that range (a file system bug) is sent as -EIO and logged.
 *  - A request gets at most one reply; FORGET/BATCH_FORGET/INTERRUPT none.
 *  - Names are used only after fsp__body_name() found their NUL inside the
 *    received bytes.
 */
#include "fsp_i.h"
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <string.h>

static const char *const opnames[FSP__OPCODE_MAX] = {
	[FW_LOOKUP] = "LOOKUP", [FW_FORGET] = "FORGET", [FW_GETATTR] = "GETATTR",
	[FW_SETATTR] = "SETATTR", [FW_READLINK] = "READLINK", [FW_SYMLINK] = "SYMLINK",
	[FW_MKNOD] = "MKNOD", [FW_MKDIR] = "MKDIR", [FW_UNLINK] = "UNLINK",
	[FW_RMDIR] = "RMDIR", [FW_RENAME] = "RENAME", [FW_LINK] = "LINK",
	[FW_OPEN] = "OPEN", [FW_READ] = "READ", [FW_WRITE] = "WRITE",
	[FW_STATFS] = "STATFS", [FW_RELEASE] = "RELEASE", [FW_FSYNC] = "FSYNC",
	[FW_SETXATTR] = "SETXATTR", [FW_GETXATTR] = "GETXATTR",
	[FW_LISTXATTR] = "LISTXATTR", [FW_REMOVEXATTR] = "REMOVEXATTR",
	[FW_FLUSH] = "FLUSH", [FW_INIT] = "INIT", [FW_OPENDIR] = "OPENDIR",
	[FW_READDIR] = "READDIR", [FW_RELEASEDIR] = "RELEASEDIR",
	[FW_FSYNCDIR] = "FSYNCDIR", [FW_GETLK] = "GETLK", [FW_SETLK] = "SETLK",
	[FW_SETLKW] = "SETLKW", [FW_ACCESS] = "ACCESS", [FW_CREATE] = "CREATE",
	[FW_INTERRUPT] = "INTERRUPT", [FW_BMAP] = "BMAP", [FW_DESTROY] = "DESTROY",
	[FW_IOCTL] = "IOCTL", [FW_POLL] = "POLL", [FW_NOTIFY_REPLY] = "NOTIFY_REPLY",
	[FW_BATCH_FORGET] = "BATCH_FORGET", [FW_FALLOCATE] = "FALLOCATE",
	[FW_READDIRPLUS] = "READDIRPLUS", [FW_RENAME2] = "RENAME2",
	[FW_LSEEK] = "LSEEK", [FW_COPY_FILE_RANGE] = "COPY_FILE_RANGE",
	[FW_SETUPMAPPING] = "SETUPMAPPING", [FW_REMOVEMAPPING] = "REMOVEMAPPING",
	[FW_SYNCFS] = "SYNCFS", [FW_TMPFILE] = "TMPFILE", [FW_STATX] = "STATX",
	[FW_COPY_FILE_RANGE_64] = "COPY_FILE_RANGE_64",
};

const char *fsp__opname(uint32_t opcode)
{
	if (opcode < FSP__OPCODE_MAX && opnames[opcode])
		return opnames[opcode];
	return "UNKNOWN";
}

const struct fsp__op_desc *fsp__op_desc(uint32_t opcode)
{
	if (opcode >= FSP__OPCODE_MAX || !fsp__ops_table[opcode].handler)
		return NULL;
	return &fsp__ops_table[opcode];
}

/* ---- the decoder ---- */

static void log_unknown(fsp_session *s, uint32_t opcode)
{
	if (opcode < 64) {
		uint64_t bit = 1ULL << opcode;
		if (atomic_fetch_or(&s->unknown_logged, bit) & bit)
			return;
	}
	fsp_log(1, "unknown or unsupported request opcode %u (%s); answering ENOSYS", opcode,
		fsp__opname(opcode));
}

/* Supplementary groups extension: validated, borrowed from the buffer. */
static int parse_ext(fsp_req *r, const char *ext, size_t len)
{
	while (len >= sizeof(struct fw_ext_header)) {
		struct fw_ext_header eh;
		memcpy(&eh, ext, sizeof(eh));
		if (eh.size < sizeof(eh) || eh.size > len || eh.size % 8)
			return -EIO;
		if (eh.type == FW_EXT_GROUPS && eh.size >= sizeof(eh) + 4) {
			uint32_t nr;
			memcpy(&nr, ext + sizeof(eh), 4);
			if ((uint64_t)nr * 4 > eh.size - sizeof(eh) - 4)
				return -EIO;
			r->groups = (const uint32_t *)(ext + sizeof(eh) + 4);
			r->ngroups = nr;
		}
		ext += eh.size;
		len -= eh.size;
	}
	return len ? -EIO : 0;
}

const struct fsp__op_desc *fsp__decode(fsp_req *r, const char *buf, size_t len)
{
	fsp_session *s = r->s;
	struct fsp__worker *w = r->w;
	const struct fw_in_header *in = (const void *)buf;
	const struct fsp__op_desc *d;

	if (len < sizeof(*in)) {
		/* no unique to answer to: the kernel never does this */
		FSP__STAT_ADD(w->st.malformed, 1);
		fsp_log(1, "request of %zu bytes is shorter than a header; dropped", len);
		return NULL;
	}
	r->in = in;
	r->opcode = in->opcode;
	r->body = (const char *)(in + 1);
	r->body_len = len - sizeof(*in);
	d = fsp__op_desc(in->opcode);
	size_t extlen = (size_t)in->total_extlen * 8;

	if (in->len != len || extlen > r->body_len) {
		FSP__STAT_ADD(w->st.malformed, 1);
		fsp_log(1, "%s: header says %u bytes (%zu of extensions), read %zu; answering EIO",
			fsp__opname(in->opcode), in->len, extlen, len);
		if (!d || !(d->flags & FSP__OP_NOREPLY))
			fsp__reply_err(r, -EIO);
		return NULL;
	}
	r->body_len -= extlen;
	if (!d || in->opcode == FW_INIT) {
		FSP__STAT_ADD(w->st.unknown, 1);
		log_unknown(s, in->opcode);
		fsp__reply_err(r, in->opcode == FW_INIT ? -EIO : -ENOSYS);
		return NULL;
	}
	if (r->body_len < d->min_in || (extlen && parse_ext(r, r->body + r->body_len, extlen) < 0)) {
		FSP__STAT_ADD(w->st.malformed, 1);
		fsp_log(1, "%s: body of %zu bytes is malformed (needs %u); %s", d->name, r->body_len,
			d->min_in, d->flags & FSP__OP_NOREPLY ? "dropped" : "answering EIO");
		if (!(d->flags & FSP__OP_NOREPLY))
			fsp__reply_err(r, -EIO);
		return NULL;
	}
	FSP__STAT_ADD(w->st.requests[in->opcode], 1);
	return d;
}

/* ---- the encoder ---- */

int fsp__reply_iov(fsp_req *r, struct iovec *iov, int n)
{
	struct fw_out_header oh;
	size_t len = sizeof(oh);
	int err;

	if (r->replied) {
		FSP__BUG("second reply to %s (unique %llu)", fsp__opname(r->opcode),
			 (unsigned long long)r->in->unique);
		return -EIO;
	}
	r->replied = true;
	for (int i = 1; i < n; i++)
		len += iov[i].iov_len;
	oh.len = (uint32_t)len;
	oh.error = 0;
	oh.unique = r->in->unique;
	iov[0].iov_base = &oh;
	iov[0].iov_len = sizeof(oh);
	err = r->chan->ops->send(r->chan, iov, n);
	if (err && err != -ENOENT)
		fsp_log(1, "reply to %s failed: %s", fsp__opname(r->opcode), strerror(-err));
	return err;
}

int fsp__reply_err(fsp_req *r, int err)
{
	struct fw_out_header oh;
	struct iovec iov = { &oh, sizeof(oh) };

	if (err > 0 || err <= -512) {
		fsp_log(0, "%s: file system returned %d, not an errno; answering EIO",
			fsp__opname(r->opcode), err);
		err = -EIO;
	}
	if (r->replied) {
		FSP__BUG("second reply to %s", fsp__opname(r->opcode));
		return -EIO;
	}
	r->replied = true;
	if (err && r->opcode < FSP__OPCODE_MAX)
		FSP__STAT_ADD(r->w->st.errors[r->opcode], 1);
	oh.len = sizeof(oh);
	oh.error = err;
	oh.unique = r->in->unique;
	int e = r->chan->ops->send(r->chan, &iov, 1);
	if (e && e != -ENOENT)
		fsp_log(1, "reply to %s failed: %s", fsp__opname(r->opcode), strerror(-e));
	return e;
}

int fsp__reply_buf(fsp_req *r, const void *data, size_t len)
{
	struct iovec iov[2] = { { NULL, 0 }, { (void *)data, len } };
	return fsp__reply_iov(r, iov, len ? 2 : 1);
}

void fsp__timeout_split(double t, uint64_t *sec, uint32_t *nsec)
{
	if (!(t > 0)) {          /* also NaN */
		*sec = 0;
		*nsec = 0;
		return;
	}
	if (t > 1e15)
		t = 1e15;
	*sec = (uint64_t)t;
	*nsec = (uint32_t)((t - (double)*sec) * 1e9);
	if (*nsec >= 1000000000u)
		*nsec = 999999999u;
}

void fsp__fill_attr(struct fw_attr *a, const struct stat *st, uint64_t ino)
{
	memset(a, 0, sizeof(*a));
	a->ino = st->st_ino ? st->st_ino : ino;
	a->size = st->st_size;
	a->blocks = st->st_blocks;
	a->atime = st->st_atim.tv_sec;
	a->atimensec = st->st_atim.tv_nsec;
	a->mtime = st->st_mtim.tv_sec;
	a->mtimensec = st->st_mtim.tv_nsec;
	a->ctime = st->st_ctim.tv_sec;
	a->ctimensec = st->st_ctim.tv_nsec;
	a->mode = st->st_mode;
	a->nlink = st->st_nlink;
	a->uid = st->st_uid;
	a->gid = st->st_gid;
	a->rdev = st->st_rdev;
	a->blksize = st->st_blksize;
}

int fsp__body_name(fsp_req *r, size_t off, const char **name)
{
	if (off >= r->body_len)
		return -EIO;
	const char *p = r->body + off;
	const char *nul = memchr(p, 0, r->body_len - off);
	if (!nul)
		return -EIO;
	size_t len = nul - p;
	if (len == 0)
		return -EIO;
	if (len > NAME_MAX)
		return -ENAMETOOLONG;
	*name = p;
	return (int)len;
}
