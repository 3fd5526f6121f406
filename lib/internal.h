/* internal.h - what the files of lib/ share: the arena (heap state behind one
 * lock), settings, statistics and the hidden mm_ functions each file owns. */
#ifndef MYMALLOC_INTERNAL_H
#define MYMALLOC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "block.h"
#include "mymalloc.h"

#define MM_HIDDEN   __attribute__((visibility("hidden")))
#define MM_COLD     __attribute__((cold, noinline))
#define MM_NORETURN __attribute__((noreturn))
#define MM_NOINLINE __attribute__((noinline))
#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* Debug checks: always compiled (so they never rot), enabled by
 * ./configure --enable-debug, which defines MM_DEBUG to 1. */
#ifndef MM_DEBUG
#define MM_DEBUG 0
#endif
#define mm_assert(cond) \
    do { if (MM_DEBUG && unlikely(!(cond))) mm_assert_failed(__FILE__, __LINE__, #cond); } while (0)
MM_HIDDEN MM_COLD MM_NORETURN void mm_assert_failed(const char *file, int line, const char *cond);
/* Every "these bytes are known to be zero" that lets calloc() skip clearing
 * them is verified in debug builds, naming the claim (diag.c). */
MM_HIDDEN void mm_zero_claim_verify(const void *block, const void *p, size_t n, const char *claim);
#define mm_zero_claim(block, p, n, claim) \
    do { if (MM_DEBUG) mm_zero_claim_verify(block, p, n, claim); } while (0)

struct mm_arena;

/* ---- lock.c: the locks (futex words), their ranks, and fork handling ----
 *
 * Every lock has a rank, and a thread takes locks only in increasing rank
 * (a try-lock, which never waits, may take any):
 *
 *   1  MM_RANK_REGISTRY   the registry of threads (thread.c)
 *   2  MM_RANK_ARENAS     the list of arenas: creating one, attaching a
 *                         thread, switching every arena's policy (arena.c)
 *   3+i MM_RANK_ARENA+i   arena i's heap (the main arena is 0); two arenas
 *                         at once only in fork's handler, in index order,
 *                         or with a try-lock (the look at idle arenas)
 *   MM_RANK_MAPPED        the table of blocks with a mapping of their own
 *                         (large.c), taken for a few instructions
 *
 * fork() takes glibc's list of streams before all of them (lock.c says why).
 * Nothing else in the allocator waits for a lock.  With --enable-debug every
 * lock and unlock is checked against the ranks (mm_lockdep_*, lock.c): a
 * lock taken out of order aborts with both locks' names. */
typedef struct { int state; unsigned rank; } mm_lock_t;   /* state: 0 free, 1 held, 2 held with waiters */
enum { MM_RANK_REGISTRY = 1, MM_RANK_ARENAS = 2, MM_RANK_ARENA = 3, MM_RANK_MAPPED = 0x10000 };
#define MM_LOCK_INIT(rank) { 0, (rank) }
MM_HIDDEN void mm_lock_slow(mm_lock_t *l);
MM_HIDDEN void mm_unlock_slow(mm_lock_t *l);
#if MM_DEBUG
MM_HIDDEN void mm_lockdep_locked(const mm_lock_t *l, int trying);
MM_HIDDEN void mm_lockdep_unlocked(const mm_lock_t *l);
MM_HIDDEN void mm_lockdep_forget_all(void);
#else
static inline void mm_lockdep_locked(const mm_lock_t *l, int trying) { (void)l; (void)trying; }
static inline void mm_lockdep_unlocked(const mm_lock_t *l) { (void)l; }
static inline void mm_lockdep_forget_all(void) {}
#endif

/* A process that has never had a second thread (glibc's own flag, which
 * turns false before pthread_create starts one) needs no atomic instruction
 * to take or drop a lock: nobody else can hold or wait for it. */
#ifdef MM_HAVE_SINGLE_THREADED
#include <sys/single_threaded.h>
static inline int mm_single_threaded(void) { return __libc_single_threaded != 0; }
#else
static inline int mm_single_threaded(void) { return 0; }
#endif

static inline void mm_lock(mm_lock_t *l)
{
    int expected = 0;
    mm_lockdep_locked(l, 0);
    if (mm_single_threaded()) {
        mm_assert(l->state == 0);
        __atomic_store_n(&l->state, 1, __ATOMIC_RELAXED);
        return;
    }
    if (!__atomic_compare_exchange_n(&l->state, &expected, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        mm_lock_slow(l);
}
static inline int mm_trylock(mm_lock_t *l)
{
    int expected = 0;
    if (!__atomic_compare_exchange_n(&l->state, &expected, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return 0;
    mm_lockdep_locked(l, 1);
    return 1;
}
static inline void mm_unlock(mm_lock_t *l)
{
    mm_lockdep_unlocked(l);
    if (mm_single_threaded()) {
        __atomic_store_n(&l->state, 0, __ATOMIC_RELAXED);
        return;
    }
    if (__atomic_exchange_n(&l->state, 0, __ATOMIC_RELEASE) == 2)
        mm_unlock_slow(l);
}

/* ---- thread.c: per-thread counters ---- */
enum { MM_THREAD_NEW, MM_THREAD_LIVE, MM_THREAD_EXITED };
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

/* malloc() calls served by its inline fast path, by request size in steps
 * of 8 bytes (0, 1-8, 9-16, ... 993-1000): one increment there, folded into
 * the call and size-class counts when they are read.  The same step gives
 * the cache class (mm_cache_class_of_step in cache.h). */
#define MM_FAST_SIZES 128
static inline size_t mm_fast_step(size_t n) { return (n + 7) / 8; }

/* The counters are only written by their own thread, with plain increments
 * (one instruction on the fast paths); other threads read them, relaxed, to
 * sum them, and may see a count a few calls old. */
struct registry_node;
struct mm_thread {
    struct registry_node *node;         /* its place in the registry (thread.c) */
    int state;                          /* MM_THREAD_NEW, _LIVE or _EXITED */
    uint8_t cache_on;                   /* live, and caching is on (thread.c) */
    uint8_t poll_countdown;             /* pushes onto the cache until the next poll, mod 256 */
    uint64_t calls[MYMALLOC_CALL_COUNT];
    uint64_t sizes[MYMALLOC_SIZE_CLASSES];   /* requests by size class */
    uint64_t fast_sizes[MM_FAST_SIZES];      /* malloc fast path, see above */
    struct mm_arena *arena;             /* where its allocations come from */
    size_t polled;                      /* when (ms) mm_decay_poll last looked */
    struct mm_cache cache;
};
MM_HIDDEN extern __thread struct mm_thread mm_self __attribute__((tls_model("initial-exec")));
MM_HIDDEN void mm_count_slow(enum mymalloc_call call);
MM_HIDDEN void mm_count_alloc_slow(enum mymalloc_call call, size_t cls);
/* All threads' counters (live ones and those retired at exit) and caches. */
struct mm_thread_totals {
    uint64_t calls[MYMALLOC_CALL_COUNT];
    uint64_t sizes[MYMALLOC_SIZE_CLASSES];
    size_t cached_bytes, cached_blocks;
};
MM_HIDDEN void mm_thread_counts(struct mm_thread_totals *totals);
MM_HIDDEN void mm_thread_setup(void);
MM_HIDDEN struct mm_arena *mm_thread_attach(struct mm_thread *t);
MM_HIDDEN void mm_thread_cache_switch(int on);
MM_HIDDEN void mm_thread_fork_prepare(void);
MM_HIDDEN void mm_thread_fork_parent(void);
MM_HIDDEN void mm_thread_fork_child(void);
/* Every 256th push onto a thread's cache (cache.h: the fast paths of a
 * program whose blocks all come and go through its cache make no heap
 * operation), the thread looks whether its arena has pages due for release
 * (mm_decay_poll, decay.c). */
MM_HIDDEN MM_NOINLINE void mm_decay_poll(struct mm_thread *t);

/* Count one call of an entry point for a thread known to be registered. */
static inline void mm_count_live(struct mm_thread *t, enum mymalloc_call call)
{
    t->calls[call]++;
}

/* Count one call of an entry point: a thread-local increment. */
static inline void mm_count(enum mymalloc_call call)
{
    struct mm_thread *t = &mm_self;
    if (unlikely(t->state != MM_THREAD_LIVE)) {
        mm_count_slow(call);
        return;
    }
    mm_count_live(t, call);
}
/* The histogram class of a request of n bytes (mymalloc.h): 0 for 0 to 16,
 * then one per power of two up to 1 MiB, the last for anything bigger. */
static inline size_t mm_size_class(size_t n)
{
    size_t bits = (n - (n != 0)) | 15;            /* n - 1, with 0 kept in class 0 */
    size_t cls = (size_t)(60 - __builtin_clzl(bits));
    return cls < MYMALLOC_SIZE_CLASSES - 1 ? cls : MYMALLOC_SIZE_CLASSES - 1;
}
/* Count one call of an allocating entry point and the size it asks for, for
 * a thread known to be registered. */
static inline void mm_count_alloc_live(struct mm_thread *t, enum mymalloc_call call, size_t n)
{
    size_t cls = mm_size_class(n);
    mm_count_live(t, call);
    t->sizes[cls]++;
}

/* The same for any thread. */
static inline void mm_count_alloc(enum mymalloc_call call, size_t n)
{
    struct mm_thread *t = &mm_self;
    if (unlikely(t->state != MM_THREAD_LIVE)) {
        mm_count_alloc_slow(call, mm_size_class(n));
        return;
    }
    mm_count_alloc_live(t, call, n);
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
enum { MM_FIT_BEST = MYMALLOC_FIT_BEST, MM_FIT_FIRST = MYMALLOC_FIT_FIRST,
       MM_FIT_NEXT = MYMALLOC_FIT_NEXT, MM_FIT_WORST = MYMALLOC_FIT_WORST };
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
};

MM_HIDDEN extern struct mm_arena mm_main_arena;

/* ---- arena.c: the arenas, which arena a block is in, threads' arenas ---- */
#define MM_ARENA_SLOTS 256            /* most arenas, main included */
#define MM_GRANULE_SHIFT 20           /* non-main segments: whole 1 MiB granules */
MM_HIDDEN extern struct mm_arena *mm_arenas[MM_ARENA_SLOTS];
MM_HIDDEN extern unsigned mm_arena_count;
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
MM_HIDDEN unsigned mm_arena_limit(void);
MM_HIDDEN struct mm_arena *mm_arena_attach(void);
MM_HIDDEN void mm_arena_detach(struct mm_arena *a);
MM_HIDDEN void mm_arenas_fork_prepare(void);
MM_HIDDEN void mm_arenas_fork_parent(void);
MM_HIDDEN void mm_arenas_fork_child(struct mm_arena *own);
MM_HIDDEN void mm_arenas_unlock_all(void);
MM_HIDDEN int mm_arenas_fit_set(int policy);

/* The arena a heap block (or a pointer into a heap) belongs to: one of the
 * non-main arenas' segments, else the main arena. */
static inline struct mm_arena *mm_arena_of(const void *p)
{
    unsigned index = mm_granule_arena((uintptr_t)p);
    return index == 0 ? &mm_main_arena : __atomic_load_n(&mm_arenas[index], __ATOMIC_ACQUIRE);
}

/* The calling thread's arena, for its allocations. */
static inline struct mm_arena *mm_thread_arena(void)
{
    struct mm_thread *t = &mm_self;
    return likely(t->arena != NULL) ? t->arena : mm_thread_attach(t);
}

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
MM_HIDDEN void mm_pending_push(struct mm_arena *a, block_t *b);
MM_HIDDEN void mm_heap_free_cached(struct mm_arena *a, block_t *b);
MM_HIDDEN void *mm_cached_next(void *user);
MM_HIDDEN MM_COLD void mm_cached_report(const char *func, void *user);
MM_HIDDEN int mm_cache_stash(struct mm_thread *t);
MM_HIDDEN void mm_cache_adopt(struct mm_thread *t, struct mm_arena *a);
MM_HIDDEN void mm_cache_stash_free(struct mm_arena *a);
MM_HIDDEN size_t mm_cache_count(const struct mm_cache *c, size_t *blocks);
MM_HIDDEN void mm_pending_free_all(struct mm_arena *a);
/* With the arena's lock held: take in the blocks other threads left on its
 * stack of pending frees. */
static inline void mm_pending_take(struct mm_arena *a)
{
    if (unlikely(__atomic_load_n(&a->pending, __ATOMIC_RELAXED) != NULL))
        mm_pending_free_all(a);
}
MM_HIDDEN void mm_heap_rebuild_bins(struct mm_arena *a);
MM_HIDDEN void mm_heap_quarantine_free(struct mm_arena *a, block_t *bad);
MM_HIDDEN void mm_heap_free(struct mm_arena *a, block_t *b, int fill, const char *func);
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
MM_HIDDEN int mm_heap_walk_check(struct mm_arena *a);

MM_HIDDEN int mm_fit_set(struct mm_arena *a, int policy);
MM_HIDDEN block_t *mm_fit_take(struct mm_arena *a, size_t need, block_t **corrupt);
MM_HIDDEN void mm_fit_insert(struct mm_arena *a, block_t *b);
MM_HIDDEN void mm_fit_remove(struct mm_arena *a, block_t *b);
MM_HIDDEN void mm_fit_forget(struct mm_arena *a);
MM_HIDDEN int mm_fit_check(struct mm_arena *a);

/* ---- large.c: blocks with a mapping of their own ---- */
MM_HIDDEN void *mm_large_alloc(size_t n, size_t alignment, size_t origin);
MM_HIDDEN size_t mm_large_free(block_t *b);
MM_HIDDEN void *mm_large_realloc(block_t *b, size_t n);
MM_HIDDEN int mm_large_valid(const block_t *b);
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

/* ---- os.c: the only file that talks to the kernel about memory ---- */
MM_HIDDEN size_t mm_page_size(void);
MM_HIDDEN void *mm_os_sbrk(intptr_t increment);      /* NULL on failure */
MM_HIDDEN void *mm_os_brk_now(void);
MM_HIDDEN void *mm_os_map(size_t length);           /* NULL on failure */
MM_HIDDEN int mm_os_unmap(void *addr, size_t length);
MM_HIDDEN void *mm_os_remap(void *addr, size_t old_length, size_t new_length); /* NULL on failure */
/* System-call counters (relaxed atomics, for mymalloc_stats): whoever makes
 * one of these calls outside the mm_os_ functions counts it here. */
enum mm_syscall { MM_SYSCALL_SBRK_GROW, MM_SYSCALL_SBRK_SHRINK, MM_SYSCALL_MMAP, MM_SYSCALL_MUNMAP,
                  MM_SYSCALL_MREMAP, MM_SYSCALL_MADVISE, MM_SYSCALL_COUNT };
MM_HIDDEN void mm_syscall_count(enum mm_syscall which);
MM_HIDDEN void mm_syscall_counts(uint64_t counts[MM_SYSCALL_COUNT]);
MM_HIDDEN int mm_os_release(void *addr, size_t length);  /* madvise(MADV_DONTNEED): 0, or -1 */
#define MM_CLOCK_MASK (((size_t)1 << 46) - 1)
MM_HIDDEN size_t mm_now_ms(void);
MM_HIDDEN int mm_ms_within(size_t now, size_t since, size_t ms);

/* ---- settings.c: thresholds from mallopt() and the environment ---- */
struct mm_settings {
    size_t mmap_threshold;   /* requests of this many bytes or more get a mapping */
    size_t trim_threshold;   /* trim the top when it holds this much free; SIZE_MAX: never */
    size_t top_pad;          /* extra bytes asked of the kernel on each growth */
    size_t mmap_max;         /* most mapped blocks at once; 0 disables them */
    size_t tcache;           /* 1: per-thread caches of small blocks */
    size_t stats_at_exit;    /* 1: MYMALLOC_STATS=1, malloc_stats() at exit */
    size_t decay_ms;         /* free pages go back this long after the free; SIZE_MAX: never */
    size_t background;       /* 1: a background thread runs the decay (background.c) */
    size_t fit;              /* the placement policy of every arena (MM_FIT_*) */
    size_t arena_max;        /* most arenas (0: 8 per CPU, arena.c) */
};
MM_HIDDEN extern struct mm_settings mm_settings;
#define MM_HEAPMAP_PATH_MAX 4096
MM_HIDDEN extern char mm_settings_heapmap[MM_HEAPMAP_PATH_MAX];   /* MYMALLOC_HEAPMAP ("": none) */
enum mm_setting_id { SET_MMAP_THRESHOLD, SET_TRIM_THRESHOLD, SET_TOP_PAD, SET_MMAP_MAX, SET_CHECK, SET_ABORT,
                     SET_TCACHE, SET_FIT, SET_STATS, SET_ARENA_MAX, SET_DECAY, SET_BACKGROUND, SET_COUNT };
/* Check and store a value; 0 when it is out of range.  `never`: "no limit"
 * (-1) was asked for. */
MM_HIDDEN int mm_settings_store(enum mm_setting_id id, size_t value, int never);
MM_HIDDEN void mm_settings_mapped_freed(size_t length, int heap_in_segments);
MM_HIDDEN int mm_settings_read_environment(void);

/* ---- mallopt.c: what a setting changes (entry layer) ---- */
MM_HIDDEN void mm_settings_changed(void);
MM_HIDDEN void mm_settings_apply(void);
static inline size_t mm_setting(const size_t *field) { return __atomic_load_n(field, __ATOMIC_RELAXED); }

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

/* ---- decay.c: the decay driven from the thread layer ---- */
MM_HIDDEN void mm_decay_look_idle(struct mm_arena *busy);
MM_HIDDEN void mm_decay_round(void);

/* ---- background.c: the opt-in background release thread ---- */
MM_HIDDEN void mm_background_start(void);
MM_HIDDEN void mm_background_fork_child(void);
MM_HIDDEN int mm_background_missing(void);
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

/* ---- stats.c: the reports ---- */
MM_HIDDEN void mm_stats_exit_prepare(void);     /* MYMALLOC_STATS=1 was read */

/* ---- diag.c: the fatal-error writer and small formatting helpers ---- */
MM_HIDDEN MM_COLD void mm_report_line(const char *func, const char *what, const void *p,
                                     const char *detail, size_t block);
MM_HIDDEN void mm_write_str(int fd, const char *s);
MM_HIDDEN char *mm_format_unsigned(char *out, size_t value);   /* returns end, NUL written */
MM_HIDDEN char *mm_format_hex(char *out, uintptr_t value);     /* "0x..." */

/* ---- heapmap.c: the heap map (mymalloc_heapmap, MYMALLOC_HEAPMAP) ---- */
MM_HIDDEN int mm_heapmap_at_exit(const char *path);   /* 0: path too long */

/* ---- check.c: heap-misuse checks ---- */
MM_HIDDEN extern int mm_abort_on_error;
MM_HIDDEN void mm_secret_init(void);
MM_HIDDEN int mm_check_level_set(int level);
static inline int mm_check_level(void) { return __atomic_load_n(&mm_secret.level, __ATOMIC_RELAXED); }
/* Report misuse: one line on stderr, then abort() unless MYMALLOC_ABORT=0. */
MM_HIDDEN MM_COLD void mm_report(const char *func, const char *what, const void *p, const char *detail, size_t block);
/* What a report does before it aborts (the arena layer's: let go of every
 * arena lock, so a SIGABRT handler that allocates gets through). */
MM_HIDDEN void mm_report_set_abort_hook(void (*hook)(void));
MM_HIDDEN int mm_probe_mapped(const void *header);
MM_HIDDEN void mm_note_unmapped(const void *p);
MM_HIDDEN int mm_recently_unmapped(const void *p);
/* ---- repair.c: reports of bad blocks, and mending after them ---- */
#define ORIGIN_ANY SIZE_MAX     /* malloc_usable_size accepts every family */
MM_HIDDEN int mm_origin_ok(const block_t *b, const void *p, const char *func, size_t expected);
MM_HIDDEN MM_COLD void mm_repair_before(struct mm_arena *a, block_t *b);
MM_HIDDEN MM_COLD void mm_quarantine_header(struct mm_arena *a, block_t *b, int prev_inuse);
MM_HIDDEN MM_COLD void mm_diagnose_header(struct mm_arena *a, block_t *b, const void *p, const char *func);

MM_HIDDEN void mm_canary_set(block_t *b, size_t n);
MM_HIDDEN size_t mm_canary_requested(block_t *b);
MM_HIDDEN int mm_canary_ok(block_t *b, size_t *offset);
MM_HIDDEN MM_COLD void mm_canary_report(block_t *b, const char *func, size_t offset);
MM_HIDDEN void mm_freed_fill(void *from, size_t length);
MM_HIDDEN int mm_freed_fill_ok(const void *from, size_t length, size_t *offset);
#define MM_CANARY_ROOM MM_WORD   /* extra bytes a request gets at level 2 */

/* ---- malloc.c: internal entry points used by other files ---- */
MM_HIDDEN extern int mm_ready;
MM_HIDDEN void mm_init_slow(void);
static inline void mm_init(void) { if (unlikely(!__atomic_load_n(&mm_ready, __ATOMIC_ACQUIRE))) mm_init_slow(); }
MM_HIDDEN void *mm_alloc(size_t n, size_t origin);
MM_HIDDEN void mm_free_as(void *p, size_t size, size_t alignment, size_t origin, const char *func,
                       enum mymalloc_call call);
MM_HIDDEN void *mm_memalign(size_t alignment, size_t n, size_t origin);

#endif
