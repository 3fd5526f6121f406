/* mallopt.c - mallopt(), and what a setting changes once it is stored
 * (settings.c stores and checks values, and reads the environment): every
 * arena's placement policy, whether the threads cache, the report at exit,
 * the heap map at exit, the background release.  Entry layer. */
#define _GNU_SOURCE
#include <malloc.h>
#include "entry.h"
#include "mymalloc.h"

/* Derived switches, recomputed whenever a setting changes: the threads'
 * caches are used when caching is on, the check level is not 2 and the
 * placement is best fit. */
void mm_settings_changed(void)
{
    int on = __atomic_load_n(&mm_ready, __ATOMIC_ACQUIRE) && mm_setting(&mm_settings.tcache) &&
             mm_check_level() != 2 && mm_setting(&mm_settings.fit) == MM_FIT_BEST;
    if (__atomic_exchange_n(&mm_cache_mode, on, __ATOMIC_RELAXED) != on)
        mm_thread_cache_switch(on);
}

/* The environment was just read (mm_init_slow): apply what it set beyond
 * the stored values. */
void mm_settings_apply(void)
{
    if (mm_setting(&mm_settings.fit) != MM_FIT_BEST)
        mm_arenas_fit_set((int)mm_setting(&mm_settings.fit));
    if (mm_setting(&mm_settings.stats_at_exit))
        mm_stats_exit_prepare();
    if (mm_settings_heapmap[0] != '\0')
        mm_heapmap_at_exit(mm_settings_heapmap);
    mm_settings_changed();
}

static int mallopt_store(int param, int value);

MYMALLOC_EXPORT int mallopt(int param, int value)
{
    mm_init();
    int done = mallopt_store(param, value);
    if (done && param == M_MYMALLOC_FIT)
        done = mm_arenas_fit_set(value);
    mm_settings_changed();
    if (done && !mm_cache_mode && mm_self.state == MM_THREAD_LIVE)
        mm_cache_flush(&mm_self);       /* caching just went off: give back ours */
    if (done && !mm_cache_mode)
        mm_arenas_park_release();       /* and the blocks parked for refills */
    if (done && param == M_MYMALLOC_BACKGROUND)
        mm_background_start();          /* (if turned on; one turned off stops by itself) */
    if (done && (param == M_MYMALLOC_CHECK || param == M_MYMALLOC_QUARANTINE))
        mm_quarantine_settle("mallopt");
    return done;
}

static int mallopt_store(int param, int value)
{
    switch (param) {
    case M_MMAP_THRESHOLD:
        return value >= 0 && mm_settings_store(SET_MMAP_THRESHOLD, (size_t)value, 0);
    case M_TRIM_THRESHOLD:
        return mm_settings_store(SET_TRIM_THRESHOLD, value < 0 ? SIZE_MAX : (size_t)value, value < 0);
    case M_TOP_PAD:
        return value >= 0 && mm_settings_store(SET_TOP_PAD, (size_t)value, 0);
    case M_MMAP_MAX:
        return value >= 0 && mm_settings_store(SET_MMAP_MAX, (size_t)value, 0);
    case M_MXFAST:
        return value >= 0 && value <= 160;   /* accepted as glibc does; no fast bins here */
    case M_MYMALLOC_CHECK:
        return value >= 0 && mm_settings_store(SET_CHECK, (size_t)value, 0);
    case M_MYMALLOC_ABORT:
        return value >= 0 && mm_settings_store(SET_ABORT, (size_t)value, 0);
    case M_MYMALLOC_TCACHE:
        return value >= 0 && mm_settings_store(SET_TCACHE, (size_t)value, 0);
    case M_MYMALLOC_FIT:       /* applied to the arenas by mallopt() */
        return value >= 0 && mm_settings_store(SET_FIT, (size_t)value, 0);
    case M_MYMALLOC_BACKGROUND:
        return value >= 0 && mm_settings_store(SET_BACKGROUND, (size_t)value, 0);
    case M_MYMALLOC_QUARANTINE:   /* bytes */
        return value >= 0 && mm_settings_store(SET_QUARANTINE, (size_t)value, 0);
    case M_MYMALLOC_DECAY:     /* milliseconds; negative: never */
        return mm_settings_store(SET_DECAY, value < 0 ? SIZE_MAX : (size_t)value, value < 0);
    case M_CHECK_ACTION:       /* glibc's bit 1 (value 2): abort on an error */
        __atomic_store_n(&mm_abort_on_error, (value & 2) != 0, __ATOMIC_RELAXED);
        return 1;
    case M_ARENA_MAX:           /* for threads that have no arena yet */
        return value > 0 && mm_settings_store(SET_ARENA_MAX, (size_t)value, 0);
    case M_PERTURB:
    case M_ARENA_TEST:
        return 1;                              /* accepted, no effect */
    default:
        return 0;
    }
}

/* Hidden aliases: the table of family.h must name these definitions, never
 * whatever a preloaded library interposes on the exported names. */
extern __typeof(mallopt) mm_local_mallopt __attribute__((alias("mallopt"), visibility("hidden"), copy(mallopt)));
