/* enomem.c - running out of memory under RLIMIT_AS (in this process) and
 * RLIMIT_DATA (in a forked child): every function fails cleanly with ENOMEM,
 * realloc leaves the old block intact, nothing crashes, and once memory is
 * freed allocations succeed again. */
#include "util.h"

#define HEADROOM (64 * MIB)
#define BIG_LOOP_MAX 256            /* 1 MiB blocks: the headroom allows at most 64 */
#define SMALL_LOOP_MAX 2000000      /* 100-byte blocks: far more than 64 MiB worth */
#define CHECKS_PER_RUN 20

/* Where check() reports: TAP on stdout, or (in the child) lines on a pipe. */
static int report_fd = -1;

__attribute__((format(printf, 2, 3)))
static void check(int passed, const char *fmt, ...)
{
    char text[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (report_fd < 0) {
        ok(passed, "%s", text);
    } else {
        char line[320];
        int n = snprintf(line, sizeof line, "%d %s\n", passed ? 1 : 0, text);
        if (n > 0 && write(report_fd, line, (size_t)n) != n)
            _exit(3);
    }
}


/* Blocks kept in a list threaded through their first word: no array needed. */
static void *chain_push(void *list, void *block)
{
    *(void **)block = list;
    return block;
}

static size_t chain_free(void *list)
{
    size_t n = 0;
    while (list != NULL) {
        void *next = *(void **)list;
        free(list);
        list = next;
        n++;
    }
    return n;
}

/* malloc(size) until it fails, or until `max` blocks were taken (the last
 * call's block is kept too); every block goes onto the list *chain.
 * Returns the number taken before the last call; *enomem says whether that
 * call returned NULL with ENOMEM. */
static size_t take_all(size_t size, size_t max, void **chain, int *enomem)
{
    for (size_t n = 0;; n++) {
        errno = 0;
        void *p = malloc(size);
        *enomem = p == NULL && errno == ENOMEM;
        if (p != NULL)
            *chain = chain_push(*chain, p);
        if (p == NULL || n == max)
            return n;
    }
}

/* realloc of a `kind` block of n bytes filled with `seed` to `mib` MiB must
 * return NULL with ENOMEM and leave the block as it was: two checks.
 * Returns the block (realloc's, should it have succeeded). */
static unsigned char *realloc_refused(const char *name, const char *kind, unsigned char *block, size_t n,
                                      unsigned seed, size_t mib)
{
    errno = 0;
    unsigned char *p = realloc(block, mib * MIB);
    check(p == NULL && errno == ENOMEM, "%s: realloc of a %s block to %zu MiB returns NULL with ENOMEM", name, kind,
          mib);
    if (p != NULL)
        block = p;
    check(has_pattern(block, n, seed) && malloc_usable_size(block) >= n,
          "%s: the %s block is intact after the failed realloc", name, kind);
    return block;
}

/* Lower `resource` to the current `field` + HEADROOM, exhaust memory, check
 * every failure, free, check recovery, restore the limit.  Exactly
 * CHECKS_PER_RUN checks. */
static void exhaust(int resource, const char *name, const char *field)
{
    struct rlimit old, lowered;
    size_t small_n = 1000, big_n = MIB;
    unsigned char *small = malloc(small_n), *big = malloc(big_n);   /* before the limit */
    size_t base_kib = status_kib(field);

    check(small != NULL && big != NULL && base_kib > 0, "%s: blocks allocated, %s %zu KiB", name, field, base_kib);
    if (small == NULL || big == NULL || base_kib == 0) {
        for (int i = 1; i < CHECKS_PER_RUN; i++)
            check(0, "%s: not run", name);
        return;
    }
    fill_pattern(small, small_n, 1);
    fill_pattern(big, big_n, 2);

    getrlimit(resource, &old);
    lowered = old;
    lowered.rlim_cur = (rlim_t)(base_kib * KIB + HEADROOM);
    if (old.rlim_max != RLIM_INFINITY && lowered.rlim_cur > old.rlim_max)
        lowered.rlim_cur = old.rlim_max;
    check(setrlimit(resource, &lowered) == 0, "%s: limit lowered to %s + 64 MiB", name, field);

    /* 1 MiB blocks (mapped) until the kernel says no. */
    void *bigs = NULL, *smalls = NULL, *p;
    int enomem;
    size_t nbig = take_all(MIB, BIG_LOOP_MAX, &bigs, &enomem);
    check(enomem, "%s: malloc(1 MiB) returned NULL with ENOMEM after %zu blocks", name, nbig);
    check(nbig >= 16 && nbig <= 64, "%s: the number of 1 MiB blocks fits the 64 MiB headroom", name);

    /* 100-byte blocks (heap) until it is full too. */
    size_t nsmall = take_all(100, SMALL_LOOP_MAX, &smalls, &enomem);
    check(enomem, "%s: malloc(100) returned NULL with ENOMEM after %zu blocks", name, nsmall);

    errno = 0;
    p = calloc(1024, 8 * KIB);
    check(p == NULL && errno == ENOMEM, "%s: calloc(1024, 8 KiB) returns NULL with ENOMEM", name);
    free(p);
    errno = 0;
    p = calloc(1, 100);
    check(p == NULL && errno == ENOMEM, "%s: calloc(1, 100) on a full heap returns NULL with ENOMEM", name);
    free(p);

    small = realloc_refused(name, "heap", small, small_n, 1, 8);
    big = realloc_refused(name, "mapped", big, big_n, 2, 96);

    void *aligned = (void *)&old;   /* must not be overwritten */
    errno = EINTR;
    int rc = posix_memalign(&aligned, 64, 8 * MIB);
    /* errno read through a volatile lvalue: GCC takes posix_memalign to
     * leave errno alone and would fold the test. */
    check(rc == ENOMEM && aligned == (void *)&old && *(volatile int *)&errno == ENOMEM,
          "%s: posix_memalign(64, 8 MiB) returns ENOMEM and sets errno to it, leaves the pointer alone", name);
    errno = 0;
    p = aligned_alloc(4096, 8 * MIB);
    check(p == NULL && errno == ENOMEM, "%s: aligned_alloc(4096, 8 MiB) returns NULL with ENOMEM", name);
    free(p);
    check(mymalloc_check() == 0, "%s: heap sound when memory ran out", name);

    /* Give it all back: allocations work again, still under the limit. */
    size_t freed = chain_free(bigs) + chain_free(smalls);
    check(freed == nbig + nsmall + (nbig == BIG_LOOP_MAX) + (nsmall == SMALL_LOOP_MAX),
          "%s: freed all %zu blocks", name, freed);
    void *a = malloc(MIB), *b = malloc(100), *c = NULL;
    int crc = posix_memalign(&c, 64, 1000);
    int works = a != NULL && b != NULL && crc == 0 && c != NULL;
    if (works) {
        memset(a, 0xa5, MIB);
        memset(b, 0x5a, 100);
        memset(c, 0x33, 1000);
    }
    check(works, "%s: malloc(1 MiB), malloc(100) and posix_memalign succeed again", name);
    free(a);
    free(b);
    free(c);
    check(has_pattern(small, small_n, 1) && has_pattern(big, big_n, 2), "%s: the original blocks are still intact", name);
    free(small);
    free(big);
    check(mymalloc_check() == 0, "%s: heap sound after freeing everything", name);
    check(setrlimit(resource, &old) == 0, "%s: limit restored", name);
    p = malloc(4 * MIB);
    check(p != NULL, "%s: a 4 MiB block after the limit was restored", name);
    free(p);
}

int main(void)
{
    /* 1 MiB blocks are mapped, 100-byte ones heap blocks, whatever the environment says. */
    int set = mallopt(M_MMAP_THRESHOLD, 128 * 1024) == 1 && mallopt(M_MMAP_MAX, 65536) == 1;
    plan(2 * CHECKS_PER_RUN + 3);
    ok(set, "mallopt sets the default mmap threshold and mmap max");
    diag("exhausting memory under RLIMIT_AS, then RLIMIT_DATA in a child");   /* stdio buffer now */

    exhaust(RLIMIT_AS, "RLIMIT_AS", "VmSize");

    /* RLIMIT_DATA (which limits brk and private mappings since Linux 4.7) in
     * a child: it reports its checks as "1 text" / "0 text" lines on a pipe. */
    int fds[2];
    if (pipe(fds) != 0) {
        skip(CHECKS_PER_RUN + 2, "pipe failed");
        return done();
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        report_fd = fds[1];
        exhaust(RLIMIT_DATA, "RLIMIT_DATA", "VmData");
        _exit(0);
    }
    close(fds[1]);
    static char text[CHECKS_PER_RUN * 320 + 1];
    read_all(fds[0], text, sizeof text);
    close(fds[0]);
    int status = 0;
    pid_t waited = pid > 0 ? waitpid(pid, &status, 0) : -1;

    int lines = 0;
    for (char *line = text; *line != '\0' && lines < CHECKS_PER_RUN;) {
        char *end = strchr(line, '\n');
        if (end == NULL)
            break;
        *end = '\0';
        ok(line[0] == '1' && line[1] == ' ', "%s", line + 2);
        lines++;
        line = end + 1;
    }
    if (lines < CHECKS_PER_RUN)
        skip(CHECKS_PER_RUN - lines, "the child did not report");
    ok(lines == CHECKS_PER_RUN, "the child reported %d checks (of %d)", lines, CHECKS_PER_RUN);
    ok(waited == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
       "the RLIMIT_DATA child exited cleanly (status 0x%x)", status);
    return done();
}
