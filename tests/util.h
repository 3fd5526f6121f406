/* util.h - what several test programs need from /proc, read without stdio
 * (the allocator under test must see no allocation of its own): a field of
 * /proc/self/status and the resident set size. */
#ifndef MYMALLOC_TEST_UTIL_H
#define MYMALLOC_TEST_UTIL_H

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A field of /proc/self/status ("VmSize", "VmData") in KiB; 0 when it
 * cannot be read. */
__attribute__((unused)) static size_t status_kib(const char *field)
{
    static char text[8192];
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0)
        return 0;
    text[n] = '\0';
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
    int fd = open("/proc/self/statm", O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    const char *s = buf;
    while (*s != ' ' && *s != '\0')
        s++;
    size_t pages = 0;
    for (s++; *s >= '0' && *s <= '9'; s++)
        pages = pages * 10 + (size_t)(*s - '0');
    return pages * (size_t)sysconf(_SC_PAGESIZE);
}

#endif
