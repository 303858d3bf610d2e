/* fsp-bench — small, honest file system micro-benchmarks, for side-by-side
 * runs (bench/compare.sh runs it on tmpfs, fsp-memfs, fsp-ptfs and other FUSE
 * file systems in one go).
 *
 *   fsp-bench creates DIR [N]      create+close N empty files, then unlink them
 *   fsp-bench stat DIR [N]         stat N existing names (after creating them)
 *   fsp-bench seqwrite FILE [MiB]  sequential 1 MiB writes, then fsync
 *   fsp-bench seqread FILE         sequential 1 MiB reads of the whole file
 *   fsp-bench suite DIR [options]  WinFsp's fsbench list, one line per test
 *                                  (suite.c; bench/run.py runs it everywhere)
 *
 * Output: one line "name value unit" (ops/s or MB/s), machine-friendly.
 * Exit: 0 ok, 1 an operation failed (message names it), 2 bad usage. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "suite.h"

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

static long arg_num(const char *s, long def)
{
	if (!s)
		return def;
	char *end;
	long v = strtol(s, &end, 10);
	if (*end || v <= 0) {
		fprintf(stderr, "fsp-bench: bad number '%s'\n", s);
		exit(2);
	}
	return v;
}

static int creates(const char *dir, long n, int do_stat)
{
	char path[4096];
	double t0 = now();
	for (long i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/f%ld", dir, i);
		int fd = open(path, O_CREAT | O_WRONLY | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0)
			return fail("create", path);
		close(fd);
	}
	double t1 = now();
	if (do_stat) {
		struct stat st;
		for (long i = 0; i < n; i++) {
			snprintf(path, sizeof(path), "%s/f%ld", dir, i);
			if (stat(path, &st) < 0)
				return fail("stat", path);
		}
	}
	double t2 = now();
	for (long i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/f%ld", dir, i);
		if (unlink(path) < 0)
			return fail("unlink", path);
	}
	double t3 = now();
	if (do_stat)
		printf("stat %.0f ops/s\n", n / (t2 - t1));
	else
		printf("creates %.0f ops/s\nunlinks %.0f ops/s\n", n / (t1 - t0), n / (t3 - t2));
	return 0;
}

static int seqwrite(const char *file, long mib)
{
	static char buf[1 << 20];
	memset(buf, 0x5a, sizeof(buf));
	int fd = open(file, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
	if (fd < 0)
		return fail("open", file);
	double t0 = now();
	for (long i = 0; i < mib; i++) {
		if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf)) {
			close(fd);
			return fail("write", file);
		}
	}
	if (fsync(fd) < 0 && errno != EINVAL && errno != ENOSYS) {
		close(fd);
		return fail("fsync", file);
	}
	close(fd);
	printf("seqwrite %.0f MB/s\n", mib * 1.048576 / (now() - t0));
	return 0;
}

static int seqread(const char *file)
{
	static char buf[1 << 20];
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail("open", file);
	double t0 = now();
	long long total = 0;
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		total += n;
	if (n < 0) {
		close(fd);
		return fail("read", file);
	}
	close(fd);
	printf("seqread %.0f MB/s\n", total / 1e6 / (now() - t0));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs("usage: fsp-bench COMMAND PATH [COUNT]\n"
		      "\n"
		      "Small file system micro-benchmarks. Prints one line \"name value unit\"\n"
		      "(ops/s or MB/s).\n"
		      "\n"
		      "Commands:\n"
		      "  creates DIR [N]       create and close N empty files (default 20000),\n"
		      "                        then unlink them\n"
		      "  stat DIR [N]          stat N names (created first; default 20000)\n"
		      "  seqwrite FILE [MiB]   sequential 1 MiB writes, then fsync (default 1024)\n"
		      "  seqread FILE          sequential 1 MiB reads of the whole file\n"
		      "  suite DIR [OPTIONS]   WinFsp's fsbench list (file_create ... mmap_read),\n"
		      "                        one line per test, in DIR/fsp-bench.PID\n"
		      "\n"
		      "Options of suite (sizes take K, M, G):\n"
		      "  --files N             files and directories per test (default 1000)\n"
		      "  --iter K              passes of the repeated name tests (default 10)\n"
		      "  --list L              listings of the N-file directory (default 100)\n"
		      "  --rdwr-size BYTES     file size of the read/write tests (default 4M)\n"
		      "  --passes P            passes over it per test (default 100)\n"
		      "  --large BYTES         the large block (default 1M)\n"
		      "  --page BYTES          the page-size block (default: the page size)\n"
		      "\n"
		      "Options:\n"
		      "  -h, --help            print this help and exit\n"
		      "  -V, --version         print the version and exit\n"
		      "\n"
		      "Exit status: 0 ok, 1 an operation failed (named), 2 bad usage.\n", stdout);
		return 0;
	}
	if (argc >= 2 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))) {
		puts("fsp-bench (fsp) 0.1.0");
		return 0;
	}
	if (argc >= 2 && !strcmp(argv[1], "suite"))
		return bench_suite(argc - 1, argv + 1);
	if (argc >= 2 && argv[1][0] == '-') {
		fprintf(stderr, "fsp-bench: unknown option '%s' (see --help)\n", argv[1]);
		return 2;
	}
	if (argc > 4) {
		fprintf(stderr, "fsp-bench: too many arguments: '%s' (see --help)\n", argv[4]);
		return 2;
	}
	if (argc < 3) {
		fprintf(stderr, "fsp-bench: expected a command and a path (see --help)\n");
		return 2;
	}
	const char *cmd = argv[1], *path = argv[2], *n = argc > 3 ? argv[3] : NULL;
	if (!strcmp(cmd, "creates"))
		return creates(path, arg_num(n, 20000), 0);
	if (!strcmp(cmd, "stat"))
		return creates(path, arg_num(n, 20000), 1);
	if (!strcmp(cmd, "seqwrite"))
		return seqwrite(path, arg_num(n, 1024));
	if (!strcmp(cmd, "seqread"))
		return seqread(path);
	fprintf(stderr, "fsp-bench: unknown command '%s' (see --help)\n", cmd);
	return 2;
}
