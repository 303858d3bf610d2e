/* session.c — a session's life: options, new, mount, run, exit, free, and
 * fsp_main for the common program.
 *
 * Invariants:
 *  - Only the main thread calls new/mount/run/free; fsp_session_exit may come
 *    from a signal handler or any thread (it only sets a flag).
 *  - free() runs the end in one order: stats socket closed, workers joined,
 *    unmount, every open handle released, every node forgotten, destroy,
 *    worker slots freed, device fd closed. So no callback can run after
 *    destroy, and counters stay readable until the session is freed.
 */
#include "fsp_i.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

/* ---- options ---- */

void fsp_config_init(struct fsp_config *c)
{
	memset(c, 0, sizeof(*c));
	c->default_permissions = 1;
	c->max_write = 1024 * 1024;
	c->spin_us = 50;
	c->entry_timeout = 1.0;
	c->attr_timeout = 1.0;
	c->handle_signals = 1;
	c->stats_socket = 1;
	c->mount_flags = MS_NOSUID | MS_NODEV;
}

void fsp_config_help(void)
{
	fputs("General options:\n"
	      "  -h, --help             print this help and exit\n"
	      "  -V, --version          print the version and exit\n"
	      "  -f                     stay in the foreground\n"
	      "  -d                     trace every request to stderr (implies -f)\n"
	      "  -s                     serve with one thread (same as -o threads=1)\n"
	      "  -o opt[,opt...]        mount options:\n"
	      "     ro, rw                 read-only / read-write mount\n"
	      "     allow_other            let other users access the mount\n"
	      "     default_permissions    kernel checks permissions (on by default)\n"
	      "     no_default_permissions  the file system checks permissions itself\n"
	      "     threads=N              most workers running callbacks at once, per queue\n"
	      "                            (default: 4 per CPU, 4 to 32)\n"
	      "     max_write=BYTES        largest write request (default 1M)\n"
	      "     read_ahead_kb=N        read-ahead of the mount (root; default 128)\n"
	      "     spin=US                poll for the next request this long (default 50)\n"
	      "     io_uring=auto|on|off   FUSE over io_uring where the kernel offers it\n"
	      "                            (default auto: on machines of 8 CPUs or more)\n"
	      "     uring_depth=N          ring entries per CPU queue (default: threads)\n"
	      "     entry_timeout=SECONDS  how long the kernel caches names\n"
	      "     attr_timeout=SECONDS   how long the kernel caches attributes\n"
	      "     negative_timeout=SECONDS  how long the kernel caches misses\n"
	      "     writeback_cache        let the kernel cache writes\n"
	      "     no_open                the kernel opens files and directories without\n"
	      "                            asking (file systems without per-open state)\n"
	      "     auto_unmount           (fusermount3) unmount when the process dies\n"
	      "     fsname=NAME, subtype=NAME  what /proc/mounts shows\n"
	      "     trace=FILE             record every request (a fuzzing corpus)\n"
	      "     suid, dev, noexec, noatime, ...  generic mount flags\n",
	      stdout);
}

/* Strict number: digits with an optional K/M/G/T suffix (binary). */
static int parse_size(const char *v, unsigned long long *out)
{
	char *end;
	if (!v || !*v || *v == '-' || *v == '+')
		return -EINVAL;
	errno = 0;
	unsigned long long n = strtoull(v, &end, 10);
	if (errno || end == v)
		return -EINVAL;
	int shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	}
	if (*end)
		return -EINVAL;
	if (shift && n > (~0ULL >> shift))
		return -ERANGE;
	*out = n << shift;
	return 0;
}

static int parse_seconds(const char *v, double *out)
{
	char *end;
	if (!v || !*v)
		return -EINVAL;
	errno = 0;
	double d = strtod(v, &end);
	if (errno || *end || !(d >= 0) || isinf(d))
		return -EINVAL;
	*out = d;
	return 0;
}

static const struct {
	const char *name;
	unsigned long set, clear;
} mflags[] = {
	{ "suid", 0, MS_NOSUID }, { "nosuid", MS_NOSUID, 0 },
	{ "dev", 0, MS_NODEV }, { "nodev", MS_NODEV, 0 },
	{ "exec", 0, MS_NOEXEC }, { "noexec", MS_NOEXEC, 0 },
	{ "atime", 0, MS_NOATIME }, { "noatime", MS_NOATIME, 0 },
	{ "diratime", 0, MS_NODIRATIME }, { "nodiratime", MS_NODIRATIME, 0 },
	{ "relatime", MS_RELATIME, 0 }, { "norelatime", 0, MS_RELATIME },
	{ "strictatime", MS_STRICTATIME, 0 },
	{ "sync", MS_SYNCHRONOUS, 0 }, { "async", 0, MS_SYNCHRONOUS },
	{ "dirsync", MS_DIRSYNC, 0 },
};

static int bad_value(const char *key, const char *value, const char *what)
{
	fprintf(stderr, "%s: bad value for -o %s: '%s' (%s)\n", program_invocation_short_name,
		key, value ? value : "", what);
	return -EINVAL;
}

/* Options of mount(8) and fstab that mean nothing to the daemon: a line
 * written for /etc/fstab may hold any of them, and mount.fuse3 passes some
 * of them on (`mount -t fuse.PROG SOURCE DIR -o OPTS` runs PROG SOURCE DIR
 * -o OPTS). Accepted and ignored. */
static bool mount_only_option(const char *key, const char *value)
{
	static const char *const flags[] = {
		"defaults", "auto", "noauto", "nofail", "_netdev", "user", "nouser",
		"users", "owner", "group", "loop",
	};
	if (!strncmp(key, "x-", 2) || !strncmp(key, "X-", 2) || !strcmp(key, "comment"))
		return true;
	for (size_t i = 0; !value && i < sizeof(flags) / sizeof(flags[0]); i++)
		if (!strcmp(key, flags[i]))
			return true;
	return false;
}

static int one_option(struct fsp_config *c, char *opt, fsp_opt_hook hook, void *hook_data)
{
	char *value = strchr(opt, '=');
	unsigned long long n;
	if (value)
		*value++ = 0;
	const char *key = opt;
	if (mount_only_option(key, value))
		return 0;
#define FLAG(name, field, v) if (!strcmp(key, name) && !value) { c->field = v; return 0; }
	FLAG("ro", read_only, 1);
	FLAG("rw", read_only, 0);
	FLAG("allow_other", allow_other, 1);
	FLAG("default_permissions", default_permissions, 1);
	FLAG("no_default_permissions", default_permissions, 0);
	FLAG("writeback_cache", writeback_cache, 1);
	FLAG("no_writeback_cache", writeback_cache, 0);
	FLAG("auto_unmount", auto_unmount, 1);
	if (!strcmp(key, "no_open") && !value) {
		c->no_open = c->no_opendir = 1;   /* checked in fsp_session_new */
		return 0;
	}
	FLAG("debug", debug, 1);
#undef FLAG
	for (size_t i = 0; i < sizeof(mflags) / sizeof(mflags[0]); i++) {
		if (!strcmp(key, mflags[i].name) && !value) {
			c->mount_flags = (c->mount_flags | mflags[i].set) & ~mflags[i].clear;
			return 0;
		}
	}
	if (!strcmp(key, "threads")) {
		if (parse_size(value, &n) < 0 || n < 1 || n > FSP__MAX_WORKERS)
			return bad_value(key, value, "a number of threads from 1 to 64");
		c->threads = (int)n;
		return 0;
	}
	if (!strcmp(key, "spin")) {
		if (parse_size(value, &n) < 0 || n > 1000000)
			return bad_value(key, value, "microseconds, 0 to 1000000");
		c->spin_us = (unsigned)n;
		return 0;
	}
	if (!strcmp(key, "io_uring")) {
		if (value && !strcmp(value, "auto"))
			c->io_uring = FSP_IO_URING_AUTO;
		else if (value && !strcmp(value, "on"))
			c->io_uring = FSP_IO_URING_ON;
		else if (value && !strcmp(value, "off"))
			c->io_uring = FSP_IO_URING_OFF;
		else
			return bad_value(key, value, "auto, on or off");
		return 0;
	}
	if (!strcmp(key, "uring_depth")) {
		if (parse_size(value, &n) < 0 || n < 1 || n > 1024)
			return bad_value(key, value, "ring entries per queue, 1 to 1024");
		c->uring_depth = (unsigned)n;
		return 0;
	}
	if (!strcmp(key, "read_ahead_kb")) {
		if (parse_size(value, &n) < 0 || n > 1u << 20)
			return bad_value(key, value, "kibibytes, 0 to 1048576");
		c->read_ahead_kb = (unsigned)n;
		return 0;
	}
	if (!strcmp(key, "max_write")) {
		if (parse_size(value, &n) < 0 || n < 4096 || n > 16u << 20)
			return bad_value(key, value, "bytes, 4K to 16M");
		c->max_write = (unsigned)n;
		return 0;
	}
	double *secs = !strcmp(key, "entry_timeout") ? &c->entry_timeout :
		       !strcmp(key, "attr_timeout") ? &c->attr_timeout :
		       !strcmp(key, "negative_timeout") ? &c->negative_timeout : NULL;
	if (secs) {
		if (parse_seconds(value, secs) < 0)
			return bad_value(key, value, "seconds, 0 or more");
		return 0;
	}
	if (!strcmp(key, "trace")) {
		if (!value || !*value)
			return bad_value(key, value, "a file name");
		c->trace_file = value;
		return 0;
	}
	if (!strcmp(key, "fsname") || !strcmp(key, "subtype")) {
		if (!value || !*value || strpbrk(value, ", \t\n"))
			return bad_value(key, value, "a name without commas or spaces");
		if (key[0] == 'f')
			c->fsname = value;
		else
			c->subtype = value;
		return 0;
	}
	if (hook) {
		int rc = hook(hook_data, key, value);
		if (rc < 0)
			return rc;
		if (rc > 0)
			return 0;
	}
	fprintf(stderr, "%s: unknown option -o %s%s%s (see --help)\n",
		program_invocation_short_name, key, value ? "=" : "", value ? value : "");
	return -EINVAL;
}

static int options(struct fsp_config *c, char *list, fsp_opt_hook hook, void *hook_data)
{
	char *save = NULL;
	for (char *o = strtok_r(list, ",", &save); o; o = strtok_r(NULL, ",", &save)) {
		int rc = one_option(c, o, hook, hook_data);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int fsp_config_parse(struct fsp_config *c, int argc, char **argv, const char *usage,
		     fsp_opt_hook hook, void *hook_data, char **args, int max_args, int *nargs)
{
	const char *prog = program_invocation_short_name;
	char *pos[64];
	int npos = 0, rc;
	bool only_pos = false;

	for (int i = 1; i < argc; i++) {
		char *a = argv[i];
		if (only_pos || a[0] != '-' || !a[1]) {
			if (npos == 64) {
				fprintf(stderr, "%s: too many arguments\n", prog);
				return -EINVAL;
			}
			pos[npos++] = a;
		} else if (!strcmp(a, "--")) {
			only_pos = true;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			/* a program with arguments names them in its own text */
			if (!usage || strncmp(usage, "usage:", 6) != 0)
				printf("usage: %s [options] %sMOUNTPOINT\n\n", prog,
				       max_args == 1 ? "[SOURCE] " : max_args ? "ARGS... " : "");
			if (usage)
				fputs(usage, stdout);
			fsp_config_help();
			return 1;
		} else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
			printf("%s (fsp) %s\n", prog, FSP_VERSION_STRING);
			return 1;
		} else if (!strcmp(a, "-f")) {
			c->foreground = 1;
		} else if (!strcmp(a, "-d")) {
			c->debug = c->foreground = 1;
		} else if (!strcmp(a, "-s")) {
			c->threads = 1;
		} else if (!strncmp(a, "-o", 2)) {
			char *list = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
			if (!list) {
				fprintf(stderr, "%s: -o needs a list of options\n", prog);
				return -EINVAL;
			}
			rc = options(c, list, hook, hook_data);
			if (rc < 0)
				return rc;
		} else {
			fprintf(stderr, "%s: unknown option '%s' (see --help)\n", prog, a);
			return -EINVAL;
		}
	}
	if (npos == 0) {
		fprintf(stderr, "%s: missing mount point (see --help)\n", prog);
		return -EINVAL;
	}
	if (npos - 1 > max_args || (nargs == NULL && npos > 1)) {
		fprintf(stderr, "%s: too many arguments: '%s' (see --help)\n", prog, pos[npos - 2]);
		return -EINVAL;
	}
	for (int i = 0; i < npos - 1; i++)
		args[i] = pos[i];
	if (nargs)
		*nargs = npos - 1;
	c->mountpoint = pos[npos - 1];
	return 0;
}

/* ---- session ---- */

static fsp_session *signal_session;

static void on_signal(int sig)
{
	(void)sig;
	if (signal_session)
		fsp_session_exit(signal_session);
}

int fsp_session_new(const struct fsp_operations *ops, const struct fsp_config *cfg, void *root,
		    void *userdata, fsp_session **out)
{
	fsp_session *s = fsp__calloc(1, sizeof(*s));
	int rc = -ENOMEM;

	if (!s)
		return -ENOMEM;
	/* no-open: no open ever reaches the fs, so it must need no release */
	if ((cfg->no_open && ops->release) || (cfg->no_opendir && ops->releasedir)) {
		fsp_log(0, "-o no_open: this file system keeps per-open state "
			"(it has a release callback)");
		fsp__free(s);
		return -EINVAL;
	}
	s->ops = *ops;
	s->cfg = *cfg;
	s->root = root;
	s->userdata = userdata;
	s->fd = -1;
	s->stats_fd = -1;
	s->trace_fd = -1;
	s->spin_ns = (uint64_t)cfg->spin_us * 1000u;
	if (cfg->trace_file) {
		s->trace_fd = open(cfg->trace_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (s->trace_fd < 0) {
			rc = -errno;
			fsp_log(0, "trace file %s: %s", cfg->trace_file, strerror(-rc));
			goto fail;
		}
	}
	const char *name = program_invocation_short_name;
	s->fsname = strdup(cfg->fsname ? cfg->fsname : name);
	s->subtype = strdup(cfg->subtype ? cfg->subtype : name);
	if (!s->fsname || !s->subtype)
		goto fail;
	rc = fsp__nodes_new(s, &s->nodes);
	if (rc < 0)
		goto fail;
	rc = fsp__handles_new(s, &s->handles);
	if (rc < 0)
		goto fail;
	rc = fsp__nodes_add_root(s->nodes, root);
	if (rc < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	fsp__handles_free(s->handles);
	if (s->nodes) {
		s->ops.forget = NULL;   /* nothing was handed to us yet */
		s->ops.destroy = NULL;
		fsp__nodes_free(s->nodes);
	}
	if (s->trace_fd >= 0)
		close(s->trace_fd);
	free(s->fsname);
	free(s->subtype);
	fsp__free(s);
	return rc;
}

int fsp_session_mount(fsp_session *s)
{
	int rc;
	if (s->mounted)
		return -EBUSY;
	rc = fsp__check_mountpoint(s->cfg.mountpoint, &s->mountpoint);
	if (rc < 0)
		return rc;
	/* Say it now, while the terminal still listens: a daemon that
	 * detached could only tell syslog after INIT. */
	if (s->cfg.io_uring == FSP_IO_URING_ON && !fsp__uring_enabled()) {
		fsp_log(0, "io_uring=on, but the kernel does not offer FUSE over io_uring "
			"(it needs Linux 6.14+ and Y in %s)", FSP__URING_PARAM);
		return -EPROTONOSUPPORT;
	}
	return fsp__mount(s);
}

void fsp_session_exit(fsp_session *s)
{
	s->exit_requested = 1;
}

int fsp_session_run(fsp_session *s)
{
	struct sigaction sa, old[3];
	static const int sigs[3] = { SIGINT, SIGTERM, SIGHUP };
	int rc;

	if (!s->mounted || s->fd < 0)
		return -EINVAL;
	if (s->cfg.handle_signals) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_signal;  /* no SA_RESTART: blocking reads return */
		sigemptyset(&sa.sa_mask);
		signal_session = s;
		for (int i = 0; i < 3; i++)
			sigaction(sigs[i], &sa, &old[i]);
		signal(SIGPIPE, SIG_IGN);
	}
	rc = fsp__init_negotiate(s);
	if (rc < 0)
		goto out;
	if (s->ops.init)
		s->ops.init(s);
	rc = fsp__engine_start(s);
	if (rc < 0) {
		if (rc != -EPROTONOSUPPORT && rc != -EOPNOTSUPP)
			fsp_log(0, "starting workers: %s", strerror(-rc));
		goto out;
	}
	s->started = (int64_t)time(NULL);
	if (s->cfg.stats_socket && fsp__stats_start(s) < 0)
		fsp_log(1, "no stats socket for %s; fspctl stats will not answer", s->mountpoint);
	/* systemd (Type=notify): the mount is up and workers serve it */
	char state[PATH_MAX + 64];
	snprintf(state, sizeof(state), "READY=1\nSTATUS=serving %s\n", s->mountpoint);
	int nrc = fsp__sd_notify(state);
	if (nrc < 0)
		fsp_log(1, "telling $NOTIFY_SOCKET READY=1: %s", strerror(-nrc));
	while (!s->exit_requested && !atomic_load(&s->dead)) {
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	if (s->exit_requested && !atomic_load(&s->dead)) {
		/* Detach the mount; without users the kernel ends the session
		 * and the workers see ENODEV. With users (open files, cwd) we
		 * stop anyway: closing the device aborts the connection. */
		fsp__unmount(s);
		for (int i = 0; i < 20 && !atomic_load(&s->dead); i++) {
			struct timespec ts = { 0, 10 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
	}
	if (nrc == 0)
		fsp__sd_notify("STOPPING=1\n");
out:
	/* the stats thread reads the workers' counters: it goes first */
	fsp__stats_stop(s);
	fsp__engine_stop(s);
	if (s->cfg.handle_signals) {
		for (int i = 0; i < 3; i++)
			sigaction(sigs[i], &old[i], NULL);
		signal_session = NULL;
	}
	return rc < 0 ? rc : 0;
}

void fsp_session_free(fsp_session *s)
{
	if (!s)
		return;
	fsp__stats_stop(s);
	fsp__engine_stop(s);
	fsp__unmount(s);
	/* Handles first: each holds its node. */
	fsp__handles_free(s->handles);
	fsp__nodes_free(s->nodes);
	if (s->ops.destroy)
		s->ops.destroy(s);
	fsp__engine_free(s);
	if (s->fd >= 0)
		close(s->fd);
	if (s->trace_fd >= 0)
		close(s->trace_fd);
	free(s->mountpoint);
	free(s->fsname);
	free(s->subtype);
	fsp__free(s);
}

void *fsp_session_userdata(const fsp_session *s)
{
	return s->userdata;
}

const struct fsp_config *fsp_session_config(const fsp_session *s)
{
	return &s->cfg;
}

void fsp_session_stats(fsp_session *s, struct fsp_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->nodes = fsp__nodes_count(s->nodes);
	st->handles = fsp__handles_count(s->handles);
	/* the slots live as long as the session; threads come and go */
	for (int i = 0; i < s->nslots; i++) {
		struct fsp__worker *w = &s->workers[i];
		if (atomic_load(&w->cur_unique))
			st->inflight++;
		for (int op = 0; op < FSP__OPCODE_MAX; op++) {
			st->requests += FSP__STAT_GET(w->st.requests[op]);
			st->errors += FSP__STAT_GET(w->st.errors[op]);
		}
		st->bytes_read += FSP__STAT_GET(w->st.bytes_read);
		st->bytes_written += FSP__STAT_GET(w->st.bytes_written);
	}
}

/* ---- fsp_main ---- */

static int daemonize(void)
{
	pid_t pid = fork();
	if (pid < 0) {
		fsp_log(0, "fork: %s", strerror(errno));
		return -errno;
	}
	if (pid > 0)
		_exit(0);  /* the mount is up: the parent's job is done */
	setsid();
	if (chdir("/") < 0) {
		/* not fatal */
	}
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	fsp__log_set_detached(1);
	return 0;
}

int fsp_main(int argc, char **argv, const struct fsp_operations *ops, void *root,
	     void *userdata, const char *usage, fsp_opt_hook hook,
	     const struct fsp_config *defaults)
{
	struct fsp_config cfg;
	fsp_session *s = NULL;
	char *source[1] = { NULL };
	int rc, nsource = 0;

	if (defaults)
		cfg = *defaults;
	else
		fsp_config_init(&cfg);
	/* [SOURCE] MOUNTPOINT: mount(8) and fstab always give a source; a
	 * file system without one shows it in /proc/mounts (as tmpfs does). */
	rc = fsp_config_parse(&cfg, argc, argv, usage, hook, userdata, source, 1, &nsource);
	if (rc != 0)
		return rc > 0 ? 0 : 2;
	if (nsource && !cfg.fsname && *source[0] && !strpbrk(source[0], ", \t\n\\"))
		cfg.fsname = source[0];
	rc = fsp_session_new(ops, &cfg, root, userdata, &s);
	if (rc < 0) {
		if (rc == -ENOMEM)  /* other failures were logged where they happened */
			fsp_log(0, "creating the session: out of memory");
		return 1;
	}
	rc = fsp_session_mount(s);
	if (rc < 0)
		goto out;
	if (!cfg.foreground && daemonize() < 0) {
		rc = -1;
		goto out;
	}
	rc = fsp_session_run(s);
out:
	fsp_session_free(s);
	return rc < 0 ? 1 : 0;
}
