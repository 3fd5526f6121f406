/* stress.c - mymalloc under pressure from threads, forks, signals and memory
 * limits, every block's contents verified whenever it changes hands:
 *
 *  1. 16 threads trade blocks through a shared mailbox, so most are freed or
 *     reallocated by a thread other than the one that allocated them.
 *  2. Rounds of threads that exit while holding blocks (handed to the main
 *     thread, which checks and frees them) and with blocks in their
 *     per-thread caches: nothing of theirs may stay cached or in use.
 *  3. Four threads fork at the same moment, round after round, while four
 *     others allocate; the children check what they inherited, allocate from
 *     two threads, check the heap and exit 0 (an alarm catches a deadlock).
 *  4. SIGALRM and SIGPROF at a high rate from interval timers, with handlers
 *     that do not allocate, while threads allocate: all work completes and
 *     nothing is corrupted.
 *  5. In forked children, RLIMIT_AS and then RLIMIT_DATA lowered while four
 *     threads allocate and free, then exhausted by them: every failure is
 *     NULL (or the return value) with ENOMEM, a failed realloc keeps its block, the threads recover once
 *     they have freed, and the heap is sound (mymalloc_check() == 0).
 * Fixed seeds and fixed amounts of work: no assertion depends on timing. */
#include "util.h"
#include <sys/time.h>

#define GOLDEN 0x9E3779B97F4A7C15ull

/* ---- blocks that carry their own description ----
 * word 0: the size, word 1: the stamp (owner thread << 48 | counter); the
 * bytes from 16 on follow the stamp's pattern.  Every block has >= 16 bytes. */
#define HEAD 16u

static inline uint64_t word_at(uint64_t stamp, size_t i)
{
    return mix64(stamp) + i * GOLDEN;
}

/* Fill bytes [from, size) of a block with its pattern (from >= HEAD). */
static void fill_from(unsigned char *p, size_t size, uint64_t stamp, size_t from)
{
    uint64_t base = mix64(stamp);
    size_t i = from;
    for (; i % 8 != 0 && i < size; i++) {
        uint64_t w = base + i / 8 * GOLDEN;
        p[i] = ((unsigned char *)&w)[i % 8];
    }
    for (; i + 8 <= size; i += 8) {
        uint64_t w = base + i / 8 * GOLDEN;
        memcpy(p + i, &w, 8);
    }
    for (; i < size; i++) {
        uint64_t w = base + i / 8 * GOLDEN;
        p[i] = ((unsigned char *)&w)[i % 8];
    }
}

static void fill(unsigned char *p, size_t size, uint64_t stamp)
{
    uint64_t s = size;
    memcpy(p, &s, 8);
    memcpy(p + 8, &stamp, 8);
    fill_from(p, size, stamp, HEAD);
}

/* Are the first `upto` bytes what fill() wrote for a block of `size`? */
static int intact_upto(const unsigned char *p, size_t size, uint64_t stamp, size_t upto)
{
    uint64_t s, st;
    memcpy(&s, p, 8);
    memcpy(&st, p + 8, 8);
    if (s != size || st != stamp)
        return 0;
    size_t i = HEAD;
    for (; i + 8 <= upto; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w != word_at(stamp, i / 8))
            return 0;
    }
    for (; i < upto; i++) {
        uint64_t w = word_at(stamp, i / 8);
        if (p[i] != ((unsigned char *)&w)[i % 8])
            return 0;
    }
    return 1;
}

/* A block's own description says what it must hold. */
static int intact(const unsigned char *p)
{
    uint64_t size, stamp;
    memcpy(&size, p, 8);
    memcpy(&stamp, p + 8, 8);
    return size >= HEAD && size <= 64 * MIB && intact_upto(p, size, stamp, size);
}

static size_t size_of(const unsigned char *p)
{
    uint64_t size;
    memcpy(&size, p, 8);
    return size;
}

static uint64_t owner_of(const unsigned char *p)
{
    uint64_t stamp;
    memcpy(&stamp, p + 8, 8);
    return stamp >> 48;
}

/* Mostly small, some medium, one in 500 above the mmap threshold. */
static size_t draw_size(uint64_t *x)
{
    uint64_t r = xorshift(x);
    unsigned pick = (unsigned)(r % 1000);
    r >>= 10;
    if (pick < 2)
        return 128 * KIB + r % (768 * KIB);
    if (pick < 60)
        return 1024 + r % (32 * KIB);
    return HEAD + r % (pick < 500 ? 112 : 1008);
}

struct counts {
    unsigned long ops, allocs, frees, cross_frees, reallocs, failures, corrupt, misaligned, not_zero;
};

static void counts_add(struct counts *sum, const struct counts *c)
{
    sum->ops += c->ops;
    sum->allocs += c->allocs;
    sum->frees += c->frees;
    sum->cross_frees += c->cross_frees;
    sum->reallocs += c->reallocs;
    sum->failures += c->failures;
    sum->corrupt += c->corrupt;
    sum->misaligned += c->misaligned;
    sum->not_zero += c->not_zero;
}

/* A new block of `size` from one of the allocation calls, filled; NULL
 * (counted) on failure. */
static unsigned char *new_block(uint64_t *x, size_t size, uint64_t stamp, struct counts *c)
{
    unsigned char *p = NULL;
    size_t align = 16;
    uint64_t r = xorshift(x);
    switch (r % 8) {
    case 0:
        p = calloc(1, size);
        if (p != NULL)
            for (size_t i = 0; i < size; i += 61)       /* sampled: full check is the shadow's job */
                if (p[i] != 0 || p[size - 1] != 0) {
                    c->not_zero++;
                    break;
                }
        break;
    case 1:
        align = (size_t)64 << (r >> 8) % 7;     /* 64 .. 4096 */
        if (posix_memalign((void **)&p, align, size) != 0)
            p = NULL;
        break;
    case 2:
        align = (size_t)32 << (r >> 8) % 4;
        p = aligned_alloc(align, size);
        break;
    default:
        p = malloc(size);
        break;
    }
    if (p == NULL) {
        c->failures++;
        return NULL;
    }
    if ((uintptr_t)p % align != 0)
        c->misaligned++;
    c->allocs++;
    fill(p, size, stamp);
    return p;
}

/* Verify and free a block, counting a free by another thread than its owner. */
static void drop_block(unsigned char *p, unsigned self, uint64_t *x, struct counts *c)
{
    if (!intact(p))
        c->corrupt++;
    if (owner_of(p) != self)
        c->cross_frees++;
    c->frees++;
    if (xorshift(x) % 4 == 0)
        free_sized(p, size_of(p));
    else
        free(p);
}

/* Verify, realloc to a new size, check the kept prefix, refill. */
static unsigned char *resize_block(unsigned char *p, uint64_t *x, struct counts *c)
{
    size_t old = size_of(p);
    uint64_t stamp;
    memcpy(&stamp, p + 8, 8);
    if (!intact(p))
        c->corrupt++;
    size_t n = draw_size(x);
    unsigned char *q = realloc(p, n);
    if (q == NULL) {
        c->failures++;
        return p;
    }
    c->reallocs++;
    if ((uintptr_t)q % 16 != 0)
        c->misaligned++;
    size_t keep = old < n ? old : n;
    if (!intact_upto(q, old, stamp, keep))
        c->corrupt++;
    uint64_t s = n;
    memcpy(q, &s, 8);
    fill_from(q, n, stamp, keep > HEAD ? keep : HEAD);
    return q;
}

/* ================= 1. sixteen threads, cross-thread frees ================= */

#define TRADERS 16
#define TRADE_OPS 120000
#define MAILBOX 2048
#define LOCAL 32

static unsigned char *mailbox[MAILBOX];     /* __atomic builtins only */

struct trader {
    pthread_t thread;
    unsigned id;
    unsigned long ops;
    struct counts c;
};

static void *trade(void *arg)
{
    struct trader *t = arg;
    uint64_t x = 0x2545F4914F6CDD1Dull * (t->id + 1), counter = 0;
    unsigned char *local[LOCAL] = { 0 };

    for (unsigned long op = 0; op < t->ops; op++) {
        uint64_t r = xorshift(&x);
        unsigned pick = (unsigned)(r % 100);
        size_t slot = (size_t)(r >> 8) % MAILBOX;
        t->c.ops++;
        if (pick < 45) {                        /* new block into the mailbox */
            unsigned char *p = new_block(&x, draw_size(&x), (uint64_t)t->id << 48 | ++counter, &t->c);
            if (p == NULL)
                continue;
            unsigned char *old = __atomic_exchange_n(&mailbox[slot], p, __ATOMIC_ACQ_REL);
            if (old != NULL)
                drop_block(old, t->id, &x, &t->c);
        } else if (pick < 65) {                 /* resize someone's block, put it back */
            unsigned char *p = __atomic_exchange_n(&mailbox[slot], NULL, __ATOMIC_ACQ_REL);
            if (p == NULL)
                continue;
            p = resize_block(p, &x, &t->c);
            unsigned char *old = __atomic_exchange_n(&mailbox[slot], p, __ATOMIC_ACQ_REL);
            if (old != NULL)
                drop_block(old, t->id, &x, &t->c);
        } else if (pick < 75) {                 /* take one out and free it */
            unsigned char *p = __atomic_exchange_n(&mailbox[slot], NULL, __ATOMIC_ACQ_REL);
            if (p != NULL)
                drop_block(p, t->id, &x, &t->c);
        } else {                                /* this thread's own blocks */
            size_t i = (size_t)(r >> 20) % LOCAL;
            if (local[i] != NULL) {
                drop_block(local[i], t->id, &x, &t->c);
                local[i] = NULL;
            } else {
                local[i] = new_block(&x, HEAD + (r >> 32) % 500, (uint64_t)t->id << 48 | ++counter, &t->c);
            }
        }
    }
    for (size_t i = 0; i < LOCAL; i++)
        if (local[i] != NULL)
            drop_block(local[i], t->id, &x, &t->c);
    return NULL;
}

static void test_traders(void)
{
    struct trader t[TRADERS];
    struct counts sum = { 0 };
    uint64_t x = 99;
    int started = 0;

    for (unsigned i = 0; i < TRADERS; i++) {
        memset(&t[i], 0, sizeof t[i]);
        t[i].id = i + 1;
        t[i].ops = TRADE_OPS;
        if (pthread_create(&t[i].thread, NULL, trade, &t[i]) == 0)
            started++;
        else
            t[i].id = 0;
    }
    for (unsigned i = 0; i < TRADERS; i++)
        if (t[i].id != 0) {
            pthread_join(t[i].thread, NULL);
            counts_add(&sum, &t[i].c);
        }
    for (size_t i = 0; i < MAILBOX; i++)
        if (mailbox[i] != NULL) {
            drop_block(mailbox[i], 0, &x, &sum);
            mailbox[i] = NULL;
        }
    diag("traders: %lu ops, %lu allocations, %lu frees (%lu by another thread), %lu reallocs",
         sum.ops, sum.allocs, sum.frees, sum.cross_frees, sum.reallocs);
    ok(started == TRADERS && sum.ops == (unsigned long)TRADERS * TRADE_OPS && sum.failures == 0,
       "16 threads: %lu operations done, no allocation failed (%lu failures)", sum.ops, sum.failures);
    ok(sum.corrupt == 0 && sum.misaligned == 0 && sum.not_zero == 0,
       "16 threads: every block intact when freed or resized (%lu corrupt, %lu misaligned, %lu calloc not zero)",
       sum.corrupt, sum.misaligned, sum.not_zero);
    /* How many frees cross threads depends on the scheduler; on any machine
     * a good share of them do. */
    ok(sum.frees == sum.allocs && sum.cross_frees >= sum.frees / 20,
       "16 threads: every block freed, %lu of %lu by another thread than its allocator",
       sum.cross_frees, sum.frees);
    int problems = mymalloc_check();
    ok(problems == 0, "16 threads: mymalloc_check() finds a sound heap (%d problems)", problems);
}

/* ================= 2. threads that exit holding blocks ================= */

#define EXIT_ROUNDS 30
#define EXITERS 8
#define HANDED 48

struct exiter {
    pthread_t thread;
    unsigned id;
    unsigned char *handed[HANDED];   /* left for the main thread to free */
    struct counts c;
};

static void *exit_holding(void *arg)
{
    struct exiter *e = arg;
    uint64_t x = 0x9E3779B97F4A7C15ull ^ e->id, counter = 0;
    unsigned char *mine[HANDED];

    for (size_t i = 0; i < HANDED; i++) {
        e->handed[i] = new_block(&x, draw_size(&x) % (8 * KIB) + HEAD, (uint64_t)e->id << 48 | ++counter, &e->c);
        mine[i] = new_block(&x, HEAD + i * 16, (uint64_t)e->id << 48 | ++counter, &e->c);
    }
    /* Small blocks of many sizes freed here: they fill this thread's caches. */
    for (size_t round = 0; round < 4; round++) {
        unsigned char *batch[64];
        for (size_t i = 0; i < 64; i++)
            batch[i] = new_block(&x, HEAD + i * 16 + round * 8, (uint64_t)e->id << 48 | ++counter, &e->c);
        for (size_t i = 0; i < 64; i++)
            if (batch[i] != NULL)
                drop_block(batch[i], e->id, &x, &e->c);
    }
    for (size_t i = 0; i < HANDED; i++)
        if (mine[i] != NULL)
            drop_block(mine[i], e->id, &x, &e->c);
    return NULL;        /* exits with its caches full and `handed` still allocated */
}

static int heap_figures(size_t *inuse, size_t *cached, size_t *mapped)
{
    struct mymalloc_stats st;
    malloc_trim(0);     /* gives back the calling thread's cache */
    if (mymalloc_stats_get(&st) != 0)
        return 0;
    *inuse = st.inuse_bytes;
    *cached = st.cached_bytes;
    *mapped = st.mapped_blocks;
    return 1;
}

static void exit_round(unsigned round, struct counts *sum, int *failed_create)
{
    struct exiter e[EXITERS];
    uint64_t x = round;
    for (unsigned i = 0; i < EXITERS; i++) {
        memset(&e[i], 0, sizeof e[i]);
        e[i].id = 100 + round * EXITERS + i;
        if (pthread_create(&e[i].thread, NULL, exit_holding, &e[i]) != 0) {
            e[i].id = 0;
            (*failed_create)++;
        }
    }
    for (unsigned i = 0; i < EXITERS; i++) {
        if (e[i].id == 0)
            continue;
        pthread_join(e[i].thread, NULL);
        for (size_t j = 0; j < HANDED; j++)
            if (e[i].handed[j] != NULL)
                drop_block(e[i].handed[j], 0, &x, &e[i].c);
        counts_add(sum, &e[i].c);
    }
}

static void test_exiting_threads(void)
{
    struct counts sum = { 0 };
    size_t inuse0 = 0, cached0 = 0, mapped0 = 0, inuse1 = 0, cached1 = 0, mapped1 = 0;
    int failed_create = 0;

    exit_round(0, &sum, &failed_create);        /* warm up: thread stacks, TLS */
    int figures = heap_figures(&inuse0, &cached0, &mapped0);
    for (unsigned round = 1; round <= EXIT_ROUNDS; round++)
        exit_round(round, &sum, &failed_create);
    figures = figures && heap_figures(&inuse1, &cached1, &mapped1);

    ok(failed_create == 0 && sum.failures == 0 && sum.corrupt == 0 && sum.misaligned == 0 && sum.frees == sum.allocs,
       "%d threads exited holding blocks: all %lu handed over intact (%lu corrupt, %lu failures)",
       (EXIT_ROUNDS + 1) * EXITERS, (unsigned long)(EXIT_ROUNDS + 1) * EXITERS * HANDED, sum.corrupt, sum.failures);
    if (figures)
        diag("after %d rounds: in use %zu -> %zu bytes, cached %zu -> %zu, mapped blocks %zu -> %zu",
             EXIT_ROUNDS, inuse0, inuse1, cached0, cached1, mapped0, mapped1);
    /* glibc keeps a few bytes per cached thread stack (its DTV) from our
     * heap, and how many stacks it caches varies a little; a leak per thread
     * would be kilobytes over the rounds. */
    ok(figures && cached1 == 0 && inuse1 <= inuse0 + 4096 && mapped1 == mapped0,
       "exited threads' caches were given back: nothing cached, in-use bytes as before the rounds");
    int problems = mymalloc_check();
    ok(problems == 0, "exiting threads: mymalloc_check() finds a sound heap (%d problems)", problems);
}

/* ================= 3. fork from several threads at once ================= */

#define FORKERS 4
#define HAMMERS 4
#define FORK_ROUNDS 8
#define CHILD_BLOCKS 1500

static pthread_barrier_t fork_barrier;
static int hammers_stop;                    /* __atomic */

struct hammer {
    pthread_t thread;
    unsigned id;
    struct counts c;
};

static void *hammer(void *arg)
{
    struct hammer *h = arg;
    uint64_t x = 0xA5A5A5A5ull + h->id, counter = 0;
    unsigned char *slot[64] = { 0 };
    while (!__atomic_load_n(&hammers_stop, __ATOMIC_RELAXED)) {
        uint64_t r = xorshift(&x);
        size_t i = r % 64;
        h->c.ops++;
        if (slot[i] != NULL && (r >> 8) % 3 == 0) {
            slot[i] = resize_block(slot[i], &x, &h->c);
        } else if (slot[i] != NULL) {
            drop_block(slot[i], h->id, &x, &h->c);
            slot[i] = NULL;
        } else {
            slot[i] = new_block(&x, draw_size(&x), (uint64_t)h->id << 48 | ++counter, &h->c);
        }
    }
    for (size_t i = 0; i < 64; i++)
        if (slot[i] != NULL)
            drop_block(slot[i], h->id, &x, &h->c);
    return NULL;
}

enum { CHILD_OK = 0, CHILD_INHERITED_BAD = 10, CHILD_HEAP_BAD, CHILD_CORRUPT, CHILD_NOMEM, CHILD_NOTHREAD, CHILD_END_BAD };

static void *child_worker(void *arg)
{
    struct counts *c = arg;
    uint64_t x = 77;
    unsigned char *held[32] = { 0 };
    for (unsigned i = 0; i < CHILD_BLOCKS; i++) {
        size_t k = i % 32;
        if (held[k] != NULL)
            drop_block(held[k], 1, &x, c);
        held[k] = new_block(&x, draw_size(&x), (uint64_t)1 << 48 | i, c);
    }
    for (size_t k = 0; k < 32; k++)
        if (held[k] != NULL)
            drop_block(held[k], 1, &x, c);
    return NULL;
}

/* In the child: what the forking thread held must be intact, the heap sound,
 * and allocation must work from two threads. */
static int child_main(unsigned char **inherited, size_t n)
{
    struct counts a = { 0 }, b = { 0 };
    pthread_t t;
    alarm(20);
    for (size_t i = 0; i < n; i++)
        if (!intact(inherited[i]))
            return CHILD_INHERITED_BAD;
    if (mymalloc_check() != 0)
        return CHILD_HEAP_BAD;
    if (pthread_create(&t, NULL, child_worker, &b) != 0)
        return CHILD_NOTHREAD;
    child_worker(&a);
    pthread_join(t, NULL);
    if (a.corrupt + b.corrupt != 0)
        return CHILD_CORRUPT;
    if (a.failures + b.failures != 0)
        return CHILD_NOMEM;
    for (size_t i = 0; i < n; i++)
        free(inherited[i]);
    return mymalloc_check() == 0 ? CHILD_OK : CHILD_END_BAD;
}

struct forker {
    pthread_t thread;
    unsigned id;
    int children, good, statuses[FORK_ROUNDS];
};

static void *forker(void *arg)
{
    struct forker *f = arg;
    uint64_t x = 0xF0F0ull + f->id, counter = 0;
    struct counts c = { 0 };
    unsigned char *held[16];

    for (int round = 0; round < FORK_ROUNDS; round++) {
        for (size_t i = 0; i < 16; i++)
            held[i] = new_block(&x, draw_size(&x), (uint64_t)f->id << 48 | ++counter, &c);
        pthread_barrier_wait(&fork_barrier);        /* everyone forks now */
        pid_t pid = fork();
        if (pid == 0) {
            size_t n = 0;
            for (size_t i = 0; i < 16; i++)
                if (held[i] != NULL)
                    held[n++] = held[i];
            _exit(child_main(held, n));
        }
        if (pid > 0) {
            int status = 0;
            f->children++;
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                continue;
            f->statuses[round] = status;
            if (WIFEXITED(status) && WEXITSTATUS(status) == CHILD_OK)
                f->good++;
        } else {
            f->statuses[round] = -1;
        }
        for (size_t i = 0; i < 16; i++)
            if (held[i] != NULL)
                drop_block(held[i], f->id, &x, &c);
    }
    return NULL;
}

static void describe_status(int status)
{
    if (status == -1)
        diag("  fork() failed");
    else if (WIFSIGNALED(status))
        diag("  a child died of signal %d%s", WTERMSIG(status), WTERMSIG(status) == SIGALRM ? " (deadlock?)" : "");
    else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        diag("  a child exited %d", WEXITSTATUS(status));
}

static void test_forks(void)
{
    struct forker f[FORKERS];
    struct hammer h[HAMMERS];
    struct counts sum = { 0 };
    int children = 0, good = 0, forkers = 0;

    pthread_barrier_init(&fork_barrier, NULL, FORKERS);
    __atomic_store_n(&hammers_stop, 0, __ATOMIC_RELAXED);
    for (unsigned i = 0; i < HAMMERS; i++) {
        memset(&h[i], 0, sizeof h[i]);
        h[i].id = 200 + i;
        if (pthread_create(&h[i].thread, NULL, hammer, &h[i]) != 0)
            h[i].id = 0;
    }
    for (unsigned i = 0; i < FORKERS; i++) {
        memset(&f[i], 0, sizeof f[i]);
        f[i].id = 300 + i;
        if (pthread_create(&f[i].thread, NULL, forker, &f[i]) == 0)
            forkers++;
        else
            f[i].id = 0;
    }
    for (unsigned i = 0; i < FORKERS; i++) {
        if (f[i].id == 0)
            continue;
        pthread_join(f[i].thread, NULL);
        children += f[i].children;
        good += f[i].good;
        for (int r = 0; r < FORK_ROUNDS; r++)
            describe_status(f[i].statuses[r]);
    }
    __atomic_store_n(&hammers_stop, 1, __ATOMIC_RELAXED);
    for (unsigned i = 0; i < HAMMERS; i++)
        if (h[i].id != 0) {
            pthread_join(h[i].thread, NULL);
            counts_add(&sum, &h[i].c);
        }
    pthread_barrier_destroy(&fork_barrier);

    ok(forkers == FORKERS && children == FORKERS * FORK_ROUNDS && good == children,
       "%d children forked by %d threads at once while %d threads allocate: all exited 0 (%d did)",
       children, FORKERS, HAMMERS, good);
    ok(sum.corrupt == 0 && sum.failures == 0 && sum.misaligned == 0,
       "the parent's allocating threads kept every block intact across the forks (%lu ops, %lu corrupt)",
       sum.ops, sum.corrupt);
}

/* ================= 4. signals interrupting allocation ================= */

#define SIGNALLED 4
#define SIGNAL_OPS 40000

static volatile sig_atomic_t alarms, profs;

static void on_alarm(int sig)
{
    (void)sig;
    alarms = alarms + 1;
}

static void on_prof(int sig)
{
    (void)sig;
    profs = profs + 1;
}

static void test_signals(void)
{
    struct sigaction sa;
    struct itimerval fast = { { 0, 100 }, { 0, 100 } }, off = { { 0, 0 }, { 0, 0 } };
    struct trader t[SIGNALLED];
    struct counts sum = { 0 };
    uint64_t x = 5;
    int installed = 1, started = 0;

    memset(&sa, 0, sizeof sa);
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_alarm;
    installed &= sigaction(SIGALRM, &sa, NULL) == 0;
    sa.sa_handler = on_prof;
    installed &= sigaction(SIGPROF, &sa, NULL) == 0;
    installed &= setitimer(ITIMER_REAL, &fast, NULL) == 0;
    installed &= setitimer(ITIMER_PROF, &fast, NULL) == 0;

    for (unsigned i = 0; i < SIGNALLED; i++) {
        memset(&t[i], 0, sizeof t[i]);
        t[i].id = 400 + i;
        t[i].ops = SIGNAL_OPS;
        if (pthread_create(&t[i].thread, NULL, trade, &t[i]) == 0)
            started++;
        else
            t[i].id = 0;
    }
    struct trader self = { .id = 450, .ops = SIGNAL_OPS / 2 };
    trade(&self);                    /* the main thread allocates too */
    counts_add(&sum, &self.c);
    for (unsigned i = 0; i < SIGNALLED; i++)
        if (t[i].id != 0) {
            while (pthread_join(t[i].thread, NULL) == EINTR)
                continue;
            counts_add(&sum, &t[i].c);
        }
    setitimer(ITIMER_REAL, &off, NULL);
    setitimer(ITIMER_PROF, &off, NULL);
    signal(SIGALRM, SIG_IGN);
    signal(SIGPROF, SIG_IGN);
    for (size_t i = 0; i < MAILBOX; i++)
        if (mailbox[i] != NULL) {
            drop_block(mailbox[i], 0, &x, &sum);
            mailbox[i] = NULL;
        }

    diag("signals: %d SIGALRM and %d SIGPROF delivered during %lu operations", (int)alarms, (int)profs, sum.ops);
    ok(installed && started == SIGNALLED && alarms > 0 && profs > 0 &&
       sum.ops == (unsigned long)SIGNALLED * SIGNAL_OPS + SIGNAL_OPS / 2,
       "allocation interrupted by %d SIGALRM and %d SIGPROF handlers: every operation completed",
       (int)alarms, (int)profs);
    ok(sum.corrupt == 0 && sum.failures == 0 && sum.misaligned == 0 && sum.frees == sum.allocs,
       "signals: every block intact (%lu corrupt, %lu failures)", sum.corrupt, sum.failures);
    signal(SIGALRM, SIG_DFL);
    signal(SIGPROF, SIG_DFL);
}

/* ================= 5. RLIMIT_AS / RLIMIT_DATA exhaustion ================= */

#define LIMITED 4
#define HEADROOM (48 * MIB)
#define HELD_MAX 20000
#define FAILURES_WANTED 40
#define RECOVER_BIG 6                   /* per thread: 6 x 1 MiB ... */
#define RECOVER_SMALL 2000              /* ... and 2000 small blocks */

struct limited {
    pthread_t thread;
    unsigned id;
    unsigned char *held[HELD_MAX];
    size_t nheld;
    unsigned long failures, bad_failures, realloc_failures, realloc_lost, corrupt, recover_failed, allocs;
    unsigned long churned;      /* __atomic: operations before the limit dropped */
};

#define CHURN_OPS 3000                  /* per thread, before the limit drops */
#define CHURN_RING 64

static pthread_barrier_t limit_barrier;
static int limit_phase;     /* __atomic: 0 churning, 1 the limit is in place, 2 it could not be set */

/* One failing call must be a NULL (or an error number) with errno ENOMEM. */
static void note_failure(struct limited *l, int err)
{
    l->failures++;
    if (err != ENOMEM)
        l->bad_failures++;
}

static void *limited_run(void *arg)
{
    struct limited *l = arg;
    uint64_t x = 0x1234567ull * l->id, counter = 0;

    /* Allocate and free, verified, until the main thread has lowered the
     * limit under our feet; the blocks of the ring are then kept. */
    unsigned char *ring[CHURN_RING] = { 0 };
    unsigned long churn = 0;
    while (__atomic_load_n(&limit_phase, __ATOMIC_ACQUIRE) == 0) {
        uint64_t r = xorshift(&x);
        size_t k = r % CHURN_RING;
        if (ring[k] != NULL) {
            if (!intact(ring[k]))
                l->corrupt++;
            free(ring[k]);
        }
        errno = 0;
        ring[k] = malloc(HEAD + (r >> 8) % (64 * KIB));
        if (ring[k] == NULL)
            note_failure(l, errno);
        else
            fill(ring[k], HEAD + (r >> 8) % (64 * KIB), (uint64_t)l->id << 48 | ++counter);
        __atomic_store_n(&l->churned, ++churn, __ATOMIC_RELEASE);
    }
    for (size_t k = 0; k < CHURN_RING; k++)
        if (ring[k] != NULL)
            l->held[l->nheld++] = ring[k];
    int exhaust = __atomic_load_n(&limit_phase, __ATOMIC_ACQUIRE) == 1;
    for (unsigned long i = 0; exhaust && i < 2000000 && l->failures < FAILURES_WANTED && l->nheld < HELD_MAX; i++) {
        uint64_t r = xorshift(&x);
        size_t size = r % 2 ? HEAD + (r >> 8) % 4000 : 64 * KIB + (r >> 8) % MIB;
        uint64_t stamp = (uint64_t)l->id << 48 | ++counter;
        unsigned char *p = NULL;
        int err;
        errno = 0;
        switch ((r >> 40) % 5) {
        case 0:
            p = calloc(1, size);
            err = errno;
            break;
        case 1:
            err = posix_memalign((void **)&p, 256, size);
            if (err != 0)
                p = NULL;
            break;
        case 2:
            if (l->nheld > 0) {         /* grow a held block */
                size_t k = (size_t)(r >> 16) % l->nheld;
                unsigned char *old = l->held[k];
                size_t old_size = size_of(old);
                unsigned char *q = realloc(old, old_size + size);
                err = errno;
                if (q == NULL) {
                    note_failure(l, err);
                    l->realloc_failures++;
                    if (!intact(old))
                        l->realloc_lost++;
                } else {
                    if (!intact_upto(q, old_size, ((uint64_t *)(void *)q)[1], old_size))
                        l->corrupt++;
                    uint64_t s = old_size + size;
                    memcpy(q, &s, 8);
                    fill_from(q, old_size + size, ((uint64_t *)(void *)q)[1], old_size);
                    l->held[k] = q;
                }
                continue;
            }
            /* fall through */
        default:
            p = malloc(size);
            err = errno;
            break;
        }
        if (p == NULL) {
            note_failure(l, err);
            continue;
        }
        l->allocs++;
        fill(p, size, stamp);
        l->held[l->nheld++] = p;
    }
    pthread_barrier_wait(&limit_barrier);       /* everyone has hit the wall */
    for (size_t i = 0; i < l->nheld; i++) {
        if (!intact(l->held[i]))
            l->corrupt++;
        free(l->held[i]);
    }
    l->nheld = 0;
    pthread_barrier_wait(&limit_barrier);       /* everything is free: recover */
    for (unsigned i = 0; i < RECOVER_BIG + RECOVER_SMALL; i++) {
        size_t size = i < RECOVER_BIG ? MIB : HEAD + i % 1000;
        unsigned char *p = malloc(size);
        if (p == NULL) {
            l->recover_failed++;
            continue;
        }
        fill(p, size, (uint64_t)l->id << 48 | i);
        l->held[l->nheld++] = p;
    }
    for (size_t i = 0; i < l->nheld; i++) {
        if (!intact(l->held[i]))
            l->corrupt++;
        free(l->held[i]);
    }
    l->nheld = 0;
    return NULL;
}


/* The child's findings, sent to the parent through a pipe. */
struct limit_report {
    int setup_ok, threads;
    unsigned long failures, bad_failures, realloc_failures, realloc_lost, corrupt, recover_failed, allocs;
    int heap_problems;
};

static struct limited limited[LIMITED];

static void limit_child(int resource, const char *field, int fd)
{
    struct limit_report rep;
    struct rlimit lim;
    memset(&rep, 0, sizeof rep);
    alarm(30);
    pthread_barrier_init(&limit_barrier, NULL, LIMITED + 1);
    __atomic_store_n(&limit_phase, 0, __ATOMIC_RELEASE);
    for (unsigned i = 0; i < LIMITED; i++) {
        limited[i].id = 500 + i;
        if (pthread_create(&limited[i].thread, NULL, limited_run, &limited[i]) == 0)
            rep.threads++;
    }
    if (rep.threads != LIMITED)
        _exit(2);       /* the barriers would never open */
    for (unsigned i = 0; i < LIMITED; i++)      /* let them get going */
        while (__atomic_load_n(&limited[i].churned, __ATOMIC_ACQUIRE) < CHURN_OPS)
            usleep(1000);
    size_t base = status_kib(field) * KIB;
    lim.rlim_cur = lim.rlim_max = base + HEADROOM;
    rep.setup_ok = base > 0 && setrlimit(resource, &lim) == 0;
    /* Without a limit, exhausting memory would be no test: skip it. */
    __atomic_store_n(&limit_phase, rep.setup_ok ? 1 : 2, __ATOMIC_RELEASE);
    pthread_barrier_wait(&limit_barrier);       /* all have hit the limit */
    pthread_barrier_wait(&limit_barrier);       /* all have freed */
    for (unsigned i = 0; i < LIMITED; i++) {
        pthread_join(limited[i].thread, NULL);
        rep.failures += limited[i].failures;
        rep.bad_failures += limited[i].bad_failures;
        rep.realloc_failures += limited[i].realloc_failures;
        rep.realloc_lost += limited[i].realloc_lost;
        rep.corrupt += limited[i].corrupt;
        rep.recover_failed += limited[i].recover_failed;
        rep.allocs += limited[i].allocs;
    }
    rep.heap_problems = mymalloc_check();
    if (write(fd, &rep, sizeof rep) != (ssize_t)sizeof rep)
        _exit(3);
    _exit(0);
}

static void test_limit(int resource, const char *name, const char *field)
{
    struct limit_report rep;
    int fds[2], status = 0;
    memset(&rep, 0, sizeof rep);
    if (pipe(fds) != 0) {
        for (int i = 0; i < 5; i++)
            ok(0, "%s: pipe() failed", name);
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        limit_child(resource, field, fds[1]);
    }
    close(fds[1]);
    ssize_t got = 0;
    if (pid > 0) {
        ssize_t n;
        while ((size_t)got < sizeof rep &&
               ((n = read(fds[0], (char *)&rep + got, sizeof rep - (size_t)got)) > 0 || (n < 0 && errno == EINTR)))
            if (n > 0)
                got += n;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            continue;
    }
    close(fds[0]);
    int reported = pid > 0 && got == (ssize_t)sizeof rep && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (!reported) {
        diag("%s: the child did not report (pid %d, %zd bytes)", name, (int)pid, got);
        describe_status(status);
    }
    diag("%s: %lu allocations, %lu failures (%lu of them realloc) across %d threads",
         name, rep.allocs, rep.failures, rep.realloc_failures, rep.threads);
    ok(reported && rep.setup_ok && rep.failures >= LIMITED * FAILURES_WANTED && rep.bad_failures == 0,
       "%s lowered mid-run under %d threads: %lu failures, every one NULL/ENOMEM (%lu not)",
       name, LIMITED, rep.failures, rep.bad_failures);
    ok(reported && rep.realloc_lost == 0 && rep.realloc_failures > 0,
       "%s: %lu failed reallocs left their blocks intact", name, rep.realloc_failures);
    ok(reported && rep.corrupt == 0, "%s: every block intact when freed (%lu corrupt)", name, rep.corrupt);
    ok(reported && rep.recover_failed == 0,
       "%s: after freeing, %d MiB and %d small blocks per thread allocate again (%lu failed)",
       name, RECOVER_BIG, RECOVER_SMALL, rep.recover_failed);
    ok(reported && rep.heap_problems == 0, "%s: mymalloc_check() == 0 afterwards (%d problems)", name, rep.heap_problems);
}

int main(void)
{
    plan(4 + 3 + 2 + 2 + 5 + 5 + 1);
    test_traders();
    test_exiting_threads();
    test_forks();
    test_signals();
    test_limit(RLIMIT_AS, "RLIMIT_AS", "VmSize");
    test_limit(RLIMIT_DATA, "RLIMIT_DATA", "VmData");
    int problems = mymalloc_check();
    ok(problems == 0, "mymalloc_check() finds a sound heap at the end (%d problems)", problems);
    return done();
}
