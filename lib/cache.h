/* cache.h - the fast paths of the per-thread cache: popping a small block on
 * malloc and pushing one on free, with no lock.  The slow parts (refill in a
 * batch, drain in a batch, flush, the cache left to the arena at thread
 * exit) are in cache.c. */
#ifndef MYMALLOC_CACHE_H
#define MYMALLOC_CACHE_H

#include "thread.h"

/* Set by the settings: the caches are in use (MYMALLOC_TCACHE, not at check
 * level 2, settings read). */
MM_HIDDEN extern int mm_cache_mode;

MM_HIDDEN void *mm_cache_refill(struct mm_thread *t, size_t o, size_t cls, size_t origin);
/* Let go of arena a after heap operations; the look at the idle arenas one
 * of them asked for (release.c) is made then, holding no lock (decay.c). */
static inline void mm_unlock_heap(struct mm_arena *a)
{
    int look = __atomic_load_n(&a->bins.dirty.look_idle, __ATOMIC_RELAXED);
    mm_unlock(&a->lock);
    if (unlikely(look))
        mm_decay_look_idle(a);
}

MM_HIDDEN void mm_cache_drain(struct mm_thread *t, size_t o, size_t cls);
MM_HIDDEN void mm_cache_pushed(struct mm_thread *t, size_t o, size_t cls);
MM_HIDDEN void mm_cache_flush(struct mm_thread *t);
MM_HIDDEN void mm_cache_reset(struct mm_thread *t);
MM_HIDDEN MM_COLD void *mm_cache_corrupt(struct mm_thread *t, size_t o, size_t cls);
MM_HIDDEN extern const uint8_t mm_cache_limit[MM_CACHE_CLASSES];
#define MM_CACHE_LIMIT_MAX 120      /* the longest list's limit */
MM_HIDDEN extern const uint16_t mm_cache_block[MM_CACHE_CLASSES];   /* block size of each class */
/* The class of every request of an 8-byte step (mm_fast_step) up to
 * MM_CACHE_SMALL_MAX_REQUEST: one load instead of arithmetic on malloc's
 * fast path. */
MM_HIDDEN extern const uint8_t mm_cache_class_of_step[MM_FAST_SIZES];

/* The class of a block of `block` bytes, more than 1008 and at most 8192:
 * the class whose blocks are the smallest that hold it (sixteenths of a
 * power of two: 1024, then 1088, 1152, ... 2048, 2176, ... 8192). */
static inline size_t mm_cache_ranged_class(size_t block)
{
    size_t x = block - 1;
    unsigned lg = 63u - (unsigned)__builtin_clzl(x);
    return MM_CACHE_SMALL_CLASSES + (lg - 9) * 16 + (x >> (lg - 4)) - 31;
}

/* The class that serves a request of n bytes, n <= MM_CACHE_MAX_REQUEST. */
static inline size_t mm_cache_class(size_t n)
{
    if (likely(n <= MM_CACHE_SMALL_MAX_REQUEST))
        return request_to_class(n);
    return mm_cache_ranged_class(request_to_block(n));
}

/* The class of a block of `block` bytes that a free may cache, or 0 when its
 * size is no class's (0, more than MM_CACHE_MAX_BLOCK, or a block made while
 * the caches were off, or shrunk by realloc). */
static inline size_t mm_cache_class_of_block(size_t block)
{
    if (likely(block <= MM_CACHE_SMALL_MAX_BLOCK))
        return block / MM_ALIGN;
    if (block > MM_CACHE_MAX_BLOCK)
        return 0;
    size_t cls = mm_cache_ranged_class(block);
    return mm_cache_block[cls] == block ? cls : 0;
}

/* The thread is live and caching is on (one byte, kept by thread.c). */
static inline int mm_cache_usable(const struct mm_thread *t)
{
    return t->cache_on != 0;
}

/* Unlink the first block of a list, whose user pointer is `user`, and hand it
 * out; NULL when its link or key was damaged.  The key is checked as well as
 * the link: a write after free that moved the link of the block before this
 * one by a multiple of 16 bytes (into a live block, say) decoded to an
 * aligned pointer, but what it points at carries no key. */
static inline __attribute__((always_inline)) void *mm_cache_take(struct mm_thread *t, size_t o, size_t cls,
                                                                  void *user)
{
    const size_t *w = user;
    void *next = cache_words_next(user);
    if (unlikely(((w[1] ^ cache_key(user)) | ((uintptr_t)next % MM_ALIGN)) != 0))
        return NULL;
    t->cache.head[o][cls] = next;
    t->cache.room[o][cls]++;
    ((size_t *)user)[1] = 0;
    __builtin_prefetch(next, 1);   /* the next pop of this class reads it: start the load now */
    return user;
}

/* A block of class `cls` for origin index `o`, or NULL when the list is empty
 * (or was found damaged, reported and dropped). */
static inline void *mm_cache_pop(struct mm_thread *t, size_t o, size_t cls)
{
    void *user = t->cache.head[o][cls];
    if (user == NULL)
        return NULL;
    void *p = mm_cache_take(t, o, cls, user);
    if (unlikely(p == NULL))
        return mm_cache_corrupt(t, o, cls);
    return p;
}

/* Cache the block whose user pointer is `user` and whose key (cache_key) is
 * `key`; then drain half the list when it is over its limit (room below 0),
 * and every 256th push poll the arena (mm_decay_poll: a program whose
 * blocks all come and go through its cache makes no heap operation that
 * would release its free pages). */
static inline void mm_cache_push_keyed(struct mm_thread *t, size_t o, size_t cls, void *user, size_t key)
{
    /* cache_words_set_keyed, written out: with the key stored before the
     * list's head is read, GCC makes the free fast path 4 instructions
     * shorter. */
    size_t *w = user;
    w[1] = key;
    w[0] = (uintptr_t)t->cache.head[o][cls] ^ key ^ (uintptr_t)mm_secret.link;
    t->cache.head[o][cls] = user;
    if (unlikely(--t->cache.room[o][cls] < 0))
        mm_cache_pushed(t, o, cls);             /* (two tail calls: no stack frame here) */
    else if (unlikely(--t->poll_countdown == 0))
        mm_cache_pushed(t, o, cls);
}

#endif
