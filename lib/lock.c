/* lock.c - the arena lock, a three-state futex word (0 free, 1 held,
 * 2 held with waiters) that needs neither libpthread nor malloc, and the
 * fork handlers that keep the heap usable in a child. */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "internal.h"

static void futex_wait(int *word, int value)
{
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, value, NULL, NULL, 0);
}

static void futex_wake_one(int *word)
{
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

void mm_lock_slow(mm_lock_t *l)
{
    /* Spin briefly: the lock is held for short stretches. */
    for (int spin = 0; spin < 100; spin++) {
        int expected = 0;
        if (__atomic_load_n(&l->state, __ATOMIC_RELAXED) == 0 &&
            __atomic_compare_exchange_n(&l->state, &expected, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return;
        cpu_relax();
    }
    while (__atomic_exchange_n(&l->state, 2, __ATOMIC_ACQUIRE) != 0)
        futex_wait(&l->state, 2);
}

void mm_unlock_slow(mm_lock_t *l)
{
    futex_wake_one(&l->state);
}

/* fork(): the parent takes the arena lock before the fork so no other thread
 * holds it half-way through a heap update; both sides then release it.  The
 * child is single-threaded, so it simply starts with a free lock. */
/* Lock order: the thread registry, the arenas lock, then the arenas in index
 * order (a thread never holds two arena locks otherwise). */
static void fork_prepare(void)
{
    mm_thread_fork_prepare();
    mm_arenas_fork_prepare();
}

static void fork_parent(void)
{
    mm_arenas_fork_parent();
    mm_thread_fork_parent();
}

static void fork_child(void)
{
    mm_arenas_fork_child();
    mm_thread_fork_child();
}

/* Runs as a constructor, before main and before the constructors of the
 * libraries that depend on us, and never under one of our locks (both
 * pthread_atfork and pthread_key_create may allocate). */
__attribute__((constructor(101))) static void library_setup(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    mm_thread_setup();
}
