/* classic.c - the classic allocator benchmarks, the second group of
 * mymalloc's benchmark suite.
 *
 * One program, one workload per run:  classic [options] WORKLOAD
 * Like mmbench it is linked with nothing but libc and libpthread, so the
 * allocator under test is whatever the dynamic loader gives it (bench/run
 * puts each one in front with LD_PRELOAD).
 *
 * The workloads follow the published descriptions of the benchmarks the
 * allocator literature keeps running: Larson and Krishnan's server
 * simulation, Lever and Boreham's xmalloc-test, glibc's bench-malloc-simple
 * and bench-malloc-thread, the rpmalloc benchmark (rptest), Hoard's
 * cache-scratch and cache-thrash, mstress, ITHare's alloc-test, and the
 * malloc-large and mleak tests of the mimalloc benchmark suite.  They are
 * written here from those descriptions (bench/README says what each does and
 * which one it follows); no line comes from the original programs.  All of
 * them do a fixed amount of work, so that the time of a run is what is
 * measured (several of the originals run for a fixed time and count).
 *
 * Every block is stamped when it is allocated and checked before it is
 * freed: a random 64-bit tag in its first word, a word derived from the tag
 * in its last word and in every 4 KiB page between (blocks under 16 bytes:
 * every byte).  Blocks that travel between threads without their bookkeeping
 * carry it: their second word holds their size.  Each thread adds up the tags
 * it wrote and the tags it read back; every block is checked once, so the
 * sums must agree and no word may be wrong.  The cache workloads check the
 * bytes they keep incrementing.  The program prints one line and exits 0 when
 * everything agreed, 1 otherwise.
 *
 * Options: -s SCALE multiplies the workload's operation count (default 1),
 *          -n OPS sets it outright, -t THREADS overrides the thread count,
 *          -S SEED changes the random seed, -l lists the workloads.
 * The default sizes take 0.3-1.5 s each under glibc on a 2-core machine. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u

static void die(const char *what)
{
    fprintf(stderr, "classic: %s\n", what);
    exit(2);
}

/* Keeps the compiler from dropping stores through p, or the malloc and free
 * calls around them. */
static inline void escape(void *p)
{
    __asm__ volatile("" : : "r"(p) : "memory");
}

/* ---- random numbers: splitmix64 to seed, xorshift64* per thread ---- */

static inline uint64_t mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

struct rng { uint64_t s; };

static inline uint64_t rnd(struct rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1DULL;
}

/* A generator for the stream (a, b) of the run's seed. */
static void rng_init(struct rng *r, uint64_t seed, uint64_t a, uint64_t b)
{
    r->s = mix64(mix64(mix64(seed) ^ a) ^ (b * 0x2545F4914F6CDD1DULL));
    if (r->s == 0)
        r->s = 1;
}

/* Uniform in [0, n) and in [lo, hi]. */
static inline uint64_t below(struct rng *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)rnd(r) * n) >> 64);
}

static inline size_t between(struct rng *r, size_t lo, size_t hi)
{
    return lo + (size_t)below(r, hi - lo + 1);
}

/* Uniform in (0, 1]. */
static inline double unit(struct rng *r)
{
    return (double)((rnd(r) >> 11) + 1) * (1.0 / 9007199254740992.0);
}

/* Density proportional to 1 / size^2 on [lo, hi] (a Pareto tail with
 * exponent 1, cut at hi): most requests tiny, a few big. */
static inline size_t pareto(struct rng *r, size_t lo, size_t hi)
{
    double a = 1.0 / (double)lo, b = 1.0 / (double)(hi + 1);
    size_t n = (size_t)(1.0 / (a - unit(r) * (a - b)));
    return n < lo ? lo : n > hi ? hi : n;
}

/* Roughly log-uniform on [lo, hi]: a random power-of-two band, then uniform in it. */
static inline size_t logsize(struct rng *r, size_t lo, size_t hi)
{
    unsigned bands = 0;
    while ((lo << (bands + 1)) <= hi)
        bands++;
    size_t base = lo << below(r, bands + 1);
    size_t top = base * 2 - 1;
    return between(r, base, top > hi ? hi : top);
}

/* ---- what every thread tallies, and the run's totals ---- */

struct tally {
    uint64_t written, read;   /* sums of the tags stamped and checked */
    uint64_t bad;             /* words (or bytes) that did not hold what was written */
    uint64_t ops;             /* allocation calls */
};

static pthread_mutex_t total_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tally total;

static void tally_add(const struct tally *t)
{
    pthread_mutex_lock(&total_lock);
    total.written += t->written;
    total.read += t->read;
    total.bad += t->bad;
    total.ops += t->ops;
    pthread_mutex_unlock(&total_lock);
}

/* ---- stamping ---- */

static inline uint64_t load64(const void *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void store64(void *p, uint64_t v)
{
    memcpy(p, &v, sizeof v);
}

/* The byte i of a small block stamped with tag. */
static inline unsigned char tag_byte(uint64_t tag, size_t i)
{
    return (unsigned char)((tag >> (8 * (i & 7))) + 131 * i);
}

static inline void stamp(struct tally *t, void *p, size_t n, uint64_t tag)
{
    unsigned char *c = p;
    if (n < 16) {
        for (size_t i = 0; i < n; i++)
            c[i] = tag_byte(tag, i);
    } else {
        store64(c, tag);
        for (size_t off = PAGE; off + 16 <= n; off += PAGE)
            store64(c + off, tag + off);
        store64(c + n - 8, tag ^ n);
    }
    t->written += tag;
}

static inline void check(struct tally *t, const void *p, size_t n, uint64_t tag)
{
    const unsigned char *c = p;
    uint64_t bad = 0;
    if (n < 16) {
        for (size_t i = 0; i < n; i++)
            bad += c[i] != tag_byte(tag, i);
        t->read += bad ? ~tag : tag;
    } else {
        uint64_t head = load64(c);
        bad += head != tag;
        for (size_t off = PAGE; off + 16 <= n; off += PAGE)
            bad += load64(c + off) != tag + off;
        bad += load64(c + n - 8) != (tag ^ n);
        t->read += head;
    }
    t->bad += bad;
}

static inline void *xmalloc(struct tally *t, size_t n)
{
    void *p = malloc(n);
    if (p == NULL)
        die("out of memory");
    escape(p);
    t->ops++;
    return p;
}

/* A block and its bookkeeping, in an array the workload keeps. */
struct slot {
    void *p;
    size_t n;
    uint64_t tag;
};

static inline void fill(struct tally *t, struct rng *r, struct slot *s, size_t n)
{
    s->p = xmalloc(t, n);
    s->n = n;
    s->tag = rnd(r);
    stamp(t, s->p, n, s->tag);
}

static inline void empty(struct tally *t, struct slot *s)
{
    if (s->p == NULL)
        return;
    check(t, s->p, s->n, s->tag);
    free(s->p);
    s->p = NULL;
}

static struct slot *slots(size_t count)
{
    struct slot *s = calloc(count, sizeof *s);
    if (s == NULL)
        die("out of memory");
    return s;
}

/* A block that carries its own bookkeeping (16 B <= n < 16 MiB): its size
 * is in the low 24 bits of its tag.  What passes from thread to thread as a
 * bare pointer is one of these. */
#define SIZE_BITS 0xFFFFFFULL

static inline void *carried_new(struct tally *t, struct rng *r, size_t n)
{
    void *p = xmalloc(t, n);
    stamp(t, p, n, (rnd(r) & ~SIZE_BITS) | n);
    return p;
}

/* Checks a carried block; a size it cannot have is counted as bad, and
 * nothing beyond the first word is read. */
static inline void carried_check(struct tally *t, const void *p, size_t lo, size_t hi)
{
    uint64_t tag = load64(p);
    size_t n = (size_t)(tag & SIZE_BITS);
    if (n < lo || n > hi) {
        t->bad++;
        t->read += tag;
    } else {
        check(t, p, n, tag);
    }
}

static inline void carried_free(struct tally *t, void *p, size_t lo, size_t hi)
{
    if (p == NULL)
        return;
    carried_check(t, p, lo, hi);
    free(p);
}

/* ---- threads ---- */

static void spawn(pthread_t *id, void *(*fn)(void *), void *arg)
{
    int e = pthread_create(id, NULL, fn, arg);
    if (e != 0) {
        errno = e;
        perror("classic: pthread_create");
        exit(2);
    }
}

/* The run: what the workload was asked to do. */
struct run {
    const struct workload *w;
    uint64_t ops;        /* the workload's operation count, after -s / -n */
    unsigned threads;
    uint64_t seed;
};

struct workload {
    const char *name;
    void (*fn)(const struct run *);
    uint64_t ops;        /* default operation count */
    unsigned threads;    /* default thread count */
    size_t lo, hi;       /* block sizes, for the workloads that take them */
    const char *what;
};

/* Runs fn(&args[i]) in `count` threads and waits for them. */
static void run_threads(unsigned count, void *(*fn)(void *), void *args, size_t arg_size)
{
    pthread_t *ids = calloc(count, sizeof *ids);
    if (ids == NULL)
        die("out of memory");
    for (unsigned i = 0; i < count; i++)
        spawn(&ids[i], fn, (char *)args + i * arg_size);
    for (unsigned i = 0; i < count; i++)
        pthread_join(ids[i], NULL);
    free(ids);
}

/* ==== larson: Larson and Krishnan's server simulation ====
 *
 * Each of T lineages owns an array of BLOCKS blocks of random sizes in
 * [lo, hi], made by the main thread before the clock of the lineage starts.
 * A thread of the lineage replaces ROUNDS random blocks of the array (frees
 * the block in a random slot, allocates one of a new random size into it),
 * then creates a new thread, hands it the array and exits; the new thread
 * joins its predecessor and goes on.  So every thread frees blocks that
 * threads which have exited allocated, the pattern Larson and Krishnan saw
 * in long-running servers ("bleeding").  The original runs for a fixed time
 * and reports throughput; here each lineage runs a fixed number of thread
 * generations, ops / (T * ROUNDS), and the program reports throughput. */

#define LARSON_BLOCKS 1000
#define LARSON_ROUNDS 10000

static pthread_mutex_t larson_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t larson_done = PTHREAD_COND_INITIALIZER;
static unsigned larson_running;

struct lineage {
    const struct run *run;
    unsigned id;
    uint64_t generation, generations;
    struct slot *set;
    pthread_t prev;       /* the thread that handed the set on: to join */
};

static void *larson_thread(void *arg)
{
    struct lineage *l = arg;
    const struct run *run = l->run;
    if (l->generation > 0)
        pthread_join(l->prev, NULL);
    struct tally t = {0};
    struct rng r;
    rng_init(&r, run->seed, l->id, l->generation + 1);
    for (unsigned i = 0; i < LARSON_ROUNDS; i++) {
        struct slot *s = &l->set[below(&r, LARSON_BLOCKS)];
        empty(&t, s);
        fill(&t, &r, s, between(&r, run->w->lo, run->w->hi));
    }
    tally_add(&t);
    l->generation++;
    l->prev = pthread_self();
    if (l->generation < l->generations) {
        pthread_t next;
        spawn(&next, larson_thread, l);      /* l is the successor's from here on */
    } else {
        pthread_mutex_lock(&larson_lock);
        larson_running--;
        pthread_cond_signal(&larson_done);
        pthread_mutex_unlock(&larson_lock);
    }
    return NULL;
}

static void w_larson(const struct run *run)
{
    unsigned n = run->threads;
    struct lineage *l = calloc(n, sizeof *l);
    if (l == NULL)
        die("out of memory");
    uint64_t generations = run->ops / ((uint64_t)n * LARSON_ROUNDS);
    struct tally t = {0};
    struct rng r;
    rng_init(&r, run->seed, 0, 0);
    for (unsigned i = 0; i < n; i++) {
        l[i] = (struct lineage){ run, i, 0, generations ? generations : 1, slots(LARSON_BLOCKS), pthread_self() };
        for (size_t k = 0; k < LARSON_BLOCKS; k++)
            fill(&t, &r, &l[i].set[k], between(&r, run->w->lo, run->w->hi));
    }
    larson_running = n;
    for (unsigned i = 0; i < n; i++) {
        pthread_t first;
        spawn(&first, larson_thread, &l[i]);
    }
    pthread_mutex_lock(&larson_lock);
    while (larson_running > 0)
        pthread_cond_wait(&larson_done, &larson_lock);
    pthread_mutex_unlock(&larson_lock);
    for (unsigned i = 0; i < n; i++) {
        pthread_join(l[i].prev, NULL);
        for (size_t k = 0; k < LARSON_BLOCKS; k++)
            empty(&t, &l[i].set[k]);
        free(l[i].set);
    }
    free(l);
    tally_add(&t);
}

/* ==== xmalloc-test: Lever and Boreham's producers and consumers ====
 *
 * Half the threads only allocate, the other half only free.  A producer
 * allocates blocks of random sizes in [lo, hi], stamps them, and puts them,
 * BATCH at a time (in a batch record it also allocates), on one queue shared
 * by all threads; a consumer takes batches off the queue, checks and frees
 * every block, and frees the record.  The queue holds at most QUEUE batches
 * (the original's grows without bound, so its memory use depends on speed). */

#define XM_BATCH 64
#define XM_QUEUE 64

struct xbatch {
    struct slot item[XM_BATCH];
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t nonempty, nonfull;
    struct xbatch *q[XM_QUEUE];
    unsigned head, count, producers;
} xq = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, 0, 0 };

struct xworker {
    const struct run *run;
    unsigned id;
    int producer;
    uint64_t batches;     /* producers: how many to make */
};

static void *xm_producer(void *arg)
{
    struct xworker *a = arg;
    struct tally t = {0};
    struct rng r;
    rng_init(&r, a->run->seed, a->id, 1);
    for (uint64_t b = 0; b < a->batches; b++) {
        struct xbatch *x = xmalloc(&t, sizeof *x);
        for (unsigned i = 0; i < XM_BATCH; i++)
            fill(&t, &r, &x->item[i], between(&r, a->run->w->lo, a->run->w->hi));
        pthread_mutex_lock(&xq.lock);
        while (xq.count == XM_QUEUE)
            pthread_cond_wait(&xq.nonfull, &xq.lock);
        xq.q[(xq.head + xq.count++) % XM_QUEUE] = x;
        pthread_cond_signal(&xq.nonempty);
        pthread_mutex_unlock(&xq.lock);
    }
    pthread_mutex_lock(&xq.lock);
    xq.producers--;
    pthread_cond_broadcast(&xq.nonempty);
    pthread_mutex_unlock(&xq.lock);
    tally_add(&t);
    return NULL;
}

static void *xm_consumer(void *arg)
{
    (void)arg;
    struct tally t = {0};
    for (;;) {
        pthread_mutex_lock(&xq.lock);
        while (xq.count == 0 && xq.producers > 0)
            pthread_cond_wait(&xq.nonempty, &xq.lock);
        if (xq.count == 0) {
            pthread_mutex_unlock(&xq.lock);
            break;
        }
        struct xbatch *x = xq.q[xq.head];
        xq.head = (xq.head + 1) % XM_QUEUE;
        xq.count--;
        pthread_cond_signal(&xq.nonfull);
        pthread_mutex_unlock(&xq.lock);
        for (unsigned i = 0; i < XM_BATCH; i++)
            empty(&t, &x->item[i]);
        free(x);
    }
    tally_add(&t);
    return NULL;
}

static void *xm_thread(void *arg)
{
    struct xworker *a = arg;
    return a->producer ? xm_producer(arg) : xm_consumer(arg);
}

static void w_xmalloc(const struct run *run)
{
    unsigned n = run->threads < 2 ? 2 : run->threads;
    unsigned producers = n / 2;
    struct xworker *a = calloc(n, sizeof *a);
    if (a == NULL)
        die("out of memory");
    xq.producers = producers;
    uint64_t batches = run->ops / ((uint64_t)producers * XM_BATCH) + 1;
    for (unsigned i = 0; i < n; i++)
        a[i] = (struct xworker){ run, i, i < producers, batches };   /* an odd thread out consumes */
    run_threads(n, xm_thread, a, sizeof a[0]);
    free(a);
}

/* ==== glibc-simple: after glibc's benchtests/bench-malloc-simple ====
 *
 * One thread allocates a batch of blocks and frees them all again, batch
 * after batch: batches of 25, 100, 400 and 1600 blocks in turn, sizes random
 * in [lo, hi], freed in the order they were made or, every other cycle of
 * the four, in the reverse order.  glibc's benchmark times the same shape with one size per
 * run; the sizes are random here. */

static void w_glibc_simple(const struct run *run)
{
    static const unsigned counts[] = { 25, 100, 400, 1600 };
    struct tally t = {0};
    struct rng r;
    rng_init(&r, run->seed, 0, 1);
    struct slot *s = slots(1600);
    uint64_t done = 0;
    for (unsigned round = 0; done < run->ops; round++) {
        unsigned c = counts[round % 4];
        for (unsigned i = 0; i < c; i++)
            fill(&t, &r, &s[i], between(&r, run->w->lo, run->w->hi));
        if (round / 4 % 2 == 0) {
            for (unsigned i = 0; i < c; i++)
                empty(&t, &s[i]);
        } else {
            for (unsigned i = c; i-- > 0;)
                empty(&t, &s[i]);
        }
        done += c;
    }
    free(s);
    tally_add(&t);
}

/* ==== glibc-thread: after glibc's benchtests/bench-malloc-thread ====
 *
 * Each thread keeps a working set of 1024 slots and, again and again, frees
 * the block in a random slot and allocates a new one there, of a random size
 * in [lo, hi] with density 1/size^2 (most under 64 bytes, a few up to
 * 32 KiB).  glibc's runs for a fixed time per thread; here the operation
 * count is split between the threads. */

#define GT_SET 1024

struct worker {
    const struct run *run;
    unsigned id;
    uint64_t ops;
};

static void *glibc_thread(void *arg)
{
    struct worker *a = arg;
    struct tally t = {0};
    struct rng r;
    rng_init(&r, a->run->seed, a->id, 2);
    struct slot *s = slots(GT_SET);
    for (uint64_t i = 0; i < a->ops; i++) {
        struct slot *x = &s[below(&r, GT_SET)];
        empty(&t, x);
        fill(&t, &r, x, pareto(&r, a->run->w->lo, a->run->w->hi));
    }
    for (size_t i = 0; i < GT_SET; i++)
        empty(&t, &s[i]);
    free(s);
    tally_add(&t);
    return NULL;
}

static void split_run(const struct run *run, void *(*fn)(void *))
{
    unsigned n = run->threads;
    struct worker *a = calloc(n, sizeof *a);
    if (a == NULL)
        die("out of memory");
    for (unsigned i = 0; i < n; i++)
        a[i] = (struct worker){ run, i, run->ops / n + 1 };
    run_threads(n, fn, a, sizeof a[0]);
    free(a);
}

static void w_glibc_thread(const struct run *run)
{
    split_run(run, glibc_thread);
}

/* ==== rptest: after the rpmalloc benchmark ====
 *
 * Each thread keeps a working set of RP_SET slots.  A loop replaces RP_LOOP
 * random slots with blocks of log-uniform random sizes in [lo, hi]; every
 * RP_CROSS-th new block goes instead to the next thread's mailbox, which that
 * thread empties (checks and frees) after each of its loops: cross-thread
 * frees.  At the end of a loop a random half of the working set is freed,
 * and the next loop fills it again: memory is reused round after round, in
 * part by the thread that did not free it. */

#define RP_SET 2000
#define RP_LOOP 4000
#define RP_CROSS 8
#define RP_BOX 2048
#define RP_OUT 64

struct mailbox {
    pthread_mutex_t lock;
    size_t count;
    struct slot item[RP_BOX];
};

struct rpworker {
    const struct run *run;
    unsigned id;
    uint64_t loops;
    struct mailbox *boxes;       /* one per thread */
    pthread_barrier_t *done;
};

/* Posts k blocks to a mailbox; what does not fit is freed here. */
static void rp_post(struct tally *t, struct mailbox *box, struct slot *out, size_t k)
{
    pthread_mutex_lock(&box->lock);
    size_t room = RP_BOX - box->count, take = k < room ? k : room;
    memcpy(&box->item[box->count], out, take * sizeof *out);
    box->count += take;
    pthread_mutex_unlock(&box->lock);
    for (size_t i = take; i < k; i++)
        empty(t, &out[i]);
}

static void rp_drain(struct tally *t, struct mailbox *box, struct slot *buf)
{
    pthread_mutex_lock(&box->lock);
    size_t k = box->count;
    memcpy(buf, box->item, k * sizeof *buf);
    box->count = 0;
    pthread_mutex_unlock(&box->lock);
    for (size_t i = 0; i < k; i++)
        empty(t, &buf[i]);
}

static void *rp_thread(void *arg)
{
    struct rpworker *a = arg;
    const struct run *run = a->run;
    struct mailbox *next = &a->boxes[(a->id + 1) % run->threads], *mine = &a->boxes[a->id];
    struct tally t = {0};
    struct rng r;
    rng_init(&r, run->seed, a->id, 3);
    struct slot *s = slots(RP_SET), *buf = slots(RP_BOX), out[RP_OUT];
    size_t nout = 0;
    for (uint64_t loop = 0; loop < a->loops; loop++) {
        for (unsigned i = 0; i < RP_LOOP; i++) {
            struct slot *x = &s[below(&r, RP_SET)];
            empty(&t, x);
            fill(&t, &r, x, logsize(&r, run->w->lo, run->w->hi));
            if (run->threads > 1 && i % RP_CROSS == 0) {
                out[nout++] = *x;
                x->p = NULL;
                if (nout == RP_OUT) {
                    rp_post(&t, next, out, nout);
                    nout = 0;
                }
            }
        }
        rp_drain(&t, mine, buf);
        for (size_t i = 0; i < RP_SET; i++)
            if (rnd(&r) & 1)
                empty(&t, &s[i]);
    }
    rp_post(&t, next, out, nout);
    pthread_barrier_wait(a->done);      /* nothing more will be posted */
    rp_drain(&t, mine, buf);
    for (size_t i = 0; i < RP_SET; i++)
        empty(&t, &s[i]);
    free(s);
    free(buf);
    tally_add(&t);
    return NULL;
}

static void w_rptest(const struct run *run)
{
    unsigned n = run->threads;
    struct rpworker *a = calloc(n, sizeof *a);
    struct mailbox *boxes = calloc(n, sizeof *boxes);
    if (a == NULL || boxes == NULL)
        die("out of memory");
    pthread_barrier_t done;
    pthread_barrier_init(&done, NULL, n);
    uint64_t loops = run->ops / ((uint64_t)n * RP_LOOP) + 1;
    for (unsigned i = 0; i < n; i++) {
        pthread_mutex_init(&boxes[i].lock, NULL);
        a[i] = (struct rpworker){ run, i, loops, boxes, &done };
    }
    run_threads(n, rp_thread, a, sizeof a[0]);
    pthread_barrier_destroy(&done);
    free(boxes);
    free(a);
}

/* ==== cache-thrash and cache-scratch: Hoard's false-sharing tests ====
 *
 * cache-thrash (active false sharing): each thread, at the same time as the
 * others, allocates an 8-byte object, writes every byte of it CACHE_REPS
 * times (an increment each time), checks it and frees it, object after
 * object.  An allocator that hands out neighbouring objects of one cache
 * line to different threads makes the threads fight over that line.
 *
 * cache-scratch (passive false sharing): the main thread allocates one
 * 8-byte object per thread, one after the other (so neighbours in memory),
 * and hands one to each thread; each thread frees it and then does what
 * cache-thrash does.  An allocator that gives a thread back the memory it
 * just freed gives each thread a piece of the same cache line.
 *
 * Each thread does the same work however many threads there are, ops /
 * CACHE_REPS objects: on two CPUs, 1 and 2 threads take the same time unless
 * the threads share cache lines. */

#define CACHE_OBJ 8
#define CACHE_REPS 1000

struct cacheworker {
    const struct run *run;
    unsigned id;
    unsigned char *given;        /* cache-scratch: the object to free first */
    pthread_barrier_t *start;
};

/* Writes every byte of p reps times; the bytes start at seed + i. */
static inline void hammer(struct tally *t, unsigned char *p, unsigned seed)
{
    volatile unsigned char *v = p;
    for (unsigned i = 0; i < CACHE_OBJ; i++)
        v[i] = (unsigned char)(seed + i);
    for (unsigned k = 0; k < CACHE_REPS; k++)
        for (unsigned i = 0; i < CACHE_OBJ; i++)
            v[i]++;
    for (unsigned i = 0; i < CACHE_OBJ; i++)
        t->bad += v[i] != (unsigned char)(seed + i + CACHE_REPS);
}

static void *cache_thread(void *arg)
{
    struct cacheworker *a = arg;
    struct tally t = {0};
    uint64_t objects = a->run->ops / CACHE_REPS + 1;
    pthread_barrier_wait(a->start);
    if (a->given != NULL) {
        check(&t, a->given, CACHE_OBJ, a->id + 1);
        free(a->given);
    }
    for (uint64_t k = 0; k < objects; k++) {
        unsigned char *p = xmalloc(&t, CACHE_OBJ);
        hammer(&t, p, (unsigned)(k + a->id));
        free(p);
    }
    tally_add(&t);
    return NULL;
}

static void cache_run(const struct run *run, int scratch)
{
    unsigned n = run->threads;
    struct cacheworker *a = calloc(n, sizeof *a);
    if (a == NULL)
        die("out of memory");
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, n);
    struct tally t = {0};
    for (unsigned i = 0; i < n; i++) {
        a[i] = (struct cacheworker){ run, i, NULL, &start };
        if (scratch) {
            a[i].given = xmalloc(&t, CACHE_OBJ);
            stamp(&t, a[i].given, CACHE_OBJ, i + 1);
        }
    }
    run_threads(n, cache_thread, a, sizeof a[0]);
    pthread_barrier_destroy(&start);
    free(a);
    tally_add(&t);
}

static void w_cache_thrash(const struct run *run) { cache_run(run, 0); }
static void w_cache_scratch(const struct run *run) { cache_run(run, 1); }

/* ==== mstress: the mimalloc suite's server-like stress ====
 *
 * PHASES phases; each starts its threads afresh and ends them.  The threads
 * do unequal shares of the phase's work (thread i a share proportional to
 * i + 1).  A thread keeps MS_LOCAL blocks; each step replaces a random one
 * with a block whose size is a power of two, 16 B - 64 KiB, each twice as
 * likely as the next bigger.  One step in eight, the block being replaced
 * is not freed but swapped into a random place of a table shared by all
 * threads and all phases, and the block it displaces is freed: blocks move
 * between threads, and some live for several phases.  A thread that ends
 * puts a quarter of its blocks into the table the same way and frees the
 * rest. */

#define MS_PHASES 10
#define MS_LOCAL 1000
#define MS_TABLE 4096
#define MS_MAX (64 * 1024)

static void *ms_table[MS_TABLE];

static inline size_t ms_size(struct rng *r)
{
    unsigned k = (unsigned)__builtin_ctzll(rnd(r) | (1ULL << 12));
    return (size_t)16 << k;
}

static void ms_swap(struct tally *t, struct rng *r, void *p)
{
    void *old = __atomic_exchange_n(&ms_table[below(r, MS_TABLE)], p, __ATOMIC_ACQ_REL);
    carried_free(t, old, 16, MS_MAX);
}

static void *ms_thread(void *arg)
{
    struct worker *a = arg;
    struct tally t = {0};
    struct rng r;
    rng_init(&r, a->run->seed, a->id, 4);
    void **local = calloc(MS_LOCAL, sizeof *local);
    if (local == NULL)
        die("out of memory");
    for (uint64_t i = 0; i < a->ops; i++) {
        void **x = &local[below(&r, MS_LOCAL)];
        if (*x != NULL && rnd(&r) % 8 == 0)
            ms_swap(&t, &r, *x);
        else
            carried_free(&t, *x, 16, MS_MAX);
        *x = carried_new(&t, &r, ms_size(&r));
    }
    for (size_t i = 0; i < MS_LOCAL; i++) {
        if (local[i] != NULL && rnd(&r) % 4 == 0)
            ms_swap(&t, &r, local[i]);
        else
            carried_free(&t, local[i], 16, MS_MAX);
    }
    free(local);
    tally_add(&t);
    return NULL;
}

static void w_mstress(const struct run *run)
{
    unsigned n = run->threads;
    struct worker *a = calloc(n, sizeof *a);
    if (a == NULL)
        die("out of memory");
    uint64_t per_phase = run->ops / MS_PHASES + 1, shares = (uint64_t)n * (n + 1) / 2;
    for (unsigned phase = 0; phase < MS_PHASES; phase++) {
        for (unsigned i = 0; i < n; i++)
            a[i] = (struct worker){ run, phase * n + i, per_phase * (i + 1) / shares + 1 };
        run_threads(n, ms_thread, a, sizeof a[0]);
    }
    struct tally t = {0};
    for (size_t i = 0; i < MS_TABLE; i++)
        carried_free(&t, ms_table[i], 16, MS_MAX);
    tally_add(&t);
    free(a);
}

/* ==== alloc-test: after ITHare's allocator test ====
 *
 * Each thread keeps AT_SET blocks of sizes in [lo, hi] with density
 * 1/size^2 (a Pareto distribution, as the original's), and replaces random
 * ones.  Lifetimes differ: 31 replacements in 32 fall in the first eighth of
 * the slots (short-lived blocks), the rest in the other seven eighths, whose
 * blocks live about 200 times longer.  The operation count is split between
 * the threads. */

#define AT_SET 16384

static void *at_thread(void *arg)
{
    struct worker *a = arg;
    struct tally t = {0};
    struct rng r;
    rng_init(&r, a->run->seed, a->id, 5);
    struct slot *s = slots(AT_SET);
    for (size_t i = 0; i < AT_SET; i++)
        fill(&t, &r, &s[i], pareto(&r, a->run->w->lo, a->run->w->hi));
    for (uint64_t i = 0; i < a->ops; i++) {
        uint64_t v = rnd(&r);
        size_t k = v % 32 ? (size_t)below(&r, AT_SET / 8) : AT_SET / 8 + (size_t)below(&r, AT_SET - AT_SET / 8);
        empty(&t, &s[k]);
        fill(&t, &r, &s[k], pareto(&r, a->run->w->lo, a->run->w->hi));
    }
    for (size_t i = 0; i < AT_SET; i++)
        empty(&t, &s[i]);
    free(s);
    tally_add(&t);
    return NULL;
}

static void w_alloc_test(const struct run *run)
{
    split_run(run, at_thread);
}

/* ==== malloc-large: the mimalloc suite's large blocks ====
 *
 * LARGE_LIVE blocks live at a time; each step replaces a random one with a
 * block of a random size in [lo, hi] (2 - 25 MiB) and writes a word in
 * every page of it. */

#define LARGE_LIVE 8

static void w_malloc_large(const struct run *run)
{
    struct tally t = {0};
    struct rng r;
    rng_init(&r, run->seed, 0, 6);
    struct slot s[LARGE_LIVE];
    memset(s, 0, sizeof s);
    for (uint64_t i = 0; i < run->ops; i++) {
        struct slot *x = &s[below(&r, LARGE_LIVE)];
        empty(&t, x);
        fill(&t, &r, x, between(&r, run->w->lo, run->w->hi));
    }
    for (size_t i = 0; i < LARGE_LIVE; i++)
        empty(&t, &s[i]);
    tally_add(&t);
}

/* ==== leak: after the mimalloc suite's mleak ====
 *
 * Generations of short-lived threads, T at a time: each allocates
 * LEAK_BATCH blocks of random sizes in [lo, hi], frees seven in eight in a
 * scattered order, leaks the eighth (never frees it) and exits.  The peak
 * RSS shows what the leaked blocks cost (their headers and the memory
 * around them) and whether the exited threads' cached memory comes back to
 * the next generation.  The leaked blocks are checked at the end (not
 * freed): their pointers are kept in an array only the program reads. */

#define LEAK_BATCH 4096
#define LEAK_EVERY 8

static void **leaked;
static size_t leaked_count;

static void *leak_thread(void *arg)
{
    struct worker *a = arg;
    struct tally t = {0};
    struct rng r;
    rng_init(&r, a->run->seed, a->id, 7);
    void **batch = calloc(LEAK_BATCH, sizeof *batch);
    if (batch == NULL)
        die("out of memory");
    for (size_t i = 0; i < LEAK_BATCH; i++)
        batch[i] = carried_new(&t, &r, between(&r, a->run->w->lo, a->run->w->hi));
    /* Free in a scattered order: a stride prime to the batch size. */
    size_t k = 0;
    for (size_t i = 0; i < LEAK_BATCH; i++, k = (k + 1031) % LEAK_BATCH) {
        if (k % LEAK_EVERY == 0)
            leaked[__atomic_fetch_add(&leaked_count, 1, __ATOMIC_RELAXED)] = batch[k];
        else
            carried_free(&t, batch[k], a->run->w->lo, a->run->w->hi);
    }
    free(batch);
    tally_add(&t);
    return NULL;
}

static void w_leak(const struct run *run)
{
    unsigned n = run->threads;
    uint64_t generations = run->ops / ((uint64_t)n * LEAK_BATCH) + 1;
    leaked = calloc(generations * n * (LEAK_BATCH / LEAK_EVERY), sizeof *leaked);
    struct worker *a = calloc(n, sizeof *a);
    if (leaked == NULL || a == NULL)
        die("out of memory");
    for (uint64_t g = 0; g < generations; g++) {
        for (unsigned i = 0; i < n; i++)
            a[i] = (struct worker){ run, (unsigned)(g * n + i), 0 };
        run_threads(n, leak_thread, a, sizeof a[0]);
    }
    struct tally t = {0};
    for (size_t i = 0; i < leaked_count; i++)
        carried_check(&t, leaked[i], run->w->lo, run->w->hi);
    tally_add(&t);
    free(a);
    /* leaked itself is left too, with the blocks it points to */
}

/* ---- the table ---- */

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

static const struct workload workloads[] = {
    { "larson",          w_larson,        30000000, 2, 8, 1000,
      "Larson-Krishnan server: 1000 blocks of 8-1000 B per thread, 10000 replacements, then a new thread" },
    { "larson-sized",    w_larson,        40000000, 2, 10, 100,
      "larson with small blocks, 10-100 B" },
    { "larson-8",        w_larson,        20000000, 8, 8, 1000,
      "larson with 8 lineages of threads" },
    { "xmalloc-2",       w_xmalloc,        6000000, 2, 8, 512,
      "xmalloc-test: 1 thread allocates 8-512 B, 1 frees, batches through a shared queue" },
    { "xmalloc-8",       w_xmalloc,        8000000, 8, 8, 512,
      "xmalloc-test: 4 threads allocate, 4 free" },
    { "glibc-simple",    w_glibc_simple,  15000000, 1, 16, 256,
      "bench-malloc-simple: batches of 25/100/400/1600 blocks of 16-256 B made and freed" },
    { "glibc-thread-1",  w_glibc_thread,  10000000, 1, 4, 32 * KiB,
      "bench-malloc-thread: random replacement in a 1024-block working set, 4 B-32 KiB (1/size^2)" },
    { "glibc-thread-4",  w_glibc_thread,  10000000, 4, 4, 32 * KiB,
      "bench-malloc-thread with 4 threads (the work split between them)" },
    { "rptest-2",        w_rptest,         4000000, 2, 16, 16000,
      "rpmalloc benchmark: working sets of 16-16000 B reused, 1 in 8 blocks freed by the next thread" },
    { "rptest-8",        w_rptest,         4000000, 8, 16, 16000,
      "rptest with 8 threads" },
    { "cache-scratch-1", w_cache_scratch,   80000000, 1, CACHE_OBJ, CACHE_OBJ,
      "Hoard cache-scratch, passive false sharing: objects from main, freed, then 8-byte objects written" },
    { "cache-scratch-2", w_cache_scratch,   80000000, 2, CACHE_OBJ, CACHE_OBJ,
      "cache-scratch with 2 threads (the same work each)" },
    { "cache-thrash-1",  w_cache_thrash,    80000000, 1, CACHE_OBJ, CACHE_OBJ,
      "Hoard cache-thrash, active false sharing: each thread allocates 8-byte objects and writes them" },
    { "cache-thrash-2",  w_cache_thrash,    80000000, 2, CACHE_OBJ, CACHE_OBJ,
      "cache-thrash with 2 threads (the same work each)" },
    { "mstress",         w_mstress,       16000000, 4, 16, MS_MAX,
      "mstress: power-of-two sizes 16 B-64 KiB, blocks migrate through a shared table, 10 phases of threads" },
    { "alloc-test-1",    w_alloc_test,     8000000, 1, 8, 1 * KiB,
      "alloc-test: 16384 blocks of 8 B-1 KiB (Pareto), short- and long-lived" },
    { "alloc-test-2",    w_alloc_test,     8000000, 2, 8, 1 * KiB,
      "alloc-test with 2 threads (the work split between them)" },
    { "malloc-large",    w_malloc_large,       200, 1, 2 * MiB, 25 * MiB,
      "malloc-large: 8 live blocks of 2-25 MiB replaced at random, every page written" },
    { "leak",            w_leak,           3000000, 2, 16, 128,
      "mleak: generations of 2 threads allocate 16-128 B, leak 1 in 8, free the rest, exit" },
};

static const struct workload *find_workload(const char *name)
{
    for (size_t i = 0; i < sizeof workloads / sizeof workloads[0]; i++)
        if (strcmp(workloads[i].name, name) == 0)
            return &workloads[i];
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: classic [-s SCALE] [-n OPS] [-t THREADS] [-S SEED] WORKLOAD\n"
               "       classic -l    (list the workloads)\n");
}

static double number(const char *s, const char *opt)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v > 0)) {
        fprintf(stderr, "classic: bad value for %s: %s\n", opt, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    double scale = 1.0, ops = 0, threads = 0, seed = 1;
    int c;
    while ((c = getopt(argc, argv, "s:n:t:S:lh")) != -1) {
        switch (c) {
        case 's': scale = number(optarg, "-s"); break;
        case 'n': ops = number(optarg, "-n"); break;
        case 't': threads = number(optarg, "-t"); break;
        case 'S': seed = number(optarg, "-S"); break;
        case 'l':
            for (size_t i = 0; i < sizeof workloads / sizeof workloads[0]; i++)
                printf("%-15s ops %-9" PRIu64 " threads %u  %s\n", workloads[i].name, workloads[i].ops,
                       workloads[i].threads, workloads[i].what);
            return 0;
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
        fprintf(stderr, "classic: no workload %s (classic -l lists them)\n", argv[optind]);
        return 2;
    }
    if (threads > 1024)
        die("too many threads");
    struct run run = {
        .w = w,
        .ops = ops > 0 ? (uint64_t)ops : (uint64_t)((double)w->ops * scale),
        .threads = threads > 0 ? (unsigned)threads : w->threads,
        .seed = (uint64_t)seed,
    };
    if (run.ops == 0)
        run.ops = 1;

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    w->fn(&run);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

    int good = total.bad == 0 && total.written == total.read;
    printf("%s: threads %u, %" PRIu64 " allocations in %.3f s (%.2f M/s), checksum %016" PRIx64 " %s\n",
           w->name, run.threads, total.ops, secs, (double)total.ops / secs / 1e6, total.written,
           good ? "ok" : "MISMATCH");
    if (!good) {
        fprintf(stderr, "classic: %s: data check failed: %" PRIu64 " bad words, wrote %016" PRIx64
                        ", read back %016" PRIx64 "\n", w->name, total.bad, total.written, total.read);
        return 1;
    }
    return 0;
}
