/* mmbench.c - the allocation workloads of mymalloc's benchmark suite.
 *
 * One program, one workload per run:  mmbench [options] WORKLOAD
 * It is linked with nothing but libc and libpthread, so the allocator under
 * test is whatever the dynamic loader gives it: glibc's malloc, or a library
 * put in front with LD_PRELOAD (bench/run does that).
 *
 * Every block a workload allocates is stamped: a random 64-bit tag in its
 * first word, a word derived from the tag in its last word and one in every
 * 4 KiB page between (so the pages are really touched and count in the peak
 * RSS).  Before a block is freed (or after it is moved by realloc) the stamp
 * is checked.  Each thread adds the tags it wrote and the tags it read back;
 * at the end every block has been freed, so both sums must agree and no word
 * may have been wrong.  The program prints one line and exits 0 when they do,
 * 1 otherwise: a broken allocator is noticed, and the compiler cannot drop
 * the work (the pointers also escape through an empty asm).
 *
 * Options: -s SCALE multiplies the workload's operation count (default 1),
 *          -n OPS sets it outright, -t THREADS overrides the thread count,
 *          -S SEED changes the random seed, -l lists the workloads,
 *          -V names the malloc in use (to check that a preload took effect),
 *          -m adds a line of memory figures (see print_memory).
 * The default sizes take 0.3-2 s each under glibc on a 2-core machine. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <gnu/libc-version.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "../include/mymalloc.h"   /* struct mymalloc_stats, for -m; nothing is linked */

#define PAGE 4096u

/* ---- small helpers ---- */

static void die(const char *what)
{
    fprintf(stderr, "mmbench: %s\n", what);
    exit(2);
}

/* The compiler must assume p is read and memory changed: nothing it stores
 * through p can be dropped, and malloc/free around it cannot be elided. */
static inline void escape(void *p)
{
    __asm__ volatile("" : : "r"(p) : "memory");
}

/* xorshift64*: fast, good enough, and one per thread. */
struct rng { uint64_t s; };

static inline uint64_t rng_next(struct rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1DULL;
}

static inline void rng_seed(struct rng *r, uint64_t seed)
{
    r->s = seed * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;
    if (r->s == 0)
        r->s = 1;
    for (int i = 0; i < 4; i++)
        rng_next(r);
}

/* Uniform in [lo, hi]. */
static inline size_t rng_range(struct rng *r, size_t lo, size_t hi)
{
    return lo + (size_t)(rng_next(r) % (hi - lo + 1));
}

/* Roughly log-uniform in [lo, hi]: a random power-of-two band, then uniform
 * inside it, the way real programs ask for many small and few big blocks. */
static inline size_t rng_logsize(struct rng *r, size_t lo, size_t hi)
{
    unsigned bands = 0;
    while ((lo << (bands + 1)) <= hi)
        bands++;
    size_t base = lo << (rng_next(r) % (bands + 1));
    size_t top = base * 2 - 1;
    if (top > hi)
        top = hi;
    return rng_range(r, base, top);
}

/* With -m: the bytes the workload has asked for and not freed yet (requests
 * as made, the slot arrays included), and the most they have been. */
static int track_live;
static int64_t live_now, live_peak;

static inline void live_add(int64_t bytes)
{
    if (!track_live)
        return;
    int64_t now = __atomic_add_fetch(&live_now, bytes, __ATOMIC_RELAXED);
    int64_t peak = __atomic_load_n(&live_peak, __ATOMIC_RELAXED);
    while (now > peak && !__atomic_compare_exchange_n(&live_peak, &peak, now, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

/* What one thread wrote and read back. */
struct tally {
    uint64_t written, read;   /* sums of the tags stamped and checked */
    uint64_t bad;             /* words that did not hold what was stamped */
    uint64_t ops;             /* allocation calls made */
};

/* Stamp block p of n >= 16 bytes with tag. */
static inline void stamp(struct tally *t, void *p, size_t n, uint64_t tag)
{
    char *c = p;
    *(uint64_t *)c = tag;
    for (size_t off = PAGE; off + 16 <= n; off += PAGE)
        *(uint64_t *)(c + off) = tag + off;
    *(uint64_t *)(c + ((n - 8) & ~(size_t)7)) = tag ^ n;
    t->written += tag;
}

/* Check the stamp of block p of n bytes. */
static inline void check(struct tally *t, const void *p, size_t n, uint64_t tag)
{
    const char *c = p;
    uint64_t head = *(const uint64_t *)c;
    uint64_t bad = head != tag;
    for (size_t off = PAGE; off + 16 <= n; off += PAGE)
        bad += *(const uint64_t *)(c + off) != tag + off;
    bad += *(const uint64_t *)(c + ((n - 8) & ~(size_t)7)) != (tag ^ n);
    t->read += head;
    t->bad += bad;
}

static void *xmalloc(struct tally *t, size_t n)
{
    void *p = malloc(n);
    if (p == NULL)
        die("out of memory");
    escape(p);
    t->ops++;
    return p;
}

/* A block a workload keeps: where, how big, and its tag. */
struct slot {
    void *p;
    size_t n;
    uint64_t tag;
};

static inline void slot_fill(struct tally *t, struct rng *r, struct slot *s, size_t n)
{
    s->p = xmalloc(t, n);
    live_add((int64_t)n);
    s->n = n;
    s->tag = rng_next(r);
    stamp(t, s->p, n, s->tag);
}

static inline void slot_empty(struct tally *t, struct slot *s)
{
    if (s->p == NULL)
        return;
    check(t, s->p, s->n, s->tag);
    free(s->p);
    live_add(-(int64_t)s->n);
    s->p = NULL;
}

static struct slot *slots_new(size_t count)
{
    /* calloc: the slot arrays are the benchmark's own bookkeeping, made
     * once; they come from the allocator under test like everything else. */
    struct slot *s = calloc(count, sizeof *s);
    if (s == NULL)
        die("out of memory");
    live_add((int64_t)(count * sizeof *s));
    return s;
}

static void slots_free(struct tally *t, struct slot *s, size_t count)
{
    for (size_t i = 0; i < count; i++)
        slot_empty(t, &s[i]);
    free(s);
    live_add(-(int64_t)(count * sizeof *s));
}

/* ---- the run: options and totals shared with the workloads ---- */

struct run {
    uint64_t ops;         /* the workload's main operation count */
    unsigned threads;
    uint64_t seed;
    pthread_mutex_t lock; /* guards total */
    struct tally total;
};

static void tally_add(struct run *run, const struct tally *t)
{
    pthread_mutex_lock(&run->lock);
    run->total.written += t->written;
    run->total.read += t->read;
    run->total.bad += t->bad;
    run->total.ops += t->ops;
    pthread_mutex_unlock(&run->lock);
}

static void start_threads(unsigned count, pthread_t *ids, void *(*fn)(void *), void *args, size_t arg_size)
{
    for (unsigned i = 0; i < count; i++) {
        int e = pthread_create(&ids[i], NULL, fn, (char *)args + i * arg_size);
        if (e != 0) {
            errno = e;
            perror("mmbench: pthread_create");
            exit(2);
        }
    }
}

static void join_threads(unsigned count, pthread_t *ids)
{
    for (unsigned i = 0; i < count; i++)
        pthread_join(ids[i], NULL);
}

/* ---- (a) pair32: malloc and free of one 32-byte block, over and over ---- */

static void w_pair32(struct run *run)
{
    struct tally t = {0};
    struct rng r;
    rng_seed(&r, run->seed);
    uint64_t tag = rng_next(&r);
    for (uint64_t i = 0; i < run->ops; i++) {
        void *p = xmalloc(&t, 32);
        stamp(&t, p, 32, tag + i);
        escape(p);
        check(&t, p, 32, tag + i);
        free(p);
    }
    tally_add(run, &t);
}

/* The same with nothing around the calls: what callgrind counts. */
static void w_pair_bare(struct run *run)
{
    struct tally t = {0};
    for (uint64_t i = 0; i < run->ops; i++) {
        void *p = malloc(32);
        escape(p);
        if (p == NULL)
            t.bad++;
        free(p);
    }
    t.ops = run->ops;
    tally_add(run, &t);
}

/* ---- (b) churn: replace random blocks of a live set with new random sizes ---- */

static void churn(struct run *run, size_t live, size_t lo, size_t hi, int logsizes)
{
    struct tally t = {0};
    struct rng r;
    rng_seed(&r, run->seed);
    struct slot *s = slots_new(live);
    for (uint64_t i = 0; i < run->ops; i++) {
        struct slot *x = &s[rng_next(&r) % live];
        slot_empty(&t, x);
        slot_fill(&t, &r, x, logsizes ? rng_logsize(&r, lo, hi) : rng_range(&r, lo, hi));
    }
    slots_free(&t, s, live);
    tally_add(run, &t);
}

static void w_churn_small(struct run *run) { churn(run, 20000, 16, 256, 0); }
static void w_churn_medium(struct run *run) { churn(run, 4000, 256, 8192, 0); }
/* Up to just below the mmap threshold: everything stays in the heap. */
static void w_churn_mixed(struct run *run) { churn(run, 2000, 16, 128 * 1024 - 64, 1); }

/* ---- (c) larson-style server: each thread works on a set of blocks for a
 * round, then the sets move on to the next thread, which frees what the
 * previous one allocated, like requests handed between worker threads. ---- */

#define LARSON_SLOTS 4000
#define LARSON_ROUNDS 50

struct larson {
    struct run *run;
    unsigned id;
    struct slot **sets;        /* one per thread, shared */
    pthread_barrier_t *barrier;
};

static void *larson_thread(void *arg)
{
    struct larson *a = arg;
    struct run *run = a->run;
    struct tally t = {0};
    struct rng r;
    rng_seed(&r, run->seed + a->id);
    uint64_t per_round = run->ops / run->threads / LARSON_ROUNDS + 1;
    for (unsigned round = 0; round < LARSON_ROUNDS; round++) {
        struct slot *s = a->sets[(a->id + round) % run->threads];
        for (uint64_t i = 0; i < per_round; i++) {
            struct slot *x = &s[rng_next(&r) % LARSON_SLOTS];
            slot_empty(&t, x);
            slot_fill(&t, &r, x, rng_range(&r, 16, 512));
        }
        pthread_barrier_wait(a->barrier);
    }
    /* Each thread frees the set it would have worked on next. */
    struct slot *s = a->sets[(a->id + LARSON_ROUNDS) % run->threads];
    for (size_t i = 0; i < LARSON_SLOTS; i++)
        slot_empty(&t, &s[i]);
    tally_add(run, &t);
    return NULL;
}

static void w_larson(struct run *run)
{
    unsigned n = run->threads;
    pthread_t ids[n];
    struct larson args[n];
    struct slot *sets[n];
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, n);
    for (unsigned i = 0; i < n; i++) {
        sets[i] = slots_new(LARSON_SLOTS);
        args[i] = (struct larson){ run, i, sets, &barrier };
    }
    start_threads(n, ids, larson_thread, args, sizeof args[0]);
    join_threads(n, ids);
    for (unsigned i = 0; i < n; i++)
        free(sets[i]);
    pthread_barrier_destroy(&barrier);
}

/* ---- (d) producer/consumer: producers allocate and stamp blocks and pass
 * them through a single-producer single-consumer ring to a consumer that
 * checks and frees them. ---- */

#define RING 1024u

struct ring {
    _Alignas(64) uint64_t head;     /* written by the consumer */
    _Alignas(64) uint64_t tail;     /* written by the producer */
    _Alignas(64) struct slot item[RING];
};

struct prodcons {
    struct run *run;
    unsigned id;
    struct ring *ring;
    uint64_t count;
};

static void *producer_thread(void *arg)
{
    struct prodcons *a = arg;
    struct ring *q = a->ring;
    struct tally t = {0};
    struct rng r;
    rng_seed(&r, a->run->seed + 2 * a->id);
    uint64_t tail = 0;
    for (uint64_t i = 0; i < a->count; i++) {
        while (tail - __atomic_load_n(&q->head, __ATOMIC_ACQUIRE) == RING)
            sched_yield();
        slot_fill(&t, &r, &q->item[tail % RING], rng_range(&r, 16, 1024));
        __atomic_store_n(&q->tail, ++tail, __ATOMIC_RELEASE);
    }
    tally_add(a->run, &t);
    return NULL;
}

static void *consumer_thread(void *arg)
{
    struct prodcons *a = arg;
    struct ring *q = a->ring;
    struct tally t = {0};
    uint64_t head = 0;
    while (head < a->count) {
        uint64_t tail;
        while ((tail = __atomic_load_n(&q->tail, __ATOMIC_ACQUIRE)) == head)
            sched_yield();
        for (; head < tail; head++)
            slot_empty(&t, &q->item[head % RING]);
        __atomic_store_n(&q->head, head, __ATOMIC_RELEASE);
    }
    tally_add(a->run, &t);
    return NULL;
}

static void w_prodcons(struct run *run)
{
    unsigned pairs = run->threads;
    pthread_t ids[2 * pairs];
    struct prodcons args[2 * pairs];
    struct ring *rings = aligned_alloc(64, pairs * sizeof *rings);
    if (rings == NULL)
        die("out of memory");
    memset(rings, 0, pairs * sizeof *rings);
    for (unsigned i = 0; i < pairs; i++) {
        args[2 * i] = (struct prodcons){ run, i, &rings[i], run->ops / pairs };
        args[2 * i + 1] = args[2 * i];
    }
    for (unsigned i = 0; i < 2 * pairs; i++) {
        int e = pthread_create(&ids[i], NULL, i % 2 ? consumer_thread : producer_thread, &args[i]);
        if (e != 0)
            die("pthread_create failed");
    }
    join_threads(2 * pairs, ids);
    free(rings);
}

/* ---- (e) realloc: many buffers grown a little at a time, in turn, the way
 * strings and vectors are built; each is freed once it reaches its limit. ---- */

static void w_realloc(struct run *run)
{
    enum { BUFFERS = 2000 };
    struct tally t = {0};
    struct rng r;
    rng_seed(&r, run->seed);
    struct slot *s = slots_new(BUFFERS);
    size_t limit[BUFFERS];
    for (size_t i = 0; i < BUFFERS; i++)
        limit[i] = 0;
    for (uint64_t i = 0; i < run->ops; i++) {
        size_t k = i % BUFFERS;
        struct slot *x = &s[k];
        if (x->p == NULL) {
            limit[k] = rng_logsize(&r, 256, 64 * 1024);
            slot_fill(&t, &r, x, rng_range(&r, 16, 64));
            continue;
        }
        /* Mostly small appends, sometimes a doubling. */
        size_t n = rng_next(&r) % 8 == 0 ? 2 * x->n : x->n + rng_range(&r, 1, 128);
        if (n > limit[k]) {
            slot_empty(&t, x);
            continue;
        }
        void *p = realloc(x->p, n);
        if (p == NULL)
            die("out of memory");
        escape(p);
        t.ops++;
        check(&t, p, x->n, x->tag);     /* the old contents came along */
        live_add((int64_t)n - (int64_t)x->n);
        x->p = p;
        x->n = n;
        x->tag = rng_next(&r);
        stamp(&t, p, n, x->tag);
    }
    slots_free(&t, s, BUFFERS);
    tally_add(run, &t);
}

/* ---- (f) fragmentation: rounds of many short-lived blocks, each round in a
 * bigger size band, with a few long-lived blocks made in between that stay
 * put and pin the memory around them. ---- */

static void w_fragment(struct run *run)
{
    enum { LONG = 20000, SHORT = 10000 };
    struct tally t = {0};
    struct rng r;
    rng_seed(&r, run->seed);
    struct slot *keep = slots_new(LONG);
    struct slot *tmp = slots_new(SHORT);
    uint64_t rounds = run->ops / SHORT + 1;
    for (uint64_t round = 0; round < rounds; round++) {
        size_t base = (size_t)16 << (round % 9);     /* 16 B .. 4 KiB */
        for (size_t i = 0; i < SHORT; i++) {
            slot_fill(&t, &r, &tmp[i], rng_range(&r, base, 2 * base));
            if (i % 8 == 0) {
                struct slot *k = &keep[rng_next(&r) % LONG];
                slot_empty(&t, k);
                slot_fill(&t, &r, k, rng_range(&r, 16, 192));
            }
        }
        /* Free every other block first, then the rest. */
        for (size_t i = 1; i < SHORT; i += 2)
            slot_empty(&t, &tmp[i]);
        for (size_t i = 0; i < SHORT; i += 2)
            slot_empty(&t, &tmp[i]);
    }
    slots_free(&t, tmp, SHORT);
    slots_free(&t, keep, LONG);
    tally_add(run, &t);
}

/* ---- (g) big blocks around the mmap threshold, 64 KiB - 512 KiB ---- */

static void w_big(struct run *run)
{
    churn(run, 32, 64 * 1024, 512 * 1024, 0);
}

/* ---- (h) multi-threaded churn: the same total work split over N threads,
 * each with its own live set of small and medium blocks. ---- */

static void *mt_churn_thread(void *arg)
{
    struct larson *a = arg;      /* only run and id are used */
    struct run *run = a->run;
    enum { LIVE = 4000 };
    struct tally t = {0};
    struct rng r;
    rng_seed(&r, run->seed + a->id);
    struct slot *s = slots_new(LIVE);
    uint64_t ops = run->ops / run->threads;
    for (uint64_t i = 0; i < ops; i++) {
        struct slot *x = &s[rng_next(&r) % LIVE];
        slot_empty(&t, x);
        slot_fill(&t, &r, x, rng_logsize(&r, 16, 2048));
    }
    slots_free(&t, s, LIVE);
    tally_add(run, &t);
    return NULL;
}

static void w_mt_churn(struct run *run)
{
    unsigned n = run->threads;
    pthread_t ids[n];
    struct larson args[n];
    for (unsigned i = 0; i < n; i++)
        args[i] = (struct larson){ run, i, NULL, NULL };
    start_threads(n, ids, mt_churn_thread, args, sizeof args[0]);
    join_threads(n, ids);
}

/* ---- (i) mleak: generations of short-lived threads.  Each allocates a
 * batch, frees most of it, and leaves the rest to the next generation,
 * which frees it after its maker has exited.  Nothing is leaked by the
 * program, so the peak RSS must stay near one generation's live set. ---- */

#define MLEAK_BATCH 2000
#define MLEAK_KEEP (MLEAK_BATCH / 4)

struct mleak {
    struct run *run;
    unsigned id;
    uint64_t generation;
    struct slot *handoff;       /* MLEAK_KEEP slots: the previous generation's */
};

static void *mleak_thread(void *arg)
{
    struct mleak *a = arg;
    struct tally t = {0};
    struct rng r;
    rng_seed(&r, a->run->seed + a->generation * 64 + a->id);
    for (size_t i = 0; i < MLEAK_KEEP; i++)
        slot_empty(&t, &a->handoff[i]);
    struct slot batch[MLEAK_BATCH];
    for (size_t i = 0; i < MLEAK_BATCH; i++)
        slot_fill(&t, &r, &batch[i], rng_logsize(&r, 16, 4096));
    for (size_t i = 0; i < MLEAK_BATCH; i++) {
        if (i % 4 == 0)
            a->handoff[i / 4] = batch[i];
        else
            slot_empty(&t, &batch[i]);
    }
    tally_add(a->run, &t);
    return NULL;
}

static void w_mleak(struct run *run)
{
    unsigned n = run->threads;
    uint64_t generations = run->ops / ((uint64_t)n * MLEAK_BATCH) + 1;
    pthread_t ids[n];
    struct mleak args[n];
    struct slot *handoff[n];
    for (unsigned i = 0; i < n; i++)
        handoff[i] = slots_new(MLEAK_KEEP);
    for (uint64_t g = 0; g < generations; g++) {
        for (unsigned i = 0; i < n; i++)
            /* Rotate the hand-offs so a block is freed by a different thread slot. */
            args[i] = (struct mleak){ run, i, g, handoff[(i + g) % n] };
        start_threads(n, ids, mleak_thread, args, sizeof args[0]);
        join_threads(n, ids);
    }
    struct tally t = {0};
    for (unsigned i = 0; i < n; i++)
        slots_free(&t, handoff[i], MLEAK_KEEP);
    tally_add(run, &t);
}

/* ---- (j) release: about 200 MB in a fragmenting pattern of 16 B-64 KiB
 * blocks (all below the usual mmap thresholds: heap memory), every 16th kept
 * for long and pinning the memory around it, the others freed in a
 * scattered order.  Prints the resident set size right after the free and
 * after 1.5 s of idling and a little more allocation work (when an allocator
 * that returns memory after a delay has done so), then the same once the
 * kept blocks are freed too: how much of the freed memory each allocator
 * gives back to the system. ---- */

static size_t rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f == NULL || fscanf(f, "%lu %lu", &size, &resident) != 2)
        die("cannot read /proc/self/statm");
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE) / 1024;
}

/* 1.5 s idle, then a little more work: what allocators that release after
 * a delay (or every so many operations) take as their occasion to do so. */
static void idle_then_work(struct tally *t, struct rng *r)
{
    struct timespec idle = { 1, 500000000 };
    while (nanosleep(&idle, &idle) != 0)
        ;
    for (int i = 0; i < 2000; i++) {
        struct slot x = { NULL, 0, 0 };
        slot_fill(t, r, &x, i % 10 == 0 ? 64 * 1024 : rng_range(r, 16, 1024));
        slot_empty(t, &x);
    }
}

static void w_release(struct run *run)
{
    struct tally t = {0};
    struct rng r;
    rng_seed(&r, run->seed);
    size_t count = (size_t)run->ops;
    struct slot *s = slots_new(count);
    size_t before = rss_kib(), live = 0;
    for (size_t i = 0; i < count; i++)
        slot_fill(&t, &r, &s[i], rng_logsize(&r, 16, 64 * 1024));
    size_t peak = rss_kib();
    for (size_t i = 1; i < count; i += 2)          /* odd ones first, */
        slot_empty(&t, &s[i]);
    for (size_t i = count; i-- > 0;) {             /* then the rest but every 16th, from the far end */
        if (i % 16 == 0)
            live += s[i].n;
        else
            slot_empty(&t, &s[i]);
    }
    size_t after = rss_kib();
    idle_then_work(&t, &r);
    size_t later = rss_kib();
    slots_free(&t, s, count);                      /* and now everything */
    size_t all = rss_kib();
    idle_then_work(&t, &r);
    size_t all_later = rss_kib();
    printf("rss-after-free: before %zu peak %zu after %zu later %zu all %zu all-later %zu live %zu KiB\n", before,
           peak, after, later, all, all_later, live / 1024);
    tally_add(run, &t);
}

/* ---- the table of workloads ---- */

struct workload {
    const char *name;
    void (*fn)(struct run *);
    uint64_t ops;        /* default operation count */
    unsigned threads;    /* default thread count */
    const char *what;
};

static const struct workload workloads[] = {
    { "pair32",       w_pair32,        40000000, 1, "malloc(32)/free pairs" },
    { "pair-bare",    w_pair_bare,     40000000, 1, "malloc(32)/free pairs, no stamping (for callgrind)" },
    { "churn-small",  w_churn_small,   10000000, 1, "replace random blocks of 16-256 B, 20000 live" },
    { "churn-medium", w_churn_medium,   3000000, 1, "replace random blocks of 256 B-8 KiB, 4000 live" },
    { "churn-mixed",  w_churn_mixed,    1500000, 1, "replace random blocks of 16 B-128 KiB (log-uniform), 2000 live" },
    { "larson",       w_larson,         8000000, 4, "threads work on block sets that move from thread to thread" },
    { "prodcons",     w_prodcons,       2000000, 1, "producer/consumer pairs, frees in the consumer" },
    { "realloc",      w_realloc,        1500000, 1, "2000 buffers grown by realloc in turn" },
    { "fragment",     w_fragment,       1000000, 1, "short-lived rounds of growing sizes, long-lived blocks in between" },
    { "big",          w_big,             150000, 1, "replace random blocks of 64-512 KiB, 32 live" },
    { "mt-churn",     w_mt_churn,       8000000, 2, "per-thread churn of 16 B-2 KiB, total work split over the threads" },
    { "mleak",        w_mleak,          4000000, 4, "generations of threads that allocate, free most, hand the rest on and exit" },
    { "release",      w_release,          16000, 1, "about 200 MB of 16 B-64 KiB blocks freed (every 16th last): RSS after" },
};

static const struct workload *find_workload(const char *name)
{
    for (size_t i = 0; i < sizeof workloads / sizeof workloads[0]; i++)
        if (strcmp(workloads[i].name, name) == 0)
            return &workloads[i];
    return NULL;
}

/* Which malloc is this process using?  Each allocator is recognised by a
 * function only it exports; glibc is what is left. */
static void print_allocator(void)
{
    const char *(*mm_version)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "mymalloc_version");
    int (*mi_version)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "mi_version");
    const char *(*tc_version)(int *, int *, const char **) =
        (const char *(*)(int *, int *, const char **))dlsym(RTLD_DEFAULT, "tc_version");
    int (*mallctl)(const char *, void *, size_t *, void *, size_t) =
        (int (*)(const char *, void *, size_t *, void *, size_t))dlsym(RTLD_DEFAULT, "mallctl");
    if (mm_version != NULL) {
        printf("mymalloc %s\n", mm_version());
    } else if (mi_version != NULL) {
        int v = mi_version();
        printf("mimalloc %d.%d.%d\n", v / 100, v / 10 % 10, v % 10);
    } else if (tc_version != NULL) {
        int major, minor;
        const char *patch;
        printf("tcmalloc %s\n", tc_version(&major, &minor, &patch));
    } else if (mallctl != NULL) {
        const char *v = "?";
        size_t len = sizeof v;
        mallctl("version", &v, &len, NULL, 0);
        printf("jemalloc %s\n", v);
    } else {
        printf("glibc %s\n", gnu_get_libc_version());
    }
}

/* -m: one more line, after the result:
 *
 *   memory: live-peak 5123456 heap-peak 7340032 mapped-peak 724992
 *
 * live-peak: the most bytes the workload had asked for and not yet freed;
 * heap-peak and mapped-peak: under mymalloc, the largest its heap and the
 * total of its separately mapped blocks have been (mymalloc_stats_get),
 * "-" under another malloc.  (heap-peak + mapped-peak) / live-peak is the
 * memory the allocator needed per byte the program kept: 1 would be perfect;
 * what is above comes from block headers and rounding, and from free blocks
 * that could not be used (fragmentation). */
static void print_memory(void)
{
    int (*stats_get)(struct mymalloc_stats *) =
        (int (*)(struct mymalloc_stats *))dlsym(RTLD_DEFAULT, "mymalloc_stats_get");
    struct mymalloc_stats st;
    printf("memory: live-peak %" PRId64, live_peak);
    if (stats_get != NULL && stats_get(&st) == 0)
        printf(" heap-peak %zu mapped-peak %zu\n", st.heap_peak_bytes, st.mapped_peak_bytes);
    else
        printf(" heap-peak - mapped-peak -\n");
}

static void usage(FILE *f)
{
    fprintf(f, "usage: mmbench [-s SCALE] [-n OPS] [-t THREADS] [-S SEED] [-m] WORKLOAD\n"
               "       mmbench -l    (list the workloads)\n"
               "       mmbench -V    (name the malloc in use)\n");
}

static double number(const char *s, const char *opt)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v > 0)) {
        fprintf(stderr, "mmbench: bad value for %s: %s\n", opt, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    double scale = 1.0, ops = 0, threads = 0, seed = 1;
    int c;
    while ((c = getopt(argc, argv, "s:n:t:S:lVmh")) != -1) {
        switch (c) {
        case 's': scale = number(optarg, "-s"); break;
        case 'n': ops = number(optarg, "-n"); break;
        case 't': threads = number(optarg, "-t"); break;
        case 'S': seed = number(optarg, "-S"); break;
        case 'l':
            for (size_t i = 0; i < sizeof workloads / sizeof workloads[0]; i++)
                printf("%-13s ops %-9" PRIu64 " threads %u  %s\n", workloads[i].name,
                       workloads[i].ops, workloads[i].threads, workloads[i].what);
            return 0;
        case 'V': print_allocator(); return 0;
        case 'm': track_live = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    const struct workload *w = find_workload(argv[optind]);
    if (w == NULL) {
        fprintf(stderr, "mmbench: no workload %s (mmbench -l lists them)\n", argv[optind]);
        return 2;
    }
    if (threads > 1024)
        die("too many threads");

    struct run run = {
        .ops = ops > 0 ? (uint64_t)ops : (uint64_t)(w->ops * scale),
        .threads = threads > 0 ? (unsigned)threads : w->threads,
        .seed = (uint64_t)seed,
    };
    if (run.ops == 0)
        run.ops = 1;
    pthread_mutex_init(&run.lock, NULL);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    w->fn(&run);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

    int good = run.total.bad == 0 && run.total.written == run.total.read;
    printf("%s: threads %u, %" PRIu64 " allocations in %.3f s (%.2f M/s), checksum %016" PRIx64 " %s\n",
           w->name, run.threads, run.total.ops, secs, (double)run.total.ops / secs / 1e6,
           run.total.written, good ? "ok" : "MISMATCH");
    if (track_live)
        print_memory();
    if (!good) {
        fprintf(stderr, "mmbench: %s: data check failed: %" PRIu64 " bad words, wrote %016" PRIx64
                        ", read back %016" PRIx64 "\n", w->name, run.total.bad, run.total.written, run.total.read);
        return 1;
    }
    return 0;
}
