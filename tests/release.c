/* release.c - memory goes back to the system: the pages inside big free
 * blocks in the middle of the heap are released with madvise after the decay
 * (MYMALLOC_DECAY_MS, mallopt(M_MYMALLOC_DECAY)) or at once by malloc_trim(0),
 * so that after a program frees what it allocated - also after a fragmenting
 * pattern pinned by long-lived blocks - its resident set size (from
 * /proc/self/statm) comes back to within 1 MiB of where it started.  Blocks
 * freed and reused within the decay keep their pages; live blocks keep their
 * contents; calloc() relies on released pages reading as zero; check level 2
 * accepts released pages and still catches a write into one.
 *
 * Nothing here asserts on time: a test that needs the decay to be over sleeps
 * well past it first, then makes the heap operations that release. */
#include "util.h"
#include "run_self.h"

#define BIG (4 * MIB)                 /* a heap block (the mmap threshold is raised) */
#define PROBE_ARG "--probe-env"
#define PIN (2 * MIB)                 /* keeps the block before it off the top; never written */
#define OPS_SIZE (64 * KIB)

static size_t page;

static void fill(void *p, int byte, size_t n)
{
    memset(p, byte, n);
    escape(p);
}


/* A captured line without its newline, for a TAP description. */
static char *chomp(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '\n')
        s[--n] = '\0';
    return s;
}

static long kib(size_t after, size_t before) { return ((long)after - (long)before) / (long)KIB; }

/* Heap operations, the occasions the allocator takes to look at its clock and
 * release: a block in use all along is shrunk (its tail freed) and grown back
 * in place, 32 times, leaving every other block alone. */
static char *ops_block;

static int heap_ops(void)
{
    for (int i = 0; i < 32; i++) {
        char *p = realloc(ops_block, OPS_SIZE - 8 * KIB);
        if (p != ops_block)
            return 0;
        p = realloc(p, OPS_SIZE);
        if (p == NULL)
            return 0;
        ops_block = p;
    }
    return 1;
}

/* ---- the fragmenting pattern ---- */

#define COUNT 6000
static char *blk[COUNT];
static size_t len[COUNT];
static uint64_t rng_state;

static uint64_t rng(void) { return xorshift(&rng_state); }

/* Log-uniform in [16 B, 64 KiB]: many small blocks, few big ones. */
static size_t mixed_size(void)
{
    size_t base = (size_t)16 << (rng() % 12);
    return base + rng() % base;
}

static inline int kept(size_t i) { return i % 16 == 0; }  /* long-lived: they pin the heap */
static inline unsigned char tag(size_t i) { return (unsigned char)(i * 7 + 1); }

/* Allocate the pattern and write every byte.  0 when some malloc failed. */
static int pattern_alloc(uint64_t seed, size_t *kept_bytes)
{
    int all = 1;
    rng_state = seed;
    *kept_bytes = 0;
    for (size_t i = 0; i < COUNT; i++) {
        len[i] = i % 32 == 16 ? 40 : mixed_size();     /* every other kept block is small */
        blk[i] = malloc(len[i]);
        if (blk[i] == NULL) {
            all = 0;
            continue;
        }
        fill(blk[i], tag(i), len[i]);
        if (kept(i))
            *kept_bytes += len[i];
    }
    return all;
}

/* Free all but the kept blocks, in an order that fragments: odd ones, then
 * even ones from the far end. */
static void pattern_free_most(void)
{
    for (size_t i = 1; i < COUNT; i += 2) {
        free(blk[i]);
        blk[i] = NULL;
    }
    for (size_t i = COUNT; i-- > 0;) {
        if (blk[i] != NULL && !kept(i)) {
            free(blk[i]);
            blk[i] = NULL;
        }
    }
}

static int kept_intact(void)
{
    for (size_t i = 0; i < COUNT; i += 16)
        if (blk[i] == NULL || !all_bytes(blk[i], 0, len[i], tag(i)))
            return 0;
    return 1;
}

static void pattern_free_rest(void)
{
    for (size_t i = 0; i < COUNT; i++) {
        free(blk[i]);
        blk[i] = NULL;
    }
}

/* What the kept blocks may hold resident: their bytes, and a page at each
 * end for their own pages and the edges of the free blocks around them. */
static size_t kept_allowance(size_t kept_bytes)
{
    return kept_bytes + (COUNT / 16) * 2 * page;
}

/* Once the pattern's free memory is released: RSS at most the kept blocks'
 * allowance and 1 MiB above where it was before, the kept blocks intact,
 * the heap sound.  Three points. */
static void released_but_kept(const char *how, size_t before, size_t peak, size_t kept_bytes)
{
    size_t released = rss_bytes();
    ok(released <= before + kept_allowance(kept_bytes) + MIB,
       "%s: the pages between the kept blocks (%zu KiB live) are released: RSS %+ld KiB from before "
       "(at most %zu KiB allowed), %+ld KiB from the peak", how, kept_bytes / KIB, kib(released, before),
       (kept_allowance(kept_bytes) + MIB) / KIB, kib(released, peak));
    ok(kept_intact(), "%s: the %d kept blocks next to the released memory hold their bytes", how, COUNT / 16);
    ok(mymalloc_check() == 0, "%s: mymalloc_check() finds a sound heap", how);
}

/* malloc_trim(0): with a decay of -1 nothing goes back on its own; the
 * calls release everything free at once. */
static void fragment_with_trim(size_t start)
{
    const char *how = "malloc_trim";
    size_t before = rss_bytes(), kept_bytes;
    int allocated = pattern_alloc(0x9e3779b97f4a7c15u, &kept_bytes);
    size_t peak = rss_bytes();
    ok(allocated && peak >= before + 32 * MIB, "%s: %d blocks of 16 B-128 KiB allocated and written (RSS %+ld KiB)",
       how, COUNT, kib(peak, before));
    pattern_free_most();
    size_t freed = rss_bytes();
    ok(freed + 4 * MIB >= peak, "%s: with a decay of -1, freeing all but every 16th block keeps the pages "
       "(RSS %+ld KiB from the peak)", how, kib(freed, peak));
    ok(malloc_trim(0) == 1, "%s: malloc_trim(0) returns 1", how);
    released_but_kept(how, before, peak, kept_bytes);
    pattern_free_rest();
    malloc_trim(0);
    size_t end = rss_bytes();
    ok(end <= start + MIB, "%s: everything freed, malloc_trim(0): RSS within 1 MiB of the start of the test "
       "(%+ld KiB)", how, kib(end, start));
}

/* The decay alone, no malloc_trim: the blocks are allocated and freed by
 * threads that then exit.  (A thread's cache keeps up to about 4 KiB of
 * freed small blocks per size class until it reuses them, flushes them or
 * exits; scattered over the heap they would keep their pages resident.) */
static size_t worker_kept_bytes, worker_peak;
static int worker_allocated;

static void *worker_alloc_free_most(void *arg)
{
    worker_allocated = pattern_alloc(*(uint64_t *)arg, &worker_kept_bytes);
    worker_peak = rss_bytes();
    pattern_free_most();
    return NULL;
}

static void *worker_free_rest(void *arg)
{
    (void)arg;
    pattern_free_rest();
    return NULL;
}

static int in_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    return pthread_create(&t, NULL, fn, arg) == 0 && pthread_join(t, NULL) == 0;
}

static void fragment_with_decay(size_t start)
{
    const char *how = "decay 20 ms";
    uint64_t seed = 0x2545f4914f6cdd1du;
    size_t before = rss_bytes();
    int ran = in_thread(worker_alloc_free_most, &seed);
    size_t freed = rss_bytes();
    ok(ran && worker_allocated && worker_peak >= before + 32 * MIB,
       "%s: a thread allocated and wrote %d blocks of 16 B-128 KiB (RSS %+ld KiB), freed all but every 16th "
       "and exited (RSS %+ld KiB)", how, COUNT, kib(worker_peak, before), kib(freed, before));
    sleep_ms(100);
    ok(heap_ops(), "%s: 100 ms later, 64 heap operations (a block shrunk and grown back in place)", how);
    released_but_kept(how, before, worker_peak, worker_kept_bytes);
    ran = in_thread(worker_free_rest, NULL);
    sleep_ms(100);
    ran = heap_ops() && ran;
    size_t end = rss_bytes();
    ok(ran && end <= start + MIB, "%s: everything freed by another thread, 100 ms and 64 heap operations later: "
       "RSS within 1 MiB of the start of the test (%+ld KiB)", how, kib(end, start));
}

/* ---- a thread's arena: what its top and older segments kept for the
 * decay is given back once the decay is over, the thread gone ---- */

#define TOP_BLOCKS 2000                  /* of 4000 bytes: about 8 MiB */
static char *top_blocks[TOP_BLOCKS];
static size_t top_before, top_peak;
static int top_made;

/* Fill 8 MiB from the thread's arena and free it from the end, so that all
 * of it joins the top, twice: the second trim comes within the decay of the
 * first. */
static void *worker_top(void *arg)
{
    (void)arg;
    top_made = 1;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < TOP_BLOCKS; i++) {
            top_blocks[i] = malloc(4000);
            if (top_blocks[i] == NULL)
                top_made = 0;
            else
                fill(top_blocks[i], 0x3c, 4000);
        }
        top_peak = rss_bytes();
        for (int i = TOP_BLOCKS - 1; i >= 0; i--)
            free(top_blocks[i]);
    }
    return NULL;
}

static void top_decay_phase(void)
{
    ok(mallopt(M_MYMALLOC_DECAY, 300) == 1, "mallopt(M_MYMALLOC_DECAY, 300) accepted");
    top_before = rss_bytes();
    int ran = in_thread(worker_top, NULL);
    size_t after_free = rss_bytes();
    ok(ran && top_made && top_peak >= top_before + 7 * MIB,
       "a thread's arena: 8 MiB allocated, written and freed from the end, twice (RSS %+ld KiB at the peak, %+ld KiB "
       "after the thread)", kib(top_peak, top_before), kib(after_free, top_before));
    /* Its cache, left to its arena, goes back to the heap after the decay
     * (no thread took the arena); the memory that frees, after another. */
    sleep_ms(400);
    int ops = heap_ops();
    sleep_ms(400);
    ops = heap_ops() && ops;
    size_t later = rss_bytes();
    ok(ops && later <= top_before + MIB,
       "decay 300 ms: twice 400 ms later (the thread gone, 64 heap operations of the main thread each time), "
       "its memory is given back: RSS %+ld KiB from before", kib(later, top_before));
}

/* ---- the decay ---- */

static void decay_phase(void)
{
    ok(mallopt(M_MYMALLOC_DECAY, 60000) == 1, "mallopt(M_MYMALLOC_DECAY, 60000) accepted");
    char *a = malloc(BIG), *pin = malloc(PIN);
    escape(pin);
    if (a == NULL || pin == NULL) {
        ok(0, "a block of %zu KiB and a pin after it", BIG / KIB);
        return;
    }
    fill(a, 0x5a, BIG);
    uintptr_t where = (uintptr_t)a;
    size_t r1 = rss_bytes();
    free(a);
    heap_ops();
    size_t r2 = rss_bytes();
    ok(r2 + 512 * KIB >= r1, "decay 60 s: a freed 4 MiB block in the middle of the heap keeps its pages "
       "through further heap operations (RSS %+ld KiB)", kib(r2, r1));
    char *b = malloc(BIG);
    ok((uintptr_t)b == where && all_bytes(b, 64, BIG - 64, 0x5a),
       "reused within the decay: the same block, its old bytes still there (never released)");

    ok(mallopt(M_MYMALLOC_DECAY, 0) == 1, "mallopt(M_MYMALLOC_DECAY, 0) accepted");
    struct mymalloc_stats s1, s2;
    mymalloc_stats_get(&s1);
    free(b);
    mymalloc_stats_get(&s2);
    size_t r3 = rss_bytes();
    ok(r3 + 3 * MIB <= r2, "decay 0: its pages are released by the free itself (RSS %+ld KiB)", kib(r3, r2));
    ok(s2.madvise_calls == s1.madvise_calls + 1, "that free made one madvise call, counted by mymalloc_stats_get "
       "(%llu)", s2.madvise_calls - s1.madvise_calls);
    char *c = malloc(BIG);
    ok((uintptr_t)c == where && all_bytes(c, 64 * KIB, BIG - 64 * KIB, 0),
       "malloc gets the same block back, and its released pages read as zero");
    free(c);
    size_t r4 = rss_bytes();
    char *d = calloc(1, BIG);
    size_t r5 = rss_bytes();
    ok((uintptr_t)d == where && all_bytes(d, 0, BIG, 0), "calloc of the released block: all zero");
    ok(r5 < r4 + 512 * KIB, "calloc did not write the released pages (RSS %+ld KiB)", kib(r5, r4));
    free(d);

    ok(mallopt(M_MYMALLOC_DECAY, 200) == 1, "mallopt(M_MYMALLOC_DECAY, 200) accepted");
    char *e = malloc(BIG);
    fill(e, 0x33, BIG);
    size_t r6 = rss_bytes();
    free(e);
    size_t r7 = rss_bytes();
    ok(r7 + 512 * KIB >= r6, "decay 200 ms: still resident right after the free (RSS %+ld KiB)", kib(r7, r6));
    sleep_ms(400);
    heap_ops();
    size_t r8 = rss_bytes();
    ok(r8 + 3 * MIB <= r7, "400 ms later, further heap operations released it (RSS %+ld KiB)", kib(r8, r7));

    ok(mallopt(M_MYMALLOC_DECAY, -1) == 1, "mallopt(M_MYMALLOC_DECAY, -1) accepted");
    char *f = malloc(BIG);
    fill(f, 0x44, BIG);
    size_t r9 = rss_bytes();
    free(f);
    sleep_ms(50);
    heap_ops();
    size_t r10 = rss_bytes();
    ok(r10 + 512 * KIB >= r9, "decay -1: never released by heap operations (RSS %+ld KiB)", kib(r10, r9));
    int trimmed = malloc_trim(0);
    size_t r11 = rss_bytes();
    ok(trimmed == 1 && r11 + 3 * MIB <= r10, "malloc_trim(0) releases it regardless (returned %d, RSS %+ld KiB)",
       trimmed, kib(r11, r10));
    ok(malloc_trim(0) == 0, "a second malloc_trim(0) finds nothing more to release");
    char *g = malloc(BIG);
    ok((uintptr_t)g == where && all_bytes(g, 64 * KIB, BIG - 64 * KIB, 0), "the trimmed block reads as zero when reused");
    free(g);
    free(pin);
    ok(mymalloc_check() == 0, "mymalloc_check() finds a sound heap after the decay tests");
}

/* ---- check level 2, in children ---- */

/* Run fn in a child; its stderr comes back in err.  Returns the wait status. */
static int in_child(int (*fn)(void), char *err, size_t size)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        _exit(fn());
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < size && (r = read(fds[0], err + n, size - 1 - n)) > 0)
        n += (size_t)r;
    err[n] = '\0';
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    return status;
}

/* Released blocks, merged with filled ones, reused and checked: no report. */
static int level2_sound(void)
{
    if (mallopt(M_MYMALLOC_CHECK, 2) != 1 || mallopt(M_MYMALLOC_DECAY, 0) != 1)
        return 10;
    /* x and y side by side, carved from one free block, a pin after them. */
    char *room = malloc(2 * MIB + 64), *pin = malloc(PIN);
    escape(pin);
    free(room);
    char *x = malloc(MIB), *y = malloc(MIB);
    if (room == NULL || pin == NULL || x != room || y != x + MIB + 16)
        return 11;
    fill(x, 1, MIB);
    fill(y, 2, MIB);
    free(x);                                 /* filled with 0xdf, then released */
    if (mymalloc_check() != 0)
        return 12;
    if (mallopt(M_MYMALLOC_DECAY, 60000) != 1)
        return 13;
    free(y);                                 /* merged with x: partly released */
    if (mymalloc_check() != 0)
        return 14;
    char *z = malloc(2 * MIB - 64);          /* the merged block: its fill is verified */
    if (z != x)
        return 15;
    fill(z, 3, 2 * MIB - 64);
    if (mallopt(M_MYMALLOC_DECAY, 0) != 1)
        return 16;
    free(z);
    if (mymalloc_check() != 0 || malloc_trim(0) < 0 || mymalloc_check() != 0)
        return 17;
    char *w = malloc(MIB);                   /* part of the released block again */
    if (w != x)
        return 18;
    free(w);
    free(pin);
    return mymalloc_check() == 0 ? 0 : 19;
}

/* A write into a released page of a freed block is still a write after free. */
static int level2_write_after_release(void)
{
    if (mallopt(M_MYMALLOC_CHECK, 2) != 1 || mallopt(M_MYMALLOC_DECAY, 0) != 1)
        return 10;
    char *x = malloc(MIB), *pin = malloc(PIN);
    escape(pin);
    if (x == NULL || pin == NULL)
        return 11;
    char *volatile hidden = x;               /* the write after free is the point */
    free(x);
    hidden[300000] = 0x41;                   /* into a released page */
    char *again = malloc(MIB);               /* reports and aborts */
    escape(again);
    return 20;
}

/* Locked memory: madvise refuses to release it.  The block stays as it is,
 * errno is untouched, and once the memory is unlocked the next heap
 * operations release it. */
static int locked_memory(void)
{
    if (mallopt(M_MYMALLOC_DECAY, -1) != 1)
        return 10;
    char *a = malloc(BIG), *pin = malloc(PIN);
    escape(pin);
    if (a == NULL || pin == NULL)
        return 11;
    fill(a, 0x5a, BIG);
    if (mlockall(MCL_CURRENT) != 0)
        return 77;                           /* not allowed here: skipped */
    if (mallopt(M_MYMALLOC_DECAY, 0) != 1)
        return 12;
    errno = 1234;
    free(a);                                 /* madvise fails with EINVAL */
    if (errno != 1234)
        return 13;
    char *b = malloc(BIG);
    if (b != a || !all_bytes(b, 64, BIG - 64, 0x5a))
        return 14;
    free(b);
    if (mymalloc_check() != 0 || munlockall() != 0)
        return 15;
    if (!heap_ops())
        return 16;
    char *c = malloc(BIG);
    if (c != a || !all_bytes(c, 64 * KIB, BIG - 64 * KIB, 0))
        return 17;
    free(c);
    return mymalloc_check() == 0 ? 0 : 18;
}

static void level2_phase(void)
{
    char err[512];
    int status = in_child(level2_sound, err, sizeof err);
    chomp(err);
    ok(WIFEXITED(status) && WEXITSTATUS(status) == 0 && err[0] == '\0',
       "check level 2: freed blocks released, merged with filled ones and reused: no report, sound heap "
       "(exit %d, stderr \"%.200s\")", WIFEXITED(status) ? WEXITSTATUS(status) : -1, err);

    status = in_child(level2_write_after_release, err, sizeof err);
    chomp(err);
    ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT &&
       strncmp(err, "mymalloc: malloc(): write after free in block 0x", 48) == 0 &&
       strstr(err, " (byte 300000 changed, block of ") != NULL,
       "check level 2: a write into a released page of a freed block is reported at reuse (\"%.150s\")", err);

    status = in_child(locked_memory, err, sizeof err);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
        skip(1, "mlockall(MCL_CURRENT) is not allowed here");
    else
        ok(WIFEXITED(status) && WEXITSTATUS(status) == 0 && err[0] == '\0',
           "locked memory: the failed release leaves the block and errno alone; after munlockall the next heap "
           "operations release it (exit %d)", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

/* ---- MYMALLOC_DECAY_MS, in a re-executed child ---- */

/* Free a pinned 4 MiB block, take it back: were its bytes kept? */
static int probe(void)
{
    char *a = malloc(BIG), *pin = malloc(PIN);
    escape(pin);
    if (a == NULL || pin == NULL)
        return 1;
    fill(a, 0x5a, BIG);
    free(a);
    char *b = malloc(BIG);
    printf("same=%d kept=%d zero=%d\n", b == a, all_bytes(b, 64 * KIB, BIG - 64 * KIB, 0x5a),
           all_bytes(b, 64 * KIB, BIG - 64 * KIB, 0));
    return 0;
}

static int probe_env(const char *setting, char *out, size_t out_size, char *err, size_t err_size)
{
    /* The environment minus any malloc tuning (it keeps the library path of
     * an uninstalled build), plus the setting under test. */
    const char *vars[] = { setting, "MYMALLOC_MMAP_THRESHOLD=32M", NULL };
    int status = run_self("release", PROBE_ARG, vars, out, out_size, err, err_size);
    return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void environment_phase(void)
{
    char out[128], err[256];
    int rc = probe_env("MYMALLOC_DECAY_MS=0", out, sizeof out, err, sizeof err);
    chomp(out);
    ok(rc == 0 && strcmp(out, "same=1 kept=0 zero=1") == 0 && err[0] == '\0',
       "MYMALLOC_DECAY_MS=0: released at the free (%s)", out);
    rc = probe_env("MYMALLOC_DECAY_MS=-1", out, sizeof out, err, sizeof err);
    chomp(out);
    ok(rc == 0 && strcmp(out, "same=1 kept=1 zero=0") == 0 && err[0] == '\0',
       "MYMALLOC_DECAY_MS=-1: never released (%s)", out);
    rc = probe_env("MYMALLOC_DECAY_MS=soon", out, sizeof out, err, sizeof err);
    chomp(out);
    int reported = strcmp(err, "mymalloc: ignoring MYMALLOC_DECAY_MS=soon: not a valid time\n") == 0;
    chomp(err);
    ok(rc == 0 && strcmp(out, "same=1 kept=1 zero=0") == 0 && reported,
       "MYMALLOC_DECAY_MS=soon: reported and ignored, the default decay (1 s) keeps the block (%s)", err);
}

int main(int argc, char **argv)
{
    page = (size_t)sysconf(_SC_PAGESIZE);
    if (argc == 2 && strcmp(argv[1], PROBE_ARG) == 0)
        return probe();

    /* Thresholds fixed: blocks up to 32 MiB stay in the heap. */
    int set = mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1 && mallopt(M_TOP_PAD, 128 * 1024) == 1 &&
              mallopt(M_TRIM_THRESHOLD, 128 * 1024) == 1 && mallopt(M_MYMALLOC_DECAY, -1) == 1;
    plan(42);
    ok(set, "mallopt: mmap threshold 32 MiB, top pad and trim threshold 128 KiB, decay -1");

    /* Warm up what the measurements use (a thread's stack is kept by the C
     * library for the next thread), then note where RSS starts. */
    memset(blk, 0, sizeof blk);
    memset(len, 0, sizeof len);
    ops_block = malloc(OPS_SIZE);
    in_thread(worker_free_rest, NULL);
    heap_ops();
    sleep_ms(1);
    malloc_trim(0);
    size_t start = rss_bytes();
    diag("RSS at the start: %zu KiB", start / KIB);

    fragment_with_trim(start);
    ok(mallopt(M_MYMALLOC_DECAY, 20) == 1, "mallopt(M_MYMALLOC_DECAY, 20) accepted");
    fragment_with_decay(start);
    top_decay_phase();
    decay_phase();
    level2_phase();
    environment_phase();
    return done();
}
