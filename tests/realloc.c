/* realloc.c - realloc keeps contents on every path: shrinking in place,
 * growing in place into a free neighbour or the top, moving when the
 * neighbour is in use, crossing the mmap threshold both ways, growing a
 * mapped block with mremap, many buffers grown in turn, and failing without
 * touching the block. */
#include "util.h"

#define DEFAULT_THRESHOLD (128 * 1024)

/* realloc with the pointer hidden from the compiler, which would otherwise
 * warn about (and reason about) the old pointer after the call. */
static void *resize(void *p, size_t n)
{
    return launder(realloc(launder(p), n));
}

static uint64_t rng_state = 0x2545f4914f6cdd1du;
static uint32_t rng(void) { return lcg_next(&rng_state); }

/* ---- shrinking ---- */

static void test_shrink(void)
{
    unsigned char *p = launder(malloc(1000));
    fill_pattern(p, 1000, 1);
    unsigned char *q = resize(p, 500);
    ok(q == p && has_pattern(q, 500, 1), "shrink 1000 -> 500 stays in place, contents kept");
    q = resize(q, 490);
    ok(q == p && has_pattern(q, 490, 1), "shrink 500 -> 490 (same block size) stays in place");
    q = resize(q, 1);
    ok(q == p && has_pattern(q, 1, 1), "shrink to 1 byte stays in place");
    size_t usable = malloc_usable_size(q);
    unsigned char *r = resize(q, usable);
    ok(r == p, "realloc to the current usable size stays in place");
    free(r);

    /* A big heap block (mappings off) shrinks in place too. */
    int set = mallopt(M_MMAP_MAX, 0);
    p = launder(malloc(300 * KIB));
    fill_pattern(p, 300 * KIB, 2);
    q = resize(p, 10 * KIB);
    ok(set == 1 && q == p && has_pattern(q, 10 * KIB, 2), "shrink of a 300 KiB heap block to 10 KiB stays in place");
    free(q);
    mallopt(M_MMAP_MAX, 65536);

    /* A mapped block shrunk but still above the threshold stays mapped, and
     * mremap shrinks a mapping where it is. */
    size_t hblks = mapped_blocks();
    p = launder(malloc(MIB));
    fill_pattern(p, MIB, 3);
    q = resize(p, 600 * KIB);
    ok(q == p && has_pattern(q, 600 * KIB, 3) && mapped_blocks() == hblks + 1,
       "shrink of a 1 MiB mapped block to 600 KiB stays in place in its mapping, contents kept");
    free(q);
    ok(mymalloc_check() == 0, "heap sound after the shrinks");
}

/* ---- growing in place into a free neighbour ---- */

static void test_grow_into_neighbour(void)
{
    void *blk[3];
    static const size_t req[3] = { 200, 200, 32 };   /* a, b, guard */

    if (!adjacent_or_fail(blk, req, 3, BINS_DRAINED_ONCE, 3, "could not get three adjacent blocks"))
        return;
    unsigned char *a = blk[0], *b = blk[1];
    size_t a_block = block_bytes(a), b_block = block_bytes(b);
    fill_pattern(a, 200, 4);
    free(b);
    unsigned char *q = resize(a, a_block + b_block - 8);
    ok(q == a && has_pattern(q, 200, 4) && block_bytes(q) == a_block + b_block,
       "realloc(a) to the size of a + b after free(b) grows in place, using all of b");
    ok(mymalloc_check() == 0, "heap sound after growing into the whole neighbour");

    /* Grow into part of a free neighbour: the rest stays free after it. */
    q = resize(q, 100);                /* gives back a tail: a free block after a */
    fill_pattern(q, 100, 5);
    size_t tail = bin_bytes();
    unsigned char *r = resize(q, 250);
    fill_pattern_range(r, 100, 250, 5);
    ok(r == a && has_pattern(r, 250, 5) && bin_bytes() == tail - (block_bytes(r) - 112),
       "realloc grows into part of the free neighbour, the rest stays in a bin");
    ok(mymalloc_check() == 0, "heap sound after growing into part of a neighbour");
    free(r);
    free(blk[2]);
    free_junk();
}

/* ---- growing in place into the top ---- */

static void test_grow_into_top(void)
{
    /* A big top that stays big: carve 512 KiB from the heap, give it back, no trimming. */
    int set = mallopt(M_TRIM_THRESHOLD, -1) && mallopt(M_MMAP_MAX, 0);
    free(launder(malloc(512 * KIB)));
    set = set && mallopt(M_MMAP_MAX, 65536);
    drain_bins();

    struct mallinfo2 before = mallinfo2();
    unsigned char *a = launder(malloc(1000));
    struct mallinfo2 after = mallinfo2();
    int from_top = after.arena == before.arena && before.keepcost - after.keepcost == block_bytes(a);
    ok(set && from_top && after.keepcost >= 256 * KIB,
       "a block carved from a big top (top %zu -> %zu bytes)", before.keepcost, after.keepcost);

    size_t size = 1000, moves = 0;
    int contents = 1;
    fill_pattern(a, size, 6);
    for (size_t n = 2000; n < 110 * KIB; n *= 2) {
        unsigned char *q = resize(a, n);
        if (q == NULL) {
            contents = 0;
            break;
        }
        if (q != a)
            moves++;
        if (!has_pattern(q, size, 6))
            contents = 0;
        fill_pattern_range(q, size, n, 6);
        a = q;
        size = n;
    }
    ok(moves == 0 && contents, "growing the block below the top 1000 -> %zu bytes stays in place (%zu moves)", size,
       moves);
    ok(mallinfo2().keepcost + block_bytes(a) == after.keepcost + 1008, "the top shrank by what the block grew");
    free(a);
    ok(mymalloc_check() == 0, "heap sound after growing into the top");

    /* With no pad and eager trimming the top is small: growing the block below
     * it needs the heap to grow, which on the brk heap is contiguous. */
    set = mallopt(M_TOP_PAD, 0) && mallopt(M_TRIM_THRESHOLD, 0);
    drain_bins();
    free(launder(malloc(64)));                  /* a free into the top trims it */
    a = launder(malloc(1000));
    fill_pattern(a, 1000, 7);
    char *brk_now = sbrk(0);
    size_t top = mallinfo2().keepcost;
    int on_brk = (char *)a < brk_now && (size_t)(brk_now - (char *)a) <= mallinfo2().arena;
    if (on_brk && set && top < 64 * KIB) {
        unsigned char *q = resize(a, 100 * KIB);
        ok(q == a && has_pattern(q, 1000, 7), "growing past a small top extends the brk heap in place (top was %zu)", top);
        a = q != NULL ? q : a;
    } else {
        skip(1, "the heap is not on brk (or the top is not small)");
    }
    free(a);
    set = mallopt(M_TOP_PAD, 128 * 1024) && mallopt(M_TRIM_THRESHOLD, 128 * 1024);
    ok(set && mymalloc_check() == 0, "heap sound, settings restored");
    free_junk();
}

/* ---- moving ---- */

static void test_move(void)
{
    void *blk[2];
    static const size_t req[2] = { 200, 200 };

    if (!adjacent_or_fail(blk, req, 2, BINS_DRAINED_ONCE, 1, "could not get two adjacent blocks"))
        return;
    unsigned char *a = blk[0], *b = blk[1];
    fill_pattern(a, 200, 8);
    fill_pattern(b, 200, 9);
    unsigned char *q = resize(a, 2000);
    ok(q != NULL && q != a && has_pattern(q, 200, 8) && has_pattern(b, 200, 9),
       "realloc with the neighbour in use moves the block, keeping its contents and the neighbour's");
    ok(mymalloc_check() == 0, "heap sound after the move");
    free(q);
    free(b);
    free_junk();
}

/* ---- across the mmap threshold ---- */

static void test_threshold(void)
{
    void *blk[2];
    static const size_t req[2] = { 100, 100 };
    size_t hblks = mapped_blocks();

    if (!adjacent_or_fail(blk, req, 2, BINS_DRAINED_ONCE, 3, "could not get two adjacent blocks"))
        return;
    unsigned char *a = blk[0], *b = blk[1];
    fill_pattern(a, 100, 10);
    fill_pattern(b, 100, 11);
    unsigned char *q = resize(a, 200 * KIB);
    int good = q != NULL && has_pattern(q, 100, 10) && mapped_blocks() == hblks + 1;
    ok(good, "small -> 200 KiB (neighbour in use) moves into a mapping, contents kept");
    if (q == NULL)
        q = a;
    fill_pattern_range(q, 100, 200 * KIB, 10);
    unsigned char *r = resize(q, 2 * MIB);
    good = r != NULL && has_pattern(r, 200 * KIB, 10) && mapped_blocks() == hblks + 1 && malloc_usable_size(r) >= 2 * MIB;
    ok(good, "200 KiB -> 2 MiB stays a mapping, contents kept");
    if (r == NULL)
        r = q;
    fill_pattern_range(r, 200 * KIB, 2 * MIB, 10);
    q = resize(r, 100);
    good = q != NULL && has_pattern(q, 100, 10) && mapped_blocks() == hblks && malloc_usable_size(q) < DEFAULT_THRESHOLD;
    ok(good, "2 MiB -> 100 bytes moves back into the heap, contents kept");
    ok(has_pattern(b, 100, 11) && mymalloc_check() == 0, "neighbour untouched, heap sound");
    free(q);
    free(b);
    free_junk();

    /* The same trip for a block that sits below the top: where it lands may
     * differ (the top may take it), the contents may not. */
    a = launder(malloc(100));
    fill_pattern(a, 100, 12);
    q = resize(a, 200 * KIB);
    good = q != NULL && has_pattern(q, 100, 12);
    if (good) {
        fill_pattern_range(q, 100, 200 * KIB, 12);
        r = resize(q, 2 * MIB);
        good = r != NULL && has_pattern(r, 200 * KIB, 12);
        q = r != NULL ? r : q;
    }
    if (good) {
        r = resize(q, 100);
        good = r != NULL && has_pattern(r, 100, 12);
        q = r != NULL ? r : q;
    }
    ok(good, "100 -> 200 KiB -> 2 MiB -> 100 from below the top keeps contents");
    free(q);
    ok(mapped_blocks() == hblks && mymalloc_check() == 0, "no mapping left behind, heap sound");
}

/* ---- mremap ---- */

static void test_mremap(void)
{
    size_t hblks = mapped_blocks();
    unsigned char *p = launder(malloc(256 * KIB));
    size_t size = 256 * KIB;
    int mapped = mapped_blocks() == hblks + 1;

    fill_pattern(p, size, 13);
    static const size_t steps[] = { MIB, 4 * MIB, 16 * MIB, 3 * MIB, 300 * KIB, 8 * MIB };
    int good = 1;
    size_t kept = size;
    for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
        if (!resize_keeping(&p, steps[s], &kept)) {
            good = 0;
            break;
        }
        struct mallinfo2 m = mallinfo2();
        if (!has_pattern(p, kept, 13) || m.hblks != hblks + 1 || m.hblkhd < steps[s] ||
            malloc_usable_size(p) < steps[s])
            good = 0;
        fill_pattern_range(p, kept, steps[s], 13);
        kept = steps[s];
    }
    ok(mapped && good, "a mapped block resized 256 KiB -> 1, 4, 16, 3 MiB, 300 KiB, 8 MiB stays one mapping, contents kept");
    free(p);
    ok(mapped_blocks() == hblks, "freed: no mapping left");
}

/* ---- many buffers, grown in turn ---- */

static void test_interleaved(void)
{
    enum { N = 48, ROUNDS = 40 };
    static const size_t cap = 300 * KIB;
    unsigned char *buf[N];
    size_t size[N];
    size_t bad = 0, failed = 0;

    for (int i = 0; i < N; i++) {
        size[i] = 1 + rng() % 64;
        buf[i] = launder(malloc(size[i]));
        fill_pattern(buf[i], size[i], (unsigned)i);
    }
    for (int round = 0; round < ROUNDS; round++) {
        for (int k = 0; k < N; k++) {
            int i = (int)(((unsigned)k * 29u + (unsigned)round * 7u) % N);   /* a different order each round */
            size_t n;
            if (rng() % 8 == 0 || size[i] > cap)
                n = 1 + rng() % (size[i] / 2 + 1);                           /* shrink */
            else
                n = size[i] + 1 + rng() % (size[i] + 4000);                   /* grow */
            unsigned char *q = resize(buf[i], n);
            if (q == NULL) {
                failed++;
                continue;
            }
            size_t kept = n < size[i] ? n : size[i];
            if (!has_pattern(q, kept, (unsigned)i))
                bad++;
            fill_pattern_range(q, kept, n, (unsigned)i);
            buf[i] = q;
            size[i] = n;
        }
        if (round % 8 == 7)
            for (int i = 0; i < N; i++)
                if (!has_pattern(buf[i], size[i], (unsigned)i))
                    bad++;
    }
    ok(failed == 0 && bad == 0, "%d buffers grown and shrunk in turn for %d rounds keep their contents (%zu bad, %zu failed)",
       N, ROUNDS, bad, failed);
    ok(mymalloc_check() == 0, "heap sound with the buffers alive");
    for (int i = 0; i < N; i++)
        free(buf[i]);
    ok(mymalloc_check() == 0, "heap sound after freeing them");
}

/* ---- failure ---- */

static void test_failure(void)
{
    static const size_t sizes[] = { 100, 5000, 300 * KIB };
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        unsigned char *p = launder(malloc(sizes[s]));
        fill_pattern(p, sizes[s], 14);
        errno = 0;
        void *q = resize(p, hide(SIZE_MAX / 2));
        int e = errno;
        int intact = has_pattern(p, sizes[s], 14);
        ok(q == NULL && e == ENOMEM && intact, "realloc(%zu-byte block, SIZE_MAX/2) -> NULL, ENOMEM, block intact",
           sizes[s]);
        q = resize(p, sizes[s] * 2);
        ok(q != NULL && has_pattern(q, sizes[s], 14), "and the block can still be reallocated");
        free(q);
    }
}

int main(void)
{
    /* These tests watch where blocks land: no per-thread cache between
     * free() and the heap. */
    mallopt(M_MYMALLOC_TCACHE, 0);
    default_thresholds();
    diag("mymalloc %s: realloc", mymalloc_version());
    test_shrink();
    test_grow_into_neighbour();
    test_grow_into_top();
    test_move();
    test_threshold();
    test_mremap();
    test_interleaved();
    test_failure();
    return done_with_check("mymalloc_check() == 0 at the end");
}
