/* release.c - giving the pages inside big free blocks back to the kernel.
 *
 * Trimming (heap.c) returns the free end of the newest region.  Free blocks
 * anywhere else - pinned below a block still in use, or in an older region or
 * mmap segment - keep their pages resident unless they are released here:
 * the whole pages strictly inside the block go back with
 * madvise(MADV_DONTNEED) through mm_os_release.  MADV_DONTNEED, not MADV_FREE:
 * the pages leave the resident set at once (MADV_FREE pages still count in
 * RSS until the kernel runs short of memory, so a program or a container
 * limit watching its RSS would see nothing), and they then read as zero,
 * which calloc() can rely on.  The price is a page fault and a zeroed page
 * when the memory is used again, which is what the decay is for: a block is
 * released only once it has stayed free for the decay time (MYMALLOC_DECAY_MS,
 * default 1 s), so memory freed and soon reused is never released and faulted
 * in again.
 *
 * A free block of MM_RELEASE_MIN bytes or more (8 KiB and 64 bytes: big
 * enough to hold a whole 4 KiB page past these words, wherever it lies)
 * carries three more words after its bin links:
 *
 *   b +  0  header
 *   b +  8  next free, prev free (its bin)
 *   b + 24  state: the time it became free (ms, CLOCK_MONOTONIC_COARSE) << 2,
 *           ZERO and MAYBE_ZERO flags, and a check value like a header's
 *   b + 32  newer, older: its place in the dirty list
 *   ...     the pages that may be released: whole pages inside [b + 48, b + size - 8)
 *   b + size - 8  boundary tag
 *
 * The dirty list (struct mm_dirty in the bins) holds, oldest first, every
 * tracked free block whose pages were not released; mm_bin_insert and
 * mm_bin_remove keep it, so every way a block becomes free or stops being
 * free is covered.  ZERO: the block's inner pages were released (it is on no
 * list, its list links are NULL); calloc() need not clear them.  MAYBE_ZERO:
 * the block was made by merging a released block with others, so some of its
 * inner pages may read as zero; it is on the list and will be released again
 * (releasing a page twice is harmless).  A block split off a released block
 * is itself released: its inner pages lie inside the parent's.  A block
 * split off a block on the list keeps that block's time, and a block merged
 * from blocks on the list takes the time of the biggest of them
 * (mm_release_keep_age): the time is that of most of its pages.
 *
 * With MYMALLOC_CHECK=2 a freed block holds 0xdf; a released page reads as
 * zero instead, so the fill checks accept an inner page that is all zero in
 * a block flagged ZERO or MAYBE_ZERO (a write after free into such a page is
 * still caught: it leaves the page neither all zero nor all 0xdf).  The three
 * words are checked like bin links (mm_release_words_ok), not as fill.
 *
 * When: after each heap operation (heap.c calls mm_release_after at the end
 * of allocations, frees and in-place reallocations) a counter is bumped;
 * every MM_RELEASE_TICK-th operation, or every one with a decay of 0,
 * mm_release_tick reads the coarse clock and releases the blocks at the old
 * end of the list whose decay is over.  A program whose calls all hit its
 * thread caches makes no heap operation, and the arenas no thread uses
 * make none either: decay.c (the thread layer) ticks those for them, and
 * with MYMALLOC_BACKGROUND=1 a thread of ours does it for every arena while
 * the program sleeps.  malloc_trim() releases everything at once
 * (mm_release_all).
 *
 * A tracked block that is all a non-main arena's segment holds is not
 * released but unmapped with its segment (heap.c, mm_heap_segment_drop);
 * decay.c unmaps the last segment of an arena idle for the decay.
 *
 * The top waits for the decay too when its arena trimmed it less than the
 * decay ago (heap.c): trimming it every time it passes the trim threshold
 * would make the program, or the next thread to take the arena, fault the
 * same pages in again and again.  release_due trims it once it has stayed
 * over the threshold for the decay.
 *
 * All of it runs under the arena lock. */
#define _GNU_SOURCE
#include <errno.h>
#include <time.h>
#include "heap.h"

struct tracked {
    size_t head;
    block_t *next_free, *prev_free;
    size_t state;
    block_t *newer, *older;
};
_Static_assert(sizeof(struct tracked) == MM_RELEASE_HEAD, "the tracked words follow the bin links");

#define STATE_FLAGS ((size_t)3)
#define STATE_VALUE (((size_t)1 << CHECK_SHIFT) - 1)
#define STAMP_MASK  (STATE_VALUE >> 2)
_Static_assert(STAMP_MASK == MM_CLOCK_MASK, "a stamp holds the clock");

static inline struct tracked *tracked(const block_t *b) { return (struct tracked *)(uintptr_t)b; }
static inline int is_tracked(const block_t *b) { return block_size(b) >= MM_RELEASE_MIN; }

static inline void state_set(block_t *b, size_t stamp, size_t flags)
{
    struct tracked *t = tracked(b);
    t->state = head_with_check(&t->state, ((stamp & STAMP_MASK) << 2) | flags);
}

static inline int state_ok(const block_t *b)
{
    return mm_check_level() == 0 || head_check_matches(&tracked(b)->state, tracked(b)->state);
}

static inline size_t state_stamp(const block_t *b) { return (tracked(b)->state & STATE_VALUE) >> 2; }
static inline size_t state_flags(const block_t *b) { return tracked(b)->state & STATE_FLAGS; }

/* The whole pages strictly inside b's body, past the tracked words and
 * before the tag: [*start, *end).  0 when there is none. */
static int inner_pages(const block_t *b, uintptr_t *start, uintptr_t *end)
{
    size_t page = mm_page_size();
    *start = align_up((uintptr_t)b + MM_RELEASE_HEAD, page);
    *end = align_down((uintptr_t)b + block_size(b) - MM_WORD, page);
    return *end > *start;
}

static void list_unlink(struct mm_bins *bins, block_t *b)
{
    struct tracked *t = tracked(b);
    if (t->newer != NULL)
        tracked(t->newer)->older = t->older;
    else
        bins->dirty.tail = t->older;
    if (t->older != NULL)
        tracked(t->older)->newer = t->newer;
    else
        bins->dirty.head = t->newer;
    t->newer = t->older = NULL;
    bins->dirty.count--;
}

/* b, of MM_RELEASE_MIN bytes or more, has just been filed in a bin: free
 * since now, pages resident, newest on the list. */
void mm_release_add(struct mm_bins *bins, block_t *b)
{
    struct tracked *t = tracked(b);
    state_set(b, mm_now_ms(), 0);
    t->newer = NULL;
    t->older = bins->dirty.tail;
    if (bins->dirty.tail != NULL)
        tracked(bins->dirty.tail)->newer = b;
    else
        bins->dirty.head = b;
    bins->dirty.tail = b;
    bins->dirty.count++;
}

/* b, of MM_RELEASE_MIN bytes or more, leaves its bin: off the list if on it.
 * Its state word stays readable (mm_release_flags) until it is overwritten. */
void mm_release_remove(struct mm_bins *bins, block_t *b)
{
    if (tracked(b)->older != NULL || bins->dirty.head == b)
        list_unlink(bins, b);
}

/* mm_release_flags for a block nothing vouches for (the bins are being
 * rebuilt after damage): a state word that fails its check may belong to a
 * released block, so MAYBE_ZERO. */
size_t mm_release_flags_checked(const block_t *b)
{
    if (!is_tracked(b))
        return 0;
    return state_ok(b) ? state_flags(b) : MM_RELEASE_MAYBE_ZERO;
}

/* b, tracked, was just filed (mm_bin_insert) and its memory comes with
 * nonzero `flags` from the block(s) it was made of (mm_release_inherit):
 * ZERO keeps it off the list as released, MAYBE_ZERO marks it. */
void mm_release_set(struct mm_bins *bins, block_t *b, size_t flags)
{
    if (flags & MM_RELEASE_ZERO) {
        mm_release_remove(bins, b);
        state_set(b, state_stamp(b), MM_RELEASE_ZERO);
    } else {
        state_set(b, state_stamp(b), MM_RELEASE_MAYBE_ZERO);
    }
}

/* How long a tracked free block's pages have been free: its stamp plus 1,
 * or 0 for a block not tracked or released (nothing resident to age).  For
 * a block in a bin, read before it is taken out and written over. */
size_t mm_release_age(const block_t *b)
{
    if (!is_tracked(b) || (state_flags(b) & MM_RELEASE_ZERO))
        return 0;
    return state_stamp(b) + 1;
}

/* Is stamp x older than (or as old as) stamp y? */
static inline int stamp_not_newer(size_t x, size_t y)
{
    return ((y - x) & STAMP_MASK) < (STAMP_MASK >> 1);
}

/* b was just filed (newest on the list) but its memory has been free since
 * an older time, `age` (mm_release_age of the block it was split from, or
 * of the biggest block it was merged from): it gets that stamp, and goes to
 * the old end of the list: first when it is at least as old as the first,
 * else second.  So a big free block that keeps being carved from, or that
 * small frees keep merging into, is still released once its own pages have
 * been free for the decay.  The list may end up a little out of order,
 * which delays a release by less than one decay; finding the exact place
 * would mean a walk on every split and merge. */
void mm_release_keep_age(struct mm_bins *bins, block_t *b, size_t age)
{
    struct tracked *t = tracked(b);
    if (age == 0 || !is_tracked(b) || (state_flags(b) & MM_RELEASE_ZERO) || bins->dirty.tail != b)
        return;
    size_t stamp = age - 1;
    if (!stamp_not_newer(stamp, state_stamp(b)))
        return;
    list_unlink(bins, b);
    state_set(b, stamp, state_flags(b));
    block_t *first = bins->dirty.head;
    block_t *older = first != NULL && !stamp_not_newer(stamp, state_stamp(first)) ? first : NULL;
    block_t *newer = older != NULL ? tracked(older)->newer : first;
    t->older = older;
    t->newer = newer;
    if (older != NULL)
        tracked(older)->newer = b;
    else
        bins->dirty.head = b;
    if (newer != NULL)
        tracked(newer)->older = b;
    else
        bins->dirty.tail = b;
    bins->dirty.count++;
}

/* Where a free block's memory is known to read as zero, as offsets from b:
 * 1 and [*from, *to) for a released block, else 0. */
int mm_release_zero_range(const block_t *b, size_t *from, size_t *to)
{
    uintptr_t start, end;
    if (mm_release_flags_checked(b) != MM_RELEASE_ZERO || !inner_pages(b, &start, &end))
        return 0;
    *from = (size_t)(start - (uintptr_t)b);
    *to = (size_t)(end - (uintptr_t)b);
    return 1;
}

/* Are a tracked free block's state and list links sound (checked before they
 * are used, like its bin links: a write after free lands here)? */
int mm_release_words_ok(const struct mm_arena *a, const block_t *b)
{
    const struct tracked *t = tracked(b);
    const struct mm_dirty *d = &a->bins.dirty;
    if (!state_ok(b))
        return 0;
    if (state_flags(b) & MM_RELEASE_ZERO)
        return t->newer == NULL && t->older == NULL && d->head != b;
    struct mm_bounds r = mm_heap_bounds(a);
    if (!mm_link_plausible(r, t->newer) || !mm_link_plausible(r, t->older))
        return 0;
    if (t->older == NULL ? d->head != b : tracked(t->older)->newer != b)
        return 0;
    return t->newer == NULL ? d->tail == b : tracked(t->newer)->older == b;
}

/* madvise, leaving errno alone: free() never changes it. */
static int os_release(uintptr_t start, uintptr_t end)
{
    int saved_errno = errno;
    int r = mm_os_release((void *)start, (size_t)(end - start));
    errno = saved_errno;
    return r;
}

/* Give b's inner pages back: 1 when something was released, 0 when there
 * is nothing to release, -1 when the kernel refused. */
static int release_pages(block_t *b)
{
    uintptr_t start, end;
    if (!inner_pages(b, &start, &end))
        return 0;
    return os_release(start, end) == 0 ? 1 : -1;
}

/* Release b (on the list) and take it off.  0 when madvise failed (it stays). */
static int release_block(struct mm_bins *bins, block_t *b, int *released)
{
    int r = release_pages(b);
    if (r < 0)
        return 0;
    *released |= r;
    size_t stamp = state_stamp(b);
    list_unlink(bins, b);
    state_set(b, stamp, MM_RELEASE_ZERO);
    return 1;
}

/* Give b (on the list, due) back: with its whole segment when it is all a
 * thread arena's segment holds, else its inner pages.  0 when madvise
 * failed (it stays). */
static int give_back(struct mm_arena *a, block_t *b, int *released)
{
    if (mm_heap_segment_whole(a, b) && mm_heap_segment_drop(a, b)) {
        *released = 1;
        return 1;
    }
    return release_block(&a->bins, b, released);
}

static MM_COLD void list_corrupted(struct mm_arena *a, block_t *b, const char *func)
{
    mm_report(func, "corrupted free block", block_user(b), "written after free?", block_size(b));
    mm_heap_quarantine_free(a, b);
}

/* Is the oldest block on the list sound enough to be released? */
static int sound(const struct mm_arena *a, const block_t *b)
{
    if (mm_check_level() == 0)
        return 1;
    return mm_link_plausible(mm_heap_bounds(a), b) && block_head_ok(b) && !block_inuse(b) && is_tracked(b) && mm_bin_links_ok(a, b);
}

/* Called after heap operations (mm_release_after): release the blocks that
 * have been free for the decay time.  The list is oldest first, so this
 * stops at the first block not due. */
static void release_due(struct mm_arena *a, const char *func);

#define IDLE_LOOK 8

/* Every MM_RELEASE_TICK-th heap operation of an arena (mm_release_after),
 * and every poll or look at it (decay.c), with its lock held.  Every
 * IDLE_LOOK-th time it also asks for a look at the arenas no thread uses,
 * which see no heap operations of their own: the thread that unlocks the
 * arena does it (decay.c), holding no lock. */
void mm_release_tick(struct mm_arena *a, const char *func)
{
    a->bins.dirty.tick = 0;
    if (a->parked_bytes != 0)
        mm_park_tick(a, mm_now_ms());
    release_due(a, func);
    if (++a->bins.dirty.looks % IDLE_LOOK == 0)
        __atomic_store_n(&a->bins.dirty.look_idle, 1, __ATOMIC_RELAXED);
}

/* The top went over the trim threshold again soon after a trim (heap.c):
 * it is trimmed once it has stayed there for the decay. */
void mm_release_top_wait(struct mm_arena *a, size_t now)
{
    struct mm_dirty *d = &a->bins.dirty;
    if (!d->top_waiting) {
        d->top_waiting = 1;
        d->top_since = now;
    }
}

static void release_due(struct mm_arena *a, const char *func)
{
    struct mm_dirty *d = &a->bins.dirty;
    size_t decay = mm_setting(&mm_settings.decay_ms);
    if (d->top_waiting && (decay == 0 || decay == SIZE_MAX || !mm_ms_within(mm_now_ms(), d->top_since, decay)))
        mm_heap_trim_over(a, 0);     /* if it is still over the threshold */
    if (decay == SIZE_MAX || d->head == NULL)
        return;
    size_t now = decay != 0 ? mm_now_ms() : 0;
    int released = 0;
    block_t *b;
    while ((b = d->head) != NULL) {
        if (decay != 0 && ((now - state_stamp(b)) & STAMP_MASK) < decay)
            return;
        if (unlikely(!sound(a, b))) {
            list_corrupted(a, b, func);
            return;
        }
        if (!give_back(a, b, &released))
            return;       /* madvise refused (locked memory?): try again later */
    }
}

/* malloc_trim(): release every tracked free block now, whatever the decay,
 * and the free pages of the top beyond `pad` that trimming could not give
 * back (the break moved by someone else, or an older region).  1 when
 * anything was released. */
int mm_release_all(struct mm_arena *a, size_t pad)
{
    int released = 0;
    block_t *b = a->bins.dirty.head;
    while (b != NULL) {
        if (unlikely(!sound(a, b))) {
            list_corrupted(a, b, "malloc_trim");
            return released;
        }
        block_t *next = tracked(b)->newer;
        give_back(a, b, &released);
        b = next;
    }

    /* The top: pages past the pad, up to where it was never handed out (the
     * pages above are untouched); all of it reads as zero afterwards. */
    block_t *t = a->top;
    size_t page = mm_page_size();
    if (t != NULL && pad < block_size(t)) {
        char *fence = (char *)a->top_region + a->top_region->size - MM_WORD;
        uintptr_t start = align_up((uintptr_t)block_user(t) + pad, page);
        uintptr_t end = align_down((uintptr_t)fence, page);
        if (align_up((uintptr_t)a->fresh_from, page) < end)
            end = align_up((uintptr_t)a->fresh_from, page);
        if (end > start && os_release(start, end) == 0) {
            released = 1;
            mm_heap_top_released(a, (char *)start, (char *)end);
        }
    }
    return released;
}

/* MYMALLOC_CHECK=2: does [b + from, b + to) of a filled free block still hold
 * the freed pattern?  The tracked words are skipped, and an inner page of a
 * (maybe) released block may read as zero instead.  Else 0 and *offset is the
 * first byte found changed, from b. */
int mm_release_fill_ok(const block_t *b, size_t from, size_t to, size_t *offset)
{
    const char *base = (const char *)b;
    size_t o;
    if (!is_tracked(b)) {
        if (from >= to || mm_freed_fill_ok(base + from, to - from, &o))
            return 1;
        *offset = from + o;
        return 0;
    }
    if (from < sizeof(block_t) && !mm_freed_fill_ok(base + from, sizeof(block_t) - from, &o)) {
        *offset = from + o;
        return 0;
    }
    if (from < MM_RELEASE_HEAD)
        from = MM_RELEASE_HEAD;
    uintptr_t zs = 0, ze = 0;
    size_t page = mm_page_size();
    if (!(mm_release_flags_checked(b) & (MM_RELEASE_ZERO | MM_RELEASE_MAYBE_ZERO)) || !inner_pages(b, &zs, &ze))
        zs = ze = 0;
    while (from < to) {
        uintptr_t at = (uintptr_t)base + from;
        size_t chunk = align_down(at + page, page) - at;
        if (chunk > to - from)
            chunk = to - from;
        if (!mm_freed_fill_ok(base + from, chunk, &o)) {
            /* A released page reads as zero: accepted when all of it is. */
            int inside = at >= zs && at + chunk <= ze;
            const unsigned char *bytes = (const unsigned char *)base + from;
            size_t z = 0;
            while (inside && z < chunk && bytes[z] == 0)
                z++;
            if (!inside || z < chunk) {
                *offset = from + (inside && bytes[0] == 0 ? z : o);
                return 0;
            }
        }
        from += chunk;
    }
    return 1;
}

/* mymalloc_check(): the dirty list must hold exactly the `listed` tracked
 * free blocks the heap walk found unreleased, each sound.  Problems found. */
int mm_release_list_check(const struct mm_arena *a, size_t listed)
{
    const struct mm_dirty *d = &a->bins.dirty;
    size_t n = 0;
    const block_t *prev = NULL;
    for (const block_t *b = d->head; b != NULL; b = tracked(b)->newer) {
        if (!mm_link_plausible(mm_heap_bounds(a), b) || n > listed || block_inuse(b) || !is_tracked(b) ||
            tracked(b)->older != prev || !state_ok(b) || (state_flags(b) & MM_RELEASE_ZERO))
            return 1;
        prev = b;
        n++;
    }
    return n != listed || n != d->count || d->tail != prev;
}
