/* stats.c - statistics: counters for mapped blocks (kept with atomics, since
 * those never take the arena lock), and the reports built from them and the
 * arena: mallinfo2(), mallinfo() and malloc_stats(). */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <string.h>
#include <unistd.h>
#include "internal.h"
#include "mymalloc.h"

struct mm_large_stats mm_large_stats;

void mm_stats_large_add(size_t bytes)
{
    size_t count = __atomic_add_fetch(&mm_large_stats.count, 1, __ATOMIC_RELAXED);
    size_t peak_count = __atomic_load_n(&mm_large_stats.peak_count, __ATOMIC_RELAXED);
    while (count > peak_count &&
           !__atomic_compare_exchange_n(&mm_large_stats.peak_count, &peak_count, count, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
    size_t now = __atomic_add_fetch(&mm_large_stats.bytes, bytes, __ATOMIC_RELAXED);
    size_t peak = __atomic_load_n(&mm_large_stats.peak_bytes, __ATOMIC_RELAXED);
    while (now > peak &&
           !__atomic_compare_exchange_n(&mm_large_stats.peak_bytes, &peak, now, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

void mm_stats_large_sub(size_t bytes)
{
    __atomic_sub_fetch(&mm_large_stats.count, 1, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&mm_large_stats.bytes, bytes, __ATOMIC_RELAXED);
}

/* The heap figures of every arena, summed (each arena read under its lock).
 * The peak is the sum of the arenas' peaks: an upper bound of the true one. */
void mm_heap_totals(struct mm_heap_totals *t)
{
    unsigned count = __atomic_load_n(&mm_arena_count, __ATOMIC_ACQUIRE);
    memset(t, 0, sizeof *t);
    t->arenas = count;
    for (unsigned i = 0; i < count; i++) {
        struct mm_arena *a = __atomic_load_n(&mm_arenas[i], __ATOMIC_ACQUIRE);
        size_t free_bytes;
        mm_lock(&a->lock);
        t->free_blocks += mm_bins_count(&a->bins, &free_bytes);
        t->free_bytes += free_bytes;
        t->top_bytes += a->top != NULL ? block_size(a->top) : 0;
        t->tops += a->top != NULL;
        t->system_bytes += a->system_bytes;
        t->peak_system_bytes += a->peak_system_bytes;
        t->inuse_bytes += a->inuse_bytes;
        mm_unlock(&a->lock);
    }
}

MYMALLOC_EXPORT struct mallinfo2 mallinfo2(void)
{
    struct mallinfo2 info;
    struct mm_heap_totals h;
    size_t free_bytes, top;

    memset(&info, 0, sizeof info);
    mm_heap_totals(&h);
    info.ordblks = h.free_blocks;
    free_bytes = h.free_bytes;
    top = h.top_bytes;
    info.arena = h.system_bytes;
    info.usmblks = h.peak_system_bytes;

    /* Blocks in threads' caches are free as far as the program can tell. */
    uint64_t calls[MYMALLOC_CALL_COUNT];
    size_t cached;
    mm_thread_counts(calls, &cached);

    info.ordblks += h.tops;
    info.fordblks = free_bytes + top + cached;
    info.fsmblks = cached;
    info.uordblks = info.arena - info.fordblks;
    info.keepcost = top;
    info.hblks = __atomic_load_n(&mm_large_stats.count, __ATOMIC_RELAXED);
    info.hblkhd = __atomic_load_n(&mm_large_stats.bytes, __ATOMIC_RELAXED);
    return info;
}

static int clamp_int(size_t v) { return v > 0x7fffffff ? 0x7fffffff : (int)v; }

MYMALLOC_EXPORT struct mallinfo mallinfo(void)
{
    struct mallinfo2 m = mallinfo2();
    struct mallinfo info = {
        .arena = clamp_int(m.arena), .ordblks = clamp_int(m.ordblks), .smblks = clamp_int(m.smblks),
        .hblks = clamp_int(m.hblks), .hblkhd = clamp_int(m.hblkhd), .usmblks = clamp_int(m.usmblks),
        .fsmblks = clamp_int(m.fsmblks), .uordblks = clamp_int(m.uordblks),
        .fordblks = clamp_int(m.fordblks), .keepcost = clamp_int(m.keepcost),
    };
    return info;
}

static char *stat_line(char *o, const char *label, size_t value)
{
    char number[24];
    size_t label_len = strlen(label), digits = (size_t)(mm_format_unsigned(number, value) - number);
    memcpy(o, label, label_len);
    o += label_len;
    for (size_t i = digits; i < 14; i++)
        *o++ = ' ';
    memcpy(o, number, digits);
    o += digits;
    *o++ = '\n';
    return o;
}

/* Same shape as glibc's report, on stderr, written without stdio. */
MYMALLOC_EXPORT void malloc_stats(void)
{
    struct mallinfo2 m = mallinfo2();
    char text[1024], *o = text;
    size_t heap_inuse = m.uordblks;

    o = stat_line(o, "Arena 0 (mymalloc " MYMALLOC_VERSION_STRING "):\nsystem bytes     = ", m.arena);
    o = stat_line(o, "in use bytes     = ", heap_inuse);
    o = stat_line(o, "Total (incl. mmap):\nsystem bytes     = ", m.arena + m.hblkhd);
    o = stat_line(o, "in use bytes     = ", heap_inuse + m.hblkhd);
    o = stat_line(o, "max mmap regions = ", __atomic_load_n(&mm_large_stats.peak_count, __ATOMIC_RELAXED));
    o = stat_line(o, "max mmap bytes   = ", __atomic_load_n(&mm_large_stats.peak_bytes, __ATOMIC_RELAXED));
    *o = '\0';
    mm_write_str(STDERR_FILENO, text);
}

MYMALLOC_EXPORT int mymalloc_stats_get(struct mymalloc_stats *stats)
{
    struct mm_heap_totals h;
    uint64_t calls[MYMALLOC_CALL_COUNT];

    if (stats == NULL) {
        errno = EINVAL;
        return -1;
    }
    memset(stats, 0, sizeof *stats);
    mm_heap_totals(&h);
    stats->free_blocks = h.free_blocks;
    stats->free_bytes = h.free_bytes;
    stats->heap_bytes = h.system_bytes;
    stats->heap_peak_bytes = h.peak_system_bytes;
    stats->inuse_bytes = h.inuse_bytes;
    stats->top_bytes = h.top_bytes;
    stats->arenas = h.arenas;
    stats->mapped_blocks = __atomic_load_n(&mm_large_stats.count, __ATOMIC_RELAXED);
    stats->mapped_bytes = __atomic_load_n(&mm_large_stats.bytes, __ATOMIC_RELAXED);
    stats->mapped_peak_bytes = __atomic_load_n(&mm_large_stats.peak_bytes, __ATOMIC_RELAXED);
    size_t cached;
    mm_thread_counts(calls, &cached);
    stats->cached_bytes = cached;
    for (int i = 0; i < MYMALLOC_CALL_COUNT; i++)
        stats->calls[i] = calls[i];
    return 0;
}

/* Hidden aliases: the table of family.h must name these definitions, never
 * whatever a preloaded library interposes on the exported names. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
extern __typeof(mallinfo) mm_local_mallinfo __attribute__((alias("mallinfo"), visibility("hidden"), copy(mallinfo)));
#pragma GCC diagnostic pop
extern __typeof(mallinfo2) mm_local_mallinfo2 __attribute__((alias("mallinfo2"), visibility("hidden"), copy(mallinfo2)));
extern __typeof(malloc_stats) mm_local_malloc_stats __attribute__((alias("malloc_stats"), visibility("hidden"), copy(malloc_stats)));
