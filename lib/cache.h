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
MM_HIDDEN extern const uint16_t mm_cache_block[MM_CACHE_CLASSES];   /* block size of each class */

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

/* The class of a block of `block` bytes (at most MM_CACHE_MAX_BLOCK) that a
 * free may cache, or 0 when its size is no class's (a block made while the
 * caches were off, or shrunk by realloc). */
static inline size_t mm_cache_class_of_block(size_t block)
{
    if (likely(block <= MM_CACHE_SMALL_MAX_BLOCK))
        return block / MM_ALIGN;
    size_t cls = mm_cache_ranged_class(block);
    return mm_cache_block[cls] == block ? cls : 0;
}

static inline int mm_cache_usable(const struct mm_thread *t)
{
    return t->state == MM_THREAD_LIVE && __atomic_load_n(&mm_cache_mode, __ATOMIC_RELAXED);
}

/* The first two user words of a cached block: the link to the next block of
 * its list, mangled with the block's address and a secret (a write after free
 * cannot point malloc at memory of the writer's choice), and a key that binds
 * the link to the block under another secret.  A free() that finds an intact
 * pair is freeing a block already cached (a double free); a malloc() that
 * finds a broken one reports a write after free. */
static inline void cache_words_set(size_t *user, const block_t *next)
{
    size_t link = (uintptr_t)next ^ (uintptr_t)mm_secret.multiplier ^ (uintptr_t)user;
    user[0] = link;
    user[1] = link ^ (uintptr_t)mm_secret.mix ^ (uintptr_t)user;
}

static inline block_t *cache_words_next(const size_t *user)
{
    return (block_t *)(user[0] ^ (uintptr_t)mm_secret.multiplier ^ (uintptr_t)user);
}

static inline int cache_words_intact(const size_t *user)
{
    return (user[0] ^ user[1]) == ((uintptr_t)mm_secret.mix ^ (uintptr_t)user);
}

/* Is the in-use block b sitting in a thread's cache or on an arena's stack
 * of pending frees (freed already)?  Its first two words tell. */
static inline int mm_block_cached(block_t *b)
{
    return block_size(b) <= MM_CACHE_MAX_BLOCK && cache_words_intact(block_user(b));
}

/* With checks on, a cached block's words must be intact. */
static inline int mm_cache_block_ok(block_t *b)
{
    return mm_check_level() == 0 || likely(cache_words_intact(block_user(b)));
}

/* Unlink b, the first block of its list, and hand it out. */
static inline void *mm_cache_take(struct mm_thread *t, size_t o, size_t cls, block_t *b)
{
    size_t *user = block_user(b);
    t->cache.head[o][cls] = cache_words_next(user);
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
    cache_words_set(block_user(b), t->cache.head[o][cls]);
    t->cache.head[o][cls] = b;
    if (unlikely(++t->cache.count[o][cls] > mm_cache_limit[cls]))
        mm_cache_drain(t, o, cls);
}

#endif
