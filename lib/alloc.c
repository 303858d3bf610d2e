/* alloc.c — every allocation of the library goes through here.
 *
 * Why a wrapper: one place to inject failures (FSP_FAIL_ALLOC_AT=N makes the
 * Nth allocation and every later one in a window fail, for the allocation
 * failure sweep) and to keep the rule "ENOMEM is returned, never an abort".
 * Invariant: the wrappers never touch errno-based reporting; callers test NULL.
 */
#include "fsp_i.h"
#include <stdlib.h>

static atomic_ulong alloc_count;
static long fail_at = -1;     /* -1: never; set once from the environment */
static long fail_len = 1;
static pthread_once_t fail_once = PTHREAD_ONCE_INIT;

static void fail_init(void)
{
	const char *v = getenv("FSP_FAIL_ALLOC_AT");
	const char *l = getenv("FSP_FAIL_ALLOC_LEN");
	if (v && *v)
		fail_at = strtol(v, NULL, 10);
	if (l && *l)
		fail_len = strtol(l, NULL, 10);
}

static bool should_fail(void)
{
	pthread_once(&fail_once, fail_init);
	if (fail_at < 0)
		return false;
	unsigned long n = atomic_fetch_add_explicit(&alloc_count, 1, memory_order_relaxed);
	return (long)n >= fail_at && (long)n < fail_at + fail_len;
}

void *fsp__malloc(size_t n)
{
	return should_fail() ? NULL : malloc(n ? n : 1);
}

void *fsp__calloc(size_t nmemb, size_t n)
{
	return should_fail() ? NULL : calloc(nmemb ? nmemb : 1, n ? n : 1);
}

void *fsp__realloc(void *p, size_t n)
{
	return should_fail() ? NULL : realloc(p, n ? n : 1);
}

void fsp__free(void *p)
{
	free(p);
}
