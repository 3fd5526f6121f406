/* settings.c - the tunable values: their defaults, checking and storing a
 * new value (for mallopt(), mallopt.c), and the MYMALLOC_* / glibc
 * MALLOC_*_ environment variables, read once without allocating and
 * ignored in set-uid programs.  A leaf: it stores values (MYMALLOC_HEAPMAP,
 * a path, included) and touches nothing else; what a value changes in the
 * arenas, caches and reports is for the entry layer to apply (mallopt.c). */
#define _GNU_SOURCE
#include <malloc.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>
#include "check.h"
#include "diag.h"
#include "settings.h"
#include "mymalloc.h"

#define KIB ((size_t)1024)
#define MMAP_THRESHOLD_MAX (32 * KIB * KIB)   /* glibc's limit on 64-bit */

struct mm_settings mm_settings = {
    .mmap_threshold = 128 * KIB,
    .trim_threshold = 128 * KIB,
    .top_pad = 128 * KIB,
    .mmap_max = 65536,
    .tcache = 1,
    .decay_ms = 1000,
    .quarantine = (size_t)1 << 20,
    .fit = MM_FIT_BEST,
};

char mm_settings_heapmap[MM_HEAPMAP_PATH_MAX];

extern char **environ;

/* Store one setting after checking it; 0 when the value is out of range.
 * `never` is a request for "no limit" (-1), allowed for the trim threshold. */
/* As glibc does, the mmap and trim thresholds follow the program until it
 * sets any of the four memory settings itself: freeing a mapped block bigger
 * than the mmap threshold raises it to that size (up to 32 MiB), and the trim
 * threshold to twice that, so a program that keeps allocating blocks of that
 * size reuses heap memory instead of mapping and faulting in fresh pages. */
static int thresholds_fixed;

void mm_settings_mapped_freed(size_t length, int heap_in_segments)
{
    /* A heap in mmap segments cannot merge blocks across segments: there,
     * big blocks keep their own mappings. */
    if (__atomic_load_n(&thresholds_fixed, __ATOMIC_RELAXED) || heap_in_segments ||
        length <= mm_setting(&mm_settings.mmap_threshold) || length > MMAP_THRESHOLD_MAX)
        return;
    __atomic_store_n(&mm_settings.mmap_threshold, length, __ATOMIC_RELAXED);
    __atomic_store_n(&mm_settings.trim_threshold, 2 * length, __ATOMIC_RELAXED);
}

static int value_store(enum mm_setting_id id, size_t value, int never);

/* Store a setting; one of the four memory settings set with success stops
 * the thresholds following the program. */
int mm_settings_store(enum mm_setting_id id, size_t value, int never)
{
    int done = value_store(id, value, never);
    if (done && id <= SET_MMAP_MAX)
        __atomic_store_n(&thresholds_fixed, 1, __ATOMIC_RELAXED);
    return done;
}

static int value_store(enum mm_setting_id id, size_t value, int never)
{
    switch (id) {
    case SET_MMAP_THRESHOLD:
        if (never || value > MMAP_THRESHOLD_MAX)
            return 0;
        __atomic_store_n(&mm_settings.mmap_threshold, value, __ATOMIC_RELAXED);
        return 1;
    case SET_TRIM_THRESHOLD:
        __atomic_store_n(&mm_settings.trim_threshold, never ? SIZE_MAX : value, __ATOMIC_RELAXED);
        return 1;
    case SET_TOP_PAD:
        if (never || value > MM_MAX_REQUEST / 2)
            return 0;
        __atomic_store_n(&mm_settings.top_pad, value, __ATOMIC_RELAXED);
        return 1;
    case SET_MMAP_MAX:
        if (never)
            return 0;
        __atomic_store_n(&mm_settings.mmap_max, value, __ATOMIC_RELAXED);
        return 1;
    case SET_CHECK:
        return !never && value <= 2 && mm_check_level_set((int)value);
    case SET_ABORT:
        if (never || value > 1)
            return 0;
        __atomic_store_n(&mm_abort_on_error, (int)value, __ATOMIC_RELAXED);
        return 1;
    case SET_TCACHE:
        if (never || value > 1)
            return 0;
        __atomic_store_n(&mm_settings.tcache, value, __ATOMIC_RELAXED);
        return 1;
    case SET_FIT:
        if (never || value > MM_FIT_WORST)
            return 0;
        __atomic_store_n(&mm_settings.fit, value, __ATOMIC_RELAXED);
        return 1;
    case SET_STATS:
        if (never || value > 1)
            return 0;
        __atomic_store_n(&mm_settings.stats_at_exit, value, __ATOMIC_RELAXED);
        return 1;
    case SET_ARENA_MAX:     /* arena.c caps it at its number of slots */
        if (never || value == 0 || value > 0x7fffffff)
            return 0;
        __atomic_store_n(&mm_settings.arena_max, value, __ATOMIC_RELAXED);
        return 1;
    case SET_BACKGROUND:     /* started by the constructor or mallopt, not here */
        if (never || value > 1)
            return 0;
        __atomic_store_n(&mm_settings.background, value, __ATOMIC_RELAXED);
        return 1;
    case SET_QUARANTINE:     /* bytes; 0: none */
        if (never)
            return 0;
        __atomic_store_n(&mm_settings.quarantine, value, __ATOMIC_RELAXED);
        return 1;
    case SET_DECAY:          /* milliseconds; -1: never */
        __atomic_store_n(&mm_settings.decay_ms, never ? SIZE_MAX : value, __ATOMIC_RELAXED);
        return 1;
    default:
        return 0;
    }
}

/* Parse "131072", "0x20000", "128k", "1M", "1G"; "-1" sets *never. */
static int parse_size(const char *s, size_t *value, int *never)
{
    size_t v = 0, base = 10;
    *never = 0;
    if (strcmp(s, "-1") == 0) {
        *never = 1;
        *value = SIZE_MAX;
        return 1;
    }
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    if (!(*s >= '0' && *s <= '9') && !(base == 16 && ((*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F'))))
        return 0;   /* at least one digit */
    for (; *s != '\0'; s++) {
        size_t digit;
        if (*s >= '0' && *s <= '9')
            digit = (size_t)(*s - '0');
        else if (base == 16 && *s >= 'a' && *s <= 'f')
            digit = (size_t)(*s - 'a' + 10);
        else if (base == 16 && *s >= 'A' && *s <= 'F')
            digit = (size_t)(*s - 'A' + 10);
        else
            break;
        if (v > (SIZE_MAX - digit) / base)
            return 0;
        v = v * base + digit;
    }
    if (*s != '\0') {
        unsigned shift;
        switch (*s) {
        case 'k': case 'K': shift = 10; break;
        case 'm': case 'M': shift = 20; break;
        case 'g': case 'G': shift = 30; break;
        default: return 0;
        }
        if (s[1] != '\0' || v > (SIZE_MAX >> shift))
            return 0;
        v <<= shift;
    }
    *value = v;
    return 1;
}

/* MYMALLOC_FIT's values, in the order of MYMALLOC_FIT_BEST... */
static int parse_fit(const char *s, size_t *value, int *never)
{
    static const char names[][6] = { "best", "first", "next", "worst" };
    *never = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(s, names[i]) == 0) {
            *value = i;
            return 1;
        }
    }
    return 0;
}

static void report_bad(const char *entry, const char *why)
{
    char line[200];
    size_t n = strlen(entry), w = strlen(why);
    if (n > 120)
        n = 120;
    memcpy(line, "mymalloc: ignoring ", 19);
    memcpy(line + 19, entry, n);
    memcpy(line + 19 + n, why, w + 1);
    mm_write_str(STDERR_FILENO, line);
}

static const struct {
    const char *name;       /* with the '=' */
    enum mm_setting_id id;
    int ours;               /* MYMALLOC_ names win over glibc's */
} env_names[] = {
    { "MYMALLOC_MMAP_THRESHOLD=", SET_MMAP_THRESHOLD, 1 },
    { "MYMALLOC_TRIM_THRESHOLD=", SET_TRIM_THRESHOLD, 1 },
    { "MYMALLOC_TOP_PAD=", SET_TOP_PAD, 1 },
    { "MYMALLOC_MMAP_MAX=", SET_MMAP_MAX, 1 },
    { "MYMALLOC_CHECK=", SET_CHECK, 1 },
    { "MYMALLOC_ABORT=", SET_ABORT, 1 },
    { "MYMALLOC_TCACHE=", SET_TCACHE, 1 },
    { "MYMALLOC_FIT=", SET_FIT, 1 },
    { "MYMALLOC_STATS=", SET_STATS, 1 },
    { "MYMALLOC_ARENA_MAX=", SET_ARENA_MAX, 1 },
    { "MYMALLOC_DECAY_MS=", SET_DECAY, 1 },
    { "MYMALLOC_BACKGROUND=", SET_BACKGROUND, 1 },
    { "MYMALLOC_QUARANTINE=", SET_QUARANTINE, 1 },
    { "MALLOC_MMAP_THRESHOLD_=", SET_MMAP_THRESHOLD, 0 },
    { "MALLOC_TRIM_THRESHOLD_=", SET_TRIM_THRESHOLD, 0 },
    { "MALLOC_TOP_PAD_=", SET_TOP_PAD, 0 },
    { "MALLOC_MMAP_MAX_=", SET_MMAP_MAX, 0 },
    { "MALLOC_ARENA_MAX=", SET_ARENA_MAX, 0 },
};

/* Read the environment once.  Returns 0 when it is not there yet (a call from
 * the dynamic loader before libc set `environ` up), so the caller tries again. */
int mm_settings_read_environment(void)
{
    char **env = environ;
    int set_by_ours[SET_COUNT] = { 0 };

    if (env == NULL)
        return 0;
    if (getauxval(AT_SECURE))
        return 1;
    for (; *env != NULL; env++) {
        const char *entry = *env;
        if (entry[0] != 'M')
            continue;
        if (strncmp(entry, "MYMALLOC_HEAPMAP=", 17) == 0) {    /* a path, for heapmap.c */
            size_t n = strlen(entry + 17);
            if (n >= sizeof mm_settings_heapmap)
                report_bad(entry, ": path too long\n");
            else
                memcpy(mm_settings_heapmap, entry + 17, n + 1);
            continue;
        }
        for (size_t i = 0; i < sizeof env_names / sizeof env_names[0]; i++) {
            size_t len = strlen(env_names[i].name);
            size_t value;
            int never;
            if (strncmp(entry, env_names[i].name, len) != 0)
                continue;
            if (!env_names[i].ours && set_by_ours[env_names[i].id])
                break;
            int is_level = env_names[i].id == SET_CHECK || env_names[i].id == SET_ABORT || env_names[i].id == SET_TCACHE ||
                           env_names[i].id == SET_STATS || env_names[i].id == SET_BACKGROUND;
            int is_fit = env_names[i].id == SET_FIT;
            if (!(is_fit ? parse_fit : parse_size)(entry + len, &value, &never) ||
                !mm_settings_store(env_names[i].id, value, never))
                report_bad(entry, is_fit ? ": not a valid policy (best, first, next or worst)\n"
                                  : is_level ? ": not a valid level\n"
                                  : env_names[i].id == SET_ARENA_MAX ? ": not a valid number of arenas\n"
                                  : env_names[i].id == SET_DECAY ? ": not a valid time\n"
                                                                 : ": not a valid size\n");
            else if (env_names[i].ours)
                set_by_ours[env_names[i].id] = 1;
            break;
        }
    }
    return 1;
}
