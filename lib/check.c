/* check.c - heap-misuse checks: the secret behind header check values, the
 * check level and what to do on an error, probing foreign pointers without
 * faulting, and the slow diagnosis that tells a corrupted header from an
 * interior or foreign pointer (and repairs what it can, to carry on). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include "check.h"
#include "diag.h"
#include "os.h"

struct mm_secret mm_secret = { .level = 1 };
int mm_abort_on_error = 1;

/* Choose the secrets, once, before the first header is written. */
void mm_secret_init(void)
{
    static int done;
    uint64_t seed[3] = { 0, 0, 0 };
    if (__atomic_load_n(&done, __ATOMIC_ACQUIRE))
        return;
    if (getrandom(seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
        /* Early boot or an old kernel: the kernel's AT_RANDOM bytes, mixed
         * with the clock and an address. */
        const uint64_t *at_random = (const uint64_t *)getauxval(AT_RANDOM);
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        seed[0] = (at_random != NULL ? at_random[0] : 0) ^ (uint64_t)now.tv_nsec ^ (uint64_t)(uintptr_t)&now;
        seed[1] = (at_random != NULL ? at_random[1] : 0) ^ ((uint64_t)now.tv_sec << 32) ^ 0x9e3779b97f4a7c15u;
        seed[2] = (seed[0] ^ seed[1]) * 0xbf58476d1ce4e5b9u;
    }
    /* The low 4 bits of the cache's two secrets are fixed, 1000 and 0100:
     * a cached block's link decoded after zeros or aligned pointers were
     * written over either of its words is never 16-byte aligned (cache.h). */
    mm_secret.mix = (seed[0] & ~(uint64_t)15) | 8;
    mm_secret.multiplier = seed[1] | 1;   /* odd: a bijection, every input bit matters */
    /* Its inverse modulo 2^64 (each step doubles the bits that are right;
     * an odd number is its own inverse modulo 8). */
    uint64_t inverse = mm_secret.multiplier;
    for (int i = 0; i < 5; i++)
        inverse *= 2 - mm_secret.multiplier * inverse;
    mm_secret.inverse = inverse;
    mm_secret.link = (seed[2] & ~(uint64_t)15) | 4;
    __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
}

/* Lower (or raise, while checks are on) the check level; 0 is one-way: blocks
 * made without check values could not be verified later. */
int mm_check_level_set(int level)
{
    if (level < 0 || level > 2 || (mm_secret.level == 0 && level != 0))
        return 0;
    __atomic_store_n(&mm_secret.level, level, __ATOMIC_RELAXED);
    return 1;
}

static void (*abort_hook)(void);

void mm_report_set_abort_hook(void (*hook)(void))
{
    __atomic_store_n(&abort_hook, hook, __ATOMIC_RELEASE);
}

/* Report heap misuse; returns only when MYMALLOC_ABORT=0 asked to carry on. */
void mm_report(const char *func, const char *what, const void *p, const char *detail, size_t block)
{
    mm_report_line(func, what, p, detail, block);
    if (__atomic_load_n(&mm_abort_on_error, __ATOMIC_RELAXED)) {
        /* The process is going: let a SIGABRT handler that allocates (a
         * fuzzer's, a crash reporter's) get through rather than deadlock. */
        void (*hook)(void) = __atomic_load_n(&abort_hook, __ATOMIC_ACQUIRE);
        if (hook != NULL)
            hook();
        abort();
    }
}

/* Can the 16 bytes around a header (the offset word and the header) be
 * read?  A foreign, already unmapped or unreadable (PROT_NONE) pointer must
 * not crash us.  The kernel copies them for us with process_vm_readv on
 * ourselves, which fails with EFAULT where a read would fault; where that
 * call is refused (an old kernel, a seccomp filter), mincore at least tells
 * whether the pages are mapped.  errno is left as it was. */
int mm_probe_mapped(const void *header)
{
    int saved_errno = errno;
    unsigned char copy[2 * MM_WORD];
    struct iovec local = { copy, sizeof copy };
    struct iovec remote = { (void *)((uintptr_t)header - MM_WORD), sizeof copy };
    ssize_t n = syscall(SYS_process_vm_readv, getpid(), &local, 1UL, &remote, 1UL, 0UL);
    int readable = n == (ssize_t)sizeof copy;
    if (n < 0 && errno != EFAULT) {
        size_t page = mm_page_size();
        uintptr_t first = align_down((uintptr_t)header - MM_WORD, page);
        uintptr_t last = align_down((uintptr_t)header + MM_WORD - 1, page);
        unsigned char vec[2];
        readable = mincore((void *)first, last - first + page, vec) == 0;
    }
    errno = saved_errno;
    return readable;
}

/* The last few mapped blocks released, to name a double free of one. */
#define RECENT_UNMAPPED 64
static uintptr_t recent_unmapped[RECENT_UNMAPPED];
static unsigned recent_next;

void mm_note_unmapped(const void *p)
{
    unsigned i = __atomic_fetch_add(&recent_next, 1, __ATOMIC_RELAXED) % RECENT_UNMAPPED;
    __atomic_store_n(&recent_unmapped[i], (uintptr_t)p, __ATOMIC_RELAXED);
}

int mm_recently_unmapped(const void *p)
{
    for (unsigned i = 0; i < RECENT_UNMAPPED; i++)
        if (__atomic_load_n(&recent_unmapped[i], __ATOMIC_RELAXED) == (uintptr_t)p)
            return 1;
    return 0;
}

/* ---- MYMALLOC_CHECK=2: canaries in the slack, and freed memory filled ---- */

#define CANARY_BYTE 0xcb   /* between the requested size and the stored size */
#define FREED_BYTE  0xdf   /* the inside of a freed block */

static inline size_t canary_key(const block_t *b)
{
    return (size_t)(mm_secret.mix ^ ((uint64_t)(uintptr_t)b * 0x9e3779b97f4a7c15u));
}

/* The last word of the block's user area keeps the requested size (keyed);
 * the bytes between the request and that word hold CANARY_BYTE. */
void mm_canary_set(block_t *b, size_t n)
{
    char *user = block_user(b);
    size_t usable = block_usable(b);
    memset(user + n, CANARY_BYTE, usable - MM_WORD - n);
    *(size_t *)(user + usable - MM_WORD) = n ^ canary_key(b);
}

/* The requested size of a block with a canary, or SIZE_MAX when the stored
 * size itself was overwritten. */
size_t mm_canary_requested(block_t *b)
{
    size_t usable = block_usable(b);
    size_t n = *(size_t *)((char *)block_user(b) + usable - MM_WORD) ^ canary_key(b);
    return n <= usable - MM_WORD ? n : SIZE_MAX;
}

/* 1 when nothing was written past the requested size; else 0 and *offset is
 * the first byte (from the user pointer) found changed. */
int mm_canary_ok(block_t *b, size_t *offset)
{
    size_t n = mm_canary_requested(b), usable = block_usable(b);
    const unsigned char *user = block_user(b);
    if (n == SIZE_MAX) {
        *offset = usable - MM_WORD;
        return 0;
    }
    for (size_t i = n; i < usable - MM_WORD; i++) {
        if (user[i] != CANARY_BYTE) {
            *offset = i;
            return 0;
        }
    }
    return 1;
}

/* Report damage found at `offset` bytes from p: "what p (byte OFFSET
 * changed<how>, block of BLOCK bytes)". */
void mm_report_changed(const char *func, const char *what, const void *p, size_t offset, const char *how,
                       size_t block)
{
    char detail[96];
    memcpy(detail, "byte ", 5);
    char *o = mm_format_unsigned(detail + 5, offset);
    memcpy(o, " changed", 8);
    size_t n = strlen(how);
    if (n > sizeof detail - 1 - (size_t)(o + 8 - detail))
        n = sizeof detail - 1 - (size_t)(o + 8 - detail);
    memcpy(o + 8, how, n);
    o[8 + n] = '\0';
    mm_report(func, what, p, detail, block);
}

/* Report a canary that was overwritten; the block is then left alone. */
void mm_canary_report(block_t *b, const char *func, size_t offset)
{
    char detail[80];
    size_t n = mm_canary_requested(b);
    char *o = detail;
    if (n != SIZE_MAX) {
        o = mm_format_unsigned(o, n);
        memcpy(o, " bytes requested, ", 18);
        o += 18;
    }
    memcpy(o, "byte ", 5);
    o = mm_format_unsigned(o + 5, offset);
    memcpy(o, " overwritten", sizeof " overwritten");
    mm_report(func, "write past the end of block", block_user(b), detail, block_size(b));
}

void mm_freed_fill(void *from, size_t length)
{
    memset(from, FREED_BYTE, length);
}

/* 1 when [from, from + length) still holds the freed pattern; else 0 and
 * *offset is the first changed byte's distance from `from`. */
int mm_freed_fill_ok(const void *from, size_t length, size_t *offset)
{
    const unsigned char *bytes = from;
    size_t i = 0;
    /* A word at a time where the words are aligned; the byte that differs
     * is then looked for in the word that does. */
    while (i < length && ((uintptr_t)(bytes + i) % sizeof(uint64_t)) != 0 && bytes[i] == FREED_BYTE)
        i++;
    if (i < length && ((uintptr_t)(bytes + i) % sizeof(uint64_t)) == 0) {
        const uint64_t pattern = UINT64_C(0x0101010101010101) * FREED_BYTE;
        while (i + sizeof(uint64_t) <= length && *(const uint64_t *)(const void *)(bytes + i) == pattern)
            i += sizeof(uint64_t);
    }
    for (; i < length; i++) {
        if (bytes[i] != FREED_BYTE) {
            *offset = i;
            return 0;
        }
    }
    return 1;
}
