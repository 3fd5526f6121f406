/* random_ops.c - the fuzzer's shadow-model checker (tests/fuzz/shadow.c) as a
 * deterministic long random test: phases of millions of operations drawn
 * from xorshift generators with fixed seeds, each with its own mix (small
 * blocks on 256 slots, in-place realloc on a few slots, big and mapped
 * blocks, aligned allocations, settings churn with MYMALLOC_CHECK=2, the
 * per-thread cache off and on, and trimming).  The operations go through
 * the byte encoding the fuzzer reads, so this also exercises the decoder.  After each phase every block is
 * checked and freed, mymalloc_check() must be 0, and the heap's in-use and
 * mapped figures must be back where they were.
 *
 *   random_ops                 the test (TAP)
 *   random_ops --corpus DIR    write the fuzzer's seed corpus into DIR
 */
#include "util.h"
#include "fuzz/shadow.h"

#define CHUNK_OPS 4096

/* How a phase draws its operations. */
struct profile {
    const char *name;
    uint64_t seed;
    unsigned long ops;
    unsigned slots;
    size_t live_limit;
    unsigned large;              /* sizes 64 KiB .. 1.06 MiB, per 10000 */
    unsigned medium;             /* sizes 1 KiB .. 64 KiB, per 10000 */
    unsigned weight[SH_CODE_COUNT];
    unsigned edge_every, full_every, heap_every;
};

/* The usual mix: allocate and free in about equal measure, some of everything;
 * the arguments weigh the operations that act on the whole heap. */
#define MIX(free_many, trim, mallopt, check) \
    { [SH_MALLOC] = 30, [SH_CALLOC] = 8, [SH_REALLOC] = 10, [SH_REALLOC_GROW] = 8, \
      [SH_REALLOC_SHRINK] = 5, [SH_REALLOC_ZERO] = 2, [SH_REALLOCARRAY] = 2, \
      [SH_POSIX_MEMALIGN] = 3, [SH_ALIGNED_ALLOC] = 3, [SH_MEMALIGN] = 3, [SH_VALLOC] = 1, \
      [SH_PVALLOC] = 1, [SH_FREE] = 35, [SH_FREE_SIZED] = 15, [SH_FREE_MANY] = (free_many), \
      [SH_USABLE] = 6, [SH_REWRITE] = 3, [SH_TRIM] = (trim), [SH_MALLOPT] = (mallopt), \
      [SH_CHECK] = (check), [SH_FAIL] = 1 }

static const struct profile phases[] = {
    { "small blocks, 256 slots", 0x9e3779b97f4a7c15ull, 1000000, 256, 32 << 20, 3, 150,
      MIX(0, 0, 0, 0), 8, 65536, 8192 },
    { "small blocks, 256 slots, second seed", 0x243f6a8885a308d3ull, 1000000, 256, 32 << 20, 3, 150,
      MIX(1, 1, 0, 0), 8, 65536, 8192 },
    { "in-place realloc on 8 slots", 0x13198a2e03707344ull, 400000, 8, 1 << 20, 10, 300,
      { [SH_MALLOC] = 10, [SH_REALLOC] = 10, [SH_REALLOC_GROW] = 40, [SH_REALLOC_SHRINK] = 25,
        [SH_REALLOC_ZERO] = 2, [SH_REALLOCARRAY] = 3, [SH_FREE] = 8, [SH_FREE_SIZED] = 4,
        [SH_USABLE] = 8, [SH_FAIL] = 1 }, 4, 16384, 4096 },
    { "aligned allocations", 0xa4093822299f31d0ull, 300000, 128, 32 << 20, 10, 300,
      { [SH_MALLOC] = 10, [SH_POSIX_MEMALIGN] = 15, [SH_ALIGNED_ALLOC] = 15, [SH_MEMALIGN] = 15,
        [SH_VALLOC] = 3, [SH_PVALLOC] = 3, [SH_REALLOC] = 8, [SH_REALLOC_GROW] = 4,
        [SH_FREE] = 30, [SH_FREE_SIZED] = 25, [SH_USABLE] = 5, [SH_FAIL] = 2 }, 8, 16384, 4096 },
    { "big and mapped blocks", 0x082efa98ec4e6c89ull, 8000, 64, 48 << 20, 2500, 3500,
      MIX(0, 2, 0, 0), 4, 2048, 512 },
    { "settings churn: thresholds, MYMALLOC_CHECK 1 and 2, caches, trimming", 0x452821e638d01377ull, 200000, 128,
      32 << 20, 40, 500, MIX(1, 2, 3, 1), 4, 8192, 1024 },
};
#define NPHASES (sizeof phases / sizeof phases[0])

static size_t draw_size(uint64_t *x, const struct profile *pf)
{
    uint64_t r = xorshift(x);
    unsigned pick = (unsigned)(r % 10000);
    r >>= 14;
    if (pick < pf->large)
        return 65536 + r % (SHADOW_MAX_SIZE - 65536 + 1);
    if (pick < pf->large + pf->medium)
        return 1024 + r % (65536 - 1024);
    switch (r % 4) {
    case 0: return (r >> 2) % 17;
    case 1: return (r >> 2) % 129;
    default: return (r >> 2) % 1025;
    }
}

static void draw_op(uint64_t *x, const struct profile *pf, unsigned total_weight, struct shadow_op *op)
{
    uint64_t r = xorshift(x);
    unsigned pick = (unsigned)(r % total_weight);
    int code = 0;
    while (pick >= pf->weight[code])
        pick -= pf->weight[code++];
    memset(op, 0, sizeof *op);
    op->code = (enum shadow_code)code;
    r = xorshift(x);
    op->slot = (unsigned)(r & 255);
    op->arg = (unsigned)(r >> 8 & 255);
    op->arg2 = (unsigned)(r >> 16 & 255);
    if (op->code == SH_REALLOC_GROW)
        op->size = (r >> 24) % 8 != 0 ? (r >> 27) % 200 : (r >> 27) % 65536;
    else
        op->size = draw_size(x, pf);
}

static unsigned weight_sum(const struct profile *pf)
{
    unsigned total = 0;
    for (int c = 0; c < SH_CODE_COUNT; c++)
        total += pf->weight[c];
    return total;
}

/* The fields of an operation its encoding carries (the others read as 0). */
static int same_op(const struct shadow_op *a, const struct shadow_op *b)
{
    return a->code == b->code && a->slot == b->slot && a->arg == b->arg && a->arg2 == b->arg2 && a->size == b->size;
}

/* Every operation drawn survives encode + decode; random bytes always
 * decode, and a truncated operation is never run. */
static void test_encoding(void)
{
    uint64_t x = 0x0123456789abcdefull;
    const struct profile *pf = &phases[0];
    struct profile all = *pf;
    int bad = 0;
    for (int c = 0; c < SH_CODE_COUNT; c++)
        all.weight[c] = 1;
    for (int i = 0; i < 200000 && !bad; i++) {
        struct shadow_op op, back;
        uint8_t bytes[SHADOW_OP_MAX_BYTES + 1];
        draw_op(&x, &all, weight_sum(&all), &op);
        size_t n = shadow_encode(&op, bytes);
        if (n == 0 || n > SHADOW_OP_MAX_BYTES || shadow_decode(bytes, n, &back) != n) {
            diag("op %d (%s): %zu bytes do not decode", i, shadow_code_name(op.code), n);
            bad = 1;
            break;
        }
        /* Fields the encoding does not carry come back 0. */
        struct shadow_op again;
        uint8_t bytes2[SHADOW_OP_MAX_BYTES];
        size_t n2 = shadow_encode(&back, bytes2);
        if (n2 != n || memcmp(bytes, bytes2, n) != 0 || shadow_decode(bytes2, n2, &again) != n2 ||
            !same_op(&back, &again)) {
            diag("op %d (%s) does not round-trip", i, shadow_code_name(op.code));
            bad = 1;
        }
        if ((op.code == SH_MALLOC || op.code == SH_REALLOC) && back.size != op.size) {
            diag("size %zu came back as %zu", op.size, back.size);
            bad = 1;
        }
        if (n > 1 && shadow_decode(bytes, n - 1, &back) != 0) {
            diag("a truncated %s decodes", shadow_code_name(op.code));
            bad = 1;
        }
    }
    for (int i = 0; i < 100000 && !bad; i++) {
        uint8_t bytes[SHADOW_OP_MAX_BYTES];
        struct shadow_op op;
        uint64_t r = xorshift(&x);
        memcpy(bytes, &r, sizeof bytes < sizeof r ? sizeof bytes : sizeof r);
        size_t n = shadow_decode(bytes, sizeof bytes, &op);
        if (n == 0 || (unsigned)op.code >= SH_CODE_COUNT || op.size > SHADOW_MAX_SIZE) {
            diag("random bytes %016llx decode badly", (unsigned long long)r);
            bad = 1;
        }
    }
    ok(!bad, "encoding: 200000 operations round-trip, random bytes always decode");
}

static const char *current_phase = "";

static void violation_hook(const char *what)
{
    printf("not ok %d - %s: %s\n", tap_number + 1, current_phase, what);
    printf("Bail out! shadow model violation (details on stderr)\n");
    fflush(stdout);
}

static int heap_figures(size_t *inuse, size_t *mapped)
{
    struct mymalloc_stats st;
    malloc_trim(0);     /* gives back this thread's cached blocks too */
    if (mymalloc_stats_get(&st) != 0)
        return 0;
    *inuse = st.inuse_bytes;
    *mapped = st.mapped_blocks;
    return 1;
}

static struct shadow model;
static uint8_t chunk[CHUNK_OPS * SHADOW_OP_MAX_BYTES];

static void run_phase(const struct profile *pf)
{
    struct shadow_config cfg;
    uint64_t x = pf->seed;
    unsigned total = weight_sum(pf);
    unsigned long done = 0;
    size_t inuse0 = 0, mapped0 = 0, inuse1 = 0, mapped1 = 0;
    struct timespec t0, t1, c0, c1;

    current_phase = pf->name;
    shadow_settings_default();
    int figures = heap_figures(&inuse0, &mapped0);
    shadow_config_default(&cfg);
    cfg.slots = pf->slots;
    cfg.live_limit = pf->live_limit;
    cfg.edge_every = pf->edge_every;
    cfg.full_every = pf->full_every;
    cfg.heap_every = pf->heap_every;
    cfg.on_violation = violation_hook;
    shadow_init(&model, &cfg);

    clock_gettime(CLOCK_MONOTONIC, &t0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    while (done < pf->ops) {
        size_t len = 0, want = pf->ops - done < CHUNK_OPS ? pf->ops - done : CHUNK_OPS;
        for (size_t i = 0; i < want; i++) {
            struct shadow_op op;
            draw_op(&x, pf, total, &op);
            len += shadow_encode(&op, chunk + len);
        }
        size_t ran = shadow_run(&model, chunk, len);
        if (ran != want) {
            ok(0, "%s: %zu of %zu operations of a chunk ran", pf->name, ran, want);
            return;
        }
        done += want;
    }
    shadow_check_all(&model);
    unsigned live = model.live;
    shadow_release_all(&model);
    shadow_settings_default();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);

    int every = 1;
    for (int c = 0; c < SH_CODE_COUNT; c++)
        if (pf->weight[c] != 0 && model.count[c] == 0) {
            diag("%s: no %s operation ran", pf->name, shadow_code_name(c));
            every = 0;
        }
    diag("%s: %.2f s (%.2f s of CPU), %u blocks live at the end, %llu MB compared, %llu heap checks",
         pf->name, (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
         (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) / 1e9, live,
         model.bytes_checked >> 20, model.heap_checks);
    ok(model.ops == pf->ops && every, "%s: %lu operations (seed %016llx), every block kept, aligned and apart",
       pf->name, pf->ops, (unsigned long long)pf->seed);
    figures = figures && heap_figures(&inuse1, &mapped1);
    if (figures && (inuse1 != inuse0 || mapped1 != mapped0))
        diag("in use %zu -> %zu bytes, mapped blocks %zu -> %zu", inuse0, inuse1, mapped0, mapped1);
    ok(figures && inuse1 == inuse0 && mapped1 == mapped0,
       "%s: everything freed: the heap's in-use bytes and mapped blocks are back where they were", pf->name);
}

/* ---- the seed corpus for the fuzzer ---- */

static int write_seed(const char *dir, const char *name, const uint8_t *bytes, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(bytes, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "random_ops: cannot write %s: %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}

static size_t put(uint8_t *out, enum shadow_code code, unsigned slot, unsigned arg, unsigned arg2, size_t size)
{
    struct shadow_op op = { code, slot, arg, arg2, size };
    return shadow_encode(&op, out);
}

/* `code` on the slots from `first` to below `end`, `stride` apart: slot i
 * with the size size0 + i * size_step. */
static size_t put_slots(uint8_t *out, enum shadow_code code, unsigned first, unsigned end, unsigned stride, size_t size0,
                        size_t size_step)
{
    size_t n = 0;
    for (unsigned i = first; i < end; i += stride)
        n += put(out + n, code, i, 0, 0, size0 + i * size_step);
    return n;
}

static int write_corpus(const char *dir)
{
    static uint8_t buf[65536];
    int failed = 0;
    size_t n;

    /* Drawn from each phase's mix, at a few lengths. */
    static const unsigned lengths[] = { 40, 150, 400 };
    for (size_t p = 0; p < NPHASES; p++) {
        for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++) {
            struct profile pf = phases[p];
            uint64_t x = pf.seed ^ (l + 1) * 0x9e3779b97f4a7c15ull;
            unsigned total = weight_sum(&pf);
            char name[64];
            if (pf.large > 1000 && lengths[l] > 150)
                continue;       /* keep the big-block seeds quick */
            n = 0;
            for (unsigned i = 0; i < lengths[l]; i++) {
                struct shadow_op op;
                draw_op(&x, &pf, total, &op);
                n += shadow_encode(&op, buf + n);
            }
            snprintf(name, sizeof name, "mix-%zu-%u", p, lengths[l]);
            failed |= write_seed(dir, name, buf, n);
        }
    }

    /* A block grown by small steps, then shrunk, across the mmap threshold. */
    n = put(buf, SH_MALLOC, 1, 0, 0, 100);
    for (unsigned i = 0; i < 60; i++)
        n += put(buf + n, SH_REALLOC_GROW, 1, 0, 0, 3000 + i * 97);
    for (unsigned i = 0; i < 20; i++)
        n += put(buf + n, SH_REALLOC_SHRINK, 1, 128 + i * 5, 0, 0);
    n += put(buf + n, SH_CHECK, 0, 0, 0, 0);
    failed |= write_seed(dir, "grow-shrink", buf, n);

    /* Every alignment through every aligned call, then sized frees. */
    n = 0;
    for (unsigned a = 0; a < 16; a++) {
        n += put(buf + n, SH_POSIX_MEMALIGN, a, a, 0, 1 + a * 37);
        n += put(buf + n, SH_ALIGNED_ALLOC, 16 + a, a, 0, 64 * a);
        n += put(buf + n, SH_MEMALIGN, 32 + a, a | 0x80, 0, 100 + a);
    }
    n += put(buf + n, SH_VALLOC, 60, 0, 0, 5000);
    n += put(buf + n, SH_PVALLOC, 61, 0, 0, 5000);
    n += put_slots(buf + n, SH_FREE_SIZED, 0, 64, 1, 0, 0);
    failed |= write_seed(dir, "aligned", buf, n);

    /* Neighbours freed in orders that coalesce both ways. */
    n = put_slots(buf, SH_MALLOC, 0, 24, 1, 24, 40);
    n += put_slots(buf + n, SH_FREE, 1, 24, 2, 0, 0);
    n += put_slots(buf + n, SH_FREE_SIZED, 0, 24, 2, 0, 0);
    n += put(buf + n, SH_TRIM, 0, 0, 0, 0);
    n += put(buf + n, SH_CHECK, 0, 0, 0, 0);
    failed |= write_seed(dir, "coalesce", buf, n);

    /* Settings changes between big allocations. */
    n = 0;
    for (unsigned v = 0; v < 8; v++) {
        n += put(buf + n, SH_MALLOPT, 0, 0, v, 0);            /* mmap threshold */
        n += put(buf + n, SH_MALLOC, v, 0, 0, 70000 + v * 60000);
        n += put(buf + n, SH_MALLOPT, 1, 1, v, 0);            /* trim threshold */
        n += put(buf + n, SH_REALLOC, v, 0, 0, 40000 + v * 90000);
        n += put(buf + n, SH_MALLOPT, 2, 2, v, 0);            /* top pad */
        n += put(buf + n, SH_MALLOPT, 3, 3, v, 0);            /* mmap max */
        n += put(buf + n, SH_CALLOC, 8 + v, v, 0, 150000);
    }
    n += put(buf + n, SH_FREE_MANY, 0, 0, 0, 0);
    n += put(buf + n, SH_TRIM, 0, 5, 0, 0);
    n += put(buf + n, SH_MALLOPT, 0, 6, 0, 0);                /* defaults */
    failed |= write_seed(dir, "settings", buf, n);

    /* MYMALLOC_CHECK=2 on and off around allocations and reallocs. */
    n = put(buf, SH_MALLOC, 0, 0, 0, 40);
    n += put(buf + n, SH_MALLOPT, 0, 4, 1, 0);                /* level 2 */
    n += put(buf + n, SH_MALLOC, 1, 0, 0, 40);
    n += put(buf + n, SH_REALLOC_GROW, 0, 0, 0, 30);
    n += put(buf + n, SH_USABLE, 1, 0, 0, 0);
    n += put(buf + n, SH_FREE_SIZED, 1, 0, 0, 0);
    n += put(buf + n, SH_MALLOC, 2, 0, 0, 200);
    n += put(buf + n, SH_MALLOPT, 0, 4, 0, 0);                /* level 1 */
    n += put(buf + n, SH_REALLOC_SHRINK, 2, 100, 0, 0);
    n += put(buf + n, SH_USABLE, 2, 0, 0, 0);
    n += put(buf + n, SH_CHECK, 0, 0, 0, 0);
    failed |= write_seed(dir, "check-level", buf, n);

    /* Small blocks freed into the per-thread cache, then caching turned off
     * (the cache is flushed) and on again. */
    n = put_slots(buf, SH_MALLOC, 0, 40, 1, 16, 8);
    n += put_slots(buf + n, SH_FREE, 0, 40, 2, 0, 0);
    n += put(buf + n, SH_MALLOPT, 0, 5, 0, 0);                /* caches off */
    n += put_slots(buf + n, SH_MALLOC, 0, 40, 2, 24, 8);
    n += put(buf + n, SH_MALLOPT, 0, 5, 1, 0);                /* caches on */
    n += put_slots(buf + n, SH_FREE_SIZED, 1, 40, 2, 0, 0);
    n += put(buf + n, SH_TRIM, 0, 0, 0, 0);
    n += put(buf + n, SH_CHECK, 0, 0, 0, 0);
    failed |= write_seed(dir, "tcache", buf, n);

    /* Every failing call, with and without a live block in the slot. */
    n = put(buf, SH_MALLOC, 3, 0, 0, 333);
    for (unsigned k = 0; k < 9; k++) {
        n += put(buf + n, SH_FAIL, 3, k, 0, 0);
        n += put(buf + n, SH_FAIL, 4, k, 0, 0);
    }
    failed |= write_seed(dir, "failures", buf, n);

    /* realloc to and from nothing, malloc(0), usable sizes. */
    n = 0;
    for (unsigned i = 0; i < 8; i++) {
        n += put(buf + n, SH_REALLOC_ZERO, i, 0, 0, 0);
        n += put(buf + n, SH_USABLE, i, 0, 0, 0);
        n += put(buf + n, SH_REALLOC_GROW, i, 0, 0, i * 11);
        n += put(buf + n, SH_REALLOC_ZERO, i, 0, 0, 0);
        n += put(buf + n, SH_MALLOC, i, 0, 0, 0);
        n += put(buf + n, SH_REWRITE, i, 0, 0, 0);
    }
    failed |= write_seed(dir, "zero", buf, n);
    return failed;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--corpus") == 0)
        return write_corpus(argv[2]);

    plan(1 + 2 * (int)NPHASES + 1);
    test_encoding();
    for (size_t p = 0; p < NPHASES; p++)
        run_phase(&phases[p]);
    int problems = mymalloc_check();
    ok(problems == 0, "mymalloc_check() finds a sound heap at the end (%d problems)", problems);
    return done();
}
