/* util.h - what the test programs share: the headers nearly all of them
 * need, mymalloc.h and tap.h, KIB and MIB, and the helpers more than one of
 * them uses.  Include it first, before any system header: it defines
 * _GNU_SOURCE.  It compiles as C and as C++.  Every helper is static and
 * marked unused, so a test that needs only a few still builds without a
 * warning. */
#ifndef MYMALLOC_TEST_UTIL_H
#define MYMALLOC_TEST_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "mymalloc.h"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"   /* tap.h helpers a test does not use */
#include "tap.h"
#pragma GCC diagnostic pop

#define KIB ((size_t)1024)
#define MIB (KIB * KIB)

/* ---- /proc, read without stdio (the allocator under test must see no
 * allocation of its own) ---- */

/* A file of /proc into text[size], NUL-terminated; its length, or 0 when it
 * cannot be read. */
__attribute__((unused)) static size_t proc_text(const char *path, char *text, size_t size)
{
    int fd = open(path, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, text, size - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return 0;
    text[n] = '\0';
    return (size_t)n;
}

/* A field of /proc/self/status ("VmSize", "VmData") in KiB; 0 when it
 * cannot be read. */
__attribute__((unused)) static size_t status_kib(const char *field)
{
    static char text[8192];
    if (proc_text("/proc/self/status", text, sizeof text) == 0)
        return 0;
    size_t len = strlen(field);
    for (char *at = text; (at = strstr(at, field)) != NULL; at += len)
        if ((at == text || at[-1] == '\n') && at[len] == ':')
            return (size_t)strtoull(at + len + 1, NULL, 10);
    return 0;
}

/* The resident set size in bytes, from /proc/self/statm; 0 when it cannot
 * be read. */
__attribute__((unused)) static size_t rss_bytes(void)
{
    char buf[128];
    if (proc_text("/proc/self/statm", buf, sizeof buf) == 0)
        return 0;
    const char *s = buf;
    while (*s != ' ' && *s != '\0')
        s++;
    size_t pages = 0;
    for (s++; *s >= '0' && *s <= '9'; s++)
        pages = pages * 10 + (size_t)(*s - '0');
    return pages * (size_t)sysconf(_SC_PAGESIZE);
}

/* ---- keeping the compiler out ----
 * It knows what malloc and friends do: it may fold comparisons of their
 * results, drop stores before free(), or a malloc/free pair altogether. */

/* A pointer it can no longer reason about. */
__attribute__((unused)) static void *launder(void *p)
{
    __asm__ volatile("" : "+r"(p) : : "memory");
    return p;
}

/* A size it can no longer reason about. */
__attribute__((unused)) static size_t hide(size_t n)
{
    __asm__ volatile("" : "+r"(n));
    return n;
}

/* p must be assumed used: a malloc whose result is never read, or the
 * writes to a block then freed, cannot be left out. */
__attribute__((unused)) static inline void escape(void *p)
{
    __asm__ volatile("" : : "r"(p) : "memory");
}

/* errno read through a volatile lvalue: GCC takes the malloc family (and
 * posix_memalign) to leave errno alone and would fold the test away. */
__attribute__((unused)) static int errno_now(void) { return *(volatile int *)&errno; }

__attribute__((unused)) static int aligned_to(const void *p, size_t alignment)
{
    return ((uintptr_t)p & (alignment - 1)) == 0;
}

/* ---- contents to fill blocks with and check ---- */

/* Byte i of a block filled with `seed`.  It depends on the offset, so a
 * buffer that grows can be filled a range at a time and checked as a whole,
 * and on the seed (times an odd number), so blocks filled with different
 * seeds differ at every byte. */
__attribute__((unused)) static unsigned char pattern_at(size_t i, unsigned seed)
{
    return (unsigned char)(seed * 151u + i * 13u + (i >> 11) + 1);
}

__attribute__((unused)) static void fill_pattern_range(void *p, size_t from, size_t to, unsigned seed)
{
    unsigned char *c = (unsigned char *)p;
    for (size_t i = from; i < to; i++)
        c[i] = pattern_at(i, seed);
}

__attribute__((unused)) static void fill_pattern(void *p, size_t n, unsigned seed)
{
    fill_pattern_range(p, 0, n, seed);
}

/* Do the first n bytes hold what fill_pattern(p, n, seed) wrote? */
__attribute__((unused)) static int has_pattern(const void *p, size_t n, unsigned seed)
{
    const unsigned char *c = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != pattern_at(i, seed))
            return 0;
    return 1;
}

/* Is every byte of [from, to) `value`? */
__attribute__((unused)) static int all_bytes(const void *p, size_t from, size_t to, unsigned char value)
{
    const unsigned char *c = (const unsigned char *)p;
    for (size_t i = from; i < to; i++)
        if (c[i] != value)
            return 0;
    return 1;
}

/* realloc *p to n bytes, the pointers hidden from the compiler; *kept, how
 * many bytes of the old contents must have survived, drops to n when the
 * block shrank.  0, and *p left alone, when realloc failed. */
__attribute__((unused)) static int resize_keeping(unsigned char **p, size_t n, size_t *kept)
{
    unsigned char *q = (unsigned char *)launder(realloc(launder(*p), n));
    if (q == NULL)
        return 0;
    *p = q;
    if (n < *kept)
        *kept = n;
    return 1;
}

/* ---- random numbers: fixed seeds, the same sequence on every run ---- */

/* A 64-bit linear congruential generator; its high 31 bits. */
__attribute__((unused)) static uint32_t lcg_next(uint64_t *state)
{
    *state = *state * 6364136223846793005u + 1442695040888963407u;
    return (uint32_t)(*state >> 33);
}

/* Marsaglia's xorshift64: the new state, which is also the number drawn. */
__attribute__((unused)) static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* SplitMix64's finalizer: every bit of x stirred into every bit of the
 * result, one to one. */
__attribute__((unused)) static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* ---- the heap's layout, as lib/block.h lays it out ---- */

/* The heap block a user pointer sits in: header word included. */
__attribute__((unused)) static size_t block_bytes(const void *p) { return malloc_usable_size((void *)p) + 8; }
__attribute__((unused)) static size_t mapped_blocks(void) { return mallinfo2().hblks; }
/* The bytes in free blocks other than the top. */
__attribute__((unused)) static size_t bin_bytes(void)
{
    struct mallinfo2 m = mallinfo2();
    return m.fordblks - m.keepcost;
}

/* Blocks taken to empty the bins (or while hunting for neighbours); they stay
 * allocated until the scenario ends and free_junk(). */
__attribute__((unused)) static void *junk[1024];
__attribute__((unused)) static size_t njunk;

__attribute__((unused)) static void keep_junk(void *p)
{
    if (njunk < sizeof junk / sizeof junk[0])
        junk[njunk++] = p;
    else
        diag("junk list full");
}

__attribute__((unused)) static void free_junk(void)
{
    while (njunk > 0)
        free(junk[--njunk]);
}

/* Take every free block out of the bins, so that what follows is carved from
 * the top, block after block.  A request is served from the bins exactly when
 * the bytes in them drop; otherwise it is given back and a smaller one tried.
 * 0 when the bins could not be emptied. */
__attribute__((unused)) static int drain_bins(void)
{
    for (int rounds = 0; rounds < 4096; rounds++) {
        size_t in_bins = bin_bytes();
        if (in_bins == 0)
            return 1;
        for (size_t want = in_bins - 8;; want /= 2) {
            void *p = launder(malloc(want));
            if (p == NULL)
                return 0;
            if (bin_bytes() < in_bins) {
                keep_junk(p);
                break;
            }
            free(p);
            if (want == 0)
                return 0;
        }
    }
    return 0;
}

/* What alloc_adjacent asks of the bins: drained once, before the first try,
 * or drained before every try and empty after it. */
enum bins { BINS_DRAINED_ONCE, BINS_EMPTY };

/* Allocate `count` blocks of the given request sizes lying next to each other
 * in the heap, in that order.  0 when that could not be arranged.  The
 * blocks of a failed try are kept as junk. */
__attribute__((unused)) static int alloc_adjacent(void **out, const size_t *req, int count, enum bins bins)
{
    if (bins == BINS_DRAINED_ONCE)
        drain_bins();
    for (int attempt = 0; attempt < 32; attempt++) {
        int adjacent = bins == BINS_EMPTY ? drain_bins() : 1;
        for (int i = 0; i < count; i++)
            out[i] = launder(malloc(req[i]));
        for (int i = 0; i + 1 < count; i++)
            if (out[i] == NULL || (char *)out[i] + block_bytes(out[i]) != (char *)out[i + 1])
                adjacent = 0;
        if (adjacent && out[count - 1] != NULL && (bins == BINS_DRAINED_ONCE || bin_bytes() == 0))
            return 1;
        for (int i = 0; i < count; i++)
            keep_junk(out[i]);
    }
    return 0;
}

/* alloc_adjacent(); when the blocks could not be arranged, a failed point
 * (fmt and what follows describe it), `skipped` skipped points for those
 * that needed the blocks, and free_junk(): 0 then. */
__attribute__((format(printf, 6, 7), unused)) static int adjacent_or_fail(void **out, const size_t *req, int count,
                                                                         enum bins bins, int skipped,
                                                                         const char *fmt, ...)
{
    if (alloc_adjacent(out, req, count, bins))
        return 1;
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    ok(0, "%s", what);
    skip(skipped, "no adjacent blocks");
    free_junk();
    return 0;
}

/* ---- settings and the end of a test ---- */

/* The documented defaults of the thresholds (mmap threshold, trim threshold
 * and top pad 128 KiB, mmap max 65536), whatever MYMALLOC_* or MALLOC_*_ the
 * environment holds.  1 when mallopt took every one. */
__attribute__((unused)) static int default_thresholds(void)
{
    int set = mallopt(M_MMAP_THRESHOLD, 128 * 1024) == 1;
    set &= mallopt(M_TRIM_THRESHOLD, 128 * 1024) == 1;
    set &= mallopt(M_TOP_PAD, 128 * 1024) == 1;
    set &= mallopt(M_MMAP_MAX, 65536) == 1;
    return set;
}

/* The last point of a test: mymalloc_check() finds a sound heap.  Returns
 * done(), the exit status. */
__attribute__((unused)) static int done_with_check(const char *what)
{
    ok(mymalloc_check() == 0, "%s", what);
    return done();
}

/* ---- child processes ---- */

/* Read fd to its end: the first size - 1 bytes into buf, NUL-terminated,
 * the rest read and dropped, so that the writer never blocks.  Returns the
 * length kept. */
__attribute__((unused)) static size_t read_all(int fd, char *buf, size_t size)
{
    size_t length = 0;
    char sink[4096];
    for (;;) {
        int full = length == size - 1;
        ssize_t n = read(fd, full ? sink : buf + length, full ? sizeof sink : size - 1 - length);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (!full)
            length += (size_t)n;
    }
    buf[length] = '\0';
    return length;
}

/* Read two pipes to their end at once, whatever order the writer uses them
 * in: each as read_all() does. */
__attribute__((unused)) static void read_both(int fd0, char *buf0, size_t size0, int fd1, char *buf1, size_t size1)
{
    char *buf[2] = { buf0, buf1 };
    size_t have[2] = { 0, 0 }, room[2] = { size0 - 1, size1 - 1 };
    struct pollfd pf[2] = { { fd0, POLLIN, 0 }, { fd1, POLLIN, 0 } };
    int open_fds = 2;
    while (open_fds > 0) {
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (pf[i].fd < 0 || pf[i].revents == 0)
                continue;
            char sink[512];
            char *to = have[i] < room[i] ? buf[i] + have[i] : sink;
            size_t space = have[i] < room[i] ? room[i] - have[i] : sizeof sink;
            ssize_t got = read(pf[i].fd, to, space);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0) {
                pf[i].fd = -1;
                open_fds--;
            } else if (to != sink) {
                have[i] += (size_t)got;
            }
        }
    }
    buf0[have[0]] = '\0';
    buf1[have[1]] = '\0';
}

/* fork_piped(): where the child's standard output and error go, and whether
 * it may leave a core file. */
enum { OUT_TO_FIRST = 1, OUT_TO_SECOND = 2, ERR_TO_SECOND = 4, NO_CORE_DUMP = 8 };

/* Fork a child with two pipes to the parent; its standard output and error
 * go to them as `how` says, and it runs child(arg, fd), fd the write end of
 * the first pipe (its stdout when that goes there), then _exit(127)s if
 * child returned.  The parent reads both pipes to their end into first[]
 * and second[], as read_both() does, and waits for the child.  Returns its
 * wait status, or -1 when it could not be started. */
__attribute__((unused)) static int fork_piped(int how, void (*child)(void *arg, int fd), void *arg, char *first,
                                              size_t first_size, char *second, size_t second_size)
{
    int a[2], b[2];
    first[0] = second[0] = '\0';
    if (pipe(a) != 0)
        return -1;
    if (pipe(b) != 0) {
        close(a[0]);
        close(a[1]);
        return -1;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (how & NO_CORE_DUMP) {
            struct rlimit no_core = { 0, 0 };
            setrlimit(RLIMIT_CORE, &no_core);
        }
        close(a[0]);
        close(b[0]);
        if (how & OUT_TO_FIRST)
            dup2(a[1], STDOUT_FILENO);
        if (how & OUT_TO_SECOND)
            dup2(b[1], STDOUT_FILENO);
        if (how & ERR_TO_SECOND)
            dup2(b[1], STDERR_FILENO);
        close(b[1]);
        if (how & OUT_TO_FIRST) {
            close(a[1]);
            a[1] = STDOUT_FILENO;
        }
        child(arg, a[1]);
        _exit(127);
    }
    close(a[1]);
    close(b[1]);
    if (pid > 0)
        read_both(a[0], first, first_size, b[0], second, second_size);
    close(a[0]);
    close(b[0]);
    int status = -1;
    if (pid > 0)
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
    return status;
}

struct command {
    const char *file;
    char *const *argv, *const *env;
};

__attribute__((unused)) static void exec_command(void *arg, int fd)
{
    const struct command *c = (const struct command *)arg;
    (void)fd;
    if (c->env != NULL)
        execve(c->file, c->argv, c->env);
    else
        execvp(c->file, c->argv);
}

/* Run argv: execve of `file` with env, or a PATH search with this
 * environment when env is NULL.  Its standard output lands in out[], its
 * standard error in err[] (NUL-terminated, cut to size).  Returns the wait
 * status, or -1 when it could not be started. */
__attribute__((unused)) static int run_command(const char *file, char *const argv[], char *const env[], char *out,
                                               size_t out_size, char *err, size_t err_size)
{
    struct command c = { file, argv, env };
    return fork_piped(OUT_TO_FIRST | ERR_TO_SECOND, exec_command, &c, out, out_size, err, err_size);
}

/* A wait status in words, for a TAP line: "exit 3" followed by what
 * meaning(3) says, "killed by signal 6 (Aborted)", "no child" for -1. */
__attribute__((unused)) static void status_text(char *out, size_t size, int status, const char *(*meaning)(int code))
{
    if (status == -1)
        snprintf(out, size, "no child");
    else if (WIFSIGNALED(status))
        snprintf(out, size, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else if (WIFEXITED(status))
        snprintf(out, size, "exit %d%s", WEXITSTATUS(status), meaning(WEXITSTATUS(status)));
    else
        snprintf(out, size, "status 0x%x", status);
}

/* ---- time ---- */

/* Sleep the whole of ms milliseconds, signals or not. */
__attribute__((unused)) static void sleep_ms(long ms)
{
    struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&t, &t) != 0 && errno == EINTR)
        ;
}

#endif
