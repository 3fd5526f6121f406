/* util.h - what the test programs share: the headers nearly all of them
 * need, mymalloc.h and tap.h, KIB and MIB, and the helpers more than one of
 * them uses.  Include it first, before any system header: it defines
 * _GNU_SOURCE.  It compiles as C and as C++.  Every helper is static and
 * marked unused, so a test that needs only a few still builds without a
 * warning. */
#ifndef MYMALLOC_TEST_UTIL_H
#define MYMALLOC_TEST_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "mymalloc.h"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"   /* tap.h helpers a test does not use */
#include "tap.h"
#pragma GCC diagnostic pop

#define KIB ((size_t)1024)
#define MIB (KIB * KIB)

/* ---- /proc, read without stdio (the allocator under test must see no
 * allocation of its own) ---- */

/* A file of /proc into text[size], NUL-terminated; its length, or 0 when it
 * cannot be read. */
__attribute__((unused)) static size_t proc_text(const char *path, char *text, size_t size)
{
    int fd = open(path, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, text, size - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return 0;
    text[n] = '\0';
    return (size_t)n;
}

/* A field of /proc/self/status ("VmSize", "VmData") in KiB; 0 when it
 * cannot be read. */
__attribute__((unused)) static size_t status_kib(const char *field)
{
    static char text[8192];
    if (proc_text("/proc/self/status", text, sizeof text) == 0)
        return 0;
    size_t len = strlen(field);
    for (char *at = text; (at = strstr(at, field)) != NULL; at += len)
        if ((at == text || at[-1] == '\n') && at[len] == ':')
            return (size_t)strtoull(at + len + 1, NULL, 10);
    return 0;
}

/* The resident set size in bytes, from /proc/self/statm; 0 when it cannot
 * be read. */
__attribute__((unused)) static size_t rss_bytes(void)
{
    char buf[128];
    if (proc_text("/proc/self/statm", buf, sizeof buf) == 0)
        return 0;
    const char *s = buf;
    while (*s != ' ' && *s != '\0')
        s++;
    size_t pages = 0;
    for (s++; *s >= '0' && *s <= '9'; s++)
        pages = pages * 10 + (size_t)(*s - '0');
    return pages * (size_t)sysconf(_SC_PAGESIZE);
}

#endif
