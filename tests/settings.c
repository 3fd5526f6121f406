/* settings.c - the MYMALLOC_* and glibc MALLOC_*_ environment variables.
 * The test runs itself again (/proc/self/exe --probe) with chosen
 * environments; the probe reports on stdout what the allocator did, and any
 * message the library printed arrives through a pipe on stderr. */
#include "util.h"
#include "run_self.h"

#define PROBE_ARG "--probe"
#define TRIM_BLOCKS 256                  /* 256 * 4000 bytes: about 1 MiB */


/* ---- the child: measure, then print one line ---- */

static int is_mapped(size_t n, void **out)
{
    size_t before = mallinfo2().hblks;
    *out = malloc(n);
    if (*out != NULL)
        memset(*out, 1, n);
    return *out != NULL && mallinfo2().hblks == before + 1;
}

static int probe(void)
{
    static char *blocks[TRIM_BLOCKS];
    void *first = malloc(100);           /* the first call reads the environment */
    size_t arena_first = mallinfo2().arena;
    void *a, *b, *c;
    int map70k = is_mapped(70000, &a);
    int map200k = is_mapped(200000, &b);
    int map1m = is_mapped(MIB, &c);
    int all = first != NULL && a != NULL && b != NULL && c != NULL;

    /* Does freeing a megabyte at the top of the brk heap lower the break? */
    char *start = sbrk(0);
    for (int i = 0; i < TRIM_BLOCKS; i++) {
        blocks[i] = malloc(4000);
        if (blocks[i] == NULL)
            all = 0;
    }
    char *high = sbrk(0);
    for (int i = TRIM_BLOCKS; i-- > 0;)
        free(blocks[i]);
    char *after = sbrk(0);
    /* Freed last: freeing a mapped block raises the default thresholds. */
    free(c);
    free(b);
    free(a);

    printf("all=%d arena_first=%zu map70k=%d map200k=%d map1m=%d grew=%d trimmed=%d check=%d\n", all,
           arena_first, map70k, map200k, map1m, high >= start + 512 * KIB, after < high, mymalloc_check());
    free(first);
    return 0;
}

/* ---- the parent ---- */

struct report {
    int ran;                 /* exited 0 and printed a parsable line */
    int status;
    char err[512];           /* everything the child wrote on stderr */
    int all, map70k, map200k, map1m, grew, trimmed, check;
    size_t arena_first;
};

/* Run the probe with the current environment minus every MYMALLOC_* and
 * MALLOC_* variable, plus `vars` (NULL-terminated, in that order). */
static struct report run_probe(const char *const *vars)
{
    struct report r;
    char text[512];
    memset(&r, 0, sizeof r);
    r.status = run_self("settings", PROBE_ARG, vars, text, sizeof text, r.err, sizeof r.err);
    if (r.status == -1)
        return r;
    r.ran = WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0 &&
            sscanf(text, "all=%d arena_first=%zu map70k=%d map200k=%d map1m=%d grew=%d trimmed=%d check=%d",
                   &r.all, &r.arena_first, &r.map70k, &r.map200k, &r.map1m, &r.grew, &r.trimmed,
                   &r.check) == 8 &&
            r.all == 1 && r.check == 0;
    if (!r.ran)
        diag("probe status 0x%x, stdout \"%s\", stderr \"%s\"", r.status, text, r.err);
    return r;
}

#define ENV(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* Runs ok on a clean run with an empty stderr; returns the report. */
static struct report clean_run(const char *what, const char *const *vars)
{
    struct report r = run_probe(vars);
    ok(r.ran && r.err[0] == '\0', "%s: probe ran cleanly, nothing on stderr%s%s", what,
       r.err[0] ? " - got: " : "", r.err);
    return r;
}

static void bad_value(const char *entry)
{
    char expected[200];
    snprintf(expected, sizeof expected, "mymalloc: ignoring %s: not a valid size\n", entry);
    struct report r = run_probe(ENV(entry));
    ok(r.ran, "%s: probe ran cleanly", entry);
    ok(strcmp(r.err, expected) == 0, "%s: exactly one line on stderr: %.*s", entry,
       (int)strcspn(expected, "\n"), expected);
    if (strcmp(r.err, expected) != 0)
        diag("got \"%s\"", r.err);
    ok(r.map70k == 0 && r.map200k == 1, "%s: the default threshold stays (70000 heap, 200000 mapped)", entry);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], PROBE_ARG) == 0)
        return probe();

    plan(36);
    struct report r;

    r = clean_run("defaults", ENV(NULL));
    ok(r.map70k == 0, "defaults: malloc(70000) is a heap block");
    ok(r.map200k == 1 && r.map1m == 1, "defaults: malloc(200000) and malloc(1 MiB) are mapped");
    ok(r.arena_first >= 128 * KIB, "defaults: the first growth includes the 128 KiB top pad (arena %zu)",
       r.arena_first);
#ifdef MM_DISABLE_SBRK
    skip(1, "this build never uses brk (--disable-sbrk)");
#else
    ok(r.grew && r.trimmed, "defaults: freeing 1 MiB at the top of the heap lowers the break");
#endif

    r = clean_run("MYMALLOC_MMAP_THRESHOLD=65536", ENV("MYMALLOC_MMAP_THRESHOLD=65536"));
    ok(r.map70k == 1, "MYMALLOC_MMAP_THRESHOLD=65536: malloc(70000) is mapped");
    r = clean_run("MALLOC_MMAP_THRESHOLD_=65536", ENV("MALLOC_MMAP_THRESHOLD_=65536"));
    ok(r.map70k == 1, "MALLOC_MMAP_THRESHOLD_=65536: malloc(70000) is mapped");

    /* MYMALLOC_ wins over glibc's name, whichever comes first in environ. */
    r = clean_run("both, glibc's first", ENV("MALLOC_MMAP_THRESHOLD_=65536", "MYMALLOC_MMAP_THRESHOLD=131072"));
    ok(r.map70k == 0 && r.map200k == 1, "both set, glibc's first: MYMALLOC_MMAP_THRESHOLD=131072 wins");
    r = clean_run("both, ours first", ENV("MYMALLOC_MMAP_THRESHOLD=131072", "MALLOC_MMAP_THRESHOLD_=65536"));
    ok(r.map70k == 0 && r.map200k == 1, "both set, ours first: MYMALLOC_MMAP_THRESHOLD=131072 wins");
    r = clean_run("both, raised by glibc's", ENV("MYMALLOC_MMAP_THRESHOLD=65536", "MALLOC_MMAP_THRESHOLD_=1048576"));
    ok(r.map70k == 1 && r.map200k == 1, "both set: MYMALLOC_MMAP_THRESHOLD=65536 wins over 1048576");

    /* Suffixes and hex. */
    r = clean_run("MYMALLOC_MMAP_THRESHOLD=64k", ENV("MYMALLOC_MMAP_THRESHOLD=64k"));
    ok(r.map70k == 1, "MYMALLOC_MMAP_THRESHOLD=64k: malloc(70000) is mapped");
    r = clean_run("MYMALLOC_MMAP_THRESHOLD=0x10000", ENV("MYMALLOC_MMAP_THRESHOLD=0x10000"));
    ok(r.map70k == 1, "MYMALLOC_MMAP_THRESHOLD=0x10000: malloc(70000) is mapped");
    r = clean_run("MYMALLOC_MMAP_THRESHOLD=1M", ENV("MYMALLOC_MMAP_THRESHOLD=1M"));
    ok(r.map200k == 0 && r.map1m == 1, "MYMALLOC_MMAP_THRESHOLD=1M: 200000 heap, 1 MiB mapped");

    /* Top pad and trim threshold, seen on the break. */
#ifdef MM_DISABLE_SBRK
    skip(6, "this build never uses brk (--disable-sbrk): segments are at least 1 MiB");
#else
    r = clean_run("MYMALLOC_TOP_PAD=0", ENV("MYMALLOC_TOP_PAD=0"));
    ok(r.ran && r.arena_first < 64 * KIB, "MYMALLOC_TOP_PAD=0: the first growth is small (arena %zu)",
       r.arena_first);
    r = clean_run("MALLOC_TOP_PAD_=0", ENV("MALLOC_TOP_PAD_=0"));
    ok(r.ran && r.arena_first < 64 * KIB, "MALLOC_TOP_PAD_=0: the first growth is small (arena %zu)",
       r.arena_first);
    r = clean_run("MYMALLOC_TRIM_THRESHOLD=-1", ENV("MYMALLOC_TRIM_THRESHOLD=-1"));
    ok(r.ran && r.grew && !r.trimmed, "MYMALLOC_TRIM_THRESHOLD=-1: freeing 1 MiB at the top leaves the break");
#endif

    /* Bad values: one line, ignored. */
    bad_value("MYMALLOC_MMAP_THRESHOLD=banana");
    bad_value("MYMALLOC_MMAP_THRESHOLD=64M");

    /* No mapped blocks at all. */
    r = clean_run("MYMALLOC_MMAP_MAX=0", ENV("MYMALLOC_MMAP_MAX=0"));
    ok(r.ran && r.map1m == 0 && r.map200k == 0, "MYMALLOC_MMAP_MAX=0: malloc(1 MiB) is a heap block");

    skip(1, "set-uid programs ignore the environment: needs a set-uid binary and a second user");
    return done();
}
