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

struct mm_arena;

/* ---- lock.c: the arena lock (a futex word) and fork handling ---- */
typedef struct { int state; } mm_lock_t;
MM_HIDDEN void mm_lock_slow(mm_lock_t *l);
MM_HIDDEN void mm_unlock_slow(mm_lock_t *l);
static inline void mm_lock(mm_lock_t *l)
{
    int expected = 0;
    if (!__atomic_compare_exchange_n(&l->state, &expected, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        mm_lock_slow(l);
}
static inline void mm_unlock(mm_lock_t *l)
{
    if (__atomic_exchange_n(&l->state, 0, __ATOMIC_RELEASE) == 2)
        mm_unlock_slow(l);
}

/* ---- thread.c: per-thread counters ---- */
enum { MM_THREAD_NEW, MM_THREAD_LIVE, MM_THREAD_EXITED };
/* A thread's cache of small free blocks (cache.c): per size class and per
 * origin (the malloc family, operator new), singly linked through the first
 * user word (mangled), with a key in the second word while cached. */
#define MM_CACHE_CLASSES 64                          /* class = block size / 16 */
#define MM_CACHE_MAX_BLOCK ((MM_CACHE_CLASSES - 1) * 16)
#define MM_CACHE_MAX_REQUEST (MM_CACHE_MAX_BLOCK - MM_HEADER)
#define MM_CACHE_ORIGINS 2
struct mm_cache {
    block_t *head[MM_CACHE_ORIGINS][MM_CACHE_CLASSES];
    uint8_t count[MM_CACHE_ORIGINS][MM_CACHE_CLASSES];
};

struct mm_thread {
    struct mm_thread *next, *prev;      /* the registry of live threads */
    int state;                          /* MM_THREAD_NEW, _LIVE or _EXITED */
    uint64_t calls[MYMALLOC_CALL_COUNT];
    struct mm_cache cache;
};
MM_HIDDEN extern __thread struct mm_thread mm_self __attribute__((tls_model("initial-exec")));
MM_HIDDEN void mm_count_slow(enum mymalloc_call call);
MM_HIDDEN void mm_thread_counts(uint64_t calls[MYMALLOC_CALL_COUNT], size_t *cached_bytes);
MM_HIDDEN void mm_thread_setup(void);
MM_HIDDEN void mm_thread_fork_prepare(void);
MM_HIDDEN void mm_thread_fork_parent(void);
MM_HIDDEN void mm_thread_fork_child(void);
/* Count one call of an entry point: a thread-local increment. */
static inline void mm_count(enum mymalloc_call call)
{
    struct mm_thread *t = &mm_self;
    if (unlikely(t->state != MM_THREAD_LIVE)) {
        mm_count_slow(call);
        return;
    }
    __atomic_store_n(&t->calls[call], __atomic_load_n(&t->calls[call], __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}

/* ---- bins.c: segregated free lists with a bitmap of non-empty bins ---- */
#define MM_SMALL_LIMIT 1024u                 /* exact bins below this block size */
#define MM_NBINS       (64 + (64 - 10) * 4)  /* 64 small + 4 per power of two */
#define MM_BINMAP_WORDS ((MM_NBINS + 63) / 64)

/* Free blocks of MM_RELEASE_MIN bytes or more whose pages are still
 * resident: a list in the order they became free (release.c). */
struct mm_dirty {
    block_t *head, *tail;             /* oldest first */
    size_t count;
    unsigned tick;                    /* heap operations since the last look */
};

struct mm_bins {
    block_t *head[MM_NBINS];          /* small: LIFO; large: sorted by size */
    uint64_t map[MM_BINMAP_WORDS];    /* bit i set <=> head[i] != NULL */
    unsigned words;                   /* bit w set <=> map[w] != 0 */
    struct mm_dirty dirty;            /* kept by mm_bin_insert / mm_bin_remove */
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
};

MM_HIDDEN extern struct mm_arena mm_main_arena;

/* Is p inside the bounds of the arena's regions (read without the lock)? */
static inline int mm_heap_owns(const struct mm_arena *a, const void *p)
{
    return (uintptr_t)p >= __atomic_load_n(&a->lowest, __ATOMIC_RELAXED) &&
           (uintptr_t)p < __atomic_load_n(&a->highest, __ATOMIC_RELAXED);
}

MM_HIDDEN size_t mm_bin_index(size_t size);
MM_HIDDEN void mm_bin_insert(struct mm_bins *bins, block_t *b);
MM_HIDDEN void mm_bin_remove(struct mm_bins *bins, block_t *b);
MM_HIDDEN block_t *mm_bin_take(struct mm_arena *a, size_t need, block_t **corrupt);
MM_HIDDEN int mm_bin_links_ok(const struct mm_arena *a, const block_t *b);
MM_HIDDEN size_t mm_bins_count(const struct mm_bins *bins, size_t *bytes);

MM_HIDDEN block_t *mm_heap_alloc(struct mm_arena *a, size_t need, size_t origin, size_t *dirty);
MM_HIDDEN void mm_heap_rebuild_bins(struct mm_arena *a);
MM_HIDDEN void mm_heap_quarantine_free(struct mm_arena *a, block_t *bad);
MM_HIDDEN void mm_heap_release(struct mm_arena *a, block_t *b, int fill);
MM_HIDDEN void mm_block_shrink(struct mm_arena *a, block_t *b, size_t need);
MM_HIDDEN int mm_block_grow(struct mm_arena *a, block_t *b, size_t need);
MM_HIDDEN int mm_heap_trim(struct mm_arena *a, size_t keep);

MM_HIDDEN int mm_segment_holds(const void *p);
MM_HIDDEN int mm_heap_walk_check(struct mm_arena *a);

/* ---- large.c: blocks with a mapping of their own ---- */
MM_HIDDEN void *mm_large_alloc(size_t n, size_t alignment, size_t origin);
MM_HIDDEN void mm_large_free(block_t *b);
MM_HIDDEN void *mm_large_realloc(block_t *b, size_t n);
MM_HIDDEN int mm_large_valid(const block_t *b);

/* ---- os.c: the only file that talks to the kernel about memory ---- */
MM_HIDDEN size_t mm_page_size(void);
MM_HIDDEN void *mm_os_sbrk(intptr_t increment);      /* NULL on failure */
MM_HIDDEN void *mm_os_brk_now(void);
MM_HIDDEN void *mm_os_map(size_t length);           /* NULL on failure */
MM_HIDDEN int mm_os_unmap(void *addr, size_t length);
MM_HIDDEN void *mm_os_remap(void *addr, size_t old_length, size_t new_length); /* NULL on failure */
MM_HIDDEN int mm_os_release(void *addr, size_t length);  /* madvise(MADV_DONTNEED): 0, or -1 */

/* ---- settings.c: thresholds from mallopt() and the environment ---- */
struct mm_settings {
    size_t mmap_threshold;   /* requests of this many bytes or more get a mapping */
    size_t trim_threshold;   /* trim the top when it holds this much free; SIZE_MAX: never */
    size_t top_pad;          /* extra bytes asked of the kernel on each growth */
    size_t mmap_max;         /* most mapped blocks at once; 0 disables them */
    size_t tcache;           /* 1: per-thread caches of small blocks */
    size_t decay_ms;         /* free pages go back this long after the free; SIZE_MAX: never */
};
MM_HIDDEN void mm_settings_changed(void);
MM_HIDDEN void mm_settings_mapped_freed(size_t length);
MM_HIDDEN extern struct mm_settings mm_settings;
MM_HIDDEN int mm_settings_read_environment(void);
static inline size_t mm_setting(const size_t *field) { return __atomic_load_n(field, __ATOMIC_RELAXED); }

/* ---- release.c: the pages inside big free blocks given back with madvise ---- */
#define MM_RELEASE_MIN ((size_t)16384)  /* free blocks this big are tracked and released */
#define MM_RELEASE_HEAD (sizeof(block_t) + 3 * MM_WORD)  /* header, bin links, state, list links */
#define MM_RELEASE_ZERO       ((size_t)1)  /* its inner pages were released: they read as zero */
#define MM_RELEASE_MAYBE_ZERO ((size_t)2)  /* some of them may have been */
#define MM_RELEASE_TICK 8                  /* heap operations between two looks at the clock */
MM_HIDDEN void mm_release_add(struct mm_bins *bins, block_t *b);
MM_HIDDEN void mm_release_remove(struct mm_bins *bins, block_t *b);
MM_HIDDEN size_t mm_release_flags_checked(const block_t *b);
MM_HIDDEN void mm_release_set(struct mm_bins *bins, block_t *b, size_t flags);
MM_HIDDEN int mm_release_zero_range(const block_t *b, size_t *from, size_t *to);
MM_HIDDEN int mm_release_words_ok(const struct mm_arena *a, const block_t *b);
MM_HIDDEN void mm_release_tick(struct mm_arena *a, const char *func);
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
    if (d->head != NULL && (++d->tick >= MM_RELEASE_TICK || mm_setting(&mm_settings.decay_ms) == 0))
        mm_release_tick(a, func);
}

/* ---- stats.c: counters kept outside the arena lock ---- */
struct mm_large_stats {
    size_t count;            /* mapped blocks alive */
    size_t peak_count;
    size_t bytes;            /* bytes in them */
    size_t peak_bytes;
};
MM_HIDDEN extern struct mm_large_stats mm_large_stats;
MM_HIDDEN void mm_stats_large_add(size_t bytes);
MM_HIDDEN void mm_stats_large_sub(size_t bytes);

/* ---- diag.c: the fatal-error writer and small formatting helpers ---- */
MM_HIDDEN MM_COLD void mm_report_line(const char *func, const char *what, const void *p,
                                     const char *detail, size_t block);
MM_HIDDEN MM_COLD MM_NORETURN void mm_assert_failed(const char *file, int line, const char *cond);
MM_HIDDEN void mm_write_str(int fd, const char *s);
MM_HIDDEN char *mm_format_unsigned(char *out, size_t value);   /* returns end, NUL written */
MM_HIDDEN char *mm_format_hex(char *out, uintptr_t value);     /* "0x..." */

/* ---- check.c: heap-misuse checks ---- */
MM_HIDDEN extern int mm_abort_on_error;
MM_HIDDEN void mm_secret_init(void);
MM_HIDDEN int mm_check_level_set(int level);
static inline int mm_check_level(void) { return __atomic_load_n(&mm_secret.level, __ATOMIC_RELAXED); }
/* Report misuse: one line on stderr, then abort() unless MYMALLOC_ABORT=0. */
MM_HIDDEN MM_COLD void mm_report(const char *func, const char *what, const void *p, const char *detail, size_t block);
MM_HIDDEN int mm_probe_mapped(const void *header);
MM_HIDDEN void mm_note_unmapped(const void *p);
MM_HIDDEN int mm_recently_unmapped(const void *p);
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
MM_HIDDEN void mm_free(void *p, size_t size, size_t alignment, size_t origin, const char *func);
MM_HIDDEN void *mm_memalign(size_t alignment, size_t n, size_t origin);

#endif
