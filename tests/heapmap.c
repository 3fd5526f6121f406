/* heapmap.c - mymalloc_heapmap() and MYMALLOC_HEAPMAP.  A known heap (blocks
 * with every other one freed, blocks in the thread's cache, two mapped
 * blocks) is drawn, and what tests/heapmap.py reads back from the SVG
 * (xml.etree) must match the allocator's own figures: one rectangle per free
 * block, widths to scale, the legend, the fragmentation.  Then: the error
 * cases, drawing while threads allocate, a heap too big to draw at full
 * scale, hundreds of mapped blocks, an empty heap, a heap of more than 64
 * regions, the map written at exit (exit(), return from main, forked
 * children, "%p", bad paths), and the PNG rsvg-convert renders from the SVG
 * (skipped when rsvg-convert is missing).  Then several arenas: threads with
 * known blocks in arenas of their own, a section each, the figures summed
 * over them; 80 arenas; two thread arenas with many regions. */
#include "util.h"
#include <sys/stat.h>

extern char **environ;

/* Geometry heapmap.c promises: 1024 pixels a row, at most 128 rows. */
#define COLUMNS 1024
#define ROWS 128

static char dir[1024];
static char script[PATH_MAX];
static const char *python;
static char output[1 << 17];          /* stdout of the last command run */
static char errors[8192];             /* its stderr */

/* ---- running commands ---- */

/* Run argv (execve of `file`, or a PATH search when env is NULL); its stdout
 * lands in output[], its stderr in errors[].  Returns the wait status, or -1. */
static int run(const char *file, char *const argv[], char *const env[])
{
    return run_command(file, argv, env, output, sizeof output, errors, sizeof errors);
}

static int exited_0(int status) { return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0; }

/* heapmap.py MODE FILE [ARGS]: 1 when it could read the file. */
static int inspect(const char *mode, const char *file, const char *const *more)
{
    char *argv[16] = { (char *)python, script, (char *)mode, (char *)file };
    int n = 4;
    while (more != NULL && *more != NULL && n < 15)
        argv[n++] = (char *)*more++;
    argv[n] = NULL;
    int status = run(python, argv, NULL);
    if (!exited_0(status)) {
        diag("heapmap.py %s %s failed (status %d): %s%s", mode, file, status, output, errors);
        return 0;
    }
    return 1;
}

/* The value of KEY=VALUE in output[] (NULL when missing), up to the line's
 * end; the last 8 values stay valid. */
static const char *text_of(const char *key)
{
    static char values[8][512];
    static unsigned next;
    char *value = values[next++ % 8];
    size_t len = strlen(key);
    for (const char *line = output; *line != '\0';) {
        const char *end = strchr(line, '\n');
        if (end == NULL)
            end = line + strlen(line);
        if ((size_t)(end - line) > len && strncmp(line, key, len) == 0 && line[len] == '=') {
            size_t n = (size_t)(end - line) - len - 1;
            if (n >= sizeof values[0])
                n = sizeof values[0] - 1;
            memcpy(value, line + len + 1, n);
            value[n] = '\0';
            return value;
        }
        line = *end != '\0' ? end + 1 : end;
    }
    return NULL;
}

static long long number_of(const char *key)
{
    const char *v = text_of(key);
    return v != NULL ? strtoll(v, NULL, 10) : -1;
}

static long long sum_of(const char *const *keys)
{
    long long total = 0;
    for (; *keys != NULL; keys++)
        total += number_of(*keys);
    return total;
}

static void in_dir(char *path, const char *name)
{
    snprintf(path, PATH_MAX, "%s/%s", dir, name);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- the known heap ---- */

#define ROW_BLOCKS 40
static void *row[ROW_BLOCKS];
static void *small[10];
static void *mapped[2];

static void build_known_heap(void)
{
    for (int i = 0; i < ROW_BLOCKS; i++)
        row[i] = malloc(9000);      /* above the caches' sizes (8 KiB): freed into the heap */
    for (int i = 1; i < ROW_BLOCKS - 1; i += 2) {
        free(row[i]);
        row[i] = NULL;
    }
    for (int i = 0; i < 10; i++)
        small[i] = malloc(100);
    for (int i = 0; i < 10; i += 2) {
        free(small[i]);            /* into this thread's cache */
        small[i] = NULL;
    }
    mapped[0] = malloc(200000);
    mapped[1] = malloc(300000);
}

static int same_stats(const struct mymalloc_stats *a, const struct mymalloc_stats *b)
{
    return a->heap_bytes == b->heap_bytes && a->inuse_bytes == b->inuse_bytes && a->free_bytes == b->free_bytes &&
           a->free_blocks == b->free_blocks && a->top_bytes == b->top_bytes && a->cached_bytes == b->cached_bytes &&
           a->mapped_blocks == b->mapped_blocks && a->mapped_bytes == b->mapped_bytes;
}

static const char *const used_rects[] = { "rects.u", "rects.v", "rects.c", "rects.d", NULL };
static const char *const used_pixels[] = { "pixels.u", "pixels.v", "pixels.c", "pixels.d", NULL };
static const char *const cached_rects[] = { "rects.c", "rects.d", NULL };
static const char *const mapped_rects[] = { "rects.m", "rects.n", NULL };
static const char *const mapped_pixels[] = { "pixels.m", "pixels.n", NULL };
static const char *const mixed_pixels[] = { "pixels.x", "pixels.y", NULL };

static long long svg_width, svg_height;

static void known_heap(const char *svg)
{
    struct mymalloc_stats before, after;
    build_known_heap();
    mymalloc_stats_get(&before);
    errno = 4321;
    int r = mymalloc_heapmap(svg);
    int saved = errno;
    mymalloc_stats_get(&after);
    ok(r == 0 && saved == 4321, "mymalloc_heapmap(path) returns 0 and leaves errno alone (%d, errno %d)", r, saved);
    ok(same_stats(&before, &after) && mymalloc_check() == 0,
       "drawing the heap leaves it as it was (same figures before and after, mymalloc_check() == 0)");

    if (!inspect("svg", svg, NULL)) {
        ok(0, "the SVG is well-formed XML with an <svg> root");
        skip(7, "the SVG could not be read");
        return;
    }
    svg_width = number_of("width");
    svg_height = number_of("height");
    ok(svg_width > COLUMNS && svg_height > 0 && number_of("rects_outside") == 0,
       "the SVG is well-formed XML with an <svg> root (%lld x %lld), every rectangle inside the map", svg_width,
       svg_height);

    long long scale = number_of("desc.scale");
    ok((size_t)number_of("desc.free_blocks") == after.free_blocks &&
       (size_t)number_of("desc.free_bytes") == after.free_bytes &&
       (size_t)number_of("desc.top_bytes") == after.top_bytes &&
       (size_t)number_of("desc.heap_bytes") == after.heap_bytes &&
       (size_t)number_of("desc.inuse_bytes") == after.inuse_bytes &&
       (size_t)number_of("desc.cached_bytes") == after.cached_bytes &&
       (size_t)number_of("desc.mapped_blocks") == after.mapped_blocks &&
       (size_t)number_of("desc.mapped_bytes") == after.mapped_bytes && number_of("desc.damaged_regions") == 0,
       "its figures are mymalloc_stats_get()'s: %lld free blocks of %zu, %lld free bytes, top %lld, %lld mapped",
       number_of("desc.free_blocks"), after.free_blocks, number_of("desc.free_bytes"), number_of("desc.top_bytes"),
       number_of("desc.mapped_blocks"));

    /* At 16 bytes a pixel every block covers whole pixels: one rectangle each. */
    long long free_blocks = number_of("desc.free_blocks");
    ok(scale == 16 && free_blocks >= ROW_BLOCKS / 2 - 1 && number_of("rects.f") == free_blocks &&
       number_of("pixels.f") * scale == number_of("desc.free_bytes") &&
       number_of("pixels.t") * scale == number_of("desc.top_bytes") && number_of("rects.t") == 1,
       "one free rectangle per free block (%lld of %lld, at %lld bytes a pixel), free and top widths to scale",
       number_of("rects.f"), free_blocks, scale);
    ok(sum_of(used_rects) == number_of("desc.inuse_blocks") &&
       sum_of(cached_rects) == number_of("desc.cached_blocks") && number_of("desc.cached_blocks") >= 5 &&
       sum_of(used_pixels) * scale == number_of("desc.inuse_bytes") && sum_of(mixed_pixels) == 0,
       "one rectangle per block in use (%lld of %lld), cached ones told apart (%lld of %lld), widths to scale",
       sum_of(used_rects), number_of("desc.inuse_blocks"), sum_of(cached_rects), number_of("desc.cached_blocks"));
    ok(sum_of(mapped_rects) == 2 && sum_of(mapped_pixels) * scale == number_of("desc.mapped_bytes"),
       "the two mapped blocks drawn, to scale (%lld rectangles)", sum_of(mapped_rects));

    const char *classes = text_of("legend_classes"), *labels = text_of("legend_labels");
    const char *section0 = text_of("section.0");
    char last_key[32];
    snprintf(last_key, sizeof last_key, "section.%lld", number_of("sections") - 1);
    const char *last = text_of(last_key);
    int legend = classes != NULL && strcmp(classes, "u,c,f,t,m,x,y") == 0 && labels != NULL &&
                 strstr(labels, "in use|") != NULL && strstr(labels, "|free|top|mapped|") != NULL;
    int titles = section0 != NULL &&
                 (strncmp(section0, "brk heap 0x", 11) == 0 || strncmp(section0, "mmap segment 0x", 15) == 0) &&
                 last != NULL &&
                 strncmp(last, "2 mapped blocks, back to back in address order, 0x", 50) == 0;
    ok(legend && titles, "legend (%s) and section titles present", classes != NULL ? classes : "none");

    long long fb = number_of("desc.free_bytes"), largest = number_of("desc.largest_free");
    long long thousandths = fb > 0 ? ((fb - largest) * 1000 + fb / 2) / fb : 0;
    char expected[48];
    snprintf(expected, sizeof expected, "%lld.%03lld", thousandths / 1000, thousandths % 1000);
    const char *fragmentation = text_of("fragmentation");
    ok(fragmentation != NULL && strcmp(fragmentation, expected) == 0 && largest >= 2016,
       "fragmentation = 1 - largest free / free bytes in bins: %s (expected %s)",
       fragmentation != NULL ? fragmentation : "missing", expected);
}

static void release_known_heap(void)
{
    for (int i = 0; i < ROW_BLOCKS; i++)
        free(row[i]);
    for (int i = 0; i < 10; i++)
        free(small[i]);
    free(mapped[0]);
    free(mapped[1]);
}

/* ---- errors ---- */

static void error_cases(void)
{
    char path[PATH_MAX];
    errno = 0;
    int r = mymalloc_heapmap(NULL);
    ok(r == -1 && errno == EINVAL, "mymalloc_heapmap(NULL): -1, EINVAL (errno %d)", errno);
    in_dir(path, "no/such/dir.svg");
    errno = 0;
    r = mymalloc_heapmap(path);
    ok(r == -1 && errno == ENOENT, "a path in a missing directory: -1, ENOENT (errno %d)", errno);
    errno = 0;
    r = mymalloc_heapmap(dir);
    ok(r == -1 && errno == EISDIR, "a directory: -1, EISDIR (errno %d)", errno);
    if (access("/dev/full", W_OK) == 0) {
        errno = 0;
        r = mymalloc_heapmap("/dev/full");
        ok(r == -1 && errno == ENOSPC, "/dev/full: the failed write(2) is reported, -1, ENOSPC (errno %d)", errno);
    } else {
        skip(1, "no writable /dev/full");
    }
    ok(mymalloc_check() == 0, "the heap is sound after the failures");
}

/* ---- drawing while other threads allocate ---- */

static volatile int stop_churn;

static void *churn(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    void *slots[64] = { 0 };
    for (unsigned long i = 0; !stop_churn || i < 20000; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned k = (seed >> 8) % 64;
        free(slots[k]);
        size_t n = (seed >> 16) % 100 == 0 ? 150000 : 16 + (seed >> 12) % 3000;
        slots[k] = malloc(n);
        if (slots[k] != NULL)
            memset(slots[k], (int)k, n < 64 ? n : 64);
        if (i > 2000000)
            break;
    }
    for (int k = 0; k < 64; k++)
        free(slots[k]);
    return NULL;
}

static void concurrent(void)
{
    pthread_t threads[2];
    int started = 0, drawn = 0, good = 0;
    char path[PATH_MAX];
    stop_churn = 0;
    for (int i = 0; i < 2; i++)
        started += pthread_create(&threads[i], NULL, churn, (void *)(uintptr_t)(i + 7)) == 0;
    for (int i = 0; i < 4; i++) {
        char name[32];
        snprintf(name, sizeof name, "busy-%d.svg", i);
        in_dir(path, name);
        drawn += mymalloc_heapmap(path) == 0;
    }
    stop_churn = 1;
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    for (int i = 0; i < 4; i++) {
        char name[32];
        snprintf(name, sizeof name, "busy-%d.svg", i);
        in_dir(path, name);
        good += inspect("svg", path, NULL) && number_of("rects_outside") == 0;
    }
    ok(started == 2 && drawn == 4 && good == 4 && mymalloc_check() == 0,
       "4 maps drawn while 2 threads allocate and free: all well-formed (%d, %d), heap sound", drawn, good);
}

/* ---- a heap too big for 16 bytes a pixel ---- */

#define MANY 400000
static void *many[MANY];

static void big_heap(void)
{
    char path[PATH_MAX];
    struct stat st;
    in_dir(path, "big.svg");
    for (int i = 0; i < MANY; i++)
        many[i] = malloc(48);
    for (int i = 0; i < MANY; i += 2) {
        free(many[i]);
        many[i] = NULL;
    }
    int r = mymalloc_heapmap(path);
    int read = r == 0 && stat(path, &st) == 0 && inspect("svg", path, NULL);
    long long scale = number_of("desc.scale"), sections = number_of("sections");
    long long max_height = 170 + 12 + sections * 22 + ROWS * 12;
    ok(read && scale > 16 && number_of("height") <= max_height && st.st_size < 8 * (long long)MIB &&
       sum_of(mixed_pixels) > 0 && number_of("rects_outside") == 0,
       "a %lld-byte heap of 64-byte blocks, every other one free: %lld bytes a pixel, at most %d rows, "
       "blocks below a pixel drawn as mixed pixels (%lld), %lld bytes of SVG",
       number_of("desc.heap_bytes"), scale, ROWS, sum_of(mixed_pixels), read ? (long long)st.st_size : -1LL);
    for (int i = 0; i < MANY; i++)
        free(many[i]);
}

/* ---- many mapped blocks: the table of them grows, loses and moves entries ---- */

#define MAPPED 600
static void *maps[MAPPED];

static void many_mapped(void)
{
    char path[PATH_MAX];
    struct mymalloc_stats st;
    in_dir(path, "mapped.svg");
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);      /* fixed: no raising as they are freed */
    for (int i = 0; i < MAPPED; i++)
        maps[i] = malloc(128 * KIB + (size_t)i * 100);
    for (int i = 0; i < MAPPED; i += 2) {
        free(maps[i]);
        maps[i] = NULL;
    }
    int moved = 0;
    for (int i = 1; i < 100; i += 2) {
        void *q = realloc(maps[i], 300000 + (size_t)i * 4096);   /* mremap: may move */
        if (q != NULL) {
            moved += q != maps[i];
            maps[i] = q;
        }
    }
    mymalloc_stats_get(&st);
    int r = mymalloc_heapmap(path);
    int read = r == 0 && inspect("svg", path, NULL);
    long long scale = number_of("desc.scale");
    ok(read && st.mapped_blocks == MAPPED / 2 && number_of("desc.mapped_blocks") == MAPPED / 2 &&
           (size_t)number_of("desc.mapped_bytes") == st.mapped_bytes && sum_of(mapped_rects) == MAPPED / 2 &&
           sum_of(mapped_pixels) * scale == number_of("desc.mapped_bytes"),
       "%d mapped blocks allocated, half freed, 50 resized (%d moved): %lld drawn, one rectangle each, "
       "%lld bytes, to scale", MAPPED, moved, sum_of(mapped_rects), number_of("desc.mapped_bytes"));
    for (int i = 0; i < MAPPED; i++)
        free(maps[i]);
    mymalloc_stats_get(&st);
    r = mymalloc_heapmap(path);
    read = r == 0 && inspect("svg", path, NULL);
    ok(read && st.mapped_blocks == 0 && number_of("desc.mapped_blocks") == 0 && sum_of(mapped_rects) == 0,
       "all freed: no mapped block left in the map");
}

/* ---- the child runs: probes started through /proc/self/exe ---- */

static void *keep[8];

static void probe_allocate(void)
{
    keep[0] = malloc(300000);        /* one mapped block */
    for (int i = 1; i < 8; i++)
        keep[i] = malloc(3000);
    free(keep[3]);
    keep[3] = NULL;
}

/* Many heap regions: the break blocked by a mapping, each big block in an
 * mmap segment of its own. */
static int probe_packed(const char *path)
{
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t at = ((uintptr_t)sbrk(0) + (uintptr_t)page - 1) & ~(uintptr_t)(page - 1);
    void *blocker = mmap((void *)at, 64 * (size_t)page, PROT_NONE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | MAP_NORESERVE, -1, 0);
    if (blocker != (void *)at) {
        printf("blocked=0\n");
        return 0;
    }
    mallopt(M_MMAP_MAX, 0);
    static void *regions[70];
    for (int i = 0; i < 70; i++)
        if ((regions[i] = malloc(900 * KIB)) == NULL)
            return 1;
    printf("blocked=1 check=%d\n", mymalloc_check());
    return mymalloc_heapmap(path) == 0 ? 0 : 1;
}

/* ---- arenas: threads that allocate a known pattern, then wait ---- */

#define ARENA_THREADS 3
#define CROWD 79                         /* threads: 80 arenas with the main one */
#define CROWD_LIMIT "MYMALLOC_ARENA_MAX=80"
static pthread_barrier_t step, leave;

/* Thread t's pattern: 11 + 4t blocks of 9000 + 1000t bytes (above the
 * caches' sizes), the odd ones but the last freed: 6 + 2t in use, 5 + 2t
 * free, in an arena of its own.  Thread 1 also has a mapped block. */
static size_t pattern_blocks(int t) { return 11 + 4 * (size_t)t; }
static size_t pattern_free(int t) { return (pattern_blocks(t) - 1) / 2; }

static void *pattern_thread(void *arg)
{
    int t = (int)(uintptr_t)arg;
    void *blocks[32];
    for (size_t i = 0; i < pattern_blocks(t); i++)
        blocks[i] = malloc(9000 + 1000 * (size_t)t);
    for (size_t i = 1; i + 1 < pattern_blocks(t); i += 2)
        free(blocks[i]);
    for (size_t i = 1; i + 1 < pattern_blocks(t); i += 2)
        blocks[i] = NULL;
    void *big = t == 1 ? malloc(300000) : NULL;
    pthread_barrier_wait(&step);         /* done: the next thread may start */
    pthread_barrier_wait(&leave);        /* the map is drawn */
    for (size_t i = 0; i < pattern_blocks(t); i++)
        free(blocks[i]);
    free(big);
    return NULL;
}

static void print_stats(const char *prefix, const struct mymalloc_stats *s)
{
    printf("%s.arenas=%zu\n%s.heap_bytes=%zu\n%s.inuse_bytes=%zu\n%s.free_bytes=%zu\n%s.free_blocks=%zu\n"
           "%s.top_bytes=%zu\n%s.cached_bytes=%zu\n%s.mapped_blocks=%zu\n%s.mapped_bytes=%zu\n",
           prefix, s->arenas, prefix, s->heap_bytes, prefix, s->inuse_bytes, prefix, s->free_bytes, prefix,
           s->free_blocks, prefix, s->top_bytes, prefix, s->cached_bytes, prefix, s->mapped_blocks, prefix,
           s->mapped_bytes);
}

/* The main thread's pattern (9 blocks of 9000 bytes, 4 freed), then the
 * threads', one after the other (so thread t gets arena t + 1), then the
 * map, drawn while they wait. */
static int probe_arenas(const char *path)
{
    static void *mine[9];
    pthread_t ids[ARENA_THREADS];
    struct mymalloc_stats before, after;
    for (int i = 0; i < 9; i++)
        mine[i] = malloc(9000);
    for (int i = 1; i < 8; i += 2)
        free(mine[i]);
    pthread_barrier_init(&step, NULL, 2);
    pthread_barrier_init(&leave, NULL, ARENA_THREADS + 1);
    for (int t = 0; t < ARENA_THREADS; t++) {
        if (pthread_create(&ids[t], NULL, pattern_thread, (void *)(uintptr_t)t) != 0)
            return 1;
        pthread_barrier_wait(&step);
    }
    mymalloc_stats_get(&before);
    int r = mymalloc_heapmap(path);
    mymalloc_stats_get(&after);
    int check = mymalloc_check();
    printf("drawn=%d\nsame=%d\ncheck=%d\n", r == 0, same_stats(&before, &after) && before.arenas == after.arenas,
           check);
    print_stats("stats", &after);
    pthread_barrier_wait(&leave);
    for (int t = 0; t < ARENA_THREADS; t++)
        pthread_join(ids[t], NULL);
    return 0;
}

/* Many arenas (MYMALLOC_ARENA_MAX set by the caller): n threads each
 * allocate one block and wait while the map is drawn. */
static void *volatile crowd_blocks[CROWD];

static void *crowd_thread(void *arg)
{
    unsigned t = (unsigned)(uintptr_t)arg;
    crowd_blocks[t] = malloc(100);
    pthread_barrier_wait(&step);
    pthread_barrier_wait(&leave);
    free(crowd_blocks[t]);
    return NULL;
}

/* Many regions in two arenas: thread 0 makes 44 segments, thread 1 makes
 * 24 (each 3 MiB block, mapped blocks disabled, needs a new one). */
static void *regions_thread(void *arg)
{
    int t = (int)(uintptr_t)arg;
    static void *big[2][44];
    int n = t == 0 ? 44 : 24;
    for (int i = 0; i < n; i++)
        big[t][i] = malloc(3 * MIB);
    pthread_barrier_wait(&step);
    pthread_barrier_wait(&leave);
    for (int i = 0; i < n; i++)
        free(big[t][i]);
    return NULL;
}

static int probe_threads(const char *path, unsigned n, void *(*body)(void *))
{
    static pthread_t ids[128];
    struct mymalloc_stats after;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * KIB);
    static void *volatile first;
    first = malloc(100);               /* the main arena has a heap */
    pthread_barrier_init(&step, NULL, 2);
    pthread_barrier_init(&leave, NULL, n + 1);
    for (unsigned t = 0; t < n; t++) {
        if (pthread_create(&ids[t], &attr, body, (void *)(uintptr_t)t) != 0)
            return 1;
        pthread_barrier_wait(&step);
    }
    int r = mymalloc_heapmap(path);
    mymalloc_stats_get(&after);
    printf("drawn=%d\ncheck=%d\n", r == 0, mymalloc_check());
    print_stats("stats", &after);
    pthread_barrier_wait(&leave);
    for (unsigned t = 0; t < n; t++)
        pthread_join(ids[t], NULL);
    free(first);
    return 0;
}

static int probe(int argc, char **argv)
{
    const char *mode = argv[1];
    if (strcmp(mode, "--packed") == 0 && argc > 2)
        return probe_packed(argv[2]);
    if (strcmp(mode, "--arenas") == 0 && argc > 2)
        return probe_arenas(argv[2]);
    if (strcmp(mode, "--crowd") == 0 && argc > 2)
        return probe_threads(argv[2], CROWD, crowd_thread);
    if (strcmp(mode, "--many-regions") == 0 && argc > 2) {
        mallopt(M_MMAP_MAX, 0);
        return probe_threads(argv[2], 2, regions_thread);
    }
    probe_allocate();
    if (strcmp(mode, "--exit-call") == 0)
        exit(0);
    if (strcmp(mode, "--fork") == 0) {
        fflush(stdout);
        pid_t child = fork();
        if (child == 0) {
            void *p = malloc(5000);
            (void)p;
            exit(0);             /* runs the destructor: it must not write */
        }
        int status;
        waitpid(child, &status, 0);
        printf("parent=%d child=%d\n", (int)getpid(), (int)child);
        if (argc > 2)
            printf("after_child=%d\n", exists(argv[2]));
    }
    return 0;                    /* --exit-return, --fork */
}

/* Run a probe with MYMALLOC_HEAPMAP=value (NULL: unset), and `extra`
 * (NAME=VALUE, replacing NAME's inherited value) when not NULL. */
static int run_probe_with(const char *mode, const char *value, const char *arg, const char *extra)
{
    static char *env[4096];
    static char setting[PATH_MAX + 6000];
    size_t extra_name = extra != NULL ? (size_t)(strchr(extra, '=') - extra) + 1 : 0;
    int n = 0;
    for (char **e = environ; *e != NULL && n < 4090; e++)
        if (strncmp(*e, "MYMALLOC_HEAPMAP=", 17) != 0 && (extra == NULL || strncmp(*e, extra, extra_name) != 0))
            env[n++] = *e;
    if (value != NULL) {
        snprintf(setting, sizeof setting, "MYMALLOC_HEAPMAP=%s", value);
        env[n++] = setting;
    }
    if (extra != NULL)
        env[n++] = (char *)extra;
    env[n] = NULL;
    char *argv[] = { "heapmap", (char *)mode, (char *)arg, NULL };
    return run("/proc/self/exe", argv, env);
}

static int run_probe(const char *mode, const char *value, const char *arg)
{
    return run_probe_with(mode, value, arg, NULL);
}

static int svg_ok_with_mapped(const char *path, long long mapped_blocks)
{
    return exists(path) && inspect("svg", path, NULL) && number_of("desc.mapped_blocks") == mapped_blocks &&
           number_of("desc.inuse_blocks") > 0 && number_of("rects_outside") == 0;
}

static void at_exit(void)
{
    char path[PATH_MAX], other[PATH_MAX], pattern[PATH_MAX];
    int status;

    in_dir(path, "exit-call.svg");
    status = run_probe("--exit-call", path, NULL);
    ok(exited_0(status) && errors[0] == '\0' && svg_ok_with_mapped(path, 1),
       "MYMALLOC_HEAPMAP: written when the program calls exit(), with its mapped block");

    in_dir(path, "exit-return.svg");
    status = run_probe("--exit-return", path, NULL);
    ok(exited_0(status) && errors[0] == '\0' && svg_ok_with_mapped(path, 1),
       "MYMALLOC_HEAPMAP: written when main returns");

    in_dir(path, "fork.svg");
    status = run_probe("--fork", path, path);
    int parent, child;
    int parsed = sscanf(output, "parent=%d child=%d", &parent, &child) == 2;
    ok(exited_0(status) && parsed && strstr(output, "after_child=0") != NULL && exists(path),
       "a forked child's exit does not write the map; the parent's does");

    in_dir(pattern, "pid-%p.svg");
    status = run_probe("--fork", pattern, NULL);
    parsed = sscanf(output, "parent=%d child=%d", &parent, &child) == 2;
    char name[64];
    snprintf(name, sizeof name, "pid-%d.svg", parsed ? parent : 0);
    in_dir(path, name);
    snprintf(name, sizeof name, "pid-%d.svg", parsed ? child : 0);
    in_dir(other, name);
    ok(exited_0(status) && parsed && exists(path) && exists(other) && svg_ok_with_mapped(other, 1),
       "\"%%p\" in the path: one map per process, named by its id (parent and forked child)");

    in_dir(path, "missing/x.svg");
    status = run_probe("--exit-return", path, NULL);
    char expected[PATH_MAX + 100];
    snprintf(expected, sizeof expected, "mymalloc: MYMALLOC_HEAPMAP: cannot write %s (ENOENT, errno 2)\n", path);
    ok(exited_0(status) && strcmp(errors, expected) == 0,
       "an unwritable path: one line on stderr, exit status kept (%s)", errors[0] ? "got a line" : "nothing");
    if (strcmp(errors, expected) != 0)
        diag("stderr: %s", errors);

    static char long_path[5000];
    memset(long_path, 'a', sizeof long_path - 1);
    status = run_probe("--exit-return", long_path, NULL);
    snprintf(expected, sizeof expected, "mymalloc: ignoring MYMALLOC_HEAPMAP=%.103s: path too long\n", long_path);
    ok(exited_0(status) && strcmp(errors, expected) == 0, "a path too long is reported when the environment is read");

    in_dir(path, "empty.svg");
    status = run_probe("--empty", NULL, path);
    if (exited_0(status) && strncmp(output, "before=0\n", 9) != 0) {
        skip(1, "something allocated before main (a sanitizer's runtime?): no empty heap to draw");
    } else {
        ok(exited_0(status) && inspect("svg", path, NULL) && number_of("desc.regions") == 0 &&
               number_of("desc.mapped_blocks") == 0 && number_of("sections") == 0 && number_of("rects.u") == 0,
           "a map drawn before the first allocation: no region, no block, well-formed");
    }

    in_dir(path, "packed.svg");
    status = run_probe("--packed", NULL, path);
    if (strstr(output, "blocked=0") != NULL) {
        skip(1, "cannot place a mapping at the break");
    } else {
        const char *title = NULL;
        int read = exited_0(status) && strstr(output, "check=0") != NULL && inspect("svg", path, NULL);
        if (read)
            title = text_of("section.0");
        ok(read && number_of("sections") == 1 && number_of("desc.regions") > 64 && title != NULL &&
               strstr(title, " heap regions, in address order, each after a gap, 0x") != NULL &&
               number_of("rects_outside") == 0,
           "%lld heap regions (more than 64): drawn packed, one section", read ? number_of("desc.regions") : -1);
    }
}

/* ---- several arenas ---- */

/* What a probe printed of its mymalloc_stats_get() (read before output[] is reused). */
struct probe_stats {
    long long arenas, heap_bytes, inuse_bytes, free_bytes, free_blocks, top_bytes, cached_bytes;
    long long mapped_blocks, mapped_bytes;
};

static void probe_stats_read(struct probe_stats *p)
{
    p->arenas = number_of("stats.arenas");
    p->heap_bytes = number_of("stats.heap_bytes");
    p->inuse_bytes = number_of("stats.inuse_bytes");
    p->free_bytes = number_of("stats.free_bytes");
    p->free_blocks = number_of("stats.free_blocks");
    p->top_bytes = number_of("stats.top_bytes");
    p->cached_bytes = number_of("stats.cached_bytes");
    p->mapped_blocks = number_of("stats.mapped_blocks");
    p->mapped_bytes = number_of("stats.mapped_bytes");
}

/* The map's figures (its <desc>) are the probe's mymalloc_stats_get(). */
static int figures_match(const struct probe_stats *p)
{
    return p->arenas > 0 && number_of("desc.arenas") == p->arenas && number_of("desc.heap_bytes") == p->heap_bytes &&
           number_of("desc.inuse_bytes") == p->inuse_bytes && number_of("desc.free_bytes") == p->free_bytes &&
           number_of("desc.free_blocks") == p->free_blocks && number_of("desc.top_bytes") == p->top_bytes &&
           number_of("desc.cached_bytes") == p->cached_bytes &&
           number_of("desc.mapped_blocks") == p->mapped_blocks && number_of("desc.mapped_bytes") == p->mapped_bytes &&
           number_of("desc.damaged_regions") == 0 && number_of("desc.undrawn_regions") == 0;
}

static const char *section_title(long long i)
{
    char key[32];
    snprintf(key, sizeof key, "section.%lld", i);
    return text_of(key);
}

/* The counts a heap section's title ends with: "...: U in use (C cached), F free[, the top]". */
static int title_counts(const char *title, long long *used, long long *cached, long long *freed)
{
    const char *p = title != NULL ? strstr(title, " in use (") : NULL;
    if (p == NULL)
        return 0;
    while (p > title && p[-1] >= '0' && p[-1] <= '9')
        p--;
    return sscanf(p, "%lld in use (%lld cached), %lld free", used, cached, freed) == 3;
}

static void render_other(const char *svg, const char *png_name);

static void several_arenas(void)
{
    char path[PATH_MAX];
    struct probe_stats st;
    in_dir(path, "arenas.svg");
    int status = run_probe_with("--arenas", NULL, path, "MYMALLOC_ARENA_MAX=8");
    int ran = exited_0(status) && number_of("drawn") == 1;
    probe_stats_read(&st);
    ok(ran && number_of("same") == 1 && number_of("check") == 0 && st.arenas == ARENA_THREADS + 1,
       "%d threads allocate in arenas of their own (%lld arenas with the main one) and wait while the main "
       "thread draws the map: drawn, the heap unchanged by drawing it, sound",
       ARENA_THREADS, st.arenas);
    if (!ran || !inspect("svg", path, NULL)) {
        diag("probe status %d: %s%s", status, output, errors);
        skip(4, "the map of several arenas could not be drawn or read");
        return;
    }

    /* Sections: the main arena's heap, then arena 1, 2, 3 (one segment
     * each, with their thread's counts), then the mapped block. */
    long long sections = number_of("sections"), title_free = 0, thread_free = 0;
    int seen[ARENA_THREADS + 1] = { 0 }, in_order = 1, counts = 1, mapped_last = 0, last_arena = 0;
    for (long long i = 0; i < sections; i++) {
        const char *title = section_title(i);
        long long used, cached, freed;
        int k = -1;
        if (title == NULL) {
            counts = 0;
            continue;
        }
        static const char mapped_title[] = "1 mapped block, back to back in address order, 0x";
        if (strncmp(title, mapped_title, sizeof mapped_title - 1) == 0) {
            mapped_last = i == sections - 1;
            continue;
        }
        if (strncmp(title, "brk heap 0x", 11) == 0 || strncmp(title, "mmap segment 0x", 15) == 0)
            k = 0;
        else if (sscanf(title, "arena %d (thread heap): segment 0x", &k) != 1 || k < 1 || k > ARENA_THREADS ||
                 strstr(title, "(thread heap): segment 0x") == NULL)
            k = -1;
        if (k < 0 || !title_counts(title, &used, &cached, &freed)) {
            diag("unexpected section title: %s", title);
            counts = 0;
            continue;
        }
        in_order &= k >= last_arena;
        last_arena = k;
        seen[k]++;
        title_free += freed;
        if (k == 0) {
            counts &= freed >= 4;
        } else {
            int t = k - 1;
            counts &= used == (long long)(pattern_blocks(t) - pattern_free(t)) && cached == 0 &&
                      freed == (long long)pattern_free(t) && strstr(title, ", the top") != NULL;
            thread_free += freed;
        }
    }
    int each = seen[0] >= 1;
    for (int k = 1; k <= ARENA_THREADS; k++)
        each &= seen[k] == 1;
    ok(each && in_order && counts && mapped_last,
       "a section per arena, in arena order: the main heap, then \"arena K (thread heap): segment 0x...\" for "
       "K = 1 to %d with their thread's blocks in use and free (%lld free in the thread arenas), the mapped block "
       "last", ARENA_THREADS, thread_free);

    ok(figures_match(&st) && number_of("desc.regions") == sections - 1,
       "the figures of the whole process are mymalloc_stats_get()'s: %lld arenas, %lld regions, %lld heap bytes, "
       "%lld in use, %lld free blocks of %lld bytes, top %lld", number_of("desc.arenas"), number_of("desc.regions"),
       number_of("desc.heap_bytes"), number_of("desc.inuse_bytes"), number_of("desc.free_blocks"),
       number_of("desc.free_bytes"), number_of("desc.top_bytes"));

    ok(number_of("rects.f") == st.free_blocks && title_free == st.free_blocks &&
       number_of("rects.t") == ARENA_THREADS + 1 && number_of("rects_outside") == 0,
       "one free rectangle per free block over all arenas (%lld rectangles, %lld free blocks, %lld in the "
       "section titles), one top rectangle per arena (%lld), at %lld bytes a pixel",
       number_of("rects.f"), st.free_blocks, title_free, number_of("rects.t"), number_of("desc.scale"));

    render_other(path, "arenas.png");
}

static void crowd(void)
{
    char path[PATH_MAX];
    struct probe_stats st;
    in_dir(path, "crowd.svg");
    int status = run_probe_with("--crowd", NULL, path, CROWD_LIMIT);
    int ran = exited_0(status) && number_of("drawn") == 1 && number_of("check") == 0;
    probe_stats_read(&st);
    int read = ran && inspect("svg", path, NULL);
    long long sections = read ? number_of("sections") : 0, used = 0, next = 1;
    int titles = read, shared = 0;
    for (long long i = 0; i < sections; i++) {
        const char *title = section_title(i);
        long long u, c, f;
        int a, b;
        if (title != NULL && sscanf(title, "arenas %d to %d (thread heaps): ", &a, &b) == 2) {
            titles &= a == next && b > a && strstr(title, " heap regions, arena by arena, each in address order "
                                                          "after a gap, 0x") != NULL;
            next = b + 1;
            shared++;
        } else if (title != NULL && sscanf(title, "arena %d (thread heap): ", &a) == 1) {
            titles &= a == next;
            next = a + 1;
        }
        titles &= title_counts(title, &u, &c, &f);
        used += u;
    }
    ok(read && st.arenas == CROWD + 1 && figures_match(&st) && sections <= 64 && shared > 0 &&
           next == CROWD + 1 && titles && used == number_of("desc.inuse_blocks") && number_of("rects_outside") == 0,
       "%lld arenas (%d threads, " CROWD_LIMIT "): %lld sections, at most 64, thread arenas sharing them a few at a "
       "time in order (%d shared), every arena drawn, figures mymalloc_stats_get()'s",
       st.arenas, CROWD, sections, shared);
}

static void many_regions(void)
{
    char path[PATH_MAX];
    struct probe_stats st;
    in_dir(path, "regions.svg");
    int status = run_probe_with("--many-regions", NULL, path, "MYMALLOC_ARENA_MAX=8");
    int ran = exited_0(status) && number_of("drawn") == 1 && number_of("check") == 0;
    probe_stats_read(&st);
    int read = ran && inspect("svg", path, NULL);
    long long sections = read ? number_of("sections") : 0;
    int packed = 0, own = 0, other = 0;
    static const char packed_title[] = "arena 1 (thread heap): 44 heap regions, in address order, each after a gap, 0x";
    static const char own_title[] = "arena 2 (thread heap): segment 0x";
    for (long long i = 0; i < sections; i++) {
        const char *title = section_title(i);
        if (title == NULL)
            other++;
        else if (strncmp(title, packed_title, sizeof packed_title - 1) == 0)
            packed++;
        else if (strncmp(title, own_title, sizeof own_title - 1) == 0)
            own++;
        else if (strncmp(title, "brk heap 0x", 11) != 0 && strncmp(title, "mmap segment 0x", 15) != 0)
            other++;
    }
    ok(read && figures_match(&st) && number_of("desc.regions") >= 69 && packed == 1 && own == 24 && other == 0 &&
           number_of("rects_outside") == 0,
       "%lld regions in 3 arenas (44 and 24 segments in two thread arenas): the arena with the most packed into "
       "one section, the other's 24 drawn a row each (%d, %d), figures mymalloc_stats_get()'s",
       number_of("desc.regions"), packed, own);
}

/* ---- the PNG ---- */

static void render(const char *svg)
{
    char png[PATH_MAX];
    in_dir(png, "known.png");
    char *argv[] = { "rsvg-convert", "-o", png, (char *)svg, NULL };
    int status = run("rsvg-convert", argv, NULL);
    if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 127) {
        skip(2, "rsvg-convert is missing (Debian package librsvg2-bin)");
        return;
    }
    /* white, in use (both shades), free, top, mapped (first shade) */
    static const char *const colours[] = { "ffffff", "4477aa", "2c5788", "228833", "ccbb44", "aa3377", NULL };
    int read = exited_0(status) && inspect("png", png, colours);
    ok(read && number_of("png.width") == svg_width && number_of("png.height") == svg_height,
       "rsvg-convert renders it: a PNG of %lld x %lld (the SVG's size: %lld x %lld)", number_of("png.width"),
       number_of("png.height"), svg_width, svg_height);
    int all = 1;
    for (int i = 0; colours[i] != NULL; i++) {
        char key[32];
        snprintf(key, sizeof key, "png.has.%s", colours[i]);
        all = all && number_of(key) == 1;
    }
    ok(read && number_of("png.bytes") == svg_height * (svg_width * number_of("png.bpp") + 1) &&
       number_of("png.colours") > 5 && all,
       "its pixel data decompresses, and shows %lld colours, among them the background and the colours of "
       "in use, free, top and mapped", number_of("png.colours"));
}

/* The PNG of another map: the size of the SVG, the colours of in use, free and top. */
static void render_other(const char *svg, const char *png_name)
{
    char png[PATH_MAX];
    long long width = number_of("width"), height = number_of("height");
    in_dir(png, png_name);
    char *argv[] = { "rsvg-convert", "-o", png, (char *)svg, NULL };
    int status = run("rsvg-convert", argv, NULL);
    if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 127) {
        skip(1, "rsvg-convert is missing (Debian package librsvg2-bin)");
        return;
    }
    static const char *const colours[] = { "ffffff", "4477aa", "228833", "ccbb44", NULL };
    int read = exited_0(status) && inspect("png", png, colours);
    ok(read && number_of("png.width") == width && number_of("png.height") == height &&
           number_of("png.has.4477aa") == 1 && number_of("png.has.228833") == 1 && number_of("png.has.ccbb44") == 1,
       "rsvg-convert renders it: a PNG of %lld x %lld (the SVG's size: %lld x %lld), in use, free and top shown",
       number_of("png.width"), number_of("png.height"), width, height);
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "--empty") == 0) {   /* before any allocation of ours */
        struct mymalloc_stats st;
        mymalloc_stats_get(&st);
        int r = mymalloc_heapmap(argv[2]);
        printf("before=%zu\n", st.heap_bytes + st.mapped_bytes);
        return r == 0 ? 0 : 1;
    }
    if (argc > 1 && strncmp(argv[1], "--", 2) == 0)
        return probe(argc, argv);

    python = getenv("PYTHON3");
    if (python == NULL || *python == '\0')
        python = "python3";
    const char *srcdir = getenv("MYMALLOC_SRCDIR");
    snprintf(script, sizeof script, "%s/tests/heapmap.py", srcdir != NULL ? srcdir : ".");
    if (access(script, R_OK) != 0)
        plan_skip_all("tests/heapmap.py not found (set MYMALLOC_SRCDIR to the source tree)");
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/mymalloc-heapmap.XXXXXX", tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL)
        plan_skip_all("mkdtemp failed");

    char svg[PATH_MAX];
    in_dir(svg, "known.svg");
    known_heap(svg);
    render(svg);
    release_known_heap();
    error_cases();
    concurrent();
    big_heap();
    many_mapped();
    at_exit();
    several_arenas();
    crowd();
    many_regions();

    char command[PATH_MAX + 16];
    snprintf(command, sizeof command, "rm -rf '%s'", dir);
    if (system(command) != 0)
        diag("could not remove %s", dir);
    return done();
}
