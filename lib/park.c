/* park.c - small blocks parked unmerged.  When a thread's cache drains, its
 * blocks do not go back into the bins at once (a merge with the
 * neighbours, then a split again at the next refill, each under the lock):
 * they wait in their arena, listed by origin and class as in a cache, up to
 * MM_PARK_LIMIT bytes, and the next refill of that class takes them as they
 * are.  The blocks one drain parks in an arena make one chain, which a
 * refill takes whole, without walking it (a walk of blocks parked long ago
 * is a cache miss per block).  Only a block whose neighbours are both in
 * use (cached and parked blocks count as in use) is parked; one next to a
 * free block or the top is freed, as it merges.  Parked blocks stay in use
 * for the heap and keep the cache key (a second free is still a double
 * free).  They are merged into the heap whenever a free merges into the top
 * (they may lie just below it: freeing the end of the heap in reverse order
 * parks them, and the heap must still shrink at once), when the heap would
 * otherwise grow, once they have waited for the decay (at a tick of their
 * arena, busy or idle), when caching goes off, and at malloc_trim.  Heap
 * layer; the arena's lock is held throughout. */
#include "heap.h"

/* Bytes parked per arena, at most.  (16 MiB, merged at a top join only
 * when the top was over the trim threshold, took 6% of the simulated cost
 * off python's dict churn, no time that could be told from the noise, and
 * added 7% to gcc's peak RSS and 5-10% to mmbench's mt-churn.) */
#define MM_PARK_LIMIT ((size_t)1 << 20)

/* The word a chain's first block keeps after its key (its third word,
 * unused while it is parked): the next chain of its list and this chain's
 * count, masked with the link secret. */
#define CHAIN_COUNT_SHIFT 48
#define CHAIN_MOST 255          /* more than any drain gives back at once */
static inline size_t chain_word(const void *next, size_t count)
{
    return ((uintptr_t)next | (count << CHAIN_COUNT_SHIFT)) ^ (uintptr_t)mm_secret.link;
}

/* Add b (in use, drained from a cache list) to chain c, to be parked in
 * arena a: 1, or 0 when the caller must free it: the arena has no room, or
 * a neighbour of b is free (or the top), so that freeing b would merge, and
 * give memory back. */
int mm_park_add(struct mm_arena *a, struct mm_park_chain *c, block_t *b)
{
    size_t size = block_size(b);
    if (a->parked_bytes + c->bytes + size > MM_PARK_LIMIT || !block_prev_inuse(b))
        return 0;
    if (mm_check_level() != 0 && unlikely(!mm_heap_block_sound_any(a, b)))
        return 0;       /* the heap's free reports it */
    block_t *next = block_at(b, size);
    if (next == a->top || !block_inuse(next))
        return 0;
    void *user = block_user(b);
    if (c->head == NULL)
        c->head = user;
    else
        cache_words_set(c->tail, user);
    c->tail = user;
    c->bytes += size;
    c->count++;
    return 1;
}

/* Park chain c (filled by mm_park_add) in arena a, on the list of origin
 * index o and class cls, as one piece: a refill takes it whole, without
 * walking it.  c is left empty. */
void mm_park_close(struct mm_arena *a, struct mm_park_chain *c, size_t o, size_t cls)
{
    if (c->head == NULL)
        return;
    cache_words_set(c->tail, NULL);
    ((size_t *)c->head)[2] = chain_word(a->parked[o][cls], c->count);
    a->parked[o][cls] = c->head;
    if (a->parked_bytes == 0)
        a->parked_since = mm_now_ms();
    a->parked_bytes += c->bytes;
    a->parked_blocks += c->count;
    *c = (struct mm_park_chain){ 0 };
}

/* The next chain after chain `head` of a list, and head's count: 0 when
 * head's word was overwritten after free (reported in the name of `func`,
 * the call that found it). */
static int chain_next(const char *func, void *head, void **next, size_t *count)
{
    size_t word = ((size_t *)head)[2] ^ (uintptr_t)mm_secret.link;
    *next = (void *)(word & (((size_t)1 << CHAIN_COUNT_SHIFT) - 1));
    *count = word >> CHAIN_COUNT_SHIFT;
    if (likely((uintptr_t)*next % MM_ALIGN == 0 && *count != 0 && *count <= CHAIN_MOST))
        return 1;
    mm_cached_report(func, head);
    return 0;
}

/* The first chain of parked blocks of origin index o and class cls, linked
 * as a cache list (NULL-terminated); *count gets how many blocks it holds.
 * NULL when there are none (or their chain was damaged: reported, and the
 * rest of the list left out of use). */
void *mm_park_take(struct mm_arena *a, size_t o, size_t cls, unsigned *count)
{
    void *head = a->parked[o][cls], *next;
    size_t n;
    if (head == NULL)
        return NULL;
    if (unlikely(!chain_next("malloc", head, &next, &n))) {
        a->parked[o][cls] = NULL;
        return NULL;
    }
    a->parked[o][cls] = next;
    a->parked_bytes -= n * block_size(block_of_user(head));    /* all of one size */
    a->parked_blocks -= n;
    *count = (unsigned)n;
    return head;
}

/* Every parked block merged into the heap.  1 when there were any. */
int mm_park_release(struct mm_arena *a)
{
    if (a->parked_bytes == 0)
        return 0;
    a->parked_bytes = 0;         /* first: the frees below may join the top and ask again */
    a->parked_blocks = 0;
    for (size_t o = 0; o < MM_CACHE_ORIGINS; o++)
        for (size_t cls = 0; cls < MM_CACHE_CLASSES; cls++) {
            void *head = a->parked[o][cls], *next;
            size_t n;
            a->parked[o][cls] = NULL;
            for (; head != NULL && chain_next("free", head, &next, &n); head = next)
                mm_heap_free_cached_list(a, head);
        }
    return 1;
}

/* A tick of the arena: parked blocks that have waited for the decay go. */
void mm_park_tick(struct mm_arena *a, size_t now)
{
    size_t decay = mm_setting(&mm_settings.decay_ms);
    if (a->parked_bytes != 0 && decay != SIZE_MAX && !mm_ms_within(now, a->parked_since, decay))
        mm_park_release(a);
}
