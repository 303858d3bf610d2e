/*
 * fsp-stress: small helpers with no policy of their own — checked syscalls,
 * the PRNG, the content hash, the deterministic content stream, recursive
 * removal and running external commands.
 */
#include "fsp-stress.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

long fss_check(long r, const char *file, int line)
{
	if (r < 0)
		return fss_checkerr(errno, file, line);
	return r;
}

int fss_checkerr(int e, const char *file, int line)
{
	static atomic_bool told;

	if (e == ENOTCONN)
		fs_died("file system died (ENOTCONN at %s:%d)", file, line);
	/* Our own limit, not the file system's fault: say so once, plainly. */
	if ((e == EMFILE || e == ENFILE) && !atomic_exchange(&told, true))
		fail_reason("out of file descriptors (%s at %s:%d); raise ulimit -n or lower "
			    "--threads", strerror(e), file, line);
	return -e;
}

/* ---- PRNG: splitmix64 to seed, xoshiro256** to run ------------------- */

uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

#define GOLDEN 0x9E3779B97F4A7C15ULL

void rng_seed(struct rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++) {
		seed += GOLDEN;
		r->s[i] = mix64(seed);
	}
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return res;
}

uint64_t rng_below(struct rng *r, uint64_t n)
{
	/* The modulo bias is irrelevant for test data; determinism is what counts. */
	return n ? rng_next(r) % n : 0;
}

bool rng_pct(struct rng *r, unsigned pct)
{
	return rng_below(r, 100) < pct;
}

/* ---- content hash: a streaming 4-lane 64-bit hash in the xxh64 mould --- */

#define P1 0x9E3779B185EBCA87ULL
#define P2 0xC2B2AE3D27D4EB4FULL
#define P3 0x165667B19E3779F9ULL
#define P4 0x85EBCA77C2B2AE63ULL
#define P5 0x27D4EB2F165667C5ULL

static inline uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static inline uint64_t lane(uint64_t acc, uint64_t in)
{
	acc += in * P2;
	acc = rotl(acc, 31);
	return acc * P1;
}

static inline void stripe(uint64_t *v, const uint8_t *p)
{
	v[0] = lane(v[0], rd64(p));
	v[1] = lane(v[1], rd64(p + 8));
	v[2] = lane(v[2], rd64(p + 16));
	v[3] = lane(v[3], rd64(p + 24));
}

void fh_init(struct fh *h)
{
	h->v[0] = P1 + P2;
	h->v[1] = P2;
	h->v[2] = 0;
	h->v[3] = -P1;
	h->blen = 0;
	h->total = 0;
}

void fh_update(struct fh *h, const void *data, size_t n)
{
	const uint8_t *p = data;

	h->total += n;
	if (h->blen) {
		size_t k = 32 - h->blen < n ? 32 - h->blen : n;

		memcpy(h->buf + h->blen, p, k);
		h->blen += k;
		p += k;
		n -= k;
		if (h->blen < 32)
			return;
		stripe(h->v, h->buf);
		h->blen = 0;
	}
	for (; n >= 32; p += 32, n -= 32)
		stripe(h->v, p);
	memcpy(h->buf, p, n);
	h->blen = n;
}

uint64_t fh_final(const struct fh *h)
{
	const uint8_t *p = h->buf;
	size_t n = h->blen;
	uint64_t x;

	if (h->total >= 32) {
		x = rotl(h->v[0], 1) + rotl(h->v[1], 7) + rotl(h->v[2], 12) + rotl(h->v[3], 18);
		for (int i = 0; i < 4; i++) {
			x ^= lane(0, h->v[i]);
			x = x * P1 + P4;
		}
	} else {
		x = P5;
	}
	x += h->total;
	for (; n >= 8; p += 8, n -= 8) {
		x ^= lane(0, rd64(p));
		x = rotl(x, 27) * P1 + P4;
	}
	for (; n; p++, n--) {
		x ^= *p * P5;
		x = rotl(x, 11) * P1;
	}
	x ^= x >> 33;
	x *= P2;
	x ^= x >> 29;
	x *= P3;
	x ^= x >> 32;
	return x;
}

/* ---- deterministic file content ---------------------------------------
 * Byte i of a file is a pure function of (key, i), so any range can be
 * regenerated for writing, verifying or locating a mismatch, and nothing
 * is ever stored. */

uint64_t content_key(uint64_t seed, uint64_t idx)
{
	return mix64(seed * P1 ^ mix64(idx + P3));
}

bool content_hole(uint64_t key, uint64_t blk)
{
	return (mix64(key ^ (blk * P4)) & 3) == 0;
}

static void fill_words(uint64_t key, uint64_t off, uint8_t *out, size_t n)
{
	uint64_t w = off / 8, v;
	size_t skip = off % 8;

	if (skip) {
		size_t k = 8 - skip < n ? 8 - skip : n;

		v = mix64(key + w++ * GOLDEN);
		memcpy(out, (uint8_t *)&v + skip, k);
		out += k;
		n -= k;
	}
	for (; n >= 8; out += 8, n -= 8) {
		v = mix64(key + w++ * GOLDEN);
		memcpy(out, &v, 8);
	}
	if (n) {
		v = mix64(key + w * GOLDEN);
		memcpy(out, &v, n);
	}
}

void content_fill(uint64_t key, bool sparse, uint64_t off, void *buf, size_t len)
{
	uint8_t *out = buf;

	while (len) {
		uint64_t blk = off / FSS_HOLE_BLK;
		size_t n = (blk + 1) * FSS_HOLE_BLK - off;

		if (n > len)
			n = len;
		if (sparse && content_hole(key, blk))
			memset(out, 0, n);
		else
			fill_words(key, off, out, n);
		out += n;
		off += n;
		len -= n;
	}
}

/* ---- misc ------------------------------------------------------------- */

double now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

__attribute__((noreturn)) static void oom(void)
{
	fputs("fsp-stress: FAIL: out of memory\n", stderr);
	_exit(1);
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		oom();
	return p;
}

void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz ? sz : 1);

	if (!p)
		oom();
	return p;
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		oom();
	return p;
}

char *xstrdup(const char *s)
{
	char *p = strdup(s);

	if (!p)
		oom();
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		oom();
	va_end(ap);
	return s;
}

char *path_cat(const char *a, const char *b)
{
	return *b ? xasprintf("%s/%s", a, b) : xstrdup(a);
}

int pwrite_full(int fd, const void *buf, size_t len, off_t off)
{
	const char *p = buf;

	while (len) {
		ssize_t n = CK(pwrite(fd, p, len, off));

		if (n == -EINTR)
			continue;
		if (n < 0)
			return (int)n;
		if (n == 0)
			return -EIO;	/* a zero-length write would loop forever */
		p += n;
		len -= n;
		off += n;
	}
	return 0;
}

ssize_t pread_full(int fd, void *buf, size_t len, off_t off)
{
	char *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = CK(pread(fd, p + got, len - got, off + got));

		if (n == -EINTR)
			continue;
		if (n < 0)
			return n;
		if (n == 0)
			break;
		got += n;
	}
	return got;
}

struct dent64 {
	uint64_t ino;
	int64_t off;
	unsigned short reclen;
	unsigned char type;
	char name[];
};

static bool dot_or_dotdot(const char *n)
{
	return n[0] == '.' && (!n[1] || (n[1] == '.' && !n[2]));
}

/*
 * Remove PATH and everything below it while holding a single directory fd:
 * a churned tree can be nested far deeper than the fd budget allows, so the
 * walk climbs back with ".." and remembers names, not descriptors.  Entries
 * removed during a getdents pass may make the listing skip others, so every
 * directory is re-listed until a pass comes back empty.
 */
int rmtree(const char *path, uint64_t *removed)
{
	char **stack = NULL, *dbuf = xmalloc(32768);
	size_t depth = 0, cap = 0;
	unsigned passes = 0;
	int r, cur;

	cur = CK(open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
	if (cur < 0) {
		r = cur;
		cur = -1;
		if (r == -ENOTDIR || r == -ELOOP) {
			r = CK(unlink(path));
			if (!r && removed)
				++*removed;
		}
		goto out;
	}
	for (;;) {
		bool found = false, descended = false;

		if (lseek(cur, 0, SEEK_SET) < 0) {
			r = CKERR();
			goto out;
		}
		while (!descended) {
			long nb = CK(syscall(SYS_getdents64, cur, dbuf, 32768));

			if (nb < 0) {
				r = (int)nb;
				goto out;
			}
			if (nb == 0)
				break;
			for (long pos = 0; pos < nb;) {
				struct dent64 *de = (void *)(dbuf + pos);
				int type = de->type;

				pos += de->reclen;
				if (dot_or_dotdot(de->name))
					continue;
				found = true;
				if (type == DT_UNKNOWN) {
					struct stat st;

					if (fstatat(cur, de->name, &st, AT_SYMLINK_NOFOLLOW) == 0)
						type = S_ISDIR(st.st_mode) ? DT_DIR : DT_REG;
				}
				if (type == DT_DIR) {
					int sub = CK(openat(cur, de->name, O_RDONLY | O_DIRECTORY |
							    O_NOFOLLOW | O_CLOEXEC));

					if (sub < 0) {
						r = sub;
						goto out;
					}
					if (depth == cap) {
						cap = cap ? cap * 2 : 64;
						stack = xrealloc(stack, cap * sizeof(*stack));
					}
					stack[depth++] = xstrdup(de->name);
					close(cur);
					cur = sub;
					descended = true;
					break;
				}
				r = CK(unlinkat(cur, de->name, 0));
				if (r < 0 && r != -ENOENT)
					goto out;
				if (!r && removed)
					++*removed;
			}
		}
		if (descended) {
			passes = 0;
			continue;
		}
		if (found) {
			/* A listing that keeps naming entries we cannot remove
			 * is a file system bug, not something to spin on. */
			if (++passes > 100) {
				r = -ENOTEMPTY;
				goto out;
			}
			continue;
		}
		if (!depth)
			break;
		r = CK(openat(cur, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
		if (r < 0)
			goto out;
		close(cur);
		cur = r;
		depth--;
		r = CK(unlinkat(cur, stack[depth], AT_REMOVEDIR));
		free(stack[depth]);
		if (r < 0 && r != -ENOENT)
			goto out;
		if (!r && removed)
			++*removed;
		passes = 0;
	}
	close(cur);
	cur = -1;
	r = CK(rmdir(path));
	if (!r && removed)
		++*removed;
out:
	if (cur >= 0)
		close(cur);
	while (depth)
		free(stack[--depth]);
	free(stack);
	free(dbuf);
	return r;
}

/* Run an external program, passing its output through (first lines only,
 * so that a cp failing on every file cannot flood the report). Returns the
 * exit status, 128+signal, or negative errno if it could not be started. */
int run_cmd(char *const argv[])
{
	size_t lines = 0, cap = 0;
	char *line = NULL;
	int pfd[2], st, r;
	FILE *f = NULL;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		r = -errno;
		close(pfd[0]);
		close(pfd[1]);
		return r;
	}
	if (pid == 0) {
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		execv(argv[0], argv);
		execvp(strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0], argv);
		_exit(127);
	}
	close(pfd[1]);
	set_child(pid);
	f = fdopen(pfd[0], "r");
	if (!f) {
		close(pfd[0]);
	} else {
		while (getline(&line, &cap, f) > 0) {
			line[strcspn(line, "\n")] = 0;
			if (++lines <= 10)
				note("%s", line);
		}
		fclose(f);
	}
	free(line);
	if (lines > 10)
		note("(%zu more lines of output from %s)", lines - 10, argv[0]);
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR) {
			set_child(0);
			return -errno;
		}
	set_child(0);
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

int drop_caches(int level)
{
	char c[2] = { (char)('0' + level), '\n' };
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, c, 2) < 0)
		r = -errno;
	close(fd);
	return r;
}

bool parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (!*s || *s == '-' || *s == '+')
		return false;
	errno = 0;
	*out = strtoull(s, &end, 0);
	return !errno && !*end;
}

bool parse_size(const char *s, uint64_t *out)
{
	unsigned shift = 0;
	uint64_t v;
	char *end;

	if (!*s || *s == '-' || *s == '+')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return false;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	}
	if (shift && (!strcmp(end, "iB") || !strcmp(end, "B")))
		end += strlen(end);
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return false;
	*out = v << shift;
	return true;
}

int dir_entries(const char *path, char ***names, size_t *n)
{
	size_t cap = 0;
	struct dirent *de;
	DIR *d;
	int r = 0;

	*names = NULL;
	*n = 0;
	d = opendir(path);
	if (!d)
		return CKERR();
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno)
				r = CKERR();
			break;
		}
		if (dot_or_dotdot(de->d_name))
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			*names = xrealloc(*names, cap * sizeof(**names));
		}
		(*names)[(*n)++] = xstrdup(de->d_name);
	}
	closedir(d);
	return r;
}

void free_names(char **names, size_t n)
{
	while (n)
		free(names[--n]);
	free(names);
}
