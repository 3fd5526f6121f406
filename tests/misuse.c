/* misuse.c - heap misuse is reported with one exact line on stderr and ends
 * the program with SIGABRT; valid use prints nothing.  Each case runs in a
 * forked child: the child writes the line it expects (it knows the pointer)
 * to one pipe, then misbehaves with its stderr on another pipe. */
#define _GNU_SOURCE
#include <malloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include "mymalloc.h"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "tap.h"
#pragma GCC diagnostic pop

static int expect_fd = -1;

/* The child's expected stderr line (without the newline). */
__attribute__((format(printf, 1, 2)))
static void expect(const char *fmt, ...)
{
    char line[400];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line - 1)
        _exit(2);
    line[n++] = '\n';
    if (write(expect_fd, line, (size_t)n) != n)
        _exit(2);
    close(expect_fd);
}

static unsigned long addr(const void *p) { return (unsigned long)(uintptr_t)p; }

/* Keep the compiler from reasoning about what is passed to free() (and
 * warning about the deliberate use after free). */
static void *opaque(void *p)
{
    void *volatile v = p;
    return v;
}

/* Three blocks of 48 bytes in a row: the middle one never touches the top.
 * A child that cannot lay them out says so in its expected line. */
static char *guarded_40(void)
{
    char *a = malloc(40), *p = malloc(40), *c = malloc(40);
    if (a == NULL || p == NULL || c == NULL || p != a + 48 || c != p + 48) {
        expect("(setup failed: blocks %p %p %p not adjacent)", (void *)a, (void *)p, (void *)c);
        _exit(3);
    }
    return p;
}

/* ---- the cases (each runs in a child) ---- */

static void double_free_small(void)
{
    char *p = guarded_40();
    free(opaque(p));
    expect("mymalloc: free(): double free of 0x%lx (block of 48 bytes)", addr(p));
    free(opaque(p));
}

static void double_free_merged_backward(void)
{
    char *p = guarded_40(), *before = p - 48;
    free(before);
    free(opaque(p));                         /* joins the free block before it */
    expect("mymalloc: free(): double free of 0x%lx (block of 48 bytes)", addr(p));
    free(opaque(p));
}

static void double_free_merged_forward(void)
{
    char *a = malloc(40), *p = malloc(40), *n = malloc(40), *c = malloc(40);
    if (p != a + 48 || n != p + 48 || c != n + 48) {
        expect("(setup failed: blocks not adjacent)");
        _exit(3);
    }
    free(n);
    free(opaque(p));                         /* absorbs the free block after it */
    expect("mymalloc: free(): double free of 0x%lx (block of 96 bytes)", addr(p));
    free(opaque(p));
}

static void double_free_merged_into_top(void)
{
    char *p = malloc(40);
    size_t top_before = mallinfo2().keepcost;
    free(opaque(p));                         /* p becomes the top (and may be trimmed) */
    size_t top = mallinfo2().keepcost;
    if (top_before == 0 || top == 0) {
        expect("(setup failed: no top block)");
        _exit(3);
    }
    expect("mymalloc: free(): double free of 0x%lx (block of %zu bytes)", addr(p), top);
    free(opaque(p));
}

static void realloc_freed(void)
{
    char *p = guarded_40();
    free(opaque(p));
    expect("mymalloc: realloc(): double free of 0x%lx (block of 48 bytes)", addr(p));
    void *q = realloc(opaque(p), 100);
    (void)q;
}

static void realloc_freed_to_zero(void)
{
    char *p = guarded_40();
    free(opaque(p));
    expect("mymalloc: realloc(): double free of 0x%lx (block of 48 bytes)", addr(p));
    void *q = realloc(opaque(p), 0);
    (void)q;
}

static void free_misaligned(void)
{
    char *p = guarded_40();
    expect("mymalloc: free(): invalid pointer 0x%lx (not 16-byte aligned)", addr(p + 8));
    free(opaque(p + 8));
}

/* For a 16-aligned pointer that is not ours, the library reads the word
 * before it as a header: with the mapped flag clear (we zero it) the bounds
 * check rejects it as "not from this heap". */
static void free_stack(void)
{
    _Alignas(16) unsigned char buf[64];
    memset(buf, 0, sizeof buf);
    expect("mymalloc: free(): invalid pointer 0x%lx (not from mymalloc)", addr(buf + 16));
    free(opaque(buf + 16));
}

static _Alignas(16) unsigned char static_array[64];   /* zero: a clear "header" */

static void free_static(void)
{
    expect("mymalloc: free(): invalid pointer 0x%lx (not from mymalloc)", addr(static_array + 16));
    free(opaque(static_array + 16));
}

static void usable_size_freed(void)
{
    char *p = guarded_40();
    free(opaque(p));
    expect("mymalloc: malloc_usable_size(): freed block 0x%lx (block of 48 bytes)", addr(p));
    size_t n = malloc_usable_size(opaque(p));
    (void)n;
}

static void free_sized_freed(void)
{
    char *p = guarded_40();
    free(opaque(p));
    expect("mymalloc: free_sized(): double free of 0x%lx (block of 48 bytes)", addr(p));
    free_sized(opaque(p), 40);
}

static void free_aligned_sized_freed(void)
{
    char *p = guarded_40();
    free(opaque(p));
    expect("mymalloc: free_aligned_sized(): double free of 0x%lx (block of 48 bytes)", addr(p));
    free_aligned_sized(opaque(p), 16, 40);
}

static void corrupted_size(void)
{
    char *p = guarded_40();
    size_t bogus = (size_t)1 << 40;
    size_t *words = opaque(p);
    words[-1] = bogus | 3;                   /* in use, previous in use, absurd size */
    expect("mymalloc: free(): corrupted header of block 0x%lx (overwritten: did the block at 0x%lx before it run past its end?)",
           addr(p), addr(p - 48));
    free(opaque(p));
}

static void corrupted_mapped_flag(void)
{
    char *p = guarded_40();
    size_t *words = opaque(p);
    words[-1] = 48 | 7;                      /* claims to be a mapped block */
    words[-2] = 0;                           /* with an impossible mapping offset */
    expect("mymalloc: free(): corrupted header of block 0x%lx (overwritten: did the block at 0x%lx before it run past its end?)",
           addr(p), addr(p - 48));
    free(opaque(p));
}

static void valid_use(void)
{
    expect("%s", "");                        /* nothing expected: an empty line marker */
    char *keep[64];
    for (int i = 0; i < 64; i++) {
        keep[i] = malloc((size_t)(i * 37 + 1));
        if (keep[i] == NULL)
            _exit(4);
        memset(keep[i], i, (size_t)(i * 37 + 1));
    }
    for (int i = 0; i < 64; i += 3)
        free(keep[i]);
    for (int i = 1; i < 64; i += 3) {
        char *q = realloc(keep[i], (size_t)(i * 100 + 50));
        if (q == NULL)
            _exit(4);
        keep[i] = q;
    }
    for (int i = 2; i < 64; i += 3) {
        if (malloc_usable_size(keep[i]) < (size_t)(i * 37 + 1))
            _exit(5);
        free_sized(keep[i], (size_t)(i * 37 + 1));
    }
    for (int i = 1; i < 64; i += 3)
        free(keep[i]);
    void *a = aligned_alloc(256, 1000), *c = calloc(10, 100), *big = malloc(1 << 20);
    if (a == NULL || c == NULL || big == NULL)
        _exit(4);
    free_aligned_sized(a, 256, 1000);
    free(c);
    free(big);
    free(NULL);
    if (mymalloc_check() != 0)
        _exit(6);
    _exit(0);
}

/* ---- the parent ---- */

struct outcome {
    int status;
    char want[512], got[512];
};

static void read_all(int fd, char *buf, size_t size)
{
    size_t length = 0;
    ssize_t n;
    while (length < size - 1 && (n = read(fd, buf + length, size - 1 - length)) > 0)
        length += (size_t)n;
    buf[length] = '\0';
    char sink[256];
    while (read(fd, sink, sizeof sink) > 0)
        ;
}

static struct outcome run(void (*scenario)(void))
{
    struct outcome o;
    int want[2], got[2];
    memset(&o, 0, sizeof o);
    o.status = -1;
    if (pipe(want) != 0 || pipe(got) != 0)
        return o;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit no_core = { 0, 0 };
        setrlimit(RLIMIT_CORE, &no_core);
        close(want[0]);
        close(got[0]);
        dup2(got[1], STDERR_FILENO);
        close(got[1]);
        expect_fd = want[1];
        scenario();
        _exit(0);
    }
    close(want[1]);
    close(got[1]);
    read_all(want[0], o.want, sizeof o.want);
    read_all(got[0], o.got, sizeof o.got);
    close(want[0]);
    close(got[0]);
    if (pid > 0)
        waitpid(pid, &o.status, 0);
    return o;
}

static void aborts(const char *what, void (*scenario)(void))
{
    struct outcome o = run(scenario);
    int signalled = o.status != -1 && WIFSIGNALED(o.status) && WTERMSIG(o.status) == SIGABRT;
    ok(signalled, "%s: the child died by SIGABRT (status 0x%x)", what, o.status);
    int same = o.want[0] != '\0' && strcmp(o.want, o.got) == 0;
    ok(same, "%s: stderr is exactly: %.*s", what, (int)strcspn(o.want, "\n"), o.want);
    if (!same)
        diag("expected \"%s\", got \"%s\"", o.want, o.got);
}

int main(void)
{
    /* Small blocks belong in the heap whatever the environment says (the
     * children inherit this). */
    int set = mallopt(M_MMAP_THRESHOLD, 128 * 1024) == 1 && mallopt(M_MMAP_MAX, 65536) == 1;
    plan(31);
    ok(set, "mallopt sets the default mmap threshold and mmap max");
    diag("each case runs in a child with its stderr captured");

    aborts("double free of a small block", double_free_small);
    aborts("double free after merging with the free block before", double_free_merged_backward);
    aborts("double free after merging with the free block after", double_free_merged_forward);
    aborts("double free after merging into the top", double_free_merged_into_top);
    aborts("realloc of a freed block", realloc_freed);
    aborts("realloc(p, 0) of a freed block", realloc_freed_to_zero);
    aborts("free of a misaligned pointer", free_misaligned);
    aborts("free of a stack address", free_stack);
    aborts("free of a static array", free_static);
    aborts("malloc_usable_size of a freed block", usable_size_freed);
    aborts("free_sized of a freed block", free_sized_freed);
    aborts("free_aligned_sized of a freed block", free_aligned_sized_freed);
    aborts("free of a block with a corrupted size", corrupted_size);
    aborts("free of a block with a forged mapped flag", corrupted_mapped_flag);

    struct outcome o = run(valid_use);
    ok(o.status != -1 && WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0,
       "valid use: the child exits with status 0 (status 0x%x)", o.status);
    ok(o.got[0] == '\0', "valid use: nothing on stderr%s%s", o.got[0] ? " - got: " : "", o.got);
    return done();
}
