/* slowfs.c — a file system whose lookups block until told, for the engine
 * tests (tests/integration/engine.sh).
 *
 * The root holds one file, "stats", and answers lookups by name:
 *   block-*   waits while the gate file (-o gate=PATH) exists, then ENOENT;
 *             returns EINTR as soon as the request is interrupted
 *   stuck-*   waits while the gate file exists, whatever happens (an
 *             INTERRUPT or the session's end do not end it), then ENOENT
 *   check-*   waits 20 ms, counts the request as wrongly marked if
 *             fsp_req_interrupted() says so (nobody interrupted it), ENOENT
 *   anything else: ENOENT at once
 * "stats" reads as lines "blocked N", "eintr N", "interrupted N",
 * "marked N", "served N": callbacks inside a block-* wait now, sleeps that
 * ended with EINTR (a signal reached a callback: never expected), block-*
 * requests ended by an INTERRUPT, check-* requests wrongly marked, lookups
 * answered. Waits sleep in nanosleep(), which a delivered signal ends with
 * EINTR, so any signal that reaches a callback is counted. */
#include <fsp/fsp.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int root_obj, stats_obj;
#define STATS_INO 2
static const char *gate;
static atomic_long blocked, eintr, interrupted, marked, served;

/* Sleep ms milliseconds; count an EINTR. */
static void nap(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	if (nanosleep(&ts, NULL) < 0 && errno == EINTR)
		atomic_fetch_add(&eintr, 1);
}

static void fill(struct stat *st, void *obj)
{
	memset(st, 0, sizeof(*st));
	if (obj == &root_obj) {
		st->st_ino = FSP_ROOT_INO;
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else {
		st->st_ino = STATS_INO;
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = 4096;
	}
}

static int slow_lookup(fsp_req *r, void *dir, const char *name, struct fsp_entry *e)
{
	int rc = -ENOENT;
	if (dir != &root_obj)
		return -ENOENT;
	if (!strcmp(name, "stats")) {
		e->ino = STATS_INO;
		e->obj = &stats_obj;
		e->entry_timeout = e->attr_timeout = 0;
		fill(&e->attr, &stats_obj);
		rc = 0;
	} else if (!strncmp(name, "block-", 6)) {
		atomic_fetch_add(&blocked, 1);
		while (gate && access(gate, F_OK) == 0) {
			if (fsp_req_interrupted(r)) {
				atomic_fetch_add(&interrupted, 1);
				rc = -EINTR;
				break;
			}
			nap(2);
		}
		atomic_fetch_sub(&blocked, 1);
	} else if (!strncmp(name, "stuck-", 6)) {
		atomic_fetch_add(&blocked, 1);
		while (gate && access(gate, F_OK) == 0)
			nap(2);
		atomic_fetch_sub(&blocked, 1);
	} else if (!strncmp(name, "check-", 6)) {
		nap(20);
		if (fsp_req_interrupted(r))
			atomic_fetch_add(&marked, 1);
	}
	atomic_fetch_add(&served, 1);
	return rc;
}

static void slow_forget(fsp_session *s, void *obj, uint64_t n)
{
	(void)s, (void)obj, (void)n;
}

static int slow_getattr(fsp_req *r, void *obj, void *fh, struct stat *st)
{
	(void)r, (void)fh;
	fill(st, obj);
	return 0;
}

static int slow_open(fsp_req *r, void *obj, int flags, struct fsp_open_out *o)
{
	(void)r, (void)obj;
	o->flags |= FSP_OPEN_DIRECT_IO;   /* every read sees fresh counters */
	return (flags & O_ACCMODE) == O_RDONLY ? 0 : -EACCES;
}

static ssize_t slow_read(fsp_req *r, void *obj, void *fh, void *buf, size_t size, off_t off)
{
	char text[256];
	(void)r, (void)obj, (void)fh;
	int n = snprintf(text, sizeof(text), "blocked %ld\neintr %ld\ninterrupted %ld\n"
			 "marked %ld\nserved %ld\n", atomic_load(&blocked), atomic_load(&eintr),
			 atomic_load(&interrupted), atomic_load(&marked), atomic_load(&served));
	if (off >= n)
		return 0;
	if (size > (size_t)(n - off))
		size = (size_t)(n - off);
	memcpy(buf, text + off, size);
	return (ssize_t)size;
}

static const struct fsp_operations slow_ops = {
	.lookup = slow_lookup,
	.forget = slow_forget,
	.getattr = slow_getattr,
	.open = slow_open,
	.read = slow_read,
};

static int hook(void *data, const char *key, const char *value)
{
	(void)data;
	if (!strcmp(key, "gate") && value && *value) {
		gate = value;
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	return fsp_main(argc, argv, &slow_ops, &root_obj, NULL,
			"A test file system whose lookups of block-* wait for a gate file.\n"
			"  -o gate=PATH  block-* lookups wait while PATH exists\n\n", hook, NULL);
}
