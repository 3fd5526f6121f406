/* check.h - the checks of an in-use heap block handed back to its arena (by
 * free, realloc, or a cache drain), under the arena's lock: its header, and
 * the neighbours a free will merge with.  The common case is inline and
 * makes no call; the reports (what exactly was wrong) are in malloc.c. */
#ifndef MYMALLOC_CHECK_H
#define MYMALLOC_CHECK_H

#include "cache.h"

MM_HIDDEN MM_COLD int mm_heap_block_report(struct mm_arena *a, block_t *b, const void *p, const char *func,
                                           size_t origin);

/* The checks of mm_heap_block_ok but the first, with no report: b's header
 * is sound, in use and of this origin; the next header is sound and says b
 * is in use (a write past b's end would have changed it); a free block
 * before b has a sound header whose size its boundary tag repeats (only
 * when `with_prev`: a resize in place never looks at the block before, and
 * its header may be a cache miss away; the free that merges with it checks
 * it).  Each header word is read once.  The free neighbours' links are
 * checked as a merge unlinks them (mm_bin_remove_checked), so that an
 * unlink never writes through a link written after free. */
static inline int heap_block_sound_of(struct mm_arena *a, block_t *b, size_t origin_mask, size_t origin,
                                      int with_prev)
{
    struct mm_bounds r = mm_heap_bounds(a);
    size_t head = b->head;
    if (unlikely(!head_check_matches(b, head) || (head & (BLOCK_INUSE | origin_mask)) != (BLOCK_INUSE | origin)))
        return 0;
    block_t *next = block_at(b, head & BLOCK_SIZE_MASK);
    if (unlikely(!mm_bounds_hold(r, next)))
        return 0;
    size_t next_head = next->head;
    if (unlikely(!head_check_matches(next, next_head) || !(next_head & BLOCK_PREV_INUSE)))
        return 0;
    if (with_prev && !(head & BLOCK_PREV_INUSE)) {
        size_t tag = block_prev_tag(b);
        if (unlikely(tag % MM_ALIGN != 0 || tag < MM_MIN_BLOCK || tag > (uintptr_t)b - r.low))
            return 0;
        block_t *prev = block_prev(b);
        size_t prev_head = prev->head;
        /* Free (U clear) and of the tag's size: one comparison. */
        if (unlikely(!head_check_matches(prev, prev_head) || (prev_head & (BLOCK_SIZE_MASK | BLOCK_INUSE)) != tag))
            return 0;
    }
    return 1;
}

static inline int mm_heap_block_sound(struct mm_arena *a, block_t *b, size_t origin)
{
    return heap_block_sound_of(a, b, ORIGIN_MASK, origin, 1);
}

/* The same, whatever b's origin (a block leaving a cache, whose origin the
 * free that cached it checked). */
static inline int mm_heap_block_sound_any(struct mm_arena *a, block_t *b)
{
    return heap_block_sound_of(a, b, 0, 0, 1);
}

/* Checks of an in-use heap block about to be freed or resized (the arena
 * lock held, checks on): first that it is not cached or waiting (freed
 * already: a cache drain, which clears that mark, checks only the rest).
 * 0 after a report, the block then left alone. */
static inline int heap_block_ok_of(struct mm_arena *a, block_t *b, const void *p, const char *func, size_t origin,
                                   int with_prev)
{
    if (likely(!mm_block_cached(b) && heap_block_sound_of(a, b, ORIGIN_MASK, origin, with_prev)))
        return 1;
    return mm_heap_block_report(a, b, p, func, origin);
}

static inline int mm_heap_block_ok(struct mm_arena *a, block_t *b, const void *p, const char *func, size_t origin)
{
    return heap_block_ok_of(a, b, p, func, origin, 1);
}

/* The same for a block about to be resized in place (realloc), which does
 * not touch the block before it. */
static inline int mm_heap_block_ok_to_resize(struct mm_arena *a, block_t *b, const void *p, const char *func,
                                             size_t origin)
{
    return heap_block_ok_of(a, b, p, func, origin, 0);
}

#endif
