/* log.c — one line per event, to stderr, or to syslog once detached.
 * Lines are written with a single write so concurrent workers don't interleave. */
#include "fsp_i.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>
#include <unistd.h>

int fsp__debug_level;
int fsp__log_quiet;
static int detached;

void fsp__log_set_detached(int d)
{
	detached = d;
	if (d)
		openlog(program_invocation_short_name, LOG_PID, LOG_DAEMON);
}

void fsp_log_set_syslog(int on)
{
	fsp__log_set_detached(on);
}

const char *fsp_version(void)
{
	return FSP_VERSION_STRING;
}

void fsp_log(int level, const char *fmt, ...)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char line[1024];
	int saved = errno;
	va_list ap;

	if (fsp__log_quiet && level > 0)
		return;
	if (level < 0)
		level = 0;
	if (level > 3)
		level = 3;
	va_start(ap, fmt);
	if (detached) {
		vsnprintf(line, sizeof(line), fmt, ap);
		syslog(prio[level], "%s", line);
	} else {
		int n = snprintf(line, sizeof(line), "%s: %s%s", program_invocation_short_name,
				 level == 2 || level == 3 ? "" : names[level],
				 level == 2 || level == 3 ? "" : ": ");
		if (n < 0)
			n = 0;
		if ((size_t)n < sizeof(line))
			n += vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		if ((size_t)n >= sizeof(line) - 1)
			n = sizeof(line) - 2;
		line[n++] = '\n';
		ssize_t w = write(STDERR_FILENO, line, n);
		(void)w;
	}
	va_end(ap);
	errno = saved;
}
