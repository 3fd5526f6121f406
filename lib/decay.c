/* decay.c - when free pages go back beyond an arena's own heap operations:
 * a thread's poll every 256th block it caches (a program whose calls all
 * hit its caches makes no heap operation), the look at the arenas no thread
 * uses after a heap operation asked for it, and the background thread's
 * round.  Each ticks an arena (release.c) under a try-lock, gives back the
 * cache an exited thread left there once no thread came for it within the
 * decay, and unmaps the last segment of an arena idle for the decay.
 * Thread layer: it calls the arenas, the caches and the heaps below. */
#include "cache.h"

/* A non-main arena no thread uses, whose top is all its newest segment
 * holds (mm_heap_top_drop)?  Read without its lock, as a hint. */
static int idle_top_droppable(const struct mm_arena *a)
{
    const char *top = (const char *)__atomic_load_n(&a->top, __ATOMIC_RELAXED);
    const char *region = (const char *)__atomic_load_n(&a->top_region, __ATOMIC_RELAXED);
    return a->index != 0 && top != NULL && top == region + MM_REGION_FIRST_BLOCK &&
           __atomic_load_n(&a->threads, __ATOMIC_RELAXED) == 0;
}

/* Has arena a, whose lock the caller does not hold, anything the decay
 * may give back (read racily, as a hint)? */
static int has_decay_work(const struct mm_arena *a)
{
    return __atomic_load_n(&a->bins.dirty.head, __ATOMIC_RELAXED) != NULL ||
           __atomic_load_n(&a->pending, __ATOMIC_RELAXED) != NULL ||
           __atomic_load_n(&a->parked_bytes, __ATOMIC_RELAXED) != 0 ||
           __atomic_load_n(&a->bins.dirty.top_waiting, __ATOMIC_RELAXED) ||
           __atomic_load_n(&a->stashed, __ATOMIC_RELAXED) || idle_top_droppable(a);
}

/* Arena a, whose lock is held now, on behalf of the threads that do not use
 * it: the cache an exited thread left there once it has waited the decay
 * for a thread to take it, the frees waiting on its stack, its tick, and
 * its last segment once it has been idle for the decay. */
static void look_after(struct mm_arena *a)
{
    size_t decay = mm_setting(&mm_settings.decay_ms);
    if (a->stashed && decay != SIZE_MAX && (decay == 0 || !mm_ms_within(mm_now_ms(), a->stash_since, decay)))
        mm_cache_stash_free(a);     /* no thread came for it */
    mm_pending_take(a);
    mm_release_tick(a, "free");
    if (decay != SIZE_MAX && idle_top_droppable(a) &&
        (decay == 0 || !mm_ms_within(mm_now_ms(), __atomic_load_n(&a->idle_since, __ATOMIC_RELAXED), decay)))
        mm_heap_top_drop(a);
}

/* A heap operation on arena `busy` asked for a look at the idle arenas
 * (release.c), and its lock was just let go: each idle arena with work,
 * if its lock is free at once. */
void mm_decay_look_idle(struct mm_arena *busy)
{
    __atomic_store_n(&busy->bins.dirty.look_idle, 0, __ATOMIC_RELAXED);
    unsigned count = __atomic_load_n(&mm_arena_count, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; count > 1 && i < count; i++) {
        struct mm_arena *idle = __atomic_load_n(&mm_arenas[i], __ATOMIC_ACQUIRE);
        if (idle == busy || __atomic_load_n(&idle->threads, __ATOMIC_RELAXED) != 0 || !has_decay_work(idle) ||
            !mm_trylock(&idle->lock))
            continue;
        look_after(idle);
        mm_unlock(&idle->lock);
    }
}

/* The background thread's round (background.c): every arena whose lock is
 * free at once, busy or idle.  The calling thread holds no lock. */
void mm_decay_round(void)
{
    unsigned count = __atomic_load_n(&mm_arena_count, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < count; i++) {
        struct mm_arena *a = __atomic_load_n(&mm_arenas[i], __ATOMIC_ACQUIRE);
        if (!has_decay_work(a) || !mm_trylock(&a->lock))
            continue;
        look_after(a);
        mm_unlock(&a->lock);
    }
}

/* A thread's every 256th push onto its cache (cache.h): at most four times
 * per decay, its arena, if it can have it at once, does what a heap
 * operation's tick does.  A program whose allocations all hit its caches
 * still gets its free pages back once their decay is over. */
void mm_decay_poll(struct mm_thread *t)
{
    struct mm_arena *a = t->arena;
    size_t decay = mm_setting(&mm_settings.decay_ms);
    if (a == NULL || decay == SIZE_MAX)
        return;
    size_t now = mm_now_ms();
    if (mm_ms_within(now, t->polled, decay / 4))
        return;
    t->polled = now;
    if (unlikely(mm_background_missing()))
        mm_background_start();         /* a fork child's, or one that failed to start */
    if (!mm_trylock(&a->lock))
        return;                        /* busy: its own operations will tick */
    mm_pending_take(a);
    mm_release_tick(a, "free");
    mm_unlock_heap(a);
}
