/* stats.c - statistics: counters for mapped blocks (kept with atomics, since
 * those never take the arena lock), one snapshot of every figure, and the
 * reports built from it: mymalloc_stats_get(), mallinfo2(), mallinfo(),
 * malloc_stats() (also at exit with MYMALLOC_STATS=1) and malloc_info(). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "entry.h"
#include "mymalloc.h"

/* The free blocks of one bin, for malloc_info(). */
struct bin_figures {
    size_t from, to;        /* smallest and biggest block in it */
    size_t total, count;
};

/* What mallinfo2() needs beyond struct mymalloc_stats. */
struct snapshot_extra {
    size_t cached_blocks;   /* blocks in threads' caches */
    size_t tops;            /* arenas with a top block */
};

/* Every figure at once: each arena's under its lock (with the non-empty bins
 * of all arenas in bins[0 .. *nbins) when bins is given), then the counters
 * kept outside them.  Concurrent threads may move blocks meanwhile. */
static void snapshot(struct mymalloc_stats *s, struct snapshot_extra *x, struct bin_figures *bins, size_t *nbins)
{
    struct mm_thread_totals totals;
    uint64_t syscalls[MM_SYSCALL_COUNT];
    unsigned arenas = __atomic_load_n(&mm_arena_count, __ATOMIC_ACQUIRE);

    memset(s, 0, sizeof *s);
    memset(x, 0, sizeof *x);
    if (bins != NULL)
        memset(bins, 0, MM_NBINS * sizeof *bins);
    /* Each arena under its lock in turn; the heap peak is the sum of the
     * arenas' peaks (an upper bound of the true one). */
    for (unsigned k = 0; k < arenas; k++) {
        struct mm_arena *a = __atomic_load_n(&mm_arenas[k], __ATOMIC_ACQUIRE);
        size_t free_bytes;
        mm_lock(&a->lock);
        s->free_blocks += mm_bins_count(&a->bins, &free_bytes);
        s->free_bytes += free_bytes;
        s->heap_bytes += a->system_bytes;
        s->heap_peak_bytes += a->peak_system_bytes;
        s->inuse_bytes += a->inuse_bytes;
        s->top_bytes += a->top != NULL ? block_size(a->top) : 0;
        x->tops += a->top != NULL;
        for (size_t i = 0; bins != NULL && i < MM_NBINS; i++) {
            for (const block_t *b = a->bins.head[i]; b != NULL; b = b->next_free) {
                size_t size = block_size(b);
                bins[i].from = bins[i].count == 0 || size < bins[i].from ? size : bins[i].from;
                bins[i].to = size > bins[i].to ? size : bins[i].to;
                bins[i].total += size;
                bins[i].count++;
            }
        }
        mm_unlock(&a->lock);
    }
    s->arenas = arenas;
    if (bins != NULL) {         /* the non-empty bins, in order */
        size_t n = 0;
        for (size_t i = 0; i < MM_NBINS; i++)
            if (bins[i].count != 0)
                bins[n++] = bins[i];
        *nbins = n;
    }

    s->mapped_blocks = __atomic_load_n(&mm_large_stats.count, __ATOMIC_RELAXED);
    s->mapped_bytes = __atomic_load_n(&mm_large_stats.bytes, __ATOMIC_RELAXED);
    s->mapped_peak_bytes = __atomic_load_n(&mm_large_stats.peak_bytes, __ATOMIC_RELAXED);
    s->mapped_peak_blocks = __atomic_load_n(&mm_large_stats.peak_count, __ATOMIC_RELAXED);
    mm_thread_counts(&totals);
    s->cached_bytes = totals.cached_bytes;
    x->cached_blocks = totals.cached_blocks;
    for (int i = 0; i < MYMALLOC_CALL_COUNT; i++)
        s->calls[i] = totals.calls[i];
    for (int i = 0; i < MYMALLOC_SIZE_CLASSES; i++)
        s->size_classes[i] = totals.sizes[i];
    mm_syscall_counts(syscalls);
    s->sbrk_grow_calls = syscalls[MM_SYSCALL_SBRK_GROW];
    s->sbrk_shrink_calls = syscalls[MM_SYSCALL_SBRK_SHRINK];
    s->mmap_calls = syscalls[MM_SYSCALL_MMAP];
    s->munmap_calls = syscalls[MM_SYSCALL_MUNMAP];
    s->mremap_calls = syscalls[MM_SYSCALL_MREMAP];
    s->madvise_calls = syscalls[MM_SYSCALL_MADVISE];
}

MYMALLOC_EXPORT int mymalloc_stats_get(struct mymalloc_stats *stats)
{
    struct snapshot_extra x;
    if (stats == NULL) {
        errno = EINVAL;
        return -1;
    }
    snapshot(stats, &x, NULL, NULL);
    return 0;
}

/* glibc's fields from the same figures.  Blocks in threads' caches are free
 * as far as the program can tell: they are the "fastbin" blocks. */
static struct mallinfo2 info_from(const struct mymalloc_stats *s, const struct snapshot_extra *x)
{
    struct mallinfo2 info;
    memset(&info, 0, sizeof info);
    info.arena = s->heap_bytes;
    info.ordblks = s->free_blocks + x->tops;
    info.smblks = x->cached_blocks;
    info.hblks = s->mapped_blocks;
    info.hblkhd = s->mapped_bytes;
    info.usmblks = s->heap_peak_bytes;
    info.fsmblks = s->cached_bytes;
    info.fordblks = s->free_bytes + s->top_bytes + s->cached_bytes;
    /* Blocks moving between bins and caches while the snapshot is taken
     * could make the free figures add up to more than the heap. */
    info.uordblks = info.arena > info.fordblks ? info.arena - info.fordblks : 0;
    info.keepcost = s->top_bytes;
    return info;
}

MYMALLOC_EXPORT struct mallinfo2 mallinfo2(void)
{
    struct mymalloc_stats s;
    struct snapshot_extra x;
    snapshot(&s, &x, NULL, NULL);
    return info_from(&s, &x);
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

/* ---- malloc_stats(): text written with write(2), never stdio ---- */

struct report {
    int fd;
    size_t len;
    char buf[1024];
};

static void report_flush(struct report *r)
{
    r->buf[r->len] = '\0';
    mm_write_str(r->fd, r->buf);
    r->len = 0;
}

static void report_put(struct report *r, const char *s, size_t n)
{
    while (n > 0) {
        size_t room = sizeof r->buf - 1 - r->len;
        size_t k = n < room ? n : room;
        memcpy(r->buf + r->len, s, k);
        r->len += k;
        s += k;
        n -= k;
        if (r->len == sizeof r->buf - 1)
            report_flush(r);
    }
}

static void report_str(struct report *r, const char *s) { report_put(r, s, strlen(s)); }

static void report_number(struct report *r, unsigned long long value)
{
    char number[24];
    report_put(r, number, (size_t)(mm_format_unsigned(number, (size_t)value) - number));
}

/* glibc's shape: "LABEL" then the value right-aligned in 14 columns. */
static void glibc_line(struct report *r, const char *label, size_t value)
{
    char number[24];
    size_t digits = (size_t)(mm_format_unsigned(number, value) - number);
    report_str(r, label);
    for (size_t i = digits; i < 14; i++)
        report_put(r, " ", 1);
    report_put(r, number, digits);
    report_put(r, "\n", 1);
}

/* mymalloc's table: "  LABEL", padded to column 38, then the value
 * right-aligned in 14 columns. */
#define LABEL_WIDTH 36
static void table_line(struct report *r, const char *label, unsigned long long value)
{
    char number[24];
    size_t digits = (size_t)(mm_format_unsigned(number, (size_t)value) - number);
    report_put(r, "  ", 2);
    report_str(r, label);
    for (size_t i = strlen(label); i < LABEL_WIDTH; i++)
        report_put(r, " ", 1);
    for (size_t i = digits; i < 14; i++)
        report_put(r, " ", 1);
    report_put(r, number, digits);
    report_put(r, "\n", 1);
}

/* What the table adds to an entry point's name to tell the C++ forms apart. */
static const char *const call_variants[MYMALLOC_CALL_COUNT] = {
    [MYMALLOC_CALL_NEW_NOTHROW] = " (nothrow)",
    [MYMALLOC_CALL_NEW_ARRAY_NOTHROW] = " (nothrow)",
    [MYMALLOC_CALL_NEW_ALIGNED] = " (aligned)",
    [MYMALLOC_CALL_NEW_ARRAY_ALIGNED] = " (aligned)",
    [MYMALLOC_CALL_NEW_ALIGNED_NOTHROW] = " (aligned, nothrow)",
    [MYMALLOC_CALL_NEW_ARRAY_ALIGNED_NOTHROW] = " (aligned, nothrow)",
    [MYMALLOC_CALL_DELETE_NOTHROW] = " (nothrow)",
    [MYMALLOC_CALL_DELETE_ARRAY_NOTHROW] = " (nothrow)",
    [MYMALLOC_CALL_DELETE_SIZED] = " (sized)",
    [MYMALLOC_CALL_DELETE_ARRAY_SIZED] = " (sized)",
    [MYMALLOC_CALL_DELETE_ALIGNED] = " (aligned)",
    [MYMALLOC_CALL_DELETE_ARRAY_ALIGNED] = " (aligned)",
    [MYMALLOC_CALL_DELETE_ALIGNED_NOTHROW] = " (aligned, nothrow)",
    [MYMALLOC_CALL_DELETE_ARRAY_ALIGNED_NOTHROW] = " (aligned, nothrow)",
    [MYMALLOC_CALL_DELETE_SIZED_ALIGNED] = " (sized, aligned)",
    [MYMALLOC_CALL_DELETE_ARRAY_SIZED_ALIGNED] = " (sized, aligned)",
};

/* "operator delete[] (sized)": an entry point as the table names it. */
static const char *call_label(char *out, size_t size, enum mymalloc_call call)
{
    const char *name = mymalloc_call_name(call), *variant = call_variants[call];
    size_t n = strlen(name), v = variant != NULL ? strlen(variant) : 0;
    if (n + v >= size)
        return name;
    memcpy(out, name, n);
    memcpy(out + n, variant != NULL ? variant : "", v + 1);
    return out;
}

/* "<= 16 bytes", "<= 4 KiB", "<= 1 MiB", "> 1 MiB": a size class's label. */
static void size_class_label(char *out, int cls)
{
    size_t max = MYMALLOC_SIZE_CLASS_MAX(cls);
    const char *unit = " bytes";
    if (cls == MYMALLOC_SIZE_CLASSES - 1) {
        memcpy(out, "> 1 MiB", sizeof "> 1 MiB");
        return;
    }
    if (max >= ((size_t)1 << 20)) {
        max >>= 20;
        unit = " MiB";
    } else if (max >= ((size_t)1 << 10)) {
        max >>= 10;
        unit = " KiB";
    }
    memcpy(out, "<= ", 3);
    char *o = mm_format_unsigned(out + 3, max);
    memcpy(o, unit, strlen(unit) + 1);
}

static void report_write(int fd)
{
    struct mymalloc_stats s;
    struct report r;
    struct snapshot_extra x;

    snapshot(&s, &x, NULL, NULL);
    struct mallinfo2 m = info_from(&s, &x);
    r.fd = fd;
    r.len = 0;

    /* glibc's lines first, for whatever reads them. */
    report_str(&r, "Arena 0 (mymalloc " MYMALLOC_VERSION_STRING "):\n");
    glibc_line(&r, "system bytes     = ", m.arena);
    glibc_line(&r, "in use bytes     = ", m.uordblks);
    report_str(&r, "Total (incl. mmap):\n");
    glibc_line(&r, "system bytes     = ", m.arena + m.hblkhd);
    glibc_line(&r, "in use bytes     = ", m.uordblks + m.hblkhd);
    glibc_line(&r, "max mmap regions = ", s.mapped_peak_blocks);
    glibc_line(&r, "max mmap bytes   = ", s.mapped_peak_bytes);

    report_str(&r, "mymalloc " MYMALLOC_VERSION_STRING " statistics (process ");
    report_number(&r, (unsigned long long)getpid());
    report_str(&r, "):\n");
    table_line(&r, "arenas", s.arenas);
    table_line(&r, "heap bytes", s.heap_bytes);
    table_line(&r, "heap peak bytes", s.heap_peak_bytes);
    table_line(&r, "in use bytes", s.inuse_bytes);
    table_line(&r, "free bytes in bins", s.free_bytes);
    table_line(&r, "free blocks in bins", s.free_blocks);
    table_line(&r, "top bytes", s.top_bytes);
    table_line(&r, "cached bytes", s.cached_bytes);
    table_line(&r, "cached blocks", x.cached_blocks);
    table_line(&r, "mapped blocks", s.mapped_blocks);
    table_line(&r, "mapped bytes", s.mapped_bytes);
    table_line(&r, "mapped peak blocks", s.mapped_peak_blocks);
    table_line(&r, "mapped peak bytes", s.mapped_peak_bytes);
    report_str(&r, "system calls:\n");
    table_line(&r, "sbrk (grow)", s.sbrk_grow_calls);
    table_line(&r, "sbrk (shrink)", s.sbrk_shrink_calls);
    table_line(&r, "mmap", s.mmap_calls);
    table_line(&r, "munmap", s.munmap_calls);
    table_line(&r, "mremap", s.mremap_calls);
    table_line(&r, "madvise", s.madvise_calls);
    report_str(&r, "calls:\n");
    char label[64];
    int any = 0;
    for (int i = 0; i < MYMALLOC_CALL_COUNT; i++) {
        if (s.calls[i] != 0) {
            table_line(&r, call_label(label, sizeof label, (enum mymalloc_call)i), s.calls[i]);
            any = 1;
        }
    }
    if (!any)
        report_str(&r, "  none\n");
    report_str(&r, "requests by size:\n");
    for (int i = 0; i < MYMALLOC_SIZE_CLASSES; i++) {
        size_class_label(label, i);
        table_line(&r, label, s.size_classes[i]);
    }
    report_flush(&r);
}

/* Same first lines as glibc's report, then mymalloc's table, on stderr. */
MYMALLOC_EXPORT void malloc_stats(void)
{
    report_write(STDERR_FILENO);
}

/* MYMALLOC_STATS=1: the report at exit, on the stderr the program started
 * with.  Many programs close stderr at exit (coreutils do, in an atexit
 * handler), so a copy of it is kept from when the setting is read, far from
 * the low descriptors programs expect free, not inherited across exec, and
 * used only if it still is the same file (a program closing every descriptor
 * may have reused the number). */
#define EXIT_FD_MIN 100
static int exit_fd_state;        /* 0: not taken, 1: taking, 2: taken */
static int exit_fd = -1;
static int exit_no_stderr;       /* there was no descriptor 2 to copy */
static dev_t exit_fd_dev;
static ino_t exit_fd_ino;

void mm_stats_exit_prepare(void)
{
    int expected = 0, saved_errno = errno;
    struct stat st;
    if (!__atomic_compare_exchange_n(&exit_fd_state, &expected, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return;
    int fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, EXIT_FD_MIN);
    if (fd >= 0 && fstat(fd, &st) == 0) {
        exit_fd_dev = st.st_dev;
        exit_fd_ino = st.st_ino;
        exit_fd = fd;
    } else if (fd >= 0) {
        close(fd);
    } else if (errno == EBADF) {
        exit_no_stderr = 1;      /* a number 2 opened later is not stderr */
    }
    __atomic_store_n(&exit_fd_state, 2, __ATOMIC_RELEASE);
    errno = saved_errno;
}

/* Where the report at exit goes; -1: nowhere. */
static int exit_report_fd(void)
{
    struct stat st;
    if (__atomic_load_n(&exit_fd_state, __ATOMIC_ACQUIRE) != 2)
        return STDERR_FILENO;
    if (exit_fd >= 0 && fstat(exit_fd, &st) == 0 && st.st_dev == exit_fd_dev && st.st_ino == exit_fd_ino)
        return exit_fd;
    return exit_no_stderr ? -1 : STDERR_FILENO;
}

/* A destructor runs when exit() is called or main returns, after the
 * program's own atexit handlers and destructors, and unlike atexit() it
 * needs no allocation to register. */
__attribute__((destructor)) static void report_at_exit(void)
{
    mm_init();      /* a program that never allocated has not read the environment */
    int fd;
    if (mm_setting(&mm_settings.stats_at_exit) && (fd = exit_report_fd()) >= 0)
        report_write(fd);
}

/* ---- malloc_info(): glibc's XML, written with the caller's stdio ---- */

/* One arena (heap nr="0"): its free blocks listed by bin ("from" and "to"
 * the smallest and biggest block in the bin, headers included); "fast" is
 * what threads' caches hold, "rest" the bins and the top.  The figures are
 * taken first and written after, holding no lock: stdio may allocate. */
MYMALLOC_EXPORT int malloc_info(int options, FILE *fp)
{
    struct mymalloc_stats s;
    struct bin_figures bins[MM_NBINS];
    struct snapshot_extra x;
    size_t nbins = 0;
    int failed = 0;

    if (options != 0 || fp == NULL) {
        errno = EINVAL;
        return -1;
    }
    snapshot(&s, &x, bins, &nbins);
    size_t rest_count = s.free_blocks + x.tops, rest_bytes = s.free_bytes + s.top_bytes;

    failed |= fputs("<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n", fp) == EOF;
    for (size_t i = 0; i < nbins; i++)
        failed |= fprintf(fp, "  <size from=\"%zu\" to=\"%zu\" total=\"%zu\" count=\"%zu\"/>\n", bins[i].from,
                          bins[i].to, bins[i].total, bins[i].count) < 0;
    failed |= fputs("</sizes>\n", fp) == EOF;
    /* The same lines for the heap and for the whole (one heap); the whole
     * adds the mapped blocks. */
    for (int whole = 0; whole <= 1; whole++) {
        failed |= fprintf(fp, "<total type=\"fast\" count=\"%zu\" size=\"%zu\"/>\n"
                              "<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n",
                          x.cached_blocks, s.cached_bytes, rest_count, rest_bytes) < 0;
        if (whole)
            failed |= fprintf(fp, "<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>\n", s.mapped_blocks,
                              s.mapped_bytes) < 0;
        failed |= fprintf(fp, "<system type=\"current\" size=\"%zu\"/>\n"
                              "<system type=\"max\" size=\"%zu\"/>\n"
                              "<aspace type=\"total\" size=\"%zu\"/>\n"
                              "<aspace type=\"mprotect\" size=\"%zu\"/>\n",
                          s.heap_bytes, s.heap_peak_bytes, s.heap_bytes, s.heap_bytes) < 0;
        failed |= fputs(whole ? "</malloc>\n" : "</heap>\n", fp) == EOF;
    }
    return failed ? -1 : 0;
}

/* Hidden aliases: the table of family.h must name these definitions, never
 * whatever a preloaded library interposes on the exported names. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
extern __typeof(mallinfo) mm_local_mallinfo __attribute__((alias("mallinfo"), visibility("hidden"), copy(mallinfo)));
#pragma GCC diagnostic pop
extern __typeof(mallinfo2) mm_local_mallinfo2 __attribute__((alias("mallinfo2"), visibility("hidden"), copy(mallinfo2)));
extern __typeof(malloc_stats) mm_local_malloc_stats __attribute__((alias("malloc_stats"), visibility("hidden"), copy(malloc_stats)));
extern __typeof(malloc_info) mm_local_malloc_info __attribute__((alias("malloc_info"), visibility("hidden"), copy(malloc_info)));

/* Every arena walked under its lock in turn; with `func`, the first problem
 * of a block reported in its name. */
int mm_check_all(const char *func)
{
    int problems = 0;
    unsigned count = __atomic_load_n(&mm_arena_count, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < count; i++) {
        struct mm_arena *a = __atomic_load_n(&mm_arenas[i], __ATOMIC_ACQUIRE);
        mm_lock(&a->lock);
        problems += mm_heap_walk_check(a, problems == 0 ? func : NULL);
        mm_unlock(&a->lock);
    }
    return problems;
}

MYMALLOC_EXPORT int mymalloc_check(void)
{
    return mm_check_all(NULL);
}
