/* trim.c - freeing the blocks at the end of the brk heap really lowers the
 * break: automatically past the trim threshold, on demand with malloc_trim(),
 * and not at all when mallopt(M_TRIM_THRESHOLD, -1) turned trimming off. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include "mymalloc.h"
/* tap.h defines helpers this test does not use. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "tap.h"
#pragma GCC diagnostic pop

#define KIB ((size_t)1024)
#define MIB (KIB * KIB)
#define BLOCK 4000                       /* well below the mmap threshold */
#define COUNT 2200                       /* 2200 * 4016 bytes: about 8.4 MiB */
#define TOP_PAD (128 * KIB)
#define TRIM_THRESHOLD (128 * KIB)
#define SLACK (512 * KIB)

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
              mallopt(M_TOP_PAD, (int)TOP_PAD) == 1 && mallopt(M_TRIM_THRESHOLD, (int)TRIM_THRESHOLD) == 1;
#ifdef MM_DISABLE_SBRK
    (void)set;
    plan_skip_all("this build never uses brk (--disable-sbrk); segment trimming is tested in mmap_fallback");
#endif
    plan(19);
    ok(set, "mallopt sets the default mmap threshold, mmap max, top pad and trim threshold");
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
    char *after = brk_now();
    ok(after < high, "freeing the blocks lowered the break");
    ok(after <= start + TOP_PAD + TRIM_THRESHOLD + SLACK,
       "the break came back to within %zu KiB of the start (%+ld KiB)",
       (TOP_PAD + TRIM_THRESHOLD + SLACK) / KIB, (long)(after - start) / (long)KIB);
    ok(mymalloc_check() == 0, "heap sound after the automatic trim");

    int released = malloc_trim(0);
    char *trimmed = brk_now();
    ok(released == 1, "malloc_trim(0) returned 1 (the top held more than a page)");
    ok(trimmed < after, "malloc_trim(0) lowered the break further");
    ok(trimmed <= start, "the break is at most where it started (%+ld KiB)", (long)(trimmed - start) / (long)KIB);
    ok(malloc_trim(0) == 0 && brk_now() == trimmed, "a second malloc_trim(0) has nothing to release");

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
    ok(mymalloc_check() == 0, "mymalloc_check() reports a sound heap");
    return done();
}
