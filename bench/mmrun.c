/* mmrun.c - run one benchmark program and measure it: wall time and the
 * child's own peak resident set size.
 *
 *   mmrun [-p PRELOAD] [-t SECONDS] PROGRAM [ARGS...]
 *
 * The program runs in a child with LD_PRELOAD=PRELOAD (only the child: this
 * process keeps the system malloc) and is killed after SECONDS (default 300).
 * Once it has ended, mmrun prints one line on stdout after the program's own
 * output:
 *
 *   mmrun: status exit 0 wall 0.812345 maxrss 1420
 *
 * (status "exit N" or "signal N", then "timeout" when it was killed for
 * taking too long; wall in seconds; maxrss in KiB) and exits 0, or 2 on a
 * usage or system error.
 *
 * Why a wrapper: Linux keeps the peak RSS of a process across exec, so a
 * program started straight from a big parent (python) reports the parent's
 * RSS when its own is smaller.  This process is small, so the peak of the
 * child it forks is the child's own (like /usr/bin/time). */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t timed_out;
static pid_t child;

static void on_alarm(int sig)
{
    (void)sig;
    timed_out = 1;
    if (child > 0)
        kill(child, SIGKILL);
}

static void usage(void)
{
    fprintf(stderr, "usage: mmrun [-p PRELOAD] [-t SECONDS] PROGRAM [ARGS...]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *preload = NULL;
    unsigned timeout = 300;
    int c;
    while ((c = getopt(argc, argv, "+p:t:")) != -1) {
        switch (c) {
        case 'p': preload = optarg; break;
        case 't': timeout = (unsigned)strtoul(optarg, NULL, 10); break;
        default: usage();
        }
    }
    if (optind >= argc)
        usage();

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);

    fflush(stdout);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    child = fork();
    if (child < 0) {
        perror("mmrun: fork");
        return 2;
    }
    if (child == 0) {
        if (preload != NULL && *preload != '\0')
            setenv("LD_PRELOAD", preload, 1);
        else
            unsetenv("LD_PRELOAD");
        execvp(argv[optind], &argv[optind]);
        fprintf(stderr, "mmrun: cannot run %s: %s\n", argv[optind], strerror(errno));
        _exit(127);
    }
    if (timeout > 0)
        alarm(timeout);

    int status;
    struct rusage ru;
    pid_t r;
    while ((r = wait4(child, &status, 0, &ru)) < 0 && errno == EINTR)
        ;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    alarm(0);
    if (r < 0) {
        perror("mmrun: wait4");
        return 2;
    }
    double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (WIFSIGNALED(status))
        printf("mmrun: status signal %d wall %.6f maxrss %ld%s\n", WTERMSIG(status), wall, ru.ru_maxrss,
               timed_out ? " timeout" : "");
    else
        printf("mmrun: status exit %d wall %.6f maxrss %ld\n", WEXITSTATUS(status), wall, ru.ru_maxrss);
    return 0;
}
