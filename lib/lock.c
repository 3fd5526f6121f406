/* lock.c - the allocator's lock, a three-state futex word (0 free, 1 held,
 * 2 held with waiters) that needs neither libpthread nor malloc, and the
 * check of the lock ranks (base.h lists them) in debug builds.  A leaf:
 * it calls nothing of the library's but the report writer. */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "diag.h"

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

/* ---- the rank check (--enable-debug) ----
 * Each thread keeps the locks it holds; taking one whose rank is not above
 * every rank held aborts, naming both.  A try-lock never waits, so it is
 * only recorded. */
#if MM_DEBUG
#define HELD_MOST (MM_ARENA_SLOTS + 4)      /* fork's handler holds them all */
static __thread struct {
    unsigned count;
    const mm_lock_t *locks[HELD_MOST];
} held __attribute__((tls_model("initial-exec")));

static char *lock_name(char *out, const mm_lock_t *l)
{
    static const char *const names[] = { "an unranked lock", "the thread registry", "the arenas list" };
    if (l->rank == MM_RANK_MAPPED) {
        memcpy(out, "the table of mapped blocks", sizeof "the table of mapped blocks");
        return out + sizeof "the table of mapped blocks" - 1;
    }
    if (l->rank >= MM_RANK_ARENA) {
        memcpy(out, "arena ", 6);
        return mm_format_unsigned(out + 6, l->rank - MM_RANK_ARENA);
    }
    size_t n = strlen(names[l->rank < MM_RANK_ARENA ? l->rank : 0]);
    memcpy(out, names[l->rank < MM_RANK_ARENA ? l->rank : 0], n + 1);
    return out + n;
}

static MM_COLD MM_NORETURN void rank_violated(const mm_lock_t *taking, const mm_lock_t *holding)
{
    char line[160], *o = line;
    memcpy(o, "mymalloc: lock order violated: taking ", 38);
    o = lock_name(o + 38, taking);
    memcpy(o, " while holding ", 15);
    o = lock_name(o + 15, holding);
    memcpy(o, "\n", 2);
    mm_write_str(STDERR_FILENO, line);
    abort();
}

void mm_lockdep_locked(const mm_lock_t *l, int trying)
{
    if (!trying)
        for (unsigned i = 0; i < held.count; i++)
            if (held.locks[i]->rank >= l->rank)
                rank_violated(l, held.locks[i]);
    mm_assert(held.count < HELD_MOST);
    held.locks[held.count++] = l;
}

void mm_lockdep_unlocked(const mm_lock_t *l)
{
    for (unsigned i = held.count; i-- > 0;)
        if (held.locks[i] == l) {
            held.locks[i] = held.locks[--held.count];
            return;
        }
    mm_assert(!"a lock released that this thread does not hold");
}

void mm_lockdep_forget_all(void)
{
    held.count = 0;
}

/* A lock is counted from just before it is taken to just after it is let
 * go: a signal handler that interrupted the thread between the two sees it
 * here though the lock word is free. */
unsigned mm_lockdep_held(void)
{
    return held.count;
}
#endif
