/* seams.c - the defects found where two parts of the library meet, one
 * regression test each, every one in a forked child with a watchdog (a
 * deadlock or a spin is a failure, never a hung `make check`):
 *
 *  - fork() while other threads grow their arenas (an arena's lock, then
 *    the arenas' lock, against fork's arenas' lock, then every arena's);
 *    mallopt(M_MYMALLOC_FIT) against the same growth;
 *  - fork() against stdio (glibc bug 19431's pattern): one thread in
 *    fflush(NULL) holding the list of streams, one in getline() holding a
 *    stream and calling realloc(), the main thread forking;
 *  - calloc() handing out bytes that still hold old data: after a thread's
 *    arena trimmed its top, after malloc_trim() when something else moved
 *    the program break, and in a brk region started just after another sbrk
 *    user lowered the break by less than a page;
 *  - a thread whose first allocation comes in the last round of its key
 *    destructors, then a thread that reuses its stack and thread-local
 *    storage: the statistics and later threads must not hang;
 *  - address space given back: under RLIMIT_AS, 160 MiB allocated and freed
 *    by a thread that exits, then malloc_trim(0): the main thread can map
 *    160 MiB;
 *  - errno: untouched by the first allocation of a process or of a thread,
 *    ENOMEM when posix_memalign fails. */
#include <sys/time.h>
#include "util.h"

/* ---- running a case in a child with a watchdog ---- */

/* Run fn() in a child process that an alarm kills after `seconds`; the
 * child's exit status is fn's return value (0: passed).  A description of
 * what went wrong, for the TAP line, lands in why[]. */
static int isolated(int (*fn)(void), unsigned seconds, char *why, size_t room)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(seconds);
        _exit(fn());
    }
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) {
        snprintf(why, room, "could not run the case");
        return 0;
    }
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
        snprintf(why, room, "hung: killed by the %u s watchdog", seconds);
    else if (WIFSIGNALED(status))
        snprintf(why, room, "died of signal %d", WTERMSIG(status));
    else if (WEXITSTATUS(status) != 0)
        snprintf(why, room, "failed with status %d", WEXITSTATUS(status));
    else
        snprintf(why, room, "ok");
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* --only 3,5: run just those cases (the others are skipped), to replay one. */
static const char *only;

static int chosen(int number)
{
    if (only == NULL)
        return 1;
    for (const char *s = only; *s != '\0'; s++)
        if ((s == only || s[-1] == ',') && atoi(s) == number)
            return 1;
    return 0;
}

#define CASE(fn, seconds, ...)                                               \
    if (!chosen(tap_number + 1)) {                                           \
        skip(1, "not chosen by --only");                                     \
    } else do {                                                              \
        char why_[128];                                                      \
        int passed_ = isolated(fn, seconds, why_, sizeof why_);              \
        ok(passed_, __VA_ARGS__);                                            \
        if (!passed_)                                                        \
            diag("%s", why_);                                                \
    } while (0)

/* A note from a child (no stdio there: the parent's buffer is not ours). */
static void say(const char *s)
{
    ssize_t r = write(STDOUT_FILENO, "# ", 2);
    r = write(STDOUT_FILENO, s, strlen(s));
    r = write(STDOUT_FILENO, "\n", 1);
    (void)r;
}

static int first_nonzero(const unsigned char *p, size_t n, size_t *at)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0) {
            *at = i;
            return 1;
        }
    return 0;
}

/* ---- fork against arena growth ---- */

static volatile int stop_growing;

/* Keep growing an arena: blocks under the mmap threshold, held in batches
 * big enough that the arena keeps mapping new segments. */
static void *grow(void *arg)
{
    (void)arg;
    void *held[64];
    while (!__atomic_load_n(&stop_growing, __ATOMIC_RELAXED)) {
        for (int i = 0; i < 64; i++) {
            held[i] = malloc(100000);
            escape(held[i]);
        }
        for (int i = 0; i < 64; i++)
            free(held[i]);
    }
    return NULL;
}

static int fork_children(int forks)
{
    for (int i = 0; i < forks; i++) {
        pid_t pid = fork();
        if (pid < 0)
            return 2;
        if (pid == 0) {
            void *p = malloc(100000);
            escape(p);
            free(p);
            _exit(0);
        }
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            return 3;
    }
    return 0;
}

static int fork_while_growing(void)
{
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&t[i], NULL, grow, NULL) != 0)
            return 1;
    int r = fork_children(300);
    __atomic_store_n(&stop_growing, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    return r;
}

static int fit_while_growing(void)
{
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        if (pthread_create(&t[i], NULL, grow, NULL) != 0)
            return 1;
    for (int i = 0; i < 20000; i++)
        mallopt(M_MYMALLOC_FIT, i % 2 ? MYMALLOC_FIT_FIRST : MYMALLOC_FIT_BEST);
    __atomic_store_n(&stop_growing, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    return 0;
}

/* ---- fork against stdio ---- */

static FILE *lines;         /* long lines, read again and again */
static volatile int stop_stdio;

static void *flush_all(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&stop_stdio, __ATOMIC_RELAXED))
        fflush(NULL);
    return NULL;
}

/* getline() holds the stream's lock while it grows its buffer with realloc:
 * lines longer than the caches serve, so realloc takes an arena's lock. */
static void *read_lines(void *arg)
{
    (void)arg;
    while (!__atomic_load_n(&stop_stdio, __ATOMIC_RELAXED)) {
        char *line = NULL;
        size_t room = 0;
        flockfile(lines);
        rewind(lines);
        funlockfile(lines);
        while (getline(&line, &room, lines) > 0)
            ;
        free(line);
    }
    return NULL;
}

static int fork_against_stdio(void)
{
    lines = tmpfile();
    if (lines == NULL)
        return 1;
    for (int i = 1; i <= 24; i++) {
        for (int k = 0; k < i * 4000; k++)
            fputc('a' + i % 26, lines);
        fputc('\n', lines);
    }
    fflush(lines);
    pthread_t t[2];
    if (pthread_create(&t[0], NULL, flush_all, NULL) != 0 || pthread_create(&t[1], NULL, read_lines, NULL) != 0)
        return 1;
    int r = fork_children(400);
    __atomic_store_n(&stop_stdio, 1, __ATOMIC_RELAXED);
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    return r;
}

/* ---- calloc and memory known to be zero ---- */

#define NEAR_MAPPING 130008      /* under the 128 KiB mmap threshold */

/* In a thread with an arena of its own: fill its first segment up to the
 * fence with 0xaa, free it all (the arena trims its top), then calloc the
 * same bytes again.  The top's size comes from mallinfo2's keepcost, the
 * sum of the arenas' tops (the main arena's does not change meanwhile). */
static void *arena_trim_then_calloc(void *arg)
{
    int *bad = arg;
    size_t before = mallinfo2().keepcost;
    unsigned char *a = malloc(MIB);
    size_t top = mallinfo2().keepcost - before;
    if (a == NULL || top < 64 * KIB)
        return (*bad = 2, NULL);
    size_t rest = top - 32 - 8;          /* leaves the smallest top: 32 bytes */
    unsigned char *b = malloc(rest);
    if (b == NULL)
        return (*bad = 2, NULL);
    memset(a, 0xaa, MIB);
    escape(a);
    memset(b, 0xaa, rest);
    escape(b);
    free(b);
    free(a);
    unsigned char *q = calloc(1, MIB + 16 + rest);
    size_t at;
    if (q == NULL)
        return (*bad = 2, NULL);
    if (first_nonzero(q, MIB + 16 + rest, &at)) {
        char msg[128];
        snprintf(msg, sizeof msg, "calloc(1, %zu): byte %zu is 0x%02x", MIB + 16 + rest, at, q[at]);
        say(msg);
        *bad = 1;
    }
    free(q);
    return NULL;
}

static int calloc_after_arena_trim(void)
{
    int bad = 0;
    pthread_t t;
    mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    void *first = malloc(1);      /* the main thread takes the main arena */
    escape(first);
    if (pthread_create(&t, NULL, arena_trim_then_calloc, &bad) != 0)
        return 3;
    pthread_join(t, NULL);
    return bad;
}

/* The main arena's top, dirty up to its last page, freed with trimming off;
 * someone else moves the break, so malloc_trim can only release pages. */
static int calloc_after_trim_with_foreign_break(void)
{
    mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, -1);
    mallopt(M_TOP_PAD, 0);
    unsigned char *p = malloc(8 * MIB);
    if (p == NULL)
        return 2;
    size_t n = mallinfo2().keepcost + 8 * MIB + 8 - 32 - 8;   /* up to the smallest top */
    free(p);
    p = malloc(n);
    if (p == NULL)
        return 2;
    memset(p, 0xaa, n);
    escape(p);
    free(p);
    if (sbrk(4096) == (void *)-1)
        return 2;
    malloc_trim(0);
    unsigned char *q = calloc(1, n);
    size_t at;
    if (q == NULL)
        return 2;
    if (first_nonzero(q, n, &at)) {
        char msg[96];
        snprintf(msg, sizeof msg, "calloc(1, %zu): byte %zu is 0x%02x", n, at, q[at]);
        say(msg);
        return 1;
    }
    return 0;
}

/* Another sbrk user writes its memory, then lowers the break by less than a
 * page: the rest of that page is still mapped and holds its data.  Our next
 * brk region starts right there. */
static int calloc_after_foreign_sbrk(void)
{
    mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    void *first = malloc(64);
    escape(first);
    unsigned char *f = sbrk(8192);
    if (f == (void *)-1)
        return 2;
    memset(f, 0xbb, 8192);
    if (sbrk(-100) == (void *)-1)
        return 2;
    mallopt(M_TOP_PAD, 4 * 1024 * 1024);   /* the region grown in one step */
    unsigned char *q = calloc(1, MIB);     /* more than the top holds: a new region */
    if (q == NULL)
        return 2;
    size_t at;
    if (first_nonzero(q, MIB, &at)) {
        char msg[96];
        snprintf(msg, sizeof msg, "calloc(1, 1 MiB) at %p: byte %zu is 0x%02x (foreign data from %p)", (void *)q,
                 at, q[at], (void *)f);
        say(msg);
        return 1;
    }
    free(q);
    return 0;
}

/* ---- threads whose first allocation comes after their key destructors ---- */

static pthread_key_t late_key;

/* Runs once per round of destructors: sets itself again until the last
 * round, and only then allocates for the first time in this thread. */
static void late_destructor(void *value)
{
    uintptr_t round = (uintptr_t)value;
    if (round < PTHREAD_DESTRUCTOR_ITERATIONS) {
        pthread_setspecific(late_key, (void *)(round + 1));
        return;
    }
    void *p = malloc(40);
    escape(p);
    free(p);
}

static void *late_allocator(void *arg)
{
    (void)arg;
    pthread_setspecific(late_key, (void *)(uintptr_t)1);
    return NULL;
}

static void *first_allocation(void *arg)
{
    (void)arg;
    void *p = malloc(40);
    escape(p);
    free(p);
    return NULL;
}

/* A thread that gets the storage of one that registered too late: while it
 * lives, the statistics walk the threads, and another thread starts. */
static void *reusing_thread(void *arg)
{
    int *bad = arg;
    first_allocation(NULL);
    struct mallinfo2 info = mallinfo2();
    struct mymalloc_stats s;
    if (mymalloc_stats_get(&s) != 0 || info.arena == 0)
        *bad = 1;
    pthread_t t;
    if (pthread_create(&t, NULL, first_allocation, NULL) != 0)
        *bad = 2;
    else
        pthread_join(t, NULL);
    return NULL;
}

static int late_first_allocation(void)
{
    if (pthread_key_create(&late_key, late_destructor) != 0)
        return 2;
    for (int i = 0; i < 20; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, late_allocator, NULL) != 0)
            return 2;
        pthread_join(t, NULL);
        /* The next thread gets the same stack and thread-local storage. */
        int bad = 0;
        if (pthread_create(&t, NULL, reusing_thread, &bad) != 0)
            return 2;
        pthread_join(t, NULL);
        if (bad)
            return bad;
        struct mallinfo2 info = mallinfo2();
        struct mymalloc_stats s;
        if (mymalloc_stats_get(&s) != 0 || info.arena == 0)
            return 1;
    }
    return mymalloc_check() == 0 ? 0 : 1;
}

/* ---- threads that exit, in the manner of glibc's tst-malloc-thread-exit ----
 * Outer threads keep starting inner threads that allocate and exit; the
 * outer thread frees what they left (a block allocated by a thread that is
 * gone).  Arenas must be reused, not leaked: their number stays within the
 * limit, the heap stays small, and it is sound at the end. */
static void *inner_allocates(void *arg)
{
    void **out = arg;
    for (int i = 0; i < 8; i++) {
        out[i] = malloc(64 + 300 * (size_t)i);
        if (out[i] != NULL)
            memset(out[i], i, 64);
    }
    return NULL;
}

static void *outer_starts(void *arg)
{
    int *bad = arg;
    for (int round = 0; round < 250; round++) {
        void *left[8] = { 0 };
        pthread_t t;
        if (pthread_create(&t, NULL, inner_allocates, left) != 0) {
            *bad = 2;
            return NULL;
        }
        pthread_join(t, NULL);
        for (int i = 0; i < 8; i++) {
            const unsigned char *c = left[i];
            if (c == NULL || c[0] != i || c[63] != i)
                *bad = 1;
            free(left[i]);
        }
    }
    return NULL;
}

static int threads_exit_in_waves(void)
{
    int bad[4] = { 0, 0, 0, 0 };
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        if (pthread_create(&t[i], NULL, outer_starts, &bad[i]) != 0)
            return 2;
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    struct mymalloc_stats s;
    if (mymalloc_stats_get(&s) != 0)
        return 2;
    char msg[160];
    snprintf(msg, sizeof msg, "1000 threads over 4 outer ones: %zu arenas, %zu heap bytes, check %d", s.arenas,
             s.heap_bytes, mymalloc_check());
    say(msg);
    return bad[0] || bad[1] || bad[2] || bad[3] || s.arenas > 9 || s.heap_bytes > 64 * MIB || mymalloc_check() != 0;
}

/* ---- address space given back ---- */

#define THREAD_BYTES (160 * MIB)


static void *use_and_free(void *arg)
{
    int *bad = arg;
    size_t n = THREAD_BYTES / (64 * KIB);
    void **held = calloc(n, sizeof *held);
    if (held == NULL)
        return (*bad = 2, NULL);
    for (size_t i = 0; i < n; i++) {
        held[i] = malloc(64 * KIB - 64);
        if (held[i] == NULL)
            return (*bad = 2, NULL);
        memset(held[i], 1, 64);
        escape(held[i]);
    }
    for (size_t i = 0; i < n; i++)
        free(held[i]);
    free(held);
    return NULL;
}

static int address_space_back(void)
{
    void *first = malloc(1);
    escape(first);
    struct rlimit limit = { status_kib("VmSize") * KIB + THREAD_BYTES + 48 * MIB, RLIM_INFINITY };
    limit.rlim_max = limit.rlim_cur;
    if (setrlimit(RLIMIT_AS, &limit) != 0)
        return 2;
    int bad = 0;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * KIB);
    pthread_t t;
    if (pthread_create(&t, &attr, use_and_free, &bad) != 0)
        return 2;
    pthread_join(t, NULL);
    if (bad)
        return bad;
    malloc_trim(0);
    void *p = malloc(THREAD_BYTES);
    if (p == NULL) {
        say("malloc(160 MiB) failed after the thread's memory was freed and trimmed");
        return 1;
    }
    free(p);
    return 0;
}

/* The same without malloc_trim: once the decay is over, the heap
 * operations that follow unmap the segments a thread freed whole, and the
 * last segment of an arena its thread left. */
static size_t heap_bytes(void)
{
    struct mymalloc_stats s;
    return mymalloc_stats_get(&s) == 0 ? s.heap_bytes : 0;
}

static void some_heap_operations(void)
{
    for (int i = 0; i < 64; i++) {
        void *p = malloc(20000 + 16 * (size_t)i);     /* past the caches: heap operations */
        escape(p);
        free(p);
    }
}

static void *fill_free_wait(void *arg)
{
    size_t *left = arg;
    enum { N = 1024 };                 /* 64 MiB: 16 segments of 4 MiB */
    void **held = malloc(N * sizeof *held);
    if (held == NULL)
        return NULL;
    for (int i = 0; i < N; i++) {
        held[i] = malloc(64 * KIB - 64);
        if (held[i] != NULL)
            memset(held[i], 1, 64);
        escape(held[i]);
    }
    size_t full = heap_bytes();
    for (int i = 0; i < N; i++)
        free(held[i]);
    free(held);
    usleep(400 * 1000);                /* twice the decay */
    some_heap_operations();
    left[0] = full;
    left[1] = heap_bytes();
    return NULL;
}

static int segments_back_after_decay(void)
{
    mallopt(M_MYMALLOC_DECAY, 200);
    void *first = malloc(1);
    escape(first);
    size_t before = heap_bytes(), left[2] = { 0, 0 };
    pthread_t t;
    if (pthread_create(&t, NULL, fill_free_wait, left) != 0)
        return 2;
    pthread_join(t, NULL);
    char msg[160];
    snprintf(msg, sizeof msg, "heap bytes: %zu before, %zu with 64 MiB in use, %zu after the decay in the thread",
             before, left[0], left[1]);
    if (left[0] < before + 64 * MIB || left[1] > before + 8 * MIB) {
        say(msg);
        return 1;
    }
    usleep(400 * 1000);                /* the thread is gone: its arena is idle */
    some_heap_operations();
    size_t idle = heap_bytes();
    if (idle > before + MIB) {
        snprintf(msg + strlen(msg), sizeof msg - strlen(msg), ", %zu once its arena was idle", idle);
        say(msg);
        return 1;
    }
    return 0;
}

/* ---- errno ----
 * GCC knows the malloc family: it drops a malloc/free pair whose block is
 * not used, and takes posix_memalign() to leave errno alone.  So the blocks
 * escape, errno is read through a volatile lvalue, and posix_memalign is
 * called through a pointer the compiler cannot see through. */
static int (*volatile posix_memalign_call)(void **, size_t, size_t) = posix_memalign;

static int first_allocation_errno(void)
{
    /* This child has allocated before (fork inherits the heap): run a fresh
     * process of our own whose first call is the one under test. */
    char *argv[] = { "/proc/self/exe", "--first-malloc", NULL };
    execv(argv[0], argv);
    return 2;
}

static int first_malloc_probe(void)
{
    errno = EBADMSG;
    void *p = malloc(24);
    escape(p);
    int e = errno_now();
    if (p == NULL)
        return 2;
    free(p);
    if (e != EBADMSG) {
        char msg[64];
        snprintf(msg, sizeof msg, "errno %d after the first malloc", e);
        say(msg);
        return 1;
    }
    return 0;
}

static void *thread_first_errno(void *arg)
{
    int *seen = arg;
    errno = EBADMSG;
    void *p = malloc(100);
    void *q = calloc(10, 10);
    escape(p);
    escape(q);
    *seen = errno_now();
    free(p);
    free(q);
    return NULL;
}

static int thread_first_allocation_errno(void)
{
    int bad = 0;
    for (int i = 0; i < 8; i++) {
        int seen = 0;
        pthread_t t;
        if (pthread_create(&t, NULL, thread_first_errno, &seen) != 0)
            return 2;
        pthread_join(t, NULL);
        bad |= seen != EBADMSG;
    }
    return bad;
}

static int posix_memalign_failure_errno(void)
{
    void *p = &p;
    errno = 0;
    int r = posix_memalign_call(&p, 64, SIZE_MAX / 2);
    if (r != ENOMEM || errno_now() != ENOMEM || p != &p) {
        char msg[80];
        snprintf(msg, sizeof msg, "posix_memalign(SIZE_MAX / 2): returned %d, errno %d", r, errno);
        say(msg);
        return 1;
    }
    struct rlimit limit = { status_kib("VmSize") * KIB + 64 * MIB, 0 };
    limit.rlim_max = limit.rlim_cur;
    if (setrlimit(RLIMIT_AS, &limit) != 0)
        return 2;
    errno = 0;
    r = posix_memalign_call(&p, 4096, 256 * MIB);      /* fits no limit: the kernel says no */
    if (r == ENOMEM && errno_now() == ENOMEM)
        return 0;
    char msg[80];
    snprintf(msg, sizeof msg, "posix_memalign under RLIMIT_AS: returned %d, errno %d", r, errno);
    say(msg);
    return 1;
}

/* exit() from a signal handler that interrupted malloc or free (not
 * async-signal-safe, but common in SIGINT and SIGALRM handlers): the checks
 * at exit must not wait for the arena lock the interrupted call holds. */
static void exit_now(int sig)
{
    (void)sig;
    exit(0);
}

__attribute__((noreturn)) static void exit_from_handler_child(unsigned k)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = exit_now;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval when = { { 0, 0 }, { 0, 1000 + (long)(k % 7) * 150 } };
    setitimer(ITIMER_REAL, &when, NULL);
    void *keep[8] = { 0 }, *small[8];
    for (int i = 0; i < 8; i++)           /* the cache holds blocks: exit gives them back */
        small[i] = malloc(40);
    for (int i = 0; i < 8; i++)
        free(small[i]);
    for (unsigned i = 0;; i++) {          /* blocks too big for the cache: every call locks the arena */
        free(keep[i % 8]);
        keep[i % 8] = malloc(9000 + (i % 13) * 512);
    }
}

static int exit_from_signal_handler(void)
{
    for (unsigned k = 0; k < 40; k++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0)
            return 2;
        if (pid == 0)
            exit_from_handler_child(k);
        int status = 0, waited = 0;
        for (; waited < 300; waited++) {     /* 3 s */
            pid_t r = waitpid(pid, &status, WNOHANG);
            if (r == pid)
                break;
            sleep_ms(10);
        }
        if (waited == 300) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            say("a child that called exit() in a signal handler during malloc did not end within 3 s");
            return 1;
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            char msg[80];
            snprintf(msg, sizeof msg, "a child ended with status %#x", (unsigned)status);
            say(msg);
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--first-malloc") == 0)
        return first_malloc_probe();
    if (argc > 2 && strcmp(argv[1], "--only") == 0)
        only = argv[2];
    plan(14);
    CASE(fork_while_growing, 60, "fork() 300 times while two threads grow their arenas: no deadlock");
    /* 2-6 s here; once, in a distcheck run on an evening when the machine's
     * system calls and page faults cost 5-6 times more than usual, it passed
     * 60 s: the watchdog is for a deadlock. */
    CASE(fit_while_growing, 180, "mallopt(M_MYMALLOC_FIT) 20000 times while two threads grow their arenas: no deadlock");
    CASE(fork_against_stdio, 60, "fork() 400 times while one thread runs fflush(NULL) and another getline(): no deadlock");
    CASE(calloc_after_arena_trim, 30, "calloc() in a thread after its arena trimmed a top full of 0xaa: all zero");
    CASE(calloc_after_trim_with_foreign_break, 30,
         "calloc() of the main top after malloc_trim() with the break moved by someone else: all zero");
    CASE(calloc_after_foreign_sbrk, 30,
         "calloc() in a brk region started where another sbrk user lowered the break by 100 bytes: all zero");
    CASE(late_first_allocation, 30,
         "threads allocating first in their last key destructor round, then threads reusing their storage: "
         "mallinfo2, stats and new threads do not hang");
    CASE(threads_exit_in_waves, 60,
         "1000 threads started by 4 others allocate and exit, their blocks freed by the starters: arenas reused, "
         "the heap small and sound");
    CASE(address_space_back, 60,
         "under RLIMIT_AS: 160 MiB freed by an exited thread, then malloc_trim(0): malloc(160 MiB) succeeds");
    CASE(segments_back_after_decay, 30,
         "a thread's arena: 64 MiB freed, segments unmapped once the decay is over, and its last one once the "
         "arena is idle, with no malloc_trim");
    CASE(first_allocation_errno, 30, "the first malloc() of a process leaves errno alone");
    CASE(thread_first_allocation_errno, 30, "a thread's first malloc() and calloc() leave errno alone");
    CASE(posix_memalign_failure_errno, 30, "posix_memalign() that fails returns ENOMEM and sets errno to ENOMEM");
    CASE(exit_from_signal_handler, 150, "exit() from a signal handler that interrupted malloc or free, 40 times: "
         "the checks at exit neither hang nor see the interrupted update");
    return done();
}
