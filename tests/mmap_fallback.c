/* mmap_fallback.c - when a mapping sits right at the break, sbrk cannot grow
 * the heap: it must continue in mmap'ed segments, without touching the
 * blocked range, and stay sound through frees, reuse, calloc and trimming. */
#include "util.h"

#define TOTAL (20 * MIB)
#define MAX_BLOCKS 16384
#define BLOCKER_LENGTH (16 * MIB)

static unsigned char *blocks[MAX_BLOCKS];
static size_t sizes[MAX_BLOCKS];
static size_t nblocks;
static uintptr_t blocked_lo, blocked_hi;   /* [initial break, blocker end) */

static uint32_t seed = 12345;
static uint32_t next_random(void)
{
    seed = seed * 1103515245u + 12345u;
    return seed >> 8;
}

static size_t random_size(void) { return 1000 + next_random() % 2001; }   /* 1000..3000 */

static unsigned char pattern(size_t i, size_t j) { return (unsigned char)(i * 31 + j * 7 + 1); }

static void fill(size_t i)
{
    for (size_t j = 0; j < sizes[i]; j++)
        blocks[i][j] = pattern(i, j);
}

static int intact(size_t i)
{
    for (size_t j = 0; j < sizes[i]; j++)
        if (blocks[i][j] != pattern(i, j))
            return 0;
    return 1;
}

static int outside_blocked(const void *p, size_t n)
{
    uintptr_t lo = (uintptr_t)p, hi = lo + n;
    return hi <= blocked_lo || lo >= blocked_hi;
}

/* Allocate (into every empty slot below `upto`) and fill; counts failures. */
static size_t allocate_slots(size_t from, size_t upto, size_t step)
{
    size_t failures = 0;
    for (size_t i = from; i < upto; i += step) {
        sizes[i] = random_size();
        blocks[i] = malloc(sizes[i]);
        if (blocks[i] == NULL) {
            failures++;
            continue;
        }
        fill(i);
    }
    return failures;
}

static int all_intact_and_outside(size_t *bad_place)
{
    int good = 1;
    *bad_place = 0;
    for (size_t i = 0; i < nblocks; i++) {
        if (blocks[i] == NULL)
            continue;
        if (!intact(i))
            good = 0;
        if (!outside_blocked(blocks[i], sizes[i]))
            (*bad_place)++;
    }
    return good;
}

/* calloc every `step`-th slot from `from` (all empty), check each block is
 * zero and outside the blocked range, then fill it.  1 if all were. */
static int calloc_slots(size_t from, size_t step, size_t *count)
{
    int good = 1;
    *count = 0;
    for (size_t i = from; i < nblocks; i += step, (*count)++) {
        sizes[i] = random_size();
        blocks[i] = calloc(1, sizes[i]);
        if (blocks[i] == NULL) {
            good = 0;
            continue;
        }
        for (size_t j = 0; j < sizes[i]; j++)
            if (blocks[i][j] != 0)
                good = 0;
        if (!outside_blocked(blocks[i], sizes[i]))
            good = 0;
        fill(i);
    }
    return good;
}

int main(void)
{
    long page = sysconf(_SC_PAGESIZE);

    /* Blocks of 1000..3000 bytes belong in the heap whatever the environment says. */
    int set = mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    printf("# mmap fallback when the break is blocked\n");   /* stdio's buffer, now */
    fflush(stdout);

    /* Nothing allocates between here and the blocking mapping. */
    char *initial = sbrk(0);
    uintptr_t at = ((uintptr_t)initial + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    void *blocker = mmap((void *)at, BLOCKER_LENGTH, PROT_NONE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | MAP_NORESERVE, -1, 0);
    if (blocker == MAP_FAILED || blocker != (void *)at) {
        if (blocker != MAP_FAILED)
            munmap(blocker, BLOCKER_LENGTH);
        plan_skip_all("cannot place a mapping at the break (MAP_FIXED_NOREPLACE unsupported or range taken)");
    }
    blocked_lo = (uintptr_t)initial;
    blocked_hi = at + BLOCKER_LENGTH;

    plan(19);
    diag("blocking mapping placed at the page-aligned break %p", blocker);
    ok(set == 1, "mallopt(M_MMAP_THRESHOLD, 128 KiB) accepted");
    void *moved = sbrk(page);
    ok(moved == (void *)-1, "sbrk(%ld) now fails", page);
    if (moved != (void *)-1)
        sbrk(-page);

    struct mallinfo2 before = mallinfo2();
    size_t total = 0, failures = 0;
    for (nblocks = 0; total < TOTAL && nblocks < MAX_BLOCKS; nblocks++) {
        failures += allocate_slots(nblocks, nblocks + 1, 1);
        total += sizes[nblocks];
    }
    ok(failures == 0 && total >= TOTAL, "%zu blocks of 1000..3000 bytes (%zu KiB) allocated", nblocks, total / KIB);

    size_t bad_place;
    ok(all_intact_and_outside(&bad_place), "every block holds its pattern");
    ok(bad_place == 0, "no block lies in [initial break, end of the blocking mapping) (%zu do)", bad_place);
    ok(sbrk(0) == initial, "the break did not move");
    struct mallinfo2 grown = mallinfo2();
    ok(grown.arena >= before.arena + TOTAL && grown.hblks == before.hblks,
       "the heap grew by %zu KiB in segments, with no mapped blocks", (grown.arena - before.arena) / KIB);
    ok(mymalloc_check() == 0, "heap sound after the growth");

    /* Free every other block, then fill the holes with new sizes. */
    for (size_t i = 0; i < nblocks; i += 2) {
        free(blocks[i]);
        blocks[i] = NULL;
    }
    ok(mymalloc_check() == 0, "heap sound after freeing half");
    failures = allocate_slots(0, nblocks, 2);
    ok(failures == 0 && all_intact_and_outside(&bad_place) && bad_place == 0,
       "allocated the freed half again: all blocks intact and outside the blocked range");
    ok(sbrk(0) == initial && mymalloc_check() == 0, "break unmoved and heap sound after reuse");

    /* calloc in segments: memory that held patterns must come back zeroed,
     * first from the bins (the odd half), then from everything, the tops of
     * the segments included. */
    for (size_t i = 1; i < nblocks; i += 2) {
        free(blocks[i]);
        blocks[i] = NULL;
    }
    size_t ncalloc = 0;
    int zeroed = calloc_slots(1, 2, &ncalloc);
    ok(zeroed, "%zu calloc blocks in freed segment memory are zeroed and outside the blocked range",
       ncalloc);
    ok(all_intact_and_outside(&bad_place) && bad_place == 0, "all blocks intact after the calloc round");

    for (size_t i = nblocks; i-- > 0;) {
        free(blocks[i]);
        blocks[i] = NULL;
    }
    ok(mymalloc_check() == 0, "heap sound after freeing everything");
    zeroed = calloc_slots(0, 1, &ncalloc);
    ok(zeroed, "then %zu calloc blocks over the whole heap are zeroed and outside the blocked range",
       ncalloc);
    ok(all_intact_and_outside(&bad_place) && bad_place == 0 && sbrk(0) == initial,
       "all blocks intact after the second calloc round, break unmoved");

    for (size_t i = 0; i < nblocks; i++) {
        free(blocks[i]);
        blocks[i] = NULL;
    }
    ok(mymalloc_check() == 0, "heap sound after freeing everything");
    int released = malloc_trim(0);
    diag("malloc_trim(0) returned %d", released);
    ok((released == 0 || released == 1) && mymalloc_check() == 0, "malloc_trim(0) works on a segment heap");
    void *p = malloc(3000), *q = calloc(1, 5000);
    int usable = p != NULL && q != NULL && outside_blocked(p, 3000) && outside_blocked(q, 5000);
    if (q != NULL)
        for (size_t j = 0; j < 5000; j++)
            if (((unsigned char *)q)[j] != 0)
                usable = 0;
    free(p);
    free(q);
    ok(usable && mymalloc_check() == 0 && sbrk(0) == initial, "the heap is usable after the trim");

    munmap(blocker, BLOCKER_LENGTH);
    return done();
}
