/* arenas.c - threads get arenas of their own, up to the limit (8 per usable
 * CPU, MYMALLOC_ARENA_MAX, MALLOC_ARENA_MAX, mallopt(M_ARENA_MAX)); a block
 * freed by another thread goes back to its own arena; an exited thread's
 * arena, and the cache it left there, serve the next thread; caching switched
 * by one thread applies to all.  Arenas are counted by mymalloc_stats_get. */
#include "util.h"
#include <sched.h>

static size_t arenas(void)
{
    struct mymalloc_stats s;
    return mymalloc_stats_get(&s) == 0 ? s.arenas : 0;
}

static void *volatile sink;

/* ---- threads that allocate, then wait together ---- */

struct crowd {
    pthread_barrier_t ready, leave;
};

static void *crowd_member(void *arg)
{
    struct crowd *c = arg;
    sink = malloc(100);
    free(sink);
    pthread_barrier_wait(&c->ready);
    pthread_barrier_wait(&c->leave);
    return NULL;
}

/* ---- caching turned off and on by another thread ---- */

static size_t cached_blocks(void)      /* counted as blocks of 64 bytes (malloc(48)) */
{
    struct mymalloc_stats s;
    return mymalloc_stats_get(&s) == 0 ? s.cached_bytes / 64 : 0;
}

struct switcher {
    pthread_barrier_t step;
};

/* At each of three steps: allocates 8 blocks, waits while the main thread
 * switches caching and counts, frees them, waits while it counts again. */
static void *switched_thread(void *arg)
{
    struct switcher *w = arg;
    for (int step = 0; step < 3; step++) {
        void *p[8];
        for (int i = 0; i < 8; i++)
            p[i] = sink = malloc(48);       /* through sink: not optimised away */
        pthread_barrier_wait(&w->step);
        pthread_barrier_wait(&w->step);
        for (int i = 0; i < 8; i++)
            free(p[i]);
        pthread_barrier_wait(&w->step);
        pthread_barrier_wait(&w->step);
    }
    return NULL;
}

static void test_cache_switch(void)
{
    struct switcher w;
    pthread_t id;
    size_t before[3], after[3];
    pthread_barrier_init(&w.step, NULL, 2);
    if (pthread_create(&id, NULL, switched_thread, &w) != 0) {
        skip(4, "pthread_create failed");
        return;
    }
    for (int step = 0; step < 3; step++) {      /* caching on, off, on again */
        pthread_barrier_wait(&w.step);
        if (step > 0)
            mallopt(M_MYMALLOC_TCACHE, step == 1 ? 0 : 1);
        before[step] = cached_blocks();
        pthread_barrier_wait(&w.step);
        pthread_barrier_wait(&w.step);
        after[step] = cached_blocks();
        pthread_barrier_wait(&w.step);
    }
    pthread_join(id, NULL);
    size_t left = cached_blocks();
    pthread_barrier_destroy(&w.step);
    ok(after[0] >= before[0] + 8, "a thread's 8 frees of malloc(48) blocks are cached (%zu blocks cached, then %zu)",
       before[0], after[0]);
    ok(after[1] == before[1],
       "caching turned off by another thread: its next 8 frees reach the heap (%zu cached before, %zu after)",
       before[1], after[1]);
    ok(after[2] >= before[2] + 8 && left >= after[2],
       "on again: its frees are cached (%zu, then %zu), and its cache is left to its arena when it exits (%zu)",
       before[2], after[2], left);
    malloc_trim(0);
    ok(cached_blocks() == 0, "malloc_trim(0) gives back every cache left to an arena (%zu left)", cached_blocks());
}

/* Start n threads that each allocate and stay; the arenas counted while they
 * all live. */
static size_t arenas_with_crowd(unsigned n)
{
    pthread_t ids[64];
    struct crowd c;
    pthread_barrier_init(&c.ready, NULL, n + 1);
    pthread_barrier_init(&c.leave, NULL, n + 1);
    for (unsigned i = 0; i < n; i++)
        if (pthread_create(&ids[i], NULL, crowd_member, &c) != 0)
            return 0;
    pthread_barrier_wait(&c.ready);
    size_t count = arenas();
    pthread_barrier_wait(&c.leave);
    for (unsigned i = 0; i < n; i++)
        pthread_join(ids[i], NULL);
    pthread_barrier_destroy(&c.ready);
    pthread_barrier_destroy(&c.leave);
    return count;
}

/* ---- blocks made by one thread, freed by another ---- */

#define BLOCKS 2000
#define SIZE 200
static char *made[BLOCKS];

static void *make_blocks(void *arg)
{
    (void)arg;
    for (int i = 0; i < BLOCKS; i++) {
        made[i] = malloc(SIZE);
        if (made[i] != NULL)
            memset(made[i], (char)i, SIZE);
    }
    return NULL;
}

static int run_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    return pthread_create(&t, NULL, fn, arg) == 0 && pthread_join(t, NULL) == 0;
}

/* ---- a cache left to the arena for the next thread ---- */

static struct mymalloc_stats adopt_before, adopt_after;
static void *adopted[8];

static void *leave_cache(void *arg)
{
    (void)arg;
    void *p[8];
    for (int i = 0; i < 8; i++)
        p[i] = sink = malloc(48);
    for (int i = 0; i < 8; i++)
        free(p[i]);
    return NULL;
}

static void *adopt_cache(void *arg)
{
    (void)arg;
    mymalloc_stats_get(&adopt_before);
    for (int i = 0; i < 8; i++)
        adopted[i] = sink = malloc(48);
    mymalloc_stats_get(&adopt_after);
    for (int i = 0; i < 8; i++)
        free(adopted[i]);
    return NULL;
}

static void test_cache_left(void)
{
    struct mymalloc_stats left;
    int ran = run_thread(leave_cache, NULL);
    mymalloc_stats_get(&left);
    ran = run_thread(adopt_cache, NULL) && ran;
    ok(ran && left.cached_bytes >= 8 * 64, "a thread that exits leaves its cache to its arena (%zu bytes cached)",
       left.cached_bytes);
    ok(adopt_after.inuse_bytes == adopt_before.inuse_bytes &&
           adopt_after.cached_bytes + 8 * 64 == adopt_before.cached_bytes,
       "the next thread of that arena allocates from it: 8 blocks, no heap operation (in use %zu -> %zu, cached "
       "%zu -> %zu)", adopt_before.inuse_bytes, adopt_after.inuse_bytes, adopt_before.cached_bytes,
       adopt_after.cached_bytes);
    ok(mymalloc_check() == 0, "heap sound after a cache changed threads");
}

/* ---- a cache left to an arena keeps only that arena's blocks ---- */

static void *mains[8], *theirs[8], *taken[16];

/* Frees the main thread's blocks (arena 0's) into its own cache, with 8
 * blocks of its own arena, and exits. */
static void *free_mains_and_exit(void *arg)
{
    (void)arg;
    for (int i = 0; i < 8; i++)
        theirs[i] = sink = malloc(48);
    for (int i = 0; i < 8; i++) {
        free(mains[i]);
        free(theirs[i]);
    }
    return NULL;
}

static void *take_sixteen(void *arg)
{
    (void)arg;
    for (int i = 0; i < 16; i++)
        taken[i] = sink = malloc(48);
    for (int i = 0; i < 16; i++)
        free(taken[i]);
    return NULL;
}

static void test_cache_left_own_blocks(void)
{
    for (int i = 0; i < 8; i++)
        mains[i] = sink = malloc(48);
    int ran = run_thread(free_mains_and_exit, NULL) && run_thread(take_sixteen, NULL);
    int foreign = 0, own = 0;
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 8; j++) {
            foreign += taken[i] == mains[j];
            own += taken[i] == theirs[j];
        }
    ok(ran && foreign == 0 && own == 8,
       "a thread's cache left to its arena keeps that arena's blocks (the next thread took %d of them) and sends "
       "the others home (it took %d of the main thread's)", own, foreign);
    ok(mymalloc_check() == 0, "heap sound after a cache was left without another arena's blocks");
}

/* ---- a thread that only frees: no cache, its frees wait on the arena ---- */

static char *handed[BLOCKS];

static void *free_handed(void *arg)
{
    (void)arg;
    for (int i = 0; i < BLOCKS; i++)
        free(handed[i]);
    return NULL;
}

static void *volatile twice;    /* read again: the compiler may not see the double free */

static void *free_twice(void *arg)
{
    twice = arg;
    free(twice);
    free(twice);        /* still waiting on the arena's stack: reported */
    return NULL;
}

/* In a child: a free-only thread frees a block twice; the report and the
 * signal are checked by the parent. */
static int double_free_in_free_only_thread(char *line, size_t size)
{
    int fds[2];
    if (pipe(fds) != 0)
        return 0;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        pthread_t t;
        char *p = malloc(100);
        if (p == NULL || pthread_create(&t, NULL, free_twice, p) != 0)
            _exit(3);
        pthread_join(t, NULL);
        _exit(0);
    }
    close(fds[1]);
    ssize_t n = read(fds[0], line, size - 1);
    line[n > 0 ? n : 0] = '\0';
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

/* ---- a child process for limits that must be set before any thread ---- */

static int child_arenas(const char *variable, const char *value, int one_cpu, unsigned threads, size_t *count)
{
    int fds[2];
    if (pipe(fds) != 0)
        return 0;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        if (one_cpu) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(sched_getcpu() < 0 ? 0 : sched_getcpu(), &set);
            if (sched_setaffinity(0, sizeof set, &set) != 0)
                _exit(3);
        }
        char fd[16], n[16];
        snprintf(fd, sizeof fd, "%d", fds[1]);
        snprintf(n, sizeof n, "%u", threads);
        unsetenv("MYMALLOC_ARENA_MAX");
        unsetenv("MALLOC_ARENA_MAX");
        if (variable != NULL)
            setenv(variable, value, 1);
        execl("/proc/self/exe", "arenas", "--child", fd, n, (char *)NULL);
        _exit(4);
    }
    close(fds[1]);
    char text[32] = { 0 };
    ssize_t got = read(fds[0], text, sizeof text - 1);
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    if (got <= 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return 0;
    *count = (size_t)strtoul(text, NULL, 10);
    return 1;
}

static int child_main(int fd, unsigned threads)
{
    char text[32];
    int n = snprintf(text, sizeof text, "%zu", arenas_with_crowd(threads));
    return write(fd, text, (size_t)n) == n ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--child") == 0)
        return child_main(atoi(argv[2]), (unsigned)atoi(argv[3]));

    cpu_set_t set;
    unsigned cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? (unsigned)CPU_COUNT(&set) : 1;
    unsetenv("MYMALLOC_ARENA_MAX");
    unsetenv("MALLOC_ARENA_MAX");

    sink = malloc(10);
    free(sink);
    ok(arenas() == 1, "one arena before any other thread allocates (%zu)", arenas());

    /* Each live thread its own arena, under the limit of 8 per CPU. */
    size_t crowd = arenas_with_crowd(4);
    ok(crowd == 5, "4 live threads and the main thread: 5 arenas (%zu)", crowd);

    /* Threads that come later take the arenas exited threads left. */
    for (int i = 0; i < 20; i++) {
        run_thread(make_blocks, NULL);
        for (int k = 0; k < BLOCKS; k++)
            free(made[k]);
    }
    ok(arenas() == 5, "20 threads one after another add no arena (%zu)", arenas());

    /* A block freed by another thread goes back to its own arena: made by a
     * thread, freed here, they serve the next thread of that arena (the
     * first idle one again) at the same addresses. */
    ok(mallopt(M_MYMALLOC_TCACHE, 0) == 1, "caches off, so frees reach the arenas at once");
    static char *before[BLOCKS];
    run_thread(make_blocks, NULL);
    int intact = 1;
    for (int i = 0; i < BLOCKS; i++) {
        before[i] = made[i];
        for (int k = 0; k < SIZE; k++)
            intact &= made[i] != NULL && made[i][k] == (char)i;
        free(made[i]);
    }
    ok(intact, "the blocks of an exited thread keep their contents");
    ok(mymalloc_check() == 0, "heap sound after freeing another thread's blocks");
    run_thread(make_blocks, NULL);
    int reused = 0;
    for (int i = 0; i < BLOCKS; i++)
        for (int k = 0; k < BLOCKS && made[i] != NULL; k++)
            if (made[i] == before[k]) {
                reused++;
                break;
            }
    ok(reused == BLOCKS, "the next thread of that arena gets the same blocks back (%d of %d)", reused, BLOCKS);
    for (int i = 0; i < BLOCKS; i++)
        free(made[i]);
    ok(mallopt(M_MYMALLOC_TCACHE, 1) == 1, "caches back on");
    ok(mymalloc_check() == 0, "heap sound");

    /* A thread that never allocates has no cache: its frees of small blocks
     * wait, without a lock, on a stack of their arena, which takes them in
     * at its next heap operation: the main thread gets the blocks back. */
    for (int i = 0; i < BLOCKS; i++)
        handed[i] = malloc(SIZE);
    static char *again[BLOCKS];
    ok(run_thread(free_handed, NULL) && mymalloc_check() == 0,
       "a thread that only frees: %d blocks of another thread freed, heap sound", BLOCKS);
    struct mymalloc_stats waiting, taken;
    mymalloc_stats_get(&waiting);
    char *big = malloc(9000);        /* above the caches: the arena's next heap operation */
    mymalloc_stats_get(&taken);
    ok(big != NULL && waiting.inuse_bytes + 9016 >= taken.inuse_bytes + (size_t)BLOCKS * SIZE,
       "they waited as blocks in use until the arena's next heap operation took them in: in use fell by "
       "%zu bytes", waiting.inuse_bytes + 9016 - taken.inuse_bytes);
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < BLOCKS; i++) {
        lo = (uintptr_t)handed[i] < lo ? (uintptr_t)handed[i] : lo;
        hi = (uintptr_t)handed[i] + SIZE > hi ? (uintptr_t)handed[i] + SIZE : hi;
    }
    int back = 0;
    for (int i = 0; i < BLOCKS; i++) {
        again[i] = malloc(SIZE);
        back += (uintptr_t)again[i] >= lo && (uintptr_t)again[i] + SIZE <= hi;
    }
    ok(back >= BLOCKS / 2, "the memory it freed serves new blocks (%d of %d new blocks inside it)", back, BLOCKS);
    for (int i = 0; i < BLOCKS; i++)
        free(again[i]);
    free(big);
    char line[256];
    int aborted = double_free_in_free_only_thread(line, sizeof line);
    ok(aborted && strstr(line, "mymalloc: free(): double free of 0x") != NULL,
       "a double free by a thread that only frees is reported (%.*s)", (int)strcspn(line, "\n"), line);

    /* The limits, each in a fresh process. */
    size_t count = 0;
    int ran = child_arenas(NULL, NULL, 1, 12, &count);
    ok(ran && count == 8, "one CPU in the affinity mask: at most 8 arenas for 12 threads (%zu)", count);
    ran = child_arenas("MYMALLOC_ARENA_MAX", "3", 0, 6, &count);
    ok(ran && count == 3, "MYMALLOC_ARENA_MAX=3 (%zu)", count);
    ran = child_arenas("MALLOC_ARENA_MAX", "2", 0, 6, &count);
    ok(ran && count == 2, "glibc's MALLOC_ARENA_MAX=2 (%zu)", count);
    ran = child_arenas("MYMALLOC_ARENA_MAX", "1", 0, 6, &count);
    ok(ran && count == 1, "MYMALLOC_ARENA_MAX=1: one heap (%zu)", count);
    size_t want = 8 * cpus < 12 ? 8 * cpus : 13;
    ran = child_arenas(NULL, NULL, 0, 12, &count);
    ok(ran && count <= want && count >= 2, "%u CPUs: 12 threads get up to %zu arenas (%zu)", cpus, want, count);

    /* mallopt(M_ARENA_MAX) limits threads that have no arena yet. */
    ok(mallopt(M_ARENA_MAX, 0) == 0, "M_ARENA_MAX 0 refused");
    ok(mallopt(M_ARENA_MAX, 6) == 1, "M_ARENA_MAX 6 accepted");
    crowd = arenas_with_crowd(10);
    ok(crowd == 6, "10 live threads, limit 6: 6 arenas (%zu)", crowd);
    test_cache_switch();
    test_cache_left();
    test_cache_left_own_blocks();
    return done_with_check("heap sound at the end");
}
