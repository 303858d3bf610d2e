/* fspctl — inspect a mounted fsp file system from outside.
 *
 *   fspctl stats MOUNTPOINT [KEY]   counters as "key value" lines (or one value)
 *
 * It asks the daemon over its stats socket and never touches the mounted file
 * system, so it answers even when the file system is stuck. */
#include <fsp/fsp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f)
{
	fputs("usage: fspctl stats MOUNTPOINT [KEY]\n"
	      "       fspctl --help | --version\n\n"
	      "  stats   print the counters of the fsp file system mounted at MOUNTPOINT,\n"
	      "          one \"key value\" per line (nodes, handles, inflight, requests,\n"
	      "          errors, bytes_read, bytes_written, op.NAME, err.NAME and the\n"
	      "          file system's own); with KEY, print only that value.\n\n"
	      "Exit status: 0 ok, 1 no fsp file system answers there, 2 bad usage.\n", f);
}

int main(int argc, char **argv)
{
	static char buf[256 * 1024];

	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	if (argc == 2 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))) {
		printf("fspctl (fsp) %s\n", fsp_version());
		return 0;
	}
	if (argc < 3 || argc > 4 || strcmp(argv[1], "stats") != 0) {
		if (argc >= 2 && strcmp(argv[1], "stats") != 0)
			fprintf(stderr, "fspctl: unknown command '%s' (see --help)\n", argv[1]);
		else
			fprintf(stderr, "fspctl: expected: stats MOUNTPOINT [KEY] (see --help)\n");
		return 2;
	}
	/* a daemon that just mounted serves its counters once INIT is done:
	 * give it a second */
	int n = fsp_stats_query(argv[2], buf, sizeof(buf));
	for (int i = 0; i < 20 && n == -ECONNREFUSED; i++) {
		struct timespec ts = { 0, 50 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		n = fsp_stats_query(argv[2], buf, sizeof(buf));
	}
	if (n < 0) {
		if (n == -ENOENT)
			fprintf(stderr, "fspctl: no FUSE file system is mounted at %s\n", argv[2]);
		else if (n == -EACCES)
			fprintf(stderr, "fspctl: %s: permission denied (the counters of a mount are "
				"for its owner and root)\n", argv[2]);
		else if (n == -ECONNREFUSED || n == -ENOTCONN)
			fprintf(stderr, "fspctl: the file system at %s does not answer (not an fsp "
				"file system, or its daemon is gone)\n", argv[2]);
		else
			fprintf(stderr, "fspctl: %s: %s\n", argv[2], strerror(-n));
		return 1;
	}
	if (argc == 3) {
		fputs(buf, stdout);
		return 0;
	}
	size_t kl = strlen(argv[3]);
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		if (!strncmp(line, argv[3], kl) && line[kl] == ' ') {
			puts(line + kl + 1);
			return 0;
		}
	}
	fprintf(stderr, "fspctl: no counter '%s'\n", argv[3]);
	return 1;
}
