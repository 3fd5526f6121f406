/* cache.h - the fast paths of the per-thread cache: popping a small block on
 * malloc and pushing one on free, with no lock.  The slow parts (refill in a
 * batch, drain in a batch, flush at thread exit) are in cache.c. */
#ifndef MYMALLOC_CACHE_H
#define MYMALLOC_CACHE_H

#include "internal.h"

/* Set by the settings: the caches are in use (MYMALLOC_TCACHE, not at check
 * level 2, settings read). */
MM_HIDDEN extern int mm_cache_mode;

MM_HIDDEN void *mm_cache_refill(struct mm_thread *t, size_t o, size_t cls, size_t origin);
MM_HIDDEN void mm_cache_drain(struct mm_thread *t, size_t o, size_t cls);
MM_HIDDEN void mm_cache_flush(struct mm_thread *t);
MM_HIDDEN MM_COLD void *mm_cache_corrupt(struct mm_thread *t, size_t o, size_t cls);
MM_HIDDEN extern const uint8_t mm_cache_limit[MM_CACHE_CLASSES];

static inline int mm_cache_usable(const struct mm_thread *t)
{
    return t->state == MM_THREAD_LIVE && __atomic_load_n(&mm_cache_mode, __ATOMIC_RELAXED);
}

/* The second user word of a cached block holds this key: a free() that finds
 * it there is freeing a block that is already cached (a double free). */
static inline size_t mm_cache_key(const void *user) { return (size_t)(mm_secret.mix ^ (uintptr_t)user); }

/* Links are stored mangled with their own address, so a write after free
 * into a cached block cannot point malloc at memory of the writer's choice. */
static inline block_t *cache_link(const void *user, const block_t *link)
{
    return (block_t *)((uintptr_t)link ^ (uintptr_t)mm_secret.multiplier ^ (uintptr_t)user);
}

/* A link read from a cached block: NULL, or a header inside the heap. */
static inline int cache_link_plausible(const block_t *link)
{
    const struct mm_arena *a = &mm_main_arena;
    uintptr_t lowest = __atomic_load_n(&a->lowest, __ATOMIC_RELAXED);
    uintptr_t span = __atomic_load_n(&a->highest, __ATOMIC_RELAXED) - lowest;
    return link == NULL || ((uintptr_t)link % MM_ALIGN == MM_WORD && (uintptr_t)link - lowest < span);
}

/* With checks on, a cached block's key and link must be intact: a write
 * after free into them is reported rather than followed. */
static inline int mm_cache_block_ok(block_t *b)
{
    size_t *user = block_user(b);
    return mm_check_level() == 0 ||
           likely(user[1] == mm_cache_key(user) && cache_link_plausible(cache_link(user, (block_t *)user[0])));
}

/* Unlink b, the first block of its list, and hand it out. */
static inline void *mm_cache_take(struct mm_thread *t, size_t o, size_t cls, block_t *b)
{
    size_t *user = block_user(b);
    t->cache.head[o][cls] = cache_link(user, (block_t *)user[0]);
    t->cache.count[o][cls]--;
    user[1] = 0;
    return user;
}

/* A block of class `cls` for origin index `o`, or NULL when the list is empty
 * (or was found damaged, reported and dropped). */
static inline void *mm_cache_pop(struct mm_thread *t, size_t o, size_t cls)
{
    block_t *b = t->cache.head[o][cls];
    if (b == NULL)
        return NULL;
    if (unlikely(!mm_cache_block_ok(b)))
        return mm_cache_corrupt(t, o, cls);
    return mm_cache_take(t, o, cls, b);
}

static inline void mm_cache_push(struct mm_thread *t, size_t o, size_t cls, block_t *b)
{
    size_t *user = block_user(b);
    user[0] = (size_t)cache_link(user, t->cache.head[o][cls]);
    user[1] = mm_cache_key(user);
    t->cache.head[o][cls] = b;
    if (unlikely(++t->cache.count[o][cls] > mm_cache_limit[cls]))
        mm_cache_drain(t, o, cls);
}

#endif
