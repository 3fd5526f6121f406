/* misuse.h - what the tests that misuse the heap on purpose share (misuse.c,
 * misuse_cxx.cc, and cxx_operators.cc's children that must be stopped).
 * Each case runs in a forked child.  Before it misbehaves, the child
 * announces on the pipe expect_fd the exact line it expects mymalloc to
 * print on its stderr; the parent compares the two with check_lines().  The
 * child must be stopped by SIGABRT, or report and carry on with a usable
 * heap. */
#ifndef MYMALLOC_TEST_MISUSE_H
#define MYMALLOC_TEST_MISUSE_H

#include "util.h"

/* How a child that did not die the expected way ends. */
enum {
    EXIT_SETUP = 3,        /* could not lay out the blocks it needed */
    EXIT_WORK_ALLOC = 4,   /* the heap workout after the misuse could not allocate */
    EXIT_WORK_DATA = 5,    /* ... found a block's contents changed */
    EXIT_CASE = 7,         /* a case's own check after carrying on failed */
    EXIT_MALLOPT = 9,      /* mallopt refused a setting */
    EXIT_RETURNED = 10,    /* the misuse returned although abort was on */
    EXIT_EXEC = 11,        /* re-executing the test failed */
    EXIT_CHECK = 100,      /* + mymalloc_check() after the workout, when not what the case expects */
    EXIT_CHECK_NOW = 200   /* + mymalloc_check() right after the misuse, likewise */
};

/* How the child meets the report: stopped by abort, or carrying on through
 * mallopt(M_MYMALLOC_ABORT, 0), MYMALLOC_ABORT=0 in the environment of a
 * re-executed child, or glibc's mallopt(M_CHECK_ACTION, 1). */
enum carry { MODE_ABORT, MODE_CARRY, MODE_CARRY_ENV, MODE_CARRY_GLIBC };

__attribute__((unused)) static int expect_fd = -1;
__attribute__((unused)) static int carry_on;   /* this child reports and carries on */

__attribute__((unused)) static unsigned long addr(const void *p) { return (unsigned long)(uintptr_t)p; }

/* The exact line the child expects on stderr (one call per line).  A child
 * that cannot announce it exits with status 2. */
__attribute__((format(printf, 1, 2), unused)) static void expect(const char *fmt, ...)
{
    char line[600];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line - 1)
        _exit(2);
    line[n++] = '\n';
    if (write(expect_fd, line, (size_t)n) != n)
        _exit(2);
}

__attribute__((noreturn, unused)) static void setup_failed(const char *what)
{
    expect("(setup failed: %s)", what);
    _exit(EXIT_SETUP);
}

/* The settings every case starts from: the thresholds fixed whatever the
 * environment says, the cache of small blocks off (when the library has
 * one).  1 when mallopt took them all. */
__attribute__((unused)) static int misuse_settings(void)
{
    int set = default_thresholds();
#ifdef M_MYMALLOC_TCACHE
    set = set && mallopt(M_MYMALLOC_TCACHE, 0) == 1;
#endif
    return set;
}

/* The start of the child: its expected lines go to fd, an alarm makes a hang
 * fail the case (not the suite), then the check level (unless it is -1),
 * the cache of small blocks on when `cache` says so, and the way to meet
 * the report.  Exits with EXIT_MALLOPT when mallopt refuses one. */
__attribute__((unused)) static void misuse_child_start(int fd, int level, int cache, enum carry how)
{
    expect_fd = fd;
    alarm(30);
    if (level != -1 && mallopt(M_MYMALLOC_CHECK, level) != 1)
        _exit(EXIT_MALLOPT);
#ifdef M_MYMALLOC_TCACHE
    if (cache && mallopt(M_MYMALLOC_TCACHE, 1) != 1)
        _exit(EXIT_MALLOPT);
#else
    (void)cache;
#endif
    if (how == MODE_CARRY && mallopt(M_MYMALLOC_ABORT, 0) != 1)
        _exit(EXIT_MALLOPT);
    if (how == MODE_CARRY_GLIBC && mallopt(M_CHECK_ACTION, 1) != 1)
        _exit(EXIT_MALLOPT);
    carry_on = how != MODE_ABORT;
}

/* Is the child's stderr (got) exactly what it announced (want)?  One TAP
 * point. */
__attribute__((unused)) static void check_lines(const char *label, const char *want, const char *got)
{
    int same = want[0] != '\0' && strcmp(want, got) == 0;
    ok(same, "%s: stderr is exactly: %.*s", label, (int)strcspn(want, "\n"), want);
    if (!same)
        diag("expected \"%s\", got \"%s\"", want, got);
}

#endif
