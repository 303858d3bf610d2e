/* suite.h — fsp-bench's WinFsp-style test list (suite.c). */
#ifndef FSP_BENCH_SUITE_H
#define FSP_BENCH_SUITE_H

/* bench_suite: "fsp-bench suite DIR [options]"; argv[0] is "suite".
 * Prints one "name value unit" line per test as it finishes. Returns the
 * exit status: 0 ok, 1 an operation failed, 2 bad usage. */
int bench_suite(int argc, char **argv);

#endif
