/* util.c — small portable helpers every layer may use; no state but a
 * cached page size. */
#include "fsp_i.h"
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#ifdef FSP__TSAN
atomic_ulong fsp__kernel_order;
#endif

uint64_t fsp__now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint32_t fsp__page_size(void)
{
	static atomic_uint cached;
	unsigned pg = atomic_load_explicit(&cached, memory_order_relaxed);
	if (!pg) {
		long v = sysconf(_SC_PAGESIZE);
		pg = v > 0 ? (unsigned)v : 4096;
		atomic_store_explicit(&cached, pg, memory_order_relaxed);
	}
	return pg;
}

bool fsp__uring_enabled(void)
{
	char c = 0;
	int fd = open(FSP__URING_PARAM, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, &c, 1);
	close(fd);
	return n == 1 && (c == 'Y' || c == 'y' || c == '1');
}
