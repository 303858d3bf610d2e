/* sigstat.c — stat(PATH) with a signal due after MS milliseconds, the way
 * an interactive program gets interrupted: a SIGALRM handler without
 * SA_RESTART. Prints "ok", or the errno name the call failed with (EINTR
 * when the file system answered the kernel's INTERRUPT), and exits 0.
 * Usage: sigstat PATH MS */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>

static void on_alarm(int sig)
{
	(void)sig;
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	struct stat st;

	if (argc != 3) {
		fprintf(stderr, "usage: sigstat PATH MS\n");
		return 2;
	}
	long ms = atol(argv[2]);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = { { 0, 0 }, { ms / 1000, (ms % 1000) * 1000 } };
	setitimer(ITIMER_REAL, &it, NULL);
	if (stat(argv[1], &st) == 0) {
		puts("ok");
		return 0;
	}
	int e = errno;
	puts(e == EINTR ? "EINTR" : e == ENOENT ? "ENOENT" : strerror(e));
	return 0;
}
