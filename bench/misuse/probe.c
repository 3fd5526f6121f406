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
 * A few cases exit at once after the misuse instead (the bug is the last
 * thing the program does: only a check at free or at exit can see it).
 *
 * Exit statuses: 0 the case ran to its end; 2 usage error; 3 "protected":
 * the probe's own access to memory it no longer owns (or never owned) was
 * stopped by the allocator: a SIGSEGV or SIGBUS at exactly that memory, or
 * a read of a freed block found none of its old contents (a note says
 * which); 4 the probe could not do its work (malloc or mmap failed); 5 "not
 * applicable": the allocator lacks the function the case misuses.  A fault
 * anywhere else is not caught: the process dies of it.
 *
 * "probe which" prints where malloc comes from (and mymalloc's version when
 * it is loaded): the table script checks that the preload took effect.
 * "probe list" prints the case names. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
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

enum {
    EXIT_USAGE = 2,
    EXIT_PROTECTED = 3,         /* the allocator stopped the probe's access */
    EXIT_PROBE_FAILED = 4,
    EXIT_NOT_APPLICABLE = 5,    /* the allocator lacks what the case misuses */
};

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
        _exit(EXIT_PROBE_FAILED);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL) {
        note("malloc returned NULL");
        _exit(EXIT_PROBE_FAILED);
    }
    return launder(p);
}

static char *xmmap(size_t length, int protection)
{
    char *p = mmap(NULL, length, protection, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        note("mmap failed");
        _exit(EXIT_PROBE_FAILED);
    }
    return p;
}

/* While armed, a SIGSEGV or SIGBUS at an address in [fault_from, fault_to)
 * (the memory the probe is misusing) ends the run with EXIT_PROTECTED after
 * fault_line; any other fault kills the process as usual (SA_RESETHAND put
 * the default action back, and the faulting access runs again). */
static char *volatile fault_from, *volatile fault_to;
static const char *volatile fault_line;

static void on_fault(int sig, siginfo_t *info, void *context)
{
    (void)context;
    char *at = info->si_addr;
    if (at >= fault_from && at < fault_to) {
        const char *head = sig == SIGBUS ? "note: SIGBUS " : "note: SIGSEGV ";
        ssize_t written = write(STDOUT_FILENO, head, strlen(head));
        written = write(STDOUT_FILENO, fault_line, strlen(fault_line));
        (void)written;
        _exit(EXIT_PROTECTED);
    }
}

/* `line`: the rest of the note ("reading the freed block\n"), after the
 * signal's name. */
static void arm_fault(void *from, size_t length, const char *line)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    fault_line = line;
    fault_from = from;
    fault_to = (char *)from + length;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
}

static void disarm_fault(void)
{
    fault_from = fault_to = NULL;
    signal(SIGSEGV, SIG_DFL);
    signal(SIGBUS, SIG_DFL);
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
        _exit(EXIT_PROBE_FAILED);
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
    char *page = xmmap(4096, PROT_READ | PROT_WRITE);
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

/* ---- the classes of GrapheneOS hardened_malloc's test suite ---- */

/* A double free with another free in between: the block is no longer the
 * last one freed (at the head of its free list or cache). */
static void double_free_delayed(void)
{
    char *p = guarded(40), *other = xmalloc(40);
    memset(other, 'o', 40);
    free(p);
    free(other);
    free(launder(p));
    aftermath(40, NULL);
}

static void double_free_large_delayed(void)
{
    char *p = xmalloc(1 << 20), *other = xmalloc(1 << 20);
    memset(p, 'p', 1 << 20);
    memset(other, 'o', 1 << 20);
    free(p);
    free(other);
    free(launder(p));
    aftermath(1 << 20, NULL);
}

static void free_misaligned_large(void)
{
    char *p = xmalloc(1 << 20);
    memset(p, 'p', 1 << 20);
    free(launder(p + 8));
    aftermath(1 << 20, NULL);
}

/* Two PROT_NONE pages; the pointer is the second one's start, so whatever
 * an allocator looks at before it (a header) is unreadable too. */
static void invalid_free_protected(void)
{
    char *pages = xmmap(8192, PROT_NONE);
    free(launder(pages + 4096));
    aftermath(40, NULL);
}

/* The same with two ordinary read-write pages (all zero), never malloc's. */
static void invalid_free_unprotected(void)
{
    char *pages = xmmap(8192, PROT_READ | PROT_WRITE);
    free(launder(pages + 4096));
    aftermath(40, NULL);
}

/* 32 live blocks of 16 bytes; the pointer freed is `offset` bytes past the
 * lowest of them: in or near their region, 16-byte aligned, never handed
 * out (a note says so if it was, and that block is not freed again). */
static void free_in_small_region(size_t offset)
{
    enum { LIVE = 32 };
    char *live[LIVE];
    uintptr_t lowest = UINTPTR_MAX;
    for (int i = 0; i < LIVE; i++) {
        live[i] = xmalloc(16);
        memset(live[i], 'l', 16);
        if ((uintptr_t)live[i] < lowest)
            lowest = (uintptr_t)live[i];
    }
    char *target = (char *)(lowest + offset);
    for (int i = 0; i < LIVE; i++) {
        if (live[i] == target) {
            note("that address was handed out: a valid free");
            live[i] = NULL;
        }
    }
    free(launder(target));
    aftermath(16, NULL);
    for (int i = 0; i < LIVE; i++)
        free(live[i]);
}

static void invalid_free_small_region(void)
{
    free_in_small_region(64 * 16);
}

static void invalid_free_small_region_far(void)
{
    free_in_small_region(4 * 4096);
}

/* What an uninitialised pointer might hold: 0x5555555555555550 (a fill
 * pattern; not a canonical x86-64 address, so any access to it faults),
 * made at run time, so that the compiler sees no undefined behaviour. */
static void *garbage_pointer(void)
{
    return launder((void *)(UINTPTR_MAX / 3 & ~(uintptr_t)15));
}

static void note_usable(size_t n)
{
    char text[80];
    snprintf(text, sizeof text, "malloc_usable_size returned %zu", n);
    note(text);
}

static void free_uninit(void)
{
    free(garbage_pointer());
    aftermath(40, NULL);
}

static void realloc_uninit(void)
{
    char *q = realloc(garbage_pointer(), 64);
    if (q != NULL) {
        memset(q, 'q', 64);
        free(q);
    }
    aftermath(64, NULL);
}

static void usable_size_uninit(void)
{
    note_usable(malloc_usable_size(garbage_pointer()));
    aftermath(40, NULL);
}

static void usable_size_interior(void)
{
    char *p = guarded(64);
    note_usable(malloc_usable_size(launder(p + 16)));
    free(p);
    aftermath(64, NULL);
}

static void usable_size_misaligned(void)
{
    char *p = guarded(64);
    note_usable(malloc_usable_size(launder(p + 1)));
    free(p);
    aftermath(64, NULL);
}

static void usable_size_freed(void)
{
    char *p = guarded(64);
    free(p);
    note_usable(malloc_usable_size(launder(p)));
    aftermath(64, NULL);
}

static uint64_t pattern_word(size_t i)
{
    return UINT64_C(0xd1ce5eed00000000) | i;
}

/* The block filled with words of a pattern, freed, read back.  EXIT_PROTECTED
 * when the read faults (at once) or finds no word of the pattern left (after
 * aftermath); else a note of how much is left. */
static void read_after_free(char *p, size_t size)
{
    uint64_t *w = (uint64_t *)p;
    size_t words = size / 8, kept = 0;
    for (size_t i = 0; i < words; i++)
        w[i] = pattern_word(i);
    free(p);
    arm_fault(p, size, "reading the freed block\n");
    const volatile uint64_t *r = launder(p);
    for (size_t i = 0; i < words; i++)
        kept += r[i] == pattern_word(i);
    disarm_fault();
    char text[100];
    if (kept != 0)
        snprintf(text, sizeof text, "old contents still readable, %zu of %zu words", kept, words);
    else
        snprintf(text, sizeof text, "old contents gone");
    note(text);
    aftermath(size, NULL);
    if (kept == 0)
        exit(EXIT_PROTECTED);
}

static void read_after_free_small(void)
{
    read_after_free(guarded(128), 128);
}

static void read_after_free_large(void)
{
    read_after_free(xmalloc(1 << 20), 1 << 20);
}

/* The whole (64-byte) block written after the free. */
static void write_after_free_small(void)
{
    char *p = guarded(64);
    free(p);
    memset(launder(p), 'A', 64);
    aftermath(64, NULL);
}

/* Free, malloc of the same size, then a write through the old pointer:
 * an allocator that hands the block straight back lets the dangling write
 * land in its new owner. */
static void write_after_free_reuse(void)
{
    char *p = guarded(64);
    free(p);
    char *q = xmalloc(64);
    memset(q, 'q', 64);
    memset(launder(p), 'A', 16);
    if (q == p)
        note("malloc handed the freed block straight back: the dangling write landed in the new block");
    aftermath(64, q);
    free(q);
}

/* One byte deep inside the freed block, past the links most allocators keep
 * in its first 16 bytes. */
static void write_after_free_deep(void)
{
    char *p = guarded(256);
    free(p);
    ((volatile char *)launder(p))[200] = 'A';
    aftermath(256, NULL);
}

static void write_after_free_large(void)
{
    char *p = xmalloc(1 << 20);
    memset(p, 'p', 1 << 20);
    free(p);
    arm_fault(p, 1 << 20, "writing the freed block\n");
    memset(launder(p), 'A', 64);
    ((volatile char *)launder(p))[1 << 19] = 'A';
    disarm_fault();
    aftermath(1 << 20, NULL);
}

/* malloc(0)'s block, read or written: EXIT_PROTECTED when that faults (as
 * would a NULL return). */
static char *zero_size_block(void)
{
    char *p = malloc(0);
    if (p == NULL) {
        note("malloc(0) returned NULL");
        exit(EXIT_PROTECTED);
    }
    return launder(p);
}

static void read_zero_size(void)
{
    char *p = zero_size_block();
    arm_fault(p, 1, "reading malloc(0)'s block\n");
    char c = *(volatile char *)p;
    disarm_fault();
    (void)c;
    free(p);
    aftermath(0, NULL);
}

static void write_zero_size(void)
{
    char *p = zero_size_block();
    arm_fault(p, 1, "writing malloc(0)'s block\n");
    *(volatile char *)p = 1;
    disarm_fault();
    free(p);
    aftermath(0, NULL);
}

/* `bytes` bytes written just past malloc_usable_size (not past the
 * requested size), then the block freed.  EXIT_PROTECTED when the write
 * faults. */
static void overflow_past_usable(char *p, size_t size, size_t bytes)
{
    size_t usable = malloc_usable_size(p);
    arm_fault(p + usable, bytes, "writing past the block\n");
    memset(launder(p + usable), 'A', bytes);
    disarm_fault();
    free(p);
    aftermath(size, NULL);
}

static void overflow_usable_1(void)
{
    overflow_past_usable(guarded(100), 100, 1);
}

static void overflow_usable_8(void)
{
    overflow_past_usable(guarded(100), 100, 8);
}

/* 256 KiB + 100: a mapping of its own under glibc and mymalloc. */
static void overflow_large_usable_1(void)
{
    overflow_past_usable(xmalloc((256 << 10) + 100), (256 << 10) + 100, 1);
}

static void overflow_large_usable_8(void)
{
    overflow_past_usable(xmalloc((256 << 10) + 100), (256 << 10) + 100, 8);
}

/* free_sized (C23) with a size other than the one allocated; EXIT_NOT_APPLICABLE
 * when the allocator under test (the library malloc comes from) has none. */
static void free_sized_wrong(void)
{
    Dl_info sized_info, malloc_info;
    void *sized = dlsym(RTLD_DEFAULT, "free_sized");
    if (sized == NULL || !dladdr(sized, &sized_info) || !dladdr(dlsym(RTLD_DEFAULT, "malloc"), &malloc_info) ||
        sized_info.dli_fbase != malloc_info.dli_fbase) {
        note("no free_sized");
        exit(EXIT_NOT_APPLICABLE);
    }
    void (*free_sized_fn)(void *, size_t) = (void (*)(void *, size_t))sized;
    char *p = guarded(100);
    free_sized_fn(p, 40);
    aftermath(100, NULL);
}

/* Exits at once: 8 bytes past the usable end of the first of two 24-byte
 * blocks (the next block's header, in most allocators), then that block is
 * freed, and nothing else. */
static void overflow_next_header_exit(void)
{
    char *p = xmalloc(24), *next = xmalloc(24);
    memset(p, 'p', 24);
    memset(next, 'n', 24);
    memset(launder(p + malloc_usable_size(p)), 'A', 8);
    free(p);
}

/* Exits at once: the last thing the program does is write to a block it
 * freed. */
static void dangling_write_exit(void)
{
    char *p = xmalloc(40);
    memset(p, 'p', 40);
    free(p);
    *(volatile char *)launder(p) = 'A';
}

/* Do the blocks of `size` bytes at x and y share a byte? */
static int overlaps(const char *x, const char *y, size_t size)
{
    return (uintptr_t)x < (uintptr_t)y + size && (uintptr_t)y < (uintptr_t)x + size;
}

/* Two blocks freed, a then b; the lowest byte of b's first word (the link to
 * a, in a singly linked free list) raised by 0x40 (its low nibble, hence its
 * alignment, unchanged); then four blocks of the size.  Notes a block
 * handed out over another live one.  The live blocks hold zeros, so a list
 * that follows the bent link ends there rather than at a wild address. */
static void freelist_partial_overwrite(void)
{
    enum { SIZE = 48, LIVE = 8, TAKEN = 4 };
    char *live[LIVE + TAKEN];
    int overlap = 0;
    for (int i = 0; i < LIVE; i++) {
        live[i] = xmalloc(SIZE);
        memset(live[i], 0, SIZE);
    }
    char *a = xmalloc(SIZE), *b = xmalloc(SIZE);
    memset(a, 0, SIZE);
    memset(b, 0, SIZE);
    free(a);
    free(b);
    volatile unsigned char *low = launder(b);
    *low = (unsigned char)(*low + 0x40);
    for (int i = LIVE; i < LIVE + TAKEN; i++) {
        live[i] = xmalloc(SIZE);
        for (int j = 0; j < i && !overlap; j++) {
            if (overlaps(live[i], live[j], SIZE)) {
                note("malloc handed out a block overlapping another live one");
                overlap = 1;
            }
        }
    }
    for (int i = LIVE; i < LIVE + TAKEN; i++)
        memset(live[i], 'q', SIZE);
    aftermath(SIZE, NULL);
    for (int i = 0; i < LIVE + TAKEN; i++)
        free(live[i]);
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
    { "double-free-delayed", double_free_delayed },
    { "double-free-large-delayed", double_free_large_delayed },
    { "free-misaligned-large", free_misaligned_large },
    { "invalid-free-protected", invalid_free_protected },
    { "invalid-free-unprotected", invalid_free_unprotected },
    { "invalid-free-small-region", invalid_free_small_region },
    { "invalid-free-small-region-far", invalid_free_small_region_far },
    { "free-uninit", free_uninit },
    { "realloc-uninit", realloc_uninit },
    { "usable-size-uninit", usable_size_uninit },
    { "usable-size-interior", usable_size_interior },
    { "usable-size-misaligned", usable_size_misaligned },
    { "usable-size-freed", usable_size_freed },
    { "read-after-free-small", read_after_free_small },
    { "read-after-free-large", read_after_free_large },
    { "write-after-free-small", write_after_free_small },
    { "write-after-free-reuse", write_after_free_reuse },
    { "write-after-free-deep", write_after_free_deep },
    { "write-after-free-large", write_after_free_large },
    { "read-zero-size", read_zero_size },
    { "write-zero-size", write_zero_size },
    { "overflow-usable-1", overflow_usable_1 },
    { "overflow-usable-8", overflow_usable_8 },
    { "overflow-large-usable-1", overflow_large_usable_1 },
    { "overflow-large-usable-8", overflow_large_usable_8 },
    { "free-sized-wrong", free_sized_wrong },
    { "overflow-next-header-exit", overflow_next_header_exit },
    { "dangling-write-exit", dangling_write_exit },
    { "freelist-partial-overwrite", freelist_partial_overwrite },
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
    return EXIT_USAGE;
}
