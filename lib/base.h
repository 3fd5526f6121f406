/* base.h - what every file of lib/ needs: the compiler's attributes, the
 * debug assertions, the block layout (block.h) and the lock with its ranks
 * (lock.c).  The layers' own headers build on it: os.h, settings.h,
 * check.h and diag.h (the leaves), heap.h, arena.h, thread.h with cache.h,
 * and entry.h; lib/README draws them. */
#ifndef MYMALLOC_BASE_H
#define MYMALLOC_BASE_H

#include <stddef.h>
#include <stdint.h>
#include "block.h"
#include "mymalloc.h"

#define MM_HIDDEN   __attribute__((visibility("hidden")))
#define MM_COLD     __attribute__((cold, noinline))
#define MM_NORETURN __attribute__((noreturn))
#define MM_NOINLINE __attribute__((noinline))
#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* Debug checks: always compiled (so they never rot), enabled by
 * ./configure --enable-debug, which defines MM_DEBUG to 1. */
#ifndef MM_DEBUG
#define MM_DEBUG 0
#endif
#define mm_assert(cond) \
    do { if (MM_DEBUG && unlikely(!(cond))) mm_assert_failed(__FILE__, __LINE__, #cond); } while (0)
MM_HIDDEN MM_COLD MM_NORETURN void mm_assert_failed(const char *file, int line, const char *cond);
/* Every "these bytes are known to be zero" that lets calloc() skip clearing
 * them is verified in debug builds, naming the claim (diag.c). */
MM_HIDDEN void mm_zero_claim_verify(const void *block, const void *p, size_t n, const char *claim);
#define mm_zero_claim(block, p, n, claim) \
    do { if (MM_DEBUG) mm_zero_claim_verify(block, p, n, claim); } while (0)

struct mm_arena;

/* ---- lock.c: the locks (futex words), their ranks, and fork handling ----
 *
 * Every lock has a rank, and a thread takes locks only in increasing rank
 * (a try-lock, which never waits, may take any):
 *
 *   1  MM_RANK_REGISTRY   the registry of threads (thread.c)
 *   2  MM_RANK_ARENAS     the list of arenas: creating one, attaching a
 *                         thread, switching every arena's policy (arena.c)
 *   3+i MM_RANK_ARENA+i   arena i's heap (the main arena is 0); two arenas
 *                         at once only in fork's handler, in index order,
 *                         or with a try-lock (the look at idle arenas)
 *   MM_RANK_MAPPED        the table of blocks with a mapping of their own
 *                         (large.c), taken for a few instructions
 *   MM_RANK_QUARANTINE    the queue of MYMALLOC_CHECK=2's quarantine
 *                         (quarantine.c), taken for a few instructions
 *
 * fork() takes glibc's list of streams before all of them (lock.c says why).
 * Nothing else in the allocator waits for a lock.  With --enable-debug every
 * lock and unlock is checked against the ranks (mm_lockdep_*, lock.c): a
 * lock taken out of order aborts with both locks' names. */
typedef struct { int state; unsigned rank; } mm_lock_t;   /* state: 0 free, 1 held, 2 held with waiters */
#define MM_ARENA_SLOTS 256            /* most arenas, main included: one rank each */
enum { MM_RANK_REGISTRY = 1, MM_RANK_ARENAS = 2, MM_RANK_ARENA = 3, MM_RANK_MAPPED = 0x10000,
       MM_RANK_QUARANTINE = 0x10001 };
#define MM_LOCK_INIT(rank) { 0, (rank) }
MM_HIDDEN void mm_lock_slow(mm_lock_t *l);
MM_HIDDEN void mm_unlock_slow(mm_lock_t *l);
#if MM_DEBUG
MM_HIDDEN void mm_lockdep_locked(const mm_lock_t *l, int trying);
MM_HIDDEN void mm_lockdep_unlocked(const mm_lock_t *l);
MM_HIDDEN void mm_lockdep_forget_all(void);
MM_HIDDEN unsigned mm_lockdep_held(void);      /* locks this thread holds, or is taking */
#else
static inline void mm_lockdep_locked(const mm_lock_t *l, int trying) { (void)l; (void)trying; }
static inline void mm_lockdep_unlocked(const mm_lock_t *l) { (void)l; }
static inline void mm_lockdep_forget_all(void) {}
static inline unsigned mm_lockdep_held(void) { return 0; }
#endif

/* A process that has never had a second thread (glibc's own flag, which
 * turns false before pthread_create starts one) needs no atomic instruction
 * to take or drop a lock: nobody else can hold or wait for it. */
#ifdef MM_HAVE_SINGLE_THREADED
#include <sys/single_threaded.h>
static inline int mm_single_threaded(void) { return __libc_single_threaded != 0; }
#else
static inline int mm_single_threaded(void) { return 0; }
#endif

static inline void mm_lock(mm_lock_t *l)
{
    int expected = 0;
    mm_lockdep_locked(l, 0);
    if (mm_single_threaded()) {
        mm_assert(l->state == 0);
        __atomic_store_n(&l->state, 1, __ATOMIC_RELAXED);
        return;
    }
    if (!__atomic_compare_exchange_n(&l->state, &expected, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        mm_lock_slow(l);
}
static inline int mm_trylock(mm_lock_t *l)
{
    int expected = 0;
    if (!__atomic_compare_exchange_n(&l->state, &expected, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return 0;
    mm_lockdep_locked(l, 1);
    return 1;
}
static inline void mm_unlock(mm_lock_t *l)
{
    mm_lockdep_unlocked(l);
    if (mm_single_threaded()) {
        __atomic_store_n(&l->state, 0, __ATOMIC_RELAXED);
        return;
    }
    if (__atomic_exchange_n(&l->state, 0, __ATOMIC_RELEASE) == 2)
        mm_unlock_slow(l);
}

#endif
