/* underflow.c — a lifetime count going below zero aborts in every build
 * (not only with FSP_DEBUG): each case runs in a forked child that provokes
 * one underflow through the internal API; the child must die by SIGABRT
 * after exactly one "BUG:" line naming the count. Controls: balanced use
 * exits normally, and an over-counted FORGET (the kernel's input, not our
 * invariant) is clamped, not an abort. */
#include "fsp_i.h"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures, checks;
#define CHECK(cond, ...) do { checks++; if (!(cond)) { failures++; \
	printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

static int obj;
static fsp_session sess;   /* only ops, nodes and handles are used */

static struct fsp__node *held_node(uint64_t ino)
{
	struct fsp_entry e = { .ino = ino, .obj = &obj };
	struct fsp__node *n = NULL;
	e.attr.st_mode = S_IFREG | 0644;
	if (fsp__node_add_entry(sess.nodes, &e, 1) < 0 || fsp__node_get(sess.nodes, ino, &n) < 0)
		exit(3);
	return n;
}

static void node_put_twice(void)
{
	struct fsp__node *n = held_node(5);
	fsp__node_put(sess.nodes, n);
	fsp__node_put(sess.nodes, n);   /* users below zero; nlookup keeps n */
}

static void unsent_twice(void)
{
	held_node(6);                     /* users 1 keeps the node */
	fsp__node_unsent(sess.nodes, 6);
	fsp__node_unsent(sess.nodes, 6);  /* nlookup below zero */
}

static void handle_put_at_zero(void)
{
	struct fsp__node *n = held_node(7);
	struct fsp__handle *h;
	if (fsp__handle_new(sess.handles, n, &obj, 0, false, &h) < 0)
		exit(3);
	/* a handle whose count already reached zero (put once too often by
	 * someone); without the check the next put wraps to UINT_MAX */
	atomic_store(&h->refs, 0);
	fsp__handle_put(sess.handles, h);
}

static void balanced(void)
{
	struct fsp__node *n = held_node(8);
	struct fsp__handle *h, *h2;
	if (fsp__handle_new(sess.handles, n, &obj, 0, false, &h) < 0 ||
	    fsp__handle_get(sess.handles, h->id, false, &h2) < 0)
		exit(3);
	fsp__handle_put(sess.handles, h2);
	if (fsp__handle_release(sess.handles, h->id, false) < 0)
		exit(3);
	fsp__node_put(sess.nodes, n);
	fsp__node_forget(sess.nodes, 8, 1);
	exit(fsp__nodes_count(sess.nodes) == 0 ? 0 : 4);
}

static void forget_too_many(void)
{
	struct fsp__node *n = held_node(9);
	fsp__node_forget(sess.nodes, 9, 5);   /* kernel input: clamped */
	fsp__node_unsent(sess.nodes, 9);      /* after a clamp: clamped too */
	fsp__node_put(sess.nodes, n);
	exit(fsp__nodes_count(sess.nodes) == 0 ? 0 : 4);
}

/* Run fn in a child; return its wait status and what it wrote to stderr. */
static int run(void (*fn)(void), char *err, size_t size)
{
	int p[2], st = 0;
	size_t len = 0;
	if (pipe(p) < 0)
		return -1;
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		struct rlimit no_core = { 0, 0 };
		setrlimit(RLIMIT_CORE, &no_core);
		dup2(p[1], 2);
		close(p[0]);
		if (fsp__nodes_new(&sess, &sess.nodes) < 0 || fsp__handles_new(&sess, &sess.handles) < 0)
			_exit(3);
		fn();
		_exit(0);
	}
	close(p[1]);
	for (;;) {
		ssize_t n = read(p[0], err + len, size - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	err[len] = 0;
	close(p[0]);
	waitpid(pid, &st, 0);
	return st;
}

static int count_lines(const char *s, const char *what)
{
	int n = 0;
	for (const char *l = s; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (strstr(l, what) && (!strchr(l, '\n') || strstr(l, what) < strchr(l, '\n')))
			n++;
	return n;
}

static void expect_abort(const char *name, void (*fn)(void), const char *msg)
{
	char err[4096];
	int st = run(fn, err, sizeof(err));
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
	      "%s: child must die by SIGABRT (status %#x, stderr: %s)", name, st, err);
	CHECK(count_lines(err, "BUG: ") == 1 && strstr(err, msg),
	      "%s: one BUG line with '%s' expected, stderr: %s", name, msg, err);
}

static void expect_exit0(const char *name, void (*fn)(void))
{
	char err[4096];
	int st = run(fn, err, sizeof(err));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: child must exit 0 (status %#x, stderr: %s)",
	      name, st, err);
	CHECK(!strstr(err, "BUG"), "%s: no BUG line expected: %s", name, err);
}

int main(void)
{
	sess.fd = -1;
#ifdef FSP_DEBUG
	printf("(debug build: FSP_DEBUG set)\n");
#else
	printf("(release build: FSP_DEBUG not set)\n");
#endif
	expect_abort("node_put once too often", node_put_twice, "node 5: user count below zero");
	expect_abort("unsent once too often", unsent_twice, "node 6: lookup count below zero");
	expect_abort("handle_put at zero", handle_put_at_zero, "handle 1: reference count below zero");
	expect_exit0("balanced gets and puts", balanced);
	expect_exit0("FORGET of more than was looked up", forget_too_many);
	printf("%s underflow (%d checks, %d failed)\n", failures ? "FAIL" : "PASS", checks, failures);
	return failures ? 1 : 0;
}
