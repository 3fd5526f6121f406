/* decay.c - what the decay guarantees: free pages go back to the kernel
 * once they have been free for the decay (here 200 ms), whatever mix of
 * calls the program goes on making, and, with the background release on,
 * while it makes none.  Each case runs in a child of its own (RSS from
 * /proc/self/statm is measured against the child's start):
 *
 *  - 400,000 blocks of 16-256 bytes freed, then only malloc/free pairs
 *    that the thread's cache serves (no heap operation at all), or a mix;
 *  - the same with one block in 64 kept: RSS comes down to the pages the
 *    kept blocks pin, plus a little;
 *  - a big free block carved from every 50 ms, and one that small frees
 *    keep merging into: its untouched pages still go;
 *  - MYMALLOC_BACKGROUND / M_MYMALLOC_BACKGROUND: RSS comes back while the
 *    program sleeps; without it, it does not; in a fork child too; the
 *    thread stops when turned off.
 *
 * Nothing asserts on time: each case sleeps several times the decay before
 * it looks. */
#include "util.h"
#include <dirent.h>

#define DECAY_MS 200
#define BLOCKS 400000

static size_t page;


static uint64_t seed = 0x9E3779B97F4A7C15ull;
static uint64_t next_random(void) { return xorshift(&seed); }

/* A note from a child, without stdio. */
static void say(const char *s)
{
    ssize_t r = write(STDOUT_FILENO, "# ", 2);
    r = write(STDOUT_FILENO, s, strlen(s));
    r = write(STDOUT_FILENO, "\n", 1);
    (void)r;
}

/* Run fn in a child with a watchdog; its exit status 0 passes. */
static int isolated(int (*fn)(void))
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(60);
        _exit(fn());
    }
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return 0;
    if (WIFSIGNALED(status))
        diag("the case died of signal %d", WTERMSIG(status));
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* ---- many small blocks freed, then a program that keeps going ---- */

static void *blocks[BLOCKS];

/* Allocate the blocks (written, so resident), then free all but one in
 * `keep` (0: all).  Returns the RSS with them all in use. */
static size_t allocate_and_free(int keep)
{
    for (int i = 0; i < BLOCKS; i++) {
        size_t n = 16 + (size_t)(next_random() % 241);
        blocks[i] = malloc(n);
        if (blocks[i] != NULL)
            memset(blocks[i], 0x5a, n);
    }
    size_t peak = rss_bytes();
    for (int i = 0; i < BLOCKS; i++)
        if (keep == 0 || i % keep != 0) {
            free(blocks[i]);
            blocks[i] = NULL;
        }
    return peak;
}

/* Calls that the thread's cache serves alone: no heap operation. */
static void cached_pairs(void)
{
    for (int k = 0; k < 500; k++) {
        void *a = malloc(32), *b = malloc(100);
        escape(a);
        escape(b);
        free(b);
        free(a);
    }
}

/* A mix of sizes, some blocks kept between rounds. */
static void *mixed[1000];
static void mixed_calls(void)
{
    for (int k = 0; k < 1000; k++) {
        size_t j = (size_t)(next_random() % 1000);
        if (mixed[j] != NULL) {
            free(mixed[j]);
            mixed[j] = NULL;
        } else {
            mixed[j] = malloc(16 + (size_t)(next_random() % 241));
            escape(mixed[j]);
        }
    }
}

/* The pages the kept blocks touch, header included. */
static size_t pinned_bytes(void)
{
    size_t count = 0;
    uintptr_t last = 0;
    for (int i = 0; i < BLOCKS; i++) {
        if (blocks[i] == NULL)
            continue;
        uintptr_t from = ((uintptr_t)blocks[i] - 8) / page;
        uintptr_t to = ((uintptr_t)blocks[i] + malloc_usable_size(blocks[i]) - 1) / page;
        for (uintptr_t p = from; p <= to; p++)
            if (p != last) {         /* blocks are in address order: one look back is enough */
                count++;
                last = p;
            }
    }
    return count * page;
}

static int keeps_going(int keep, void (*calls)(void))
{
    mallopt(M_MYMALLOC_DECAY, DECAY_MS);
    memset(blocks, 0, sizeof blocks);       /* resident from the start: 3 MB of pointers */
    size_t start = rss_bytes();
    size_t peak = allocate_and_free(keep);
    size_t pinned = keep ? pinned_bytes() : 0;
    for (int round = 0; round < 12; round++) {   /* 1.2 s: six times the decay */
        sleep_ms(100);
        calls();
    }
    size_t end = rss_bytes();
    char msg[200];
    snprintf(msg, sizeof msg, "RSS: %zu KiB at the start, %zu KiB at the peak, %zu KiB at the end; the kept blocks pin %zu KiB",
             start / KIB, peak / KIB, end / KIB, pinned / KIB);
    say(msg);
    return end <= start + pinned + 2 * MIB ? 0 : 1;
}

static int all_freed_cache_calls(void) { return keeps_going(0, cached_pairs); }
static int all_freed_mixed_calls(void) { return keeps_going(0, mixed_calls); }
static int one_in_64_cache_calls(void) { return keeps_going(64, cached_pairs); }
static int one_in_64_mixed_calls(void) { return keeps_going(64, mixed_calls); }

/* ---- a big free block that keeps being carved from, or merged into ---- */

#define BIG_BLOCKS 640
#define BIG_SIZE 64000          /* 40 MB in all, under the mmap threshold */

static void *big[BIG_BLOCKS];

/* 40 MB freed into one free block, kept off the top by a block after it. */
static void *big_free_block(void)
{
    for (int i = 0; i < BIG_BLOCKS; i++) {
        big[i] = malloc(BIG_SIZE);
        if (big[i] != NULL)
            memset(big[i], 1, BIG_SIZE);
    }
    void *pin = malloc(30000);
    escape(pin);
    for (int i = 0; i < BIG_BLOCKS; i++)
        free(big[i]);
    return pin;
}

static int carved_from(void)
{
    mallopt(M_MYMALLOC_DECAY, DECAY_MS);
    size_t start = rss_bytes();
    void *pin = big_free_block();
    void *carved[24];
    for (int round = 0; round < 24; round++) {   /* every 50 ms: four times per decay */
        sleep_ms(50);
        carved[round] = malloc(20000);          /* from the front of the free block */
        if (carved[round] != NULL)
            memset(carved[round], 2, 20000);
    }
    size_t end = rss_bytes();
    char msg[160];
    snprintf(msg, sizeof msg, "RSS: %zu KiB at the start, %zu KiB after 24 carvings over 1.2 s", start / KIB, end / KIB);
    say(msg);
    escape(pin);
    escape(carved);
    return end <= start + 2 * MIB ? 0 : 1;
}

static int merged_into(void)
{
    mallopt(M_MYMALLOC_DECAY, DECAY_MS);
    size_t start = rss_bytes();
    /* Small blocks just before the big ones, freed one by one: each merges
     * into the big free block. */
    mallopt(M_MYMALLOC_TCACHE, 0);
    void *small[24];
    for (int i = 0; i < 24; i++)
        small[i] = malloc(2000);
    void *pin = big_free_block();
    for (int round = 0; round < 24; round++) {
        sleep_ms(50);
        free(small[23 - round]);
    }
    size_t end = rss_bytes();
    char msg[160];
    snprintf(msg, sizeof msg, "RSS: %zu KiB at the start, %zu KiB after 24 merges over 1.2 s", start / KIB, end / KIB);
    say(msg);
    escape(pin);
    return end <= start + 2 * MIB ? 0 : 1;
}

/* ---- the background release ---- */

static int threads_now(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    if (d == NULL)
        return -1;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Free 40 MB, then sleep (no allocator call) for six times the decay. */
static int sleeps_after_free(int background)
{
    mallopt(M_MYMALLOC_DECAY, DECAY_MS);
    if (background && mallopt(M_MYMALLOC_BACKGROUND, 1) != 1)
        return 2;
    size_t start = rss_bytes();
    void *pin = big_free_block();
    size_t freed = rss_bytes();
    sleep_ms(6 * DECAY_MS);
    size_t end = rss_bytes();
    char msg[160];
    snprintf(msg, sizeof msg, "RSS: %zu KiB at the start, %zu KiB just after the free, %zu KiB after sleeping",
             start / KIB, freed / KIB, end / KIB);
    say(msg);
    escape(pin);
    return (end <= start + 2 * MIB) == background ? 0 : 1;
}

static int background_releases(void) { return sleeps_after_free(1); }
static int no_background_keeps(void) { return sleeps_after_free(0); }

/* A fork child has no background thread at first: its next calls start one. */
static int background_in_fork_child(void)
{
    mallopt(M_MYMALLOC_DECAY, DECAY_MS);
    if (mallopt(M_MYMALLOC_BACKGROUND, 1) != 1)
        return 2;
    int before = threads_now();
    pid_t pid = fork();
    if (pid == 0) {
        alarm(30);
        int alone = threads_now();
        cached_pairs();                   /* 1000 counted frees: a poll */
        sleep_ms(2 * DECAY_MS);
        cached_pairs();
        int again = threads_now();
        size_t start = rss_bytes();
        void *pin = big_free_block();
        sleep_ms(6 * DECAY_MS);
        size_t end = rss_bytes();
        char msg[160];
        snprintf(msg, sizeof msg, "child: %d thread(s) after fork, %d after its calls; RSS %zu KiB -> %zu KiB", alone,
                 again, start / KIB, end / KIB);
        say(msg);
        escape(pin);
        _exit(alone == 1 && again == 2 && end <= start + 2 * MIB ? 0 : 1);
    }
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return 2;
    return before == 2 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

static int background_stops(void)
{
    mallopt(M_MYMALLOC_DECAY, DECAY_MS);
    int alone = threads_now();
    if (mallopt(M_MYMALLOC_BACKGROUND, 1) != 1)
        return 2;
    int on = threads_now();
    if (mallopt(M_MYMALLOC_BACKGROUND, 0) != 1)
        return 2;
    sleep_ms(4 * DECAY_MS);
    int off = threads_now();
    char msg[120];
    snprintf(msg, sizeof msg, "threads: %d, %d with the background release on, %d once it is off", alone, on, off);
    say(msg);
    return alone == 1 && on == 2 && off == 1 ? 0 : 1;
}

/* MYMALLOC_BACKGROUND=1 in the environment starts it before main. */
static int environment_starts_it(void)
{
    char *argv[] = { "/proc/self/exe", "--count-threads", NULL };
    setenv("MYMALLOC_BACKGROUND", "1", 1);
    execv(argv[0], argv);
    return 2;
}

int main(int argc, char **argv)
{
    page = (size_t)sysconf(_SC_PAGESIZE);
    if (argc > 1 && strcmp(argv[1], "--count-threads") == 0)
        return threads_now() == 2 ? 0 : 1;
    plan(11);
    ok(isolated(all_freed_cache_calls),
       "400,000 blocks freed, then only calls the thread's cache serves: RSS back within 2 MiB once the decay is over");
    ok(isolated(all_freed_mixed_calls), "the same with a mix of sizes (heap operations)");
    ok(isolated(one_in_64_cache_calls),
       "one block in 64 kept, cache calls: RSS down to the pages the kept blocks pin, plus 2 MiB");
    ok(isolated(one_in_64_mixed_calls), "one block in 64 kept, a mix of calls: the same");
    ok(isolated(carved_from), "a 40 MB free block carved from four times per decay: its untouched pages still go");
    ok(isolated(merged_into), "a 40 MB free block that small frees merge into four times per decay: its pages still go");
    ok(isolated(no_background_keeps), "without the background release, a program asleep after its free keeps the pages");
    ok(isolated(background_releases), "with M_MYMALLOC_BACKGROUND, RSS comes back while the program sleeps");
    ok(isolated(background_in_fork_child),
       "a fork child starts its own background thread at its next calls, and its RSS comes back while it sleeps");
    ok(isolated(background_stops), "M_MYMALLOC_BACKGROUND 0 stops the thread");
    ok(isolated(environment_starts_it), "MYMALLOC_BACKGROUND=1 in the environment starts the thread before main");
    return done();
}
