/*
 * fsp-stress: everything the person (or the CI job) reads — phase lines,
 * notes, mismatches, the verdict, and the JSON summary that replaces them
 * with --json.  Output is serialised by one lock because phases report
 * from many threads.
 */
#include "fsp-stress.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_NOTES 100

_Atomic uint64_t g_verified, g_churn_ops;
_Atomic int g_rounds_done;

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t n_mismatch;
static char *first_mismatch[FSS_SHOW_ERRORS];
static char *notes[MAX_NOTES];
static size_t n_notes;
static char *reason;
static struct phase **phases;
static size_t n_phases;
static struct {
	int round;
	char key[32];
	long long base, now;
} ctrs[64];
static size_t n_ctrs;
static _Atomic pid_t child;
static atomic_int dying;
static double t_start;

void report_init(void)
{
	t_start = now_mono();
}

struct phase *phase_begin(int round, const char *name)
{
	struct phase *p = xcalloc(1, sizeof(*p));

	p->round = round;
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->t0 = now_mono();
	pthread_mutex_lock(&out_lock);
	phases = xrealloc(phases, (n_phases + 1) * sizeof(*phases));
	phases[n_phases++] = p;
	pthread_mutex_unlock(&out_lock);
	return p;
}

void phase_set(struct phase *p, const char *key, uint64_t val)
{
	for (int i = 0; i < p->nextra; i++)
		if (!strcmp(p->extra[i].key, key)) {
			p->extra[i].val = val;
			return;
		}
	if (p->nextra == PHASE_EXTRA)
		return;
	snprintf(p->extra[p->nextra].key, sizeof(p->extra[0].key), "%s", key);
	p->extra[p->nextra++].val = val;
}

static double rate(double v, double secs)
{
	return secs > 0 ? v / secs : 0;
}

void phase_end(struct phase *p)
{
	char buf[1024];
	size_t off = 0;

	p->secs = now_mono() - p->t0;
	for (int i = 0; i < p->nextra && off < sizeof(buf); i++)
		off += snprintf(buf + off, sizeof(buf) - off, "%s%llu %s", i ? ", " : "",
				(unsigned long long)p->extra[i].val, p->extra[i].key);
	if (!off)
		snprintf(buf, sizeof(buf), "%llu ops", (unsigned long long)p->ops);
	say("[r%d] %-12s %s; %.1f MB in %.2f s (%.1f MB/s, %.0f ops/s)%s", p->round, p->name,
	    buf, p->bytes / 1e6, p->secs, rate(p->bytes / 1e6, p->secs), rate(p->ops, p->secs),
	    p->errors ? " -- ERRORS" : "");
}

void say(const char *fmt, ...)
{
	va_list ap;

	if (opt.quiet || opt.json)
		return;
	pthread_mutex_lock(&out_lock);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	pthread_mutex_unlock(&out_lock);
}

void note(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	if (!s)
		return;
	pthread_mutex_lock(&out_lock);
	if (!opt.quiet && !opt.json)
		fprintf(stderr, "fsp-stress: %s\n", s);
	if (n_notes < MAX_NOTES)
		notes[n_notes++] = s;
	else
		free(s);
	pthread_mutex_unlock(&out_lock);
}

void mismatch(const char *fmt, ...)
{
	uint64_t n = ++n_mismatch;
	va_list ap;
	char *s;

	if (n > FSS_SHOW_ERRORS)
		return;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	if (!s)
		return;
	pthread_mutex_lock(&out_lock);
	first_mismatch[n - 1] = s;
	if (!opt.json) {
		printf("  MISMATCH: %s\n", s);
		if (n == FSS_SHOW_ERRORS)
			printf("  (further mismatches are counted, not shown)\n");
		fflush(stdout);
	}
	pthread_mutex_unlock(&out_lock);
}

void fail_reason(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	if (!s)
		return;
	pthread_mutex_lock(&out_lock);
	if (!opt.json)
		printf("  FAILURE: %s\n", s);
	if (!reason)
		reason = s;
	else
		free(s);
	pthread_mutex_unlock(&out_lock);
}

uint64_t mismatch_count(void)
{
	return n_mismatch;
}

bool failed(void)
{
	return n_mismatch || reason;
}

void set_child(pid_t pid)
{
	child = pid;
}

void report_counter(int round, const char *key, long long base, long long now)
{
	pthread_mutex_lock(&out_lock);
	if (n_ctrs < sizeof(ctrs) / sizeof(ctrs[0])) {
		ctrs[n_ctrs].round = round;
		snprintf(ctrs[n_ctrs].key, sizeof(ctrs[0].key), "%s", key);
		ctrs[n_ctrs].base = base;
		ctrs[n_ctrs].now = now;
		n_ctrs++;
	}
	pthread_mutex_unlock(&out_lock);
}

/* JSON strings must be valid UTF-8; generated names are, but a broken file
 * system could hand back anything, so invalid bytes become U+FFFD. */
static void json_str(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	fputc('"', f);
	while (*p) {
		unsigned c = *p, len = 0;

		if (c == '"' || c == '\\') {
			fprintf(f, "\\%c", c);
		} else if (c < 0x20) {
			fprintf(f, "\\u%04x", c);
		} else if (c < 0x80) {
			fputc(c, f);
		} else {
			if ((c & 0xe0) == 0xc0 && c >= 0xc2)
				len = 2;
			else if ((c & 0xf0) == 0xe0)
				len = 3;
			else if ((c & 0xf8) == 0xf0 && c <= 0xf4)
				len = 4;
			for (unsigned i = 1; i < len; i++)
				if ((p[i] & 0xc0) != 0x80)
					len = 0;
			if (!len) {
				fputs("\\ufffd", f);
			} else {
				fwrite(p, 1, len, f);
				p += len;
				continue;
			}
		}
		p++;
	}
	fputc('"', f);
}

static const char *scen_names[] = { "copy", "verify", "churn", "forget", "delete" };

static void print_json(bool pass, const char *why)
{
	FILE *f = stdout;

	fprintf(f, "{\n  \"tool\": \"fsp-stress\",\n  \"version\": \"%s\",\n", FSS_VERSION);
	fprintf(f, "  \"seed\": %llu,\n  \"dir\": ", (unsigned long long)opt.seed);
	json_str(f, opt.dir ? opt.dir : "");
	fprintf(f, ",\n  \"config\": {\"dirs\": %u, \"files\": %u, \"depth\": %u, "
		"\"max_size\": %llu, \"threads\": %u, \"seconds\": %g, \"rounds\": %u, "
		"\"scenarios\": [",
		opt.dirs, opt.files, opt.depth, (unsigned long long)opt.max_size, opt.threads,
		opt.seconds, opt.rounds);
	for (unsigned i = 0, k = 0; i < 5; i++)
		if (opt.scen & (1u << i))
			fprintf(f, "%s\"%s\"", k++ ? ", " : "", scen_names[i]);
	fprintf(f, "]},\n  \"phases\": [");
	for (size_t i = 0; i < n_phases; i++) {
		struct phase *p = phases[i];
		double secs = p->secs ? p->secs : now_mono() - p->t0;

		fprintf(f, "%s\n    {\"round\": %d, \"name\": ", i ? "," : "", p->round);
		json_str(f, p->name);
		fprintf(f, ", \"seconds\": %.3f, \"ops\": %llu, \"bytes\": %llu, \"errors\": %llu, "
			"\"mb_per_s\": %.1f, \"ops_per_s\": %.0f",
			secs, (unsigned long long)p->ops, (unsigned long long)p->bytes,
			(unsigned long long)p->errors, rate(p->bytes / 1e6, secs), rate(p->ops, secs));
		for (int k = 0; k < p->nextra; k++) {
			fputs(", ", f);
			json_str(f, p->extra[k].key);
			fprintf(f, ": %llu", (unsigned long long)p->extra[k].val);
		}
		fputc('}', f);
	}
	fprintf(f, "\n  ],\n  \"counters\": [");
	for (size_t i = 0; i < n_ctrs; i++) {
		fprintf(f, "%s\n    {\"round\": %d, \"key\": ", i ? "," : "", ctrs[i].round);
		json_str(f, ctrs[i].key);
		fprintf(f, ", \"baseline\": %lld, \"now\": %lld}", ctrs[i].base, ctrs[i].now);
	}
	fprintf(f, "\n  ],\n  \"notes\": [");
	for (size_t i = 0; i < n_notes; i++) {
		fputs(i ? ",\n    " : "\n    ", f);
		json_str(f, notes[i]);
	}
	fprintf(f, "\n  ],\n  \"mismatches\": %llu,\n  \"first_mismatches\": [",
		(unsigned long long)n_mismatch);
	for (size_t i = 0; i < FSS_SHOW_ERRORS && first_mismatch[i]; i++) {
		fputs(i ? ",\n    " : "\n    ", f);
		json_str(f, first_mismatch[i]);
	}
	fprintf(f, "\n  ],\n  \"rounds_done\": %d,\n  \"entries_verified\": %llu,\n"
		"  \"churn_ops\": %llu,\n  \"seconds\": %.3f,\n  \"verdict\": \"%s\"",
		g_rounds_done, (unsigned long long)g_verified, (unsigned long long)g_churn_ops,
		now_mono() - t_start, pass ? "PASS" : "FAIL");
	if (!pass) {
		fputs(",\n  \"reason\": ", f);
		json_str(f, why);
	}
	fputs("\n}\n", f);
	fflush(f);
}

static char *fail_text(void)
{
	if (reason)
		return xstrdup(reason);
	return xasprintf("%llu mismatch%s (first: %.300s)", (unsigned long long)n_mismatch,
			 n_mismatch == 1 ? "" : "es", first_mismatch[0] ? first_mismatch[0] : "?");
}

void fs_died(const char *fmt, ...)
{
	va_list ap;
	char *s;

	/* Several threads see ENOTCONN at once; the first one reports. */
	if (atomic_exchange(&dying, 1))
		for (;;)
			pause();
	if (child > 0)
		kill(child, SIGKILL);
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = "file system died";
	va_end(ap);
	if (opt.json)
		print_json(false, s);
	else
		printf("fsp-stress: FAIL: %s\n", s);
	fflush(stdout);
	_exit(1);
}

int report_final(void)
{
	bool pass = !failed();
	char *why = pass ? NULL : fail_text();
	double secs = now_mono() - t_start;

	pthread_mutex_lock(&out_lock);
	if (opt.json)
		print_json(pass, why);
	else if (pass)
		printf("fsp-stress: PASS (%d round%s, seed %llu, %llu entries verified, "
		       "%llu churn ops, %.1f s)\n",
		       g_rounds_done, g_rounds_done == 1 ? "" : "s", (unsigned long long)opt.seed,
		       (unsigned long long)g_verified, (unsigned long long)g_churn_ops, secs);
	else
		printf("fsp-stress: FAIL: %s\n", why);
	fflush(stdout);
	pthread_mutex_unlock(&out_lock);
	free(why);
	return pass ? 0 : 1;
}
