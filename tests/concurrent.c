/* concurrent.c - mymalloc where its parts meet, at random, with a watchdog.
 *
 * Worker threads make random calls of the whole family (malloc, calloc,
 * realloc, reallocarray, memalign, posix_memalign, aligned_alloc, free,
 * free_sized, free_aligned_sized, malloc_usable_size) on blocks whose every
 * byte follows a pattern drawn from the block's stamp, verified before every
 * free and realloc and whenever the block changes hands; calloc memory must
 * be all zero, every block aligned and at least as usable as asked for.
 * Around them:
 *   - a mailbox (mutex-protected) through which blocks pass between threads,
 *     to be verified and freed or reallocated by the receiver;
 *   - a spawner thread starting short-lived threads all the time: some
 *     allocate, post blocks and exit with blocks in their caches; others
 *     allocate nothing until the last round of their pthread key destructors;
 *   - fork() from the workers and the tuner: the child verifies what its
 *     thread held, allocates, verifies and frees a few thousand blocks, must
 *     find mymalloc_check() == 0, trims and _exit(0)s, under an alarm;
 *   - bursts of blocks just under the mmap threshold, which grow the arenas,
 *     and blocks above it;
 *   - a thread filling its arena's top up to the end of a segment, freeing it
 *     all (the top trims), then calloc'ing it back;
 *   - the tuner and the workers now and then: malloc_trim(0), mallopt() of the
 *     thread caches, the decay, the trim and mmap thresholds and the
 *     placement policy, mallinfo2(), mymalloc_stats_get(), malloc_info() and
 *     mymalloc_check(), which must return 0 (it takes the heaps' locks).
 * In the RLIMIT_AS variant the address space is limited to what the process
 * has plus a margin and the workers use it up: every failure must be NULL
 * (posix_memalign's error number) with ENOMEM, and a failed realloc must
 * leave its block intact.  pthread_create may then fail with EAGAIN.
 *
 * The workload runs in a child process for --seconds; the parent allocates
 * almost nothing and is the watchdog.  A child still running at the deadline
 * (--seconds + --grace), or one of whose threads has been inside a single
 * allocator call for --stall seconds, is killed with its fork children, and
 * the variant fails as a hang, naming what every thread was doing.  The
 * child's findings come back through a shared mapping: counts, failures by
 * kind and the first failure messages.  The child writes no stdio: its
 * messages go to stderr with write(2).
 *
 *   concurrent [--seconds S] [--seed N] [--threads N] [--plain | --rlimit-as]
 *              [--margin MIB] [--grace S] [--stall S] [--no-fork]
 *              [--no-destructor-threads] [--no-short-threads] [--no-mallopt]
 *              [--no-fit] [--no-stats] [--no-top-calloc]
 *
 * Without --plain or --rlimit-as both variants run, one after the other.  The
 * seed (printed first) fixes every thread's own sequence of operations; how
 * the threads interleave is the scheduler's, so a replay is likely, not sure,
 * to go the same way.  Only the amount of work depends on time, never a
 * verdict. */
#include "util.h"
#include <sys/prctl.h>
#include <sys/syscall.h>

/* ================= options ================= */

static struct {
    double seconds;     /* per variant */
    double grace;       /* the watchdog's deadline: seconds + grace */
    double stall;       /* one allocator call this long is a hang */
    uint64_t seed;
    int threads;        /* workers */
    int plain, rlimit_as;
    size_t margin_mib;  /* RLIMIT_AS: VmSize + this */
    int no_fork, no_dtor, no_short, no_mallopt, no_fit, no_stats, no_top_calloc;
} opt = {
    .seconds = 2.5,
    .grace = 30,
    .stall = 10,
    .seed = 0x5eed2c0ffee5eedull,
    .threads = 4,
    .margin_mib = 256,
};

#define MAX_WORKERS 16

static void usage(FILE *to)
{
    fputs("usage: concurrent [--seconds S] [--seed N] [--threads N] [--plain | --rlimit-as]\n"
          "                  [--margin MIB] [--grace S] [--stall S] [--no-fork]\n"
          "                  [--no-destructor-threads] [--no-short-threads] [--no-mallopt]\n"
          "                  [--no-fit] [--no-stats] [--no-top-calloc]\n"
          "  --seconds S   how long each variant runs (default 2.5)\n"
          "  --seed N      the random seed (default 0x5eed2c0ffee5eed)\n"
          "  --threads N   worker threads, 1 to 16 (default 4)\n"
          "  --plain       only the variant without a memory limit\n"
          "  --rlimit-as   only the variant under RLIMIT_AS (VmSize + --margin MiB, default 256)\n"
          "  --grace S     the watchdog kills a child still running S s after --seconds (default 30)\n"
          "  --stall S     ... or one with a thread inside one allocator call for S s (default 10)\n"
          "  --no-fork, --no-destructor-threads, --no-short-threads, --no-mallopt, --no-fit,\n"
          "  --no-stats, --no-top-calloc   leave out forks, threads allocating first in their\n"
          "                last key destructor round, the other short-lived threads, mallopt(),\n"
          "                mallopt(M_MYMALLOC_FIT) alone, the statistics calls (mallinfo2,\n"
          "                mymalloc_stats_get, malloc_info), the calloc after a thread's top\n"
          "                was filled and trimmed\n",
          to);
}

static int parse_number(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi))
        return 0;
    *out = v;
    return 1;
}

/* The options without a value: each sets its flag. */
static int *switch_named(const char *name)
{
    static const struct {
        const char *name;
        int *flag;
    } switches[] = {
        { "--plain", &opt.plain },
        { "--rlimit-as", &opt.rlimit_as },
        { "--no-fork", &opt.no_fork },
        { "--no-destructor-threads", &opt.no_dtor },
        { "--no-short-threads", &opt.no_short },
        { "--no-mallopt", &opt.no_mallopt },
        { "--no-fit", &opt.no_fit },
        { "--no-stats", &opt.no_stats },
        { "--no-top-calloc", &opt.no_top_calloc },
    };
    for (size_t i = 0; i < sizeof switches / sizeof switches[0]; i++)
        if (strcmp(name, switches[i].name) == 0)
            return switches[i].flag;
    return NULL;
}

static void parse_options(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double d;
        int bad = 0;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(a, "--seconds") == 0) {
            bad = v == NULL || !parse_number(v, 0.001, 1e6, &opt.seconds);
            i++;
        } else if (strcmp(a, "--grace") == 0) {
            bad = v == NULL || !parse_number(v, 1, 1e6, &opt.grace);
            i++;
        } else if (strcmp(a, "--stall") == 0) {
            bad = v == NULL || !parse_number(v, 0.1, 1e6, &opt.stall);
            i++;
        } else if (strcmp(a, "--seed") == 0) {
            char *end;
            errno = 0;
            bad = v == NULL;
            if (!bad) {
                opt.seed = strtoull(v, &end, 0);
                bad = errno != 0 || end == v || *end != '\0';
            }
            i++;
        } else if (strcmp(a, "--threads") == 0) {
            bad = v == NULL || !parse_number(v, 1, MAX_WORKERS, &d) || d != (int)d;
            if (!bad)
                opt.threads = (int)d;
            i++;
        } else if (strcmp(a, "--margin") == 0) {
            bad = v == NULL || !parse_number(v, 1, 1 << 20, &d) || d != (double)(size_t)d;
            if (!bad)
                opt.margin_mib = (size_t)d;
            i++;
        } else {
            int *flag = switch_named(a);
            if (flag != NULL)
                *flag = 1;
            else
                bad = 1;
        }
        if (bad) {
            fprintf(stderr, "concurrent: bad option or value: %s%s%s\n", a, v != NULL ? " " : "", v != NULL ? v : "");
            usage(stderr);
            exit(2);
        }
    }
    if (!opt.plain && !opt.rlimit_as)
        opt.plain = opt.rlimit_as = 1;
}

/* ================= what the child shares with the watchdog ================= */

/* What a thread is doing, as its slot shows it. */
enum op {
    OP_IDLE, OP_MALLOC, OP_CALLOC, OP_REALLOC, OP_REALLOCARRAY, OP_MEMALIGN, OP_POSIX_MEMALIGN,
    OP_ALIGNED_ALLOC, OP_FREE, OP_FREE_SIZED, OP_FREE_ALIGNED_SIZED, OP_USABLE_SIZE, OP_TRIM, OP_MALLOPT,
    OP_MALLINFO2, OP_STATS_GET, OP_MALLOC_INFO, OP_CHECK, OP_FORK, OP_MAILBOX,
    /* not watched for stalls: */
    OP_WAITPID, OP_THREAD_CREATE, OP_THREAD_JOIN, OP_SLEEP, OP_COUNT
};

static const char *const op_name[OP_COUNT] = {
    "between calls", "malloc()", "calloc()", "realloc()", "reallocarray()", "memalign()", "posix_memalign()",
    "aligned_alloc()", "free()", "free_sized()", "free_aligned_sized()", "malloc_usable_size()",
    "malloc_trim()", "mallopt()", "mallinfo2()", "mymalloc_stats_get()", "malloc_info()", "mymalloc_check()",
    "fork()", "the mailbox lock", "waitpid() for a fork child", "pthread_create()", "pthread_join()",
    "a sleep",
};

/* Calls that never take long: one in progress for --stall seconds is a hang. */
static int op_watched(int op)
{
    return op >= OP_MALLOC && op <= OP_MAILBOX;
}

enum kind { K_NONE, K_MAIN, K_WORKER, K_TUNER, K_SPAWNER, K_SHORT, K_DTOR, K_FORK_CHILD };

static const char *const kind_name[] = {
    "?", "main thread", "worker", "tuner", "spawner", "short-lived thread", "destructor thread", "fork child",
};

#define SLOTS 64
#define SLOT_MAIN 0
#define SLOT_TUNER (MAX_WORKERS + 1)
#define SLOT_SPAWNER (MAX_WORKERS + 2)
#define SLOT_FIRST_SHORT (MAX_WORKERS + 3)   /* claimed by short-lived threads */

struct slot {
    int kind, id, op;
    int tid;            /* the thread's, for its state in /proc */
    int param;          /* mallopt()'s parameter */
    uint64_t since;     /* ns (CLOCK_MONOTONIC_COARSE) when op began */
    size_t arg;         /* its size argument (mallopt()'s value) */
};

enum counter {
    C_OPS, C_ALLOCS, C_CALLOCS, C_FREES, C_REALLOCS, C_VERIFIED, C_HANDED, C_NOMEM, C_REALLOC_NOMEM,
    C_BURSTS, C_SQUEEZES, C_SQUEEZED_TO_END, C_TOP_CALLOCS, C_TOP_CALLOCS_AT_END, C_FORKS, C_FORKS_OK,
    C_FORK_ERRORS, C_THREADS, C_THREAD_EAGAIN, C_DTOR_THREADS, C_DTOR_LAST_ROUND, C_MALLOPTS, C_CHECKS,
    C_STATS, C_TRIMS, C_EXHAUSTS, C_COUNT
};

enum fail {
    F_CONTENT,      /* a block's bytes are not what was written */
    F_CALLOC,       /* calloc memory not zero */
    F_ALIGN,        /* a block not aligned as asked (16 at least) */
    F_USABLE,       /* malloc_usable_size() below the request */
    F_ERRNO,        /* a failure without ENOMEM, or an overflow that did not fail */
    F_NOMEM,        /* an allocation failed with no memory limit set */
    F_REALLOC_KEPT, /* a failed realloc damaged its block */
    F_CHECK,        /* mymalloc_check() != 0 */
    F_API,          /* mallopt(), mymalloc_stats_get(), malloc_info() or setup failed */
    F_FORK_CHILD,   /* a fork child did not exit 0 */
    F_THREAD,       /* pthread_create failed (other than EAGAIN under the limit) */
    F_COUNT
};

#define MESSAGES 6
#define MESSAGE_SIZE 360

struct shared {
    int finished;               /* the child reached its end */
    int limit_set;
    size_t vm_kib, limit_bytes;
    struct slot slot[SLOTS];
    uint64_t count[C_COUNT];
    uint64_t fails[F_COUNT];
    int messages;               /* taken so far (may pass MESSAGES) */
    char message[MESSAGES][MESSAGE_SIZE];
};

static struct shared *sh;
static int limited;             /* the RLIMIT_AS variant */
static pid_t watchdog_pid;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_us(long us)
{
    struct timespec ts = { us / 1000000, us % 1000000 * 1000 };
    nanosleep(&ts, NULL);
}

/* ================= messages, written without allocating ================= */

struct text {
    char s[MESSAGE_SIZE];
    size_t n;
};

static void t_str(struct text *t, const char *s)
{
    while (*s != '\0' && t->n + 1 < sizeof t->s)
        t->s[t->n++] = *s++;
    t->s[t->n] = '\0';
}

/* v in decimal or in hex (without "0x"). */
static void t_digits(struct text *t, uintmax_t v, unsigned base)
{
    char d[24];
    size_t i = sizeof d;
    d[--i] = '\0';
    do
        d[--i] = "0123456789abcdef"[v % base];
    while ((v /= base) != 0);
    t_str(t, d + i);
}

/* fmt with its conversions filled in: only %s (a string), %ju and %jx (a
 * uintmax_t in decimal and in hex) and %%, which are printf's, so that the
 * callers' arguments are checked as printf's. */
static void t_vfmt(struct text *t, const char *fmt, va_list ap)
{
    for (const char *f = fmt; *f != '\0'; f++) {
        char one[2] = { *f, '\0' };
        if (f[0] == '%' && f[1] == 's') {
            t_str(t, va_arg(ap, const char *));
            f++;
        } else if (f[0] == '%' && f[1] == 'j' && (f[2] == 'u' || f[2] == 'x')) {
            t_digits(t, va_arg(ap, uintmax_t), f[2] == 'u' ? 10 : 16);
            f += 2;
        } else {
            t_str(t, one);
            f += f[0] == '%' && f[1] == '%';
        }
    }
}

__attribute__((format(printf, 2, 3)))
static void t_fmt(struct text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    t_vfmt(t, fmt, ap);
    va_end(ap);
}

/* " of N bytes (context)" */
static void t_request(struct text *t, size_t size, const char *ctx)
{
    t_fmt(t, " of %ju bytes", (uintmax_t)size);
    if (ctx[0] != '\0')
        t_fmt(t, " %s", ctx);
}

/* ================= random numbers and patterns ================= */

static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

#define STEP 0xD1342543DE82EF95ull

/* Byte i of a block with this stamp: byte i % 8 of word i / 8 of the
 * sequence mix(stamp) + k * STEP. */
static unsigned char byte_of(uint64_t word, size_t j)
{
    unsigned char b[8];
    memcpy(b, &word, 8);
    return b[j];
}

static unsigned char pattern_byte(uint64_t stamp, size_t i)
{
    return byte_of(mix(stamp) + (uint64_t)(i / 8) * STEP, i % 8);
}

static void pattern_fill(unsigned char *p, size_t from, size_t to, uint64_t stamp)
{
    uint64_t base = mix(stamp);
    size_t i = from;
    for (; i < to && i % 8 != 0; i++)
        p[i] = byte_of(base + (uint64_t)(i / 8) * STEP, i % 8);
    for (; i + 8 <= to; i += 8) {
        uint64_t w = base + (uint64_t)(i / 8) * STEP;
        memcpy(p + i, &w, 8);
    }
    for (; i < to; i++)
        p[i] = byte_of(base + (uint64_t)(i / 8) * STEP, i % 8);
}

/* Do bytes [from, to) follow the pattern?  Else *bad is the first that does not. */
static int pattern_ok(const unsigned char *p, size_t from, size_t to, uint64_t stamp, size_t *bad)
{
    uint64_t base = mix(stamp);
    size_t i = from;
    for (; i < to && i % 8 != 0; i++)
        if (p[i] != byte_of(base + (uint64_t)(i / 8) * STEP, i % 8))
            goto mismatch;
    for (; i + 8 <= to; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w != base + (uint64_t)(i / 8) * STEP)
            break;
    }
    for (; i < to; i++)
        if (p[i] != byte_of(base + (uint64_t)(i / 8) * STEP, i % 8))
            goto mismatch;
    return 1;
mismatch:
    *bad = i;
    return 0;
}

static int zero_ok(const unsigned char *p, size_t n, size_t *bad)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w != 0)
            break;
    }
    for (; i < n; i++)
        if (p[i] != 0) {
            *bad = i;
            return 0;
        }
    return 1;
}

/* ================= actors: the threads (and fork children) ================= */

struct actor {
    struct slot *slot;      /* NULL: not watched */
    int kind, id;
    int parent_kind, parent_id;     /* a fork child's */
    unsigned uid;           /* unique in the process: goes into the stamps */
    uint64_t rng, stamps;
    unsigned long failed;
    uint64_t count[C_COUNT];
};

static void actor_init(struct actor *a, struct slot *slot, int kind, int id, unsigned uid)
{
    memset(a, 0, sizeof *a);
    a->slot = slot;
    a->kind = kind;
    a->id = id;
    a->uid = uid;
    a->rng = mix(opt.seed ^ mix(uid)) | 1;
}

static uint64_t rnd(struct actor *a)
{
    uint64_t x = a->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    a->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static uint64_t new_stamp(struct actor *a)
{
    return (uint64_t)a->uid << 36 | ++a->stamps;
}

static void actor_flush(struct actor *a)
{
    for (int i = 0; i < C_COUNT; i++)
        if (a->count[i] != 0) {
            __atomic_add_fetch(&sh->count[i], a->count[i], __ATOMIC_RELAXED);
            a->count[i] = 0;
        }
}

static inline void enter(struct actor *a, int op, size_t arg)
{
    struct slot *s = a->slot;
    if (s == NULL)
        return;
    __atomic_store_n(&s->arg, arg, __ATOMIC_RELAXED);
    __atomic_store_n(&s->since, now_ns(), __ATOMIC_RELAXED);
    __atomic_store_n(&s->op, op, __ATOMIC_RELEASE);
}

static inline void leave(struct actor *a)
{
    if (a->slot != NULL)
        __atomic_store_n(&a->slot->op, OP_IDLE, __ATOMIC_RELEASE);
}

/* The calling thread's slot from now on: its thread id noted. */
static void slot_here(struct slot *s)
{
    if (s != NULL)
        __atomic_store_n(&s->tid, (int)syscall(SYS_gettid), __ATOMIC_RELAXED);
}

static struct slot *slot_take(int index, int kind, int id)
{
    struct slot *s = &sh->slot[index];
    s->id = id;
    s->tid = 0;
    s->op = OP_IDLE;
    __atomic_store_n(&s->kind, kind, __ATOMIC_RELEASE);
    return s;
}

/* A free slot for a short-lived thread; NULL when all are taken. */
static struct slot *slot_claim(int kind, int id)
{
    for (int i = SLOT_FIRST_SHORT; i < SLOTS; i++) {
        int none = K_NONE;
        if (__atomic_load_n(&sh->slot[i].kind, __ATOMIC_RELAXED) == K_NONE &&
            __atomic_compare_exchange_n(&sh->slot[i].kind, &none, K_NONE - 1, 0, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED)) {
            struct slot *s = slot_take(i, kind, id);
            slot_here(s);
            return s;
        }
    }
    return NULL;
}

static void slot_release(struct slot *s)
{
    if (s == NULL)
        return;
    __atomic_store_n(&s->op, OP_IDLE, __ATOMIC_RELAXED);
    __atomic_store_n(&s->kind, K_NONE, __ATOMIC_RELEASE);
}

/* "worker 2: " */
static void t_actor(struct text *t, const struct actor *a)
{
    t->n = 0;
    t->s[0] = '\0';
    if (a->kind == K_FORK_CHILD)
        t_fmt(t, "fork child of %s %ju", kind_name[a->parent_kind], (uintmax_t)a->parent_id);
    else
        t_fmt(t, "%s %ju", kind_name[a->kind], (uintmax_t)a->id);
    t_str(t, ": ");
}

/* Record a failure: counted by kind; the first messages kept for the report
 * and the first twenty written on stderr at once. */
static void fail(struct actor *a, enum fail kind, struct text *t)
{
    a->failed++;
    __atomic_add_fetch(&sh->fails[kind], 1, __ATOMIC_RELAXED);
    int i = __atomic_fetch_add(&sh->messages, 1, __ATOMIC_RELAXED);
    if (i < MESSAGES)
        memcpy(sh->message[i], t->s, t->n + 1);
    if (i < 20) {
        struct text line = { .n = 0 };
        t_fmt(&line, "%s%s\n", limited ? "concurrent [RLIMIT_AS]: " : "concurrent [plain]: ", t->s);
        ssize_t ignored = write(STDERR_FILENO, line.s, line.n);
        (void)ignored;
    }
}

/* fail() with the actor's name and fmt, as t_fmt() fills it in. */
__attribute__((format(printf, 3, 4)))
static void failf(struct actor *a, enum fail kind, const char *fmt, ...)
{
    struct text t;
    va_list ap;
    t_actor(&t, a);
    va_start(ap, fmt);
    t_vfmt(&t, fmt, ap);
    va_end(ap);
    fail(a, kind, &t);
}

/* ================= blocks ================= */

struct blk {
    unsigned char *p;
    size_t req;         /* the size asked for */
    size_t len;         /* bytes that follow the pattern: req, or the usable size */
    size_t usable;
    uint64_t stamp;
    uint32_t align;     /* asked for; 0: malloc's */
    uint8_t how;        /* the call that made it (enum op) */
};

static void t_block(struct text *t, const struct blk *b)
{
    t_fmt(t, "block 0x%jx from %s of %ju bytes", (uintmax_t)(uintptr_t)b->p, op_name[b->how], (uintmax_t)b->req);
    if (b->align != 0)
        t_fmt(t, " aligned to %ju", (uintmax_t)b->align);
    t_fmt(t, " (stamp 0x%jx, %ju filled)", (uintmax_t)b->stamp, (uintmax_t)b->len);
}

/* Mostly small, some medium, some just under the default mmap threshold
 * (from the heap; arenas grow for them) and some above it (mapped). */
static size_t draw_size(struct actor *a)
{
    uint64_t r = rnd(a);
    unsigned pick = (unsigned)(r % 1000);
    r >>= 10;
    if (pick < 10)
        return (size_t)(r % 16);        /* 0 included */
    if (pick < 600)
        return 16 + (size_t)(r % 241);
    if (pick < 850)
        return 257 + (size_t)(r % 3840);
    if (pick < 950)
        return 4097 + (size_t)(r % (28 * KIB));
    if (pick < 985)
        return 64 * KIB + (size_t)(r % (56 * KIB));
    return 200 * KIB + (size_t)(r % (824 * KIB));
}

static size_t draw_align(struct actor *a)
{
    uint64_t r = rnd(a);
    if (r % 50 == 0)
        return 64 * KIB;
    return (size_t)8 << (r >> 8) % 10;      /* 8 .. 4096 */
}

static int draw_how(struct actor *a)
{
    static const struct {
        unsigned below;         /* of 100 */
        int op;
    } how[] = {
        { 40, OP_MALLOC }, { 60, OP_CALLOC }, { 68, OP_MEMALIGN }, { 76, OP_POSIX_MEMALIGN },
        { 84, OP_ALIGNED_ALLOC }, { 92, OP_REALLOC }, { 100, OP_REALLOCARRAY },
    };
    unsigned r = (unsigned)(rnd(a) % 100), i = 0;
    while (r >= how[i].below)
        i++;
    return how[i].op;
}

/* A failed call: ENOMEM, and only under the memory limit. */
static void failed_call(struct actor *a, int how, size_t size, int err, const char *ctx)
{
    struct text t;
    if (err == ENOMEM && limited)
        return;
    t_actor(&t, a);
    t_str(&t, op_name[how]);
    t_request(&t, size, ctx);
    if (err != ENOMEM) {
        t_fmt(&t, " failed with error %ju, not ENOMEM", (uintmax_t)err);
        fail(a, F_ERRNO, &t);
    } else {
        t_str(&t, " failed (ENOMEM) with no memory limit");
        fail(a, F_NOMEM, &t);
    }
}

/* Alignment and usable size of a block just returned for `size` bytes. */
static size_t check_new(struct actor *a, void *p, size_t size, size_t align, int how, const char *ctx)
{
    struct text t;
    size_t want = align > 16 ? align : 16;
    if ((uintptr_t)p % want != 0) {
        t_actor(&t, a);
        t_str(&t, op_name[how]);
        t_request(&t, size, ctx);
        t_fmt(&t, " returned 0x%jx, not aligned to %ju", (uintmax_t)(uintptr_t)p, (uintmax_t)want);
        fail(a, F_ALIGN, &t);
    }
    enter(a, OP_USABLE_SIZE, size);
    size_t usable = malloc_usable_size(p);
    leave(a);
    if (usable < size) {
        t_actor(&t, a);
        t_str(&t, op_name[how]);
        t_request(&t, size, ctx);
        t_fmt(&t, ": malloc_usable_size() is only %ju", (uintmax_t)usable);
        fail(a, F_USABLE, &t);
        usable = size;
    }
    return usable;
}

/* Allocate `size` bytes with call `how` into *b, check and fill it.  0 when
 * the call failed (checked to be ENOMEM). */
static int blk_new(struct actor *a, struct blk *b, size_t size, int how, const char *ctx)
{
    void *p = NULL;
    int aligned = how == OP_MEMALIGN || how == OP_POSIX_MEMALIGN || how == OP_ALIGNED_ALLOC;
    if (!aligned && how != OP_CALLOC && how != OP_REALLOC && how != OP_REALLOCARRAY)
        how = OP_MALLOC;
    size_t align = aligned ? draw_align(a) : 0;
    memset(b, 0, sizeof *b);
    errno = 0;
    enter(a, how, size);
    switch (how) {
    case OP_CALLOC:
        p = size % 16 == 0 && size > 0 ? calloc(size / 16, 16) : calloc(1, size);
        break;
    case OP_REALLOC:
        p = realloc(NULL, size);
        break;
    case OP_REALLOCARRAY:
        p = size % 8 == 0 && size > 0 ? reallocarray(NULL, size / 8, 8) : reallocarray(NULL, size, 1);
        break;
    case OP_MEMALIGN:
        p = memalign(align, size);
        break;
    case OP_POSIX_MEMALIGN: {
        int rc = posix_memalign(&p, align, size);
        if (rc != 0) {
            p = NULL;
            errno = rc;
        }
        break;
    }
    case OP_ALIGNED_ALLOC:
        p = aligned_alloc(align, size);
        break;
    default:
        p = malloc(size);
        break;
    }
    int err = errno;
    leave(a);
    if (p == NULL) {
        a->count[C_NOMEM]++;
        failed_call(a, how, size, err, ctx);
        return 0;
    }
    size_t usable = check_new(a, p, size, align, how, ctx);
    size_t at;
    if (how == OP_CALLOC && !zero_ok(p, size, &at)) {
        struct text t;
        t_actor(&t, a);
        t_str(&t, "calloc()");
        t_request(&t, size, ctx);
        t_fmt(&t, " returned 0x%jx with byte %ju (at 0x%jx, %ju bytes below a 1 MiB boundary) = 0x%jx, not zero",
              (uintmax_t)(uintptr_t)p, (uintmax_t)at, (uintmax_t)((uintptr_t)p + at),
              (uintmax_t)(MIB - ((uintptr_t)p + at) % MIB), (uintmax_t)((unsigned char *)p)[at]);
        fail(a, F_CALLOC, &t);
    }
    b->p = p;
    b->req = size;
    b->usable = usable;
    b->len = rnd(a) % 4 == 0 ? usable : size;
    b->stamp = new_stamp(a);
    b->align = (uint32_t)align;
    b->how = (uint8_t)how;
    pattern_fill(b->p, 0, b->len, b->stamp);
    a->count[C_ALLOCS]++;
    if (how == OP_CALLOC)
        a->count[C_CALLOCS]++;
    return 1;
}

/* Does the block hold its pattern?  `what` says when it is looked at. */
static int blk_check(struct actor *a, const struct blk *b, const char *what, enum fail kind)
{
    size_t at;
    a->count[C_VERIFIED]++;
    if (pattern_ok(b->p, 0, b->len, b->stamp, &at))
        return 1;
    struct text t;
    t_actor(&t, a);
    t_block(&t, b);
    t_fmt(&t, " %s: byte %ju is 0x%jx, not 0x%jx", what, (uintmax_t)at, (uintmax_t)b->p[at],
          (uintmax_t)pattern_byte(b->stamp, at));
    fail(a, kind, &t);
    return 0;
}

static int sized_free_allowed(int how)
{
    return how == OP_MALLOC || how == OP_CALLOC || how == OP_REALLOC || how == OP_REALLOCARRAY;
}

/* Verify and free a block with one of the free calls. */
static void blk_free(struct actor *a, struct blk *b, const char *what)
{
    blk_check(a, b, what, F_CONTENT);
    uint64_t r = rnd(a);
    if (sized_free_allowed(b->how) && r % 3 == 0) {
        enter(a, OP_FREE_SIZED, b->req);
        free_sized(b->p, b->req);
    } else if (b->how == OP_ALIGNED_ALLOC && r % 2 == 0) {
        enter(a, OP_FREE_ALIGNED_SIZED, b->req);
        free_aligned_sized(b->p, b->align, b->req);
    } else {
        enter(a, OP_FREE, b->req);
        free(b->p);
    }
    leave(a);
    a->count[C_FREES]++;
    b->p = NULL;
}

/* Verify, then realloc (or reallocarray) to n bytes: the prefix must be
 * kept; on failure, the whole block.  0 when the call failed. */
static int blk_resize(struct actor *a, struct blk *b, size_t n, const char *what)
{
    struct text t;
    size_t at;
    if (n == 0)
        n = 1;                  /* realloc(p, 0) frees or not, as the implementation likes */
    if (!blk_check(a, b, what, F_CONTENT))
        pattern_fill(b->p, 0, b->len, b->stamp);       /* reported: do not report it again */
    int array = rnd(a) % 4 == 0;
    int how = array ? OP_REALLOCARRAY : OP_REALLOC;
    errno = 0;
    enter(a, how, n);
    void *q = !array ? realloc(b->p, n) : n % 16 == 0 ? reallocarray(b->p, n / 16, 16) : reallocarray(b->p, n, 1);
    int err = errno;
    leave(a);
    if (q == NULL) {
        a->count[C_REALLOC_NOMEM]++;
        failed_call(a, how, n, err, "(resizing a block)");
        blk_check(a, b, "after a failed realloc", F_REALLOC_KEPT);
        return 0;
    }
    size_t usable = check_new(a, q, n, 0, how, "(resizing a block)");
    size_t keep = b->req < n ? b->req : n;
    if (!pattern_ok(q, 0, keep, b->stamp, &at)) {
        t_actor(&t, a);
        t_fmt(&t, "%s of ", op_name[how]);
        t_block(&t, b);
        t_fmt(&t, " to %ju bytes at 0x%jx lost its contents: byte %ju is 0x%jx, not 0x%jx", (uintmax_t)n,
              (uintmax_t)(uintptr_t)q, (uintmax_t)at, (uintmax_t)((unsigned char *)q)[at],
              (uintmax_t)pattern_byte(b->stamp, at));
        fail(a, F_CONTENT, &t);
        keep = 0;
    }
    b->p = q;
    b->req = n;
    b->usable = usable;
    b->len = rnd(a) % 4 == 0 ? usable : n;
    b->align = 0;
    b->how = (uint8_t)how;
    pattern_fill(b->p, keep, b->len, b->stamp);
    a->count[C_REALLOCS]++;
    return 1;
}

/* Requests whose size overflows fail with ENOMEM; reallocarray's leaves the
 * block alone. */
static volatile size_t huge_count = SIZE_MAX / 8 + 2;     /* volatile: the compiler would warn */

static void overflow_calls(struct actor *a, struct blk *b)
{
    errno = 0;
    enter(a, OP_CALLOC, SIZE_MAX);
    void *p = calloc(huge_count, 8);
    int err = errno;
    leave(a);
    if (p != NULL || err != ENOMEM) {
        failf(a, F_ERRNO, "calloc(SIZE_MAX / 8 + 2, 8) returned 0x%jx with errno %ju, not NULL with ENOMEM",
              (uintmax_t)(uintptr_t)p, (uintmax_t)err);
        free(p);
    }
    if (b->p == NULL)
        return;
    errno = 0;
    enter(a, OP_REALLOCARRAY, SIZE_MAX);
    p = reallocarray(b->p, huge_count * 4, 2);     /* SIZE_MAX / 2 + 5 */
    err = errno;
    leave(a);
    if (p != NULL || err != ENOMEM) {
        failf(a, F_ERRNO, "reallocarray(p, SIZE_MAX / 2 + 5, 2) returned 0x%jx with errno %ju, not NULL with ENOMEM",
              (uintmax_t)(uintptr_t)p, (uintmax_t)err);
        if (p != NULL) {
            b->p = NULL;        /* whatever it is, it is not the block any more */
            return;
        }
    }
    blk_check(a, b, "after a reallocarray() that overflowed", F_REALLOC_KEPT);
}

/* ================= the mailbox ================= */

#define MAILBOX 128

static pthread_mutex_t mailbox_lock = PTHREAD_MUTEX_INITIALIZER;
static struct blk mailbox[MAILBOX];

/* Swap *b with a random box: what was there comes back in *b. */
static void mailbox_swap(struct actor *a, struct blk *b)
{
    size_t i = (size_t)(rnd(a) % MAILBOX);
    enter(a, OP_MAILBOX, 0);
    pthread_mutex_lock(&mailbox_lock);
    struct blk old = mailbox[i];
    mailbox[i] = *b;
    pthread_mutex_unlock(&mailbox_lock);
    leave(a);
    *b = old;
}

/* A block out of the mailbox: verified, then freed or resized.  `keep`: a
 * free place to keep a resized one in (NULL: free it too). */
static void mailbox_received(struct actor *a, struct blk *b, struct blk *keep)
{
    a->count[C_HANDED]++;
    if (rnd(a) % 3 == 0) {
        if (blk_resize(a, b, draw_size(a), "received from the mailbox, before realloc") && keep != NULL &&
            keep->p == NULL) {
            *keep = *b;
            return;
        }
        blk_free(a, b, "received from the mailbox and resized, before free");
    } else {
        blk_free(a, b, "received from the mailbox, before free");
    }
}

/* Post *b (the caller gives it up); what the box held is the caller's to handle. */
static void mailbox_put(struct actor *a, struct blk *b, struct blk *keep)
{
    struct blk x = *b;
    b->p = NULL;
    mailbox_swap(a, &x);
    if (x.p != NULL)
        mailbox_received(a, &x, keep);
}

static void mailbox_take(struct actor *a, struct blk *keep)
{
    struct blk x;
    memset(&x, 0, sizeof x);
    mailbox_swap(a, &x);
    if (x.p != NULL)
        mailbox_received(a, &x, keep);
}

/* ================= settings, statistics, checks ================= */

static FILE *devnull;
static char devnull_buffer[BUFSIZ];

static void mallopt_call(struct actor *a, int param, const char *name, int value)
{
    if (a->slot != NULL)
        __atomic_store_n(&a->slot->param, param, __ATOMIC_RELAXED);
    enter(a, OP_MALLOPT, (size_t)value);
    int accepted = mallopt(param, value);
    leave(a);
    a->count[C_MALLOPTS]++;
    if (accepted != 1)
        failf(a, F_API, "mallopt(%s, %ju) returned 0", name, (uintmax_t)value);
}

static void heap_check(struct actor *a, const char *when)
{
    enter(a, OP_CHECK, 0);
    int problems = mymalloc_check();
    leave(a);
    a->count[C_CHECKS]++;
    if (problems != 0)
        failf(a, F_CHECK, "mymalloc_check() %s found %ju problems", when, (uintmax_t)problems);
}

/* One of the calls that look at or change the whole allocator. */
static void tune(struct actor *a)
{
    static const int trims[] = { 32 * 1024, 64 * 1024, 128 * 1024, 256 * 1024, 1024 * 1024, 4096 * 1024 };
    static const int decays[] = { 0, 50, 1000 };
    static const int fits[] = { MYMALLOC_FIT_BEST, MYMALLOC_FIT_BEST, MYMALLOC_FIT_FIRST, MYMALLOC_FIT_NEXT,
                                MYMALLOC_FIT_WORST };
    uint64_t r = rnd(a);
    unsigned what = (unsigned)(r % 8);
    r >>= 8;
    if (opt.no_mallopt && what == 1)
        what = 0;
    if (opt.no_stats && what >= 2 && what <= 4)
        what = 6;
    switch (what) {
    case 0:
        enter(a, OP_TRIM, 0);
        malloc_trim(r % 4 != 0 ? 0 : 64 * KIB);
        leave(a);
        a->count[C_TRIMS]++;
        break;
    case 1:
        switch ((r >> 8) % 6) {
        case 0:
        case 1:
            mallopt_call(a, M_MYMALLOC_TCACHE, "M_MYMALLOC_TCACHE", (int)(r % 2));
            break;
        case 2:
            mallopt_call(a, M_MYMALLOC_DECAY, "M_MYMALLOC_DECAY", decays[r % 3]);
            break;
        case 3:
            mallopt_call(a, M_TRIM_THRESHOLD, "M_TRIM_THRESHOLD", trims[r % 6]);
            break;
        case 4:     /* 64 KiB to 1 MiB, the default often */
            mallopt_call(a, M_MMAP_THRESHOLD, "M_MMAP_THRESHOLD",
                         r % 2 ? 128 * 1024 : 64 * 1024 + (int)((r >> 16) % (960 * 1024 + 1)));
            break;
        default:
            if (opt.no_fit)
                mallopt_call(a, M_MYMALLOC_TCACHE, "M_MYMALLOC_TCACHE", (int)(r % 2));
            else
                mallopt_call(a, M_MYMALLOC_FIT, "M_MYMALLOC_FIT", fits[r % 5]);
            break;
        }
        break;
    case 2: {
        enter(a, OP_MALLINFO2, 0);
        struct mallinfo2 mi = mallinfo2();
        leave(a);
        (void)mi;
        a->count[C_STATS]++;
        break;
    }
    case 3: {
        struct mymalloc_stats st;
        memset(&st, 0, sizeof st);
        enter(a, OP_STATS_GET, 0);
        int rc = mymalloc_stats_get(&st);
        leave(a);
        a->count[C_STATS]++;
        if (rc != 0 || st.arenas < 1 || st.arenas > 256)
            failf(a, F_API, "mymalloc_stats_get() returned %ju with %ju arenas", (uintmax_t)rc,
                  (uintmax_t)st.arenas);
        break;
    }
    case 4: {
        errno = 0;
        enter(a, OP_MALLOC_INFO, 0);
        int rc = malloc_info(0, devnull);
        int err = errno;
        leave(a);
        a->count[C_STATS]++;
        if (rc != 0 && !(limited && err == ENOMEM))
            failf(a, F_API, "malloc_info() into /dev/null returned %ju", (uintmax_t)rc);
        break;
    }
    default:
        heap_check(a, "(while other threads run)");
        break;
    }
}

/* ================= fork ================= */

#define CHILD_ALARM 10          /* s: a fork child hung on a lock dies of SIGALRM */
#define CHILD_OPS 3000
#define CHILD_SLOTS 64

/* In the child: only the forking thread lives.  Verify (and free) the blocks
 * it held, work the heap, check it, trim, check again. */
static void __attribute__((noreturn)) fork_child(const struct actor *parent, struct blk *held, size_t nheld,
                                                 struct blk *more, size_t nmore)
{
    struct actor a;
    struct blk t[CHILD_SLOTS];
    alarm(CHILD_ALARM);
    actor_init(&a, NULL, K_FORK_CHILD, parent->id, 0xF0000u + parent->uid);
    a.parent_kind = parent->kind;
    a.parent_id = parent->id;
    a.rng = mix(parent->rng) | 1;
    memset(t, 0, sizeof t);
    for (size_t i = 0; i < nheld; i++)
        if (held[i].p != NULL)
            blk_free(&a, &held[i], "inherited across fork(), before free in the child");
    for (size_t i = 0; i < nmore; i++)
        if (more[i].p != NULL)
            blk_free(&a, &more[i], "inherited across fork(), before free in the child");
    for (int i = 0; i < CHILD_OPS; i++) {
        struct blk *b = &t[rnd(&a) % CHILD_SLOTS];
        if (b->p == NULL)
            blk_new(&a, b, draw_size(&a), draw_how(&a), "(in a fork child)");
        else if (rnd(&a) % 4 == 0)
            blk_resize(&a, b, draw_size(&a), "in a fork child, before realloc");
        else
            blk_free(&a, b, "in a fork child, before free");
    }
    for (size_t i = 0; i < CHILD_SLOTS; i++)
        if (t[i].p != NULL)
            blk_free(&a, &t[i], "in a fork child, before free");
    heap_check(&a, "in a fork child");
    malloc_trim(0);
    heap_check(&a, "in a fork child after malloc_trim(0)");
    _exit(a.failed != 0 ? 1 : 0);
}

static void fork_now(struct actor *a, struct blk *held, size_t nheld, struct blk *more, size_t nmore)
{
    enter(a, OP_FORK, 0);
    pid_t pid = fork();
    if (pid == 0)
        fork_child(a, held, nheld, more, nmore);
    leave(a);
    if (pid < 0) {
        a->count[C_FORK_ERRORS]++;      /* the system's limits, not the allocator's doing */
        return;
    }
    a->count[C_FORKS]++;
    int status = 0;
    pid_t got;
    enter(a, OP_WAITPID, (size_t)pid);
    do
        got = waitpid(pid, &status, 0);
    while (got < 0 && errno == EINTR);
    leave(a);
    if (got == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        a->count[C_FORKS_OK]++;
        return;
    }
    struct text t;
    t_actor(&t, a);
    t_fmt(&t, "its fork child %ju", (uintmax_t)pid);
    if (got != pid) {
        t_str(&t, " could not be waited for");
    } else if (WIFSIGNALED(status)) {
        t_fmt(&t, " died of signal %ju", (uintmax_t)WTERMSIG(status));
        if (WTERMSIG(status) == SIGALRM)
            t_str(&t, " (SIGALRM: hung for its alarm's 10 s)");
    } else {
        t_fmt(&t, " exited %ju (its failures are reported on their own)", (uintmax_t)WEXITSTATUS(status));
    }
    fail(a, F_FORK_CHILD, &t);
}

/* ================= workers ================= */

#define LOCAL 64
#define BURST_MAX 64
#define TOP_MAX 96
#define HOG_MAX 1024

/* lib/heap.c: a non-main arena grows by mmap segments of at least 4 MiB,
 * made of whole 1 MiB granules and starting on one. */
#define SEGMENT_MIN (4 * MIB)
#define GRANULE MIB

struct worker {
    pthread_t thread;
    int started;
    struct actor a;
    struct blk local[LOCAL];
    struct blk burst[BURST_MAX];
    size_t nburst;
    struct blk top[TOP_MAX];
    size_t top_size[TOP_MAX];
    struct blk hog[HOG_MAX];
    size_t nhog;
    unsigned long ops, hog_until;
};

static struct worker workers[MAX_WORKERS];
static int go, stop;
static int growing;     /* workers in a burst or a top fill, which grow arenas */

static int stopping(void)
{
    return __atomic_load_n(&stop, __ATOMIC_RELAXED);
}

static void wait_for_go(void)
{
    while (!__atomic_load_n(&go, __ATOMIC_ACQUIRE) && !stopping())
        sleep_us(1000);
}

/* Hold a burst of blocks just under the mmap threshold, or free the one held. */
static void burst(struct worker *w)
{
    struct actor *a = &w->a;
    if (w->nburst > 0) {
        int reverse = (int)(rnd(a) % 2);
        for (size_t i = 0; i < w->nburst; i++)
            blk_free(a, &w->burst[reverse ? w->nburst - 1 - i : i], "before free (a burst)");
        w->nburst = 0;
        return;
    }
    a->count[C_BURSTS]++;
    size_t n = 8 + (size_t)(rnd(a) % (BURST_MAX - 7));
    __atomic_add_fetch(&growing, 1, __ATOMIC_RELAXED);
    for (size_t i = 0; i < n; i++) {
        int how = rnd(a) % 3 == 0 ? draw_how(a) : OP_MALLOC;
        if (blk_new(a, &w->burst[w->nburst], 64 * KIB + (size_t)(rnd(a) % (56 * KIB)), how, "(a burst)"))
            w->nburst++;
    }
    __atomic_sub_fetch(&growing, 1, __ATOMIC_RELAXED);
}

/* The size that makes a block starting at `cursor` (its header there) end
 * less than a page before `end`, leaving the top a few hundred bytes; 0 when
 * too little is left. */
static size_t size_to_end(struct actor *a, uintptr_t cursor, uintptr_t end)
{
    size_t slack = 64 + (size_t)(rnd(a) % 32) * 16;
    size_t rest = (size_t)(end - cursor);
    return rest > slack + 256 ? rest - slack : 0;
}

/* Follow the blocks carved one after the other from a fresh segment's start
 * (whose first block starts a few bytes past a granule boundary): *cursor is
 * the end of the last of them, 0 while none is known. */
static void follow(uintptr_t *base, uintptr_t *cursor, const struct blk *b)
{
    uintptr_t p = (uintptr_t)b->p;
    if (*base == 0 && p % GRANULE < 64) {
        *base = p - p % GRANULE;
        *cursor = p + b->usable;
    } else if (*cursor != 0 && p > *cursor && p - *cursor <= 32) {
        *cursor = p + b->usable;
    }
}

/* Fill this thread's arena up to the end of a segment (a fresh one, when the
 * blocks get there), free it all in reverse so that it joins the top, which
 * trims (or malloc_trim does), then calloc the same sizes in the same order,
 * which best fit places where they were, up to the end again: every byte of
 * every calloc block must be zero. */
static void top_fill_calloc(struct worker *w)
{
    struct actor *a = &w->a;
    uintptr_t base = 0, cursor = 0;
    void *last = NULL;          /* the block that reached the segment's end */
    size_t n = 0;
    a->count[C_SQUEEZES]++;
    __atomic_add_fetch(&growing, 1, __ATOMIC_RELAXED);
    while (n < TOP_MAX) {
        size_t size = 64 * KIB + (size_t)(rnd(a) % (56 * KIB));
        int final = 0;
        if (cursor != 0 && base + SEGMENT_MIN - cursor < 120 * KIB + 4 * KIB) {
            size = size_to_end(a, cursor, base + SEGMENT_MIN);
            if (size == 0)
                break;
            final = 1;
        }
        if (!blk_new(a, &w->top[n], size, OP_MALLOC, "(filling the top)"))
            break;
        uintptr_t before = cursor;
        follow(&base, &cursor, &w->top[n]);
        w->top_size[n] = size;
        n++;
        if (final) {
            if (cursor != before && base + SEGMENT_MIN - cursor < 4 * KIB) {
                last = w->top[n - 1].p;
                a->count[C_SQUEEZED_TO_END]++;
            }
            break;
        }
    }
    __atomic_sub_fetch(&growing, 1, __ATOMIC_RELAXED);
    size_t filled = n;
    while (n > 0)
        blk_free(a, &w->top[--n], "before free (the top filled)");
    if (rnd(a) % 2) {
        enter(a, OP_TRIM, 0);
        malloc_trim(0);
        leave(a);
        a->count[C_TRIMS]++;
    }
    for (; n < filled; n++) {
        if (!blk_new(a, &w->top[n], w->top_size[n], OP_CALLOC, "after the top was filled, freed and trimmed"))
            break;
        a->count[C_TOP_CALLOCS]++;
        if (last != NULL && w->top[n].p == last)
            a->count[C_TOP_CALLOCS_AT_END]++;
    }
    while (n > 0)
        blk_free(a, &w->top[--n], "before free (calloc'd from the top)");
}

/* Under the memory limit: allocate until calls fail (and try to grow a held
 * block then).  What it got is held for HOG_HOLD more operations of this
 * thread, while every thread works at the limit, then verified and freed. */
#define HOG_HOLD 2000

static void hog_free(struct worker *w)
{
    while (w->nhog > 0)
        blk_free(&w->a, &w->hog[--w->nhog], "before free (used up the address space)");
}

static void exhaust(struct worker *w)
{
    struct actor *a = &w->a;
    int failures = 0;
    hog_free(w);
    a->count[C_EXHAUSTS]++;
    while (w->nhog < HOG_MAX && failures < 4) {
        uint64_t r = rnd(a);
        size_t size;
        switch (r % 4) {
        case 0:
            size = 16 + (size_t)((r >> 8) % 4096);
            break;
        case 1:
            size = 64 * KIB + (size_t)((r >> 8) % (56 * KIB));
            break;
        default:
            size = 256 * KIB + (size_t)((r >> 8) % (4 * MIB - 256 * KIB));
            break;
        }
        if (blk_new(a, &w->hog[w->nhog], size, draw_how(a), "(using up the address space)")) {
            w->nhog++;
            continue;
        }
        failures++;
        if (w->nhog > 0) {
            struct blk *b = &w->hog[(r >> 32) % w->nhog];
            blk_resize(a, b, b->req + MIB + (size_t)((r >> 40) % MIB), "before realloc (using up the address space)");
        }
    }
    w->hog_until = w->ops + HOG_HOLD;
}

static void worker_step(struct worker *w)
{
    struct actor *a = &w->a;
    uint64_t r = rnd(a);
    unsigned pick = (unsigned)(r % 1000), rare = (unsigned)((r >> 10) % 100000);
    struct blk *b = &w->local[(r >> 30) % LOCAL];

    a->count[C_OPS]++;
    if (++w->ops == w->hog_until)
        hog_free(w);
    if (pick < 300) {
        if (b->p != NULL)
            blk_free(a, b, "before free");
        blk_new(a, b, draw_size(a), draw_how(a), "");
    } else if (pick < 450) {
        if (b->p != NULL)
            blk_resize(a, b, draw_size(a), "before realloc");
        else
            blk_new(a, b, draw_size(a), draw_how(a), "");
    } else if (pick < 550) {
        if (b->p != NULL)
            blk_free(a, b, "before free");
    } else if (pick < 700) {
        if (b->p != NULL || blk_new(a, b, draw_size(a), draw_how(a), "(to post)"))
            mailbox_put(a, b, b);
    } else if (pick < 850) {
        mailbox_take(a, b->p == NULL ? b : NULL);
    } else if (pick < 990) {
        if (b->p != NULL) {
            enter(a, OP_USABLE_SIZE, b->req);
            size_t usable = malloc_usable_size(b->p);
            leave(a);
            if (usable != b->usable) {
                struct text t;
                t_actor(&t, a);
                t_block(&t, b);
                t_fmt(&t, ": malloc_usable_size() was %ju, is now %ju", (uintmax_t)b->usable, (uintmax_t)usable);
                fail(a, F_USABLE, &t);
                b->usable = usable;
            }
            blk_check(a, b, "while held", F_CONTENT);
        }
    } else {
        overflow_calls(a, b);
    }

    /* Another thread's arena is probably growing: fork, or switch the
     * placement policy (both take every arena's lock), now and then. */
    if (__atomic_load_n(&growing, __ATOMIC_RELAXED) > 0 && (r >> 48) % 512 == 0) {
        if ((r >> 57) % 2 == 0 && !opt.no_fork)
            fork_now(a, w->local, LOCAL, w->burst, w->nburst);
        else if (!opt.no_fit && !opt.no_mallopt)
            mallopt_call(a, M_MYMALLOC_FIT, "M_MYMALLOC_FIT", (int)((r >> 58) % 4));
    }

    if (rare < 60)
        burst(w);
    else if (rare < 68) {
        if (!opt.no_top_calloc)
            top_fill_calloc(w);
    } else if (rare < 78) {
        if (!opt.no_fork)
            fork_now(a, w->local, LOCAL, w->burst, w->nburst);
    } else if (rare < 178) {
        tune(a);
    } else if (rare < 198 && limited) {
        exhaust(w);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    unsigned long n = 0;
    slot_here(w->a.slot);
    wait_for_go();
    if (limited)
        exhaust(w);
    while (!stopping()) {
        worker_step(w);
        if (++n % 1024 == 0)
            actor_flush(&w->a);
    }
    for (size_t i = 0; i < LOCAL; i++)
        if (w->local[i].p != NULL)
            blk_free(&w->a, &w->local[i], "before free (at the end)");
    if (w->nburst > 0)
        burst(w);
    hog_free(w);
    actor_flush(&w->a);
    return NULL;
}

/* ================= the tuner ================= */

static struct actor tuner_actor;

static void *tuner_main(void *arg)
{
    struct actor *a = arg;
    unsigned long round = 0;
    slot_here(a->slot);
    wait_for_go();
    while (!stopping()) {
        enter(a, OP_SLEEP, 0);
        sleep_us(200 + (long)(rnd(a) % 2000));
        leave(a);
        tune(a);
        if (!opt.no_fork && ++round % 64 == 0)
            fork_now(a, NULL, 0, NULL, 0);
        actor_flush(a);
    }
    actor_flush(a);
    return NULL;
}

/* ================= short-lived threads ================= */

#define SHORT_BLOCKS 40
#define BATCH 4

struct short_arg {
    unsigned uid;
    int dtor;
};

static pthread_attr_t small_stack;
static pthread_key_t dtor_key;

static void *short_main(void *arg)
{
    const struct short_arg *sa = arg;
    struct actor a;
    struct blk mine[SHORT_BLOCKS];
    actor_init(&a, slot_claim(K_SHORT, (int)sa->uid), K_SHORT, (int)sa->uid, sa->uid);
    memset(mine, 0, sizeof mine);
    size_t n = 4 + (size_t)(rnd(&a) % (SHORT_BLOCKS - 4));
    for (size_t i = 0; i < n; i++) {
        size_t size = rnd(&a) % 8 != 0 ? 16 + (size_t)(rnd(&a) % 1024) : draw_size(&a);
        blk_new(&a, &mine[i], size, draw_how(&a), "(in a short-lived thread)");
    }
    for (size_t i = 0; i < n; i++)          /* into this thread's cache */
        if (mine[i].p != NULL && rnd(&a) % 2 == 0)
            blk_free(&a, &mine[i], "before free");
    for (int posts = 1 + (int)(rnd(&a) % 3); posts > 0; posts--) {
        struct blk *b = &mine[rnd(&a) % n];
        if (b->p != NULL)
            mailbox_put(&a, b, NULL);
    }
    for (int takes = (int)(rnd(&a) % 3); takes > 0; takes--)
        mailbox_take(&a, NULL);
    for (size_t i = 0; i < n; i++)          /* the thread exits with them cached */
        if (mine[i].p != NULL)
            blk_free(&a, &mine[i], "before free");
    a.count[C_OPS] += n;
    actor_flush(&a);
    slot_release(a.slot);
    return NULL;
}

/* A destructor thread: nothing allocated until the last round of key
 * destructors.  Its value counts the rounds. */
static __thread unsigned dtor_uid;
static __thread struct slot *dtor_slot;

static void *dtor_thread_main(void *arg)
{
    const struct short_arg *sa = arg;
    dtor_uid = sa->uid;
    dtor_slot = slot_claim(K_DTOR, (int)sa->uid);
    /* No allocation: a low key's value lives in the thread itself. */
    pthread_setspecific(dtor_key, (void *)(uintptr_t)1);
    return NULL;
}

static void dtor_last_round(void *value)
{
    uintptr_t round = (uintptr_t)value;
    if (round < PTHREAD_DESTRUCTOR_ITERATIONS) {
        pthread_setspecific(dtor_key, (void *)(round + 1));    /* run me again */
        return;
    }
    /* The last round: this thread's first allocation. */
    struct actor a;
    struct blk mine[8];
    actor_init(&a, dtor_slot, K_DTOR, (int)dtor_uid, dtor_uid);
    memset(mine, 0, sizeof mine);
    a.count[C_DTOR_LAST_ROUND]++;
    size_t n = 1 + (size_t)(rnd(&a) % 8);
    for (size_t i = 0; i < n; i++)
        blk_new(&a, &mine[i], i == 0 ? 16 + (size_t)(rnd(&a) % 512) : draw_size(&a), i == 0 ? OP_MALLOC : draw_how(&a),
                "(the first allocation of a thread, in its last key destructor round)");
    size_t post = (size_t)(rnd(&a) % n);
    for (size_t i = 0; i < n; i++)
        if (mine[i].p != NULL) {
            if (i == post)
                mailbox_put(&a, &mine[i], NULL);
            else
                blk_free(&a, &mine[i], "before free (in the last destructor round)");
        }
    actor_flush(&a);
    slot_release(dtor_slot);
    dtor_slot = NULL;
}

static unsigned next_uid = 100;

static void *spawner_main(void *arg)
{
    struct actor *a = arg;
    slot_here(a->slot);
    wait_for_go();
    while (!stopping()) {
        pthread_t t[BATCH];
        struct short_arg sa[BATCH];
        int started[BATCH];
        int n = 1 + (int)(rnd(a) % BATCH);
        for (int i = 0; i < n; i++) {
            sa[i].uid = next_uid++;
            sa[i].dtor = opt.no_short || (!opt.no_dtor && rnd(a) % 3 == 0);
            enter(a, OP_THREAD_CREATE, 0);
            int rc = pthread_create(&t[i], &small_stack, sa[i].dtor ? dtor_thread_main : short_main, &sa[i]);
            leave(a);
            started[i] = rc == 0;
            if (rc == 0) {
                a->count[C_THREADS]++;
                if (sa[i].dtor)
                    a->count[C_DTOR_THREADS]++;
            } else if (rc == EAGAIN && limited) {
                a->count[C_THREAD_EAGAIN]++;        /* no room for a stack now */
                sleep_us(200);
            } else {
                failf(a, F_THREAD, "pthread_create() failed with error %ju", (uintmax_t)rc);
                sleep_us(1000);
            }
        }
        for (int i = 0; i < n; i++)
            if (started[i]) {
                enter(a, OP_THREAD_JOIN, 0);
                pthread_join(t[i], NULL);
                leave(a);
            }
        actor_flush(a);
    }
    actor_flush(a);
    return NULL;
}

/* ================= the workload (in the child) ================= */

static struct actor spawner_actor;


static void setup_failed(struct actor *a, const char *what, int err)
{
    failf(a, F_API, "%s failed with error %ju", what, (uintmax_t)err);
}

static int start_thread(struct actor *m, pthread_t *t, void *(*run)(void *), void *arg)
{
    int rc = pthread_create(t, &small_stack, run, arg);
    if (rc != 0)
        failf(m, F_THREAD, "could not start a long-lived thread: error %ju", (uintmax_t)rc);
    return rc == 0;
}

static void __attribute__((noreturn)) workload(void)
{
    struct actor m;
    pthread_t tuner, spawner;
    int tuner_started, spawner_started = 0;

    prctl(PR_SET_PDEATHSIG, SIGKILL);       /* never outlive the watchdog */
    if (getppid() != watchdog_pid)
        _exit(3);
    alarm((unsigned)(opt.seconds + opt.grace) + 60);
    actor_init(&m, slot_take(SLOT_MAIN, K_MAIN, 0), K_MAIN, 0, 99);
    slot_here(m.slot);

    devnull = fopen("/dev/null", "w");
    if (devnull == NULL || setvbuf(devnull, devnull_buffer, _IOFBF, sizeof devnull_buffer) != 0)
        setup_failed(&m, "fopen(\"/dev/null\")", errno);
    int rc = pthread_key_create(&dtor_key, dtor_last_round);
    if (rc != 0)
        setup_failed(&m, "pthread_key_create()", rc);
    pthread_attr_init(&small_stack);
    rc = pthread_attr_setstacksize(&small_stack, 256 * KIB);
    if (rc != 0)
        setup_failed(&m, "pthread_attr_setstacksize()", rc);

    for (int i = 0; i < opt.threads; i++) {
        struct worker *w = &workers[i];
        actor_init(&w->a, slot_take(1 + i, K_WORKER, i + 1), K_WORKER, i + 1, (unsigned)(i + 1));
        w->started = start_thread(&m, &w->thread, worker_main, w);
    }
    actor_init(&tuner_actor, slot_take(SLOT_TUNER, K_TUNER, 1), K_TUNER, 1, MAX_WORKERS + 1);
    tuner_started = start_thread(&m, &tuner, tuner_main, &tuner_actor);
    if (!opt.no_short || !opt.no_dtor) {
        actor_init(&spawner_actor, slot_take(SLOT_SPAWNER, K_SPAWNER, 1), K_SPAWNER, 1, MAX_WORKERS + 2);
        spawner_started = start_thread(&m, &spawner, spawner_main, &spawner_actor);
    }

    if (limited) {          /* room for what is mapped now, plus the margin */
        struct rlimit lim;
        size_t vm = status_kib("VmSize");
        if (vm != 0 && getrlimit(RLIMIT_AS, &lim) == 0) {
            lim.rlim_cur = (rlim_t)(vm * KIB + opt.margin_mib * MIB);
            if (lim.rlim_max != RLIM_INFINITY && lim.rlim_cur > lim.rlim_max)
                lim.rlim_cur = lim.rlim_max;
            if (setrlimit(RLIMIT_AS, &lim) == 0) {
                sh->vm_kib = vm;
                sh->limit_bytes = (size_t)lim.rlim_cur;
                sh->limit_set = 1;
            }
        }
        if (!sh->limit_set)
            setup_failed(&m, "setting RLIMIT_AS", errno);
    }

    uint64_t end = now_ns() + (uint64_t)(opt.seconds * 1e9);
    __atomic_store_n(&go, 1, __ATOMIC_RELEASE);
    enter(&m, OP_SLEEP, 0);
    while (now_ns() < end)
        sleep_us(5000);
    leave(&m);
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);

    enter(&m, OP_THREAD_JOIN, 0);
    for (int i = 0; i < opt.threads; i++)
        if (workers[i].started)
            pthread_join(workers[i].thread, NULL);
    if (tuner_started)
        pthread_join(tuner, NULL);
    if (spawner_started)
        pthread_join(spawner, NULL);
    leave(&m);

    for (size_t i = 0; i < MAILBOX; i++)
        if (mailbox[i].p != NULL)
            blk_free(&m, &mailbox[i], "left in the mailbox, before free");
    heap_check(&m, "after all threads ended");
    if (!opt.no_stats) {
        struct mymalloc_stats st;
        enter(&m, OP_MALLINFO2, 0);
        struct mallinfo2 mi = mallinfo2();
        leave(&m);
        (void)mi;
        enter(&m, OP_STATS_GET, 0);
        if (mymalloc_stats_get(&st) != 0)
            setup_failed(&m, "mymalloc_stats_get() at the end", errno);
        leave(&m);
    }
    enter(&m, OP_TRIM, 0);
    malloc_trim(0);
    leave(&m);
    heap_check(&m, "after malloc_trim(0) at the end");
    actor_flush(&m);
    __atomic_store_n(&sh->finished, 1, __ATOMIC_RELEASE);
    _exit(0);
}

/* ================= the watchdog (the parent) ================= */

#define LINES 9     /* TAP lines per variant */

static double seconds_since(uint64_t then, uint64_t now)
{
    return now > then ? (double)(now - then) / 1e9 : 0.0;
}

static unsigned long long cnt(int i)
{
    return (unsigned long long)sh->count[i];
}

static unsigned long long fails(int i)
{
    return (unsigned long long)sh->fails[i];
}

static const char *mallopt_name(int param)
{
    switch (param) {
    case M_MYMALLOC_TCACHE: return "M_MYMALLOC_TCACHE";
    case M_MYMALLOC_DECAY: return "M_MYMALLOC_DECAY";
    case M_MYMALLOC_FIT: return "M_MYMALLOC_FIT";
    case M_TRIM_THRESHOLD: return "M_TRIM_THRESHOLD";
    case M_MMAP_THRESHOLD: return "M_MMAP_THRESHOLD";
    default: return "?";
    }
}

/* "mallopt(M_MYMALLOC_FIT, 2)", "malloc() of 100 bytes" */
static void describe_call(const struct slot *s, int op, char *out, size_t size)
{
    if (op == OP_MALLOPT)
        snprintf(out, size, "mallopt(%s, %zu)", mallopt_name(s->param), s->arg);
    else if (op >= OP_MALLOC && op <= OP_USABLE_SIZE)
        snprintf(out, size, "%s of %zu bytes", op_name[op], s->arg);
    else
        snprintf(out, size, "%s", op_name[op]);
}

/* Is a thread inside one watched call for --stall seconds?  Then `why`
 * names every thread stuck in one for that long. */
static int stalled(uint64_t now, char *why, size_t size)
{
    int stuck = 0;
    size_t used = 0;
    for (int i = 0; i < SLOTS; i++) {
        const struct slot *s = &sh->slot[i];
        int kind = __atomic_load_n(&s->kind, __ATOMIC_ACQUIRE), op = __atomic_load_n(&s->op, __ATOMIC_ACQUIRE);
        uint64_t since = __atomic_load_n(&s->since, __ATOMIC_RELAXED);
        if (kind > K_NONE && kind <= K_FORK_CHILD && op_watched(op) && seconds_since(since, now) >= opt.stall) {
            char call[80];
            describe_call(s, op, call, sizeof call);
            if (stuck == 0)
                used = (size_t)snprintf(why, size, "inside one call for %.0f s:", opt.stall);
            if (used < size)
                used += (size_t)snprintf(why + used, size - used, "%s %s %d in %s", stuck ? "," : "",
                                         kind_name[kind], s->id, call);
            stuck++;
        }
    }
    return stuck != 0;
}

/* A thread's state letter from /proc (R running, S sleeping, ...); '?' when
 * it cannot be read. */
static char thread_state(pid_t pid, int tid)
{
    char path[64], text[512];
    snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int)pid, tid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return '?';
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0)
        return '?';
    text[n] = '\0';
    const char *paren = strrchr(text, ')');
    return paren != NULL && paren[1] == ' ' && paren[2] != '\0' ? paren[2] : '?';
}

/* What every thread of the workload is doing, with its state: a thread
 * spinning shows R, one asleep on a lock S. */
static void describe_threads(const char *name, pid_t pid, uint64_t now)
{
    for (int i = 0; i < SLOTS; i++) {
        const struct slot *s = &sh->slot[i];
        if (s->kind <= K_NONE || s->kind > K_FORK_CHILD)
            continue;
        char call[80];
        char state = s->tid != 0 ? thread_state(pid, s->tid) : '?';
        describe_call(s, s->op, call, sizeof call);
        if (s->op == OP_IDLE)
            diag("%s:   %s %d [%c]: between calls", name, kind_name[s->kind], s->id, state);
        else
            diag("%s:   %s %d [%c]: in %s for %.1f s", name, kind_name[s->kind], s->id, state, call,
                 seconds_since(s->since, now));
    }
}

static void run_variant(const char *name, int limit)
{
    char why[600] = "";
    int status = 0, hung = 0, waited = 0;

    memset(sh, 0, sizeof *sh);
    limited = limit;
    fflush(stdout);
    fflush(stderr);
    uint64_t start = now_ns(), deadline = start + (uint64_t)((opt.seconds + opt.grace) * 1e9);
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        workload();
    }
    if (pid < 0) {
        for (int i = 0; i < LINES; i++)
            ok(0, "%s: fork() of the workload failed: %s", name, strerror(errno));
        return;
    }
    setpgid(pid, pid);
    while (!waited) {
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid) {
            waited = 1;
            break;
        }
        if (got < 0 && errno != EINTR) {
            snprintf(why, sizeof why, "waitpid() failed: %s", strerror(errno));
            break;
        }
        uint64_t now = now_ns();
        if (stalled(now, why, sizeof why) || now >= deadline) {
            if (why[0] == '\0')
                snprintf(why, sizeof why, "still running %.1f s after the start", seconds_since(start, now));
            hung = 1;
            diag("%s: hang: %s; what the threads were doing ([state] from /proc: R running, S asleep):", name, why);
            describe_threads(name, pid, now);
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            do
                got = waitpid(pid, &status, 0);
            while (got < 0 && errno == EINTR);
            waited = 1;
            break;
        }
        sleep_us(10000);
    }
    double took = seconds_since(start, now_ns());

    if (sh->limit_set)
        diag("%s: RLIMIT_AS %zu MiB (VmSize %zu MiB + %zu MiB)", name, sh->limit_bytes / MIB, sh->vm_kib / 1024,
             opt.margin_mib);
    diag("%s: %llu operations; %llu allocations (%llu calloc), %llu frees, %llu reallocs, %llu verifications, "
         "%llu blocks through the mailbox",
         name, cnt(C_OPS), cnt(C_ALLOCS), cnt(C_CALLOCS), cnt(C_FREES), cnt(C_REALLOCS), cnt(C_VERIFIED),
         cnt(C_HANDED));
    diag("%s: %llu bursts, %llu top fills (%llu to a segment's end), %llu callocs after them (%llu to the end); "
         "%llu failed allocations, %llu failed reallocs%s",
         name, cnt(C_BURSTS), cnt(C_SQUEEZES), cnt(C_SQUEEZED_TO_END), cnt(C_TOP_CALLOCS),
         cnt(C_TOP_CALLOCS_AT_END), cnt(C_NOMEM), cnt(C_REALLOC_NOMEM), limited ? " (using up the limit)" : "");
    diag("%s: %llu forks (%llu fork() errors), %llu short-lived threads (%llu allocating first in the last "
         "destructor round, which %llu did), %llu mallopt, %llu statistics calls, %llu heap checks, %llu trims",
         name, cnt(C_FORKS), cnt(C_FORK_ERRORS), cnt(C_THREADS), cnt(C_DTOR_THREADS), cnt(C_DTOR_LAST_ROUND),
         cnt(C_MALLOPTS), cnt(C_STATS), cnt(C_CHECKS), cnt(C_TRIMS));
    int messages = sh->messages;
    for (int i = 0; i < messages && i < MESSAGES; i++)
        diag("%s: failure: %.*s", name, MESSAGE_SIZE, sh->message[i]);
    if (messages > MESSAGES)
        diag("%s: ... and %d more failures", name, messages - MESSAGES);

    if (hung)
        ok(0, "%s: hang (watchdog): %s", name, why);
    else
        ok(waited && sh->finished, "%s: the workload ran %.1f s and ended (watchdog at %.0f s)%s", name, took,
           opt.seconds + opt.grace, waited && sh->finished ? "" : " -- it did not reach its end");
    if (hung)
        ok(0, "%s: the workload process was killed by the watchdog", name);
    else if (waited && WIFSIGNALED(status))
        ok(0, "%s: the workload process died of signal %d (%s)", name, WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        ok(waited && WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: the workload process exited %d", name,
           waited && WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    ok(fails(F_CONTENT) == 0, "%s: every block intact whenever verified (%llu times): %llu mismatches", name,
       cnt(C_VERIFIED), fails(F_CONTENT));
    ok(fails(F_CALLOC) == 0, "%s: calloc memory all zero (%llu blocks, %llu after a top fill and trim): %llu not",
       name, cnt(C_CALLOCS), cnt(C_TOP_CALLOCS), fails(F_CALLOC));
    ok(fails(F_ALIGN) + fails(F_USABLE) == 0,
       "%s: blocks aligned, malloc_usable_size() at least the request: %llu misaligned, %llu too small", name,
       fails(F_ALIGN), fails(F_USABLE));
    if (limit)      /* calls failed, unless the counts were cut short (a hang, a crash: reported above) */
        ok(sh->limit_set && (cnt(C_NOMEM) + cnt(C_REALLOC_NOMEM) > 0 || !sh->finished) &&
               fails(F_ERRNO) + fails(F_REALLOC_KEPT) == 0,
           "%s: %llu failed calls, each NULL (or the error) with ENOMEM, failed reallocs kept their blocks: "
           "%llu wrong errors, %llu blocks damaged", name, cnt(C_NOMEM) + cnt(C_REALLOC_NOMEM), fails(F_ERRNO),
           fails(F_REALLOC_KEPT));
    else
        ok(fails(F_ERRNO) + fails(F_NOMEM) + fails(F_REALLOC_KEPT) == 0,
           "%s: no call failed without a memory limit, overflows failed with ENOMEM: %llu failed, %llu wrong "
           "errors, %llu blocks damaged", name, fails(F_NOMEM), fails(F_ERRNO), fails(F_REALLOC_KEPT));
    ok(fails(F_CHECK) + fails(F_API) == 0,
       "%s: mymalloc_check() == 0 every time (%llu calls); mallopt, statistics and setup calls succeeded: "
       "%llu checks failed, %llu calls", name, cnt(C_CHECKS), fails(F_CHECK), fails(F_API));
    ok(fails(F_FORK_CHILD) == 0, "%s: every fork child exited 0 (%llu forks): %llu did not", name, cnt(C_FORKS),
       fails(F_FORK_CHILD));
    ok(fails(F_THREAD) == 0, "%s: pthread_create() failed only with EAGAIN under the limit (%llu threads, %llu "
       "EAGAIN): %llu other failures", name, cnt(C_THREADS), cnt(C_THREAD_EAGAIN), fails(F_THREAD));
}

int main(int argc, char **argv)
{
    parse_options(argc, argv);
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        printf("Bail out! mmap of the shared record failed: %s\n", strerror(errno));
        return 1;
    }
    watchdog_pid = getpid();
    plan(LINES * (opt.plain + opt.rlimit_as));
    diag("seed %#llx; replay: tests/concurrent --seed %#llx --seconds %g --threads %d --margin %zu%s%s%s%s%s%s%s%s%s",
         (unsigned long long)opt.seed, (unsigned long long)opt.seed, opt.seconds, opt.threads, opt.margin_mib,
         opt.plain && !opt.rlimit_as ? " --plain" : "", opt.rlimit_as && !opt.plain ? " --rlimit-as" : "",
         opt.no_fork ? " --no-fork" : "", opt.no_dtor ? " --no-destructor-threads" : "",
         opt.no_short ? " --no-short-threads" : "", opt.no_mallopt ? " --no-mallopt" : "",
         opt.no_fit ? " --no-fit" : "", opt.no_stats ? " --no-stats" : "",
         opt.no_top_calloc ? " --no-top-calloc" : "");
    if (opt.plain)
        run_variant("plain", 0);
    if (opt.rlimit_as)
        run_variant("RLIMIT_AS", 1);
    return done();
}
