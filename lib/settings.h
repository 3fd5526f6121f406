/* settings.h - a leaf (settings.c): the tunable values, checked and stored;
 * what they change is applied by the entry layer (mallopt.c). */
#ifndef MYMALLOC_SETTINGS_H
#define MYMALLOC_SETTINGS_H

#include "base.h"

/* The placement policies (MYMALLOC_FIT; fit.c). */
enum { MM_FIT_BEST = MYMALLOC_FIT_BEST, MM_FIT_FIRST = MYMALLOC_FIT_FIRST,
       MM_FIT_NEXT = MYMALLOC_FIT_NEXT, MM_FIT_WORST = MYMALLOC_FIT_WORST };

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
    size_t quarantine;       /* bytes freed blocks wait at check level 2 (quarantine.c) */
};
MM_HIDDEN extern struct mm_settings mm_settings;
#define MM_HEAPMAP_PATH_MAX 4096
MM_HIDDEN extern char mm_settings_heapmap[MM_HEAPMAP_PATH_MAX];   /* MYMALLOC_HEAPMAP ("": none) */
enum mm_setting_id { SET_MMAP_THRESHOLD, SET_TRIM_THRESHOLD, SET_TOP_PAD, SET_MMAP_MAX, SET_CHECK, SET_ABORT,
                     SET_TCACHE, SET_FIT, SET_STATS, SET_ARENA_MAX, SET_DECAY, SET_BACKGROUND,
                     SET_QUARANTINE, SET_COUNT };
/* Check and store a value; 0 when it is out of range.  `never`: "no limit"
 * (-1) was asked for. */
MM_HIDDEN int mm_settings_store(enum mm_setting_id id, size_t value, int never);
MM_HIDDEN void mm_settings_mapped_freed(size_t length, int heap_in_segments);
MM_HIDDEN int mm_settings_read_environment(void);
static inline size_t mm_setting(const size_t *field) { return __atomic_load_n(field, __ATOMIC_RELAXED); }

#endif
