/*
 * fsp-stress: options, the round loop, and crash detection.
 *
 * Works against any directory on any file system; the FUSE-specific parts
 * (leak counters, the daemon's pid) are optional hooks, so that the same
 * run can be repeated on tmpfs to tell file system bugs from test bugs.
 */
#include "fsp-stress.h"

#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

struct opts opt = {
	.dirs = 3200,
	.files = 12000,
	.depth = 8,
	.threads = 4,
	.rounds = 1,
	.max_size = 8u << 20,
	.seconds = 10,
	.scen = SC_ALL,
};

static const char usage_text[] =
"NAME\n"
"    fsp-stress - prove a file system survives the big copy and harsher churn\n"
"\n"
"SYNOPSIS\n"
"    fsp-stress [options] DIR\n"
"\n"
"DESCRIPTION\n"
"    Creates DIR/fsp-stress.PID/ and works only inside it.  Each round\n"
"    generates a tree (directories, files, symlinks, hard links, fifos,\n"
"    modes, xattrs, nanosecond timestamps) deterministically from the seed,\n"
"    keeps its own record of it, and then runs the selected scenarios.\n"
"    Everything is checked against that record, never only against the\n"
"    source tree.  DIR may be on any file system; tmpfs is the reference.\n"
"\n"
"    The first line of output is always \"fsp-stress: seed N\"; pass\n"
"    --seed N to repeat a run exactly (the churn timing is not repeatable).\n"
"\n"
"OPTIONS\n"
"    --seed N          seed for the tree (default: derived from the time)\n"
"    --dirs N          directories per tree (default 3200)\n"
"    --files N         regular files per tree (default 12000); N/20 symlinks,\n"
"                      N/40 hard links and N/500+1 fifos (max 32) come on top\n"
"    --depth N         maximum directory depth (default 8)\n"
"    --max-size SIZE   largest file, with optional K, M or G suffix\n"
"                      (default 8M); most files are 0-4 KiB, some up to 64 KiB\n"
"    --threads N       threads for the own copier and verifier, and the\n"
"                      base count for churn threads (default 4)\n"
"    --scenarios LIST  comma-separated subset of copy,verify,churn,forget,\n"
"                      delete, or \"all\" (default all)\n"
"    --seconds S       duration of churn (default 10)\n"
"    --rounds N        repeat everything N times with seed+round (default 1)\n"
"    --counters CMD    shell command printing \"key value\" lines (e.g.\n"
"                      \"fspctl stats MNT\"); run at start and after each round;\n"
"                      it must report nodes, handles and inflight (else the\n"
"                      run fails at once); they, and mem_bytes if reported,\n"
"                      must return to the baseline\n"
"    --pid PID         the file system daemon; if it disappears the run fails\n"
"                      at once with \"file system died\"\n"
"    --json            print a JSON summary on stdout instead of the report\n"
"                      (the seed line then goes to stderr)\n"
"    -q, --quiet       only the seed line, mismatches and the verdict\n"
"    -h, --help        this text\n"
"    -V, --version     version\n"
"\n"
"SCENARIOS\n"
"    copy      \"cp -a\" of the tree, then the own multi-threaded copier\n"
"              (read/write, mkdir, symlink, link, mknod, xattrs, chmod,\n"
"              utimensat) into a third tree\n"
"    verify    every entry of all trees against the record: type, mode, size,\n"
"              mtime (exact ns), link count, content hash, symlink target,\n"
"              user.* xattrs, and no unexpected entries; the first 20\n"
"              mismatches are shown, all are counted\n"
"    churn     readers, listers, renamers (incl. RENAME_EXCHANGE and\n"
"              RENAME_NOREPLACE), truncaters, deleters and writers that keep\n"
"              files open across renames/unlinks, on a copied tree.  ENOENT,\n"
"              ENOTEMPTY, EEXIST and similar races are counted, not failures;\n"
"              EIO, errors on an open fd, wrong data and ENOTCONN fail\n"
"    forget    during churn, write 2 (sometimes 3) to /proc/sys/vm/drop_caches\n"
"              every 50 ms so FUSE FORGETs race with LOOKUPs (root only)\n"
"    delete    \"rm -rf\" of the cp -a copy, the own openat/unlinkat remover\n"
"              for the others, then check the work directory is empty\n"
"\n"
"EXIT STATUS\n"
"    0  pass\n"
"    1  a mismatch, an unexpected error, a counter that did not return to\n"
"       its baseline, or the file system died (ENOTCONN, or --pid gone)\n"
"    2  bad usage\n"
"\n"
"EXAMPLES\n"
"    mount -t tmpfs tmpfs /tmp/st && fsp-stress /tmp/st\n"
"    fsp-stress --dirs 50 --files 200 --seconds 3 /tmp/st\n"
"    fsp-stress --pid $(pidof fsp-memfs) --counters 'fspctl stats /mnt' /mnt\n";

__attribute__((noreturn, format(printf, 1, 2)))
static void usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("fsp-stress: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see --help)\n", stderr);
	exit(2);
}

static unsigned parse_count(const char *name, const char *arg, uint64_t min, uint64_t max)
{
	uint64_t v;

	if (!parse_u64(arg, &v))
		usage_error("--%s: '%s' is not a number", name, arg);
	if (v < min || v > max)
		usage_error("--%s: %s is out of range (%llu..%llu)", name, arg,
			    (unsigned long long)min, (unsigned long long)max);
	return (unsigned)v;
}

static unsigned parse_scenarios(const char *arg)
{
	static const char *const names[] = { "copy", "verify", "churn", "forget", "delete" };
	char *dup = xstrdup(arg), *save = NULL;
	unsigned m = 0;

	for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		unsigned i;

		if (!strcmp(t, "all")) {
			m |= SC_ALL;
			continue;
		}
		for (i = 0; i < 5 && strcmp(t, names[i]); i++)
			;
		if (i == 5)
			usage_error("--scenarios: unknown scenario '%s'", t);
		m |= 1u << i;
	}
	free(dup);
	if (!m)
		usage_error("--scenarios: empty list");
	return m;
}

static void parse_args(int argc, char **argv)
{
	enum { O_SEED = 256, O_DIRS, O_FILES, O_MAXSIZE, O_DEPTH, O_THREADS, O_SCEN,
	       O_SECONDS, O_ROUNDS, O_COUNTERS, O_JSON, O_PID };
	static const struct option lopts[] = {
		{ "seed", required_argument, NULL, O_SEED },
		{ "dirs", required_argument, NULL, O_DIRS },
		{ "files", required_argument, NULL, O_FILES },
		{ "max-size", required_argument, NULL, O_MAXSIZE },
		{ "depth", required_argument, NULL, O_DEPTH },
		{ "threads", required_argument, NULL, O_THREADS },
		{ "scenarios", required_argument, NULL, O_SCEN },
		{ "seconds", required_argument, NULL, O_SECONDS },
		{ "rounds", required_argument, NULL, O_ROUNDS },
		{ "counters", required_argument, NULL, O_COUNTERS },
		{ "json", no_argument, NULL, O_JSON },
		{ "pid", required_argument, NULL, O_PID },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":qhV", lopts, NULL)) != -1) {
		char *end;

		switch (c) {
		case O_SEED:
			if (!parse_u64(optarg, &opt.seed))
				usage_error("--seed: '%s' is not a number", optarg);
			opt.seed_set = true;
			break;
		case O_DIRS: opt.dirs = parse_count("dirs", optarg, 0, 1000000); break;
		case O_FILES: opt.files = parse_count("files", optarg, 0, 10000000); break;
		case O_DEPTH: opt.depth = parse_count("depth", optarg, 1, 64); break;
		case O_THREADS: opt.threads = parse_count("threads", optarg, 1, 256); break;
		case O_ROUNDS: opt.rounds = parse_count("rounds", optarg, 1, 1000000); break;
		case O_MAXSIZE:
			if (!parse_size(optarg, &opt.max_size))
				usage_error("--max-size: '%s' is not a size (like 512K, 8M, 1G)", optarg);
			if (opt.max_size > (64ULL << 30))
				usage_error("--max-size: %s is more than 64G", optarg);
			break;
		case O_SECONDS:
			errno = 0;
			opt.seconds = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(opt.seconds >= 0) || opt.seconds > 1e6)
				usage_error("--seconds: '%s' is not a number of seconds", optarg);
			break;
		case O_SCEN: opt.scen = parse_scenarios(optarg); break;
		case O_COUNTERS:
			if (!*optarg)
				usage_error("--counters: empty command");
			opt.counters = optarg;
			break;
		case O_JSON: opt.json = true; break;
		case O_PID:
			opt.pid = (pid_t)parse_count("pid", optarg, 1, INT_MAX);
			if (kill(opt.pid, 0) < 0 && errno == ESRCH)
				usage_error("--pid: no process %d", (int)opt.pid);
			break;
		case 'q': opt.quiet = true; break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		case 'V':
			printf("fsp-stress %s\n", FSS_VERSION);
			exit(0);
		case ':':
			usage_error("option '%s' needs an argument", argv[optind - 1]);
		default:
			if (optopt)
				usage_error("unknown option '-%c'", optopt);
			usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind == argc)
		usage_error("missing DIR");
	if (optind + 1 < argc)
		usage_error("unexpected argument '%s'", argv[optind + 1]);
	opt.dir = argv[optind];
}

/* A zombie still answers kill(pid, 0), but its mount is as dead as it. */
static bool pid_alive(pid_t pid)
{
	char path[64], buf[256], *p;
	ssize_t n;
	int fd;

	if (kill(pid, 0) < 0 && errno == ESRCH)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno != ENOENT;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return true;
	buf[n] = 0;
	p = strrchr(buf, ')');
	return !(p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'));
}

static void *pid_watch(void *arg)
{
	(void)arg;
	for (;;) {
		if (!pid_alive(opt.pid))
			fs_died("file system died (process %d is gone)", (int)opt.pid);
		sleep_ms(100);
	}
	return NULL;
}

/* The tool needs well under 1024 fds; take what the hard limit allows up
 * to that, since some environments start with a soft limit of 256. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= 1024)
		return;
	rl.rlim_cur = rl.rlim_max < 1024 ? rl.rlim_max : 1024;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < 512)
		note("only %llu file descriptors allowed (ulimit -n); large --threads may run out",
		     (unsigned long long)rl.rlim_cur);
}

static char *workdir;
static size_t max_path;
static struct counters baseline;
static bool have_baseline;

static bool exists(const char *path)
{
	struct stat st;

	return CK(lstat(path, &st)) == 0;
}

static void run_round(int round, uint64_t seed)
{
	char *src = xasprintf("%s/r%d-src", workdir, round);
	char *cpd = xasprintf("%s/r%d-cp", workdir, round);
	char *own = xasprintf("%s/r%d-own", workdir, round);
	char *priv = xasprintf("%s/r%d-churn-private", workdir, round);
	bool gen_ok, have_cp = false, have_own = false;
	struct record rec;
	struct phase *p;
	int r;

	if (opt.rounds > 1)
		say("[r%d] round %d of %u, seed %llu", round, round, opt.rounds,
		    (unsigned long long)seed);
	p = phase_begin(round, "generate");
	r = gen_plan(&rec, seed, max_path);
	if (r < 0) {
		fail_reason("generate: cannot plan a tree within PATH_MAX under %s", workdir);
		goto out;
	}
	r = gen_materialize(&rec, src, p);
	gen_ok = r == 0;
	if (!gen_ok) {
		p->errors++;
		fail_reason("generate: could not create the source tree");
	}
	phase_set(p, "dirs", rec.ndirs);
	phase_set(p, "files", rec.nfiles);
	phase_set(p, "symlinks", rec.nsym);
	phase_set(p, "hardlinks", rec.nhard);
	phase_set(p, "fifos", rec.nfifo);
	phase_end(p);

	if (gen_ok && (opt.scen & SC_COPY)) {
		p = phase_begin(round, "cp -a");
		copy_cp(src, cpd, p);
		p->bytes = rec.bytes;
		p->ops = rec.n;
		phase_set(p, "entries", rec.n);
		phase_end(p);
		have_cp = exists(cpd);

		p = phase_begin(round, "own copy");
		copy_own(src, own, opt.threads, p);
		phase_end(p);
		have_own = exists(own);
	}

	if (gen_ok && (opt.scen & SC_VERIFY)) {
		bool forget = (opt.scen & SC_FORGET) && !(opt.scen & SC_CHURN);
		const char *trees[3] = { src, have_cp ? cpd : NULL, have_own ? own : NULL };
		const char *labels[3] = { "src", "cp -a", "own" };
		int last = trees[2] ? 2 : trees[1] ? 1 : 0;
		char name[40];

		/* Without churn, forget races with the verifier's lookups. */
		if (forget && (r = forget_start()) < 0) {
			note("forget: cannot write /proc/sys/vm/drop_caches (%s); skipping",
			     strerror(-r));
			forget = false;
		}

		for (int i = 0; i <= last; i++) {
			if (!trees[i])
				continue;
			snprintf(name, sizeof(name), "verify %s", labels[i]);
			p = phase_begin(round, name);
			verify_tree(&rec, trees[i], labels[i], opt.threads, p);
			if (forget && i == last)
				phase_set(p, "cache drops", forget_stop());
			phase_end(p);
		}
	}

	if (gen_ok && (opt.scen & SC_CHURN)) {
		const char *tree = have_own ? own : have_cp ? cpd : src;

		if (tree == src)
			note("churn: no copied tree; churning the source tree instead");
		p = phase_begin(round, "churn");
		churn_run(&rec, tree, priv, opt.scen & SC_FORGET, p);
		phase_end(p);
	}

	if (opt.scen & SC_DELETE) {
		char *owns[3];
		size_t n = 0;

		if (have_own)
			owns[n++] = own;
		if (exists(src))
			owns[n++] = src;
		if (exists(priv))
			owns[n++] = priv;
		p = phase_begin(round, "delete");
		delete_run(workdir, have_cp ? cpd : NULL, rec.n, owns, n, p);
		phase_end(p);
		if (have_baseline)
			counters_check(opt.counters, &baseline, round);
	} else {
		note("delete not selected: trees left in %s", workdir);
	}
out:
	gen_free(&rec);
	free(src);
	free(cpd);
	free(own);
	free(priv);
}

int main(int argc, char **argv)
{
	char real[PATH_MAX];
	pthread_t tid;
	struct stat st;
	int r;

	parse_args(argc, argv);
	report_init();
	raise_fd_limit();
	umask(0);	/* modes in the record are exact */
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!opt.seed_set) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		opt.seed = mix64(((uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec) ^
				 ((uint64_t)getpid() << 32)) % 1000000000000ULL;
	}
	if (!realpath(opt.dir, real))
		usage_error("%s: %s", opt.dir, strerror(errno));
	if (stat(real, &st) < 0 || !S_ISDIR(st.st_mode))
		usage_error("%s: not a directory", opt.dir);
	fprintf(opt.json ? stderr : stdout, "fsp-stress: seed %llu\n", (unsigned long long)opt.seed);
	opt.dir = real;
	workdir = xasprintf("%s/fsp-stress.%d", real, (int)getpid());
	/* Leave room for the round's tree name below the work directory. */
	if (strlen(workdir) + 64 + 128 > PATH_MAX)
		usage_error("%s: path too long", opt.dir);
	max_path = PATH_MAX - 1 - strlen(workdir) - 64;

	if (opt.pid && pthread_create(&tid, NULL, pid_watch, NULL))
		note("--pid: cannot start the watcher thread");
	r = CK(mkdir(workdir, 0755));
	if (r < 0) {
		/* unusable DIR is bad input: say so where errors go */
		fprintf(stderr, "fsp-stress: cannot create %s: %s\n", workdir, strerror(-r));
		fail_reason("cannot create %s: %s", workdir, strerror(-r));
		return report_final();
	}
	if ((opt.scen & SC_FORGET) && geteuid() != 0) {
		note("forget: not root, cannot drop caches; skipping");
		opt.scen &= ~SC_FORGET;
	}
	if ((opt.scen & SC_FORGET) && !(opt.scen & (SC_CHURN | SC_VERIFY)))
		note("forget: runs alongside churn or verify, and neither is selected");
	if (opt.counters) {
		if (!(opt.scen & SC_DELETE)) {
			note("--counters: delete not selected, so nothing to compare; skipping");
		} else {
			sync();
			if (geteuid() == 0)
				drop_caches(3);
			sleep_ms(300);
			r = counters_read(opt.counters, &baseline);
			if (r < 0) {
				fail_reason("--counters command failed: %s", opt.counters);
				rmdir(workdir);
				return report_final();
			}
			have_baseline = true;
			/* Without these three the leak check would check nothing
			 * and pass: a command that lacks one is bad input. */
			for (const char *k = "nodes"; k; k = !strcmp(k, "nodes") ? "handles"
					  : !strcmp(k, "handles") ? "inflight" : NULL) {
				bool found = false;

				for (size_t i = 0; i < baseline.n; i++)
					found |= !strcmp(baseline.keys[i], k);
				if (!found) {
					fprintf(stderr, "fsp-stress: --counters: no \"%s\" in the "
						"output of '%s'\n", k, opt.counters);
					fail_reason("--counters: no \"%s\" in the output of '%s'", k,
						    opt.counters);
					counters_free(&baseline);
					rmdir(workdir);
					return report_final();
				}
			}
		}
	} else {
		note("no --counters given: leak accounting skipped");
	}

	for (unsigned i = 0; i < opt.rounds; i++) {
		run_round((int)i + 1, opt.seed + i);
		g_rounds_done++;
		if (failed()) {
			if (i + 1 < opt.rounds)
				note("stopping after the failed round %u", i + 1);
			break;
		}
	}
	if (opt.scen & SC_DELETE) {
		r = CK(rmdir(workdir));
		if (r < 0 && !failed())
			fail_reason("cannot remove %s: %s", workdir, strerror(-r));
	}
	counters_free(&baseline);
	free(workdir);
	return report_final();
}
