/* thread.h - the thread layer (thread.c, cache.c, decay.c, background.c):
 * per-thread state and counting, the caches (cache.h has their fast paths),
 * the decay driven by threads, the background release. */
#ifndef MYMALLOC_THREAD_H
#define MYMALLOC_THREAD_H

#include "arena.h"

enum { MM_THREAD_NEW, MM_THREAD_LIVE, MM_THREAD_EXITED };
/* malloc() calls served by its inline fast path, by request size in steps
 * of 8 bytes (0, 1-8, 9-16, ... 993-1000): one increment there, folded into
 * the call and size-class counts when they are read.  The same step gives
 * the cache class (mm_cache_class_of_step in cache.h). */
#define MM_FAST_SIZES 128
static inline size_t mm_fast_step(size_t n) { return (n + 7) / 8; }

/* The counters are only written by their own thread, with plain increments
 * (one instruction on the fast paths); other threads read them, relaxed, to
 * sum them, and may see a count a few calls old. */
struct registry_node;
struct mm_thread {
    struct registry_node *node;         /* its place in the registry (thread.c) */
    int state;                          /* MM_THREAD_NEW, _LIVE or _EXITED */
    uint8_t cache_on;                   /* live, and caching is on (thread.c) */
    uint8_t poll_countdown;             /* pushes onto the cache until the next poll, mod 256 */
    uint64_t calls[MYMALLOC_CALL_COUNT];
    uint64_t sizes[MYMALLOC_SIZE_CLASSES];   /* requests by size class */
    uint64_t fast_sizes[MM_FAST_SIZES];      /* malloc fast path, see above */
    struct mm_arena *arena;             /* where its allocations come from */
    size_t polled;                      /* when (ms) mm_decay_poll last looked */
    struct mm_cache cache;
};
MM_HIDDEN extern __thread struct mm_thread mm_self __attribute__((tls_model("initial-exec")));
MM_HIDDEN void mm_count_slow(enum mymalloc_call call);
MM_HIDDEN void mm_count_alloc_slow(enum mymalloc_call call, size_t cls);
/* All threads' counters (live ones and those retired at exit) and caches. */
struct mm_thread_totals {
    uint64_t calls[MYMALLOC_CALL_COUNT];
    uint64_t sizes[MYMALLOC_SIZE_CLASSES];
    size_t cached_bytes, cached_blocks;
};
MM_HIDDEN void mm_thread_counts(struct mm_thread_totals *totals);
MM_HIDDEN void mm_thread_setup(void);
MM_HIDDEN struct mm_arena *mm_thread_attach(struct mm_thread *t);
MM_HIDDEN void mm_thread_cache_switch(int on);
MM_HIDDEN void mm_thread_fork_prepare(void);
MM_HIDDEN void mm_thread_fork_parent(void);
MM_HIDDEN void mm_thread_fork_child(void);
/* Every 256th push onto a thread's cache (cache.h: the fast paths of a
 * program whose blocks all come and go through its cache make no heap
 * operation), the thread looks whether its arena has pages due for release
 * (mm_decay_poll, decay.c). */
MM_HIDDEN MM_NOINLINE void mm_decay_poll(struct mm_thread *t);

/* Count one call of an entry point for a thread known to be registered. */
static inline void mm_count_live(struct mm_thread *t, enum mymalloc_call call)
{
    t->calls[call]++;
}

/* Count one call of an entry point: a thread-local increment. */
static inline void mm_count(enum mymalloc_call call)
{
    struct mm_thread *t = &mm_self;
    if (unlikely(t->state != MM_THREAD_LIVE)) {
        mm_count_slow(call);
        return;
    }
    mm_count_live(t, call);
}
/* The histogram class of a request of n bytes (mymalloc.h): 0 for 0 to 16,
 * then one per power of two up to 1 MiB, the last for anything bigger. */
static inline size_t mm_size_class(size_t n)
{
    size_t bits = (n - (n != 0)) | 15;            /* n - 1, with 0 kept in class 0 */
    size_t cls = (size_t)(60 - __builtin_clzl(bits));
    return cls < MYMALLOC_SIZE_CLASSES - 1 ? cls : MYMALLOC_SIZE_CLASSES - 1;
}
/* Count one call of an allocating entry point and the size it asks for, for
 * a thread known to be registered. */
static inline void mm_count_alloc_live(struct mm_thread *t, enum mymalloc_call call, size_t n)
{
    size_t cls = mm_size_class(n);
    mm_count_live(t, call);
    t->sizes[cls]++;
}

/* The same for any thread. */
static inline void mm_count_alloc(enum mymalloc_call call, size_t n)
{
    struct mm_thread *t = &mm_self;
    if (unlikely(t->state != MM_THREAD_LIVE)) {
        mm_count_alloc_slow(call, mm_size_class(n));
        return;
    }
    mm_count_alloc_live(t, call, n);
}

/* The calling thread's arena, for its allocations. */
static inline struct mm_arena *mm_thread_arena(void)
{
    struct mm_thread *t = &mm_self;
    return likely(t->arena != NULL) ? t->arena : mm_thread_attach(t);
}

MM_HIDDEN int mm_cache_stash(struct mm_thread *t);
MM_HIDDEN void mm_cache_adopt(struct mm_thread *t, struct mm_arena *a);
MM_HIDDEN void mm_cache_stash_free(struct mm_arena *a);
MM_HIDDEN size_t mm_cache_count(const struct mm_cache *c, size_t *blocks);

/* ---- decay.c: the decay driven from the thread layer ---- */
MM_HIDDEN void mm_decay_look_idle(struct mm_arena *busy);
MM_HIDDEN void mm_decay_round(void);

/* ---- background.c: the opt-in background release thread ---- */
MM_HIDDEN void mm_background_start(void);
MM_HIDDEN void mm_background_fork_child(void);
MM_HIDDEN int mm_background_missing(void);

#endif
