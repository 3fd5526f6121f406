/* diag.c - reporting: the one-line messages (written with write(2), never
 * stdio), failed debug assertions and zero claims, and number formatting
 * that never allocates.  A leaf. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "diag.h"

void mm_write_str(int fd, const char *s)
{
    size_t left = strlen(s);
    while (left > 0) {
        ssize_t n = write(fd, s, left);
        if (n <= 0)
            return;
        s += n;
        left -= (size_t)n;
    }
}

char *mm_format_unsigned(char *out, size_t value)
{
    char digits[24];
    int n = 0;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    while (n > 0)
        *out++ = digits[--n];
    *out = '\0';
    return out;
}

char *mm_format_hex(char *out, uintptr_t value)
{
    char digits[20];
    int n = 0;
    do {
        digits[n++] = "0123456789abcdef"[value & 15];
        value >>= 4;
    } while (value != 0);
    *out++ = '0';
    *out++ = 'x';
    while (n > 0)
        *out++ = digits[--n];
    *out = '\0';
    return out;
}

static char *append(char *out, const char *s)
{
    size_t n = strlen(s);
    memcpy(out, s, n + 1);
    return out + n;
}

/* "mymalloc: free(): double free of 0x5581c2a0 (block of 48 bytes)": what was
 * wrong, the pointer, then the detail and block size when there are any. */
void mm_report_line(const char *func, const char *what, const void *p, const char *detail, size_t block)
{
    char line[320];
    char *o = append(line, "mymalloc: ");
    o = append(o, func);
    o = append(o, "(): ");
    o = append(o, what);
    if (p != NULL) {         /* (a report about no one block passes NULL) */
        o = append(o, " ");
        o = mm_format_hex(o, (uintptr_t)p);
    }
    if (detail != NULL || block != 0) {
        o = append(o, " (");
        if (detail != NULL)
            o = append(o, detail);
        if (detail != NULL && block != 0)
            o = append(o, ", ");
        if (block != 0) {
            o = append(o, "block of ");
            o = mm_format_unsigned(o, block);
            o = append(o, " bytes");
        }
        o = append(o, ")");
    }
    append(o, "\n");
    mm_write_str(STDERR_FILENO, line);
}

/* --enable-debug: calloc() skips clearing [p, p + n) of the block at
 * `block` because `claim` says those bytes read as zero; make sure, and
 * abort naming the claim when one is not.  A whole page that is not
 * resident (never touched, or released) reads as zero and is not read:
 * reading it would fault it in, and with transparent huge pages always on,
 * the kernel then counts a whole huge page in the RSS that the tests
 * measure.  (A page swapped out is not looked at either.) */
void mm_zero_claim_verify(const void *block, const void *p, size_t n, const char *claim)
{
    const unsigned char *bytes = p;
    uintptr_t page = (uintptr_t)getpagesize();
    size_t i = 0;
    while (i < n) {
        uintptr_t at = (uintptr_t)(bytes + i);
        unsigned char resident;
        if (at % page == 0 && n - i >= page && mincore((void *)at, page, &resident) == 0 && !(resident & 1)) {
            i += page;
            continue;
        }
        size_t stop = i + (page - at % page);
        if (stop > n)
            stop = n;
        while (i < stop && bytes[i] == 0)
            i++;
        if (i < stop)
            break;
    }
    if (i == n)
        return;
    char text[320], *o = text;
    o = append(o, "mymalloc: calloc(): memory claimed zero is not: byte ");
    o = mm_format_unsigned(o, (size_t)(bytes + i - (const unsigned char *)block));
    o = append(o, " of the block at ");
    o = mm_format_hex(o, (uintptr_t)block);
    o = append(o, " reads ");
    o = mm_format_hex(o, bytes[i]);
    o = append(o, " (claimed by: ");
    o = append(o, claim);
    append(o, ")\n");
    mm_write_str(STDERR_FILENO, text);
    abort();
}

void mm_assert_failed(const char *file, int line, const char *cond)
{
    char text[512], *o = text;
    o = append(o, "mymalloc: internal check failed at ");
    o = append(o, file);
    o = append(o, ":");
    o = mm_format_unsigned(o, (size_t)line);
    o = append(o, ": ");
    if (strlen(cond) < 300)
        o = append(o, cond);
    append(o, "\n");
    mm_write_str(STDERR_FILENO, text);
    abort();
}
