/* fork.c - fork() while other threads allocate.  Four threads hammer
 * malloc/free/realloc; the main thread forks 100 times, then two threads fork
 * at the same moment a few times.  Each child checks the heap it inherited,
 * allocates and frees a few thousand blocks (from two threads) with verified
 * contents, checks the heap again and _exit()s 0.  A child that deadlocks on
 * an allocator lock left held by the fork dies of its alarm(20): SIGALRM. */
#include "util.h"

#define NHAMMER        4
#define HAMMER_SLOTS   64
#define SERIAL_FORKS   100
#define FORK_ROUNDS    10     /* rounds of two simultaneous forks */
#define CHILD_BLOCKS   2000   /* per thread of a child */
#define GIVE_UP        2      /* failed children before a phase stops forking */

/* Child exit statuses. */
enum { CHILD_OK = 0, CHILD_BAD_START = 10, CHILD_CORRUPT, CHILD_NOMEM, CHILD_NOTHREAD, CHILD_BAD_END };

static unsigned char fill_byte(uint64_t salt, size_t slot, size_t size)
{
    uint64_t x = salt * 0x9E3779B97F4A7C15ull + slot * 0xBF58476D1CE4E5B9ull + size;
    x ^= x >> 29;
    x *= 0x94D049BB133111EBull;
    return (unsigned char)(x >> 56);
}

/* Mostly small, some medium, one in a hundred above the mmap threshold. */
static size_t random_size(uint64_t *seed)
{
    uint64_t r = xorshift(seed);
    unsigned pick = (unsigned)(r % 100);
    r >>= 8;
    if (pick < 85)
        return 1 + (size_t)(r % 512);
    if (pick < 99)
        return 512 + (size_t)(r % 4096);
    return (128u << 10) + (size_t)(r % (160u << 10));
}

/* ---- what a child does (no stdio: only the allocator and _exit) ---- */

/* Allocate, verify and free CHILD_BLOCKS blocks; 0 or a CHILD_ status. */
static int child_work(uint64_t seed)
{
    const uint64_t salt = seed;
    void *live[128];
    size_t size[128];
    memset(live, 0, sizeof live);
    for (int i = 0; i < CHILD_BLOCKS; i++) {
        size_t k = (size_t)(xorshift(&seed) % 128), n = random_size(&seed);
        unsigned char *p = live[k];
        if (p != NULL) {
            if (!all_bytes(p, 0, size[k], fill_byte(salt, k, size[k])))
                return CHILD_CORRUPT;
            if (i % 4 == 0) {                  /* resize it instead */
                size_t keep = n < size[k] ? n : size[k];
                unsigned char *q = realloc(p, n);
                if (q == NULL)
                    return CHILD_NOMEM;
                if (!all_bytes(q, 0, keep, fill_byte(salt, k, size[k])))
                    return CHILD_CORRUPT;
                memset(q, fill_byte(salt, k, n), n);
                live[k] = q;
                size[k] = n;
                continue;
            }
            free(p);
        }
        p = malloc(n);
        if (p == NULL || (uintptr_t)p % 16 != 0)
            return CHILD_NOMEM;
        memset(p, fill_byte(salt, k, n), n);
        live[k] = p;
        size[k] = n;
    }
    for (size_t k = 0; k < 128; k++) {
        if (live[k] == NULL)
            continue;
        if (!all_bytes(live[k], 0, size[k], fill_byte(salt, k, size[k])))
            return CHILD_CORRUPT;
        free(live[k]);
    }
    return CHILD_OK;
}

struct child_helper { uint64_t seed; int status; };

static void *child_helper_main(void *arg)
{
    struct child_helper *h = arg;
    h->status = child_work(h->seed);
    return NULL;
}

static void __attribute__((noreturn)) child_main(uint64_t seed)
{
    alarm(20);                           /* a deadlock ends as SIGALRM */
    if (mymalloc_check() != 0)
        _exit(CHILD_BAD_START);
    /* The child is single-threaded; give it a second thread anyway, so the
     * lock it inherited has to work for real. */
    struct child_helper helper = { seed ^ 0x5555555555555555ull, -1 };
    pthread_t t;
    if (pthread_create(&t, NULL, child_helper_main, &helper) != 0)
        _exit(CHILD_NOTHREAD);
    int status = child_work(seed);
    pthread_join(t, NULL);
    if (status == CHILD_OK)
        status = helper.status;
    if (status == CHILD_OK && mymalloc_check() != 0)
        status = CHILD_BAD_END;
    _exit(status);
}

/* ---- the parent's bookkeeping of children ---- */

struct outcome {
    int forked, fork_failed, ok, failed, signalled, gave_up;
    int last_status, last_signal;
};

static void record(struct outcome *o, pid_t pid)
{
    int status;
    pid_t got;
    do
        got = waitpid(pid, &status, 0);
    while (got < 0 && errno == EINTR);
    if (got != pid) {
        o->failed++;
        o->last_status = -1;
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        o->ok++;
    } else if (WIFSIGNALED(status)) {
        o->signalled++;
        o->last_signal = WTERMSIG(status);
    } else {
        o->failed++;
        o->last_status = WEXITSTATUS(status);
    }
}

static void fork_one(struct outcome *o, uint64_t seed)
{
    pid_t pid = fork();
    if (pid == 0)
        child_main(seed);
    if (pid < 0) {
        o->fork_failed++;
        return;
    }
    o->forked++;
    record(o, pid);
}

static int bad_children(const struct outcome *o)
{
    return o->failed + o->signalled + o->fork_failed;
}

static void report(const char *what, const struct outcome *o, int expected)
{
    if (o->gave_up)
        diag("%s: stopped forking after %d failures", what, bad_children(o));
    if (o->failed != 0)
        diag("%s: %d children failed (last exit status %d: 10 bad heap at start, 11 corrupted block,"
             " 12 allocation failed, 13 no thread, 14 bad heap at end)", what, o->failed, o->last_status);
    if (o->signalled != 0)
        diag("%s: %d children killed by a signal (last %d%s)", what, o->signalled, o->last_signal,
             o->last_signal == SIGALRM ? ": SIGALRM, deadlocked" : "");
    ok(o->forked == expected && o->fork_failed == 0, "%s: %d of %d fork() calls made and succeeded (%d failed)",
       what, o->forked, expected, o->fork_failed);
    ok(o->ok == expected, "%s: %d of %d children exited 0", what, o->ok, expected);
}

/* ---- the hammering threads ---- */

static int stop;

struct hammer {
    pthread_t thread;
    unsigned id;
    int started;
    unsigned long ops, corrupt, failures;   /* ops is read by main while running */
};

static void *hammer_main(void *arg)
{
    struct hammer *h = arg;
    uint64_t seed = 0x2545F4914F6CDD1Dull * (h->id + 3);
    void *live[HAMMER_SLOTS] = { 0 };
    size_t size[HAMMER_SLOTS];
    unsigned char byte[HAMMER_SLOTS];

    while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
        size_t k = (size_t)(xorshift(&seed) % HAMMER_SLOTS), n = random_size(&seed);
        unsigned char b = (unsigned char)xorshift(&seed);
        unsigned char *p = live[k];
        if (p != NULL) {
            if (!all_bytes(p, 0, size[k], byte[k]))
                h->corrupt++;
            if (b & 1) {
                unsigned char *q = realloc(p, n);
                if (q == NULL) {
                    h->failures++;
                    continue;
                }
                if (!all_bytes(q, 0, n < size[k] ? n : size[k], byte[k]))
                    h->corrupt++;
                p = q;
            } else {
                free(p);
                p = malloc(n);
            }
        } else {
            p = malloc(n);
        }
        live[k] = p;
        if (p == NULL) {
            h->failures++;
            continue;
        }
        memset(p, b, n);
        size[k] = n;
        byte[k] = b;
        __atomic_store_n(&h->ops, h->ops + 1, __ATOMIC_RELAXED);
    }
    for (size_t k = 0; k < HAMMER_SLOTS; k++) {
        if (live[k] != NULL && !all_bytes(live[k], 0, size[k], byte[k]))
            h->corrupt++;
        free(live[k]);
    }
    return NULL;
}

/* Wait until every hammer has done `more` operations beyond `since`; 0 if one
 * of them is still stuck after about 30 s (a lock left held by fork()). */
static int wait_for_progress(struct hammer *h, const unsigned long *since, unsigned long more)
{
    int naps = 0;
    for (int t = 0; t < NHAMMER; t++) {
        while (h[t].started && __atomic_load_n(&h[t].ops, __ATOMIC_RELAXED) < since[t] + more) {
            struct timespec ts = { 0, 1000 * 1000 };
            if (++naps > 30000)
                return 0;
            nanosleep(&ts, NULL);
        }
    }
    return 1;
}

/* ---- two threads forking at once ---- */

static pthread_barrier_t fork_barrier;
static int forkers_give_up;

struct forker {
    pthread_t thread;
    unsigned id;
    struct outcome out;
};

static void *forker_main(void *arg)
{
    struct forker *f = arg;
    for (int round = 0; round < FORK_ROUNDS; round++) {
        int bad_before = bad_children(&f->out);
        pthread_barrier_wait(&fork_barrier);
        fork_one(&f->out, 0x1000u + f->id * 100u + (unsigned)round);
        __atomic_add_fetch(&forkers_give_up, bad_children(&f->out) - bad_before, __ATOMIC_RELAXED);
        /* Both decide together whether to go on (each child deadlocked on
         * a lock costs 20 s). */
        pthread_barrier_wait(&fork_barrier);
        if (__atomic_load_n(&forkers_give_up, __ATOMIC_RELAXED) >= GIVE_UP) {
            f->out.gave_up = 1;
            break;
        }
    }
    return NULL;
}

int main(void)
{
    static struct hammer hammers[NHAMMER];
    unsigned long before[NHAMMER];
    int started = 0;

    (void)skip;
    (void)plan_skip_all;
    alarm(120);                 /* watchdog: a hang in the parent ends the test (SIGALRM) */
    plan(9);

    for (unsigned t = 0; t < NHAMMER; t++) {
        hammers[t].id = t;
        hammers[t].started = pthread_create(&hammers[t].thread, NULL, hammer_main, &hammers[t]) == 0;
        started += hammers[t].started;
    }
    ok(started == NHAMMER, "started %d of %d allocating threads", started, NHAMMER);
    memset(before, 0, sizeof before);
    if (!wait_for_progress(hammers, before, 1000))
        diag("the allocating threads are slow to start");

    /* 100 forks from the main thread while the hammers run. */
    struct outcome serial = { 0 };
    for (int i = 0; i < SERIAL_FORKS; i++) {
        fork_one(&serial, 1u + (unsigned)i);
        if (bad_children(&serial) >= GIVE_UP) {
            serial.gave_up = 1;
            break;
        }
    }
    report("forks from the main thread", &serial, SERIAL_FORKS);

    /* Two threads forking at the same moment, FORK_ROUNDS times. */
    static struct forker forkers[2];
    struct outcome both = { 0 };
    int forkers_started = 0;
    pthread_barrier_init(&fork_barrier, NULL, 2);
    for (unsigned f = 0; f < 2; f++) {
        forkers[f].id = f;
        if (pthread_create(&forkers[f].thread, NULL, forker_main, &forkers[f]) == 0)
            forkers_started++;
    }
    if (forkers_started == 2) {
        for (int f = 0; f < 2; f++) {
            pthread_join(forkers[f].thread, NULL);
            both.forked += forkers[f].out.forked;
            both.fork_failed += forkers[f].out.fork_failed;
            both.ok += forkers[f].out.ok;
            both.failed += forkers[f].out.failed;
            both.signalled += forkers[f].out.signalled;
            both.gave_up |= forkers[f].out.gave_up;
            if (forkers[f].out.last_status != 0)
                both.last_status = forkers[f].out.last_status;
            if (forkers[f].out.last_signal != 0)
                both.last_signal = forkers[f].out.last_signal;
        }
    } else {
        diag("could not start two forking threads");
        /* A lone forker would wait at the barrier forever: stop here. */
        ok(0, "two threads forking at once");
        ok(0, "children of simultaneous forks");
        return done();
    }
    report("simultaneous forks from two threads", &both, 2 * FORK_ROUNDS);

    /* The parent's lock was given back after every fork: the hammers go on. */
    for (int t = 0; t < NHAMMER; t++)
        before[t] = __atomic_load_n(&hammers[t].ops, __ATOMIC_RELAXED);
    ok(wait_for_progress(hammers, before, 1000), "every allocating thread still makes progress after the forks");

    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    unsigned long ops = 0, corrupt = 0, failures = 0;
    for (int t = 0; t < NHAMMER; t++) {
        if (!hammers[t].started)
            continue;
        pthread_join(hammers[t].thread, NULL);
        ops += hammers[t].ops;
        corrupt += hammers[t].corrupt;
        failures += hammers[t].failures;
    }
    diag("the allocating threads did %lu operations", ops);
    ok(corrupt == 0 && failures == 0, "allocating threads: no corrupted block (%lu), no failure (%lu)", corrupt,
       failures);
    int problems = mymalloc_check();
    ok(problems == 0, "mymalloc_check() == 0 in the parent after the threads stopped (%d)", problems);
    struct mallinfo2 mi = mallinfo2();
    ok(mi.hblks == 0, "no mapped block left in the parent (%zu)", mi.hblks);
    return done();
}
