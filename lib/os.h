/* os.h - the OS layer (os.c): memory from the kernel and back, the system
 * call counters, the coarse clock. */
#ifndef MYMALLOC_OS_H
#define MYMALLOC_OS_H

#include "base.h"

MM_HIDDEN size_t mm_page_size(void);
MM_HIDDEN void *mm_os_sbrk(intptr_t increment);      /* NULL on failure */
MM_HIDDEN void *mm_os_brk_now(void);
MM_HIDDEN void *mm_os_map(size_t length);           /* NULL on failure */
MM_HIDDEN int mm_os_unmap(void *addr, size_t length);
MM_HIDDEN void *mm_os_remap(void *addr, size_t old_length, size_t new_length); /* NULL on failure */
/* System-call counters (relaxed atomics, for mymalloc_stats): whoever makes
 * one of these calls outside the mm_os_ functions counts it here. */
enum mm_syscall { MM_SYSCALL_SBRK_GROW, MM_SYSCALL_SBRK_SHRINK, MM_SYSCALL_MMAP, MM_SYSCALL_MUNMAP,
                  MM_SYSCALL_MREMAP, MM_SYSCALL_MADVISE, MM_SYSCALL_COUNT };
MM_HIDDEN void mm_syscall_count(enum mm_syscall which);
MM_HIDDEN void mm_syscall_counts(uint64_t counts[MM_SYSCALL_COUNT]);
MM_HIDDEN int mm_os_release(void *addr, size_t length);  /* madvise(MADV_DONTNEED): 0, or -1 */
MM_HIDDEN int mm_os_protect_none(void *addr, size_t length);  /* mprotect(PROT_NONE): 0, or -1 */
#define MM_CLOCK_MASK (((size_t)1 << 46) - 1)
MM_HIDDEN size_t mm_now_ms(void);
MM_HIDDEN int mm_ms_within(size_t now, size_t since, size_t ms);

#endif
