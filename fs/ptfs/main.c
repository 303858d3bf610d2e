/* main.c — fsp-ptfs: mirror a directory (SOURCE) at a mount point.
 *
 *   fsp-ptfs [options] SOURCE MOUNTPOINT
 *
 * Start-up order: options, SOURCE and /proc opened, node table (root node,
 * file handle check), session, mount; then, without -f, the process forks and
 * the parent waits until the child has answered the kernel's INIT (and
 * checked passthrough) so that its exit status says whether the mount works
 * and start-up messages still reach the terminal.
 * See man/fsp-ptfs.1 for the behaviour, ptfs_i.h for the design.
 */
#include "ptfs_i.h"
#include <errno.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

struct ptfs pt = {
	.root_fd = -1,
	.proc_fd = -1,
	.ready_fd = -1,
	.pt_mode = PT_AUTO,
	.fd_cache_max = 4000,
};

static const char usage[] =
	"usage: fsp-ptfs [options] SOURCE MOUNTPOINT\n"
	"\n"
	"Mirror the directory SOURCE at MOUNTPOINT.\n"
	"\n"
	"fsp-ptfs options:\n"
	"  -o passthrough=auto|on|off  file data through kernel passthrough (default auto:\n"
	"                              when the kernel offers it; on: fail without it)\n"
	"  -o fd_cache=N               descriptors kept open for known files (default 4000)\n"
	"  -o allow_other              (as root) every operation runs with the caller's\n"
	"                              uid, gid and groups on SOURCE\n"
	"  entry_timeout/attr_timeout  (default 1 s) how soon changes made directly in\n"
	"                              SOURCE are seen; see fsp-ptfs(1)\n"
	"\n";

static int opt_hook(void *data, const char *key, const char *value)
{
	(void)data;
	if (!strcmp(key, "passthrough")) {
		if (!value || !strcmp(value, "on"))
			pt.pt_mode = PT_ON;
		else if (!strcmp(value, "auto"))
			pt.pt_mode = PT_AUTO;
		else if (!strcmp(value, "off"))
			pt.pt_mode = PT_OFF;
		else {
			fprintf(stderr, "%s: bad value for -o passthrough: '%s' (auto, on or off)\n",
				program_invocation_short_name, value);
			return -EINVAL;
		}
		return 1;
	}
	if (!strcmp(key, "fd_cache")) {
		char *end;
		unsigned long n = value ? strtoul(value, &end, 10) : 0;
		if (!value || !*value || *end || n < 16 || n > 10000000) {
			fprintf(stderr, "%s: bad value for -o fd_cache: '%s' (16 or more)\n",
				program_invocation_short_name, value ? value : "");
			return -EINVAL;
		}
		pt.fd_cache_max = (unsigned)n;
		return 1;
	}
	return 0;
}

/* ---- callbacks that belong to the whole file system ---- */

static void pt_init(fsp_session *s)
{
	pt_passthrough_probe(s);
	pt_janitor_start();
	if (pt.ready_fd >= 0) {
		char status = pt.failed ? 1 : 0;
		ssize_t w = write(pt.ready_fd, &status, 1);
		(void)w;
		close(pt.ready_fd);
		pt.ready_fd = -1;
		if (!pt.failed) {
			/* The parent has reported; we are on our own now:
			 * log lines go to syslog from here on. */
			fsp_log_set_syslog(1);
			int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
			if (fd >= 0) {
				dup2(fd, 0);
				dup2(fd, 1);
				dup2(fd, 2);
				if (fd > 2)
					close(fd);
			}
		}
	}
}

static void pt_destroy(fsp_session *s)
{
	(void)s;
	pt_janitor_stop();
}

static size_t pt_stats(fsp_session *s, char *buf, size_t size)
{
	(void)s;
	size_t n = pt_nodes_stats(buf, size);
	int m = snprintf(buf + n, size - n, "ptfs.passthrough %d\nptfs.switch_creds %d\n",
			 atomic_load(&pt.pt_state), pt.switch_creds ? 1 : 0);
	if (m > 0)
		n += (size_t)m < size - n ? (size_t)m : size - n - 1;
	return n;
}

static const struct fsp_operations ptfs_ops = {
	.init = pt_init,
	.destroy = pt_destroy,
	.lookup = pt_lookup,
	.forget = pt_forget,
	.getattr = pt_getattr,
	.setattr = pt_setattr,
	.readlink = pt_readlink,
	.mknod = pt_mknod,
	.mkdir = pt_mkdir,
	.symlink = pt_symlink,
	.link = pt_link,
	.unlink = pt_unlink,
	.rmdir = pt_rmdir,
	.rename = pt_rename,
	.open = pt_open,
	.create = pt_create,
	.tmpfile = pt_tmpfile,
	.read = pt_read,
	.write = pt_write,
	.flush = pt_flush,
	.release = pt_release,
	.fsync = pt_fsync,
	.fallocate = pt_fallocate,
	.lseek = pt_lseek,
	.copy_file_range = pt_copy_file_range,
	.opendir = pt_opendir,
	.readdir = pt_readdir,
	.releasedir = pt_releasedir,
	.fsyncdir = pt_fsyncdir,
	.statfs = pt_statfs,
	.setxattr = pt_setxattr,
	.getxattr = pt_getxattr,
	.listxattr = pt_listxattr,
	.removexattr = pt_removexattr,
	.access = pt_access,
	.stats = pt_stats,
	.getlk = pt_getlk,
	.setlk = pt_setlk,
	.flock = pt_flock,
};

/* ---- start-up ---- */

static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	/* leave room for open files, directory streams and the library */
	rlim_t room = rl.rlim_cur > 2000 ? rl.rlim_cur / 2 : rl.rlim_cur / 4;
	if (pt.fd_cache_max > room) {
		fsp_log(1, "fd_cache=%u is more than half the open file limit (%llu); using %llu",
			pt.fd_cache_max, (unsigned long long)rl.rlim_cur,
			(unsigned long long)room);
		pt.fd_cache_max = (unsigned)room;
	}
}

/* Is the mount point SOURCE or below it? Mirroring would then reach into
 * our own mount. */
static bool inside_source(const char *mountpoint)
{
	char *src = realpath(pt.source, NULL), *mp = realpath(mountpoint, NULL);
	bool in = false;
	if (src && mp) {
		size_t n = strlen(src);
		in = !strcmp(src, "/") ||
		     (!strncmp(src, mp, n) && (mp[n] == 0 || mp[n] == '/'));
	}
	free(src);
	free(mp);
	return in;
}

/* Fork; the parent waits for the child's INIT status and exits with it. */
static int start_daemon(void)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return -e;
	}
	if (pid > 0) {
		char status = 1;
		ssize_t n;
		close(p[1]);
		do
			n = read(p[0], &status, 1);
		while (n < 0 && errno == EINTR);
		_exit(n == 1 ? status : 1);
	}
	close(p[0]);
	/* /proc/self/fd as opened by the parent names the parent's table */
	int pfd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0)
		return -errno;
	dup3(pfd, pt.proc_fd, O_CLOEXEC);
	close(pfd);
	setsid();
	if (chdir("/") < 0) {
		/* not fatal: nothing uses relative paths from here on */
	}
	pt.ready_fd = p[1];
	return 0;
}

int main(int argc, char **argv)
{
	struct fsp_config cfg;
	struct statfs sfs;
	struct stat st;
	fsp_session *s = NULL;
	char *args[1] = { NULL };
	char *fsname = NULL;
	int nargs = 0, rc, mnt_fd;

	/* The kernel has applied the caller's umask to every mode it sends;
	 * ours must not take more bits away. */
	umask(0);
	fsp_config_init(&cfg);
	rc = fsp_config_parse(&cfg, argc, argv, usage, opt_hook, NULL, args, 1, &nargs);
	if (rc > 0)
		return 0;
	if (rc < 0)
		return 2;
	if (nargs != 1) {
		fprintf(stderr, "%s: missing SOURCE (usage: %s [options] SOURCE MOUNTPOINT)\n",
			program_invocation_short_name, program_invocation_short_name);
		return 2;
	}
	pt.source = args[0];

	pt.root_fd = open(pt.source, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (pt.root_fd < 0 || fstat(pt.root_fd, &st) < 0) {
		fsp_log(0, "source %s: %s", pt.source, strerror(errno));
		return 1;
	}
	pt.root_dev = st.st_dev;
	pt.proc_fd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (pt.proc_fd < 0 || fstatfs(pt.proc_fd, &sfs) < 0 || sfs.f_type != PROC_SUPER_MAGIC) {
		fsp_log(0, "/proc is not mounted: fsp-ptfs needs /proc/self/fd");
		return 1;
	}
	if (inside_source(cfg.mountpoint)) {
		fsp_log(0, "mount point %s is inside the source %s: that would mirror itself",
			cfg.mountpoint, pt.source);
		return 2;
	}
	/* open_by_handle_at needs a real descriptor on the mount (not O_PATH) */
	mnt_fd = open(pt.source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	raise_nofile();
	if (!cfg.fsname) {
		fsname = realpath(pt.source, NULL);
		if (fsname && !strpbrk(fsname, ", \t\n\\"))
			cfg.fsname = fsname;
	}
	if (cfg.writeback_cache) {
		/* Refused rather than wrong: with a writeback cache the kernel
		 * keeps its own mtime, ctime and size, which then differ from
		 * SOURCE's, and the set-id bits a non-owner's write must clear
		 * stay (the write is refused instead). */
		fsp_log(0, "-o writeback_cache is not supported: the kernel's cached times and "
			"sizes would differ from %s's, and writes by non-owners would not clear "
			"set-id bits", pt.source);
		free(fsname);
		return 2;
	}
	pt.switch_creds = cfg.allow_other && geteuid() == 0;
	pt.writeback = cfg.writeback_cache;
	pt.entry_timeout = cfg.entry_timeout;
	pt.attr_timeout = cfg.attr_timeout;
	if (pt.pt_mode != PT_OFF && geteuid() != 0) {
		if (pt.pt_mode == PT_ON) {
			fsp_log(0, "passthrough=on needs root (the kernel allows backing files "
				"only to CAP_SYS_ADMIN)");
			return 1;
		}
		pt.pt_mode = PT_OFF;
		pt.pt_off_why = "passthrough needs root";
	}
	if (pt.pt_mode != PT_OFF && cfg.writeback_cache) {
		/* the kernel turns passthrough off when writeback_cache is on */
		if (pt.pt_mode == PT_ON) {
			fsp_log(0, "passthrough=on and writeback_cache exclude each other");
			return 2;
		}
		pt.pt_mode = PT_OFF;
		pt.pt_off_why = "writeback_cache excludes passthrough";
	}
	cfg.passthrough = pt.pt_mode != PT_OFF;

	rc = pt_creds_init();
	if (rc == 0)
		rc = pt_nodes_init(pt.root_fd, mnt_fd, pt.fd_cache_max);
	if (rc < 0) {
		fsp_log(0, "starting: %s", strerror(-rc));
		return 1;
	}
	pt.root_fd = -1;   /* the root node owns it now */

	rc = fsp_session_new(&ptfs_ops, &cfg, pt.root, &pt, &s);
	if (rc < 0) {
		if (rc == -ENOMEM)  /* other failures were logged where they happened */
			fsp_log(0, "creating the session: out of memory");
		pt_nodes_free();
		return 1;
	}
	pt.s = s;
	rc = fsp_session_mount(s);
	if (rc < 0)
		goto out;
	fsp_log(2, "mirroring %s at %s; %s", pt.source, cfg.mountpoint,
		pt.handles ? "nodes kept by file handle" : "nodes kept by descriptor");
	if (pt.switch_creds)
		fsp_log(2, "allow_other: operations run with the caller's credentials");
	if (!cfg.foreground) {
		rc = start_daemon();
		if (rc < 0) {
			fsp_log(0, "fork: %s", strerror(-rc));
			goto out;
		}
	}
	rc = fsp_session_run(s);
	if (rc < 0)
		fsp_log(0, "serving %s: %s", cfg.mountpoint, strerror(-rc));
out:
	fsp_session_free(s);
	pt_nodes_free();
	free(fsname);
	return rc < 0 || pt.failed ? 1 : 0;
}
