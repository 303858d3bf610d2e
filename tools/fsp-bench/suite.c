/* suite.c — WinFsp's fsbench test list (tst/fsbench/fsbench.c), on POSIX.
 *
 *   fsp-bench suite DIR [--files N] [--iter K] [--list L] [--rdwr-size BYTES]
 *                       [--passes P] [--large BYTES] [--page BYTES]
 *
 * Works in a fresh directory DIR/fsp-bench.PID (removed at the end) and runs
 * the tests in this order, each timed on its own and printed as soon as it
 * ends, one line "name value unit" (higher is better for every unit):
 *
 *   file_create       open(O_CREAT|O_EXCL) + close of N new empty files
 *   file_open         open + close of each file, once
 *   iter.file_open    the same K times over (kernel caches warm)
 *   file_overwrite    open(O_CREAT|O_TRUNC) + close of each file
 *   file_attr         stat of each name, K times over
 *   file_list         opendir + readdir to the end + closedir of the
 *                     N-file directory, L times; entries/s
 *   file_list_single  WinFsp asks the directory for one name
 *                     (FindFirstFile without a wildcard); POSIX has no such
 *                     call, so: opendir + fstatat(dirfd, name) + closedir,
 *                     for each name, K times over
 *   file_list_none    the same with a name that does not exist (ENOENT)
 *   file_delete       unlink of each file
 *   file_mkdir        mkdir of N directories
 *   file_rmdir        rmdir of each
 *   rdwr_cc_{write,read}_{page,large}
 *                     buffered ("cached") sequential writes / reads of a
 *                     file of --rdwr-size bytes (default 4 MiB), --passes
 *                     times over (default 100), in page-size blocks or
 *                     --large blocks (default 1 MiB: fsp's max_write; WinFsp
 *                     uses 16 pages); no fsync, close included; MB/s
 *   rdwr_nc_...       the same with O_DIRECT ("uncached"), page-aligned
 *                     buffer; a file system refusing O_DIRECT prints
 *                     "name - MB/s (reason)" instead of a number
 *   mmap_write        a shared writable mapping of the file, each page
 *                     written, --passes times over, then msync(MS_SYNC)
 *   mmap_read         a read-only mapping, its cached pages dropped first
 *                     (fadvise) so the first pass faults through the file
 *                     system; each page summed, --passes times over
 *
 * MB is 10^6 bytes. An operation that fails prints a message naming it and
 * the suite exits 1 (the lines printed so far stand). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "suite.h"

struct opts {
	long files, iter, list, passes;
	long long rdwr_size, large, page;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int fail(const char *what, const char *path)
{
	fprintf(stderr, "fsp-bench: %s %s: %s\n", what, path, strerror(errno));
	return 1;
}

static void report(const char *name, double value, const char *unit)
{
	printf("%s %.0f %s\n", name, value, unit);
	fflush(stdout);
}

/* size: a positive number with an optional K, M or G (powers of 1024);
 * -1 if it is not one. */
static long long parse_size(const char *s)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || v <= 0)
		return -1;
	switch (*end) {
	case 'K': case 'k': v <<= 10; end++; break;
	case 'M': case 'm': v <<= 20; end++; break;
	case 'G': case 'g': v <<= 30; end++; break;
	}
	return *end ? -1 : v;
}

static void name_of(char *buf, size_t len, const char *dir, const char *pfx, long i)
{
	snprintf(buf, len, "%s/%s%ld", dir, pfx, i);
}

/* open_each: open(flags) + close of each of the n files, rounds times. */
static int open_each(const char *dir, long n, long rounds, int flags, const char *name)
{
	char path[4096];
	double t0 = now();
	for (long r = 0; r < rounds; r++)
		for (long i = 0; i < n; i++) {
			name_of(path, sizeof(path), dir, "f", i);
			int fd = open(path, flags | O_CLOEXEC, 0644);
			if (fd < 0)
				return fail(name, path);
			close(fd);
		}
	report(name, n * rounds / (now() - t0), "ops/s");
	return 0;
}

static int file_attr(const char *dir, long n, long rounds)
{
	char path[4096];
	struct stat st;
	double t0 = now();
	for (long r = 0; r < rounds; r++)
		for (long i = 0; i < n; i++) {
			name_of(path, sizeof(path), dir, "f", i);
			if (stat(path, &st) < 0)
				return fail("file_attr: stat", path);
		}
	report("file_attr", n * rounds / (now() - t0), "ops/s");
	return 0;
}

static int file_list(const char *dir, long n, long rounds)
{
	long entries = 0;
	double t0 = now();
	for (long r = 0; r < rounds; r++) {
		DIR *d = opendir(dir);
		if (!d)
			return fail("file_list: opendir", dir);
		long got = 0;
		struct dirent *de;
		errno = 0;
		while ((de = readdir(d)))
			got++;
		if (errno) {
			closedir(d);
			return fail("file_list: readdir", dir);
		}
		closedir(d);
		if (got != n + 2) {
			fprintf(stderr, "fsp-bench: file_list: %s has %ld entries, expected %ld\n",
				dir, got, n + 2);
			return 1;
		}
		entries += got;
	}
	report("file_list", entries / (now() - t0), "entries/s");
	return 0;
}

/* list_one: opendir + fstatat(name) + closedir per name; missing: a name
 * that is not there, expected to fail with ENOENT. */
static int list_one(const char *dir, long n, long rounds, int missing)
{
	const char *tname = missing ? "file_list_none" : "file_list_single";
	char name[64];
	struct stat st;
	double t0 = now();
	for (long r = 0; r < rounds; r++)
		for (long i = 0; i < n; i++) {
			DIR *d = opendir(dir);
			if (!d)
				return fail(tname, dir);
			snprintf(name, sizeof(name), missing ? "none%ld" : "f%ld", i);
			int rc = fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW);
			int e = errno;
			closedir(d);
			if (missing ? rc == 0 || e != ENOENT : rc < 0) {
				errno = rc == 0 ? EEXIST : e;
				return fail(tname, name);
			}
		}
	report(tname, n * rounds / (now() - t0), "ops/s");
	return 0;
}

static int each_name(const char *dir, long n, const char *pfx, int (*op)(const char *),
		     const char *tname)
{
	char path[4096];
	double t0 = now();
	for (long i = 0; i < n; i++) {
		name_of(path, sizeof(path), dir, pfx, i);
		if (op(path) < 0)
			return fail(tname, path);
	}
	report(tname, n / (now() - t0), "ops/s");
	return 0;
}

static int do_unlink(const char *p) { return unlink(p); }
static int do_rmdir(const char *p) { return rmdir(p); }
static int do_mkdir(const char *p) { return mkdir(p, 0755); }

static int file_create(const char *dir, long n)
{
	return open_each(dir, n, 1, O_CREAT | O_EXCL | O_RDWR, "file_create");
}

/* rdwr: one rdwr_{cc,nc}_{write,read}_{page,large} test on file. */
static int rdwr(const char *file, const struct opts *o, int direct, int writing,
		long long bs, const char *tname)
{
	int rc = 1, fd = -1;
	void *buf = NULL;
	long long nblk = o->rdwr_size / bs;
	if (posix_memalign(&buf, (size_t)o->page, (size_t)bs)) {
		errno = ENOMEM;
		return fail(tname, "buffer");
	}
	memset(buf, 0x5a, (size_t)bs);
	double t0 = now();
	fd = open(file, (writing ? O_RDWR | O_CREAT : O_RDONLY) | (direct ? O_DIRECT : 0) | O_CLOEXEC,
		  0644);
	if (fd < 0) {
		if (direct && errno == EINVAL) {
			printf("%s - MB/s (O_DIRECT: %s)\n", tname, strerror(errno));
			rc = 0;
		} else {
			rc = fail(tname, file);
		}
		goto out;
	}
	if (writing && ftruncate(fd, o->rdwr_size) < 0) {
		rc = fail(tname, file);
		goto out;
	}
	for (long p = 0; p < o->passes; p++) {
		for (long long i = 0; i < nblk; i++) {
			ssize_t n = writing ? pwrite(fd, buf, (size_t)bs, i * bs)
					    : pread(fd, buf, (size_t)bs, i * bs);
			if (n != bs) {
				if (n >= 0)
					errno = EIO;
				if (direct && errno == EINVAL) {
					printf("%s - MB/s (O_DIRECT %s: %s)\n", tname,
					       writing ? "write" : "read", strerror(errno));
					rc = 0;
				} else {
					rc = fail(tname, file);
				}
				goto out;
			}
		}
	}
	if (close(fd) < 0) {
		fd = -1;
		rc = fail(tname, file);
		goto out;
	}
	fd = -1;
	report(tname, (double)o->rdwr_size * o->passes / 1e6 / (now() - t0), "MB/s");
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

static int mmap_test(const char *file, const struct opts *o, int writing)
{
	const char *tname = writing ? "mmap_write" : "mmap_read";
	size_t len = (size_t)o->rdwr_size, pg = (size_t)o->page;
	int rc = 1, fd;
	unsigned char *m = MAP_FAILED;
	double t0 = 0;
	fd = open(file, (writing ? O_RDWR | O_CREAT | O_TRUNC : O_RDONLY) | O_CLOEXEC, 0644);
	if (fd < 0)
		return fail(tname, file);
	if (writing && ftruncate(fd, (off_t)len) < 0) {
		rc = fail(tname, file);
		goto out;
	}
	if (!writing) /* the first pass reads through the file system */
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	t0 = now();
	m = mmap(NULL, len, writing ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		rc = fail(tname, file);
		goto out;
	}
	uint64_t sum = 0;
	for (long p = 0; p < o->passes; p++) {
		for (size_t off = 0; off < len; off += pg) {
			if (writing) {
				memset(m + off, (int)(p & 0xff) | 1, pg);
			} else {
				const uint64_t *w = (const uint64_t *)(m + off);
				for (size_t j = 0; j < pg / 8; j++)
					sum += w[j];
			}
		}
	}
	if (writing && msync(m, len, MS_SYNC) < 0) {
		rc = fail("mmap_write: msync", file);
		goto out;
	}
	/* every byte is (passes-1)|1 after mmap_write */
	uint64_t want = (uint64_t)(((o->passes - 1) & 0xff) | 1) * 0x0101010101010101ull *
			(len / 8) * (uint64_t)o->passes;
	if (!writing && sum != want) {
		fprintf(stderr, "fsp-bench: mmap_read: %s does not hold what mmap_write wrote\n", file);
		goto out;
	}
	munmap(m, len);
	m = MAP_FAILED;
	report(tname, (double)len * o->passes / 1e6 / (now() - t0), "MB/s");
	rc = 0;
out:
	if (m != MAP_FAILED)
		munmap(m, len);
	close(fd);
	return rc;
}

static int usage(const char *msg, const char *arg)
{
	fprintf(stderr, "fsp-bench suite: %s%s%s (see fsp-bench --help)\n", msg,
		arg ? ": " : "", arg ? arg : "");
	return 2;
}

int bench_suite(int argc, char **argv)
{
	struct opts o = { .files = 1000, .iter = 10, .list = 100, .passes = 100,
			  .rdwr_size = 4 << 20, .large = 1 << 20, .page = 0 };
	const char *dir = NULL;
	long pg = sysconf(_SC_PAGESIZE);
	o.page = pg > 0 ? pg : 4096;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		long long *size = NULL;
		long *num = NULL;
		if (!strcmp(a, "--files")) num = &o.files;
		else if (!strcmp(a, "--iter")) num = &o.iter;
		else if (!strcmp(a, "--list")) num = &o.list;
		else if (!strcmp(a, "--passes")) num = &o.passes;
		else if (!strcmp(a, "--rdwr-size")) size = &o.rdwr_size;
		else if (!strcmp(a, "--large")) size = &o.large;
		else if (!strcmp(a, "--page")) size = &o.page;
		else if (a[0] == '-') return usage("unknown option", a);
		else if (dir) return usage("too many arguments", a);
		else { dir = a; continue; }
		if (++i >= argc)
			return usage("missing value after", a);
		long long v = parse_size(argv[i]);
		if (v < 0 || (num && v > 100000000))
			return usage("bad number", argv[i]);
		if (num)
			*num = (long)v;
		else
			*size = v;
	}
	if (!dir)
		return usage("expected a directory", NULL);
	if (o.page % 512 || o.large % o.page || o.rdwr_size % o.large)
		return usage("--rdwr-size must be a multiple of --large, --large of --page", NULL);

	char w[3800], files[3900], dirs[3900], data[3900];
	snprintf(w, sizeof(w), "%s/fsp-bench.%ld", dir, (long)getpid());
	snprintf(files, sizeof(files), "%s/files", w);
	snprintf(dirs, sizeof(dirs), "%s/dirs", w);
	snprintf(data, sizeof(data), "%s/data", w);
	if (mkdir(w, 0755) < 0)
		return fail("mkdir", w);
	if (mkdir(files, 0755) < 0 || mkdir(dirs, 0755) < 0)
		return fail("mkdir", w);

	long n = o.files, k = o.iter;
	int rc = file_create(files, n);
	rc = rc ? rc : open_each(files, n, 1, O_RDWR, "file_open");
	rc = rc ? rc : open_each(files, n, k, O_RDWR, "iter.file_open");
	rc = rc ? rc : open_each(files, n, 1, O_RDWR | O_CREAT | O_TRUNC, "file_overwrite");
	rc = rc ? rc : file_attr(files, n, k);
	rc = rc ? rc : file_list(files, n, o.list);
	rc = rc ? rc : list_one(files, n, k, 0);
	rc = rc ? rc : list_one(files, n, k, 1);
	rc = rc ? rc : each_name(files, n, "f", do_unlink, "file_delete");
	rc = rc ? rc : each_name(dirs, n, "d", do_mkdir, "file_mkdir");
	rc = rc ? rc : each_name(dirs, n, "d", do_rmdir, "file_rmdir");
	static const struct { int direct, writing, large; const char *name; } rw[] = {
		{ 0, 1, 0, "rdwr_cc_write_page" }, { 0, 0, 0, "rdwr_cc_read_page" },
		{ 0, 1, 1, "rdwr_cc_write_large" }, { 0, 0, 1, "rdwr_cc_read_large" },
		{ 1, 1, 0, "rdwr_nc_write_page" }, { 1, 0, 0, "rdwr_nc_read_page" },
		{ 1, 1, 1, "rdwr_nc_write_large" }, { 1, 0, 1, "rdwr_nc_read_large" },
	};
	for (size_t i = 0; !rc && i < sizeof(rw) / sizeof(rw[0]); i++)
		rc = rdwr(data, &o, rw[i].direct, rw[i].writing, rw[i].large ? o.large : o.page,
			  rw[i].name);
	rc = rc ? rc : mmap_test(data, &o, 1);
	rc = rc ? rc : mmap_test(data, &o, 0);
	if (!rc && (unlink(data) < 0 || rmdir(files) < 0 || rmdir(dirs) < 0 || rmdir(w) < 0))
		rc = fail("cleanup", w);
	return rc;
}
