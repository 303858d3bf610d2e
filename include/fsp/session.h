/* fsp/session.h — a mounted file system: options, mount, run, unmount.
 *
 * Lifecycle (all from one thread, the "main" thread, unless written):
 *
 *   fsp_config_init(&cfg);              defaults
 *   fsp_config_parse(&cfg, argc, argv)  FUSE-style command line (optional)
 *   fsp_session_new(&ops, &cfg, root, userdata, &s)
 *   fsp_session_mount(s)                mount(2) as root, fusermount3 otherwise
 *   fsp_session_run(s)                  serve until unmounted or signalled
 *   fsp_session_free(s)                 unmount if needed, release every open
 *                                       handle and forget every node (each
 *                                       exactly once), then ops->destroy
 *
 * fsp_main() does all of it for the common case.
 */
#ifndef FSP_SESSION_H
#define FSP_SESSION_H

#include <fsp/common.h>
#include <fsp/ops.h>

/* A -o option the library does not know is offered to the file system
 * through this hook: return 1 if taken, 0 if unknown (the library prints
 * "unknown option"), or a negative errno if the value is bad (the hook has
 * printed a one-line message naming the option). */
typedef int (*fsp_opt_hook)(void *userdata, const char *key, const char *value);

/* Transport choice (fsp_config.io_uring). */
enum fsp_io_uring { FSP_IO_URING_AUTO = 0, FSP_IO_URING_ON = 1, FSP_IO_URING_OFF = 2 };

struct fsp_config {
	const char *mountpoint;  /* required; borrowed, must outlive the session */
	const char *fsname;      /* shown in /proc/mounts (default: program name) */
	const char *subtype;     /* type becomes fuse.<subtype> (default: program name) */
	int foreground;          /* -f: stay in the foreground */
	int debug;               /* -d: trace every request to stderr (implies -f) */
	int threads;             /* -o threads=N; 0 = from the CPU count */
	unsigned spin_us;        /* -o spin=US: after a request, one worker polls
				    for the next this long before sleeping
				    (default 50; 0 = every worker sleeps) */
	int read_only;           /* -o ro */
	int allow_other;         /* -o allow_other */
	int default_permissions; /* kernel checks permissions (default 1; -o no_default_permissions) */
	int writeback_cache;     /* -o writeback_cache: the kernel caches writes */
	int auto_unmount;        /* unused by the library for now; accepted */
	unsigned max_write;      /* -o max_write=BYTES (default 1 MiB) */
	unsigned read_ahead_kb;  /* -o read_ahead_kb=N: the mount's read-ahead, set
				    on its bdi after INIT (needs root; 0 = the
				    kernel's default, 128) */
	double entry_timeout;    /* -o entry_timeout=S (default 1.0) */
	double attr_timeout;     /* -o attr_timeout=S (default 1.0) */
	double negative_timeout; /* -o negative_timeout=S (default 0) */
	int handle_signals;      /* SIGINT/SIGTERM/SIGHUP unmount (default 1) */
	int stats_socket;        /* serve `fspctl stats` (default 1) */
	int passthrough;         /* ask the kernel for passthrough I/O (fs sets) */
	int handle_killpriv;     /* the fs clears set-id bits itself on writes with
				    FSP_WRITE_KILL_SUIDGID and setattrs with
				    FSP_SET_KILL_SUIDGID, so the kernel needs no
				    security.capability lookup per write (fs sets) */
	int no_open;             /* the fs keeps no per-open state for files (fs
				    sets): where the kernel supports it, open(2)
				    costs no OPEN and no RELEASE. The open callback
				    is then not called for open(2) and the kernel
				    makes files with MKNOD (no CREATE, no RELEASE)
				    when the fs has mknod; O_TRUNC comes as a
				    setattr of size 0; read, write, flush, fsync,
				    fallocate, lseek, copy_file_range get fh NULL.
				    The node stays held while the file is open
				    (the kernel forgets no open inode). */
	int no_opendir;          /* the same for directories: opendir and
				    releasedir are not called, readdir gets fh
				    NULL and its offsets must be stable by
				    themselves; the kernel may cache the entries
				    (as FSP_OPEN_CACHE_DIR) */
	const char *mount_opts;  /* extra options passed to mount as-is (borrowed) */
	unsigned long mount_flags; /* MS_* flags; nosuid,nodev by default (-o suid,dev) */
	int io_uring;            /* -o io_uring=auto|on|off: FSP_IO_URING_* (default
				    auto: the ring when the kernel offers it and
				    the machine has 8 CPUs or more) */
	unsigned uring_depth;    /* -o uring_depth=N: ring entries per CPU queue
				    (default 0: from the thread count) */
	const char *trace_file;  /* -o trace=FILE: append every request received, as
				    records "k" (1 byte, 0) + length (2 bytes LE) + the
				    request; the fuzzer's seed corpus format */
};

/* Defaults into *cfg. */
FSP_API void fsp_config_init(struct fsp_config *cfg);

/* Parse a FUSE-style command line: [options] MOUNTPOINT, where options are
 * -f, -d, -s (one thread), -o opt[,opt...], -h/--help, -V/--version.
 * Options of mount(8) and fstab that mean nothing to a daemon (defaults,
 * auto, noauto, nofail, _netdev, user, nouser, users, owner, group, loop,
 * x-*, X-*, comment=...) are accepted and ignored, so that the program runs
 * from mount.fuse3 (`mount -t fuse.PROG SOURCE DIR -o OPTS`, fstab).
 * Non-option arguments before the last are returned in order through
 * args/nargs (pointers into argv; may be NULL if none are expected); the last
 * is the mount point. -o options the library does not know go to hook.
 * Returns 0, 1 when --help or --version was handled (print nothing more, exit
 * 0), or -EINVAL after printing a one-line message naming the problem.
 * usage: the program's own help text, printed before the library's options;
 * when it starts with "usage:" it replaces the library's synopsis line. */
FSP_API int fsp_config_parse(struct fsp_config *cfg, int argc, char **argv,
			     const char *usage, fsp_opt_hook hook, void *hook_data,
			     char **args, int max_args, int *nargs);

/* Print the options the library knows, for a --help text. */
FSP_API void fsp_config_help(void);

/* Make a session. ops and cfg are copied; root is the file system's root
 * object (node FSP_ROOT_INO); userdata is returned by fsp_session_userdata().
 * Returns 0 and *out, or -ENOMEM / -EINVAL. */
FSP_API int fsp_session_new(const struct fsp_operations *ops, const struct fsp_config *cfg,
			    void *root, void *userdata, fsp_session **out);

/* Mount at cfg->mountpoint. Prints a clear message and returns a negative
 * errno when the mount point is missing, not a directory, busy, stale
 * (-ENOTCONN; the message suggests `fusermount3 -u`), when /dev/fuse is
 * missing, or when mounting is not permitted. */
FSP_API int fsp_session_mount(fsp_session *s);

/* Serve requests until the file system is unmounted, a signal asks to stop,
 * or fsp_session_exit() is called. Workers are started as needed, up to
 * cfg->threads: while fewer than that run callbacks, some worker is always
 * waiting for the next request, so a callback may block as long as it likes
 * without delaying requests it does not hold up itself. Callbacks run on
 * worker threads with all signals blocked; the library never signals a
 * thread that may be inside a callback. Returns 0 on a clean end, a negative
 * errno on a fatal device error (or -EPROTONOSUPPORT for io_uring=on where
 * the kernel does not offer it). */
FSP_API int fsp_session_run(fsp_session *s);

/* Ask run() to stop: unmounts (lazily) so that the kernel ends the session.
 * Async-signal-safe; any thread. */
FSP_API void fsp_session_exit(fsp_session *s);

/* Unmount if still mounted, release and forget everything, call destroy,
 * free the session. NULL is a no-op. */
FSP_API void fsp_session_free(fsp_session *s);

FSP_API void *fsp_session_userdata(const fsp_session *s);
FSP_API const struct fsp_config *fsp_session_config(const fsp_session *s);

/* Counters, readable at any time from any thread (also from outside with
 * `fspctl stats MOUNTPOINT`). */
struct fsp_stats {
	uint64_t nodes;      /* nodes the library holds (the root included) */
	uint64_t handles;    /* open file and directory handles */
	uint64_t inflight;   /* requests being served now */
	uint64_t requests;   /* requests served in all */
	uint64_t errors;     /* of those, answered with an error */
	uint64_t bytes_read;
	uint64_t bytes_written;
};
FSP_API void fsp_session_stats(fsp_session *s, struct fsp_stats *st);

/* From any process: ask the fsp file system mounted at mountpoint for its
 * counters, as "key value\n" lines (the keys of struct fsp_stats, then
 * per-opcode counts "op.NAME N" / "err.NAME N", then the file system's own).
 * Does not touch the mounted file system itself, so it answers even when the
 * file system is stuck. Returns the length written into buf (NUL-terminated,
 * truncated to size-1), or -ENOENT (no fsp mount there), -ECONNREFUSED, ... */
FSP_API int fsp_stats_query(const char *mountpoint, char *buf, size_t size);

/* The same for the FUSE mount of device number major:minor (the third field
 * of /proc/self/mountinfo), without resolving a path: what `fspctl list`
 * uses for every mount of the machine. The answer also names who serves it:
 * "pid N", "started UNIX_SECONDS", "transport dev|io_uring", "version V",
 * "fsname", "subtype", "mountpoint". Same returns as fsp_stats_query;
 * both give -ETIMEDOUT when the daemon takes the connection but writes
 * nothing for 2 s (stopped, or wedged). */
FSP_API int fsp_stats_query_dev(unsigned major, unsigned minor, char *buf, size_t size);

/* Everything for the common program: parse argv ([options] [SOURCE]
 * MOUNTPOINT; SOURCE, which mount(8) always gives, becomes the fsname when
 * -o fsname= does not say otherwise), starting from *defaults
 * when not NULL, else fsp_config_init; mount, detach into the background
 * unless -f, serve, clean up. -o options the library does not know go to
 * hook(userdata, ...). Returns the process exit status (0, 1 on failure, 2 on
 * bad usage). */
FSP_API int fsp_main(int argc, char **argv, const struct fsp_operations *ops,
		     void *root, void *userdata, const char *usage,
		     fsp_opt_hook hook, const struct fsp_config *defaults);

/* Log a line to stderr (and syslog when detached) with the program name.
 * level: 0 error, 1 warning, 2 info, 3 debug. */
FSP_API void fsp_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Send fsp_log lines to syslog (on) or stderr (off). fsp_main switches to
 * syslog when it detaches; a program that detaches itself calls this. */
FSP_API void fsp_log_set_syslog(int on);

#endif
