/* segment.c - where the heaps' mmap segments are, readable without a lock:
 * the map from 1 MiB granule to arena of the thread arenas' segments (which
 * free() reads to find a block's arena), with the mapping and unmapping of
 * those segments, and the table of the main arena's segments (when sbrk
 * cannot be used), so that free() can tell a pointer into a segment from one
 * into a hole.  Heap layer. */
#include "heap.h"

uint8_t *mm_granule_map[MM_GRANULE_TOP];

/* Mark [base, base + size) (granule aligned) as arena `index`'s (0: no
 * arena's).  No lock: a granule belongs to one segment at a time, whose
 * arena's lock its caller holds, and a missing leaf of the map is installed
 * with a compare-and-swap (the loser unmaps its copy).  0 when a leaf cannot
 * be had. */
static int granules_mark(uintptr_t base, size_t size, unsigned index)
{
    size_t leaf_bytes = (size_t)1 << MM_GRANULE_LEAF_BITS;
    for (uintptr_t g = base >> MM_GRANULE_SHIFT; g < (base + size) >> MM_GRANULE_SHIFT; g++) {
        uint8_t **slot = &mm_granule_map[g >> MM_GRANULE_LEAF_BITS];
        uint8_t *leaf = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
        if (leaf == NULL) {
            uint8_t *fresh = mm_os_map(leaf_bytes);
            if (fresh == NULL)
                return 0;
            if (__atomic_compare_exchange_n(slot, &leaf, fresh, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                leaf = fresh;
            else
                mm_os_unmap(fresh, leaf_bytes);     /* another segment's mark installed one */
        }
        __atomic_store_n(&leaf[g & (leaf_bytes - 1)], (uint8_t)index, __ATOMIC_RELAXED);
    }
    return 1;
}

/* A new segment of at least `size` bytes for a non-main arena: granule
 * aligned, whole granules, in the map.  NULL when the kernel says no.  The
 * arena's lock is held. */
void *mm_segment_map(struct mm_arena *a, size_t *size)
{
    size_t granule = (size_t)1 << MM_GRANULE_SHIFT;
    size_t length = align_up(*size, granule);
    if (length < *size || length > SIZE_MAX - granule)
        return NULL;
    char *raw = mm_os_map(length + granule);
    if (raw == NULL)
        return NULL;
    char *base = (char *)align_up((uintptr_t)raw, granule);
    if (base > raw)
        mm_os_unmap(raw, (size_t)(base - raw));
    if (base + length < raw + length + granule)
        mm_os_unmap(base + length, (size_t)(raw + length + granule - (base + length)));
    if (!granules_mark((uintptr_t)base, length, a->index)) {
        granules_mark((uintptr_t)base, length, 0);
        mm_os_unmap(base, length);
        return NULL;
    }
    *size = length;
    return base;
}

/* A wholly free segment of a non-main arena goes back to the kernel: out of
 * the map first, so that no pointer check reads it once it is gone.  The
 * arena's lock is held.  0 when munmap refused (the segment stays in use). */
int mm_segment_unmap(struct mm_arena *a, void *base, size_t size)
{
    granules_mark((uintptr_t)base, size, 0);
    if (mm_os_unmap(base, size) == 0)
        return 1;
    granules_mark((uintptr_t)base, size, a->index);    /* the leaves exist: cannot fail */
    return 0;
}

/* Where the main arena's mmap segments are, readable without the lock, so that free() can
 * tell a pointer into a segment from one into an unmapped hole.  Segments are
 * never unmapped, only trimmed at their end (`end` moves down first). */
#define SEGMENT_SLOTS 512
static struct { uintptr_t base, end; } segments[SEGMENT_SLOTS];
static unsigned segment_count;

void mm_segment_note(const struct mm_region *r)
{
    unsigned i = segment_count;
    if (i < SEGMENT_SLOTS) {
        __atomic_store_n(&segments[i].base, (uintptr_t)r, __ATOMIC_RELAXED);
        __atomic_store_n(&segments[i].end, (uintptr_t)((const char *)r + r->size), __ATOMIC_RELAXED);
        __atomic_store_n(&segment_count, i + 1, __ATOMIC_RELEASE);
    }
}

void mm_segment_shrunk(const struct mm_region *r)
{
    unsigned n = __atomic_load_n(&segment_count, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < n; i++)
        if (segments[i].base == (uintptr_t)r)
            __atomic_store_n(&segments[i].end, (uintptr_t)((const char *)r + r->size), __ATOMIC_RELAXED);
}

/* 1: p is inside a segment; 0: it is not; -1: too many segments to know.
 * The newest segments are looked at first: they hold most live blocks. */
int mm_segment_holds(const void *p)
{
    unsigned n = __atomic_load_n(&segment_count, __ATOMIC_ACQUIRE);
    for (unsigned i = n; i-- > 0;)
        if ((uintptr_t)p >= __atomic_load_n(&segments[i].base, __ATOMIC_RELAXED) &&
            (uintptr_t)p < __atomic_load_n(&segments[i].end, __ATOMIC_RELAXED))
            return 1;
    return n < SEGMENT_SLOTS ? 0 : -1;
}
