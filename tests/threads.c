/* threads.c - eight threads allocating and freeing at random through a shared
 * array of slots, so most blocks are freed (or reallocated) by a thread other
 * than the one that allocated them.  Every block carries a pattern derived
 * from its size and a stamp; a block is verified whenever it leaves a slot, so
 * overlapping blocks, lost bytes and torn heap updates show up as corruption.
 * Sizes: mostly small, some medium, a few above the mmap threshold; some come
 * from calloc (checked zero), some from posix_memalign/aligned_alloc (checked
 * aligned), some are resized with realloc (prefix checked preserved). */
#include "util.h"

#define NTHREADS   8
#define NSLOTS     4096
#define ITERATIONS 100000         /* per thread */

static void *slots[NSLOTS];       /* accessed only with __atomic builtins */

/* ---- block contents ----
 * size < 32:  byte 0 = size, byte i = small_byte(p, size, i)
 * size >= 32: byte 0 = BIG_TAG, byte 1 = log2(alignment asked), bytes 8..15
 *             the size, bytes 16..23 the stamp (thread << 48 | counter), and
 *             from byte 24 on the words of pattern_word(stamp, size, j). */
#define BIG_TAG    0xA5u
#define BIG_HEADER 24u

struct stats {
    unsigned long allocs, frees, cross_frees, callocs, aligned, reallocs, slot_reallocs, large;
    unsigned long corrupt, misaligned, align_bad, calloc_dirty, realloc_lost, failures, usable_short;
};

static uint64_t pattern_word(uint64_t stamp, size_t size, size_t j)
{
    return mix64(stamp * 0x100000001B3ull + size * 0x2545F4914F6CDD1Dull + j);
}

static unsigned char small_byte(uintptr_t addr, size_t size, size_t i)
{
    return (unsigned char)(mix64(addr + size * 131 + i) >> 24);
}

static void fill(unsigned char *p, size_t size, uint64_t stamp, unsigned align_log2)
{
    if (size < 32) {
        p[0] = (unsigned char)size;
        for (size_t i = 1; i < size; i++)
            p[i] = small_byte((uintptr_t)p, size, i);
        return;
    }
    uint64_t s = size;
    memset(p, 0, 8);
    p[0] = BIG_TAG;
    p[1] = (unsigned char)align_log2;
    memcpy(p + 8, &s, 8);
    memcpy(p + 16, &stamp, 8);
    size_t words = (size - BIG_HEADER) / 8, j;
    for (j = 0; j < words; j++) {
        uint64_t w = pattern_word(stamp, size, j);
        memcpy(p + BIG_HEADER + 8 * j, &w, 8);
    }
    uint64_t w = pattern_word(stamp, size, j);
    memcpy(p + BIG_HEADER + 8 * j, &w, size - BIG_HEADER - 8 * j);
}

/* Check a block's contents against what fill() wrote; its size comes back in
 * *size_out and its stamp in *stamp_out (0 for small blocks). */
static int intact(const unsigned char *p, size_t *size_out, uint64_t *stamp_out)
{
    *stamp_out = 0;
    if (p[0] != BIG_TAG) {
        size_t size = p[0];
        *size_out = size;
        if (size == 0 || size >= 32)
            return 0;
        for (size_t i = 1; i < size; i++)
            if (p[i] != small_byte((uintptr_t)p, size, i))
                return 0;
        return 1;
    }
    uint64_t size, stamp;
    memcpy(&size, p + 8, 8);
    memcpy(&stamp, p + 16, 8);
    *size_out = size;
    *stamp_out = stamp;
    if (size < 32 || size > (1u << 20) || p[1] > 12 || p[2] | p[3] | p[4] | p[5] | p[6] | p[7])
        return 0;
    if ((uintptr_t)p % ((uintptr_t)1 << p[1]) != 0)
        return 0;
    size_t words = (size - BIG_HEADER) / 8, j;
    for (j = 0; j < words; j++) {
        uint64_t w;
        memcpy(&w, p + BIG_HEADER + 8 * j, 8);
        if (w != pattern_word(stamp, size, j))
            return 0;
    }
    uint64_t w = pattern_word(stamp, size, j);
    return memcmp(p + BIG_HEADER + 8 * j, &w, size - BIG_HEADER - 8 * j) == 0;
}

/* The first `keep` bytes of a block of `old` bytes filled with `stamp` (after
 * realloc moved or resized it). */
static int prefix_intact(const unsigned char *p, size_t keep, size_t old, uint64_t stamp, uintptr_t old_addr)
{
    unsigned char expect[BIG_HEADER];
    if (old < 32) {
        /* small blocks' bytes depend on the address they were filled at */
        if (p[0] != old)
            return 0;
        for (size_t i = 1; i < keep; i++)
            if (p[i] != small_byte(old_addr, old, i))
                return 0;
        return 1;
    }
    size_t head = keep < BIG_HEADER ? keep : BIG_HEADER;
    uint64_t s = old;
    memset(expect, 0, 8);
    expect[0] = BIG_TAG;
    memcpy(expect + 8, &s, 8);
    memcpy(expect + 16, &stamp, 8);
    if (memcmp(p, expect, head) != 0)
        return 0;
    for (size_t i = BIG_HEADER; i < keep; i += 8) {
        uint64_t w = pattern_word(stamp, old, (i - BIG_HEADER) / 8);
        size_t n = keep - i < 8 ? keep - i : 8;
        if (memcmp(p + i, &w, n) != 0)
            return 0;
    }
    return 1;
}

/* realloc q, a block of `old` bytes filled with `stamp`, to `size` bytes:
 * the new block, its first bytes checked to be q's (counted as lost when
 * they are not), or NULL when realloc failed (counted, and q freed). */
static unsigned char *realloc_checked(struct stats *st, unsigned char *q, size_t old, uint64_t stamp, size_t size)
{
    uintptr_t old_addr = (uintptr_t)q;
    unsigned char *p = realloc(launder(q), size);   /* hidden: GCC would warn of the free(q) below */
    if (p == NULL) {
        st->failures++;
        free(q);
        return NULL;
    }
    if (!prefix_intact(p, old < size ? old : size, old, stamp, old_addr))
        st->realloc_lost++;
    return p;
}

static size_t random_size(uint64_t *seed)
{
    uint64_t r = xorshift(seed);
    unsigned pick = (unsigned)(r % 1000);
    r >>= 10;
    if (pick < 880)
        return 1 + (size_t)(r % 512);                       /* small */
    if (pick < 993)
        return 512 + (size_t)(r % (8192 - 512 + 1));       /* medium */
    return (100u << 10) + (size_t)(r % (200u << 10));        /* 100..300 KiB: own mapping */
}

static void check_new(struct stats *st, void *p, size_t size, size_t align)
{
    if ((uintptr_t)p % 16 != 0)
        st->misaligned++;
    if (align > 16 && (uintptr_t)p % align != 0)
        st->align_bad++;
    if (malloc_usable_size(p) < size)
        st->usable_short++;
    if (size >= (128u << 10))
        st->large++;
}

/* Verify and free a block taken out of a slot. */
static void retire(struct stats *st, void *p, unsigned self)
{
    size_t size;
    uint64_t stamp;
    if (p == NULL)
        return;
    if (!intact(p, &size, &stamp))
        st->corrupt++;
    else if (stamp != 0 && (unsigned)(stamp >> 48) != self)
        st->cross_frees++;
    free(p);
    st->frees++;
}

/* Put a filled block in slot i; verify and free what was there. */
static void publish(struct stats *st, unsigned i, void *p, unsigned self)
{
    retire(st, __atomic_exchange_n(&slots[i], p, __ATOMIC_ACQ_REL), self);
}

struct worker {
    pthread_t thread;
    unsigned id;
    int joined;             /* joined, or never started */
    struct stats st;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct stats *st = &w->st;
    uint64_t seed = 0x9E3779B97F4A7C15ull * (w->id + 1) ^ 0xD1B54A32D192ED03ull;
    uint64_t counter = 0;

    for (int it = 0; it < ITERATIONS; it++) {
        uint64_t r = xorshift(&seed);
        unsigned slot = (unsigned)(r % NSLOTS);
        unsigned op = (unsigned)((r >> 16) % 100);
        uint64_t stamp = (uint64_t)w->id << 48 | ++counter;
        size_t size = random_size(&seed);
        unsigned char *p = NULL;
        unsigned align_log2 = 0;
        size_t align = 0;

        if (op < 5) {                                   /* just free a slot */
            retire(st, __atomic_exchange_n(&slots[slot], NULL, __ATOMIC_ACQ_REL), w->id);
            continue;
        } else if (op < 60) {                           /* malloc */
            p = malloc(size);
        } else if (op < 70) {                           /* calloc, checked zero */
            size_t count = 1 + (size_t)((r >> 24) % 4), each = (size + count - 1) / count;
            size = count * each;
            p = calloc(count, each);
            st->callocs++;
            if (p != NULL)
                for (size_t i = 0; i < size; i++)
                    if (p[i] != 0) {
                        st->calloc_dirty++;
                        break;
                    }
        } else if (op < 80) {                           /* aligned, 32..4096 */
            align_log2 = 5 + (unsigned)((r >> 24) % 8);
            align = (size_t)1 << align_log2;
            st->aligned++;
            if ((r >> 32) & 1) {
                void *q = NULL;
                p = posix_memalign(&q, align, size) == 0 ? q : NULL;
            } else {
                p = aligned_alloc(align, size);
            }
        } else if (op < 90) {                           /* malloc, fill, realloc own block */
            size_t first = random_size(&seed);
            unsigned char *q = malloc(first);
            if (q == NULL) {
                st->failures++;
                continue;
            }
            check_new(st, q, first, 0);
            fill(q, first, stamp, 0);
            p = realloc_checked(st, q, first, stamp, size);
            st->reallocs++;
            if (p == NULL)
                continue;
        } else {                                        /* realloc another thread's block */
            unsigned char *q = __atomic_exchange_n(&slots[slot], NULL, __ATOMIC_ACQ_REL);
            size_t old;
            uint64_t old_stamp;
            if (q == NULL)
                continue;
            if (!intact(q, &old, &old_stamp)) {
                st->corrupt++;
                free(q);
                st->frees++;
                continue;
            }
            if (old >= 32)
                q[1] = 0;       /* realloc keeps only 16-byte alignment */
            p = realloc_checked(st, q, old, old_stamp, size);
            st->slot_reallocs++;
            if (p == NULL)
                continue;
        }
        if (p == NULL) {
            st->failures++;
            continue;
        }
        check_new(st, p, size, align);
        fill(p, size, stamp, size >= 32 ? align_log2 : 0);
        st->allocs++;
        publish(st, slot, p, w->id);
    }
    return NULL;
}

int main(void)
{
    static struct worker workers[NTHREADS];
    struct stats total;
    int started = 0, checks = 0, check_problems = 0;

    (void)skip;
    (void)plan_skip_all;
    plan(13);
    for (unsigned t = 0; t < NTHREADS; t++) {
        workers[t].id = t + 1;
        workers[t].joined = pthread_create(&workers[t].thread, NULL, worker_main, &workers[t]) != 0;
        started += !workers[t].joined;
    }
    ok(started == NTHREADS, "started %d of %d threads", started, NTHREADS);

    /* Walk the heap now and then while the workers run: the walk takes the
     * lock, so it must always find a sound heap. */
    int running = started;
    while (running > 0) {
        int n = mymalloc_check();
        checks++;
        if (n != 0) {
            check_problems += n;
            diag("mymalloc_check() found %d problems while threads ran", n);
        }
        struct timespec ts = { 0, 5 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        running = 0;
        for (int t = 0; t < NTHREADS; t++)
            if (!workers[t].joined) {
                if (pthread_tryjoin_np(workers[t].thread, NULL) == 0)
                    workers[t].joined = 1;
                else
                    running++;
            }
    }

    memset(&total, 0, sizeof total);
    for (int t = 0; t < NTHREADS; t++) {
        const struct stats *s = &workers[t].st;
        total.allocs += s->allocs;
        total.frees += s->frees;
        total.cross_frees += s->cross_frees;
        total.callocs += s->callocs;
        total.aligned += s->aligned;
        total.reallocs += s->reallocs;
        total.slot_reallocs += s->slot_reallocs;
        total.large += s->large;
        total.corrupt += s->corrupt;
        total.misaligned += s->misaligned;
        total.align_bad += s->align_bad;
        total.calloc_dirty += s->calloc_dirty;
        total.realloc_lost += s->realloc_lost;
        total.failures += s->failures;
        total.usable_short += s->usable_short;
    }

    /* Verify and free what is left in the slots. */
    unsigned long left = 0, left_corrupt = 0;
    for (unsigned i = 0; i < NSLOTS; i++) {
        unsigned char *p = slots[i];
        size_t size;
        uint64_t stamp;
        if (p == NULL)
            continue;
        left++;
        if (!intact(p, &size, &stamp))
            left_corrupt++;
        free(p);
        slots[i] = NULL;
    }

    diag("%lu allocations, %lu frees (%lu of stamped blocks by another thread), %lu calloc, %lu aligned,",
         total.allocs, total.frees, total.cross_frees, total.callocs, total.aligned);
    diag("%lu realloc of own blocks, %lu realloc of slot blocks, %lu blocks >= 128 KiB, %lu left at the end,"
         " %d heap checks during the run", total.reallocs, total.slot_reallocs, total.large, left, checks);

    ok(total.failures == 0, "no allocation failed (%lu failures)", total.failures);
    ok(total.corrupt == 0, "no block corrupted while in a slot (%lu corrupted)", total.corrupt);
    ok(left_corrupt == 0, "no block corrupted at the end (%lu of %lu)", left_corrupt, left);
    ok(total.realloc_lost == 0, "realloc preserved contents (%lu lost)", total.realloc_lost);
    ok(total.calloc_dirty == 0, "calloc memory was zero (%lu dirty of %lu)", total.calloc_dirty, total.callocs);
    ok(total.misaligned == 0, "every pointer 16-byte aligned (%lu not)", total.misaligned);
    ok(total.align_bad == 0, "every posix_memalign/aligned_alloc pointer aligned as asked (%lu not)",
       total.align_bad);
    ok(total.usable_short == 0, "malloc_usable_size() >= request for every block (%lu short)",
       total.usable_short);
    ok(total.cross_frees > 0 && total.large > 0,
       "the run freed blocks across threads (%lu) and used mapped blocks (%lu)", total.cross_frees, total.large);
    ok(check_problems == 0, "mymalloc_check() found nothing during the run (%d checks, %d problems)",
       checks, check_problems);
    int final = mymalloc_check();
    ok(final == 0, "mymalloc_check() == 0 at the end (%d)", final);
    struct mallinfo2 mi = mallinfo2();
    ok(mi.hblks == 0 && mi.hblkhd == 0, "no mapped block left after freeing everything (hblks %zu, hblkhd %zu)",
       mi.hblks, mi.hblkhd);
    return done();
}
