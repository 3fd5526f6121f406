/* trim.c - freeing the blocks at the end of the brk heap really lowers the
 * break: automatically past the trim threshold (all but 4 MiB at once, the
 * rest after the decay; all at once with a decay of 0), on demand with
 * malloc_trim(), and not at all when mallopt(M_TRIM_THRESHOLD, -1) turned
 * trimming off. */
#include "util.h"

#define BLOCK 4000                       /* well below the mmap threshold */
#define COUNT 2200                       /* 2200 * 4016 bytes: about 8.4 MiB */
#define TOP_PAD (128 * KIB)
#define TRIM_THRESHOLD (128 * KIB)
#define SLACK (512 * KIB)
#define TOP_KEPT (4 * MIB)                  /* kept at once for the decay */

static char *blocks[COUNT];              /* static: no allocation of our own */

static char *brk_now(void) { return (char *)sbrk(0); }

/* Allocate COUNT blocks and write each; 1 if all succeeded. */
static int grow(void)
{
    int all = 1;
    for (size_t i = 0; i < COUNT; i++) {
        blocks[i] = malloc(BLOCK);
        if (blocks[i] == NULL) {
            all = 0;
            continue;
        }
        memset(blocks[i], (int)(i & 0xff), BLOCK);
    }
    return all;
}

static int verify(void)
{
    for (size_t i = 0; i < COUNT; i++) {
        if (blocks[i] == NULL)
            return 0;
        for (size_t j = 0; j < BLOCK; j += 97)
            if ((unsigned char)blocks[i][j] != (i & 0xff))
                return 0;
        if ((unsigned char)blocks[i][BLOCK - 1] != (i & 0xff))
            return 0;
    }
    return 1;
}

/* Heap operations (blocks too big for the caches): the decay is looked at
 * every few of them. */
static int heap_ops(void)
{
    for (int i = 0; i < 16; i++) {
        char *p = malloc(20000);
        if (p == NULL)
            return 0;
        p[0] = 1;
        free(p);
    }
    return 1;
}

/* Reverse order: every free() lands on the block right below the top. */
static void release_all(void)
{
    for (size_t i = COUNT; i-- > 0;) {
        free(blocks[i]);
        blocks[i] = NULL;
    }
}

int main(void)
{
    /* The settings under test, whatever the environment says; set before
     * stdio allocates its buffer, so that buffer starts the brk heap. */
    int set = mallopt(M_MMAP_THRESHOLD, 128 * 1024) == 1 && mallopt(M_MMAP_MAX, 65536) == 1 &&
              mallopt(M_TOP_PAD, (int)TOP_PAD) == 1 && mallopt(M_TRIM_THRESHOLD, (int)TRIM_THRESHOLD) == 1 &&
              mallopt(M_MYMALLOC_DECAY, 200) == 1;
#ifdef MM_DISABLE_SBRK
    (void)set;
    plan_skip_all("this build never uses brk (--disable-sbrk); segment trimming is tested in mmap_fallback");
#endif
    plan(24);
    ok(set, "mallopt sets the default mmap threshold, mmap max, top pad and trim threshold, and a decay of 200 ms");
    /* stdio has its buffer now: nothing allocates from here on except the
     * blocks below, so they are the last blocks of the heap. */
    char *start = brk_now();
    diag("starting break %p", (void *)start);

    ok(grow(), "%d blocks of %d bytes allocated", COUNT, BLOCK);
    char *high = brk_now();
    ok(high >= start + 8 * MIB, "the break grew by at least 8 MiB (%zu KiB)", (size_t)(high - start) / KIB);
    int inside = 1;
    for (size_t i = 0; i < COUNT; i++)
        if (blocks[i] == NULL || blocks[i] + BLOCK > high)
            inside = 0;
    ok(inside, "every block lies below the break (a heap block, not a mapping)");
    ok(verify(), "every block kept its contents");

    release_all();
    char *kept = brk_now();
    ok(kept < high, "freeing the blocks lowered the break");
    ok(kept >= start + TOP_KEPT && kept <= start + TOP_PAD + TOP_KEPT + SLACK,
       "decay 200 ms: the break came down to 4 MiB past the pad at once (%+ld KiB from the start)",
       (long)(kept - start) / (long)KIB);
    sleep_ms(300);
    ok(heap_ops(), "300 ms later, 16 heap operations");
    char *after = brk_now();
    ok(after <= start + TOP_PAD + TRIM_THRESHOLD + SLACK,
       "the break came back to within %zu KiB of the start once the decay was over (%+ld KiB)",
       (TOP_PAD + TRIM_THRESHOLD + SLACK) / KIB, (long)(after - start) / (long)KIB);
    ok(mymalloc_check() == 0, "heap sound after the automatic trim");

    int released = malloc_trim(0);
    char *trimmed = brk_now();
    ok(released == 1, "malloc_trim(0) returned 1 (the top held more than a page)");
    ok(trimmed < after, "malloc_trim(0) lowered the break further");
    ok(trimmed <= start, "the break is at most where it started (%+ld KiB)", (long)(trimmed - start) / (long)KIB);
    ok(malloc_trim(0) == 0 && brk_now() == trimmed, "a second malloc_trim(0) has nothing to release");

    /* Decay 0: all of it at once. */
    ok(mallopt(M_MYMALLOC_DECAY, 0) == 1, "mallopt(M_MYMALLOC_DECAY, 0) accepted");
    char *from = brk_now();
    ok(grow() && verify() && brk_now() >= from + 8 * MIB, "the blocks allocated again");
    release_all();
    ok(brk_now() <= from + TOP_PAD + TRIM_THRESHOLD + SLACK,
       "decay 0: freeing them brought the break back at once (%+ld KiB)", (long)(brk_now() - from) / (long)KIB);
    malloc_trim(0);

    /* Automatic trimming off. */
    ok(mallopt(M_TRIM_THRESHOLD, -1) == 1, "mallopt(M_TRIM_THRESHOLD, -1) accepted");
    char *base = brk_now();
    ok(grow() && verify(), "the blocks allocated again");
    high = brk_now();
    ok(high >= base + 8 * MIB, "the break grew again by at least 8 MiB (%zu KiB)", (size_t)(high - base) / KIB);
    release_all();
    ok(brk_now() == high, "with the trim threshold at -1 freeing everything leaves the break high");
    released = malloc_trim(0);
    char *low = brk_now();
    ok(released == 1, "malloc_trim(0) returned 1");
    ok(low <= base + sysconf(_SC_PAGESIZE) && low < high - 8 * MIB,
       "malloc_trim(0) brought the break back down (%+ld KiB from before the growth)",
       (long)(low - base) / (long)KIB);
    return done_with_check("mymalloc_check() reports a sound heap");
}
