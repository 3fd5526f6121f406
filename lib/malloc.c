/* malloc.c - the public entry points: the C, POSIX and glibc malloc family.
 * Each checks its arguments, takes the mapped path for large requests, and
 * otherwise works on the arena under its lock. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include "entry.h"
#include "family.h"
#include "mymalloc.h"

int mm_ready;

/* First call: settings from the environment.  Racing threads may both read
 * them; they store the same values. */
void mm_init_slow(void)
{
    int saved_errno = errno;     /* getrandom, the environment: never an error of the caller's */
    mm_report_set_abort_hook(mm_arenas_unlock_all);
    mm_secret_init();
    if (mm_settings_read_environment()) {
        __atomic_store_n(&mm_ready, 1, __ATOMIC_RELEASE);
        mm_settings_apply();
    }
    errno = saved_errno;
}

static inline int wants_mapping(size_t n)
{
    return n >= mm_setting(&mm_settings.mmap_threshold) &&
           __atomic_load_n(&mm_large_stats.count, __ATOMIC_RELAXED) < mm_setting(&mm_settings.mmap_max);
}

static MM_COLD void *out_of_memory(void)
{
    errno = ENOMEM;
    return NULL;
}

/* Is p's header inside our brk heap, and so readable for sure?  The fast
 * paths' test, two comparisons. */
static inline int in_brk_heap(struct mm_arena *a, const void *p)
{
    const char *start = __atomic_load_n(&a->brk_start, __ATOMIC_ACQUIRE);
    const char *end = __atomic_load_n(&a->brk_end, __ATOMIC_ACQUIRE);
    return (const char *)p > start && (const char *)p < end;
}

/* Is [p - 16, p) inside a non-main arena's segments (which stay mapped)? */
static inline int in_arena_segments(const void *p)
{
    return mm_granule_arena((uintptr_t)p - 2 * MM_WORD) != 0 && mm_granule_arena((uintptr_t)p - 1) != 0;
}

/* Can the header before p be read without faulting?  Inside our brk heap or
 * a non-main arena's segments it always can; elsewhere a pointer at the start
 * of a page (where mapped blocks begin) may be a mapped block already
 * unmapped, so the page is probed. */
static inline int header_readable(const void *p)
{
    struct mm_arena *a = &mm_main_arena;
    if (in_brk_heap(a, p) || in_arena_segments(p))
        return 1;
    if (!mm_heap_owns(a, p) || !__atomic_load_n(&a->has_segments, __ATOMIC_RELAXED))
        return mm_probe_mapped(block_of_user(p));   /* mapped block, trimmed away, or foreign */
    int in_segment = mm_segment_holds(block_of_user(p));
    if (in_segment >= 0)
        return in_segment || mm_probe_mapped(block_of_user(p));
    size_t in_page = (uintptr_t)p & (mm_page_size() - 1);
    if ((in_page & (in_page - 1)) != 0 || in_page > mm_page_size() / 2)
        return 1;     /* not where any mapped block's pointer can be */
    return mm_probe_mapped(block_of_user(p));
}

/* A pointer pointer_ok refused, reported: misaligned, or its header cannot
 * be read. */
static MM_COLD MM_NOINLINE int pointer_refused(const void *p, const char *func)
{
    if ((uintptr_t)p % MM_ALIGN != 0)
        mm_report(func, "invalid pointer", p, "not 16-byte aligned", 0);
    else if (mm_recently_unmapped(p))
        mm_report(func, "double free of", p, "a mapped block, already unmapped", 0);
    else
        mm_report(func, "invalid pointer", p, "not mapped: not from mymalloc, or freed twice", 0);
    return 0;
}

/* The first checks of a pointer handed back to us, before any lock: 0 after a
 * report (the caller then carries on without touching it).  `in_heap`: the
 * caller found p inside one of our heaps (its header is readable). */
static inline int pointer_ok(const void *p, const char *func, int in_heap)
{
    if (likely((uintptr_t)p % MM_ALIGN == 0) && (in_heap || likely(header_readable(p))))
        return 1;
    return pointer_refused(p, func);
}



/* A mapped block about to be freed or resized (checks on): 0 after a
 * report.  The word after its usable size must have kept its value. */
static int mapped_block_ok(const block_t *b, const void *p, const char *func, size_t origin)
{
    if (unlikely(!block_inuse(b) || !mm_large_valid(b))) {
        mm_report(func, "corrupted header of block", p, "a mapped block", 0);
        return 0;
    }
    if (!mm_origin_ok(b, p, func, origin))
        return 0;
    if (unlikely(!mm_large_tail_ok(b))) {
        mm_report(func, "write past the end of block", p, "the word after its usable size is overwritten",
                  block_size(b));
        return 0;
    }
    return 1;
}

/* MYMALLOC_CHECK=2 gives every new block a canary after the requested bytes. */
static inline int canaries_on(void) { return mm_check_level() == 2; }

static MM_COLD void *alloc_with_canary(size_t n, size_t alignment, size_t origin);

static MM_NOINLINE void *alloc_slow(size_t n, size_t origin);

/* malloc(): small requests are served from the thread's cache. */
void *mm_alloc(size_t n, size_t origin)
{
    struct mm_thread *t = &mm_self;
    if (likely(n <= MM_CACHE_MAX_REQUEST && origin != ORIGIN_QUARANTINE && mm_cache_usable(t))) {
        size_t cls = mm_cache_class(n), o = origin >> ORIGIN_SHIFT;
        void *p = mm_cache_pop(t, o, cls);
        if (likely(p != NULL))
            return p;
        p = mm_cache_refill(t, o, cls, origin);
        return p != NULL ? p : out_of_memory();
    }
    return alloc_slow(n, origin);
}

/* A heap block of `need` bytes from the calling thread's arena (from the
 * main arena when that one cannot grow), returned with *arena locked; NULL,
 * with no lock held, when out of memory. */
static block_t *arena_alloc_locked(size_t need, size_t origin, size_t *dirty, struct mm_arena **arena)
{
    struct mm_arena *a = mm_thread_arena();
    for (;;) {
        mm_lock(&a->lock);
        mm_pending_take(a);
        block_t *b = mm_heap_alloc(a, need, origin, dirty);
        if (b != NULL) {
            *arena = a;
            return b;
        }
        mm_unlock_heap(a);
        if (a == &mm_main_arena)
            return NULL;
        a = &mm_main_arena;
    }
}

static block_t *arena_alloc(size_t need, size_t origin, size_t *dirty)
{
    struct mm_arena *a;
    block_t *b = arena_alloc_locked(need, origin, dirty, &a);
    if (b != NULL)
        mm_unlock_heap(a);
    return b;
}

static void *alloc_slow(size_t n, size_t origin)
{
    mm_init();
    if (unlikely(canaries_on())) {
        void *p = n == 0 ? mm_zero_alloc() : NULL;    /* faults on any access */
        return p != NULL ? p : alloc_with_canary(n, MM_ALIGN, origin);
    }
    if (unlikely(n > MM_MAX_REQUEST))
        return out_of_memory();
    if (unlikely(wants_mapping(n))) {
        int saved_errno = errno;
        void *p = mm_large_alloc(n, MM_ALIGN, origin);
        if (p != NULL)
            return p;
        errno = saved_errno;    /* the heap may still serve it */
    }
    block_t *b = arena_alloc(request_to_block(n), origin, NULL);
    if (unlikely(b == NULL))
        return out_of_memory();
    return block_user(b);
}

/* Could `size` bytes aligned to `alignment` have been asked for to get b?
 * With a canary (made at level 2) only the size asked for will do.
 * Heap blocks are at most 16 bytes bigger than their request needs, or of the
 * ranged cache class that serves it (up to a sixteenth of a power of two
 * bigger); mapped ones at most a page and the alignment bigger. */
static int block_fits_size(block_t *b, size_t size, size_t alignment)
{
    size_t usable = block_usable(b);
    if (b->head & BLOCK_CANARY)          /* level 2 keeps the exact request */
        return size == mm_canary_requested(b);
    if (size > usable)
        return 0;
    if (block_mmapped(b))
        return usable - size < mm_page_size() + alignment + 2 * MM_ALIGN;
    size_t need = request_to_block(size), block = block_size(b);
    if (block - need < MM_MIN_BLOCK)
        return 1;
    /* A block for a ranged cache class serves every request of its class
     * (and may be up to 16 bytes bigger than the class's size). */
    return need > MM_CACHE_SMALL_MAX_BLOCK && need <= MM_CACHE_MAX_BLOCK &&
           block - mm_cache_block[mm_cache_ranged_class(need)] < MM_MIN_BLOCK;
}

/* A block with a canary must have kept it; else report and leave it. */
static inline int canary_intact(block_t *b, const char *func)
{
    size_t offset;
    if (likely(!(b->head & BLOCK_CANARY)) || mm_check_level() == 0 || mm_canary_ok(b, &offset))
        return 1;
    mm_canary_report(b, func, offset);
    return 0;
}

/* What malloc_usable_size reports: with a canary, the requested size. */
static size_t usable_bytes(block_t *b)
{
    return (b->head & BLOCK_CANARY) ? mm_canary_requested(b) : block_usable(b);
}

/* A sized free whose size does not fit the block: the report gives the
 * size the program may use (at level 2, the size it asked for). */
static MM_COLD void wrong_size(const char *func, const void *p, size_t size, block_t *b)
{
    char detail[80];
    int exact = (b->head & BLOCK_CANARY) != 0;
    char *o = mm_format_unsigned(detail, size);
    memcpy(o, " bytes given, ", 14);
    o = mm_format_unsigned(o + 14, exact ? mm_canary_requested(b) : block_usable(b));
    memcpy(o, exact ? " requested" : " usable", exact ? sizeof " requested" : sizeof " usable");
    mm_report(func, "wrong size for", p, detail, 0);
}

/* The same for the segments of the non-main arenas, and for a main heap of
 * mmap segments (sbrk failed or disabled). */
static MM_NOINLINE int in_segment_heap(const void *p)
{
    struct mm_arena *a = &mm_main_arena;
    return in_arena_segments(p) || (__atomic_load_n(&a->has_segments, __ATOMIC_RELAXED) && mm_heap_owns(a, p) &&
                                    mm_segment_holds(block_of_user(p)) == 1);
}

/* Is p's header in one of our heaps, and so readable for sure? */
static inline int in_heap(const void *p)
{
    return in_brk_heap(&mm_main_arena, p) || in_segment_heap(p);
}

/* Flag bits but P, the origin, and the size bits of 16 KiB and up: a small
 * in-use block of one origin has only its U bit and origin set there. */
#define SMALL_HEAD_MASK ((BLOCK_FLAGS & ~BLOCK_PREV_INUSE) | (BLOCK_SIZE_MASK & ~(size_t)(2 * MM_CACHE_MAX_BLOCK - 1)))

/* Is b (p's block, its header readable) a sound in-use heap block of this
 * origin, of a size some cache class holds, not already cached or waiting
 * (a double free), and (for a sized free) of a size that fits?  Its class,
 * or 0 when the slow path must look at it.  With checks off nothing but the
 * header's flags and size is looked at.  With checks on, the header's check
 * value also covers a pointer that is not 16-byte aligned (the word before
 * it is no header).  The next header (a write past its end) is checked when
 * the block reaches the heap, whose merging reads it anyway: here it would
 * cost a cache miss on every free. */
static inline __attribute__((always_inline)) size_t small_block_class(block_t *b, void *p, size_t size,
                                                                       size_t origin, size_t key)
{
    size_t head = __atomic_load_n(&b->head, __ATOMIC_RELAXED);
    if (unlikely((head & SMALL_HEAD_MASK) != (BLOCK_INUSE | origin)))
        return 0;
    if (mm_check_level() != 0 && unlikely(!head_check_matches(b, head) || cache_word_is_key(p, key)))
        return 0;
    if (size != 0 && unlikely(!block_fits_size(b, size, 0)))
        return 0;
    return mm_cache_class_of_block(head & (2 * MM_CACHE_MAX_BLOCK - 1) & ~(size_t)(MM_ALIGN - 1));  /* its size */
}

/* A free by a thread that has no cache (it never allocated): a sound small
 * block of an arena some thread uses waits on the arena's stack of pending
 * frees, no lock taken, until that thread's next heap operation.  0 when
 * the slow path must do it (no thread uses the arena, caching is off, or
 * the block is not such). */
static MM_NOINLINE int free_to_pending(void *p, size_t size, size_t origin)
{
    if (!__atomic_load_n(&mm_cache_mode, __ATOMIC_RELAXED) || (uintptr_t)p % MM_ALIGN != 0 || !in_heap(p))
        return 0;
    block_t *b = block_of_user(p);
    if (small_block_class(b, p, size, origin, cache_key(p)) == 0)
        return 0;
    struct mm_arena *a = mm_arena_of(b);
    if (__atomic_load_n(&a->threads, __ATOMIC_RELAXED) == 0)
        return 0;       /* no thread would take it in soon: free it now */
    mm_pending_push(a, b);
    return 1;
}

/* The free() fast path: a sound small block of this origin goes to the
 * thread's cache (whose state the caller checked), counted as `call` unless
 * that is MYMALLOC_CALL_COUNT.  The caller made sure p's header is in our
 * heap.  0 when the slow path must look at it: a foreign, mapped, big or
 * damaged block, a double free. */
static inline __attribute__((always_inline)) int free_to_cache(struct mm_thread *t, void *p, size_t size, size_t origin,
                                                            enum mymalloc_call call)
{
    size_t key = cache_key(p);      /* tested (a double free) and stored */
    size_t cls = small_block_class(block_of_user(p), p, size, origin, key);
    if (unlikely(cls == 0))
        return 0;
    if (call != MYMALLOC_CALL_COUNT)
        t->calls[call]++;
    mm_cache_push_keyed(t, origin >> ORIGIN_SHIFT, cls, p, key);
    return 1;
}

static MM_NOINLINE void free_to_heap(void *p, size_t size, size_t alignment, size_t origin, const char *func,
                                   int in_heap);

/* free() and its sized and C++ forms: a nonzero size is checked against the
 * block, and the block's origin against the family freeing it.  Small blocks
 * go to the thread's cache; all else to free_to_heap.  Counted as `call`
 * (MYMALLOC_CALL_COUNT: not counted here). */
void mm_free_as(void *p, size_t size, size_t alignment, size_t origin, const char *func, enum mymalloc_call call)
{
    struct mm_thread *t = &mm_self;
    if (likely(origin != ORIGIN_QUARANTINE && alignment <= MM_ALIGN && mm_cache_usable(t)) &&
        in_heap(p) &&
        free_to_cache(t, p, size, origin, call))
        return;
    if (call != MYMALLOC_CALL_COUNT)
        mm_count(call);
    if (p == NULL)
        return;
    if (t->state != MM_THREAD_LIVE && origin != ORIGIN_QUARANTINE && alignment <= MM_ALIGN && free_to_pending(p, size, origin))
        return;
    free_to_heap(p, size, alignment, origin, func, 0);
}

/* `in_heap`: the caller found p inside one of our heaps. */
static void free_to_heap(void *p, size_t size, size_t alignment, size_t origin, const char *func, int in_heap)
{
    struct mm_arena *a;
    int saved_errno = errno;
    mm_init();          /* a bad free as the first call still honours the settings */
    block_t *b = block_of_user(p);
    int checks = mm_check_level() != 0;

    if (unlikely(mm_zero_owns(p))) {    /* a malloc(0) of level 2: no header to read */
        mm_zero_free(p, func);
        goto out;
    }
    if (checks && !pointer_ok(p, func, in_heap))
        goto out;
    if (block_mmapped(b) && (!checks || block_head_ok(b))) {
        if (checks && !mapped_block_ok(b, p, func, origin))
            goto out;
        if (checks && size != 0 && !block_fits_size(b, size, alignment)) {
            wrong_size(func, p, size, b);
            goto out;
        }
        if (!canary_intact(b, func))
            goto out;
        mm_note_unmapped(p);
        mm_settings_mapped_freed(mm_large_free(b), __atomic_load_n(&mm_main_arena.has_segments, __ATOMIC_RELAXED));
        goto out;
    }
    a = mm_arena_of(b);
    if (checks && unlikely(!mm_heap_owns(a, b))) {
        mm_report(func, "invalid pointer", p, "not from mymalloc", 0);
        goto out;
    }
    block_t *waits = NULL;      /* for the quarantine, at level 2 */
    mm_lock(&a->lock);
    mm_pending_take(a);
    if (!checks || mm_heap_block_ok(a, b, p, func, origin)) {
        if (checks && size != 0 && !block_fits_size(b, size, alignment))
            wrong_size(func, p, size, b);
        else if (!canary_intact(b, func))
            ;
        else if (mm_quarantine_takes(b))
            mm_quarantine_fill(waits = b);
        else
            mm_heap_free(a, b, canaries_on(), func);
    }
    mm_unlock_heap(a);
    if (waits != NULL)
        mm_quarantine_add(waits, func);
out:
    errno = saved_errno;
}

/* Aligned allocation for a power-of-two alignment > 16: over-allocate, free
 * the misaligned front as a block of its own, then trim the tail.  `origin`
 * may carry BLOCK_CANARY: the block then gets MM_CANARY_ROOM more bytes and
 * a canary after n bytes, written under the lock. */
static void *memalign_flags(size_t alignment, size_t n, size_t origin)
{
    struct mm_arena *a;
    size_t request = n + (origin & BLOCK_CANARY ? MM_CANARY_ROOM : 0);
    if (alignment <= MM_ALIGN && !(origin & BLOCK_CANARY))
        return mm_alloc(n, origin);
    if (alignment > MM_MAX_REQUEST / 2 || n > MM_MAX_REQUEST - alignment - MM_MIN_BLOCK - MM_CANARY_ROOM)
        return out_of_memory();
    if (wants_mapping(request + alignment)) {
        int saved_errno = errno;
        void *p = mm_large_alloc(request, alignment, origin);
        if (p != NULL) {
            if (origin & BLOCK_CANARY)
                mm_canary_set(block_of_user(p), n);
            return p;
        }
        errno = saved_errno;
    }
    size_t need = request_to_block(request);
    if (alignment <= MM_ALIGN) {     /* a canary without extra alignment */
        block_t *b = arena_alloc_locked(need, origin, NULL, &a);
        if (b == NULL)
            return out_of_memory();
        mm_canary_set(b, n);
        mm_unlock_heap(a);
        return block_user(b);
    }
    block_t *b = arena_alloc_locked(need + alignment + MM_MIN_BLOCK, origin, NULL, &a);
    if (b == NULL)
        return out_of_memory();
    char *user = block_user(b);
    char *aligned = (char *)align_up((uintptr_t)user, alignment);
    if (aligned != user) {
        if ((size_t)(aligned - user) < MM_MIN_BLOCK)
            aligned += alignment;
        size_t lead = (size_t)(aligned - user), size = block_size(b);
        block_t *front = b;
        b = block_of_user(aligned);
        block_set_head(b, size - lead, BLOCK_INUSE | origin);
        block_set_head(front, 0, front->head & BLOCK_PREV_INUSE);
        block_mark_free(front, lead);
        mm_bin_insert(&a->bins, front);
        a->inuse_bytes -= lead;
    }
    mm_block_shrink(a, b, need);
    if (origin & BLOCK_CANARY)
        mm_canary_set(b, n);
    mm_unlock_heap(a);
    return aligned;
}

void *mm_memalign(size_t alignment, size_t n, size_t origin)
{
    if (alignment <= MM_ALIGN)
        return mm_alloc(n, origin);
    mm_init();
    return memalign_flags(alignment, n, origin | (canaries_on() ? BLOCK_CANARY : 0));
}

static void *alloc_with_canary(size_t n, size_t alignment, size_t origin)
{
    return memalign_flags(alignment, n, origin | BLOCK_CANARY);
}

static void *mm_realloc(void *p, size_t n)
{
    if (p == NULL)
        return mm_alloc(n, ORIGIN_MALLOC);
    if (n == 0) {
        mm_free_as(p, 0, 0, ORIGIN_MALLOC, "realloc", MYMALLOC_CALL_COUNT);
        return NULL;
    }
    block_t *b = block_of_user(p);
    mm_init();
    int checks = mm_check_level() != 0;
    if (unlikely(mm_zero_owns(p))) {    /* a malloc(0) of level 2: nothing to copy */
        if (!mm_zero_check(p, "realloc"))
            goto misuse;
        void *q = mm_alloc(n, ORIGIN_MALLOC);
        if (q != NULL)
            mm_zero_free(p, "realloc");
        return q;
    }
    if (checks && !pointer_ok(p, "realloc", 0))
        goto misuse;
    if (unlikely(n > MM_MAX_REQUEST))
        return out_of_memory();
    int canary = canaries_on();
    size_t need = request_to_block(n + (canary ? MM_CANARY_ROOM : 0));

    if (block_mmapped(b) && (!checks || block_head_ok(b))) {
        if (checks && !mapped_block_ok(b, p, "realloc", ORIGIN_MALLOC))
            goto misuse;
        if (!canary_intact(b, "realloc"))
            goto misuse;
        /* mremap keeps the block's place in its mapping: only for a block
         * made and kept without a canary (one with a canary ends at a guard
         * page; it is moved, as is one that must now get a canary). */
        if (n >= mm_setting(&mm_settings.mmap_threshold) && !canary && !(b->head & BLOCK_CANARY)) {
            void *q = mm_large_realloc(b, n);
            if (q != NULL)
                return q;
        }
    } else {
        struct mm_arena *a = mm_arena_of(b);
        if (checks && unlikely(!mm_heap_owns(a, b))) {
            mm_report("realloc", "invalid pointer", p, "not from mymalloc", 0);
            goto misuse;
        }
        mm_lock(&a->lock);
        if (checks && (!mm_heap_block_ok_to_resize(a, b, p, "realloc", ORIGIN_MALLOC) ||
                       !canary_intact(b, "realloc"))) {
            mm_unlock_heap(a);
            goto misuse;
        }
        int in_place = 1;
        if (need <= block_size(b))
            mm_block_shrink(a, b, need);
        else
            in_place = mm_block_grow(a, b, need);
        if (in_place && canary) {
            block_set_head(b, block_size(b), (b->head & BLOCK_FLAGS) | BLOCK_CANARY);
            mm_canary_set(b, n);
        } else if (in_place && (b->head & BLOCK_CANARY)) {
            block_set_head(b, block_size(b), (b->head & BLOCK_FLAGS) & ~BLOCK_CANARY);
        }
        mm_unlock_heap(a);
        if (in_place)
            return p;
    }
    void *q = mm_alloc(n, ORIGIN_MALLOC);
    if (q == NULL)
        return NULL;
    size_t keep = usable_bytes(b);
    memcpy(q, p, keep < n ? keep : n);
    mm_free_as(p, 0, 0, ORIGIN_MALLOC, "realloc", MYMALLOC_CALL_COUNT);
    return q;
misuse:
    /* Reported, and the program carries on (MYMALLOC_ABORT=0): the block is
     * left alone and the call fails. */
    errno = EINVAL;
    return NULL;
}

/* ---- the exported family ---- */

/* Everything but a hit in the thread's cache: the slow parts of malloc() and
 * free(), kept out of line so the fast paths need no stack frame. */
static MM_NOINLINE void *malloc_uncached(size_t n)
{
    mm_count_alloc(MYMALLOC_CALL_MALLOC, n);
    return mm_alloc(n, ORIGIN_MALLOC);
}

/* free() of what its fast path did not take; `in_heap`: p is inside one of
 * our heaps (so it need not be looked up again). */
static MM_NOINLINE void free_without_cache(void *p, int in_heap)
{
    mm_count(MYMALLOC_CALL_FREE);
    if (p == NULL || (mm_self.state != MM_THREAD_LIVE && free_to_pending(p, 0, ORIGIN_MALLOC)))
        return;
    free_to_heap(p, 0, 0, ORIGIN_MALLOC, "free", in_heap);
}

/* malloc() and free() open with the cache fast paths themselves, so a cached
 * block costs one thread-local lookup and no call. */
static MM_COLD void *malloc_cache_damaged(struct mm_thread *t, size_t cls, size_t n)
{
    mm_cache_corrupt(t, ORIGIN_MALLOC >> ORIGIN_SHIFT, cls);
    return malloc_uncached(n);
}

/* Requests of 1009 to 8184 bytes: a class of sixteenths of a power of two. */
static MM_NOINLINE void *malloc_ranged(struct mm_thread *t, size_t n)
{
    size_t cls = mm_cache_class(n);
    void *user = t->cache.head[ORIGIN_MALLOC >> ORIGIN_SHIFT][cls];
    if (user != NULL) {
        void *p = mm_cache_take(t, ORIGIN_MALLOC >> ORIGIN_SHIFT, cls, user);
        if (unlikely(p == NULL))
            return malloc_cache_damaged(t, cls, n);
        mm_count_alloc_live(t, MYMALLOC_CALL_MALLOC, n);
        return p;
    }
    return malloc_uncached(n);
}

MYMALLOC_EXPORT void *malloc(size_t n)
{
    struct mm_thread *t = &mm_self;
    if (likely(n <= MM_CACHE_SMALL_MAX_REQUEST && mm_cache_usable(t))) {
        size_t step = mm_fast_step(n), cls = mm_cache_class_of_step[step];
        void *user = t->cache.head[ORIGIN_MALLOC >> ORIGIN_SHIFT][cls];
        if (likely(user != NULL)) {
            void *p = mm_cache_take(t, ORIGIN_MALLOC >> ORIGIN_SHIFT, cls, user);
            if (unlikely(p == NULL))
                return malloc_cache_damaged(t, cls, n);
            t->fast_sizes[step]++;
            return p;
        }
    } else if (n <= MM_CACHE_MAX_REQUEST && mm_cache_usable(t)) {
        return malloc_ranged(t, n);
    }
    return malloc_uncached(n);
}

/* free() of a pointer outside the brk heap: NULL, a mapped block, a block of
 * a heap in mmap segments, or a foreign pointer. */
static MM_NOINLINE void free_elsewhere(void *p)
{
    struct mm_thread *t = &mm_self;
    int in_heap = p != NULL && in_segment_heap(p);
    if (in_heap && mm_cache_usable(t) && free_to_cache(t, p, 0, ORIGIN_MALLOC, MYMALLOC_CALL_FREE))
        return;
    free_without_cache(p, in_heap);
}

/* Is p inside a non-main arena's segment, with its header in the same
 * granule?  One look at the granule map, for the fast path. */
static inline int in_arena_granule(const void *p)
{
    return ((uintptr_t)p & (((uintptr_t)1 << MM_GRANULE_SHIFT) - 1)) != 0 && mm_granule_arena((uintptr_t)p) != 0;
}

MYMALLOC_EXPORT void free(void *p)
{
    struct mm_thread *t = &mm_self;
    if (unlikely(!in_brk_heap(&mm_main_arena, p)) && !in_arena_granule(p))
        return free_elsewhere(p);
    if (likely(mm_cache_usable(t)) && likely(free_to_cache(t, p, 0, ORIGIN_MALLOC, MYMALLOC_CALL_FREE)))
        return;
    free_without_cache(p, 1);
}

MYMALLOC_EXPORT void *calloc(size_t count, size_t size)
{
    size_t n;
    int overflow = __builtin_mul_overflow(count, size, &n);
    mm_count_alloc(MYMALLOC_CALL_CALLOC, overflow ? SIZE_MAX : n);
    if (overflow || n > MM_MAX_REQUEST)
        return out_of_memory();
    mm_init();
    if (unlikely(canaries_on())) {
        void *p = n == 0 ? mm_zero_alloc() : NULL;
        if (p != NULL)
            return p;
        p = alloc_with_canary(n, MM_ALIGN, ORIGIN_MALLOC);
        if (p != NULL)
            memset(p, 0, n);
        return p;
    }
    if (wants_mapping(n)) {
        int saved_errno = errno;
        void *p = mm_large_alloc(n, MM_ALIGN, ORIGIN_MALLOC);   /* fresh pages are zero */
        if (p != NULL) {
            mm_zero_claim(block_of_user(p), p, n, "a mapping of its own, fresh from mmap");
            return p;
        }
        errno = saved_errno;
    }
    size_t dirty;
    block_t *b = arena_alloc(request_to_block(n), ORIGIN_MALLOC, &dirty);
    if (b == NULL)
        return out_of_memory();
    memset(block_user(b), 0, dirty);
    return block_user(b);
}

MYMALLOC_EXPORT void *realloc(void *p, size_t n)
{
    if (p != NULL && n == 0)
        mm_count(MYMALLOC_CALL_REALLOC);     /* a free: no request size to count */
    else
        mm_count_alloc(MYMALLOC_CALL_REALLOC, n);
    return mm_realloc(p, n);
}

MYMALLOC_EXPORT void *reallocarray(void *p, size_t count, size_t size)
{
    size_t n;
    int overflow = __builtin_mul_overflow(count, size, &n);
    if (p != NULL && n == 0 && !overflow)
        mm_count(MYMALLOC_CALL_REALLOCARRAY);
    else
        mm_count_alloc(MYMALLOC_CALL_REALLOCARRAY, overflow ? SIZE_MAX : n);
    if (overflow)
        return out_of_memory();
    return mm_realloc(p, n);
}

MYMALLOC_EXPORT int posix_memalign(void **out, size_t alignment, size_t n)
{
    mm_count_alloc(MYMALLOC_CALL_POSIX_MEMALIGN, n);
    if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment % sizeof(void *) != 0)
        return EINVAL;
    int saved_errno = errno;
    void *p = mm_memalign(alignment, n, ORIGIN_MALLOC);
    if (p == NULL) {
        errno = ENOMEM;         /* as glibc: the return value and errno */
        return ENOMEM;
    }
    errno = saved_errno;
    *out = p;
    return 0;
}

MYMALLOC_EXPORT void *aligned_alloc(size_t alignment, size_t n)
{
    mm_count_alloc(MYMALLOC_CALL_ALIGNED_ALLOC, n);
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
        errno = EINVAL;
        return NULL;
    }
    return mm_memalign(alignment, n, ORIGIN_MALLOC);
}

/* glibc's memalign rounds an alignment that is not a power of two up to one. */
MYMALLOC_EXPORT void *memalign(size_t alignment, size_t n)
{
    mm_count_alloc(MYMALLOC_CALL_MEMALIGN, n);
    if (alignment > ((size_t)1 << 63)) {
        errno = EINVAL;
        return NULL;
    }
    if (alignment != 0 && (alignment & (alignment - 1)) != 0)
        alignment = (size_t)1 << (64 - __builtin_clzl(alignment));
    return mm_memalign(alignment, n, ORIGIN_MALLOC);
}

MYMALLOC_EXPORT void *valloc(size_t n)
{
    mm_count_alloc(MYMALLOC_CALL_VALLOC, n);
    return mm_memalign(mm_page_size(), n, ORIGIN_MALLOC);
}

MYMALLOC_EXPORT void *pvalloc(size_t n)
{
    size_t page = mm_page_size();
    mm_count_alloc(MYMALLOC_CALL_PVALLOC, n);
    if (n > MM_MAX_REQUEST)
        return out_of_memory();
    return mm_memalign(page, n == 0 ? page : align_up(n, page), ORIGIN_MALLOC);
}

static MM_NOINLINE size_t usable_size_checked(void *p);

/* malloc_usable_size() with no lock in the common case (redis asks it on
 * every allocation and free): a block of our heap whose header passes its
 * check, in use, not cached or waiting (a key), no mapping or canary of its
 * own, from no quarantine, at check level 1.  The caller's own block's
 * header changes under no one else's hands; anything else takes the checked
 * path below, under the arena's lock. */
MYMALLOC_EXPORT size_t malloc_usable_size(void *p)
{
    if (likely(in_brk_heap(&mm_main_arena, p) || in_arena_granule(p)) && likely(mm_check_level() == 1)) {
        block_t *b = block_of_user(p);
        size_t head = __atomic_load_n(&b->head, __ATOMIC_RELAXED);
        if (likely((head & (BLOCK_INUSE | BLOCK_MMAPPED | BLOCK_CANARY)) == BLOCK_INUSE &&
                   (head & ORIGIN_MASK) != ORIGIN_QUARANTINE && (uintptr_t)p % MM_ALIGN == 0 &&
                   head_check_matches(b, head) && !mm_block_cached(b)))
            return (head & BLOCK_SIZE_MASK) - MM_HEADER;
    }
    return usable_size_checked(p);
}

static size_t usable_size_checked(void *p)
{
    if (p == NULL)
        return 0;
    block_t *b = block_of_user(p);
    mm_init();
    if (unlikely(mm_zero_owns(p))) {
        mm_zero_check(p, "malloc_usable_size");
        return 0;
    }
    if (mm_check_level() == 0)
        return block_usable(b);
    if (!pointer_ok(p, "malloc_usable_size", 0))
        return 0;
    if (block_mmapped(b) && block_head_ok(b)) {
        if (!mapped_block_ok(b, p, "malloc_usable_size", ORIGIN_ANY))
            return 0;
        return canary_intact(b, "malloc_usable_size") ? usable_bytes(b) : 0;
    }
    struct mm_arena *a = mm_arena_of(b);
    if (!mm_heap_owns(a, b)) {
        mm_report("malloc_usable_size", "invalid pointer", p, "not from mymalloc", 0);
        return 0;
    }
    size_t usable = 0;
    mm_lock(&a->lock);
    if (!block_head_ok(b))
        mm_diagnose_header(a, b, p, "malloc_usable_size");
    else if (!block_inuse(b) || mm_block_cached(b))
        mm_report("malloc_usable_size", "freed block", p, NULL, block_size(b));
    else if (mm_origin_ok(b, p, "malloc_usable_size", ORIGIN_ANY) && canary_intact(b, "malloc_usable_size"))
        usable = usable_bytes(b);
    mm_unlock(&a->lock);
    return usable;
}

MYMALLOC_EXPORT int malloc_trim(size_t pad)
{
    int saved_errno = errno, released = 0;
    if (mm_self.state == MM_THREAD_LIVE)
        mm_cache_flush(&mm_self);
    mm_quarantine_empty("malloc_trim");
    unsigned count = __atomic_load_n(&mm_arena_count, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < count; i++) {      /* first the caches left to arenas: */
        struct mm_arena *a = mm_arenas[i];      /* their blocks of other arenas wait */
        if (__atomic_load_n(&a->stashed, __ATOMIC_RELAXED)) {   /* on those arenas' stacks */
            mm_lock(&a->lock);
            mm_cache_stash_free(a);
            mm_unlock_heap(a);
        }
    }
    for (unsigned i = 0; i < count; i++) {
        struct mm_arena *a = mm_arenas[i];
        mm_lock(&a->lock);
        mm_pending_take(a);
        mm_park_release(a);
        released |= mm_heap_trim(a, pad);
        released |= mm_release_all(a, pad);    /* and the pages inside free blocks */
        if (pad == 0)
            released |= mm_heap_top_drop(a);   /* a thread arena's last segment, if free */
        mm_unlock_heap(a);
    }
    errno = saved_errno;
    return released;
}

MYMALLOC_EXPORT void free_sized(void *p, size_t size)
{
    mm_free_as(p, size, 0, ORIGIN_MALLOC, "free_sized", MYMALLOC_CALL_FREE_SIZED);
}

MYMALLOC_EXPORT void free_aligned_sized(void *p, size_t alignment, size_t size)
{
    mm_free_as(p, size, alignment, ORIGIN_MALLOC, "free_aligned_sized", MYMALLOC_CALL_FREE_ALIGNED_SIZED);
}

static const char *const call_names[MYMALLOC_CALL_COUNT] = {
    [MYMALLOC_CALL_MALLOC] = "malloc",
    [MYMALLOC_CALL_FREE] = "free",
    [MYMALLOC_CALL_CALLOC] = "calloc",
    [MYMALLOC_CALL_REALLOC] = "realloc",
    [MYMALLOC_CALL_REALLOCARRAY] = "reallocarray",
    [MYMALLOC_CALL_POSIX_MEMALIGN] = "posix_memalign",
    [MYMALLOC_CALL_ALIGNED_ALLOC] = "aligned_alloc",
    [MYMALLOC_CALL_MEMALIGN] = "memalign",
    [MYMALLOC_CALL_VALLOC] = "valloc",
    [MYMALLOC_CALL_PVALLOC] = "pvalloc",
    [MYMALLOC_CALL_FREE_SIZED] = "free_sized",
    [MYMALLOC_CALL_FREE_ALIGNED_SIZED] = "free_aligned_sized",
    [MYMALLOC_CALL_NEW] = "operator new",
    [MYMALLOC_CALL_NEW_ARRAY] = "operator new[]",
    [MYMALLOC_CALL_NEW_NOTHROW] = "operator new",
    [MYMALLOC_CALL_NEW_ARRAY_NOTHROW] = "operator new[]",
    [MYMALLOC_CALL_NEW_ALIGNED] = "operator new",
    [MYMALLOC_CALL_NEW_ARRAY_ALIGNED] = "operator new[]",
    [MYMALLOC_CALL_NEW_ALIGNED_NOTHROW] = "operator new",
    [MYMALLOC_CALL_NEW_ARRAY_ALIGNED_NOTHROW] = "operator new[]",
    [MYMALLOC_CALL_DELETE] = "operator delete",
    [MYMALLOC_CALL_DELETE_ARRAY] = "operator delete[]",
    [MYMALLOC_CALL_DELETE_NOTHROW] = "operator delete",
    [MYMALLOC_CALL_DELETE_ARRAY_NOTHROW] = "operator delete[]",
    [MYMALLOC_CALL_DELETE_SIZED] = "operator delete",
    [MYMALLOC_CALL_DELETE_ARRAY_SIZED] = "operator delete[]",
    [MYMALLOC_CALL_DELETE_ALIGNED] = "operator delete",
    [MYMALLOC_CALL_DELETE_ARRAY_ALIGNED] = "operator delete[]",
    [MYMALLOC_CALL_DELETE_ALIGNED_NOTHROW] = "operator delete",
    [MYMALLOC_CALL_DELETE_ARRAY_ALIGNED_NOTHROW] = "operator delete[]",
    [MYMALLOC_CALL_DELETE_SIZED_ALIGNED] = "operator delete",
    [MYMALLOC_CALL_DELETE_ARRAY_SIZED_ALIGNED] = "operator delete[]",
};

MYMALLOC_EXPORT const char *mymalloc_call_name(enum mymalloc_call call)
{
    return (unsigned)call < MYMALLOC_CALL_COUNT ? call_names[call] : NULL;
}

/* The origin tag of the blocks an entry point makes or expects to free. */
static size_t call_origin(enum mymalloc_call call)
{
    switch (call) {
    case MYMALLOC_CALL_NEW: case MYMALLOC_CALL_NEW_NOTHROW:
    case MYMALLOC_CALL_NEW_ALIGNED: case MYMALLOC_CALL_NEW_ALIGNED_NOTHROW:
    case MYMALLOC_CALL_DELETE: case MYMALLOC_CALL_DELETE_NOTHROW:
    case MYMALLOC_CALL_DELETE_SIZED: case MYMALLOC_CALL_DELETE_ALIGNED:
    case MYMALLOC_CALL_DELETE_ALIGNED_NOTHROW: case MYMALLOC_CALL_DELETE_SIZED_ALIGNED:
        return ORIGIN_NEW;
    case MYMALLOC_CALL_NEW_ARRAY: case MYMALLOC_CALL_NEW_ARRAY_NOTHROW:
    case MYMALLOC_CALL_NEW_ARRAY_ALIGNED: case MYMALLOC_CALL_NEW_ARRAY_ALIGNED_NOTHROW:
    case MYMALLOC_CALL_DELETE_ARRAY: case MYMALLOC_CALL_DELETE_ARRAY_NOTHROW:
    case MYMALLOC_CALL_DELETE_ARRAY_SIZED: case MYMALLOC_CALL_DELETE_ARRAY_ALIGNED:
    case MYMALLOC_CALL_DELETE_ARRAY_ALIGNED_NOTHROW: case MYMALLOC_CALL_DELETE_ARRAY_SIZED_ALIGNED:
        return ORIGIN_NEW_ARRAY;
    default:
        return ORIGIN_MALLOC;
    }
}

MYMALLOC_EXPORT void *mymalloc_alloc_counted(size_t size, size_t alignment, enum mymalloc_call call)
{
    if ((unsigned)call < MYMALLOC_CALL_COUNT)
        mm_count_alloc(call, size);
    if ((alignment & (alignment - 1)) != 0) {
        errno = EINVAL;
        return NULL;
    }
    return mm_memalign(alignment, size, call_origin(call));
}

MYMALLOC_EXPORT void mymalloc_free_counted(void *p, size_t size, size_t alignment, enum mymalloc_call call)
{
    const char *name = mymalloc_call_name(call);
    mm_free_as(p, size, alignment, call_origin(call), name != NULL ? name : "mymalloc_free_counted",
            name != NULL ? call : MYMALLOC_CALL_COUNT);
}

MYMALLOC_EXPORT const char *mymalloc_version(void)
{
    return MYMALLOC_VERSION_STRING;
}

/* Hidden aliases: the table of family.h must name these definitions, never
 * whatever a preloaded library interposes on the exported names. */
extern __typeof(malloc) mm_local_malloc __attribute__((alias("malloc"), visibility("hidden"), copy(malloc)));
extern __typeof(free) mm_local_free __attribute__((alias("free"), visibility("hidden"), copy(free)));
extern __typeof(calloc) mm_local_calloc __attribute__((alias("calloc"), visibility("hidden"), copy(calloc)));
extern __typeof(realloc) mm_local_realloc __attribute__((alias("realloc"), visibility("hidden"), copy(realloc)));
extern __typeof(reallocarray) mm_local_reallocarray __attribute__((alias("reallocarray"), visibility("hidden"), copy(reallocarray)));
extern __typeof(posix_memalign) mm_local_posix_memalign __attribute__((alias("posix_memalign"), visibility("hidden"), copy(posix_memalign)));
extern __typeof(aligned_alloc) mm_local_aligned_alloc __attribute__((alias("aligned_alloc"), visibility("hidden"), copy(aligned_alloc)));
extern __typeof(memalign) mm_local_memalign __attribute__((alias("memalign"), visibility("hidden"), copy(memalign)));
extern __typeof(valloc) mm_local_valloc __attribute__((alias("valloc"), visibility("hidden"), copy(valloc)));
extern __typeof(pvalloc) mm_local_pvalloc __attribute__((alias("pvalloc"), visibility("hidden"), copy(pvalloc)));
extern __typeof(malloc_usable_size) mm_local_malloc_usable_size __attribute__((alias("malloc_usable_size"), visibility("hidden"), copy(malloc_usable_size)));
extern __typeof(malloc_trim) mm_local_malloc_trim __attribute__((alias("malloc_trim"), visibility("hidden"), copy(malloc_trim)));
extern __typeof(free_sized) mm_local_free_sized __attribute__((alias("free_sized"), visibility("hidden"), copy(free_sized)));
extern __typeof(free_aligned_sized) mm_local_free_aligned_sized __attribute__((alias("free_aligned_sized"), visibility("hidden"), copy(free_aligned_sized)));

extern __typeof(mallopt) mm_local_mallopt __attribute__((visibility("hidden")));
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
extern __typeof(mallinfo) mm_local_mallinfo __attribute__((visibility("hidden")));
extern __typeof(mallinfo2) mm_local_mallinfo2 __attribute__((visibility("hidden")));
extern __typeof(malloc_stats) mm_local_malloc_stats __attribute__((visibility("hidden")));
extern __typeof(malloc_info) mm_local_malloc_info __attribute__((visibility("hidden")));

#pragma GCC diagnostic pop

static const struct mymalloc_family family = {
    mm_local_malloc, mm_local_free, mm_local_calloc, mm_local_realloc, mm_local_reallocarray,
    mm_local_posix_memalign, mm_local_aligned_alloc, mm_local_memalign, mm_local_valloc,
    mm_local_pvalloc, mm_local_malloc_usable_size, mm_local_malloc_trim, mm_local_mallopt,
    mm_local_mallinfo, mm_local_mallinfo2, mm_local_malloc_stats, mm_local_free_sized,
    mm_local_free_aligned_sized, mm_local_malloc_info,
};

MYMALLOC_EXPORT const struct mymalloc_family *mymalloc_family(void)
{
    return &family;
}
