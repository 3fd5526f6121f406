/* coalesce.c - splitting and coalescing: freed neighbours merge into one
 * block whatever the order of the frees, a block next to the top merges into
 * it, a big free block is split front to back, the best fit is chosen among
 * free blocks of different sizes, and the small classes hand back exactly the
 * block that was freed.
 *
 * Each scenario first takes every free block out of the bins (they are kept
 * allocated until the scenario ends), so its own blocks are carved from the
 * top one after another and the bins hold only what the scenario frees. */
#include "util.h"

static void *xmalloc(size_t n) { return launder(malloc(n)); }
/* free() with the pointer hidden: the tests compare later allocations with it. */
static void release(void *p) { free(launder(p)); }

/* Block size for a request of n bytes, as block.h lays it out. */
static size_t block_for(size_t n)
{
    size_t s = (n + 8 + 15) & ~(size_t)15;
    return s < 32 ? 32 : s;
}
static size_t bin_blocks(void) { struct mallinfo2 m = mallinfo2(); return m.ordblks - (m.keepcost != 0); }
static char *at(void *p, size_t offset) { return (char *)p + offset; }

static uint64_t rng_state = 0x853c49e6748fea9bu;
static uint32_t rng(void) { return lcg_next(&rng_state); }

/* ---- neighbours merge whatever the order of the frees ---- */

static void test_free_orders(void)
{
    static const struct { const char *name; int order[3]; } orders[] = {
        { "a, c, b", { 0, 2, 1 } },
        { "a, b, c", { 0, 1, 2 } },
        { "c, b, a", { 2, 1, 0 } },
        { "b, a, c", { 1, 0, 2 } },
        { "c, a, b", { 2, 0, 1 } },
    };
    static const size_t req[4] = { 200, 200, 200, 200 };   /* a, b, c, guard */

    for (size_t o = 0; o < sizeof orders / sizeof orders[0]; o++) {
        void *blk[4];
        if (!adjacent_or_fail(blk, req, 4, BINS_EMPTY, 2, "free order %s: could not get four adjacent blocks",
                              orders[o].name))
            continue;
        size_t total = 3 * block_bytes(blk[0]);
        for (int i = 0; i < 3; i++)
            memset(blk[orders[o].order[i]], 0x5c, 200);
        for (int i = 0; i < 3; i++)
            release(launder(blk[orders[o].order[i]]));
        ok(bin_blocks() == 1 && bin_bytes() == total,
           "free order %s: a, b, c make one free block of %zu bytes (bins: %zu blocks, %zu bytes)",
           orders[o].name, total, bin_blocks(), bin_bytes());
        void *p = xmalloc(total - 8);
        ok(p == blk[0] && bin_bytes() == 0, "free order %s: malloc(%zu) needing all three returns a",
           orders[o].name, total - 8);
        if (p != NULL)
            memset(p, 0x6d, total - 8);
        release(p);
        release(blk[3]);
        free_junk();
        ok(mymalloc_check() == 0, "free order %s: heap sound", orders[o].name);
    }
}

/* Two free blocks with a busy one between stay apart until it is freed. */
static void test_no_false_merge(void)
{
    void *blk[4];
    static const size_t req[4] = { 300, 300, 300, 16 };

    if (!adjacent_or_fail(blk, req, 4, BINS_EMPTY, 1, "could not get four adjacent blocks"))
        return;
    size_t one = block_bytes(blk[0]);
    release(blk[0]);
    release(blk[2]);
    int apart = bin_blocks() == 2 && bin_bytes() == 2 * one;
    void *p = xmalloc(2 * one - 8);   /* fits neither: from the top */
    ok(apart && p != blk[0] && p != blk[2] && bin_bytes() == 2 * one,
       "free blocks separated by a busy one do not merge (a request for both comes from the top)");
    release(p);
    release(blk[1]);
    ok(bin_blocks() == 1 && bin_bytes() == 3 * one && mymalloc_check() == 0,
       "freeing the middle one merges all three");
    release(blk[3]);
    free_junk();
}

/* ---- merging into the top ---- */

static void test_merge_into_top(void)
{
    void *blk[3];
    static const size_t req[3] = { 500, 700, 900 };
    int set = mallopt(M_TRIM_THRESHOLD, -1);   /* keep the top as it is */

    if (!adjacent_or_fail(blk, req, 3, BINS_EMPTY, 2, "could not get three adjacent blocks")) {
        mallopt(M_TRIM_THRESHOLD, 128 * 1024);
        return;
    }
    size_t top = mallinfo2().keepcost;
    size_t b1 = block_bytes(blk[1]), b2 = block_bytes(blk[2]);
    release(blk[2]);   /* the last block carved: its neighbour is the top */
    ok(set == 1 && mallinfo2().keepcost == top + b2 && bin_bytes() == 0,
       "the block below the top merges into it (top %zu -> %zu)", top, mallinfo2().keepcost);
    release(blk[1]);
    ok(mallinfo2().keepcost == top + b1 + b2 && bin_bytes() == 0, "and so does the one below that");
    void *p = xmalloc(b1 + b2 - 8);
    ok(p == blk[1] && mymalloc_check() == 0, "the top is carved again from where they were");
    release(p);
    release(blk[0]);
    free_junk();
    mallopt(M_TRIM_THRESHOLD, 128 * 1024);
}

/* Blocks carved one after another from the top and freed in a random order
 * all end up back in it. */
static void test_all_back_to_top(void)
{
    enum { N = 200 };
    void *p[N];
    size_t sum = 0;

    /* A top big enough for all of them (so the heap need not grow), kept big. */
    int set = mallopt(M_TRIM_THRESHOLD, -1) && mallopt(M_MMAP_MAX, 0);
    release(xmalloc(1024 * KIB));
    set = set && mallopt(M_MMAP_MAX, 65536);
    drain_bins();
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < N; i++) {
        p[i] = xmalloc(rng() % 3000);
        sum += block_bytes(p[i]);
    }
    struct mallinfo2 carved = mallinfo2();
    ok(set && carved.arena == before.arena && carved.keepcost + sum == before.keepcost,
       "%d blocks (%zu bytes) carved from the top without growing the heap", N, sum);
    for (int i = N; i > 1; i--) {
        int j = (int)(rng() % (unsigned)i);
        void *t = p[i - 1];
        p[i - 1] = p[j];
        p[j] = t;
    }
    size_t most_bins = 0;
    int halfway = 0;
    for (int i = 0; i < N; i++) {
        release(p[i]);
        if (bin_blocks() > most_bins)
            most_bins = bin_blocks();
        if (i == N / 2)
            halfway = mymalloc_check();
    }
    size_t end = mallinfo2().keepcost;
    ok(bin_bytes() == 0 && end == before.keepcost,
       "freed in a random order they all merge back into the top (top %zu -> %zu, at most %zu free blocks on the way)",
       before.keepcost, end, most_bins);
    ok(halfway == 0 && mymalloc_check() == 0, "heap sound halfway and after they merged back");
    free_junk();
    ok(mallopt(M_TRIM_THRESHOLD, 128 * 1024) == 1, "trim threshold restored");
}

/* ---- splitting ---- */

static void test_split(void)
{
    void *blk[2];
    static const size_t req[2] = { 4000, 32 };   /* big, guard */

    if (!adjacent_or_fail(blk, req, 2, BINS_EMPTY, 4, "could not get two adjacent blocks"))
        return;
    char *big = blk[0];
    size_t size = block_bytes(big);
    release(big);
    char *p = xmalloc(100);
    ok(p == big && bin_bytes() == size - block_for(100),
       "a small request is served from the start of the big free block, the rest stays free");
    char *q = xmalloc(200);
    ok(q == big + block_for(100) && bin_bytes() == size - block_for(100) - block_for(200),
       "the next request is served right after it");
    size_t rest = size - block_for(100) - block_for(200);
    char *r = xmalloc(rest - 8);
    ok(r == q + block_for(200) && bin_bytes() == 0 && block_bytes(r) == rest,
       "a request for exactly the remainder takes it whole");
    memset(p, 1, 100);
    memset(q, 2, 200);
    memset(r, 3, rest - 8);
    ok(mymalloc_check() == 0, "heap sound after splitting");
    release(p);
    release(q);
    release(r);
    ok(bin_blocks() == 1 && bin_bytes() == size, "freed again, the three pieces are one block");

    /* A remainder under 32 bytes is not split off: the whole block is handed out. */
    p = xmalloc(size - 8 - 16);
    ok(p == big && bin_bytes() == 0 && malloc_usable_size(p) == size - 8,
       "a request leaving less than a minimum block takes the whole block (usable %zu)", malloc_usable_size(p));
    release(p);
    release(blk[1]);
    free_junk();
    ok(mymalloc_check() == 0, "heap sound after the split scenario");
}

/* ---- best fit ---- */

static void test_best_fit(void)
{
    static const struct { const char *name; int order[3]; } orders[] = {
        { "2000, 3000, 2500", { 0, 1, 2 } },
        { "2500, 3000, 2000", { 2, 1, 0 } },
        { "3000, 2000, 2500", { 1, 0, 2 } },
    };
    /* A, guard, B, guard, C, guard */
    static const size_t req[6] = { 2000, 32, 3000, 32, 2500, 32 };

    for (size_t o = 0; o < sizeof orders / sizeof orders[0]; o++) {
        void *blk[6];
        if (!adjacent_or_fail(blk, req, 6, BINS_EMPTY, 3, "best fit (%s): could not get adjacent blocks",
                              orders[o].name))
            continue;
        void *sized[3] = { blk[0], blk[2], blk[4] };   /* 2000, 3000, 2500 */
        for (int i = 0; i < 3; i++)
            release(sized[orders[o].order[i]]);
        void *p = xmalloc(2400);
        ok(p == sized[2], "best fit (freed %s): malloc(2400) gets the 2500-byte block", orders[o].name);
        void *q = xmalloc(2900);
        ok(q == sized[1], "best fit (freed %s): then malloc(2900) gets the 3000-byte block", orders[o].name);
        void *r = xmalloc(1900);
        ok(r == sized[0], "best fit (freed %s): then malloc(1900) gets the 2000-byte block", orders[o].name);
        release(p);
        release(q);
        release(r);
        for (int i = 1; i < 6; i += 2)
            release(blk[i]);
        free_junk();
    }

    /* Nothing fits: the request comes from the top and the bins stay as they were. */
    void *blk[6];
    if (adjacent_or_fail(blk, req, 6, BINS_EMPTY, 0, "could not get adjacent blocks")) {
        release(blk[0]);
        release(blk[2]);
        release(blk[4]);
        size_t in_bins = bin_bytes();
        void *p = xmalloc(3500);
        ok(p != blk[0] && p != blk[2] && p != blk[4] && bin_bytes() == in_bins,
           "malloc(3500) with free blocks of 2000, 3000, 2500 leaves them alone");
        release(p);
        for (int i = 1; i < 6; i += 2)
            release(blk[i]);
    }
    free_junk();

    /* Two blocks in the same ranged bin (2048..2559 bytes): the smaller fit wins
     * whichever was freed first. */
    static const size_t req2[4] = { 2100, 32, 2500, 32 };
    for (int order = 0; order < 2; order++) {
        if (!adjacent_or_fail(blk, req2, 4, BINS_EMPTY, 1, "could not get adjacent blocks"))
            continue;
        release(blk[order == 0 ? 0 : 2]);
        release(blk[order == 0 ? 2 : 0]);
        void *p = xmalloc(2050);
        void *q = xmalloc(2200);
        ok(p == blk[0] && q == blk[2],
           "same bin, %s freed first: malloc(2050) gets the 2100 block, malloc(2200) the 2500 one",
           order == 0 ? "2100" : "2500");
        release(p);
        release(q);
        release(blk[1]);
        release(blk[3]);
        free_junk();
    }
    ok(mymalloc_check() == 0, "heap sound after the best-fit scenarios");
}

/* ---- exact small classes ---- */

static void test_small_classes(void)
{
    void *blk[4];
    static const size_t req[2] = { 40, 32 };   /* a 48-byte block, guard */

    if (adjacent_or_fail(blk, req, 2, BINS_EMPTY, 1, "could not get adjacent blocks")) {
        void *p = blk[0];
        int sized = block_bytes(p) == 48;
        release(p);
        void *q = xmalloc(40);
        ok(sized && q == p, "a freed 48-byte block comes back for malloc(40)");
        release(q);
        q = xmalloc(33);
        ok(q == p, "and for malloc(33), the same class");
        release(q);
        release(blk[1]);
    }
    free_junk();

    /* LIFO within a class. */
    static const size_t req4[4] = { 40, 32, 40, 32 };
    if (adjacent_or_fail(blk, req4, 4, BINS_EMPTY, 0, "could not get adjacent blocks")) {
        release(blk[0]);
        release(blk[2]);
        void *p = xmalloc(40);
        void *q = xmalloc(40);
        ok(p == blk[2] && q == blk[0], "a small class hands blocks back last freed first");
        release(p);
        release(q);
        release(blk[1]);
        release(blk[3]);
    }
    free_junk();

    /* A 64-byte block serves a 48-byte request whole: 16 bytes cannot stand alone. */
    static const size_t req64[2] = { 56, 32 };
    if (adjacent_or_fail(blk, req64, 2, BINS_EMPTY, 0, "could not get adjacent blocks")) {
        release(blk[0]);
        void *p = xmalloc(40);
        ok(p == blk[0] && malloc_usable_size(p) == 56 && bin_bytes() == 0,
           "malloc(40) takes a free 64-byte block whole (usable %zu)", p ? malloc_usable_size(p) : 0);
        release(p);
        release(blk[1]);
    }
    free_junk();

    /* A 128-byte block split for a 48-byte request: the 80-byte rest serves the next. */
    static const size_t req128[2] = { 120, 32 };
    if (adjacent_or_fail(blk, req128, 2, BINS_EMPTY, 0, "could not get adjacent blocks")) {
        release(blk[0]);
        void *p = xmalloc(40);
        void *q = xmalloc(72);
        ok(p == blk[0] && q == at(blk[0], 48) && bin_bytes() == 0,
           "a free 128-byte block is split into 48 + 80 for malloc(40) then malloc(72)");
        release(p);
        release(q);
        release(blk[1]);
    }
    free_junk();
    ok(mymalloc_check() == 0, "heap sound after the small-class scenarios");
}

int main(void)
{
    /* These tests watch where blocks land: no per-thread cache between
     * free() and the heap. */
    mallopt(M_MYMALLOC_TCACHE, 0);
    default_thresholds();
    diag("mymalloc %s: split and coalesce", mymalloc_version());
    test_free_orders();
    test_no_false_merge();
    test_merge_into_top();
    test_all_back_to_top();
    test_split();
    test_best_fit();
    test_small_classes();
    return done_with_check("mymalloc_check() == 0 at the end");
}
