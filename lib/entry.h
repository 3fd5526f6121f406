/* entry.h - what the files of the entry layer (malloc.c, mallopt.c,
 * stats.c, heapmap.c, init.c) share. */
#ifndef MYMALLOC_ENTRY_H
#define MYMALLOC_ENTRY_H

#include "cache.h"

/* ---- malloc.c: internal entry points used by other files ---- */
MM_HIDDEN extern int mm_ready;
MM_HIDDEN void mm_init_slow(void);
static inline void mm_init(void) { if (unlikely(!__atomic_load_n(&mm_ready, __ATOMIC_ACQUIRE))) mm_init_slow(); }
MM_HIDDEN void *mm_alloc(size_t n, size_t origin);
MM_HIDDEN void mm_free_as(void *p, size_t size, size_t alignment, size_t origin, const char *func,
                       enum mymalloc_call call);
MM_HIDDEN void *mm_memalign(size_t alignment, size_t n, size_t origin);

/* ---- mallopt.c: what a setting changes (entry layer) ---- */
MM_HIDDEN void mm_settings_changed(void);
MM_HIDDEN void mm_settings_apply(void);

/* ---- stats.c: the reports ---- */
MM_HIDDEN void mm_stats_exit_prepare(void);     /* MYMALLOC_STATS=1 was read */
MM_HIDDEN int mm_check_all(const char *func);   /* mymalloc_check(), reporting in func's name */

/* ---- heapmap.c: the heap map (mymalloc_heapmap, MYMALLOC_HEAPMAP) ---- */
MM_HIDDEN int mm_heapmap_at_exit(const char *path);   /* 0: path too long */

#endif
