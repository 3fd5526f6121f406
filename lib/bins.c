/* bins.c - free blocks in segregated bins: exact classes of 16 bytes below
 * 1 KiB, then eight ranged bins per power of two (each 1/8 of its power of
 * two wide).  Every bin is a LIFO list, so filing a block is O(1); taking one
 * for a request looks at a few blocks of the request's own bin for the best
 * fit among them (a fit within 64 bytes ends the look), else at the first
 * non-empty bin above, where every block fits.  A bitmap of non-empty bins makes finding that bin O(1). */
#include <stddef.h>
#include "heap.h"

/* The arena whose bins these are. */
static inline struct mm_arena *arena_of(struct mm_bins *bins)
{
    return (struct mm_arena *)((char *)bins - offsetof(struct mm_arena, bins));
}

/* Two levels: map[w] has a bit per bin, `words` a bit per non-zero map[w]. */
static inline void binmap_set(struct mm_bins *bins, size_t i)
{
    bins->map[i / 64] |= (uint64_t)1 << (i % 64);
    bins->words |= 1u << (i / 64);
}

static inline void binmap_clear(struct mm_bins *bins, size_t i)
{
    bins->map[i / 64] &= ~((uint64_t)1 << (i % 64));
    if (bins->map[i / 64] == 0)
        bins->words &= ~(1u << (i / 64));
}

/* The first non-empty bin with an index greater than i, or MM_NBINS. */
static size_t binmap_next(const struct mm_bins *bins, size_t i)
{
    size_t start = i + 1;
    size_t w = start / 64;
    if (w >= MM_BINMAP_WORDS)
        return MM_NBINS;
    uint64_t bits = bins->map[w] & (~(uint64_t)0 << (start % 64));
    if (bits != 0)
        return w * 64 + (size_t)__builtin_ctzll(bits);
    unsigned higher = bins->words & (~0u << (w + 1));
    if (higher == 0)
        return MM_NBINS;
    w = (size_t)__builtin_ctz(higher);
    return w * 64 + (size_t)__builtin_ctzll(bins->map[w]);
}

void mm_bin_insert(struct mm_bins *bins, block_t *b)
{
    size_t size = block_size(b);
    size_t i = mm_bin_index(size);
    block_t *next = bins->head[i];      /* at the front: LIFO */

    mm_assert(!block_inuse(b) && size >= MM_MIN_BLOCK && *block_tag(b) == size);
    b->prev_free = NULL;
    b->next_free = next;
    if (next != NULL)
        next->prev_free = b;
    bins->head[i] = b;
    binmap_set(bins, i);
    if (unlikely(arena_of(bins)->fit.indexed))     /* a policy other than best fit */
        mm_fit_insert(arena_of(bins), b);
    if (size >= MM_RELEASE_MIN)
        mm_release_add(bins, b);
}

int mm_bin_links_ok(const struct mm_arena *a, const block_t *b)
{
    if (mm_check_level() == 0)
        return 1;
    return block_head_ok(b) && !block_inuse(b) && mm_bin_links_back(a, b);
}


/* Unlink b, the first of bin i when it has no prev (i is not looked at
 * otherwise). */
static inline void bin_unlink(struct mm_bins *bins, block_t *b, size_t i)
{
    block_t *prev = b->prev_free, *next = b->next_free;

    if (next != NULL)
        next->prev_free = prev;
    if (prev != NULL) {
        prev->next_free = next;
    } else {
        mm_assert(i == mm_bin_index(block_size(b)) && bins->head[i] == b);
        bins->head[i] = next;
        if (next == NULL)
            binmap_clear(bins, i);
    }
    if (unlikely(arena_of(bins)->fit.indexed))
        mm_fit_remove(arena_of(bins), b);
    if (block_size(b) >= MM_RELEASE_MIN)
        mm_release_remove(bins, b);
}

static inline void bin_remove(struct mm_bins *bins, block_t *b)
{
    bin_unlink(bins, b, b->prev_free == NULL ? mm_bin_index(block_size(b)) : 0);
}

void mm_bin_remove(struct mm_bins *bins, block_t *b)
{
    bin_remove(bins, b);
}

/* The same for a free block (its header checked) whose links may have been
 * written after free: with checks on, taken out only if they point back at
 * it (the loads and the bin's index are the unlink's own).  0, with nothing
 * changed, when they do not. */
int mm_bin_remove_checked(struct mm_arena *a, block_t *b)
{
    if (mm_check_level() == 0) {
        bin_remove(&a->bins, b);
        return 1;
    }
    size_t index = 0;
    if (unlikely(!mm_bin_links_back_in(a, mm_heap_bounds(a), b, block_size(b), &index)))
        return 0;
    bin_unlink(&a->bins, b, index);     /* the index found by the check */
    return 1;
}

/* How many blocks of the request's own ranged bin are looked at (each may
 * be a cache miss), and how close a fit ends the look at once. */
#define TAKE_LOOK 4
#define TAKE_CLOSE 64

/* Remove and return a free block of at least `need` bytes: an exact-size
 * block, or the best fit among the first TAKE_LOOK blocks of the request's
 * ranged bin (one within TAKE_CLOSE bytes ends the look), or the first block
 * of the next non-empty bin.  When the block
 * found (or a link followed) is corrupted it stays where it is, *corrupt
 * names it, and NULL is returned. */
block_t *mm_bin_take(struct mm_arena *a, size_t need, block_t **corrupt)
{
    struct mm_bins *bins = &a->bins;
    size_t i = mm_bin_index(need);
    block_t *b = bins->head[i];

    if (i >= 64 && b != NULL) {
        block_t *best = NULL;
        for (unsigned n = 0; b != NULL && n < TAKE_LOOK; n++, b = b->next_free) {
            size_t size = block_size(b);
            if (size >= need && (best == NULL || size < block_size(best))) {
                best = b;
                if (size - need < TAKE_CLOSE)
                    break;
            }
            if (!mm_link_plausible(mm_heap_bounds(a), b->next_free)) {
                *corrupt = b;
                return NULL;
            }
        }
        b = best;
    }
    if (b == NULL) {
        i = binmap_next(bins, i);
        if (i == MM_NBINS)
            return NULL;
        b = bins->head[i];
    }
    if (unlikely(!block_head_ok(b) || block_inuse(b) || !mm_bin_remove_checked(a, b))) {
        *corrupt = b;
        return NULL;
    }
    /* The next take from this bin will write into the block after its new
     * head in the bin and into the block after it in the heap (the head's
     * line the unlink just wrote): start those loads now. */
    const block_t *head = bins->head[i];
    if (head != NULL) {
        __builtin_prefetch(head->next_free, 1);
        __builtin_prefetch((const char *)head + block_size(head), 1);
    }
    return b;
}

/* Number of free blocks in the bins; their total size in *bytes. */
size_t mm_bins_count(const struct mm_bins *bins, size_t *bytes)
{
    size_t count = 0, total = 0;
    for (size_t i = 0; i < MM_NBINS; i++) {
        for (const block_t *b = bins->head[i]; b != NULL; b = b->next_free) {
            count++;
            total += block_size(b);
        }
    }
    *bytes = total;
    return count;
}
