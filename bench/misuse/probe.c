/* probe.c - one heap misuse per run, for bench/misuse-table.
 *
 *     probe CASE
 *
 * Compiled with plain gcc and NOT linked with mymalloc: bench/misuse-table
 * runs it with each allocator through LD_PRELOAD (glibc with none) and
 * watches how it ends.  Every case does the misuse, then goes on as a
 * program would (allocates, writes and frees a few blocks: an allocator that
 * checks lazily gets its chance) and exits 0.  Nothing is printed on stderr
 * by the probe itself, so whatever is there comes from the allocator.  Notes
 * on what the probe saw (the same block handed out twice, ...) go to stdout
 * as "note: ..." lines, written at once with write(2) so a later crash does
 * not lose them.
 *
 * "probe which" prints where malloc comes from (and mymalloc's version when
 * it is loaded): the table script checks that the preload took effect.
 * "probe list" prints the case names.  Exit 2: usage error. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

/* The misuses are deliberate: keep gcc from warning about them, and from
 * reasoning about (or removing) the calls. */
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#pragma GCC diagnostic ignored "-Wuse-after-free"

static void *launder(void *p)
{
    __asm__ volatile("" : "+r"(p) : : "memory");
    return p;
}

static void note(const char *text)
{
    char line[200];
    int n = snprintf(line, sizeof line, "note: %s\n", text);
    if (n > 0 && write(STDOUT_FILENO, line, (size_t)n) < 0)
        _exit(3);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL) {
        note("malloc returned NULL");
        _exit(4);
    }
    return launder(p);
}

/* A block with a block of the same size allocated just before and just after
 * it, so that freeing it meets in-use neighbours instead of the top of the
 * heap, as in a program that has been running a while.  The neighbours stay
 * in use until the end of aftermath(), which frees them (a case that frees
 * one itself clears its pointer here). */
static char *guard_before, *guard_after;

static char *guarded(size_t n)
{
    guard_before = xmalloc(n);
    char *p = xmalloc(n);
    guard_after = xmalloc(n);
    memset(guard_before, 'b', n);
    memset(p, 'p', n);
    memset(guard_after, 'n', n);
    return p;
}

/* What the program does next: blocks of the size just misused, then a mix
 * of sizes, each written and freed; last the guarded() neighbours are freed.
 * Notes the same block handed out twice (or handed out again while `held`
 * still uses it). */
static void aftermath(size_t size, const void *held)
{
    char *q[4];
    int twice = 0;
    for (int i = 0; i < 4; i++) {
        q[i] = xmalloc(size);
        for (int j = 0; j < i; j++)
            twice |= q[j] == q[i];
        twice |= held != NULL && q[i] == held;
    }
    if (twice)
        note("the same block was handed out twice");
    for (int i = 0; i < 4; i++)
        memset(q[i], 'a' + i, size);
    for (int i = 0; i < 4; i++)
        free(q[i]);
    static const size_t mix[] = { 24, 40, 100, 500, 3000, 20000, 200000 };
    char *m[sizeof mix / sizeof mix[0]];
    for (size_t i = 0; i < sizeof mix / sizeof mix[0]; i++) {
        m[i] = xmalloc(mix[i]);
        memset(m[i], 'm', mix[i]);
    }
    for (size_t i = sizeof mix / sizeof mix[0]; i-- > 0;)
        free(m[i]);
    free(guard_after);
    free(guard_before);
}

/* ---- the cases ---- */

static void double_free(void)
{
    char *p = guarded(40);
    free(p);
    free(launder(p));
    aftermath(40, NULL);
}

static void double_free_large(void)
{
    char *p = xmalloc(1 << 20);
    memset(p, 'p', 1 << 20);
    free(p);
    free(launder(p));
    aftermath(1 << 20, NULL);
}

/* A block freed by one thread, then again by the main thread while the first
 * is still alive; then each allocates a block of that size. */
static sem_t thread_freed, main_freed, thread_allocated, may_exit;
static char *shared_block;
static char *volatile thread_block;

static void *free_in_thread(void *unused)
{
    (void)unused;
    free(shared_block);
    sem_post(&thread_freed);
    sem_wait(&main_freed);
    thread_block = xmalloc(40);
    memset(thread_block, 't', 40);
    sem_post(&thread_allocated);
    sem_wait(&may_exit);
    return NULL;
}

static void double_free_threads(void)
{
    pthread_t t;
    sem_init(&thread_freed, 0, 0);
    sem_init(&main_freed, 0, 0);
    sem_init(&thread_allocated, 0, 0);
    sem_init(&may_exit, 0, 0);
    shared_block = guarded(40);
    if (pthread_create(&t, NULL, free_in_thread, NULL) != 0) {
        note("pthread_create failed");
        _exit(4);
    }
    sem_wait(&thread_freed);
    free(launder(shared_block));
    sem_post(&main_freed);
    sem_wait(&thread_allocated);
    char *mine = xmalloc(40);
    if (mine == thread_block)
        note("both threads were handed the same block");
    memset(mine, 'm', 40);
    aftermath(40, thread_block);
    sem_post(&may_exit);
    pthread_join(t, NULL);
}

/* The word before the pointer is zero (the array was cleared): the same
 * header whatever garbage the stack holds. */
static void free_stack(void)
{
    _Alignas(16) char buffer[128];
    memset(buffer, 0, sizeof buffer);
    free(launder(buffer + 64));
    aftermath(64, NULL);
}

static _Alignas(16) char static_buffer[128];   /* in .bss: zero */

static void free_static(void)
{
    free(launder(static_buffer + 64));
    aftermath(64, NULL);
}

static void free_interior(void)
{
    char *p = guarded(100);
    free(launder(p + 32));
    aftermath(100, NULL);
}

static void free_misaligned(void)
{
    char *p = guarded(64);
    free(launder(p + 8));
    aftermath(64, NULL);
}

/* A page of our own with, before the pointer, what a glibc header of an
 * in-use 48-byte chunk would hold (size 48, previous in use). */
static void free_foreign(void)
{
    char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        note("mmap failed");
        _exit(4);
    }
    ((size_t *)page)[1] = 48 | 1;
    free(launder(page + 16));
    aftermath(40, NULL);
}

/* An underflow: the 8 bytes before the block, where most allocators keep
 * its header. */
static void header_overwritten(void)
{
    char *p = guarded(40);
    memset(launder(p - 8), 'A', 8);
    free(p);
    aftermath(40, NULL);
}

/* 8 bytes past the usable end of a 40-byte block (where glibc's and
 * mymalloc's next header is), then both blocks are freed. */
static void overflow_next_header(void)
{
    char *p = guarded(40), *after = guard_after;
    memset(launder(p), 'A', 48);
    free(p);
    guard_after = NULL;
    free(after);
    aftermath(40, NULL);
}

static void overflow_byte_40(void)
{
    char *p = guarded(40);
    ((char *)launder(p))[40] = 1;
    free(p);
    aftermath(40, NULL);
}

/* 36 bytes: every allocator here gives at least 40, so p[36] is slack. */
static void overflow_byte_slack(void)
{
    char *p = guarded(36);
    ((char *)launder(p))[36] = 1;
    free(p);
    aftermath(36, NULL);
}

static void write_after_free(void)
{
    char *p = guarded(40);
    free(p);
    memset(launder(p), 'A', 16);
    char *q1 = xmalloc(40), *q2 = xmalloc(40);
    if (q1 == q2)
        note("the same block was handed out twice");
    memset(q1, '1', 40);
    memset(q2, '2', 40);
    aftermath(40, NULL);
}

/* Free-list poisoning: the address of a static buffer written over a freed
 * block's first word (where most allocators keep the free list's link),
 * then malloc the same size twice: an allocator that follows the link hands
 * out the buffer. */
static char poison_target[256] __attribute__((aligned(64)));

static void freelist_poison(void)
{
    char *p = guarded(40);
    free(p);
    *(char *volatile *)launder(p) = poison_target + 64;
    char *q1 = xmalloc(40), *q2 = xmalloc(40);
    if ((q1 >= poison_target && q1 < poison_target + sizeof poison_target) ||
        (q2 >= poison_target && q2 < poison_target + sizeof poison_target))
        note("malloc handed out the address written over the freed block");
    memset(q1, '1', 40);
    memset(q2, '2', 40);
    aftermath(40, NULL);
}

static void which(void)
{
    Dl_info info;
    void *f = dlsym(RTLD_DEFAULT, "malloc");
    printf("malloc-from: %s\n", f != NULL && dladdr(f, &info) && info.dli_fname != NULL ? info.dli_fname : "?");
    const char *(*version)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "mymalloc_version");
    printf("mymalloc-version: %s\n", version != NULL ? version() : "-");
}

static const struct {
    const char *name;
    void (*run)(void);
} cases[] = {
    { "double-free", double_free },
    { "double-free-large", double_free_large },
    { "double-free-threads", double_free_threads },
    { "free-stack", free_stack },
    { "free-static", free_static },
    { "free-interior", free_interior },
    { "free-misaligned", free_misaligned },
    { "free-foreign", free_foreign },
    { "header-overwritten", header_overwritten },
    { "overflow-next-header", overflow_next_header },
    { "overflow-byte-40", overflow_byte_40 },
    { "overflow-byte-slack", overflow_byte_slack },
    { "write-after-free", write_after_free },
    { "freelist-poison", freelist_poison },
    { "which", which },
};

int main(int argc, char **argv)
{
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);     /* no core dumps, whatever core_pattern says */
    if (argc == 2 && strcmp(argv[1], "list") == 0) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            printf("%s\n", cases[i].name);
        return 0;
    }
    for (size_t i = 0; argc == 2 && i < sizeof cases / sizeof cases[0]; i++) {
        if (strcmp(argv[1], cases[i].name) == 0) {
            cases[i].run();
            return 0;
        }
    }
    fprintf(stderr, "probe: unknown case (try: probe list)\n");
    return 2;
}
