/* api.c - the API contract of the whole malloc family and every errno case:
 * malloc(0), free(NULL), errno preservation, impossible sizes, calloc
 * overflow and zeroing, realloc corner cases, reallocarray, the aligned
 * allocators' argument checks, malloc_usable_size, mallopt, mallinfo2,
 * mallinfo, malloc_stats, free_sized, free_aligned_sized and the version. */
#include "util.h"

static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

/* ---- malloc(0), free(NULL), errno ---- */

static void test_malloc_zero(void)
{
    enum { N = 16 };
    void *p[N];
    int good = 1;

    for (int i = 0; i < N; i++) {
        p[i] = launder(malloc(hide(0)));
        if (p[i] == NULL || !aligned_to(p[i], 16))
            good = 0;
    }
    for (int i = 0; i < N && good; i++)
        for (int j = i + 1; j < N; j++)
            if (p[i] == p[j])
                good = 0;
    ok(good, "malloc(0) x %d: distinct, non-NULL, 16-byte aligned pointers", N);
    for (int i = 0; i < N; i++)
        free(p[i]);
}

static void test_free_errno(void)
{
    errno = 4321;
    free(launder(NULL));
    ok(errno_now() == 4321, "free(NULL) is a no-op that keeps errno");

    void *p = launder(malloc(100));
    errno = EDOM;
    free(p);
    ok(errno_now() == EDOM, "free of a heap block keeps errno");

    size_t before = mapped_blocks();
    p = launder(malloc(MIB));
    size_t during = mapped_blocks();
    errno = ERANGE;
    free(p);
    int e = errno_now();
    ok(during == before + 1 && mapped_blocks() == before && e == ERANGE,
       "free of an mmapped block keeps errno (mapped blocks %zu -> %zu -> %zu, errno %d)",
       before, during, mapped_blocks(), e);

    /* With the mmap threshold raised, 512 KiB is carved from the top; freeing
     * it leaves a top far above the trim threshold, so free() trims the heap. */
    int raised = mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
    p = launder(malloc(512 * KIB));
    fill_pattern(p, 512 * KIB, 9);
    launder(p);
    size_t arena_before = mallinfo2().arena;
    errno = EILSEQ;
    free(p);
    e = errno_now();
    size_t arena_after = mallinfo2().arena;
    ok(e == EILSEQ, "free that trims the heap keeps errno (errno %d)", e);
    ok(raised == 1 && mallopt(M_MMAP_THRESHOLD, 128 * 1024) == 1 && arena_after < arena_before,
       "that free did trim the heap (arena %zu -> %zu)", arena_before, arena_after);
}

/* ---- impossible sizes ---- */

static void test_huge_malloc(void)
{
    static const struct { size_t n; const char *name; } huge[] = {
        { SIZE_MAX, "SIZE_MAX" },
        { PTRDIFF_MAX, "PTRDIFF_MAX" },
        { SIZE_MAX / 2 + 1, "SIZE_MAX/2+1" },
        { SIZE_MAX - 15, "SIZE_MAX-15" },
        { (size_t)PTRDIFF_MAX - 4096, "PTRDIFF_MAX-4096" },
    };
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        errno = 0;
        void *p = launder(malloc(hide(huge[i].n)));
        int e = errno_now();
        ok(p == NULL && e == ENOMEM, "malloc(%s) -> NULL, ENOMEM (got %p, errno %d)", huge[i].name, p, e);
        free(p);
    }

    /* Every size in the last few dozen below SIZE_MAX: none may wrap around. */
    size_t bad = 0, first_bad = 0;
    for (size_t k = 0; k < 64; k++) {
        size_t n = SIZE_MAX - k;
        errno = 0;
        void *p = launder(malloc(hide(n)));
        if (p != NULL || errno_now() != ENOMEM) {
            if (bad++ == 0)
                first_bad = n;
            free(p);
        }
    }
    ok(bad == 0, "malloc(SIZE_MAX - k) -> NULL, ENOMEM for k = 0..63 (%zu wrong, first n = %#zx)",
       bad, first_bad);
}

static void test_calloc_overflow(void)
{
    static const size_t pairs[][2] = {
        { SIZE_MAX / 2, 3 },
        { 3, SIZE_MAX / 2 },
        { SIZE_MAX, SIZE_MAX },
        { (size_t)1 << 32, (size_t)1 << 32 },
        { 1, SIZE_MAX },
        { SIZE_MAX, 1 },
        { 2, (size_t)PTRDIFF_MAX / 2 + 1 },
    };
    size_t n_pairs = sizeof pairs / sizeof pairs[0];
    for (size_t i = 0; i < n_pairs; i++) {
        errno = 0;
        void *p = launder(calloc(hide(pairs[i][0]), hide(pairs[i][1])));
        int e = errno_now();
        ok(p == NULL && e == ENOMEM, "calloc(%#zx, %#zx) -> NULL, ENOMEM (got %p, errno %d)",
           pairs[i][0], pairs[i][1], p, e);
        free(p);
    }
}

/* ---- calloc zeroes memory that was dirty ---- */

static void test_calloc_dirty(void)
{
    static const size_t sizes[] = { 1, 8, 16, 24, 25, 40, 100, 500, 1000, 1008, 1024, 4000, 20000, 100000 };
    size_t n_sizes = sizeof sizes / sizeof sizes[0];
    int good;

    /* A lone block: freed into the top (nothing after it) and handed back. */
    good = 1;
    for (size_t s = 0; s < n_sizes; s++) {
        size_t n = sizes[s];
        for (int round = 0; round < 20; round++) {
            unsigned char *p = launder(malloc(hide(n)));
            memset(p, 0xA5, malloc_usable_size(p));
            free(launder(p));
            unsigned char *q = launder(round % 2 ? calloc(hide(n), 1) : calloc(1, hide(n)));
            if (q == NULL || !all_bytes(q, 0, n, 0))
                good = 0;
            free(q);
        }
    }
    ok(good, "calloc after malloc/fill 0xA5/free of the same size is all zero (freed into the top)");

    /* With a guard after it the freed block goes to a bin and comes back from there. */
    good = 1;
    for (size_t s = 0; s < n_sizes; s++) {
        size_t n = sizes[s];
        for (int round = 0; round < 20; round++) {
            unsigned char *p = launder(malloc(hide(n)));
            void *guard = launder(malloc(32));
            memset(p, 0xA5, malloc_usable_size(p));
            free(launder(p));
            unsigned char *q = launder(calloc(1, hide(n)));
            if (q == NULL || !all_bytes(q, 0, n, 0))
                good = 0;
            free(q);
            free(guard);
        }
    }
    ok(good, "calloc after malloc/fill 0xA5/free of the same size is all zero (freed into a bin)");

    /* Many dirty neighbours, freed so they coalesce, then carved again. */
    good = 1;
    for (size_t s = 0; s < n_sizes; s++) {
        enum { M = 24 };
        size_t n = sizes[s];
        unsigned char *blocks[M];
        void *guard;
        if (n > 20000)
            continue;
        for (int i = 0; i < M; i++) {
            blocks[i] = launder(malloc(hide(n)));
            memset(blocks[i], 0xA5, malloc_usable_size(blocks[i]));
        }
        guard = launder(malloc(16));
        for (int i = 0; i < M; i += 2)
            free(launder(blocks[i]));
        for (int i = 1; i < M; i += 2)
            free(launder(blocks[i]));
        for (int i = 0; i < M; i++) {
            blocks[i] = launder(calloc(hide(n), 1));
            if (blocks[i] == NULL || !all_bytes(blocks[i], 0, n, 0))
                good = 0;
        }
        for (int i = 0; i < M; i++)
            free(blocks[i]);
        free(guard);
    }
    ok(good, "calloc zeroes blocks carved from coalesced dirty memory");

    /* Big: mapped, and (with mappings turned off) from a dirty heap. */
    good = 1;
    for (int round = 0; round < 4; round++) {
        size_t n = 200 * KIB + (size_t)round * 70 * KIB;
        unsigned char *p = launder(malloc(hide(n)));
        memset(p, 0xA5, n);
        free(launder(p));
        unsigned char *q = launder(calloc(n, 1));
        if (q == NULL || !all_bytes(q, 0, n, 0))
            good = 0;
        free(q);
    }
    ok(good, "calloc above 128 KiB after a dirty block of that size is all zero");

    good = mallopt(M_MMAP_MAX, 0) == 1;
    size_t hblks = mapped_blocks();
    for (int round = 0; round < 4 && good; round++) {
        size_t n = 150 * KIB + (size_t)round * 100 * KIB;
        unsigned char *p = launder(malloc(hide(n)));
        void *guard = launder(malloc(64));
        memset(p, 0xA5, n);
        free(launder(p));
        unsigned char *q = launder(calloc(1, n));
        if (q == NULL || !all_bytes(q, 0, n, 0))
            good = 0;
        free(q);
        free(guard);
    }
    good = good && mapped_blocks() == hblks;
    ok(mallopt(M_MMAP_MAX, 65536) == 1 && good, "big calloc from a dirty heap (mmap off) is all zero");
}

/* ---- realloc ---- */

static void test_realloc_contract(void)
{
    /* realloc(NULL, n) is malloc(n). */
    size_t used = mallinfo2().uordblks;
    unsigned char *p = launder(realloc(NULL, hide(300)));
    size_t grew = mallinfo2().uordblks - used;
    int good = p != NULL && aligned_to(p, 16) && malloc_usable_size(p) >= 300 &&
               grew == malloc_usable_size(p) + 8;
    if (p != NULL)
        fill_pattern(p, 300, 1);
    ok(good && has_pattern(p, 300, 1), "realloc(NULL, 300) acts as malloc (heap use grew by %zu)", grew);

    /* realloc(p, 0) frees p and returns NULL. */
    size_t block = malloc_usable_size(p) + 8;
    used = mallinfo2().uordblks;
    void *q = launder(realloc(p, hide(0)));
    size_t shrank = used - mallinfo2().uordblks;
    ok(q == NULL && shrank == block, "realloc(p, 0) returns NULL and frees p (heap use fell by %zu of %zu)",
       shrank, block);
    ok(mymalloc_check() == 0, "heap sound after realloc(p, 0)");

    size_t hblks = mapped_blocks();
    p = launder(malloc(MIB));
    size_t during = mapped_blocks();
    q = launder(realloc(p, hide(0)));
    ok(q == NULL && during == hblks + 1 && mapped_blocks() == hblks,
       "realloc(p, 0) of an mmapped block returns NULL and unmaps it");

    /* Failure leaves p intact. */
    static const size_t huge[] = { SIZE_MAX, SIZE_MAX / 2 + 1, PTRDIFF_MAX, SIZE_MAX - 8 };
    p = launder(malloc(500));
    fill_pattern(p, 500, 2);
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        errno = 0;
        q = launder(realloc(launder(p), hide(huge[i])));
        int e = errno_now();
        ok(q == NULL && e == ENOMEM && has_pattern(p, 500, 2),
           "realloc(p, %#zx) -> NULL, ENOMEM, p intact (got %p, errno %d)", huge[i], q, e);
    }
    p = launder(realloc(launder(p), 600));
    ok(p != NULL && has_pattern(p, 500, 2), "the block is still usable after the failed reallocs");

    /* reallocarray. */
    errno = 0;
    q = launder(reallocarray(launder(p), hide(SIZE_MAX / 2), 3));
    int e = errno_now();
    ok(q == NULL && e == ENOMEM && has_pattern(p, 500, 2), "reallocarray(p, SIZE_MAX/2, 3) -> NULL, ENOMEM, p intact");
    errno = 0;
    q = launder(reallocarray(launder(p), 3, hide(SIZE_MAX / 2)));
    e = errno_now();
    ok(q == NULL && e == ENOMEM && has_pattern(p, 500, 2), "reallocarray(p, 3, SIZE_MAX/2) -> NULL, ENOMEM, p intact");
    errno = 0;
    q = launder(reallocarray(launder(p), hide((size_t)1 << 40), (size_t)1 << 30));
    e = errno_now();
    ok(q == NULL && e == ENOMEM && has_pattern(p, 500, 2), "reallocarray(p, 2^40, 2^30) -> NULL, ENOMEM, p intact");
    q = launder(reallocarray(launder(p), 100, hide(20)));
    ok(q != NULL && malloc_usable_size(q) >= 2000 && has_pattern(q, 500, 2),
       "reallocarray(p, 100, 20) grows p to 2000 bytes keeping its contents");
    if (q != NULL) {
        fill_pattern(q, 2000, 3);
        p = launder(reallocarray(launder(q), 10, hide(40)));
        ok(p != NULL && has_pattern(p, 400, 3), "reallocarray(p, 10, 40) shrinks keeping contents");
        free(p);
    } else {
        free(p);
        skip(1, "reallocarray failed");
    }
    p = launder(reallocarray(NULL, 10, hide(10)));
    ok(p != NULL && malloc_usable_size(p) >= 100, "reallocarray(NULL, 10, 10) acts as malloc(100)");
    free(p);
}

/* ---- aligned allocators ---- */

static void test_posix_memalign(void)
{
    static const size_t bad[] = { 0, 3, 24, 4, 1, 2, 12, 100, (size_t)1 << 63 | 8 };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *out = (void *)0x1234;
        errno = 777;
        int r = posix_memalign(&out, hide(bad[i]), 64);
        ok(r == EINVAL && out == (void *)0x1234 && errno_now() == 777,
           "posix_memalign(alignment %zu) -> EINVAL, *out and errno unchanged (got %d)", bad[i], r);
    }

    static const size_t good[] = { 8, 16, 32, 64, 4096, 65536 };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        void *out = NULL;
        errno = 778;
        int r = posix_memalign(&out, hide(good[i]), 1000);
        out = launder(out);
        int fine = r == 0 && out != NULL && aligned_to(out, good[i]) && malloc_usable_size(out) >= 1000 &&
                   errno_now() == 778;
        if (fine) {
            fill_pattern(out, 1000, (unsigned)i);
            fine = has_pattern(out, 1000, (unsigned)i);
        }
        ok(fine, "posix_memalign(alignment %zu, 1000) -> 0, aligned, usable, errno kept", good[i]);
        free(out);
    }

    static const size_t huge[] = { SIZE_MAX, SIZE_MAX / 2 + 1, PTRDIFF_MAX, SIZE_MAX - 4096 };
    static const size_t aligns[] = { 8, 16, 64, 4096 };
    for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++) {
        int fine = 1;
        size_t first_bad = 0;
        for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
            void *out = (void *)0x5678;
            errno = 779;
            int r = posix_memalign(&out, aligns[a], hide(huge[i]));
            if (r != ENOMEM || out != (void *)0x5678 || errno_now() != ENOMEM) {
                if (fine)
                    first_bad = huge[i];
                fine = 0;
                if (r == 0)
                    free(out);
            }
        }
        if (!ok(fine, "posix_memalign(alignment %zu, huge sizes) -> ENOMEM, errno ENOMEM, *out unchanged", aligns[a]))
            diag("first wrong size %#zx", first_bad);
    }
}

static void test_aligned_alloc(void)
{
    static const size_t bad[] = { 0, 3, 48, 100, 24 };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        void *p = launder(aligned_alloc(hide(bad[i]), 64));
        int e = errno_now();
        ok(p == NULL && e == EINVAL, "aligned_alloc(%zu, 64) -> NULL, EINVAL (got %p, errno %d)", bad[i], p, e);
        free(p);
    }

    void *p = launder(aligned_alloc(64, hide(100)));
    int fine = p != NULL && aligned_to(p, 64) && malloc_usable_size(p) >= 100;
    if (fine) {
        fill_pattern(p, 100, 5);
        fine = has_pattern(p, 100, 5);
    }
    ok(fine, "aligned_alloc(64, 100) works although 100 is not a multiple of 64");
    free(p);

    errno = 0;
    p = launder(aligned_alloc(64, hide(SIZE_MAX / 2 + 1)));
    ok(p == NULL && errno_now() == ENOMEM, "aligned_alloc(64, SIZE_MAX/2+1) -> NULL, ENOMEM");
    free(p);
}

static void test_memalign_valloc(void)
{
    size_t page = page_size();
    int fine = 1;
    static const size_t sizes[] = { 0, 1, 48, 100, 1000, 5000, 70000, 300000 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = launder(memalign(hide(48), sizes[i]));
        if (p == NULL || !aligned_to(p, 64) || malloc_usable_size(p) < sizes[i])
            fine = 0;
        else
            memset(p, 0x3c, sizes[i]);
        free(p);
    }
    ok(fine, "memalign(48, n) rounds the alignment up to 64");

    void *p = launder(memalign(hide(100), 10));
    ok(p != NULL && aligned_to(p, 128), "memalign(100, 10) gives 128-byte alignment");
    free(p);

    errno = 0;
    p = launder(memalign(hide(SIZE_MAX), 1));
    int e = errno_now();
    ok(p == NULL && e == EINVAL, "memalign(SIZE_MAX, 1) -> NULL, EINVAL (got %p, errno %d)", p, e);
    free(p);
    errno = 0;
    p = launder(memalign(hide(((size_t)1 << 63) + 1), 1));
    e = errno_now();
    ok(p == NULL && e == EINVAL, "memalign(2^63 + 1, 1) -> NULL, EINVAL (got %p, errno %d)", p, e);
    free(p);

    p = launder(memalign(hide(0), 40));
    ok(p != NULL && aligned_to(p, 16) && malloc_usable_size(p) >= 40, "memalign(0, 40) acts as malloc(40)");
    free(p);

    fine = 1;
    static const size_t vsizes[] = { 0, 1, 100, 4096, 5000, 200000 };
    for (size_t i = 0; i < sizeof vsizes / sizeof vsizes[0]; i++) {
        p = launder(valloc(hide(vsizes[i])));
        if (p == NULL || !aligned_to(p, page) || malloc_usable_size(p) < vsizes[i])
            fine = 0;
        else
            memset(p, 0x5a, vsizes[i]);
        free(p);
    }
    ok(fine, "valloc(n) is page-aligned with usable >= n");

    p = launder(pvalloc(hide(1)));
    fine = p != NULL && aligned_to(p, page) && malloc_usable_size(p) >= page;
    if (fine)
        memset(p, 0x11, page);
    ok(fine, "pvalloc(1) is page-aligned with a whole page usable");
    free(p);
    p = launder(pvalloc(hide(0)));
    ok(p != NULL && aligned_to(p, page) && malloc_usable_size(p) >= page, "pvalloc(0) gives one page");
    free(p);
    p = launder(pvalloc(hide(page + 1)));
    fine = p != NULL && aligned_to(p, page) && malloc_usable_size(p) >= 2 * page;
    if (fine)
        memset(p, 0x22, 2 * page);
    ok(fine, "pvalloc(page + 1) rounds up to two pages");
    free(p);

    errno = 0;
    p = launder(pvalloc(hide(SIZE_MAX)));
    e = errno_now();
    ok(p == NULL && e == ENOMEM, "pvalloc(SIZE_MAX) -> NULL, ENOMEM (got %p, errno %d)", p, e);
    free(p);
    errno = 0;
    p = launder(valloc(hide(SIZE_MAX)));
    e = errno_now();
    ok(p == NULL && e == ENOMEM, "valloc(SIZE_MAX) -> NULL, ENOMEM (got %p, errno %d)", p, e);
    free(p);
}

/* ---- every size: alignment, usable size, writable area ---- */

static void test_usable_sizes(void)
{
    enum { SMALL = 5001 };
    static const size_t big[] = { 8191, 65536, 100000, 131071, 131072, 131073, 200000, 1000000, 4 * MIB + 3 };
    enum { NBIG = sizeof big / sizeof big[0] };
    void **p = malloc(sizeof(void *) * (SMALL + NBIG));
    size_t *n = malloc(sizeof(size_t) * (SMALL + NBIG));
    size_t count = SMALL + NBIG, misaligned = 0, short_usable = 0, failed = 0, clobbered = 0;

    ok(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) == 0");
    for (size_t i = 0; i < count; i++) {
        n[i] = i < SMALL ? i : big[i - SMALL];
        p[i] = launder(malloc(hide(n[i])));
        if (p[i] == NULL) {
            failed++;
            continue;
        }
        if (!aligned_to(p[i], 16))
            misaligned++;
        size_t usable = malloc_usable_size(p[i]);
        if (usable < n[i])
            short_usable++;
        fill_pattern(p[i], usable, (unsigned)i);
    }
    ok(failed == 0, "malloc(n) succeeded for n = 0..5000 and %d big sizes", (int)NBIG);
    ok(misaligned == 0, "every pointer is 16-byte aligned (%zu misaligned)", misaligned);
    ok(short_usable == 0, "malloc_usable_size >= requested for every size (%zu short)", short_usable);
    ok(mymalloc_check() == 0, "heap sound after writing every block's whole usable area");
    for (size_t i = 0; i < count; i++)
        if (p[i] != NULL && !has_pattern(p[i], malloc_usable_size(p[i]), (unsigned)i))
            clobbered++;
    ok(clobbered == 0, "no usable area overlaps another (%zu clobbered)", clobbered);
    for (size_t i = 0; i < count; i += 2)
        free(p[i]);
    for (size_t i = 1; i < count; i += 2)
        free(p[i]);
    free(p);
    free(n);
    ok(mymalloc_check() == 0, "heap sound after freeing them all");
}

/* ---- mallopt ---- */

static void test_mallopt(void)
{
    ok(mallopt(M_MMAP_THRESHOLD, 64 * 1024) == 1, "mallopt(M_MMAP_THRESHOLD, 64 KiB) -> 1");
    size_t hblks = mapped_blocks();
    void *p = launder(malloc(100 * KIB));
    ok(mapped_blocks() == hblks + 1, "with a 64 KiB threshold malloc(100 KiB) is mmapped");
    free(p);
    ok(mallopt(M_MMAP_THRESHOLD, -1) == 0, "mallopt(M_MMAP_THRESHOLD, -1) -> 0");
    ok(mallopt(M_MMAP_THRESHOLD, 64 * 1024 * 1024) == 0, "mallopt(M_MMAP_THRESHOLD, 64 MiB) -> 0");
    ok(mallopt(M_TRIM_THRESHOLD, -1) == 1, "mallopt(M_TRIM_THRESHOLD, -1) -> 1");
    ok(mallopt(M_TOP_PAD, -5) == 0, "mallopt(M_TOP_PAD, -5) -> 0");
    ok(mallopt(M_MMAP_MAX, -1) == 0, "mallopt(M_MMAP_MAX, -1) -> 0");

    ok(mallopt(M_MMAP_MAX, 0) == 1, "mallopt(M_MMAP_MAX, 0) -> 1");
    hblks = mapped_blocks();
    p = launder(malloc(MIB));
    int fine = p != NULL && mapped_blocks() == hblks;
    if (p != NULL)
        memset(p, 0x77, MIB);
    ok(fine, "with M_MMAP_MAX 0 a 1 MiB malloc comes from the heap (mapped blocks %zu -> %zu)", hblks,
       mapped_blocks());
    free(p);
    ok(mallopt(M_MMAP_MAX, 65536) == 1, "mallopt(M_MMAP_MAX, 65536) -> 1");

    ok(mallopt(12345, 1) == 0, "mallopt(12345, 1) -> 0 (unknown parameter)");
    ok(mallopt(M_MXFAST, 64) == 1 && mallopt(M_MXFAST, 1000) == 0, "M_MXFAST accepted within 0..160 only");

    ok(default_thresholds(), "defaults restored");
    hblks = mapped_blocks();
    p = launder(malloc(MIB));
    size_t during = mapped_blocks();
    free(p);
    ok(during == hblks + 1 && mapped_blocks() == hblks, "after restoring, 1 MiB is mmapped again");
    p = launder(malloc(100 * KIB));
    ok(mapped_blocks() == hblks, "after restoring, 100 KiB comes from the heap again");
    free(p);
}

/* ---- statistics ---- */

static void test_mallinfo(void)
{
    struct mallinfo2 before = mallinfo2();
    void *p = launder(malloc(MIB));
    struct mallinfo2 during = mallinfo2();
    free(p);
    struct mallinfo2 after = mallinfo2();
    ok(during.hblks == before.hblks + 1 && during.hblkhd >= before.hblkhd + MIB &&
       during.hblkhd <= before.hblkhd + MIB + 2 * page_size(),
       "mallinfo2 counts a 1 MiB allocation in hblks/hblkhd (%zu/%zu -> %zu/%zu)", before.hblks,
       before.hblkhd, during.hblks, during.hblkhd);
    ok(after.hblks == before.hblks && after.hblkhd == before.hblkhd, "and forgets it after free");

    before = mallinfo2();
    void *q[8];
    size_t expect = 0;
    for (int i = 0; i < 8; i++) {
        q[i] = launder(malloc(hide(100 + 700 * (size_t)i)));
        expect += malloc_usable_size(q[i]) + 8;
    }
    during = mallinfo2();
    ok(during.uordblks == before.uordblks + expect, "mallinfo2 uordblks grows by the blocks allocated (%zu, expected %zu)",
       during.uordblks - before.uordblks, expect);
    ok(during.uordblks + during.fordblks == during.arena && during.keepcost <= during.fordblks,
       "uordblks + fordblks == arena, keepcost <= fordblks");
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"   /* mallinfo() is tested on purpose */
    struct mallinfo m1 = mallinfo();
#pragma GCC diagnostic pop
    struct mallinfo2 m2 = mallinfo2();
    ok((size_t)m1.arena == m2.arena && (size_t)m1.ordblks == m2.ordblks && (size_t)m1.hblks == m2.hblks &&
       (size_t)m1.hblkhd == m2.hblkhd && (size_t)m1.uordblks == m2.uordblks &&
       (size_t)m1.fordblks == m2.fordblks && (size_t)m1.keepcost == m2.keepcost &&
       (size_t)m1.usmblks == m2.usmblks,
       "mallinfo agrees with mallinfo2");
    for (int i = 0; i < 8; i++)
        free(q[i]);
    after = mallinfo2();
    ok(after.uordblks == before.uordblks, "uordblks back after freeing them (%zu vs %zu)", after.uordblks,
       before.uordblks);
}

static void test_malloc_stats(void)
{
    int fds[2];
    char text[4096];
    size_t got = 0;

    if (pipe(fds) != 0) {
        skip(3, "pipe failed");
        return;
    }
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
    malloc_stats();
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fds[1]);
    for (;;) {
        ssize_t r = read(fds[0], text + got, sizeof text - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fds[0]);
    text[got] = '\0';
    ok(got > 0, "malloc_stats writes on stderr (%zu bytes)", got);
    ok(strstr(text, "system bytes") != NULL, "malloc_stats reports \"system bytes\"");
    ok(strstr(text, "in use bytes") != NULL, "malloc_stats reports \"in use bytes\"");
}

/* ---- C23 sized frees ---- */

static void test_sized_free(void)
{
    unsigned char *p = launder(malloc(200));
    size_t block = malloc_usable_size(p) + 8;
    fill_pattern(p, 200, 7);
    size_t used = mallinfo2().uordblks;
    errno = EPERM;
    free_sized(launder(p), 200);
    int e = errno_now();
    size_t fell = used - mallinfo2().uordblks;
    ok(fell == block && e == EPERM, "free_sized(p, 200) frees the block and keeps errno (heap use fell by %zu)", fell);
    ok(mymalloc_check() == 0, "heap sound after free_sized");
    p = launder(malloc(200));
    int fine = p != NULL;
    if (fine) {
        fill_pattern(p, 200, 8);
        fine = has_pattern(p, 200, 8);
    }
    ok(fine, "malloc(200) after free_sized works");
    free(p);

    size_t hblks = mapped_blocks();
    p = launder(malloc(MIB));
    size_t during = mapped_blocks();
    free_sized(launder(p), MIB);
    ok(during == hblks + 1 && mapped_blocks() == hblks, "free_sized unmaps an mmapped block");

    p = launder(aligned_alloc(64, 256));
    block = malloc_usable_size(p) + 8;
    used = mallinfo2().uordblks;
    errno = EPERM;
    free_aligned_sized(launder(p), 64, 256);
    e = errno_now();
    fell = used - mallinfo2().uordblks;
    ok(fell == block && e == EPERM, "free_aligned_sized(p, 64, 256) frees the block and keeps errno");
    ok(mymalloc_check() == 0, "heap sound after free_aligned_sized");
    p = launder(aligned_alloc(64, 256));
    ok(p != NULL && aligned_to(p, 64), "aligned_alloc(64, 256) after free_aligned_sized works");
    free(p);

    p = launder(aligned_alloc(4096, 300000));
    during = mapped_blocks();
    free_aligned_sized(launder(p), 4096, 300000);
    ok(p != NULL && during == hblks + 1 && mapped_blocks() == hblks, "free_aligned_sized unmaps an mmapped block");

    free_sized(NULL, 0);
    free_aligned_sized(NULL, 64, 0);
    ok(1, "free_sized(NULL, 0) and free_aligned_sized(NULL, 64, 0) return");
}

/* ---- version ---- */

static void test_version(void)
{
    char built[64];
    const char *v = mymalloc_version();
    ok(v != NULL && strcmp(v, MYMALLOC_VERSION_STRING) == 0, "mymalloc_version() == \"%s\" (got \"%s\")",
       MYMALLOC_VERSION_STRING, v != NULL ? v : "(null)");
    snprintf(built, sizeof built, "%d.%d.%d", MYMALLOC_VERSION_MAJOR, MYMALLOC_VERSION_MINOR,
             MYMALLOC_VERSION_PATCH);
    ok(strcmp(built, MYMALLOC_VERSION_STRING) == 0 &&
       MYMALLOC_VERSION_NUMBER == MYMALLOC_VERSION_MAJOR * 10000 + MYMALLOC_VERSION_MINOR * 100 +
                                  MYMALLOC_VERSION_PATCH &&
       MYMALLOC_VERSION_MINOR < 100 && MYMALLOC_VERSION_PATCH < 100,
       "version macros agree (number %d, parts %s)", MYMALLOC_VERSION_NUMBER, built);
}

int main(void)
{
    default_thresholds();
    diag("mymalloc %s: API contract", mymalloc_version());  /* stdout's buffer gets allocated here */
    test_malloc_zero();
    test_free_errno();
    test_huge_malloc();
    test_calloc_overflow();
    test_calloc_dirty();
    test_realloc_contract();
    test_posix_memalign();
    test_aligned_alloc();
    test_memalign_valloc();
    test_usable_sizes();
    test_mallopt();
    test_mallinfo();
    test_malloc_stats();
    test_sized_free();
    test_version();
    return done_with_check("mymalloc_check() == 0 at the end");
}
