/* align.c - alignment across sizes and alignments from 16 bytes to 1 MiB:
 * posix_memalign, aligned_alloc and memalign give aligned blocks with enough
 * usable room, many of them alive at once hold their contents, frees in a
 * mixed order leave a sound heap, and realloc of an aligned block keeps its
 * contents. */
#include "util.h"

/* A fixed-seed generator: the same sequence on every run. */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint32_t rng(void) { return lcg_next(&rng_state); }

enum fn { FN_POSIX_MEMALIGN, FN_ALIGNED_ALLOC, FN_MEMALIGN, FN_COUNT };
static const char *const fn_name[FN_COUNT] = { "posix_memalign", "aligned_alloc", "memalign" };

static void *allocate(enum fn f, size_t alignment, size_t size)
{
    void *p = NULL;
    switch (f) {
    case FN_POSIX_MEMALIGN:
        if (posix_memalign(&p, alignment, size) != 0)
            p = NULL;
        break;
    case FN_ALIGNED_ALLOC:
        p = aligned_alloc(alignment, size);
        break;
    case FN_MEMALIGN:
        p = memalign(alignment, size);
        break;
    default:
        break;
    }
    return launder(p);
}

static const size_t sizes[] = { 0, 1, 15, 16, 17, 100, 1000, 4096, 10000, 100000, 130000, 200000, MIB };
enum { NSIZES = sizeof sizes / sizeof sizes[0] };

struct live {
    void *p;
    size_t size;
    unsigned seed;
};

/* For one alignment: every size through each function, all alive together,
 * then verified and freed in a shuffled order. */
static void test_alignment(size_t alignment, unsigned round)
{
    struct live blocks[FN_COUNT * NSIZES];
    size_t count = 0;

    for (int f = 0; f < FN_COUNT; f++) {
        int good = 1;
        size_t bad_size = 0;
        for (size_t s = 0; s < NSIZES; s++) {
            void *p = allocate((enum fn)f, alignment, sizes[s]);
            if (p == NULL || !aligned_to(p, alignment) || malloc_usable_size(p) < sizes[s]) {
                if (good)
                    bad_size = sizes[s];
                good = 0;
                free(p);   /* a misaligned block is still a block */
                continue;
            }
            blocks[count].p = p;
            blocks[count].size = sizes[s];
            blocks[count].seed = round * 100 + (unsigned)(f * NSIZES + s);
            fill_pattern(p, sizes[s], blocks[count].seed);
            count++;
        }
        if (!ok(good, "%s(alignment %zu): aligned, usable >= size for all %d sizes", fn_name[f], alignment,
                (int)NSIZES))
            diag("first bad size %zu", bad_size);
    }

    size_t clobbered = 0;
    for (size_t i = 0; i < count; i++)
        if (!has_pattern(blocks[i].p, blocks[i].size, blocks[i].seed))
            clobbered++;
    int problems = mymalloc_check();
    ok(clobbered == 0 && problems == 0, "alignment %zu: %zu blocks alive hold their patterns, heap sound (%zu clobbered, %d problems)",
       alignment, count, clobbered, problems);

    /* Free in a shuffled order, checking the survivors halfway. */
    for (size_t i = count; i > 1; i--) {
        size_t j = rng() % i;
        struct live t = blocks[i - 1];
        blocks[i - 1] = blocks[j];
        blocks[j] = t;
    }
    for (size_t i = 0; i < count / 2; i++)
        free(blocks[i].p);
    clobbered = 0;
    for (size_t i = count / 2; i < count; i++)
        if (!has_pattern(blocks[i].p, blocks[i].size, blocks[i].seed))
            clobbered++;
    for (size_t i = count / 2; i < count; i++)
        free(blocks[i].p);
    problems = mymalloc_check();
    ok(clobbered == 0 && problems == 0, "alignment %zu: freed in a mixed order, survivors intact, heap sound", alignment);
}

/* Random functions, alignments and sizes, allocated and freed in a random
 * order with up to 64 alive. */
static void test_mixed(void)
{
    enum { SLOTS = 64, STEPS = 3000 };
    struct live slot[SLOTS];
    size_t align_of[SLOTS];
    size_t misaligned = 0, clobbered = 0, failed = 0;

    memset(slot, 0, sizeof slot);
    for (int step = 0; step < STEPS; step++) {
        unsigned i = rng() % SLOTS;
        if (slot[i].p != NULL) {
            if (!has_pattern(slot[i].p, slot[i].size, slot[i].seed))
                clobbered++;
            free(slot[i].p);
            slot[i].p = NULL;
            continue;
        }
        size_t alignment = (size_t)16 << (rng() % 13);          /* 16 .. 64 KiB */
        size_t size = rng() % 3 == 0 ? rng() % 64 : rng() % 20000;
        if (rng() % 50 == 0)
            size = 100 * KIB + rng() % (200 * KIB);                /* now and then a mapped one */
        void *p = allocate((enum fn)(rng() % FN_COUNT), alignment, size);
        if (p == NULL) {
            failed++;
            continue;
        }
        if (!aligned_to(p, alignment) || malloc_usable_size(p) < size)
            misaligned++;
        slot[i].p = p;
        slot[i].size = size;
        slot[i].seed = (unsigned)step;
        align_of[i] = alignment;
        fill_pattern(p, size, slot[i].seed);
    }
    ok(failed == 0 && misaligned == 0, "mixed: %d random aligned allocations aligned and big enough (%zu failed, %zu bad)",
       STEPS, failed, misaligned);
    for (int i = 0; i < SLOTS; i++) {
        if (slot[i].p == NULL)
            continue;
        if (!has_pattern(slot[i].p, slot[i].size, slot[i].seed) || !aligned_to(slot[i].p, align_of[i]))
            clobbered++;
        free(slot[i].p);
    }
    ok(clobbered == 0, "mixed: every block held its pattern until freed (%zu clobbered)", clobbered);
    ok(mymalloc_check() == 0, "mixed: heap sound afterwards");
}

/* realloc of an aligned block keeps its contents, growing and shrinking, in
 * the heap and across the mmap threshold. */
static void test_realloc_aligned(void)
{
    static const size_t aligns[] = { 32, 64, 256, 4096, 65536, MIB };
    for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++) {
        size_t alignment = aligns[a];
        int good = 1;
        unsigned char *p = allocate(FN_ALIGNED_ALLOC, alignment, 1000);
        if (p == NULL || !aligned_to(p, alignment)) {
            ok(0, "aligned_alloc(%zu, 1000) for the realloc test", alignment);
            free(p);
            continue;
        }
        fill_pattern(p, 1000, 7);
        static const size_t steps[] = { 5000, 60000, 300000, 2 * MIB, 150000, 20000, 600 };
        size_t kept = 1000;
        for (size_t s = 0; s < sizeof steps / sizeof steps[0] && good; s++)
            good = resize_keeping(&p, steps[s], &kept) && has_pattern(p, kept, 7) && malloc_usable_size(p) >= steps[s];
        ok(good, "realloc of an aligned_alloc(%zu, 1000) block keeps its contents through grow and shrink", alignment);
        free(p);
    }

    /* A heap block from memalign shrinks in place and keeps its alignment. */
    unsigned char *p = allocate(FN_MEMALIGN, 4096, 8000);
    fill_pattern(p, 8000, 3);
    unsigned char *q = launder(realloc(p, 3000));
    ok(q == p && aligned_to(q, 4096) && has_pattern(q, 3000, 3),
       "realloc shrink of a memalign(4096, 8000) block stays in place");
    free(q);

    /* posix_memalign block grown (in place or moved): contents kept. */
    void *v = NULL;
    int r = posix_memalign(&v, 128, 777);
    p = launder(v);
    if (r == 0)
        fill_pattern(p, 777, 4);
    q = r == 0 ? launder(realloc(p, 77777)) : NULL;
    ok(q != NULL && has_pattern(q, 777, 4), "realloc of a posix_memalign(128, 777) block to 77777 keeps its contents");
    free(q);
    ok(mymalloc_check() == 0, "heap sound after the aligned reallocs");
}

int main(void)
{
    unsigned round = 0;
    default_thresholds();
    diag("mymalloc %s: alignments 16 B .. 1 MiB", mymalloc_version());
    for (size_t alignment = 16; alignment <= MIB; alignment *= 2)
        test_alignment(alignment, round++);
    test_mixed();
    test_realloc_aligned();
    return done_with_check("mymalloc_check() == 0 at the end");
}
