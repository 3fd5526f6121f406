/* heap.h - the heap layer (heap.c, segment.c, bins.c, fit.c, release.c,
 * large.c, repair.c): an arena's heap and what the arena and thread layers
 * ask of it, with the arena's lock held.  struct mm_arena is defined here:
 * the heap, its lock, and the few fields the layers above keep beside it
 * (marked so). */
#ifndef MYMALLOC_HEAP_H
#define MYMALLOC_HEAP_H

#include "check.h"
#include "diag.h"
#include "os.h"
#include "settings.h"

/* A thread's cache of small free blocks (cache.c): per size class and per
 * origin (the malloc family, operator new, operator new[]), lists of user pointers linked
 * through the first user word (mangled), with a key in the second word while
 * cached.  `room` is how many more blocks a list takes before half of it is
 * drained: its limit (mm_cache_limit) less its length.  A class's refills
 * start with 2 blocks and double up to half the limit: a thread that uses a
 * class once does not carve a batch it never uses. */
/* Classes 2 to 63: blocks of class * 16 bytes (32 to 1008); classes 64 to
 * 112: blocks of a sixteenth of a power of two, 1024 (class 64), 1088, 1152,
 * ... 8192 bytes (class 112; see cache.h). */
#define MM_CACHE_SMALL_CLASSES 64
#define MM_CACHE_SMALL_MAX_BLOCK ((MM_CACHE_SMALL_CLASSES - 1) * 16)
#define MM_CACHE_SMALL_MAX_REQUEST (MM_CACHE_SMALL_MAX_BLOCK - MM_HEADER)
#define MM_CACHE_CLASSES (MM_CACHE_SMALL_CLASSES + 1 + 3 * 16)
#define MM_CACHE_MAX_REQUEST (MM_CACHE_MAX_BLOCK - MM_HEADER)
#define MM_CACHE_ORIGINS 3         /* the malloc family, operator new, operator new[] */
struct mm_cache {
    void *head[MM_CACHE_ORIGINS][MM_CACHE_CLASSES];
    int8_t room[MM_CACHE_ORIGINS][MM_CACHE_CLASSES];
    uint8_t batch[MM_CACHE_ORIGINS][MM_CACHE_CLASSES];   /* blocks the last refill took (0: none yet) */
};
/* The call that frees a block of this origin, for reports made on its
 * behalf (a cached block going back to the heap). */
static inline const char *mm_origin_free_name(size_t origin)
{
    return origin == ORIGIN_NEW ? "operator delete" : origin == ORIGIN_NEW_ARRAY ? "operator delete[]" : "free";
}

/* ---- bins.c: segregated free lists with a bitmap of non-empty bins ---- */
#define MM_SMALL_LIMIT 1024u                 /* exact bins below this block size */
#define MM_RANGE_SHIFT 3                     /* 8 ranged bins per power of two */
#define MM_RANGE_BINS  (1u << MM_RANGE_SHIFT)
#define MM_NBINS       (64 + (64 - 10) * MM_RANGE_BINS)  /* 64 small, then ranged */
#define MM_BINMAP_WORDS ((MM_NBINS + 63) / 64)
_Static_assert(MM_BINMAP_WORDS <= 32, "the bitmap's summary word has a bit per map word");

/* Free blocks of MM_RELEASE_MIN bytes or more whose pages are still
 * resident: a list in the order they became free (release.c). */
struct mm_dirty {
    block_t *head, *tail;             /* oldest first */
    size_t count;
    unsigned tick;                    /* heap operations since the last look */
    unsigned looks;                   /* looks, for the rarer look at idle arenas */
    int look_idle;                    /* a look at the idle arenas is due (decay.c) */
    int top_waiting;                  /* the top is over the trim threshold, */
    size_t top_since;                 /* since this time (ms): trimmed after the decay */
    int trimmed;                      /* the top was trimmed, */
    size_t last_trim;                 /* last at this time (ms) (heap.c) */
};

#define MM_RELEASE_MIN ((size_t)8192 + 64)  /* free blocks this big are tracked: each holds a whole 4 KiB page */
struct mm_bins {
    block_t *head[MM_NBINS];          /* each a LIFO list */
    uint64_t map[MM_BINMAP_WORDS];    /* bit i set <=> head[i] != NULL */
    unsigned words;                   /* bit w set <=> map[w] != 0 */
    struct mm_dirty dirty;            /* kept by mm_bin_insert / mm_bin_remove */
};

/* ---- fit.c: placement policies other than best fit (MYMALLOC_FIT) ---- */
struct mm_fit_node;
struct mm_fit_pool;
struct mm_fit {
    int policy;                    /* MM_FIT_*; changed under the arena lock */
    int indexed;                   /* 1: every block in the bins has a node in `root` */
    struct mm_fit_node *root;      /* the free blocks by address (a treap, see fit.c) */
    struct mm_fit_node *spare;     /* nodes not in use */
    struct mm_fit_pool *pools;     /* the mappings that hold the nodes */
    uintptr_t rover;               /* next fit: the search starts here */
};

/* ---- heap.c: regions, the top block, growth and trimming ---- */
struct mm_region {
    struct mm_region *next;   /* every region of the arena, newest first */
    size_t size;              /* bytes from this struct to the region's end */
    size_t from_sbrk;         /* 1: part of the brk heap; 0: an mmap segment */
};
#define MM_REGION_FIRST_BLOCK sizeof(struct mm_region)   /* 24: header at 8 mod 16 */
_Static_assert(sizeof(struct mm_region) == 24, "region header keeps block alignment");

struct mm_arena {
    mm_lock_t lock;
    unsigned index;                /* in mm_arenas; 0: the main arena, the brk heap */
    int no_sbrk;                   /* grows in mmap segments only (every arena but main) */
    unsigned threads;              /* live threads attached (under the arenas lock) */
    size_t idle_since;             /* when (ms) the last of them left */
    void *pending;                 /* blocks freed by threads without a cache (cache.c):
                                      user pointers */
    struct mm_bins bins;
    block_t *top;                  /* the wilderness block, NULL before the first growth */
    struct mm_region *top_region;  /* region the top block ends */
    struct mm_region *regions;
    char *brk_start;               /* our first brk region: [brk_start, brk_end) is */
    char *brk_end;                 /* all mapped (NULL when none) */
    char *fresh_from;              /* top bytes at and above this were never handed out */
    char *top_filled;              /* MYMALLOC_CHECK=2: the top holds the freed fill from 16
                                      bytes into its user area up to here (see top_fill) */
    int has_segments;              /* some region is an mmap segment */
    uintptr_t lowest, highest;     /* bounds of all regions, for cheap pointer checks */
    /* statistics (under the lock) */
    size_t system_bytes;           /* bytes in regions */
    size_t inuse_bytes;            /* bytes of in-use blocks in regions */
    size_t peak_system_bytes;
    struct mm_fit fit;             /* the placement policy and, unless best fit, its index */
    /* The cache an exiting thread left for the next thread to take this
     * arena (cache.c), under the lock. */
    int stashed;
    size_t stash_since;            /* when (ms) */
    struct mm_cache stash;
    /* Small blocks drained from the caches, parked unmerged by origin and
     * class for the next refill (park.c), under the lock. */
    void *parked[MM_CACHE_ORIGINS][MM_CACHE_CLASSES];
    size_t parked_bytes;           /* read racily by the statistics, */
    size_t parked_blocks;          /* as is this */
    size_t parked_since;           /* when (ms) the arena last had none */
};

#define MM_GRANULE_SHIFT 20           /* non-main segments: whole 1 MiB granules */
/* Which arena's segment covers a granule (0: none of the non-main arenas):
 * a two-level map, leaves mapped when first needed. */
#define MM_GRANULE_LEAF_BITS 14
#define MM_GRANULE_TOP ((size_t)1 << (47 - MM_GRANULE_SHIFT - MM_GRANULE_LEAF_BITS))
MM_HIDDEN extern uint8_t *mm_granule_map[MM_GRANULE_TOP];
static inline unsigned mm_granule_arena(uintptr_t address)
{
    uintptr_t g = address >> MM_GRANULE_SHIFT;
    if ((g >> MM_GRANULE_LEAF_BITS) >= MM_GRANULE_TOP)
        return 0;
    const uint8_t *leaf = __atomic_load_n(&mm_granule_map[g >> MM_GRANULE_LEAF_BITS], __ATOMIC_ACQUIRE);
    return leaf != NULL ? __atomic_load_n(&leaf[g & (((uintptr_t)1 << MM_GRANULE_LEAF_BITS) - 1)], __ATOMIC_RELAXED) : 0;
}
MM_HIDDEN void *mm_segment_map(struct mm_arena *a, size_t *size);
MM_HIDDEN int mm_segment_unmap(struct mm_arena *a, void *base, size_t size);

/* Is p inside the bounds of the arena's regions (read without the lock)? */
static inline int mm_heap_owns(const struct mm_arena *a, const void *p)
{
    return (uintptr_t)p >= __atomic_load_n(&a->lowest, __ATOMIC_RELAXED) &&
           (uintptr_t)p < __atomic_load_n(&a->highest, __ATOMIC_RELAXED);
}

/* The arena's bounds read once, for checks under its lock: p is inside
 * them when (uintptr_t)p - low < span, one comparison.  `low` is rounded
 * down to 16 bytes, so that a header (8 modulo 16) inside is 8 past a
 * multiple of 16 from it. */
struct mm_bounds { uintptr_t low, span; };

static inline struct mm_bounds mm_heap_bounds(const struct mm_arena *a)
{
    uintptr_t low = __atomic_load_n(&a->lowest, __ATOMIC_RELAXED) & ~(uintptr_t)(MM_ALIGN - 1);
    return (struct mm_bounds){ low, __atomic_load_n(&a->highest, __ATOMIC_RELAXED) - low };
}

static inline int mm_bounds_hold(struct mm_bounds r, const void *p)
{
    return (uintptr_t)p - r.low < r.span;
}

/* Is `link` (not NULL) a header address inside the bounds, 8 modulo 16?
 * Rotated right by 4 bits, its distance from low + 8 is small only when
 * its low 4 bits are 0 and it is in range: both tests in one comparison. */
static inline int mm_bounds_hold_header(struct mm_bounds r, const void *link)
{
    uintptr_t x = (uintptr_t)link - r.low - MM_WORD;
    return ((x >> 4) | (x << 60)) < r.span >> 4;
}

/* A free block's links are trusted only if they point into the heap at block
 * headers and the blocks they name point back: a write after free into the
 * links is caught here, before an unlink could write through them. */
static inline int mm_link_plausible(struct mm_bounds r, const block_t *link)
{
    return link == NULL || mm_bounds_hold_header(r, link);
}

/* The bin of free blocks of this size. */
static inline size_t mm_bin_index(size_t size)
{
    if (size < MM_SMALL_LIMIT)
        return size >> 4;
    unsigned lg = 63u - (unsigned)__builtin_clzl(size);
    return 64 + (lg - 10) * MM_RANGE_BINS + ((size >> (lg - MM_RANGE_SHIFT)) & (MM_RANGE_BINS - 1));
}

MM_HIDDEN int mm_release_words_ok(const struct mm_arena *a, const block_t *b);

/* The links of b, a free block of `size` bytes whose header the caller has
 * checked: each points into the heap at a header and back at b (or, for the
 * first of its bin, the bin at b: its index is then left in *index). */
static inline int mm_bin_links_back_in(const struct mm_arena *a, struct mm_bounds r, const block_t *b, size_t size,
                                       size_t *index)
{
    const block_t *prev = b->prev_free, *next = b->next_free;
    if (next != NULL && unlikely(!mm_bounds_hold_header(r, next) || next->prev_free != b))
        return 0;
    if (prev == NULL) {
        *index = mm_bin_index(size);
        if (unlikely(a->bins.head[*index] != b))
            return 0;
    } else if (unlikely(!mm_bounds_hold_header(r, prev) || prev->next_free != b)) {
        return 0;
    }
    return size < MM_RELEASE_MIN || mm_release_words_ok(a, b);
}

static inline int mm_bin_links_back(const struct mm_arena *a, const block_t *b)
{
    size_t index;
    return mm_bin_links_back_in(a, mm_heap_bounds(a), b, block_size(b), &index);
}

MM_HIDDEN void mm_bin_insert(struct mm_bins *bins, block_t *b);
MM_HIDDEN void mm_bin_remove(struct mm_bins *bins, block_t *b);
MM_HIDDEN int mm_bin_remove_checked(struct mm_arena *a, block_t *b);
MM_HIDDEN block_t *mm_bin_take(struct mm_arena *a, size_t need, block_t **corrupt);
MM_HIDDEN int mm_bin_links_ok(const struct mm_arena *a, const block_t *b);
MM_HIDDEN size_t mm_bins_count(const struct mm_bins *bins, size_t *bytes);

MM_HIDDEN block_t *mm_heap_alloc(struct mm_arena *a, size_t need, size_t origin, size_t *dirty);
MM_HIDDEN block_t *mm_heap_alloc_span(struct mm_arena *a, size_t need, size_t most, size_t origin);
MM_HIDDEN void mm_heap_free_cached(struct mm_arena *a, block_t *b);
MM_HIDDEN void mm_heap_free_cached_list(struct mm_arena *a, void *user);
MM_HIDDEN void mm_heap_prefetch_neighbours(const struct mm_arena *a, void *const *users, unsigned n);
MM_HIDDEN void *mm_cached_next(void *user);
MM_HIDDEN MM_COLD void mm_cached_report(const char *func, void *user);
MM_HIDDEN MM_COLD void mm_cached_keyless_report(const char *func, void *user);
MM_HIDDEN void mm_heap_rebuild_bins(struct mm_arena *a);
MM_HIDDEN void mm_heap_quarantine_free(struct mm_arena *a, block_t *bad);
MM_HIDDEN void mm_heap_free(struct mm_arena *a, block_t *b, int fill, const char *func);

/* park.c: small blocks parked unmerged for the next refill.  A chain: the
 * blocks a drain parks in one arena, linked as they come. */
struct mm_park_chain {
    void *head, *tail;
    size_t bytes;
    unsigned count;
};
MM_HIDDEN int mm_park_add(struct mm_arena *a, struct mm_park_chain *c, block_t *b);
MM_HIDDEN void mm_park_close(struct mm_arena *a, struct mm_park_chain *c, size_t o, size_t cls);
MM_HIDDEN void *mm_park_take(struct mm_arena *a, size_t o, size_t cls, unsigned *count);
MM_HIDDEN int mm_park_release(struct mm_arena *a);
MM_HIDDEN void mm_park_tick(struct mm_arena *a, size_t now);
#define MM_FILL_DONE 2      /* mm_heap_free's fill: the block holds the pattern already */
MM_HIDDEN void mm_block_shrink(struct mm_arena *a, block_t *b, size_t need);
MM_HIDDEN int mm_block_grow(struct mm_arena *a, block_t *b, size_t need);
MM_HIDDEN int mm_heap_trim(struct mm_arena *a, size_t keep);
MM_HIDDEN void mm_heap_top_released(struct mm_arena *a, char *start, char *end);
MM_HIDDEN int mm_heap_segment_whole(struct mm_arena *a, block_t *b);
MM_HIDDEN int mm_heap_segment_drop(struct mm_arena *a, block_t *b);
MM_HIDDEN int mm_heap_top_drop(struct mm_arena *a);
MM_HIDDEN void mm_heap_trim_over(struct mm_arena *a, int wait);
MM_HIDDEN int mm_segment_holds(const void *p);
MM_HIDDEN void mm_segment_note(const struct mm_region *r);
MM_HIDDEN void mm_segment_shrunk(const struct mm_region *r);
MM_HIDDEN int mm_heap_walk_check(struct mm_arena *a, const char *func);

MM_HIDDEN int mm_fit_set(struct mm_arena *a, int policy);
MM_HIDDEN block_t *mm_fit_take(struct mm_arena *a, size_t need, block_t **corrupt);
MM_HIDDEN void mm_fit_insert(struct mm_arena *a, block_t *b);
MM_HIDDEN void mm_fit_remove(struct mm_arena *a, block_t *b);
MM_HIDDEN void mm_fit_forget(struct mm_arena *a);
MM_HIDDEN int mm_fit_check(struct mm_arena *a);

/* ---- release.c: the pages inside big free blocks given back with madvise ---- */
#define MM_RELEASE_HEAD (sizeof(block_t) + 3 * MM_WORD)  /* header, bin links, state, list links */
#define MM_RELEASE_ZERO       ((size_t)1)  /* its inner pages were released: they read as zero */
#define MM_RELEASE_MAYBE_ZERO ((size_t)2)  /* some of them may have been */
#define MM_RELEASE_TICK 8                  /* heap operations between two looks at the clock */
MM_HIDDEN void mm_release_add(struct mm_bins *bins, block_t *b);
MM_HIDDEN void mm_release_remove(struct mm_bins *bins, block_t *b);
MM_HIDDEN size_t mm_release_flags_checked(const block_t *b);
MM_HIDDEN void mm_release_set(struct mm_bins *bins, block_t *b, size_t flags);
MM_HIDDEN size_t mm_release_age(const block_t *b);
MM_HIDDEN void mm_release_keep_age(struct mm_bins *bins, block_t *b, size_t age);
MM_HIDDEN int mm_release_zero_range(const block_t *b, size_t *from, size_t *to);
MM_HIDDEN int mm_release_words_ok(const struct mm_arena *a, const block_t *b);
MM_HIDDEN void mm_release_tick(struct mm_arena *a, const char *func);
MM_HIDDEN void mm_release_top_wait(struct mm_arena *a, size_t now);
MM_HIDDEN int mm_release_all(struct mm_arena *a, size_t pad);
MM_HIDDEN int mm_release_fill_ok(const block_t *b, size_t from, size_t to, size_t *offset);
MM_HIDDEN int mm_release_list_check(const struct mm_arena *a, size_t listed);
/* The release flags of a free block in a bin whose links were checked (its
 * state word follows its bin links): 0 for a block too small to be tracked. */
static inline size_t mm_release_flags(const block_t *b)
{
    return block_size(b) >= MM_RELEASE_MIN ? ((const size_t *)b)[3] & (MM_RELEASE_ZERO | MM_RELEASE_MAYBE_ZERO) : 0;
}

/* b was just filed in a bin and its memory comes with `flags` from the
 * block(s) it was made of. */
static inline void mm_release_inherit(struct mm_bins *bins, block_t *b, size_t flags)
{
    if (flags != 0 && block_size(b) >= MM_RELEASE_MIN)
        mm_release_set(bins, b, flags);
}

/* After a heap operation: every MM_RELEASE_TICK-th (every one with a decay
 * of 0), release what has been free for the decay time. */
static inline void mm_release_after(struct mm_arena *a, const char *func)
{
    struct mm_dirty *d = &a->bins.dirty;
    if (++d->tick >= MM_RELEASE_TICK || (d->head != NULL && mm_setting(&mm_settings.decay_ms) == 0))
        mm_release_tick(a, func);       /* (also for the idle arenas: see there) */
}

/* ---- repair.c: reports of bad blocks, and mending after them ---- */
#define ORIGIN_ANY SIZE_MAX     /* malloc_usable_size accepts every family */
MM_HIDDEN int mm_origin_ok(const block_t *b, const void *p, const char *func, size_t expected);
MM_HIDDEN MM_COLD void mm_repair_before(struct mm_arena *a, block_t *b);
MM_HIDDEN MM_COLD void mm_quarantine_header(struct mm_arena *a, block_t *b, int prev_inuse);
MM_HIDDEN MM_COLD void mm_diagnose_header(struct mm_arena *a, block_t *b, const void *p, const char *func);

/* ---- large.c: blocks with a mapping of their own ---- */
MM_HIDDEN void *mm_large_alloc(size_t n, size_t alignment, size_t origin);
MM_HIDDEN size_t mm_large_free(block_t *b);
MM_HIDDEN void *mm_large_realloc(block_t *b, size_t n);
MM_HIDDEN int mm_large_valid(const block_t *b);
MM_HIDDEN int mm_large_tail_ok(const block_t *b);

/* MYMALLOC_CHECK=2's blocks of size 0 (zero.c): slots of an inaccessible
 * region. */
MM_HIDDEN void *mm_zero_alloc(void);
MM_HIDDEN int mm_zero_owns(const void *p);
MM_HIDDEN void mm_zero_free(const void *p, const char *func);
MM_HIDDEN int mm_zero_check(const void *p, const char *func);
/* The table of live mapped blocks (for the heap map), under its own lock.
 * Copies up to `room` entries, in no order, and returns how many. */
struct mm_mapped_extent { uintptr_t start; size_t length; };
struct mm_mapped_totals {
    size_t listed, listed_bytes;      /* in the table */
    size_t unlisted, unlisted_bytes;  /* only counted: the table could not grow */
};
MM_HIDDEN size_t mm_large_list(struct mm_mapped_extent *out, size_t room, struct mm_mapped_totals *totals);
/* Counters of the mapped blocks (atomics: kept without a lock). */
struct mm_large_stats {
    size_t count;            /* mapped blocks alive */
    size_t peak_count;
    size_t bytes;            /* bytes in them */
    size_t peak_bytes;
};
MM_HIDDEN extern struct mm_large_stats mm_large_stats;
MM_HIDDEN void mm_large_fork_prepare(void);
MM_HIDDEN void mm_large_fork_parent(void);
MM_HIDDEN void mm_large_fork_child(void);

/* ---- the checks of an in-use block handed back to its arena ---- */
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
