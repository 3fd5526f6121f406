/* os.c - the only file that asks the kernel for memory or gives it back:
 * sbrk, mmap, munmap, mremap and madvise, each failing with one sentinel
 * (NULL / -1), the counters of those system calls (mymalloc_stats), and the
 * coarse clock the decay runs on. */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include "os.h"

static uint64_t syscall_counts[MM_SYSCALL_COUNT];

void mm_syscall_count(enum mm_syscall which)
{
    __atomic_add_fetch(&syscall_counts[which], 1, __ATOMIC_RELAXED);
}

void mm_syscall_counts(uint64_t counts[MM_SYSCALL_COUNT])
{
    for (int i = 0; i < MM_SYSCALL_COUNT; i++)
        counts[i] = __atomic_load_n(&syscall_counts[i], __ATOMIC_RELAXED);
}

size_t mm_page_size(void)
{
    static size_t page;
    size_t p = __atomic_load_n(&page, __ATOMIC_RELAXED);
    if (unlikely(p == 0)) {
        p = (size_t)getauxval(AT_PAGESZ);
        if (p == 0 || (p & (p - 1)) != 0)
            p = 4096;
        __atomic_store_n(&page, p, __ATOMIC_RELAXED);
    }
    return p;
}

void *mm_os_sbrk(intptr_t increment)
{
#ifdef MM_DISABLE_SBRK
    (void)increment;
    errno = ENOMEM;
    return NULL;
#else
    if (increment != 0)     /* sbrk(0) only reads glibc's copy of the break */
        mm_syscall_count(increment > 0 ? MM_SYSCALL_SBRK_GROW : MM_SYSCALL_SBRK_SHRINK);
    void *old = sbrk(increment);
    return old == (void *)-1 ? NULL : old;
#endif
}

void *mm_os_brk_now(void)
{
#ifdef MM_DISABLE_SBRK
    return NULL;
#else
    return sbrk(0);
#endif
}

void *mm_os_map(size_t length)
{
    mm_syscall_count(MM_SYSCALL_MMAP);
    void *p = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

int mm_os_unmap(void *addr, size_t length)
{
    mm_syscall_count(MM_SYSCALL_MUNMAP);
    return munmap(addr, length);
}

void *mm_os_remap(void *addr, size_t old_length, size_t new_length)
{
    mm_syscall_count(MM_SYSCALL_MREMAP);
    void *p = mremap(addr, old_length, new_length, MREMAP_MAYMOVE);
    return p == MAP_FAILED ? NULL : p;
}

/* madvise: give the pages of [addr, addr + length) (page aligned, inside the heap)
 * back to the kernel; they stay mapped and read as zero when touched again.
 * MADV_DONTNEED rather than MADV_FREE: the pages leave the resident set now,
 * not whenever the kernel runs short of memory (see release.c). */
int mm_os_release(void *addr, size_t length)
{
    mm_syscall_count(MM_SYSCALL_MADVISE);
    return madvise(addr, length, MADV_DONTNEED);
}

/* Make [addr, addr + length) inaccessible (a guard page): 0, or -1. */
int mm_os_protect_none(void *addr, size_t length)
{
    return mprotect(addr, length, PROT_NONE);
}

/* The coarse monotonic clock in milliseconds, modulo MM_CLOCK_MASK + 1 (the
 * stamps free blocks carry have room for 46 bits: ages beyond two thousand
 * years wrap).  A vDSO call, no system call; 0 if the clock is missing. */
size_t mm_now_ms(void)
{
    struct timespec t;
    if (clock_gettime(CLOCK_MONOTONIC_COARSE, &t) != 0)
        return 0;
    return ((size_t)t.tv_sec * 1000 + (size_t)t.tv_nsec / 1000000) & MM_CLOCK_MASK;
}

/* Is `since` less than `ms` before `now` (both from mm_now_ms)? */
int mm_ms_within(size_t now, size_t since, size_t ms)
{
    return ((now - since) & MM_CLOCK_MASK) < ms;
}
