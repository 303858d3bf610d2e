/*
 * fsp-stress: deletion — "rm -rf" for the cp -a copy, the own fd-based
 * remover for the rest — and the check that nothing was left behind
 * (an entry that survives its unlink, or one a readdir forgot to show).
 */
#include "fsp-stress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int delete_run(const char *workdir, const char *cp_tree, uint64_t cp_entries,
	       char *const own_trees[], size_t n_own, struct phase *p)
{
	uint64_t own_removed = 0;
	char **left;
	size_t nleft;
	int r;

	if (cp_tree) {
		char *argv[] = { "/bin/rm", "-rf", (char *)cp_tree, NULL };

		r = run_cmd(argv);
		p->ops += cp_entries;
		if (r) {
			p->errors++;
			fail_reason("rm -rf %s: %s %d", cp_tree, r < 0 ? "cannot run, error" : "exit status",
				    r < 0 ? -r : r);
		}
		r = CK(access(cp_tree, F_OK));
		if (r != -ENOENT) {
			p->errors++;
			mismatch("delete: %s still there after rm -rf (%s)", cp_tree,
				 r ? strerror(-r) : "exists");
		}
	}
	for (size_t i = 0; i < n_own; i++) {
		uint64_t n = 0;

		r = rmtree(own_trees[i], &n);
		own_removed += n;
		p->ops += n;
		if (r < 0) {
			p->errors++;
			mismatch("delete: removing %s: %s", own_trees[i], strerror(-r));
		}
	}
	phase_set(p, "removed by rm -rf", cp_tree ? cp_entries : 0);
	phase_set(p, "removed by own unlink", own_removed);
	r = dir_entries(workdir, &left, &nleft);
	if (r < 0) {
		p->errors++;
		mismatch("delete: listing %s: %s", workdir, strerror(-r));
	} else if (nleft) {
		p->errors++;
		mismatch("delete: work directory not empty: %zu entr%s left, e.g. \"%s\"", nleft,
			 nleft == 1 ? "y" : "ies", left[0]);
	}
	free_names(left, nleft);
	return p->errors ? -EIO : 0;
}
