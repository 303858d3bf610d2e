/*
 * fsp-stress: leak accounting through an external command (--counters),
 * e.g. "fspctl stats MNT", which prints "key value" lines.  After a round
 * has removed everything and the kernel has dropped its caches, the file
 * system should be back to the baseline; FORGETs arrive asynchronously,
 * so the end measurement is retried for a while before it counts.
 */
#include "fsp-stress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const watched[] = { "nodes", "handles", "inflight", "mem_bytes" };
#define NWATCHED (sizeof(watched) / sizeof(watched[0]))

void counters_free(struct counters *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->keys[i]);
	free(c->keys);
	free(c->vals);
	memset(c, 0, sizeof(*c));
}

int counters_read(const char *cmd, struct counters *c)
{
	size_t cap = 0;
	char *line = NULL;
	FILE *f;
	int st;

	memset(c, 0, sizeof(*c));
	fflush(NULL);
	f = popen(cmd, "r");
	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		char key[128];
		long long v;

		/* Lenient about separators: "key value", "key: value", "key=value". */
		for (char *s = line; *s; s++)
			if (*s == ':' || *s == '=')
				*s = ' ';
		if (sscanf(line, "%127s %lld", key, &v) != 2)
			continue;
		c->keys = xrealloc(c->keys, (c->n + 1) * sizeof(*c->keys));
		c->vals = xrealloc(c->vals, (c->n + 1) * sizeof(*c->vals));
		c->keys[c->n] = xstrdup(key);
		c->vals[c->n++] = v;
	}
	free(line);
	st = pclose(f);
	if (st == -1)
		return -errno;
	if (!WIFEXITED(st) || WEXITSTATUS(st)) {
		note("--counters: '%s' %s %d", cmd, WIFEXITED(st) ? "exited with status"
		     : "was killed by signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
		counters_free(c);
		return -EIO;
	}
	return 0;
}

static bool get(const struct counters *c, const char *key, long long *v)
{
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->keys[i], key)) {
			*v = c->vals[i];
			return true;
		}
	return false;
}

static void settle_caches(void)
{
	sync();
	if (geteuid() == 0)
		drop_caches(3);
}

int counters_check(const char *cmd, const struct counters *base, int round)
{
	struct counters now = { 0 };
	bool ok = false;
	int r = 0;

	for (int attempt = 0; attempt < 10 && !ok; attempt++) {
		settle_caches();
		sleep_ms(attempt ? 200 : 100);
		counters_free(&now);
		r = counters_read(cmd, &now);
		if (r < 0)
			continue;
		ok = true;
		for (size_t k = 0; k < NWATCHED; k++) {
			long long b, v;

			if (get(base, watched[k], &b) && (!get(&now, watched[k], &v) || v != b))
				ok = false;
		}
	}
	if (r < 0) {
		fail_reason("--counters command failed at the end of round %d (%s)", round,
			    strerror(-r));
		counters_free(&now);
		return r;
	}
	for (size_t k = 0; k < NWATCHED; k++) {
		long long b, v = -1;

		if (!get(base, watched[k], &b))
			continue;
		if (!get(&now, watched[k], &v))
			fail_reason("counter %s: baseline %lld, now missing", watched[k], b);
		else if (v != b)
			fail_reason("counter %s: baseline %lld, now %lld", watched[k], b, v);
		else
			say("[r%d] counter %s: baseline %lld, now %lld", round, watched[k], b, v);
		report_counter(round, watched[k], b, v);
	}
	counters_free(&now);
	return ok ? 0 : -EIO;
}
