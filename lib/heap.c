/* heap.c - the heap of an arena: its regions (the brk heap, or mmap segments
 * when sbrk cannot be used), the top block they end with, growing and trimming
 * it, and carving, merging, splitting and checking blocks.  Callers hold the
 * arena lock. */
#include <errno.h>
#include <string.h>
#include "heap.h"

#define SEGMENT_MIN ((size_t)1 << 20)    /* smallest mmap segment */
#define ARENA_SEGMENT_MIN ((size_t)4 << 20)   /* ... of a non-main arena */

static inline char *region_end(const struct mm_region *r) { return (char *)r + r->size; }
static inline block_t *region_first(struct mm_region *r) { return block_at(r, MM_REGION_FIRST_BLOCK); }
static inline block_t *region_fence(struct mm_region *r) { return (block_t *)(region_end(r) - MM_WORD); }

static void note_system_bytes(struct mm_arena *a, ptrdiff_t change)
{
    a->system_bytes += (size_t)change;
    if (a->system_bytes > a->peak_system_bytes)
        a->peak_system_bytes = a->system_bytes;
}

/* The old top, when a new region takes over, becomes an ordinary free block:
 * its region's fence stops it from merging past the region. */
/* ---- the freed fill inside the top (MYMALLOC_CHECK=2) ----
 * A filled block that merges into the top leaves its fill there: the top
 * remembers up to where (a->top_filled) its inside, from 16 bytes into its
 * user area, holds the freed pattern.  A block carved from the top is
 * verified, so a write after free into a block that merged into the top is
 * still caught when the memory is handed out again.  Pages released from
 * the top, a trim, and a new top end the claim. */
static char *top_fill_start(struct mm_arena *a)
{
    return (char *)block_user(a->top) + 2 * MM_WORD;
}

/* The claim, cut down to what lies below `limit`. */
static void top_fill_limit(struct mm_arena *a, char *limit)
{
    if (a->top_filled > limit)
        a->top_filled = limit;
    if (a->top == NULL || a->top_filled <= top_fill_start(a))
        a->top_filled = NULL;
}

/* The first `need` bytes of the top are about to be handed out: 1 when their
 * part of the fill is whole; else a report, and the claim ends. */
static int top_fill_intact(struct mm_arena *a, size_t need)
{
    char *from = top_fill_start(a), *to = (char *)a->top + need;
    size_t offset;
    if (a->top_filled == NULL || mm_freed_fill_ok(from, (size_t)((to < a->top_filled ? to : a->top_filled) - from),
                                                  &offset))
        return 1;
    mm_report_changed("malloc", "write after free in block", block_user(a->top), offset + 2 * MM_WORD,
                      " after it merged into the top", need);
    a->top_filled = NULL;
    return 0;
}

static void top_retire(struct mm_arena *a)
{
    block_t *t = a->top;
    a->top_filled = NULL;
    if (t == NULL)
        return;
    block_mark_free(t, block_size(t));
    mm_bin_insert(&a->bins, t);
    a->top = NULL;
    a->top_region = NULL;
}

/* Lay out a new region over [base, base + size) and make its single block the
 * top.  base is 16-byte aligned, size a multiple of 16; the bytes from
 * `fresh` on are known to read as zero (fresh from the kernel). */
static void region_start(struct mm_arena *a, char *base, size_t size, int from_sbrk, char *fresh)
{
    struct mm_region *r = (struct mm_region *)base;

    top_retire(a);
    r->size = size;
    r->from_sbrk = (size_t)from_sbrk;
    r->next = a->regions;
    a->regions = r;

    block_t *t = region_first(r);
    block_set_head(t, (size_t)((char *)region_fence(r) - (char *)t), BLOCK_PREV_INUSE);
    block_set_head(region_fence(r), 0, BLOCK_INUSE);
    a->top = t;
    a->top_region = r;
    a->fresh_from = fresh > (char *)block_user(t) ? fresh : (char *)block_user(t);

    /* Read without the lock by the pointer checks: atomic, and only widened. */
    if (a->lowest == 0 || (uintptr_t)base < a->lowest)
        __atomic_store_n(&a->lowest, (uintptr_t)base, __ATOMIC_RELAXED);
    if ((uintptr_t)region_end(r) > a->highest)
        __atomic_store_n(&a->highest, (uintptr_t)region_end(r), __ATOMIC_RELAXED);
    note_system_bytes(a, (ptrdiff_t)size);
}

/* Add `bytes` at the end of the top's region (memory the kernel just gave). */
static void top_extend(struct mm_arena *a, size_t bytes)
{
    struct mm_region *r = a->top_region;
    block_t *old_fence = region_fence(r);

    old_fence->head = 0;               /* keep the new top interior all zero */
    r->size += bytes;
    block_set_head(a->top, block_size(a->top) + bytes, BLOCK_PREV_INUSE);
    block_set_head(region_fence(r), 0, BLOCK_INUSE);
    if ((uintptr_t)region_end(r) > a->highest)
        __atomic_store_n(&a->highest, (uintptr_t)region_end(r), __ATOMIC_RELAXED);
    note_system_bytes(a, (ptrdiff_t)bytes);
}

static int grow_with_sbrk(struct mm_arena *a, size_t need, size_t pad)
{
    size_t page = mm_page_size();
    int contiguous = a->top != NULL && a->top_region->from_sbrk &&
                     region_end(a->top_region) == a->brk_end;
    size_t want = contiguous ? need + MM_MIN_BLOCK - block_size(a->top)
                             : need + MM_MIN_BLOCK + 2 * MM_ALIGN + sizeof(struct mm_region);
    if (want > MM_MAX_REQUEST - pad)
        return 0;
    char *from = contiguous ? a->brk_end : mm_os_brk_now();
    size_t increment = (size_t)((char *)align_up((uintptr_t)from + want + pad, page) - from);
    char *old = mm_os_sbrk((intptr_t)increment);

    if (old == NULL)
        return 0;    /* tried again at the next growth: the break may free up */
    if (contiguous && old == a->brk_end) {
        __atomic_store_n(&a->brk_end, old + increment, __ATOMIC_RELEASE);
        top_extend(a, increment);
        return 1;
    }
    /* A fresh brk heap, or someone else moved the break: start a region.
     * The rest of the page the break was in may hold what was there before
     * (another sbrk user that lowered the break by less than a page): only
     * the pages after it are known to be zero. */
    char *base = (char *)align_up((uintptr_t)old, MM_ALIGN);
    char *end = (char *)align_down((uintptr_t)(old + increment), MM_ALIGN);
    if (a->brk_start == NULL || old < a->brk_start)
        __atomic_store_n(&a->brk_start, old, __ATOMIC_RELEASE);
    __atomic_store_n(&a->brk_end, old + increment, __ATOMIC_RELEASE);
    region_start(a, base, (size_t)(end - base), 1, (char *)align_up((uintptr_t)old, page));
    return 1;
}

static int grow_with_segment(struct mm_arena *a, size_t need, size_t pad)
{
    size_t want = need + MM_MIN_BLOCK + MM_ALIGN + sizeof(struct mm_region);
    if (want > MM_MAX_REQUEST - pad)
        return 0;
    size_t size = align_up(want + pad, mm_page_size());
    if (a->index != 0) {
        /* A non-main arena's segment: whole granules in the granule map,
         * at least ARENA_SEGMENT_MIN (pages are touched only when used). */
        if (size < ARENA_SEGMENT_MIN)
            size = ARENA_SEGMENT_MIN;
        char *base = mm_segment_map(a, &size);
        if (base == NULL)
            return 0;
        region_start(a, base, size, 0, base);
    } else {
        if (size < SEGMENT_MIN)
            size = SEGMENT_MIN;
        char *base = mm_os_map(size);
        if (base == NULL)
            return 0;
        region_start(a, base, size, 0, base);
        mm_segment_note(a->top_region);
    }
    __atomic_store_n(&a->has_segments, 1, __ATOMIC_RELAXED);
    return 1;
}

/* Make the top at least need + MM_MIN_BLOCK bytes.  0 when the kernel says no. */
static int heap_grow(struct mm_arena *a, size_t need)
{
    size_t pad = mm_setting(&mm_settings.top_pad);
    int saved_errno = errno;    /* a failed sbrk before a good segment is no error */
    while (a->top == NULL || block_size(a->top) < need + MM_MIN_BLOCK) {
        if (!a->no_sbrk && grow_with_sbrk(a, need, pad))
            continue;
        if (!grow_with_segment(a, need, pad))
            return 0;
    }
    errno = saved_errno;
    return 1;
}

/* Cut a block of `need` bytes off the front of the top.  *dirty gets how many
 * of its user bytes may be non-zero (the rest are fresh from the kernel). */
static block_t *top_carve(struct mm_arena *a, size_t need, size_t origin, size_t *dirty)
{
    block_t *b = a->top;
    size_t top_size = block_size(b);
    char *user = block_user(b), *end = (char *)b + need;

    mm_assert(top_size >= need + MM_MIN_BLOCK && block_prev_inuse(b));
    if (unlikely(a->top_filled != NULL))
        (void)top_fill_intact(a, need);     /* carrying on, handed out all the same */
    block_set_head(b, need, BLOCK_INUSE | BLOCK_PREV_INUSE | origin);
    a->top = block_at(b, need);
    block_set_head(a->top, top_size - need, BLOCK_PREV_INUSE);
    top_fill_limit(a, a->top_filled);
    if (dirty != NULL) {
        *dirty = a->fresh_from <= user ? 0 : (size_t)((a->fresh_from < end ? a->fresh_from : end) - user);
        mm_zero_claim(b, user + *dirty, (size_t)(end - user) - *dirty,
                      "the top above the mark of bytes never handed out (fresh_from)");
    }
    if (a->fresh_from < (char *)block_user(a->top))
        a->fresh_from = (char *)block_user(a->top);
    return b;
}

/* Take a free block whose links were written after free out of use for good
 * (in quarantine: in use, never handed out), and rebuild the bins from the
 * heap itself, since its list can no longer be followed. */
void mm_heap_quarantine_free(struct mm_arena *a, block_t *bad)
{
    if (block_head_ok(bad) && !block_inuse(bad)) {
        block_set_head(bad, block_size(bad), BLOCK_INUSE | ORIGIN_QUARANTINE | (bad->head & BLOCK_PREV_INUSE));
        block_set_prev_inuse(block_next(bad));
        a->inuse_bytes += block_size(bad);
    }
    mm_heap_rebuild_bins(a);
}

/* The part of a filled free block about to be handed out must still hold
 * the freed pattern; else report the write after free and quarantine the
 * block (already out of its bin). */
static int freed_fill_intact(struct mm_arena *a, block_t *b, size_t need)
{
    size_t size = block_size(b), offset;
    size_t end = size - need >= MM_MIN_BLOCK ? need : size - MM_WORD;
    if (end <= sizeof(block_t) || mm_release_fill_ok(b, sizeof(block_t), end, &offset))
        return 1;
    mm_report_changed("malloc", "write after free in block", block_user(b), offset - MM_HEADER, "", size);
    block_set_head(b, size, BLOCK_INUSE | ORIGIN_QUARANTINE | (b->head & BLOCK_PREV_INUSE));
    block_set_prev_inuse(block_next(b));
    a->inuse_bytes += size;
    return 0;
}

/* The top's header was overwritten (a write past the end of the block before
 * it): report it, then rewrite it from what is known, its region's end. */
static MM_COLD void top_corrupted(struct mm_arena *a)
{
    block_t *t = a->top;
    block_set_head(t, (size_t)((char *)region_fence(a->top_region) - (char *)t), BLOCK_PREV_INUSE);
    mm_report("malloc", "corrupted header of the top block", block_user(t),
              "a write past the end of the block before it?", 0);
}

static MM_COLD void bin_corruption(struct mm_arena *a, block_t *bad)
{
    mm_report("malloc", "corrupted free block", block_user(bad), "written after free?", block_size(bad));
    mm_heap_quarantine_free(a, bad);
}

/* calloc(): how many user bytes of the block b just taken may be non-zero.
 * [zero_from, zero_to) (offsets from b) are released pages, which read as
 * zero: only the bytes before them need clearing, and those after them (less
 * than a page, where the block goes past them) are cleared here. */
static size_t calloc_dirty(block_t *b, size_t zero_from, size_t zero_to)
{
    size_t size = block_size(b);
    if (zero_to <= zero_from || zero_from >= size)
        return block_usable(b);
    if (zero_to < size)
        memset((char *)b + zero_to, 0, size - zero_to);
    mm_zero_claim(b, (char *)b + zero_from, (zero_to < size ? zero_to : size) - zero_from,
                  "a free block's released pages (MM_RELEASE_ZERO)");
    return zero_from - MM_HEADER;
}


/* A free block for `need` bytes out of the bins: best fit, or the block the
 * placement policy (MYMALLOC_FIT, fit.c) chooses. */
static inline block_t *free_block_take(struct mm_arena *a, size_t need, block_t **corrupt)
{
    if (likely(a->fit.policy == MM_FIT_BEST))
        return mm_bin_take(a, need, corrupt);
    return mm_fit_take(a, need, corrupt);
}

/* Take a free block of at least `need` bytes for use: from the bins (best
 * fit unless another policy is set), else the top (grown as needed).  NULL
 * when out of memory. */
/* mm_heap_alloc and mm_heap_alloc_span: a free block of at least `need`
 * bytes, or the top, gives a block of `need` bytes times as many as fit, up
 * to `most`. */
static block_t *heap_alloc(struct mm_arena *a, size_t need, size_t most, size_t origin, size_t *dirty);

block_t *mm_heap_alloc(struct mm_arena *a, size_t need, size_t origin, size_t *dirty)
{
    return heap_alloc(a, need, 1, origin, dirty);
}

/* Up to `most` blocks of `need` bytes as one in-use block: a multiple of
 * `need` bytes, or (one block) `need` bytes plus less than MM_MIN_BLOCK when
 * what was left of a free block could not stand alone.  One bin search and
 * one split for a cache's refill, which cuts it into blocks itself. */
block_t *mm_heap_alloc_span(struct mm_arena *a, size_t need, size_t most, size_t origin)
{
    return heap_alloc(a, need, most, origin, NULL);
}

static block_t *heap_alloc(struct mm_arena *a, size_t need, size_t most, size_t origin, size_t *dirty)
{
    block_t *corrupt = NULL;
    block_t *b = free_block_take(a, need, &corrupt);
    while (unlikely(corrupt != NULL || (b != NULL && (b->head & BLOCK_CANARY) && !freed_fill_intact(a, b, need)))) {
        if (corrupt != NULL)
            bin_corruption(a, corrupt);
        corrupt = NULL;
        b = free_block_take(a, need, &corrupt);
    }
    if (b != NULL) {
        size_t size = block_size(b), zero_from = 0, zero_to = 0;
        size_t released = mm_release_flags(b);    /* read before the block is written */
        size_t age = mm_release_age(b);
        if (most > 1) {
            size_t count = size / need < most ? size / need : most;
            if (count > 1 && size - count * need != 0 && size - count * need < MM_MIN_BLOCK)
                count--;        /* what is left must stand alone (a span is whole blocks) */
            need *= count;
        }
        if (dirty != NULL && !mm_release_zero_range(b, &zero_from, &zero_to))
            zero_from = zero_to = 0;
        if (size - need >= MM_MIN_BLOCK) {
            block_t *rest = block_at(b, need);
            block_mark_free_after_inuse(rest, size - need);
            mm_bin_insert(&a->bins, rest);
            mm_release_inherit(&a->bins, rest, released);   /* its inner pages are b's */
            mm_release_keep_age(&a->bins, rest, age);       /* free since b was */
            size = need;
        } else {
            block_set_prev_inuse(block_next(b));
        }
        block_set_head(b, size, BLOCK_INUSE | origin | (b->head & BLOCK_PREV_INUSE));
        if (dirty != NULL)
            *dirty = calloc_dirty(b, zero_from, zero_to);
    } else {
        if (unlikely(a->top != NULL && !block_head_ok(a->top)))
            top_corrupted(a);
        size_t span = need * most;
        if (a->parked_bytes != 0 && (a->top == NULL || block_size(a->top) < span + MM_MIN_BLOCK) &&
            mm_park_release(a))     /* merged, they may serve it before the heap grows */
            return heap_alloc(a, need, most, origin, dirty);
        if ((a->top == NULL || block_size(a->top) < span + MM_MIN_BLOCK) && !heap_grow(a, span)) {
            if (most == 1)
                return NULL;
            span = need;    /* no room for the span: one block, if that fits */
            if ((a->top == NULL || block_size(a->top) < span + MM_MIN_BLOCK) && !heap_grow(a, span))
                return NULL;
        }
        need = span;
        b = top_carve(a, need, origin, dirty);
    }
    a->inuse_bytes += block_size(b);
    mm_release_after(a, "malloc");
    return b;
}

/* Refile every free block of every region (links and bitmap rebuilt). */
void mm_heap_rebuild_bins(struct mm_arena *a)
{
    mm_fit_forget(a);
    memset(&a->bins, 0, sizeof a->bins);
    for (struct mm_region *r = a->regions; r != NULL; r = r->next) {
        block_t *fence = region_fence(r);
        for (block_t *b = region_first(r); b != fence; b = block_next(b)) {
            if (!block_head_ok(b) || block_size(b) < MM_MIN_BLOCK || (char *)block_next(b) > (char *)fence)
                break;      /* cannot step further in this region */
            if (b != a->top && !block_inuse(b)) {
                size_t released = mm_release_flags_checked(b);
                mm_bin_insert(&a->bins, b);
                mm_release_inherit(&a->bins, b, released);
            }
        }
    }
}

/* ---- whole segments of non-main arenas back to the kernel ----
 * A non-main arena's segment whose blocks are all free holds one free block
 * from its first block to its fence (or, for the newest, the top alone).
 * Once that block's decay is over (release.c), or at malloc_trim(0), the
 * segment is unmapped: out of the granule map, its address space given
 * back, which madvise alone never does (a process under RLIMIT_AS needs it
 * to map something else). */

/* The region whose first block is b, when b is one of a's segments. */
static struct mm_region **region_link_of(struct mm_arena *a, const block_t *b)
{
    const struct mm_region *r = (const struct mm_region *)((const char *)b - MM_REGION_FIRST_BLOCK);
    if (a->index == 0 || (uintptr_t)r % ((uintptr_t)1 << MM_GRANULE_SHIFT) != 0)
        return NULL;
    struct mm_region **link = &a->regions;
    while (*link != NULL && *link != r)
        link = &(*link)->next;
    return *link != NULL ? link : NULL;
}

/* Unmap the region at *link, which holds nothing in use. */
static int region_unmap(struct mm_arena *a, struct mm_region **link)
{
    struct mm_region *r = *link;
    size_t size = r->size;
    *link = r->next;
    if (!mm_segment_unmap(a, r, size)) {
        *link = r;                     /* munmap refused: it stays */
        return 0;
    }
    note_system_bytes(a, -(ptrdiff_t)size);
    return 1;
}

/* Is b, a free block in a bin, all that a segment of a non-main arena holds?
 * (The cheap tests first: a segment starts on a granule and b ends at a
 * fence.) */
int mm_heap_segment_whole(struct mm_arena *a, block_t *b)
{
    block_t *next = block_next(b);
    return a->index != 0 && ((uintptr_t)b - MM_REGION_FIRST_BLOCK) % ((uintptr_t)1 << MM_GRANULE_SHIFT) == 0 &&
           (next->head & (BLOCK_SIZE_MASK | BLOCK_INUSE)) == BLOCK_INUSE && region_link_of(a, b) != NULL;
}

/* b (mm_heap_segment_whole) leaves its bin and its segment is unmapped; 1
 * when done (else b stays as it was). */
int mm_heap_segment_drop(struct mm_arena *a, block_t *b)
{
    struct mm_region **link = region_link_of(a, b);
    if (link == NULL || *link == a->top_region)
        return 0;
    size_t released = mm_release_flags(b);
    mm_bin_remove(&a->bins, b);
    if (region_unmap(a, link))
        return 1;
    mm_bin_insert(&a->bins, b);
    mm_release_inherit(&a->bins, b, released);
    return 0;
}

/* The top of a non-main arena is all its segment holds: unmap the segment
 * (the next allocation maps a new one).  1 when done. */
int mm_heap_top_drop(struct mm_arena *a)
{
    if (a->index == 0 || a->top == NULL || a->top != region_first(a->top_region))
        return 0;
    struct mm_region **link = region_link_of(a, a->top);
    if (link == NULL || !region_unmap(a, link))
        return 0;
    a->top = NULL;
    a->top_region = NULL;
    a->fresh_from = NULL;
    a->top_filled = NULL;
    a->bins.dirty.top_waiting = 0;
    return 1;
}

/* The top's pages in [start, end) (page aligned, inside the top) were just
 * given back with madvise: they read as zero.  Dirty bytes past `end`, on
 * the page that holds the region's fence (which cannot go), are cleared by
 * hand, so that everything from `start` on reads as zero. */
void mm_heap_top_released(struct mm_arena *a, char *start, char *end)
{
    top_fill_limit(a, start);
    if (a->fresh_from > end)
        memset(end, 0, (size_t)(a->fresh_from - end));
    a->fresh_from = start;
}

/* Give the top back to the kernel down to `keep` free bytes.  1 if any memory
 * was released. */
int mm_heap_trim(struct mm_arena *a, size_t keep)
{
    size_t page = mm_page_size();
    block_t *t = a->top;
    if (t == NULL || keep >= block_size(t))
        return 0;

    /* The top keeps keep + MM_MIN_BLOCK bytes; the region ends on a page. */
    struct mm_region *r = a->top_region;
    char *end = region_end(r);
    char *new_end = (char *)align_up((uintptr_t)block_user(t) + keep + MM_MIN_BLOCK, page);
    if (new_end >= end)
        return 0;
    size_t cut = (size_t)(end - new_end);
    top_fill_limit(a, new_end - MM_WORD);      /* (the fence moves there) */
    if (a->index != 0) {
        /* A non-main arena's segments stay mapped (the granule map stays
         * true): the top's used pages go back with madvise, and read as zero
         * when touched again. */
        char *fence_page = (char *)align_down((uintptr_t)region_fence(r), page);
        char *dirty_end = a->fresh_from < fence_page ? (char *)align_up((uintptr_t)a->fresh_from, page) : fence_page;
        if (dirty_end <= new_end || mm_os_release(new_end, (size_t)(dirty_end - new_end)) != 0)
            return 0;
        mm_heap_top_released(a, new_end, dirty_end);
        return 1;
    }
    if (r->from_sbrk) {
        /* Only if the break is still ours: never cut a foreign sbrk user. */
        if (end != a->brk_end || mm_os_brk_now() != end || mm_os_sbrk(-(intptr_t)cut) == NULL)
            return 0;
        __atomic_store_n(&a->brk_end, end - cut, __ATOMIC_RELEASE);
        r->size -= cut;
    } else {
        r->size -= cut;            /* readers see the smaller segment first */
        mm_segment_shrunk(r);
        if (mm_os_unmap(end - cut, cut) != 0) {
            r->size += cut;
            mm_segment_shrunk(r);
            return 0;
        }
    }
    block_set_head(t, block_size(t) - cut, BLOCK_PREV_INUSE);
    block_set_head(region_fence(r), 0, BLOCK_INUSE);
    if (a->fresh_from > (char *)region_fence(r))
        a->fresh_from = (char *)region_fence(r);
    note_system_bytes(a, -(ptrdiff_t)cut);
    return 1;
}

/* With MYMALLOC_CHECK=2 a free block's inside, between its links and its tag,
 * holds the freed pattern (BLOCK_CANARY set on the free block says so).  When
 * two filled blocks merge, the words at their junction are refilled: the tag
 * before it, the header and links of the block that starts there, and its
 * release words when it was big enough to have them (`size`). */
static void fill_junction(block_t *junction, size_t size)
{
    size_t words = size >= MM_RELEASE_MIN ? MM_RELEASE_HEAD : sizeof(block_t);
    mm_freed_fill((char *)junction - MM_WORD, MM_WORD + words);
}

/* A free neighbour of a block being freed or resized has links that do not
 * point back at it (written after free): reported in the name of `func`
 * (NULL: the family that allocated the block, of `origin`) and taken out of
 * use for good. */
static MM_NOINLINE MM_COLD void neighbour_links_broken(struct mm_arena *a, block_t *bad, const char *func,
                                                       size_t origin)
{
    if (func == NULL)
        func = mm_origin_free_name(origin);
    mm_report(func, "corrupted free block", block_user(bad), "written after free?", block_size(bad));
    mm_heap_quarantine_free(a, bad);
}

/* Merge the now-unused block b with free neighbours and file the result in a
 * bin or the top.  Returns 1 when it joined the top.  A neighbour whose
 * links were written after free is left out of the merge, then reported
 * (for `func`, see neighbour_links_broken) once the heap is whole again. */
static int block_merge_free(struct mm_arena *a, block_t *b, int filled, const char *func)
{
    size_t size = block_size(b), origin = block_origin(b);
    size_t released = 0;     /* release flags of the free blocks merged in */
    size_t age = 0, aged = size;   /* the age of the biggest part (b's: now), its size */
    block_t *broken_prev = NULL, *broken_next = NULL;
    int joined_top = 0;

    if (!block_prev_inuse(b)) {
        block_t *prev = block_prev(b);
        mm_assert(!block_inuse(prev) && block_size(prev) == block_prev_tag(b));
        size_t prev_released = mm_release_flags(prev), prev_age = mm_release_age(prev);
        if (likely(mm_bin_remove_checked(a, prev))) {
            filled = filled && (prev->head & BLOCK_CANARY);
            released |= prev_released;
            if (prev_age != 0 && block_size(prev) > aged) {
                age = prev_age;
                aged = block_size(prev);
            }
            block_set_head(b, size, 0);     /* left inside prev: a second free() sees it free */
            if (filled)
                fill_junction(b, 0);
            size += block_size(prev);
            b = prev;
        } else {
            broken_prev = prev;
        }
    }
    block_t *next = block_at(b, size);
    if (next == a->top) {
        /* b's fill joins the top's: contiguous when the old top held some
         * (its header and first 16 bytes, now inside, are filled too). */
        char *filled_to = NULL;
        size_t top_size = block_size(next);
        filled = filled && released == 0;      /* (released pages read as zero) */
        if (filled && a->top_filled != NULL) {
            mm_freed_fill(next, MM_WORD + 2 * MM_WORD);     /* its header: inside now */
            filled_to = a->top_filled;
        } else if (filled) {
            filled_to = (char *)next;
        }
        block_set_head(b, size + top_size, BLOCK_PREV_INUSE);
        if (filled)     /* a big free block merged in kept its release words there */
            mm_freed_fill((char *)b + sizeof(block_t), MM_RELEASE_HEAD - sizeof(block_t));
        a->top = b;
        a->top_filled = filled_to;
        top_fill_limit(a, a->top_filled);
        joined_top = 1;
    } else {
        size_t next_released = block_inuse(next) ? 0 : mm_release_flags(next);
        size_t next_age = block_inuse(next) ? 0 : mm_release_age(next);
        if (!block_inuse(next) && likely(mm_bin_remove_checked(a, next))) {
            /* The block after next already has its P bit clear. */
            size_t next_size = block_size(next);
            filled = filled && (next->head & BLOCK_CANARY);
            released |= next_released;
            if (next_age != 0 && next_size > aged)
                age = next_age;
            size += next_size;
            if (filled)
                fill_junction(next, next_size);
        } else {
            if (!block_inuse(next))
                broken_next = next;
            block_clear_prev_inuse(next);
        }
        block_set_head(b, size, BLOCK_PREV_INUSE | (filled ? BLOCK_CANARY : 0));
        *block_tag(b) = size;
        mm_bin_insert(&a->bins, b);
        /* Partly released: released again in full once its decay is over.
         * It ages as its biggest part: small frees next to a big free block
         * do not keep its pages resident for ever. */
        mm_release_inherit(&a->bins, b, released != 0 ? MM_RELEASE_MAYBE_ZERO : 0);
        mm_release_keep_age(&a->bins, b, age);
    }
    if (unlikely(broken_prev != NULL))
        neighbour_links_broken(a, broken_prev, func, origin);
    if (unlikely(broken_next != NULL))
        neighbour_links_broken(a, broken_next, func, origin);
    return joined_top;
}

/* What a free trims at once of a top over the trim threshold when the
 * arena trimmed less than the decay ago: everything past the pad and this
 * much. */
#define TOP_KEPT ((size_t)4 << 20)

/* Trim the top when it is over the trim threshold.  An arena that trims
 * again within the decay (neither 0 nor -1) of its last trim is giving
 * pages back that it then faults in again: with `wait`, only the part past
 * the pad and TOP_KEPT goes at once, and the rest once the top has stayed
 * over the threshold for the decay (release.c).  So a program that frees
 * the end of its heap once sees the break come down at once, and one that
 * keeps growing and shrinking it trims at most once per decay. */
void mm_heap_trim_over(struct mm_arena *a, int wait)
{
    struct mm_dirty *d = &a->bins.dirty;
    size_t threshold = mm_setting(&mm_settings.trim_threshold);
    size_t pad = mm_setting(&mm_settings.top_pad);
    if (a->top == NULL) {                /* its segment was unmapped */
        d->top_waiting = 0;
        return;
    }
    size_t top = block_size(a->top);
    if (a->index != 0)      /* only the top's pages in use can go (see mm_heap_trim) */
        top = a->fresh_from > (char *)a->top ? (size_t)(a->fresh_from - (char *)a->top) : 0;
    /* Trim only when at least a page beyond the pad can go. */
    if (!(top >= threshold && threshold != SIZE_MAX && top - MM_MIN_BLOCK >= pad + mm_page_size())) {
        d->top_waiting = 0;
        return;
    }
    size_t decay = mm_setting(&mm_settings.decay_ms);
    int timed = decay != 0 && decay != SIZE_MAX;
    size_t now = timed ? mm_now_ms() : 0;
    if (wait && timed && d->trimmed && mm_ms_within(now, d->last_trim, decay)) {
        if (top - MM_MIN_BLOCK >= pad + TOP_KEPT + mm_page_size())
            mm_heap_trim(a, pad + TOP_KEPT);
        mm_release_top_wait(a, now);
        return;
    }
    d->top_waiting = 0;
    if (mm_heap_trim(a, pad)) {
        d->trimmed = 1;
        d->last_trim = now;
    }
}

static void maybe_trim(struct mm_arena *a)
{
    mm_heap_trim_over(a, 1);
}

/* free() of an in-use heap block that has passed the caller's checks; with
 * `fill` (MYMALLOC_CHECK=2) its inside gets the freed pattern
 * (MM_FILL_DONE: it holds it already, a block leaving the quarantine).  `func` names
 * the call in a report of a neighbour written after free (NULL: the
 * family's free, for a cached block going back). */
void mm_heap_free(struct mm_arena *a, block_t *b, int fill, const char *func)
{
    a->inuse_bytes -= block_size(b);
    if (fill == 1)
        mm_freed_fill(block_user(b), block_usable(b));
    if (block_merge_free(a, b, fill, func)) {
        mm_park_release(a);      /* parked blocks just below may join it too */
        maybe_trim(a);
    }
    mm_release_after(a, "free");
}

/* Hand back b, a block that sat in a thread's cache or on a stack of pending
 * frees (in use for the heap all the while), to its arena, whose lock is
 * held.  Its neighbours are checked now, not when it was freed: a write past
 * its end into the next header is reported now, in the name of the family
 * that freed it. */
void mm_heap_free_cached(struct mm_arena *a, block_t *b)
{
    size_t *user = block_user(b);
    user[0] = user[1] = 0;
    if (mm_check_level() != 0 && unlikely(!mm_heap_block_sound_any(a, b)) &&
        !mm_heap_block_report(a, b, user, mm_origin_free_name(block_origin(b)), block_origin(b)))
        return;
    mm_heap_free(a, b, 0, NULL);
}

/* Is the block header at address h (and its links) inside arena a's
 * memory, and so readable while a's lock is held?  For the main arena,
 * inside [lo, hi), its brk heap; for the others, inside a granule of their
 * segments. */
static inline int links_readable(const struct mm_arena *a, const char *lo, const char *hi, uintptr_t h)
{
    if (a->index == 0)
        return h >= (uintptr_t)lo && h + sizeof(block_t) <= (uintptr_t)hi;
    return mm_granule_arena(h) == a->index && mm_granule_arena(h + sizeof(block_t) - 1) == a->index;
}

/* The bin links of the block at h, if it is readable and free, prefetched
 * for the writes an unlink makes. */
static inline void prefetch_links(const struct mm_arena *a, const char *lo, const char *hi, uintptr_t h)
{
    const block_t *b = (const block_t *)h;
    if (links_readable(a, lo, hi, h) && !(b->head & BLOCK_INUSE)) {
        __builtin_prefetch(b->next_free, 1);
        __builtin_prefetch(b->prev_free, 1);
    }
}

/* A batch of cached blocks is about to be freed into arena a, whose lock is
 * held: start the loads their frees would wait for one by one (each a
 * likely cache miss or three), all at once, so that they overlap: first the
 * neighbours' headers, then the bin links of the free neighbours, which a
 * merge unlinks (a write into two other free blocks each).  Only reads of
 * a's own memory besides prefetches: a damaged header is left for the frees
 * to report.  (python's dict churn: 5% less time; glibc-simple, whose
 * blocks are in the CPU cache anyway: 2% more instructions.) */
void mm_heap_prefetch_neighbours(const struct mm_arena *a, void *const *users, unsigned n)
{
    /* (Addresses as integers: a damaged size or tag is no pointer overflow.) */
    for (unsigned i = 0; i < n; i++) {
        const block_t *b = block_of_user(users[i]);
        size_t head = b->head;
        __builtin_prefetch((const void *)((uintptr_t)b + (head & BLOCK_SIZE_MASK)));
        if (!(head & BLOCK_PREV_INUSE))
            __builtin_prefetch((const void *)((uintptr_t)b - block_prev_tag(b)));
    }
    const char *lo = a->brk_start, *hi = a->brk_end;
    for (unsigned i = 0; i < n; i++) {
        const block_t *b = block_of_user(users[i]);
        size_t head = b->head;
        prefetch_links(a, lo, hi, (uintptr_t)b + (head & BLOCK_SIZE_MASK));
        if (!(head & BLOCK_PREV_INUSE))
            prefetch_links(a, lo, hi, (uintptr_t)b - block_prev_tag(b));
    }
}

/* The same for every block of a list of cached blocks (user pointers, linked
 * as in a cache), from `user` to its end or its first damaged link. */
void mm_heap_free_cached_list(struct mm_arena *a, void *user)
{
    while (user != NULL) {
        void *next = mm_cached_next(user);
        mm_heap_free_cached(a, block_of_user(user));
        user = next;
    }
}

/* Shrink an in-use block to `need` bytes, freeing the tail when it can stand
 * alone as a block. */
void mm_block_shrink(struct mm_arena *a, block_t *b, size_t need)
{
    size_t size = block_size(b);
    if (size - need < MM_MIN_BLOCK)
        return;
    block_set_head(b, need, b->head & BLOCK_FLAGS);
    block_t *rest = block_at(b, need);
    block_set_head(rest, size - need, BLOCK_INUSE | BLOCK_PREV_INUSE);
    a->inuse_bytes -= size - need;
    if (block_merge_free(a, rest, 0, "realloc"))
        maybe_trim(a);
    mm_release_after(a, "realloc");
}

/* Grow an in-use block in place to `need` bytes, into a free neighbour or the
 * top (growing the heap when the top is too small, unless the block would be
 * big enough for a mapping of its own).  1 on success. */
int mm_block_grow(struct mm_arena *a, block_t *b, size_t need)
{
    size_t size = block_size(b);
    block_t *next = block_next(b);

    if (next == a->top && size + block_size(next) < need + MM_MIN_BLOCK) {
        if (need >= mm_setting(&mm_settings.mmap_threshold) || !heap_grow(a, need - size))
            return 0;
        next = block_next(b);
    }
    if (next == a->top) {
        size_t total = size + block_size(next);
        block_set_head(b, need, b->head & BLOCK_FLAGS);
        a->top = block_at(b, need);
        block_set_head(a->top, total - need, BLOCK_PREV_INUSE);
        top_fill_limit(a, a->top_filled);
        if (a->fresh_from < (char *)block_user(a->top))
            a->fresh_from = (char *)block_user(a->top);
    } else if (!block_inuse(next) && size + block_size(next) >= need) {
        size_t total = size + block_size(next);
        size_t released = mm_release_flags(next), age = mm_release_age(next);
        if (unlikely(!mm_bin_remove_checked(a, next))) {
            neighbour_links_broken(a, next, "realloc", ORIGIN_MALLOC);
            return 0;
        }
        if (total - need >= MM_MIN_BLOCK) {
            block_set_head(b, need, b->head & BLOCK_FLAGS);
            block_t *rest = block_at(b, need);
            block_mark_free_after_inuse(rest, total - need);
            mm_bin_insert(&a->bins, rest);
            mm_release_inherit(&a->bins, rest, released);   /* its inner pages are next's */
            mm_release_keep_age(&a->bins, rest, age);
        } else {
            block_set_head(b, total, b->head & BLOCK_FLAGS);
            block_set_prev_inuse(block_next(b));
        }
    } else {
        return 0;
    }
    a->inuse_bytes += block_size(b) - size;
    mm_release_after(a, "realloc");
    return 1;
}


/* What the walk found wrong with block b, reported in the name of `func`
 * (when not NULL) if it is the first problem found; 1. */
static MM_COLD int walk_problem(const char *func, int problems, block_t *b, const char *what, size_t offset)
{
    if (func == NULL || problems != 0)
        return 1;
    if (offset != SIZE_MAX)
        mm_report_changed(func, what, block_user(b), offset, "", block_size(b));
    else
        mm_report(func, what, block_user(b), NULL, block_size(b));
    return 1;
}

/* Walk every region block by block and every bin, counting broken
 * invariants; with `func` (not NULL) the first one found in a block is also
 * reported in its name (the check at exit, MYMALLOC_CHECK=2). */
int mm_heap_walk_check(struct mm_arena *a, const char *func)
{
    int problems = 0;
    size_t free_in_regions = 0, free_in_bins = 0, listed = 0;

    for (struct mm_region *r = a->regions; r != NULL; r = r->next) {
        block_t *b = region_first(r), *fence = region_fence(r);
        int prev_inuse = 1;
        while (b != fence) {
            size_t size = block_size(b);
            if (size < MM_MIN_BLOCK || size % MM_ALIGN != 0 ||
                (char *)b + size > (char *)fence || block_mmapped(b)) {
                problems += walk_problem(func, problems, b, "corrupted header of block", SIZE_MAX);
                break;
            }
            if (!block_head_ok(b) || block_prev_inuse(b) != prev_inuse)
                problems += walk_problem(func, problems, b, "corrupted header of block", SIZE_MAX);
            size_t offset;
            if (b != a->top && (b->head & BLOCK_CANARY)) {
                if (block_inuse(b) && mm_block_cached(b)) {     /* in quarantine: filled */
                    if (!mm_freed_fill_ok(block_user(b), MM_WORD, &offset) ||
                        (!mm_freed_fill_ok((char *)block_user(b) + 2 * MM_WORD, size - 3 * MM_WORD, &offset) &&
                         (offset += 2 * MM_WORD, 1)))
                        problems += walk_problem(func, problems, b, "write after free in block", offset);
                } else if (block_inuse(b)) {
                    if (!mm_canary_ok(b, &offset))
                        problems += walk_problem(func, problems, b, "write past the end of block", offset);
                } else if (!mm_release_fill_ok(b, sizeof(block_t), size - MM_WORD, &offset)) {
                    problems += walk_problem(func, problems, b, "write after free in block", offset - MM_HEADER);
                }
            }
            if (b == a->top) {
                if (block_next(b) != fence || !prev_inuse)
                    problems++;
                if (a->top_filled != NULL && a->top_filled > top_fill_start(a) &&
                    !mm_freed_fill_ok(top_fill_start(a), (size_t)(a->top_filled - top_fill_start(a)), &offset))
                    problems += walk_problem(func, problems, b, "write after free in the top block",
                                             offset + 2 * MM_WORD);
            } else if (!block_inuse(b)) {
                if (*block_tag(b) != size || !prev_inuse)  /* no two free neighbours */
                    problems++;
                free_in_regions += size;
                if (size >= MM_RELEASE_MIN && !mm_release_words_ok(a, b))
                    problems++;
                else if (size >= MM_RELEASE_MIN && !(mm_release_flags_checked(b) & MM_RELEASE_ZERO))
                    listed++;      /* not released: on the dirty list */
            }
            prev_inuse = b == a->top ? 0 : block_inuse(b);
            b = block_next(b);
        }
        if (!block_inuse(fence) || block_size(fence) != 0)
            problems++;
    }
    for (size_t i = 0; i < MM_NBINS; i++) {
        const block_t *prev = NULL;
        int nonempty = a->bins.head[i] != NULL;
        if (nonempty != (int)((a->bins.map[i / 64] >> (i % 64)) & 1))
            problems++;
        for (block_t *b = a->bins.head[i]; b != NULL; b = b->next_free) {
            if (block_inuse(b) || mm_bin_index(block_size(b)) != i || b->prev_free != prev || !mm_heap_owns(a, b)) {
                problems += walk_problem(func, problems, prev != NULL ? (block_t *)prev : b, "corrupted free block",
                                         SIZE_MAX);
                break;
            }
            free_in_bins += block_size(b);
            prev = b;
        }
    }
    for (size_t w = 0; w < MM_BINMAP_WORDS; w++)
        if (((a->bins.words >> w) & 1) != (a->bins.map[w] != 0))
            problems++;
    if (free_in_bins != free_in_regions)
        problems++;
    problems += mm_fit_check(a);
    problems += mm_release_list_check(a, listed);
    return problems;
}
