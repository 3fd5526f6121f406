/* park.c - small blocks parked unmerged.  When a thread's cache drains, its
 * blocks do not go back into the bins at once (a merge with the
 * neighbours, then a split again at the next refill, each under the lock):
 * they wait in their arena, listed by origin and class as in a cache, up to
 * MM_PARK_LIMIT bytes, and the next refill of that class takes them as they
 * are.  Only a block whose neighbours are both in use (cached and parked
 * blocks count as in use) is parked; one next to a free block or the top
 * is freed, as it merges.  Parked blocks stay in use for the heap and keep
 * the cache key (a second free is still a double free).  They are merged
 * into the heap when the heap would otherwise grow, when a free merges into
 * the top and leaves it over the trim threshold while one of them may lie
 * just below it (freeing the end of the heap must still shrink it), once
 * they have waited for the decay (at a tick of their arena, busy or idle),
 * when caching goes off, and at malloc_trim.  Heap layer; the arena's lock
 * is held throughout. */
#include "heap.h"

/* Bytes parked per arena, at most.  (1 MiB until 2026-12-06, when parked
 * blocks were merged at every top join: 16 MiB, merged only as above, took
 * 6% of the instructions and cache misses off python's dict churn.) */
#define MM_PARK_LIMIT ((size_t)1 << 24)

/* Park b (in use), of origin index o and class cls: 1, or 0 when the
 * caller must free it: the arena has no room, or a neighbour of b is free
 * (or the top), so that freeing b would merge, and give memory back. */
int mm_park(struct mm_arena *a, block_t *b, size_t o, size_t cls)
{
    size_t size = block_size(b);
    if (a->parked_bytes + size > MM_PARK_LIMIT || !block_prev_inuse(b))
        return 0;
    if (mm_check_level() != 0 && unlikely(!mm_heap_block_sound_any(a, b)))
        return 0;       /* the heap's free reports it */
    block_t *next = block_at(b, size);
    if (next == a->top || !block_inuse(next))
        return 0;
    if (a->parked_bytes == 0)
        a->parked_since = mm_now_ms();
    if ((char *)next > a->parked_end)
        a->parked_end = (char *)next;
    void *user = block_user(b);
    cache_words_set(user, a->parked[o][cls]);
    a->parked[o][cls] = user;
    a->parked_bytes += size;
    a->parked_blocks++;
    return 1;
}

/* Up to `most` parked blocks of origin index o and class cls, linked as a
 * cache list (NULL-terminated); *count gets how many.  NULL when none. */
void *mm_park_take(struct mm_arena *a, size_t o, size_t cls, unsigned most, unsigned *count)
{
    void *first = a->parked[o][cls], *last = NULL, *user = first;
    unsigned n = 0;
    while (user != NULL && n < most) {
        last = user;
        user = mm_cached_next(user);        /* a damaged link ends the list (reported) */
        n++;
        a->parked_bytes -= block_size(block_of_user(last));
    }
    if (last == NULL)
        return NULL;
    a->parked[o][cls] = user;
    a->parked_blocks -= n;
    cache_words_set(last, NULL);
    *count = n;
    return first;
}

/* Every parked block merged into the heap.  1 when there were any. */
int mm_park_release(struct mm_arena *a)
{
    if (a->parked_bytes == 0)
        return 0;
    a->parked_bytes = 0;         /* first: the frees below may join the top and ask again */
    a->parked_blocks = 0;
    a->parked_end = NULL;
    for (size_t o = 0; o < MM_CACHE_ORIGINS; o++)
        for (size_t cls = 0; cls < MM_CACHE_CLASSES; cls++) {
            void *user = a->parked[o][cls];
            a->parked[o][cls] = NULL;
            mm_heap_free_cached_list(a, user);
        }
    return 1;
}

/* A free has just merged into the top: if that leaves the top over the trim
 * threshold and a parked block may lie just below it (the highest end of a
 * block parked since the last merge reaches the top), the parked blocks are
 * merged too, so that the heap can shrink past them.  Any other top join
 * leaves them parked (merging them at every one cost python's churn more
 * than parking saved). */
void mm_park_top_joined(struct mm_arena *a)
{
    if (a->parked_bytes != 0 &&
        (a->top == NULL || (a->parked_end >= (char *)a->top &&
                            block_size(a->top) >= mm_setting(&mm_settings.trim_threshold))))
        mm_park_release(a);
}

/* A tick of the arena: parked blocks that have waited for the decay go. */
void mm_park_tick(struct mm_arena *a, size_t now)
{
    size_t decay = mm_setting(&mm_settings.decay_ms);
    if (a->parked_bytes != 0 && decay != SIZE_MAX && !mm_ms_within(now, a->parked_since, decay))
        mm_park_release(a);
}
