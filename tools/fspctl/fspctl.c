/* fspctl — the fsp mounts of this machine, from outside.
 *
 *   fspctl list [--json]                     every fsp mount: where, what, who, counters
 *   fspctl stats [--json] MOUNTPOINT [KEY]   counters as "key value" lines (or one value)
 *   fspctl stop [--timeout S] [--force] MOUNTPOINT
 *                                            unmount, wait for the daemon to exit
 *
 * It asks each daemon over its stats socket (found by the mount's device
 * number, see lib/stats.c) and never touches a mounted file system to read
 * it, so it answers even when the file system is stuck. `list` reads
 * /proc/self/mountinfo only; `stats` and `stop` resolve their MOUNTPOINT.
 * Exit status: 0 ok, 1 the thing asked for failed (said on stderr), 2 usage.
 */
#include <fsp/fsp.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ANSWER_MAX (256 * 1024)

static void usage(FILE *f)
{
	fputs("usage: fspctl list [--json]\n"
	      "       fspctl stats [--json] MOUNTPOINT [KEY]\n"
	      "       fspctl stop [--timeout SECONDS] [--force] MOUNTPOINT\n"
	      "       fspctl --help | --version\n\n"
	      "  list    every fsp file system mounted on this machine (that this user may\n"
	      "          ask): mount point, file system, daemon pid, uptime, transport,\n"
	      "          nodes, handles, requests\n"
	      "  stats   the counters of the fsp file system at MOUNTPOINT, one \"key value\"\n"
	      "          per line (nodes, handles, inflight, requests, errors, bytes_read,\n"
	      "          bytes_written, op.NAME, err.NAME, pid, started, transport and the\n"
	      "          file system's own); with KEY, only that value\n"
	      "  stop    unmount MOUNTPOINT and wait until its daemon has exited\n\n"
	      "Options:\n"
	      "  --json             list, stats: one JSON document instead of text\n"
	      "  --timeout SECONDS  stop: how long to wait for the daemon (default 10)\n"
	      "  --force            stop: a busy mount is detached (lazy unmount) and its\n"
	      "                     daemon asked to end (SIGTERM) instead of failing\n"
	      "  -h, --help         print this help and exit\n"
	      "  -V, --version      print the version and exit\n\n"
	      "Exit status: 0 ok, 1 failed (no fsp file system answers there, busy, the\n"
	      "daemon did not exit in time), 2 bad usage.\n", f);
}

/* ---- answers: "key value" lines ---- */

/* The value of key in an answer, copied into out (truncated to size), or NULL. */
static const char *value_of(const char *answer, const char *key, char *out, size_t size)
{
	size_t kl = strlen(key);
	for (const char *l = answer; *l; ) {
		const char *nl = strchr(l, '\n');
		size_t ll = nl ? (size_t)(nl - l) : strlen(l);
		if (ll > kl && !strncmp(l, key, kl) && l[kl] == ' ') {
			size_t vl = ll - kl - 1;
			if (vl >= size)
				vl = size - 1;
			memcpy(out, l + kl + 1, vl);
			out[vl] = 0;
			return out;
		}
		if (!nl)
			break;
		l = nl + 1;
	}
	return NULL;
}

static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static bool is_number(const char *s)
{
	if (*s == '-')
		s++;
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

static void json_value(const char *v)
{
	if (is_number(v) && strlen(v) < 20)
		fputs(v, stdout);
	else
		json_string(v);
}

/* An answer as one JSON object (keys in the order given). */
static void json_answer(const char *answer)
{
	bool first = true;
	char *copy = strdup(answer), *save = NULL;
	putchar('{');
	for (char *l = copy ? strtok_r(copy, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
		char *sp = strchr(l, ' ');
		if (!sp)
			continue;
		*sp = 0;
		printf("%s", first ? "" : ", ");
		json_string(l);
		fputs(": ", stdout);
		json_value(sp + 1);
		first = false;
	}
	puts("}");
	free(copy);
}

static const char *why(int rc)
{
	switch (rc) {
	case -ENOENT:
		return "no FUSE file system is mounted there";
	case -EACCES:
		return "permission denied (the counters of a mount are for its owner and root)";
	case -ECONNREFUSED:
	case -ENOTCONN:
		return "it does not answer (not an fsp file system, or its daemon is gone)";
	case -ETIMEDOUT:
		return "its daemon does not answer within 2 s (stopped or stuck)";
	default:
		return strerror(-rc);
	}
}

/* Ask the daemon at mountpoint; a daemon that just mounted serves its
 * counters once INIT is done: give it a second. */
static int query(const char *mountpoint, char *buf, size_t size)
{
	int n = fsp_stats_query(mountpoint, buf, size);
	for (int i = 0; i < 20 && n == -ECONNREFUSED; i++) {
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		n = fsp_stats_query(mountpoint, buf, size);
	}
	return n;
}

/* ---- list ---- */

/* mountinfo escapes space, tab, newline and backslash as \ooo */
static void unescape(char *s)
{
	char *d = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*d++ = *s;
		}
	}
	*d = 0;
}

static void uptime_text(long long secs, char *buf, size_t size)
{
	if (secs < 0)
		snprintf(buf, size, "-");
	else if (secs < 60)
		snprintf(buf, size, "%llds", secs);
	else if (secs < 3600)
		snprintf(buf, size, "%lldm%02llds", secs / 60, secs % 60);
	else if (secs < 86400)
		snprintf(buf, size, "%lldh%02lldm", secs / 3600, secs / 60 % 60);
	else
		snprintf(buf, size, "%lldd%02lldh", secs / 86400, secs / 3600 % 24);
}

static int cmd_list(bool json)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL, *answer = malloc(ANSWER_MAX);
	size_t cap = 0;
	int count = 0;

	if (!f || !answer) {
		fprintf(stderr, "fspctl: /proc/self/mountinfo: %s\n", strerror(errno));
		free(answer);
		if (f)
			fclose(f);
		return 1;
	}
	if (json)
		fputs("[", stdout);
	else
		printf("%-12s %7s %8s %-9s %8s %7s %10s  %s\n", "FS", "PID", "UPTIME",
		       "TRANSPORT", "NODES", "HANDLES", "REQUESTS", "MOUNTPOINT");
	while (getline(&line, &cap, f) > 0) {
		unsigned maj, min;
		char mp[PATH_MAX + 1], fstype[256], source[PATH_MAX + 1];
		char *sep = strstr(line, " - ");
		if (sscanf(line, "%*u %*u %u:%u %*s %4096s", &maj, &min, mp) != 3 || !sep ||
		    sscanf(sep + 3, "%255s %4096s", fstype, source) != 2)
			continue;
		if (strncmp(fstype, "fuse", 4) != 0)
			continue;
		unescape(mp);
		unescape(source);
		int n = fsp_stats_query_dev(maj, min, answer, ANSWER_MAX);
		/* a FUSE mount that is not ours says nothing: it is not listed,
		 * unless its type says it is an fsp program's */
		if (n < 0 && strncmp(fstype, "fuse.fsp-", 9) != 0)
			continue;
		char pid[32] = "-", started[32] = "", transport[32] = "-", nodes[32] = "-";
		char handles[32] = "-", requests[32] = "-", inflight[32] = "-", fsname[PATH_MAX + 1];
		const char *fs = strncmp(fstype, "fuse.", 5) ? fstype : fstype + 5;
		long long up = -1;
		snprintf(fsname, sizeof(fsname), "%s", source);
		if (n >= 0) {
			value_of(answer, "pid", pid, sizeof(pid));
			value_of(answer, "transport", transport, sizeof(transport));
			value_of(answer, "nodes", nodes, sizeof(nodes));
			value_of(answer, "handles", handles, sizeof(handles));
			value_of(answer, "requests", requests, sizeof(requests));
			value_of(answer, "inflight", inflight, sizeof(inflight));
			value_of(answer, "fsname", fsname, sizeof(fsname));
			if (value_of(answer, "started", started, sizeof(started)) && atoll(started) > 0)
				up = (long long)time(NULL) - atoll(started);
		}
		if (json) {
			printf("%s\n  {\"mountpoint\": ", count ? "," : "");
			json_string(mp);
			fputs(", \"fs\": ", stdout);
			json_string(fs);
			fputs(", \"fsname\": ", stdout);
			json_string(fsname);
			printf(", \"device\": \"%u:%u\", \"answers\": %s", maj, min, n >= 0 ? "true" : "false");
			if (n >= 0) {
				printf(", \"pid\": %s, \"started\": %s, \"uptime\": %lld, \"transport\": ",
				       is_number(pid) ? pid : "null",
				       is_number(started) ? started : "null", up);
				json_string(transport);
				printf(", \"nodes\": %s, \"handles\": %s, \"inflight\": %s, \"requests\": %s",
				       is_number(nodes) ? nodes : "null", is_number(handles) ? handles : "null",
				       is_number(inflight) ? inflight : "null",
				       is_number(requests) ? requests : "null");
			} else {
				fputs(", \"error\": ", stdout);
				json_string(why(n));
			}
			putchar('}');
		} else {
			char upt[32];
			uptime_text(up, upt, sizeof(upt));
			printf("%-12s %7s %8s %-9s %8s %7s %10s  %s%s\n", fs, pid, upt,
			       n >= 0 ? transport : "-", nodes, handles, requests, mp,
			       n >= 0 ? "" : "  (does not answer)");
		}
		count++;
	}
	if (json)
		puts(count ? "\n]" : "]");
	free(line);
	free(answer);
	fclose(f);
	return 0;
}

/* ---- stats ---- */

static int cmd_stats(const char *mountpoint, const char *key, bool json)
{
	static char buf[ANSWER_MAX];
	char val[4096];
	int n = query(mountpoint, buf, sizeof(buf));

	if (n < 0) {
		fprintf(stderr, "fspctl: %s: %s\n", mountpoint, why(n));
		return 1;
	}
	if (key) {
		if (!value_of(buf, key, val, sizeof(val))) {
			fprintf(stderr, "fspctl: no counter '%s'\n", key);
			return 1;
		}
		if (json) {
			json_value(val);
			putchar('\n');
		} else {
			puts(val);
		}
		return 0;
	}
	if (json)
		json_answer(buf);
	else
		fputs(buf, stdout);
	return 0;
}

/* ---- stop ---- */

static bool alive(pid_t pid)
{
	char path[64], st[512];
	if (kill(pid, 0) < 0 && errno == ESRCH)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	size_t n = fread(st, 1, sizeof(st) - 1, f);
	fclose(f);
	st[n] = 0;
	const char *p = strrchr(st, ')');   /* the name may hold anything */
	return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

/* Unmount the way this user can: umount(2) as root, fusermount3 -u
 * otherwise (the mount is the user's own). lazy: detach even if busy.
 * 0 or -errno; -EBUSY when in use. */
static int unmount(const char *mp, bool lazy)
{
	if (geteuid() == 0)
		return umount2(mp, lazy ? MNT_DETACH : 0) < 0 ? -errno : 0;
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		execlp("fusermount3", "fusermount3", lazy ? "-uz" : "-u", "--", mp, (char *)NULL);
		fprintf(stderr, "fspctl: fusermount3: %s\n", strerror(errno));
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	return WIFEXITED(st) && WEXITSTATUS(st) == 127 ? -ENOENT : -EBUSY;
}

static int cmd_stop(const char *mountpoint, double timeout, bool force)
{
	static char buf[ANSWER_MAX];
	char val[64], *real = NULL;
	int rc, n = query(mountpoint, buf, sizeof(buf));
	pid_t pid;

	if (n < 0) {
		fprintf(stderr, "fspctl: %s: %s\n", mountpoint, why(n));
		return 1;
	}
	if (!value_of(buf, "pid", val, sizeof(val)) || !is_number(val) || atoi(val) <= 0) {
		fprintf(stderr, "fspctl: %s: the daemon does not say its pid (an older fsp?)\n",
			mountpoint);
		return 1;
	}
	pid = (pid_t)atoi(val);
	real = realpath(mountpoint, NULL);
	if (!real) {
		fprintf(stderr, "fspctl: %s: %s\n", mountpoint, strerror(errno));
		return 1;
	}
	rc = unmount(real, false);
	if (rc == -EBUSY && force) {
		fprintf(stderr, "fspctl: %s is busy: detaching it and asking pid %d to end\n",
			real, (int)pid);
		rc = unmount(real, true);
		if (kill(pid, SIGTERM) < 0 && errno != ESRCH)
			fprintf(stderr, "fspctl: SIGTERM to pid %d: %s\n", (int)pid, strerror(errno));
	}
	if (rc < 0) {
		if (rc == -EBUSY)
			fprintf(stderr, "fspctl: %s is busy (open files or a working directory "
				"there; --force detaches it anyway)\n", real);
		else
			fprintf(stderr, "fspctl: unmounting %s: %s\n", real, strerror(-rc));
		free(real);
		return 1;
	}
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if (!alive(pid))
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		double el = (double)(now.tv_sec - t0.tv_sec) + (now.tv_nsec - t0.tv_nsec) / 1e9;
		if (el >= timeout) {
			fprintf(stderr, "fspctl: %s is unmounted, but its daemon (pid %d) is still "
				"running after %g s\n", real, (int)pid, timeout);
			free(real);
			return 1;
		}
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	printf("fspctl: %s unmounted; daemon pid %d exited\n", real, (int)pid);
	free(real);
	return 0;
}

/* ---- main ---- */

int main(int argc, char **argv)
{
	const char *cmd = NULL, *pos[3];
	int npos = 0;
	bool json = false, force = false;
	double timeout = 10;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "--version") || !strcmp(a, "-V")) {
			printf("fspctl (fsp) %s\n", fsp_version());
			return 0;
		} else if (!strcmp(a, "--json")) {
			json = true;
		} else if (!strcmp(a, "--force")) {
			force = true;
		} else if (!strcmp(a, "--timeout") || !strncmp(a, "--timeout=", 10)) {
			const char *v = a[9] == '=' ? a + 10 : (i + 1 < argc ? argv[++i] : NULL);
			char *end;
			timeout = v ? strtod(v, &end) : -1;
			if (!v || !*v || *end || !(timeout >= 0) || timeout > 86400) {
				fprintf(stderr, "fspctl: --timeout needs seconds, 0 to 86400\n");
				return 2;
			}
		} else if (!strcmp(a, "--")) {
			for (i++; i < argc; i++)
				if (npos < 3)
					pos[npos++] = argv[i];
				else
					npos = 4;
		} else if (a[0] == '-' && a[1]) {
			fprintf(stderr, "fspctl: unknown option '%s' (see --help)\n", a);
			return 2;
		} else if (!cmd) {
			cmd = a;
		} else if (npos < 3) {
			pos[npos++] = a;
		} else {
			npos = 4;
		}
	}
	if (!cmd) {
		fprintf(stderr, "fspctl: expected a command: list, stats or stop (see --help)\n");
		return 2;
	}
	if (!strcmp(cmd, "list")) {
		if (npos) {
			fprintf(stderr, "fspctl: list takes no arguments (see --help)\n");
			return 2;
		}
		return cmd_list(json);
	}
	if (!strcmp(cmd, "stats")) {
		if (npos < 1 || npos > 2) {
			fprintf(stderr, "fspctl: expected: stats MOUNTPOINT [KEY] (see --help)\n");
			return 2;
		}
		return cmd_stats(pos[0], npos == 2 ? pos[1] : NULL, json);
	}
	if (!strcmp(cmd, "stop")) {
		if (npos != 1) {
			fprintf(stderr, "fspctl: expected: stop MOUNTPOINT (see --help)\n");
			return 2;
		}
		return cmd_stop(pos[0], timeout, force);
	}
	fprintf(stderr, "fspctl: unknown command '%s' (see --help)\n", cmd);
	return 2;
}
