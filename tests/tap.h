/* tap.h - a small Test Anything Protocol writer for the C tests.
 *   plan(n); ok(cond, "what", ...); skip(n, "why"); diag("note"); return done();
 * Output goes through stdio on purpose: the tests exercise the allocator. */
#ifndef MYMALLOC_TAP_H
#define MYMALLOC_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int tap_number, tap_failures, tap_planned;

__attribute__((unused)) static void plan(int n)
{
    tap_planned = n;
    printf("1..%d\n", n);
    fflush(stdout);
}

__attribute__((unused)) static void plan_skip_all(const char *why)
{
    printf("1..0 # SKIP %s\n", why);
    fflush(stdout);
    exit(0);
}

__attribute__((format(printf, 2, 3), unused))
static int ok(int passed, const char *fmt, ...)
{
    va_list ap;
    tap_number++;
    if (!passed)
        tap_failures++;
    printf("%sok %d - ", passed ? "" : "not ", tap_number);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    return passed;
}

__attribute__((unused)) static void skip(int count, const char *why)
{
    while (count-- > 0) {
        tap_number++;
        printf("ok %d # SKIP %s\n", tap_number, why);
    }
    fflush(stdout);
}

__attribute__((format(printf, 1, 2), unused))
static void diag(const char *fmt, ...)
{
    va_list ap;
    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

/* Plan at the end when none was given up front. */
__attribute__((unused)) static int done(void)
{
    if (tap_planned == 0)
        printf("1..%d\n", tap_number);
    else if (tap_planned != tap_number)
        diag("planned %d tests but ran %d", tap_planned, tap_number);
    fflush(stdout);
    return tap_failures != 0 || (tap_planned != 0 && tap_planned != tap_number);
}

#endif
