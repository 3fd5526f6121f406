/* fit.c - the placement policies (MYMALLOC_FIT, mallopt(M_MYMALLOC_FIT)).
 *
 * The scenarios lay out a row of free blocks ("holes") of known sizes at
 * known, increasing addresses, each held apart from the next by a small
 * in-use guard so that nothing merges, with no other free block in the heap,
 * then check which hole serves a request under each policy (by address).
 * Caches are off and the thresholds pinned so every request reaches the
 * bins.  Then a seeded random stress per policy, and one switching policies
 * as it goes, verify every block's contents and mymalloc_check(); and the
 * test runs itself again (--probe) to check the environment variable. */
#include "util.h"
#include "run_self.h"

#define GUARD 16                       /* a 32-byte block */
#define GUARD_BLOCK 32
#define PROBE_ARG "--probe"


static const char *const policy_names[] = { "best", "first", "next", "worst" };

/* malloc whose result the compiler knows nothing about: a comparison with
 * an older pointer cannot be folded on the grounds that a new block is
 * distinct from everything else. */
static void *fresh(size_t n)
{
    void *p = malloc(n);
    __asm__ volatile("" : "+r"(p) : : "memory");
    return p;
}

/* malloc(n) then free: not a pair the compiler may leave out. */
static void malloc_free(size_t n)
{
    void *p = malloc(n);
    escape(p);
    free(p);
}

/* A request that gets a block of exactly `block` bytes. */
static size_t request_for(size_t block) { return block - 8; }

static struct mymalloc_stats stats(void)
{
    struct mymalloc_stats s;
    mymalloc_stats_get(&s);
    return s;
}

/* Settings that make placement observable: no caches, fixed thresholds. */
static void setup(void)
{
    mallopt(M_MYMALLOC_TCACHE, 0);
    mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, -1);
    /* A top big enough for every scenario, so they are all cut from it in a row. */
    malloc_free(600 * KIB);
}

/* Take every free block out of the bins (small blocks, kept for good), so
 * the holes of a scenario are the only free blocks. */
static void *kept[1 << 17];
static size_t kept_count;

static int drain(void)
{
    while (stats().free_blocks > 0) {
        if (kept_count == sizeof kept / sizeof kept[0])
            return 0;
        kept[kept_count] = malloc(GUARD);
        escape(kept[kept_count++]);
    }
    return 1;
}

#define MAX_HOLES 8
#define MAX_OWNED 64
struct layout {
    size_t n;
    char *hole[MAX_HOLES];             /* user pointers of the freed holes */
    size_t size[MAX_HOLES];            /* their block sizes */
    char *top;                         /* the user pointer the top would give next */
    void *owned[MAX_OWNED];            /* everything to free at the end */
    size_t owned_count;
};

static void own(struct layout *l, void *p)
{
    if (l->owned_count < MAX_OWNED)
        l->owned[l->owned_count++] = p;
}

/* guard, hole, guard, hole, ..., guard; then free the holes.  1 when the
 * layout came out as planned: contiguous, and the holes the only free blocks. */
static int build(struct layout *l, const size_t *sizes, size_t n)
{
    memset(l, 0, sizeof *l);
    if (!drain())
        return 0;
    char *guard = fresh(GUARD);
    own(l, guard);
    int good = guard != NULL;
    size_t total = 0;
    l->n = n;
    for (size_t i = 0; i < n; i++) {
        l->size[i] = sizes[i];
        l->hole[i] = fresh(request_for(sizes[i]));
        char *next = fresh(GUARD);
        own(l, next);
        good = good && l->hole[i] == guard + GUARD_BLOCK && next == l->hole[i] + sizes[i];
        guard = next;
        total += sizes[i];
    }
    l->top = guard + GUARD_BLOCK;
    for (size_t i = 0; i < n; i++)
        free(l->hole[i]);
    struct mymalloc_stats s = stats();
    return good && s.free_blocks == n && s.free_bytes == total;
}

static void *take(struct layout *l, size_t n)
{
    void *p = fresh(n);
    own(l, p);
    return p;
}

static void release(struct layout *l)
{
    for (size_t i = 0; i < l->owned_count; i++)
        free(l->owned[i]);
    l->owned_count = 0;
}

static const char *where(const struct layout *l, const char *p)
{
    static char text[64];
    if (p == l->top) {
        snprintf(text, sizeof text, "the top");
        return text;
    }
    for (size_t i = 0; i < l->n; i++) {
        if (p >= l->hole[i] && p < l->hole[i] + l->size[i]) {
            snprintf(text, sizeof text, "hole %zu + %td", i, p - l->hole[i]);
            return text;
        }
    }
    snprintf(text, sizeof text, "%p, not in a hole", (const void *)p);
    return text;
}

static int at(const struct layout *l, const void *p, const char *expected, const char *what)
{
    int good = p == expected;
    ok(good, "%s", what);
    if (!good)
        diag("got %s, expected %s", where(l, p), where(l, expected));
    return good;
}

/* ---- the scenarios ---- */

/* Holes, lowest address first: 512, 256, 1024, 384, 2048 and 320 bytes. */
static const size_t row[] = { 512, 256, 1024, 384, 2048, 320 };
#define ROW (sizeof row / sizeof row[0])

static void one_policy(int policy, int expected_hole, int expected_608)
{
    struct layout l;
    const char *name = policy_names[policy];
    if (!ok(build(&l, row, ROW), "%s: the holes are laid out as planned", name)) {
        skip(5, "layout");
        release(&l);
        return;
    }
    ok(mallopt(M_MYMALLOC_FIT, policy) == 1, "mallopt(M_MYMALLOC_FIT, %d) accepted", policy);
    char *p = take(&l, 200);
    char text[160];
    snprintf(text, sizeof text, "%s: malloc(200) (a 208-byte block) is served by hole %d (%zu bytes)", name,
             expected_hole, row[expected_hole]);
    at(&l, p, l.hole[expected_hole], text);
    p = take(&l, request_for(608));
    snprintf(text, sizeof text, "%s: a 608-byte block is served by hole %d", name, expected_608);
    /* Under worst fit the 2048-byte hole was split: its rest (1840) is still the largest. */
    at(&l, p, policy == MYMALLOC_FIT_WORST ? l.hole[4] + 208 : l.hole[expected_608], text);
    p = take(&l, request_for(4096));
    snprintf(text, sizeof text, "%s: a 4096-byte block, bigger than every hole, comes from the top", name);
    at(&l, p, l.top, text);
    release(&l);
    ok(mymalloc_check() == 0, "%s: mymalloc_check() == 0 after the scenario", name);
    mallopt(M_MYMALLOC_FIT, MYMALLOC_FIT_BEST);
}

static void next_fit(void)
{
    struct layout l;
    if (!ok(build(&l, row, ROW), "next: the holes are laid out as planned")) {
        skip(12, "layout");
        release(&l);
        return;
    }
    char **h = l.hole;
    mallopt(M_MYMALLOC_FIT, MYMALLOC_FIT_NEXT);   /* the rover starts at the lowest address */
    at(&l, take(&l, 200), h[0], "next: the first search starts at the lowest address: hole 0");
    char *second = take(&l, 200);
    at(&l, second, h[0] + 208, "next: the following one goes on in the rest of hole 0 (304 bytes left)");
    /* The rover now points into the 96 bytes left of hole 0.  Freeing the
     * block before them merges the two: the rover is inside the merged block,
     * and the search must start there, not skip to hole 1. */
    free(second);
    l.owned_count--;                               /* `second` was the last one taken */
    at(&l, take(&l, request_for(256)), h[0] + 208,
       "next: the rover's block merged with the block before it: the search starts at the merged block");
    at(&l, take(&l, 200), h[1], "next: then on past the 48 bytes left, to hole 1");
    at(&l, take(&l, request_for(1504)), h[4], "next: a 1504-byte block: hole 4, the first that fits after the rover");
    at(&l, take(&l, request_for(304)), h[4] + 1504,
       "next: a 304-byte block from the rest of hole 4 (first fit would take hole 2, lower)");
    at(&l, take(&l, request_for(1024)), h[2],
       "next: a 1024-byte block: nothing fits after the rover, the search wraps around to hole 2");
    at(&l, take(&l, request_for(240)), h[3], "next: hole 2 was taken whole: the search goes on at hole 3");
    at(&l, take(&l, request_for(4096)), l.top, "next: a block no hole holds comes from the top");
    at(&l, take(&l, request_for(48)), h[3] + 240,
       "next: the top's block left the rover where it was: the rest of hole 3, not the lower rest of hole 0");
    mallopt(M_MYMALLOC_FIT, MYMALLOC_FIT_NEXT);
    at(&l, take(&l, request_for(48)), h[0] + 464, "next: setting next again puts the rover back at the lowest address");
    release(&l);
    ok(mymalloc_check() == 0, "next: mymalloc_check() == 0 after the scenario");
    mallopt(M_MYMALLOC_FIT, MYMALLOC_FIT_BEST);
}

static void worst_ties(void)
{
    static const size_t sizes[] = { 1024, 2048, 512, 2048 };
    struct layout l;
    if (!ok(build(&l, sizes, 4), "worst, ties: the holes are laid out as planned")) {
        skip(4, "layout");
        release(&l);
        return;
    }
    mallopt(M_MYMALLOC_FIT, MYMALLOC_FIT_WORST);
    at(&l, take(&l, 200), l.hole[1], "worst: of two largest holes, the one at the lower address");
    at(&l, take(&l, 200), l.hole[3], "worst: then the other 2048-byte hole (hole 1 has 1840 left)");
    at(&l, take(&l, 200), l.hole[1] + 208, "worst: two rests of 1840 bytes: the lower one");
    release(&l);
    ok(mymalloc_check() == 0, "worst, ties: mymalloc_check() == 0");
    mallopt(M_MYMALLOC_FIT, MYMALLOC_FIT_BEST);
}

/* A free block's links overwritten (a write after free) under first fit,
 * with MYMALLOC_ABORT=0: the block is reported and kept out of use, the
 * bins and the index are rebuilt, and the next hole serves the request.
 * Run in a child (fork, no exec): its stderr comes back through a pipe. */
static void corrupted_hole(void)
{
    int err[2];
    if (pipe(err) != 0) {
        skip(3, "pipe");
        return;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(err[1], STDERR_FILENO);
        close(err[0]);
        close(err[1]);
        struct layout l;
        int code = 0;
        mallopt(M_MYMALLOC_ABORT, 0);
        if (!build(&l, row, ROW))
            _exit(10);
        mallopt(M_MYMALLOC_FIT, MYMALLOC_FIT_FIRST);
        memset(l.hole[0], 0x41, 16);      /* the links of a free block */
        char *p = fresh(200);
        if (p != l.hole[1])
            code |= 1;
        if (mymalloc_check() != 0)
            code |= 2;
        if (fresh(200) != l.hole[2])         /* hole 0 stays out of use (hole 1 has 48 left) */
            code |= 4;
        _exit(code);
    }
    close(err[1]);
    char text[512];
    read_all(err[0], text, sizeof text);
    close(err[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    const char *expected = "mymalloc: malloc(): corrupted free block 0x";
    ok(strncmp(text, expected, strlen(expected)) == 0 && strstr(text, "(written after free?, block of 512 bytes)\n"),
       "first: a hole with overwritten links is reported: %.*s", (int)strcspn(text, "\n"), text);
    ok(WIFEXITED(status) && (WEXITSTATUS(status) & 5) == 0 && WEXITSTATUS(status) != 10,
       "first: it is kept out of use; the next hole serves the request (child status 0x%x)", status);
    ok(WIFEXITED(status) && (WEXITSTATUS(status) & 2) == 0, "first: mymalloc_check() == 0 after the rebuild");
}

/* No memory for the index (its mappings refused by RLIMIT_AS): the index is
 * dropped, best fit serves, the heap stays sound; setting the policy again,
 * with memory, brings first fit back.  In a child: exit status bits. */
static int index_without_memory(void)
{
    struct layout l;
    struct rlimit old, tight;
    long pages = 0;
    int code = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return 64;
    malloc_free(900 * KIB);                      /* room in the top: no growth below */
    mallopt(M_MYMALLOC_FIT, MYMALLOC_FIT_FIRST);
    if (fscanf(f, "%ld", &pages) != 1 || getrlimit(RLIMIT_AS, &old) != 0)
        return 64;
    fclose(f);
    tight = old;
    tight.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + 16 * KIB;
    if (setrlimit(RLIMIT_AS, &tight) != 0)
        return 64;
    /* 1500 free blocks need more nodes than one 64 KiB mapping holds. */
    static char *blocks[3000];
    for (int i = 0; i < 3000; i++)
        escape(blocks[i] = malloc(40));
    for (int i = 0; i < 3000; i += 2)
        free(blocks[i]);
    if (mymalloc_check() != 0)
        code |= 1;
    if (!build(&l, row, ROW))
        return code | 32;
    if (fresh(200) != l.hole[1])                /* best fit: the smallest hole */
        code |= 2;
    release(&l);
    if (setrlimit(RLIMIT_AS, &old) != 0)
        return code | 64;
    mallopt(M_MYMALLOC_FIT, MYMALLOC_FIT_FIRST);  /* the index is built again */
    if (!build(&l, row, ROW))
        return code | 32;
    if (fresh(200) != l.hole[0])                /* first fit: the lowest hole */
        code |= 4;
    if (mymalloc_check() != 0)
        code |= 8;
    return code;
}

static void no_memory_for_index(void)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0)
        _exit(index_without_memory());
    int status = 0;
    waitpid(pid, &status, 0);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 255;
    if (code & 96) {
        diag("child status 0x%x", status);
        skip(3, "could not set up the child (layout, /proc or rlimit)");
        return;
    }
    ok((code & 1) == 0, "no memory for the index: the heap stays sound (mymalloc_check() == 0)");
    ok((code & 2) == 0, "no memory for the index: best fit serves instead");
    ok((code & 12) == 0, "first fit set again, with memory: the index is rebuilt, first fit serves, heap sound");
}

/* ---- random stress ---- */

struct rng { uint64_t s; };
static uint64_t rnd(struct rng *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return r->s;
}

#define SLOTS 1500
struct slot { unsigned char *p; size_t n; unsigned char seed; };

static void fill(struct slot *s)
{
    for (size_t i = 0; i < s->n; i++)
        s->p[i] = (unsigned char)(s->seed + i * 7);
}

static int intact(const struct slot *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s->p[i] != (unsigned char)(s->seed + i * 7))
            return 0;
    return 1;
}

static size_t random_size(struct rng *r)
{
    switch (rnd(r) % 16) {
    case 0: return rnd(r) % 64 * KIB + 1;          /* some big blocks */
    case 1: case 2: return rnd(r) % 4096 + 1;
    default: return rnd(r) % 512 + 1;              /* mostly small */
    }
}

/* `ops` random operations; policy < 0: a new policy every 1000 operations
 * (and check level 2 for a while).  Returns the number of faults found. */
static int stress(int policy, unsigned ops, uint64_t seed, int *check_failures)
{
    static struct slot slots[SLOTS];
    struct rng r = { seed };
    int bad = 0;
    *check_failures = 0;
    if (policy >= 0)
        mallopt(M_MYMALLOC_FIT, policy);
    for (unsigned op = 0; op < ops; op++) {
        if (policy < 0 && op % 1000 == 0) {
            mallopt(M_MYMALLOC_FIT, (int)(op / 1000 % 4));
            mallopt(M_MYMALLOC_CHECK, op / 1000 % 8 >= 4 && op / 1000 % 8 < 6 ? 2 : 1);
        }
        struct slot *s = &slots[rnd(&r) % SLOTS];
        unsigned kind = (unsigned)(rnd(&r) % 10);
        if (s->p != NULL && kind < 4) {
            bad += !intact(s, s->n);
            free(s->p);
            s->p = NULL;
        } else if (s->p != NULL && kind < 6) {
            size_t n = random_size(&r);
            unsigned char *q = realloc(s->p, n);
            if (q == NULL) {
                bad++;
                continue;
            }
            s->p = q;
            bad += !intact(s, n < s->n ? n : s->n);
            s->n = n;
            fill(s);
        } else if (s->p == NULL) {
            size_t n = random_size(&r);
            s->seed = (unsigned char)rnd(&r);
            s->n = n;
            if (kind == 7) {
                s->p = calloc(1, n);
                for (size_t i = 0; s->p != NULL && i < n; i++)
                    bad += s->p[i] != 0;
            } else if (kind == 8) {
                size_t align = (size_t)32 << (rnd(&r) % 8);
                s->p = memalign(align, n);
                bad += s->p != NULL && (uintptr_t)s->p % align != 0;
            } else {
                s->p = malloc(n);
            }
            if (s->p == NULL) {
                bad++;
                continue;
            }
            fill(s);
        }
        if (op % 2500 == 0)
            *check_failures += mymalloc_check() != 0;
    }
    *check_failures += mymalloc_check() != 0;
    for (size_t i = 0; i < SLOTS; i++) {
        if (slots[i].p != NULL) {
            bad += !intact(&slots[i], slots[i].n);
            free(slots[i].p);
            slots[i].p = NULL;
        }
    }
    *check_failures += mymalloc_check() != 0;
    mallopt(M_MYMALLOC_CHECK, 1);
    mallopt(M_MYMALLOC_FIT, MYMALLOC_FIT_BEST);
    return bad;
}

/* ---- the environment: a probe run with MYMALLOC_FIT set ("": unset) ---- */

/* Which policy serves: a 1504-byte block (only hole 4 holds it), then 208
 * bytes: best takes hole 1, first hole 0, next the rest of hole 4, worst
 * hole 2 (the largest left). */
static int probe(void)
{
    malloc_free(100);
    size_t cached = stats().cached_bytes;
    setup();                          /* caches off from here on; the policy is left alone */
    struct layout l;
    const char *policy = "?";
    if (build(&l, row, ROW)) {
        char *big = take(&l, request_for(1504));
        char *small = take(&l, 200);
        if (big == l.hole[4])
            policy = small == l.hole[1] ? "best" : small == l.hole[0] ? "first"
                   : small == l.hole[4] + 1504 ? "next" : small == l.hole[2] ? "worst" : "?";
        release(&l);
    } else {
        policy = "layout";
    }
    printf("policy=%s cached=%d check=%d\n", policy, cached > 0, mymalloc_check());
    return 0;
}

struct report {
    int ran;
    char policy[16];
    int cached, check;
    char err[512];
};

static struct report run_probe(const char *var)
{
    struct report r;
    char text[256];
    const char *const vars[] = { var[0] != '\0' ? var : NULL, NULL };
    memset(&r, 0, sizeof r);
    int status = run_self("fit", PROBE_ARG, vars, text, sizeof text, r.err, sizeof r.err);
    if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        r.ran = sscanf(text, "policy=%15s cached=%d check=%d", r.policy, &r.cached, &r.check) == 3;
    if (!r.ran)
        diag("probe status 0x%x, stdout \"%s\", stderr \"%s\"", status, text, r.err);
    return r;
}

static void env_policy(const char *var, int policy, const char *message)
{
    const char *expected = policy_names[policy];
    struct report r = run_probe(var);
    char label[64];
    snprintf(label, sizeof label, "%s", var[0] != '\0' ? var : "MYMALLOC_FIT unset");
    ok(r.ran && strcmp(r.policy, expected) == 0 && r.check == 0, "%s: %s serves (got %s)", label, expected,
       r.policy);
    ok(r.cached == (policy == MYMALLOC_FIT_BEST), "%s: the per-thread caches are %s", label,
       policy == MYMALLOC_FIT_BEST ? "on" : "off");
    if (message == NULL) {
        ok(r.err[0] == '\0', "%s: nothing on stderr", label);
    } else {
        ok(strcmp(r.err, message) == 0, "%s: one line on stderr: %.*s", label, (int)strcspn(message, "\n"), message);
        if (strcmp(r.err, message) != 0)
            diag("got \"%s\"", r.err);
    }
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], PROBE_ARG) == 0)
        return probe();
    plan(79);

    /* mallopt's values, and the caches following the policy. */
    ok(mallopt(M_MYMALLOC_FIT, -1) == 0 && mallopt(M_MYMALLOC_FIT, 4) == 0,
       "mallopt(M_MYMALLOC_FIT, -1 or 4) is refused");
    malloc_free(100);
    ok(stats().cached_bytes > 0, "best fit: the per-thread cache holds blocks");
    ok(mallopt(M_MYMALLOC_FIT, MYMALLOC_FIT_FIRST) == 1 && stats().cached_bytes == 0,
       "mallopt(M_MYMALLOC_FIT, first): this thread's cache is given back");
    malloc_free(100);
    ok(stats().cached_bytes == 0, "first fit: nothing is cached");
    ok(mallopt(M_MYMALLOC_FIT, MYMALLOC_FIT_BEST) == 1, "mallopt(M_MYMALLOC_FIT, best) accepted");
    malloc_free(100);
    ok(stats().cached_bytes > 0, "best fit again: caching is back");

    setup();
    /* best: the smallest that fits; first: the lowest; worst: the largest.
     * A 608-byte block: best and first take hole 2 (1024), worst the rest of hole 4. */
    one_policy(MYMALLOC_FIT_BEST, 1, 2);
    one_policy(MYMALLOC_FIT_FIRST, 0, 2);
    one_policy(MYMALLOC_FIT_WORST, 4, 4);
    next_fit();
    worst_ties();
    corrupted_hole();
    no_memory_for_index();

    /* Random stress per policy, then one that switches as it goes. */
    for (int policy = 0; policy < 4; policy++) {
        int checks;
        int bad = stress(policy, 40000, 0x9e3779b97f4a7c15ULL + (uint64_t)policy, &checks);
        ok(bad == 0, "%s: 40000 random operations, every byte as written (%d faults)", policy_names[policy], bad);
        ok(checks == 0, "%s: mymalloc_check() == 0 throughout", policy_names[policy]);
    }
    int checks;
    int bad = stress(-1, 40000, 12345, &checks);
    ok(bad == 0, "policies switched every 1000 operations (check level 2 for some): every byte as written (%d faults)",
       bad);
    ok(checks == 0, "policies switched at run time: mymalloc_check() == 0 throughout");

    /* The environment. */
    env_policy("", MYMALLOC_FIT_BEST, NULL);
    env_policy("MYMALLOC_FIT=best", MYMALLOC_FIT_BEST, NULL);
    env_policy("MYMALLOC_FIT=first", MYMALLOC_FIT_FIRST, NULL);
    env_policy("MYMALLOC_FIT=next", MYMALLOC_FIT_NEXT, NULL);
    env_policy("MYMALLOC_FIT=worst", MYMALLOC_FIT_WORST, NULL);
    env_policy("MYMALLOC_FIT=random", MYMALLOC_FIT_BEST,
               "mymalloc: ignoring MYMALLOC_FIT=random: not a valid policy (best, first, next or worst)\n");
    env_policy("MYMALLOC_FIT=", MYMALLOC_FIT_BEST,
               "mymalloc: ignoring MYMALLOC_FIT=: not a valid policy (best, first, next or worst)\n");
    return done();
}
