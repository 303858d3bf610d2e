/* memfs.c — fsp-memfs: an in-memory file system like tmpfs, over fsp.
 *
 * This file: the program (options, limits, the callback table) and the
 * callbacks about the whole file system (statfs, stats, destroy). Objects
 * and their lifetime are in node.c, names in namei.c, directory entries in
 * dir.c, file data in data.c, extended attributes in xattr.c; the rules
 * that hold them together are at the top of memfs_i.h.
 *
 * Limits are fixed once the options are parsed (before the mount, one
 * thread); the root exists before that so that mode=/uid=/gid= can apply
 * to it, and is charged without a limit.
 */
#include "memfs_i.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* Long enough to mean "until memfs says otherwise": every change passes
 * through the kernel that caches. */
#define CACHE_TIMEOUT 86400.0

/* The library prints the "usage:" line before this and its own options after. */
static const char usage[] =
"An in-memory file system, like tmpfs, served from user space through FUSE.\n"
"Everything is lost at unmount.\n"
"\n"
"memfs options (-o opt[,opt...]):\n"
"    size=BYTES          limit for file data plus metadata; K, M, G, T\n"
"                        suffixes (powers of 1024) or a percentage of RAM\n"
"                        (size=25%); 0 = no limit (default: half of RAM)\n"
"    nodes=N             limit for files, directories and other objects\n"
"                        (also nr_inodes=N; default: RAM pages / 2; 0 = none)\n"
"    max_file_size=BYTES  largest file size; beyond it EFBIG (default: none)\n"
"    mode=OCTAL          permissions of the root directory (default 1777)\n"
"    uid=N, gid=N        owner of the root directory (default: the caller)\n"
"\n";

static uint64_t phys_ram(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);

	if (pages <= 0 || psize <= 0)
		return 0;
	return (uint64_t)pages * (uint64_t)psize;
}

/* N with an optional K/M/G/T/P/E suffix (powers of 1024), or N% of pct_of
 * when pct_of is not 0. Digits only: no sign, no spaces. */
static int parse_count(const char *s, uint64_t pct_of, uint64_t *out)
{
	unsigned long long v;
	uint64_t mult = 1;
	char *end;

	if (!s || !isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': mult = 1ULL << 10; end++; break;
	case 'm': case 'M': mult = 1ULL << 20; end++; break;
	case 'g': case 'G': mult = 1ULL << 30; end++; break;
	case 't': case 'T': mult = 1ULL << 40; end++; break;
	case 'p': case 'P': mult = 1ULL << 50; end++; break;
	case 'e': case 'E': mult = 1ULL << 60; end++; break;
	case '%':
		if (!pct_of || v > 100 || end[1])
			return -EINVAL;
		*out = pct_of / 100 * v;
		return 0;
	default:
		break;
	}
	if (*end || v > UINT64_MAX / mult)
		return -EINVAL;
	*out = (uint64_t)v * mult;
	return 0;
}

static int parse_id(const char *s, unsigned *out)
{
	unsigned long v;
	char *end;

	if (!s || !isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v >= UINT_MAX)     /* (uid_t)-1 means "no change" */
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

static int bad(const char *key, const char *value, const char *want)
{
	fprintf(stderr, "fsp-memfs: bad value for -o %s: '%s' (%s)\n", key,
		value ? value : "", want);
	return -EINVAL;
}

/* fsp_opt_hook: 1 taken, 0 not ours, -EINVAL bad value. */
static int memfs_opt(void *userdata, const char *key, const char *value)
{
	struct memfs *fs = userdata;
	struct memfs_node *root = fs->root;
	uint64_t v;
	unsigned id;

	if (strcmp(key, "size") == 0) {
		if (parse_count(value, phys_ram(), &v))
			return bad(key, value, "bytes with an optional K, M, G, T suffix, or N%");
		fs->size_limit = v;
	} else if (strcmp(key, "nodes") == 0 || strcmp(key, "nr_inodes") == 0) {
		if (parse_count(value, 0, &v))
			return bad(key, value, "a count with an optional K, M, G suffix");
		fs->nodes_limit = v;
	} else if (strcmp(key, "max_file_size") == 0) {
		if (parse_count(value, 0, &v) || v == 0 || v > (uint64_t)INT64_MAX)
			return bad(key, value, "bytes, at least 1, with an optional suffix");
		fs->max_file_size = (off_t)v;
	} else if (strcmp(key, "mode") == 0) {
		char *end;
		unsigned long m;

		if (!value || !isdigit((unsigned char)value[0]))
			return bad(key, value, "octal permissions");
		errno = 0;
		m = strtoul(value, &end, 8);
		if (errno || *end || m > 07777)
			return bad(key, value, "octal permissions");
		root->mode = S_IFDIR | (mode_t)m;
	} else if (strcmp(key, "uid") == 0) {
		if (parse_id(value, &id))
			return bad(key, value, "a numeric user id");
		root->uid = id;
	} else if (strcmp(key, "gid") == 0) {
		if (parse_id(value, &id))
			return bad(key, value, "a numeric group id");
		root->gid = id;
	} else {
		return 0;
	}
	return 1;
}

static int memfs_statfs(fsp_req *r, void *obj, struct statvfs *st)
{
	struct memfs *fs = memfs_of(r);
	uint64_t used = atomic_load_explicit(&fs->mem_bytes, memory_order_relaxed);
	uint64_t nodes = atomic_load_explicit(&fs->mem_nodes, memory_order_relaxed);

	(void)obj;
	memset(st, 0, sizeof(*st));
	st->f_bsize = MEMFS_BLOCK_SIZE;
	st->f_frsize = MEMFS_BLOCK_SIZE;
	/* As tmpfs: no limit, no numbers. */
	if (fs->size_limit) {
		st->f_blocks = fs->size_limit / MEMFS_BLOCK_SIZE;
		st->f_bfree = used < fs->size_limit ? (fs->size_limit - used) / MEMFS_BLOCK_SIZE : 0;
		st->f_bavail = st->f_bfree;
	}
	if (fs->nodes_limit) {
		st->f_files = fs->nodes_limit;
		st->f_ffree = nodes < fs->nodes_limit ? fs->nodes_limit - nodes : 0;
		st->f_favail = st->f_ffree;
	}
	st->f_namemax = MEMFS_NAME_MAX;
	return 0;
}

static size_t memfs_stats(fsp_session *s, char *buf, size_t size)
{
	struct memfs *fs = fsp_session_userdata(s);
	int n = snprintf(buf, size, "mem_bytes %" PRIu64 "\nmem_nodes %" PRIu64 "\n",
			 (uint64_t)atomic_load(&fs->mem_bytes),
			 (uint64_t)atomic_load(&fs->mem_nodes));

	return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

static void memfs_destroy(fsp_session *s)
{
	struct memfs *fs = fsp_session_userdata(s);

	memfs_free_tree(fs, fs->root);
	fs->destroyed = true;
	/* Exact accounting means exactly zero here. */
	if (atomic_load(&fs->mem_bytes) || atomic_load(&fs->mem_nodes))
		fsp_log(1, "memfs: after destroy %" PRIu64 " bytes and %" PRIu64
			" nodes are still accounted", (uint64_t)atomic_load(&fs->mem_bytes),
			(uint64_t)atomic_load(&fs->mem_nodes));
}

/* Memory is as durable as it gets (and without a flush callback the kernel
 * sends no FLUSH on close). */
static int memfs_fsync(fsp_req *r, void *obj, void *fh, int datasync)
{
	(void)r; (void)obj; (void)fh; (void)datasync;
	return 0;
}

static const struct fsp_operations memfs_ops = {
	.destroy = memfs_destroy,
	.lookup = memfs_lookup,
	.forget = memfs_forget,
	.getattr = memfs_getattr,
	.setattr = memfs_setattr,
	.readlink = memfs_readlink,
	.mknod = memfs_mknod,
	.mkdir = memfs_mkdir,
	.symlink = memfs_symlink,
	.link = memfs_link,
	.unlink = memfs_unlink,
	.rmdir = memfs_rmdir,
	.rename = memfs_rename,
	.open = memfs_open,
	.create = memfs_create,
	.tmpfile = memfs_tmpfile,
	.read = memfs_read,
	.write = memfs_write,
	.fsync = memfs_fsync,
	.fallocate = memfs_fallocate,
	.lseek = memfs_lseek,
	.opendir = memfs_opendir,
	.readdir = memfs_readdir,
	.fsyncdir = memfs_fsync,
	.statfs = memfs_statfs,
	.setxattr = memfs_setxattr,
	.getxattr = memfs_getxattr,
	.listxattr = memfs_listxattr,
	.removexattr = memfs_removexattr,
	.stats = memfs_stats,
};

static int setup(struct memfs *fs)
{
	struct memfs_node *root;
	uint64_t ram = phys_ram();
	long psize = sysconf(_SC_PAGESIZE);
	int rc;

	fs->size_limit = ram / 2;
	fs->nodes_limit = psize > 0 ? ram / (uint64_t)psize / 2 : 0;
	fs->max_file_size = INT64_MAX;
	if (getrandom(&fs->hash_seed, sizeof(fs->hash_seed), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(fs->hash_seed))
		fs->hash_seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	atomic_init(&fs->mem_bytes, 0);
	atomic_init(&fs->mem_nodes, 0);
	atomic_init(&fs->next_ino, FSP_ROOT_INO);
	rc = pthread_mutex_init(&fs->rename_lock, NULL);
	if (rc)
		return -rc;
	/* No limit is set yet: the root always fits. */
	rc = memfs_node_new(fs, S_IFDIR | 01777, getuid(), getgid(), 0, NULL, &root);
	if (rc) {
		pthread_mutex_destroy(&fs->rename_lock);
		return rc;
	}
	root->nlink = 2;
	root->u.dir->parent = root;
	atomic_store(&root->refs, 1);   /* "linked" for good: freed by destroy */
	fs->root = root;
	return 0;
}

int main(int argc, char **argv)
{
	static struct memfs fs;
	struct fsp_config cfg;
	int rc;

	rc = setup(&fs);
	if (rc) {
		fprintf(stderr, "fsp-memfs: %s\n", strerror(-rc));
		return 1;
	}
	fsp_config_init(&cfg);
	cfg.entry_timeout = CACHE_TIMEOUT;
	cfg.attr_timeout = CACHE_TIMEOUT;
	cfg.negative_timeout = CACHE_TIMEOUT;
	cfg.handle_killpriv = 1;   /* memfs clears set-id bits itself (node.c) */
	rc = fsp_main(argc, argv, &memfs_ops, fs.root, &fs, usage, memfs_opt, &cfg);
	if (!fs.destroyed)      /* the session never ran (usage, mount failure) */
		memfs_free_tree(&fs, fs.root);
	pthread_mutex_destroy(&fs.rename_lock);
	return rc;
}
