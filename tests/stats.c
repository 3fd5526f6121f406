/* stats.c - the statistics: system-call counters (mmap, munmap, mremap, sbrk
 * growing and trimming), the request histogram by size class (exact counts,
 * class boundaries, another thread's counts kept after it exits), mallinfo2
 * and mallinfo against mymalloc_stats_get, malloc_stats' table (parsed back),
 * MYMALLOC_STATS=1 printing it at exit (the test runs itself again), and
 * malloc_info's XML (parsed by hand, and with python3's xml.etree when
 * PYTHON3 is set). */
#include "util.h"

#define CHILD_ARG "--stats-exit-child"

static struct mymalloc_stats stats_now(void)
{
    struct mymalloc_stats s;
    if (mymalloc_stats_get(&s) != 0)
        memset(&s, 0, sizeof s);
    return s;
}

/* Differences of the system-call counters, in the struct's order. */
struct syscalls {
    long long grow, shrink, mmap, munmap, mremap, madvise;
};

static struct syscalls syscalls_between(const struct mymalloc_stats *a, const struct mymalloc_stats *b)
{
    struct syscalls d = {
        (long long)(b->sbrk_grow_calls - a->sbrk_grow_calls),
        (long long)(b->sbrk_shrink_calls - a->sbrk_shrink_calls),
        (long long)(b->mmap_calls - a->mmap_calls),
        (long long)(b->munmap_calls - a->munmap_calls),
        (long long)(b->mremap_calls - a->mremap_calls),
        (long long)(b->madvise_calls - a->madvise_calls),
    };
    return d;
}

static int syscalls_are(struct syscalls d, long long grow, long long shrink, long long mmap_, long long munmap_,
                        long long mremap_)
{
    if (d.grow == grow && d.shrink == shrink && d.mmap == mmap_ && d.munmap == munmap_ && d.mremap == mremap_ &&
        d.madvise == 0)
        return 1;
    diag("system calls: sbrk grow %lld, shrink %lld, mmap %lld, munmap %lld, mremap %lld, madvise %lld",
         d.grow, d.shrink, d.mmap, d.munmap, d.mremap, d.madvise);
    return 0;
}

/* ---- system calls ---- */

static void test_syscalls(void)
{
    /* Fixed thresholds: nothing follows the program around. */
    mallopt(M_MMAP_THRESHOLD, (int)(256 * KIB));
    mallopt(M_TRIM_THRESHOLD, (int)(128 * KIB));
    mallopt(M_TOP_PAD, (int)(64 * KIB));

    struct mymalloc_stats a = stats_now();
    char *p = launder(malloc(hide(MIB)));
    struct mymalloc_stats b = stats_now();
    ok(p != NULL && syscalls_are(syscalls_between(&a, &b), 0, 0, 1, 0, 0),
       "malloc(1 MiB) makes exactly one system call: mmap");

    a = stats_now();
    char *q = launder(realloc(p, hide(2 * MIB)));
    b = stats_now();
    ok(q != NULL && syscalls_are(syscalls_between(&a, &b), 0, 0, 0, 0, 1),
       "realloc of that mapped block to 2 MiB makes exactly one: mremap");
    if (q != NULL)
        p = q;

    a = stats_now();
    free(p);
    b = stats_now();
    ok(syscalls_are(syscalls_between(&a, &b), 0, 0, 0, 1, 0), "its free makes exactly one: munmap");

    /* A heap block bigger than the top makes the heap grow. */
    mallopt(M_MMAP_THRESHOLD, (int)(32 * MIB));
    a = stats_now();
    size_t n = a.top_bytes + 64 * KIB;
    p = launder(malloc(hide(n)));
    b = stats_now();
    int grew = p != NULL && b.heap_bytes > a.heap_bytes && b.mapped_blocks == a.mapped_blocks;
#ifdef MM_DISABLE_SBRK
    ok(grew && syscalls_are(syscalls_between(&a, &b), 0, 0, 1, 0, 0),
       "malloc(%zu), more than the top holds, grows the heap with one mmap (a segment: --disable-sbrk)", n);
#else
    ok(grew && syscalls_are(syscalls_between(&a, &b), 1, 0, 0, 0, 0),
       "malloc(%zu), more than the top holds, grows the heap with one sbrk", n);
#endif

    /* Freeing it leaves a top above the trim threshold: trimmed. */
    a = stats_now();
    free(p);
    b = stats_now();
    int shrank = b.heap_bytes < a.heap_bytes;
#ifdef MM_DISABLE_SBRK
    ok(shrank && syscalls_are(syscalls_between(&a, &b), 0, 0, 0, 1, 0),
       "its free trims the top with one munmap of the segment's end");
#else
    ok(shrank && syscalls_are(syscalls_between(&a, &b), 0, 1, 0, 0, 0),
       "its free trims the top with one negative sbrk");
#endif

    /* malloc_trim(0) may also give back pages inside free blocks elsewhere
     * in the heap (madvise); those are counted but not asked for here. */
    a = stats_now();
    int released = malloc_trim(0);
    b = stats_now();
    struct syscalls trim = syscalls_between(&a, &b);
    trim.madvise = 0;
#ifdef MM_DISABLE_SBRK
    ok(released == 1 && syscalls_are(trim, 0, 0, 0, 1, 0),
       "malloc_trim(0) releases the pad kept: one munmap");
#else
    ok(released == 1 && syscalls_are(trim, 0, 1, 0, 0, 0),
       "malloc_trim(0) releases the pad kept: one negative sbrk");
#endif

    mallopt(M_MMAP_THRESHOLD, (int)(128 * KIB));
}

/* ---- the request histogram ---- */

static int histogram_is(const struct mymalloc_stats *a, const struct mymalloc_stats *b,
                        const unsigned long long expected[MYMALLOC_SIZE_CLASSES])
{
    int same = 1;
    for (int i = 0; i < MYMALLOC_SIZE_CLASSES; i++)
        if (b->size_classes[i] - a->size_classes[i] != expected[i])
            same = 0;
    if (!same)
        for (int i = 0; i < MYMALLOC_SIZE_CLASSES; i++)
            diag("class %d (up to %zu): %llu counted, %llu expected", i, MYMALLOC_SIZE_CLASS_MAX(i),
                 b->size_classes[i] - a->size_classes[i], expected[i]);
    return same;
}

static unsigned long long calls_between(const struct mymalloc_stats *a, const struct mymalloc_stats *b,
                                        enum mymalloc_call call)
{
    return b->calls[call] - a->calls[call];
}

static void test_size_classes(void)
{
    unsigned long long expected[MYMALLOC_SIZE_CLASSES] = { 0 };
    void *p[24];
    int k = 0;

    struct mymalloc_stats a = stats_now();
    p[k++] = malloc(hide(0));                   /* class 0: 0 to 16 */
    p[k++] = malloc(hide(1));
    p[k++] = malloc(hide(16));
    expected[0] += 3;
    p[k++] = malloc(hide(17));                  /* class 1: 17 to 32 */
    p[k++] = malloc(hide(32));
    expected[1] += 2;
    p[k++] = malloc(hide(33));                  /* class 2: 33 to 64 */
    expected[2] += 1;
    p[k++] = calloc(hide(3), 100);              /* 300: class 5, 257 to 512 */
    expected[5] += 1;
    errno = 0;
    void *none = calloc(hide(SIZE_MAX), 2);     /* overflows: more than 1 MiB */
    expected[17] += 1;
    p[k++] = realloc(launder(NULL), hide(1000));         /* class 6, up to 1 KiB */
    expected[6] += 1;
    p[k++] = realloc(launder(NULL), hide(24));
    expected[1] += 1;
    void *gone = realloc(p[k - 1], 0);          /* a free: not counted */
    k--;
    p[k++] = reallocarray(launder(NULL), hide(10), 10);  /* 100: class 3, up to 128 */
    expected[3] += 1;
    p[k] = malloc(hide(40));                    /* class 2 */
    p[k] = realloc(p[k], hide(5000));           /* class 9, up to 8 KiB */
    k++;
    expected[2] += 1;
    expected[9] += 1;
    if (posix_memalign(&p[k], 64, hide(5000)) == 0)   /* class 9 */
        k++;
    expected[9] += 1;
    p[k++] = aligned_alloc(4096, hide(65536));  /* class 12, up to 64 KiB */
    expected[12] += 1;
    p[k++] = memalign(32, hide(2048));          /* class 7, up to 2 KiB */
    expected[7] += 1;
    p[k++] = valloc(hide(4097));                /* class 9 */
    expected[9] += 1;
    p[k++] = pvalloc(hide(1));                  /* counted as asked: class 0 */
    expected[0] += 1;
    p[k++] = malloc(hide(MIB));                 /* class 16, up to 1 MiB */
    expected[16] += 1;
    p[k++] = malloc(hide(MIB + 1));             /* class 17 */
    expected[17] += 1;
    void *object = mymalloc_alloc_counted(hide(24), 0, MYMALLOC_CALL_NEW);   /* class 1 */
    expected[1] += 1;
    struct mymalloc_stats b = stats_now();

    ok(none == NULL && gone == NULL && histogram_is(&a, &b, expected),
       "the size-class histogram counts a known pattern of 21 requests exactly (realloc(p, 0) not counted)");
    unsigned long long requests = 0, allocating_calls = 0;
    for (int i = 0; i < MYMALLOC_SIZE_CLASSES; i++)
        requests += b.size_classes[i] - a.size_classes[i];
    for (int c = 0; c < MYMALLOC_CALL_COUNT; c++)
        if (c != MYMALLOC_CALL_FREE && c != MYMALLOC_CALL_FREE_SIZED && c != MYMALLOC_CALL_FREE_ALIGNED_SIZED &&
            c < MYMALLOC_CALL_DELETE)
            allocating_calls += calls_between(&a, &b, (enum mymalloc_call)c);
    if (requests + 1 != allocating_calls || calls_between(&a, &b, MYMALLOC_CALL_MALLOC) != 9)
        for (int c = 0; c < MYMALLOC_CALL_COUNT; c++)
            if (calls_between(&a, &b, (enum mymalloc_call)c) != 0)
                diag("%s: %llu calls", mymalloc_call_name((enum mymalloc_call)c), calls_between(&a, &b, (enum mymalloc_call)c));
    ok(requests + 1 == allocating_calls && calls_between(&a, &b, MYMALLOC_CALL_MALLOC) == 9 &&
       calls_between(&a, &b, MYMALLOC_CALL_REALLOC) == 4 && calls_between(&a, &b, MYMALLOC_CALL_NEW) == 1,
       "allocating calls: %llu, requests counted: %llu (one realloc(p, 0) apart)", allocating_calls, requests);
    for (int i = 0; i < k; i++)
        free(p[i]);
    mymalloc_free_counted(object, 0, 0, MYMALLOC_CALL_DELETE);

    /* Both sides of every boundary, one request at a time. */
    int boundaries_ok = 1;
    for (int i = 0; i + 1 < MYMALLOC_SIZE_CLASSES; i++) {
        size_t max = MYMALLOC_SIZE_CLASS_MAX(i);
        for (size_t n = max; n <= max + 1; n++) {
            int want = n == max ? i : i + 1;
            a = stats_now();
            void *x = launder(malloc(hide(n)));
            b = stats_now();
            free(x);
            for (int c = 0; c < MYMALLOC_SIZE_CLASSES; c++)
                if (b.size_classes[c] - a.size_classes[c] != (c == want ? 1u : 0u)) {
                    diag("malloc(%zu) not counted in class %d alone", n, want);
                    boundaries_ok = 0;
                    break;
                }
        }
    }
    ok(boundaries_ok && MYMALLOC_SIZE_CLASS_MAX(0) == 16 && MYMALLOC_SIZE_CLASS_MAX(16) == MIB &&
       MYMALLOC_SIZE_CLASS_MAX(MYMALLOC_SIZE_CLASSES - 1) == SIZE_MAX,
       "malloc(MYMALLOC_SIZE_CLASS_MAX(i)) is counted in class i, one byte more in class i + 1 (16 B to 1 MiB)");

    a = stats_now();
    free(launder(malloc(hide(100))));
    free(NULL);
    b = stats_now();
    for (int i = 0; i < MYMALLOC_SIZE_CLASSES; i++)
        expected[i] = i == 3;
    ok(histogram_is(&a, &b, expected), "frees add nothing to the histogram");
}

/* Another thread's requests: counted while it runs, kept after it exits. */
struct thread_result {
    struct mymalloc_stats before, after;
};

static void *thread_requests(void *arg)
{
    struct thread_result *r = arg;
    void *p[9];
    free(launder(malloc(hide(8))));    /* the thread's first call registers it */
    r->before = stats_now();
    for (int i = 0; i < 5; i++)
        p[i] = malloc(hide(100));            /* class 3 */
    for (int i = 5; i < 8; i++)
        p[i] = malloc(hide(5000));           /* class 9 */
    p[8] = calloc(1, hide(70000));           /* class 13 */
    r->after = stats_now();
    for (int i = 0; i < 9; i++)
        free(p[i]);
    return NULL;
}

static void test_thread_counts(void)
{
    unsigned long long expected[MYMALLOC_SIZE_CLASSES] = { 0 };
    struct thread_result r;
    pthread_t t;
    expected[3] = 5;
    expected[9] = 3;
    expected[13] = 1;

    struct mymalloc_stats start = stats_now();
    if (pthread_create(&t, NULL, thread_requests, &r) != 0) {
        skip(2, "pthread_create failed");
        return;
    }
    pthread_join(t, NULL);
    struct mymalloc_stats end = stats_now();
    ok(histogram_is(&r.before, &r.after, expected),
       "another thread's requests (5 x 100, 3 x 5000, calloc 70000) show in the sums while it runs");
    int kept = 1;
    for (int i = 0; i < MYMALLOC_SIZE_CLASSES; i++)
        if (end.size_classes[i] < r.after.size_classes[i] ||
            end.size_classes[i] - start.size_classes[i] < expected[i])
            kept = 0;
    for (int c = 0; c < MYMALLOC_CALL_COUNT; c++)
        if (end.calls[c] < r.after.calls[c])
            kept = 0;
    ok(kept, "and they are kept once it has exited (class 3: %llu -> %llu, class 9: %llu -> %llu)",
       start.size_classes[3], end.size_classes[3], start.size_classes[9], end.size_classes[9]);
}

/* ---- blocks parked in the arenas count as cached, blocks and bytes ---- */

static void test_parked_counted(void)
{
    enum { N = 400 };        /* more than a cache list of 48-byte blocks holds (120) */
    static void *freed[N], *keepers[N];
    malloc_trim(0);          /* the caches and the parked blocks back to the heap */
    for (int i = 0; i < N; i++) {
        freed[i] = malloc(hide(40));
        keepers[i] = malloc(hide(40));      /* in use next to each: the drained ones are parked */
    }
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < N; i++)
        free(freed[i]);
    struct mallinfo2 after = mallinfo2();
    size_t blocks = after.smblks - before.smblks, bytes = after.fsmblks - before.fsmblks;
    ok(blocks > 120 && blocks <= N && bytes == blocks * 48,
       "%d blocks of 48 bytes freed, the cache's list (120) overflowed, the drained ones parked or freed: %zu more "
       "cached blocks, %zu more cached bytes, 48 each (mallinfo2 smblks and fsmblks)", N, blocks, bytes);
    for (int i = 0; i < N; i++)
        free(keepers[i]);
}

/* ---- mallinfo2 and mallinfo from the same figures ---- */

static void test_mallinfo(void)
{
    void *keep[6];
    for (int i = 0; i < 6; i++)
        keep[i] = malloc(hide(2000 + 500 * (size_t)i));
    free(keep[1]);
    free(keep[3]);
    void *big = launder(malloc(hide(MIB)));

    struct mymalloc_stats s = stats_now();
    struct mallinfo2 m = mallinfo2();
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"   /* mallinfo() is tested on purpose */
    struct mallinfo m1 = mallinfo();
#pragma GCC diagnostic pop
    ok(m.arena == s.heap_bytes && m.usmblks == s.heap_peak_bytes && m.hblks == s.mapped_blocks &&
       m.hblkhd == s.mapped_bytes && m.keepcost == s.top_bytes && m.fsmblks == s.cached_bytes,
       "mallinfo2: arena, usmblks, hblks, hblkhd, keepcost and fsmblks are the heap, its peak, the mapped "
       "blocks and bytes, the top and the cached bytes of mymalloc_stats_get");
    ok(m.fordblks == s.free_bytes + s.top_bytes + s.cached_bytes && m.uordblks == m.arena - m.fordblks &&
       m.ordblks >= s.free_blocks + (s.top_bytes != 0) && m.ordblks <= s.free_blocks + s.arenas,
       "mallinfo2: fordblks = free + top + cached (%zu), uordblks = arena - fordblks, ordblks = free blocks + the "
       "arenas' tops",
       m.fordblks);
    ok((size_t)m1.arena == m.arena && (size_t)m1.ordblks == m.ordblks && (size_t)m1.smblks == m.smblks &&
       (size_t)m1.hblks == m.hblks && (size_t)m1.hblkhd == m.hblkhd && (size_t)m1.usmblks == m.usmblks &&
       (size_t)m1.fsmblks == m.fsmblks && (size_t)m1.uordblks == m.uordblks &&
       (size_t)m1.fordblks == m.fordblks && (size_t)m1.keepcost == m.keepcost,
       "mallinfo agrees with mallinfo2 field by field");
    free(big);
    for (int i = 0; i < 6; i++)
        if (i != 1 && i != 3)
            free(keep[i]);
}

/* ---- malloc_stats(): the table, parsed back ---- */

static char report_text[32768];

/* The number ending the first line at or after `from` that is `label`
 * followed by spaces (and "= " for glibc's lines); -1 when there is none. */
static long long value_after(const char *from, const char *label)
{
    size_t n = strlen(label);
    for (const char *line = from; line != NULL && *line != '\0';) {
        if (strncmp(line, label, n) == 0 && line[n] == ' ') {
            const char *q = line + n;
            while (*q == ' ' || *q == '=')
                q++;
            char *end;
            long long v = strtoll(q, &end, 10);
            if (end != q && *end == '\n')
                return v;
        }
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    return -1;
}

static long long value_of(const char *label) { return value_after(report_text, label); }

/* The table's label of a size class, built here independently of the library. */
static void class_label(char *out, size_t size, int cls)
{
    size_t max = (size_t)16 << cls;
    if (cls == MYMALLOC_SIZE_CLASSES - 1)
        snprintf(out, size, "  > 1 MiB");
    else if (max >= MIB)
        snprintf(out, size, "  <= %zu MiB", max / MIB);
    else if (max >= KIB)
        snprintf(out, size, "  <= %zu KiB", max / KIB);
    else
        snprintf(out, size, "  <= %zu bytes", max);
}

static void test_malloc_stats(void)
{
    char path[] = "/tmp/mymalloc-stats-test.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        skip(5, "mkstemp failed");
        return;
    }
    unlink(path);
    void *big = launder(malloc(hide(MIB)));
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    struct mymalloc_stats s = stats_now();      /* nothing allocates from here to malloc_stats() */
    struct mallinfo2 m = mallinfo2();
    malloc_stats();
    dup2(saved, STDERR_FILENO);
    close(saved);
    lseek(fd, 0, SEEK_SET);
    read_all(fd, report_text, sizeof report_text);
    close(fd);
    free(big);

    const char *total = strstr(report_text, "Total (incl. mmap):\n");
    ok(strncmp(report_text, "Arena 0 (mymalloc " MYMALLOC_VERSION_STRING "):\n", 26) == 0 && total != NULL &&
       value_of("system bytes") == (long long)m.arena && value_of("in use bytes") == (long long)m.uordblks &&
       value_after(total, "system bytes") == (long long)(m.arena + m.hblkhd) &&
       value_after(total, "in use bytes") == (long long)(m.uordblks + m.hblkhd) &&
       value_of("max mmap regions") == (long long)s.mapped_peak_blocks &&
       value_of("max mmap bytes") == (long long)s.mapped_peak_bytes,
       "malloc_stats starts with glibc's lines, with mallinfo2's figures");

    struct { const char *label; size_t value; } heap[] = {
        { "  heap bytes", s.heap_bytes }, { "  heap peak bytes", s.heap_peak_bytes },
        { "  in use bytes", s.inuse_bytes }, { "  free bytes in bins", s.free_bytes },
        { "  free blocks in bins", s.free_blocks }, { "  top bytes", s.top_bytes },
        { "  cached bytes", s.cached_bytes }, { "  cached blocks", m.smblks },
        { "  mapped blocks", s.mapped_blocks }, { "  mapped bytes", s.mapped_bytes },
        { "  mapped peak blocks", s.mapped_peak_blocks }, { "  mapped peak bytes", s.mapped_peak_bytes },
    };
    int same = strstr(report_text, "\nmymalloc " MYMALLOC_VERSION_STRING " statistics (process ") != NULL;
    for (size_t i = 0; i < sizeof heap / sizeof heap[0]; i++)
        if (value_of(heap[i].label) != (long long)heap[i].value) {
            diag("%s: %lld in the table, %zu from mymalloc_stats_get", heap[i].label, value_of(heap[i].label),
                 heap[i].value);
            same = 0;
        }
    ok(same && s.mapped_blocks >= 1, "its table gives the heap, free, top, cached and mapped figures of "
       "mymalloc_stats_get (heap %zu, mapped %zu bytes)", s.heap_bytes, s.mapped_bytes);

    struct { const char *label; unsigned long long value; } sys[] = {
        { "  sbrk (grow)", s.sbrk_grow_calls }, { "  sbrk (shrink)", s.sbrk_shrink_calls },
        { "  mmap", s.mmap_calls }, { "  munmap", s.munmap_calls }, { "  mremap", s.mremap_calls },
        { "  madvise", s.madvise_calls },
    };
    same = strstr(report_text, "\nsystem calls:\n") != NULL;
    for (size_t i = 0; i < sizeof sys / sizeof sys[0]; i++)
        if (value_of(sys[i].label) != (long long)sys[i].value) {
            diag("%s: %lld in the table, %llu counted", sys[i].label, value_of(sys[i].label), sys[i].value);
            same = 0;
        }
    ok(same && s.mmap_calls >= 3 && s.munmap_calls >= 2 && s.mremap_calls >= 1,
       "and the system calls (mmap %llu, munmap %llu, mremap %llu, sbrk %llu + %llu)", s.mmap_calls,
       s.munmap_calls, s.mremap_calls, s.sbrk_grow_calls, s.sbrk_shrink_calls);

    ok(strstr(report_text, "\ncalls:\n") != NULL && value_of("  malloc") == (long long)s.calls[MYMALLOC_CALL_MALLOC] &&
       value_of("  free") == (long long)s.calls[MYMALLOC_CALL_FREE] &&
       value_of("  operator new") == (long long)s.calls[MYMALLOC_CALL_NEW] && s.calls[MYMALLOC_CALL_NEW] == 1 &&
       s.calls[MYMALLOC_CALL_NEW_ARRAY_ALIGNED_NOTHROW] == 0 &&
       strstr(report_text, "operator new[] (aligned, nothrow)") == NULL &&
       strstr(report_text, "free_aligned_sized") == NULL,
       "calls: the non-zero ones (malloc %llu, free %llu, operator new 1), never the others",
       s.calls[MYMALLOC_CALL_MALLOC], s.calls[MYMALLOC_CALL_FREE]);

    same = strstr(report_text, "\nrequests by size:\n") != NULL;
    for (int i = 0; i < MYMALLOC_SIZE_CLASSES; i++) {
        char label[32];
        class_label(label, sizeof label, i);
        if (value_of(label) != (long long)s.size_classes[i]) {
            diag("%s: %lld in the table, %llu counted", label, value_of(label), s.size_classes[i]);
            same = 0;
        }
    }
    ok(same, "and the 18 size classes, \"<= 16 bytes\" to \"> 1 MiB\"");
}

/* ---- MYMALLOC_STATS=1: the table at exit ---- */

static int exit_child_work(void)
{
    void *p[7];
    for (int i = 0; i < 7; i++)
        p[i] = valloc(hide(100));
    for (int i = 0; i < 7; i++)
        free(p[i]);
    return 0;
}

static __attribute__((noinline, noreturn)) void exit_deep(int status)
{
    exit(status);
}

static int exit_child(const char *how)
{
    exit_child_work();
    if (strcmp(how, "exit") == 0)
        exit_deep(0);
    if (strcmp(how, "_exit") == 0)
        _exit(0);
    if (strcmp(how, "close") == 0)
        close(STDERR_FILENO);           /* as coreutils do at exit */
    if (strcmp(how, "reopen") == 0) {   /* started without stderr: number 2 is now another file */
        dup2(5, STDERR_FILENO);
        close(5);
    }
    return 0;
}

static char child_err[32768];
static char *child_env[4096];
extern char **environ;

/* Run this program again as an exit child (`how`: return, exit, _exit,
 * close, reopen) with MYMALLOC_STATS=value (unset when NULL); its stderr in
 * child_err.  For "reopen" it starts with no descriptor 2 and the pipe on 5. */
static int run_exit_child(const char *how, const char *value, int *status, pid_t *child)
{
    static char setting[64];
    size_t n = 0;
    for (char **e = environ; *e != NULL && n < 4000; e++)
        if (strncmp(*e, "MYMALLOC_", 9) != 0 && strncmp(*e, "MALLOC_", 7) != 0)
            child_env[n++] = *e;
    if (value != NULL) {
        snprintf(setting, sizeof setting, "MYMALLOC_STATS=%s", value);
        child_env[n++] = setting;
    }
    child_env[n] = NULL;

    int err[2];
    if (pipe(err) != 0)
        return 0;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        char *argv[] = { "stats", CHILD_ARG, (char *)how, NULL };
        int null = open("/dev/null", O_WRONLY);
        dup2(null, STDOUT_FILENO);
        if (strcmp(how, "reopen") == 0) {
            dup2(err[1], 5);
            close(STDERR_FILENO);
        } else {
            dup2(err[1], STDERR_FILENO);
        }
        close(err[0]);
        close(err[1]);
        execve("/proc/self/exe", argv, child_env);
        _exit(127);
    }
    close(err[1]);
    read_all(err[0], child_err, sizeof child_err);
    close(err[0]);
    *child = pid;
    return pid > 0 && waitpid(pid, status, 0) == pid;
}

static void test_stats_at_exit(void)
{
    static const char *const hows[] = { "return", "exit", "close" };
    static const char *const whats[] = { "returning from main", "calling exit()", "closing stderr first" };
    int status;
    pid_t pid;

    for (int i = 0; i < 3; i++) {
        int ran = run_exit_child(hows[i], "1", &status, &pid);
        char process[64];
        snprintf(process, sizeof process, " statistics (process %ld):\n", (long)pid);
        int fine = ran && WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
                   strncmp(child_err, "Arena 0 (mymalloc ", 18) == 0 && strstr(child_err, process) != NULL &&
                   value_after(child_err, "  valloc") == 7 && strstr(child_err, "\nrequests by size:\n") != NULL &&
                   value_after(child_err, "  heap bytes") > 0;
        ok(fine, "MYMALLOC_STATS=1: a program %s gets the table on its stderr at exit, with its 7 valloc calls",
           whats[i]);
        if (!fine)
            diag("status 0x%x, stderr: %.300s", status, child_err);
    }

    static const struct {
        const char *how, *value, *expected, *what;
    } quiet[] = {
        { "_exit", "1", "", "nothing when it leaves with _exit()" },
        { "reopen", "1", "", "nothing when it started without stderr and number 2 is another file at exit" },
        { "return", "0", "", "nothing with MYMALLOC_STATS=0" },
        { "return", NULL, "", "nothing without MYMALLOC_STATS" },
        { "return", "2", "mymalloc: ignoring MYMALLOC_STATS=2: not a valid level\n",
          "MYMALLOC_STATS=2: one line saying it is not a valid level, no table" },
    };
    for (size_t i = 0; i < sizeof quiet / sizeof quiet[0]; i++) {
        int ran = run_exit_child(quiet[i].how, quiet[i].value, &status, &pid);
        int fine = ran && WIFEXITED(status) && WEXITSTATUS(status) == 0 && strcmp(child_err, quiet[i].expected) == 0;
        ok(fine, "%s", quiet[i].what);
        if (!fine)
            diag("status 0x%x, stderr: %.300s", status, child_err);
    }
}

/* ---- malloc_info(): glibc's XML ---- */

static char xml[65536];
static char xml_stdio[65536];   /* the FILE's buffer: writing it allocates nothing */

/* The number in attribute `name` of the first element starting with `tag`
 * in [from, to); -1 when there is none. */
static long long xml_attr(const char *from, const char *to, const char *tag, const char *name)
{
    const char *e = strstr(from, tag);
    if (e == NULL || e >= to)
        return -1;
    const char *end = strchr(e, '>');
    char key[32];
    snprintf(key, sizeof key, " %s=\"", name);
    const char *a = strstr(e, key);
    if (a == NULL || end == NULL || a > end)
        return -1;
    return strtoll(a + strlen(key), NULL, 10);
}

/* Well formed, for the few constructs malloc_info writes: every element
 * known, closed in order, attributes all quoted numbers or words. */
static int xml_well_formed(const char *text)
{
    static const char *const known[] = { "malloc", "heap", "sizes", "size", "total", "system", "aspace", "unsorted" };
    const char *stack[8];
    size_t depth = 0;
    int elements = 0;
    for (const char *p = text; *p != '\0'; p++) {
        if (*p == '\n' || *p == ' ')
            continue;
        if (*p != '<')
            return 0;
        int closing = p[1] == '/';
        const char *name = p + 1 + closing;
        size_t len = strcspn(name, " />");
        int is_known = 0;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            if (strlen(known[i]) == len && strncmp(known[i], name, len) == 0)
                is_known = 1;
        const char *end = strchr(p, '>');
        if (!is_known || end == NULL)
            return 0;
        /* attributes: name="value" pairs */
        for (const char *q = name + len; q < end && *q != '/';) {
            if (*q++ != ' ')
                return 0;
            size_t key = strspn(q, "abcdefghijklmnopqrstuvwxyz");
            if (key == 0 || q[key] != '=' || q[key + 1] != '"')
                return 0;
            q += key + 2;
            const char *close = strchr(q, '"');
            if (close == NULL || close > end)
                return 0;
            q = close + 1;
        }
        int empty = end[-1] == '/';
        if (closing) {
            if (depth == 0 || strlen(stack[depth - 1]) != len || strncmp(stack[depth - 1], name, len) != 0)
                return 0;
            depth--;
        } else if (!empty) {
            if (depth == 8)
                return 0;
            for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
                if (strlen(known[i]) == len && strncmp(known[i], name, len) == 0)
                    stack[depth] = known[i];
            depth++;
        }
        elements++;
        p = end;
        if (depth == 0 && !closing && !empty)
            return 0;
        if (depth == 0)
            return strspn(end + 1, "\n") == strlen(end + 1) && elements > 1;
    }
    return 0;
}

static const char python_check[] =
    "import sys, xml.etree.ElementTree as ET\n"
    "root = ET.parse(sys.argv[1]).getroot()\n"
    "free_bytes, free_blocks, mapped_blocks, mapped_bytes, heap = map(int, sys.argv[2:7])\n"
    "def fail(why):\n"
    "    print(why)\n"
    "    sys.exit(1)\n"
    "if root.tag != 'malloc' or root.get('version') != '1':\n"
    "    fail('root is not <malloc version=\"1\">')\n"
    "heaps = root.findall('heap')\n"
    "if len(heaps) != 1 or heaps[0].get('nr') != '0':\n"
    "    fail('not one heap nr=0')\n"
    "h = heaps[0]\n"
    "if [c.tag for c in h] != ['sizes', 'total', 'total', 'system', 'system', 'aspace', 'aspace']:\n"
    "    fail('heap children: %s' % [c.tag for c in h])\n"
    "if [c.tag for c in root] != ['heap', 'total', 'total', 'total', 'system', 'system', 'aspace', 'aspace']:\n"
    "    fail('malloc children: %s' % [c.tag for c in root])\n"
    "sizes = h.find('sizes').findall('size')\n"
    "for s in sizes:\n"
    "    f, t, total, count = (int(s.get(k)) for k in ('from', 'to', 'total', 'count'))\n"
    "    if not (0 < f <= t and f * count <= total <= t * count):\n"
    "        fail('bad size element %s' % s.attrib)\n"
    "if sum(int(s.get('total')) for s in sizes) != free_bytes or sum(int(s.get('count')) for s in sizes) != free_blocks:\n"
    "    fail('sizes do not add up to the free blocks in bins')\n"
    "totals = {t.get('type'): (int(t.get('count')), int(t.get('size'))) for t in root.findall('total')}\n"
    "if totals.get('mmap') != (mapped_blocks, mapped_bytes):\n"
    "    fail('mmap total %s' % (totals.get('mmap'),))\n"
    "htotals = {t.get('type'): (int(t.get('count')), int(t.get('size'))) for t in h.findall('total')}\n"
    "if htotals['fast'] != totals['fast'] or htotals['rest'] != totals['rest']:\n"
    "    fail('heap and whole disagree')\n"
    "system = {s.get('type'): int(s.get('size')) for s in root.findall('system')}\n"
    "if system['current'] != heap or system['max'] < heap:\n"
    "    fail('system %s' % system)\n";

static void test_malloc_info(void)
{
    void *blocks[6], *separators[6];
    FILE *fp = tmpfile();     /* first: it allocates */
    if (fp == NULL || setvbuf(fp, xml_stdio, _IOFBF, sizeof xml_stdio) != 0) {
        skip(6, "tmpfile failed");
        return;
    }
    for (int i = 0; i < 6; i++) {
        blocks[i] = malloc(hide(9000 + 600 * (size_t)i));
        separators[i] = malloc(hide(9000));   /* over 8 KiB, never cached: carved right after */
    }
    free(blocks[1]);           /* blocks of 9616, 10816 and 12016 bytes go to bins */
    free(blocks[3]);
    free(blocks[5]);
    void *big = launder(malloc(hide(MIB)));

    struct mymalloc_stats s = stats_now();      /* malloc_info allocates nothing more here */
    struct mallinfo2 m = mallinfo2();
    int rc = malloc_info(0, fp);
    fflush(fp);
    rewind(fp);
    size_t got = fread(xml, 1, sizeof xml - 1, fp);
    xml[got] = '\0';

    ok(rc == 0 && strncmp(xml, "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n", 42) == 0 &&
       xml_well_formed(xml),
       "malloc_info(0, fp) returns 0 and writes well-formed XML: <malloc version=\"1\"><heap nr=\"0\"><sizes>...");
    if (rc != 0 || !xml_well_formed(xml))
        diag("%.400s", xml);

    const char *heap_end = strstr(xml, "</heap>");
    if (heap_end == NULL)
        heap_end = xml + got;
    long long sum_total = 0, sum_count = 0;
    int bins_fine = 1, seen[3] = { 0 };
    const size_t freed[3] = { 9616, 10816, 12016 };
    for (const char *e = strstr(xml, "<size "); e != NULL && e < heap_end; e = strstr(e + 1, "<size ")) {
        long long from = xml_attr(e, heap_end, "<size ", "from"), to = xml_attr(e, heap_end, "<size ", "to");
        long long total = xml_attr(e, heap_end, "<size ", "total"), count = xml_attr(e, heap_end, "<size ", "count");
        if (from <= 0 || from > to || count <= 0 || total < from * count || total > to * count)
            bins_fine = 0;
        for (int i = 0; i < 3; i++)
            if (from <= (long long)freed[i] && (long long)freed[i] <= to)
                seen[i] = 1;
        sum_total += total;
        sum_count += count;
    }
    ok(bins_fine && sum_total == (long long)s.free_bytes && sum_count == (long long)s.free_blocks && seen[0] &&
       seen[1] && seen[2],
       "its <size from to total count/> elements add up to the free blocks in bins (%lld bytes in %lld), "
       "the three just freed among them", sum_total, sum_count);
    if (!(bins_fine && seen[0] && seen[1] && seen[2]) || sum_total != (long long)s.free_bytes)
        diag("free in bins: %zu bytes in %zu blocks; %.600s", s.free_bytes, s.free_blocks, xml);

    ok(xml_attr(xml, heap_end, "<total type=\"fast\"", "count") == (long long)m.smblks &&
       xml_attr(xml, heap_end, "<total type=\"fast\"", "size") == (long long)s.cached_bytes &&
       xml_attr(xml, heap_end, "<total type=\"rest\"", "count") == (long long)m.ordblks &&
       xml_attr(xml, heap_end, "<total type=\"rest\"", "size") == (long long)(s.free_bytes + s.top_bytes) &&
       xml_attr(xml, heap_end, "<system type=\"current\"", "size") == (long long)s.heap_bytes &&
       xml_attr(xml, heap_end, "<system type=\"max\"", "size") == (long long)s.heap_peak_bytes &&
       xml_attr(xml, heap_end, "<aspace type=\"total\"", "size") == (long long)s.heap_bytes,
       "the heap's totals: fast = the threads' caches (smblks/fsmblks), rest = bins and top (ordblks), "
       "system = heap bytes and peak");

    const char *end = xml + got;
    ok(xml_attr(heap_end, end, "<total type=\"mmap\"", "count") == (long long)s.mapped_blocks &&
       xml_attr(heap_end, end, "<total type=\"mmap\"", "size") == (long long)s.mapped_bytes &&
       s.mapped_blocks >= 1 &&
       xml_attr(heap_end, end, "<total type=\"rest\"", "size") == (long long)(s.free_bytes + s.top_bytes) &&
       xml_attr(heap_end, end, "<system type=\"current\"", "size") == (long long)s.heap_bytes &&
       got > 10 && strcmp(end - 10, "</malloc>\n") == 0,
       "the whole: the same totals, and mmap = the mapped blocks (%zu, %zu bytes)", s.mapped_blocks, s.mapped_bytes);

    const char *python = getenv("PYTHON3");
    if (python != NULL && *python != '\0' && access(python, X_OK) == 0) {
        char xml_path[] = "/tmp/mymalloc-info-test.XXXXXX", script_path[] = "/tmp/mymalloc-info-check.XXXXXX";
        int xfd = mkstemp(xml_path), sfd = mkstemp(script_path);
        int fine = xfd >= 0 && sfd >= 0 && write(xfd, xml, got) == (ssize_t)got &&
                   write(sfd, python_check, sizeof python_check - 1) == (ssize_t)(sizeof python_check - 1);
        char command[1024];
        snprintf(command, sizeof command, "'%s' %s %s %zu %zu %zu %zu %zu", python, script_path, xml_path,
                 s.free_bytes, s.free_blocks, s.mapped_blocks, s.mapped_bytes, s.heap_bytes);
        fflush(stdout);
        int status = fine ? system(command) : -1;
        ok(status == 0, "python3's xml.etree parses it: one heap, the elements in glibc's order, sizes and "
           "totals consistent (exit status %d)", status);
        if (xfd >= 0)
            close(xfd);
        if (sfd >= 0)
            close(sfd);
        unlink(xml_path);
        unlink(script_path);
    } else {
        skip(1, "PYTHON3 not set or not executable");
    }

    long before = ftell(fp);
    errno = 0;
    rc = malloc_info(1, fp);
    int e1 = errno;
    errno = 0;
    int rc2 = malloc_info(0, NULL);
    int e2 = errno;
    ok(rc == -1 && e1 == EINVAL && ftell(fp) == before && rc2 == -1 && e2 == EINVAL,
       "malloc_info(1, fp) and malloc_info(0, NULL) fail with -1 and EINVAL, writing nothing");
    fclose(fp);

    free(big);
    for (int i = 0; i < 6; i++) {
        if (i % 2 == 0)
            free(blocks[i]);
        free(separators[i]);
    }
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], CHILD_ARG) == 0)
        return exit_child(argv[2]);
    test_syscalls();
    test_size_classes();
    test_thread_counts();
    test_mallinfo();
    test_parked_counted();
    test_malloc_stats();
    test_stats_at_exit();
    test_malloc_info();
    return done_with_check("the heap is sound at the end");
}
