/* hash.c — the sharded hash under the node and handle tables (lib/hash.c):
 * insert, find, remove and count across many grows, sequential and sparse
 * keys, the drain at shutdown, and four threads working on their own keys
 * at once (counts must come out exact; run under TSan for the locking). */
#include "fsp_i.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures, checks;
#define CHECK(cond, ...) do { checks++; if (!(cond)) { failures++; \
	printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

struct item {
	uint64_t payload;
	struct fsp__hlink link;
};

#define N 20000
static struct item items[N];

static uint64_t key_of(int i)
{
	/* half sequential (handle ids, node counters), half scattered */
	return i % 2 ? (uint64_t)i : ((uint64_t)i << 40) ^ 0x9e3779b97f4a7c15ULL;
}

static int insert(struct fsp__hash *h, struct item *it)
{
	struct fsp__hash_shard *sh = fsp__hash_lock(h, it->link.key);
	int present = fsp__hash_find(sh, it->link.key) != NULL;
	if (!present)
		fsp__hash_insert(sh, &it->link);
	fsp__hash_unlock(sh);
	return present ? -1 : 0;
}

static struct item *lookup(struct fsp__hash *h, uint64_t key)
{
	struct fsp__hash_shard *sh = fsp__hash_lock(h, key);
	struct fsp__hlink *l = fsp__hash_find(sh, key);
	fsp__hash_unlock(sh);
	return l ? FSP__CONTAINER_OF(l, struct item, link) : NULL;
}

static int remove_item(struct fsp__hash *h, struct item *it)
{
	struct fsp__hash_shard *sh = fsp__hash_lock(h, it->link.key);
	int rc = fsp__hash_remove(sh, &it->link);
	fsp__hash_unlock(sh);
	return rc;
}

struct worker_arg {
	struct fsp__hash *h;
	int first, n;
	int errors;
};

static void *worker(void *p)
{
	struct worker_arg *a = p;
	for (int round = 0; round < 3; round++) {
		for (int i = a->first; i < a->first + a->n; i++)
			if (insert(a->h, &items[i]) < 0)
				a->errors++;
		for (int i = a->first; i < a->first + a->n; i++)
			if (lookup(a->h, items[i].link.key) != &items[i])
				a->errors++;
		if (round < 2)
			for (int i = a->first; i < a->first + a->n; i++)
				if (remove_item(a->h, &items[i]) < 0)
					a->errors++;
	}
	return NULL;
}

int main(void)
{
	struct fsp__hash *h;

	CHECK(fsp__hash_new(&h) == 0, "new");
	for (int i = 0; i < N; i++) {
		items[i].payload = (uint64_t)i;
		items[i].link.key = key_of(i);
	}
	/* one thread: grows from 16 buckets a shard to thousands */
	for (int i = 0; i < N; i++)
		CHECK(insert(h, &items[i]) == 0, "insert %d", i);
	CHECK(fsp__hash_count(h) == N, "count %llu", (unsigned long long)fsp__hash_count(h));
	int bad = 0;
	for (int i = 0; i < N; i++) {
		struct item *it = lookup(h, key_of(i));
		if (!it || it->payload != (uint64_t)i)
			bad++;
	}
	CHECK(bad == 0, "%d keys not found after growing", bad);
	CHECK(lookup(h, 0) == NULL && lookup(h, (uint64_t)N + 1) == NULL, "absent keys miss");
	struct item dup = { .payload = 0, .link = { .key = key_of(7) } };
	CHECK(insert(h, &dup) == -1, "a present key is found before insert");
	CHECK(remove_item(h, &dup) == -ENOENT, "removing an unlinked item with a present key");
	CHECK(lookup(h, key_of(7)) == &items[7], "the linked item stays");
	for (int i = 0; i < N; i += 2)
		CHECK(remove_item(h, &items[i]) == 0, "remove %d", i);
	CHECK(remove_item(h, &items[0]) == -ENOENT, "second remove");
	CHECK(fsp__hash_count(h) == N / 2, "count after removes");
	bad = 0;
	for (int i = 0; i < N; i++)
		if ((lookup(h, key_of(i)) != NULL) != (i % 2 == 1))
			bad++;
	CHECK(bad == 0, "%d wrong after removing every other key", bad);
	/* drain: every link exactly once */
	static char seen[N];
	int n = 0, twice = 0;
	for (struct fsp__hlink *l = fsp__hash_drain(h), *next; l; l = next) {
		struct item *it = FSP__CONTAINER_OF(l, struct item, link);
		next = l->next;
		twice += seen[it->payload]++;
		n++;
	}
	CHECK(n == N / 2 && twice == 0, "drain gave %d links (%d twice)", n, twice);
	CHECK(fsp__hash_count(h) == 0, "empty after drain");

	/* threads on disjoint keys that share shards */
	struct worker_arg a[4];
	pthread_t th[4];
	for (int t = 0; t < 4; t++) {
		a[t] = (struct worker_arg){ .h = h, .first = t * (N / 4), .n = N / 4 };
		pthread_create(&th[t], NULL, worker, &a[t]);
	}
	for (int t = 0; t < 4; t++) {
		pthread_join(th[t], NULL);
		CHECK(a[t].errors == 0, "thread %d: %d errors", t, a[t].errors);
	}
	CHECK(fsp__hash_count(h) == N, "count after threads");
	(void)fsp__hash_drain(h);
	fsp__hash_free(h);

	printf("%s hash (%d checks, %d failed)\n", failures ? "FAIL" : "PASS", checks, failures);
	return failures ? 1 : 0;
}
