/* misuse.c - heap-misuse fault injection.  Every case runs in a forked child
 * (core dumps off) that works out the exact report line it expects (it knows
 * the pointers), writes it to one pipe, and then commits the misuse with its
 * stderr on another pipe.
 *
 *   pass 1: the child must die by SIGABRT having printed exactly that line;
 *   pass 2: the same case with "report and carry on" (mallopt(M_MYMALLOC_ABORT,
 *           0), or MYMALLOC_ABORT=0 in the environment of a re-executed child,
 *           or glibc's mallopt(M_CHECK_ACTION, 1)): the child must print the
 *           same line, return from the misuse, and keep a usable heap: it
 *           allocates, verifies and frees a few thousand blocks, checks
 *           mymalloc_check(), and exits 0.
 *
 * Layout facts the cases rely on (lib/block.h): a request of n bytes gets a
 * block of max(32, round_up(n + 8, 16)) bytes (8 more at check level 2), the
 * header word sits just before the user pointer, a free block keeps its bin
 * links at user offsets 0 and 8 and its size in its last word (the boundary
 * tag).  Blocks that must be neighbours are checked to be (row(), at_top()),
 * retrying with fresh blocks when the heap hands out scattered ones.
 *
 * The per-thread cache of small blocks (when the library has one) is turned
 * off for the cases about the heap's own checks, and on for the "cache:"
 * cases (double free and use after free of a cached block). */
#include "misuse.h"

/* glibc's own allocator, still exported: a pointer from another allocator. */
extern void *__libc_malloc(size_t size);

#define SIZE_FIELD ((((size_t)1 << 46) - 1) & ~(size_t)15)   /* header bits 4-45 */

/* ------------------------------------------------------------------ child side */

/* Keep the compiler from reasoning about a pointer (no dead-store removal
 * before a free, no warnings about the deliberate misuse). */
static void *opaque(void *p)
{
    void *volatile v = p;
    return v;
}

/* Every injected fault is a volatile write: the compiler may otherwise drop
 * a store into memory it knows was freed, or one just before a free. */
static volatile size_t *words(void *p) { return (volatile size_t *)opaque(p); }
static volatile char *bytes(void *p) { return (volatile char *)opaque(p); }
static void scribble(void *p, char c, size_t n)
{
    volatile char *b = bytes(p);
    for (size_t k = 0; k < n; k++)
        b[k] = c;
}
static size_t head_of(void *p) { return words(p)[-1]; }
static size_t size_in_header(void *p) { return head_of(p) & SIZE_FIELD; }

/* k blocks of n bytes, each starting where the one before ends, zeroed (so no
 * stale header hides in them).  Scattered blocks are leaked and tried again. */
static int try_row(size_t n, int k, char **out)
{
    for (int attempt = 0; attempt < 200; attempt++) {
        int good = 1;
        for (int i = 0; i < k; i++) {
            out[i] = opaque(malloc(n));
            if (out[i] == NULL)
                return 0;
        }
        for (int i = 0; i + 1 < k; i++)
            if (out[i + 1] != out[i] + size_in_header(out[i]))
                good = 0;
        if (good) {
            for (int i = 0; i < k; i++)
                memset(out[i], 0, n);
            return 1;
        }
    }
    return 0;
}

static void row(size_t n, int k, char **out)
{
    if (!try_row(n, k, out))
        setup_failed("no adjacent blocks");
}

/* A block of n bytes whose next neighbour is the top, with an in-use block
 * before it (*guard).  Trimming is turned off so the top stays put. */
static char *at_top(size_t n, char **guard)
{
    if (mallopt(M_TRIM_THRESHOLD, -1) != 1)
        _exit(EXIT_MALLOPT);
    for (int attempt = 0; attempt < 50; attempt++) {
        char *b[3];
        row(n, 3, b);
        size_t last = size_in_header(b[2]), before = mallinfo2().keepcost;
        free(opaque(b[2]));
        if (mallinfo2().keepcost == before + last) {
            *guard = b[0];
            return b[1];
        }
    }
    setup_failed("no block next to the top");
}

/* After carrying on: a realloc refused with NULL and EINVAL. */
static void must_refuse(void *q)
{
    if (carry_on && (q != NULL || errno != EINVAL))
        _exit(EXIT_CASE);
}

/* ---- double free ---- */

static void double_free_small(void)
{
    char *b[3];
    row(40, 3, b);
    free(opaque(b[1]));
    expect("mymalloc: free(): double free of 0x%lx (block of 48 bytes)", addr(b[1]));
    free(opaque(b[1]));
}

static void double_free_medium(void)
{
    char *b[3];
    row(3000, 3, b);
    free(opaque(b[1]));
    expect("mymalloc: free(): double free of 0x%lx (block of 3008 bytes)", addr(b[1]));
    free(opaque(b[1]));
}

static void double_free_large_heap(void)
{
    char *b[3];
    row(100000, 3, b);
    free(opaque(b[1]));
    expect("mymalloc: free(): double free of 0x%lx (block of 100016 bytes)", addr(b[1]));
    free(opaque(b[1]));
}

static void double_free_mapped(void)
{
    char *p = opaque(malloc(200 * KIB));
    if (p == NULL)
        setup_failed("malloc");
    free(opaque(p));
    expect("mymalloc: free(): double free of 0x%lx (a mapped block, already unmapped)", addr(p));
    free(opaque(p));
}

/* Only the last 64 unmaps are remembered: older ones are "not mapped". */
static void double_free_mapped_forgotten(void)
{
    char *p = opaque(malloc(130 * KIB)), *other[64];
    for (int i = 0; i < 64; i++)
        if ((other[i] = opaque(malloc(130 * KIB))) == NULL)
            setup_failed("malloc");
    if (p == NULL)
        setup_failed("malloc");
    free(opaque(p));
    for (int i = 0; i < 64; i++)
        free(other[i]);
    expect("mymalloc: free(): invalid pointer 0x%lx (not mapped: not from mymalloc, or freed twice)", addr(p));
    free(opaque(p));
}

/* A block at the heap's end, freed into the top, whose memory the trim then
 * gives back: its header is unmapped, though inside the heap's bounds. */
static void double_free_trimmed(void)
{
    char *b[4];
    if (mallopt(M_TRIM_THRESHOLD, -1) != 1)
        _exit(EXIT_MALLOPT);
#ifdef M_MYMALLOC_DECAY
    if (mallopt(M_MYMALLOC_DECAY, 0) != 1)     /* every trim at once, not only the first */
        _exit(EXIT_MALLOPT);
#endif
    for (int attempt = 0;; attempt++) {
        if (attempt == 50)
            setup_failed("no blocks next to the top");
        row(100000, 4, b);
        size_t last = size_in_header(b[3]), before = mallinfo2().keepcost;
        free(opaque(b[3]));
        if (mallinfo2().keepcost == before + last)
            break;
    }
    if (mallopt(M_TRIM_THRESHOLD, 128 * 1024) != 1)
        _exit(EXIT_MALLOPT);
    free(opaque(b[2]));
    free(opaque(b[1]));                        /* the top keeps 128 KiB: b[3] is released */
    unsigned char vec[1];
    uintptr_t page = ((uintptr_t)b[3] - 8) & ~(uintptr_t)4095;
    if (mincore((void *)page, 4096, vec) == 0)
        setup_failed("the heap was not trimmed");
    expect("mymalloc: free(): invalid pointer 0x%lx (not mapped: not from mymalloc, or freed twice)", addr(b[3]));
    free(opaque(b[3]));
}

/* p joins the free block before it: its old header (48, free) stays. */
static void double_free_merged_before(void)
{
    char *b[4];
    row(40, 4, b);
    free(opaque(b[1]));
    free(opaque(b[2]));
    expect("mymalloc: free(): double free of 0x%lx (block of 48 bytes)", addr(b[2]));
    free(opaque(b[2]));
}

/* p absorbs the free block after it: its header says 96. */
static void double_free_merged_after(void)
{
    char *b[4];
    row(40, 4, b);
    free(opaque(b[2]));
    free(opaque(b[1]));
    expect("mymalloc: free(): double free of 0x%lx (block of 96 bytes)", addr(b[1]));
    free(opaque(b[1]));
}

/* p becomes the top: its header is the top's. */
static void double_free_merged_into_top(void)
{
    char *guard, *p = at_top(40, &guard);
    free(opaque(p));
    expect("mymalloc: free(): double free of 0x%lx (block of %zu bytes)", addr(p), mallinfo2().keepcost);
    free(opaque(p));
}

static void *free_in_thread(void *p)
{
    free(opaque(p));
    return NULL;
}

static void double_free_threads(void)
{
    char *b[3];
    pthread_t t;
    row(40, 3, b);
    if (pthread_create(&t, NULL, free_in_thread, b[1]) != 0 || pthread_join(t, NULL) != 0)
        setup_failed("thread A");
    expect("mymalloc: free(): double free of 0x%lx (block of 48 bytes)", addr(b[1]));
    if (pthread_create(&t, NULL, free_in_thread, b[1]) != 0 || pthread_join(t, NULL) != 0)
        _exit(EXIT_CASE);
}

/* free(a); free(b); free(a): the classic dance around a last-freed check. */
static void double_free_aba(void)
{
    char *b[5];
    row(40, 5, b);
    free(opaque(b[1]));
    free(opaque(b[3]));
    expect("mymalloc: free(): double free of 0x%lx (block of 48 bytes)", addr(b[1]));
    free(opaque(b[1]));
}

static void double_free_after_realloc_moved(void)
{
    char *b[3];
    row(40, 3, b);
    char *q = opaque(realloc(opaque(b[1]), 4000));     /* cannot grow: moves */
    if (q == NULL || q == b[1])
        setup_failed("realloc did not move");
    expect("mymalloc: free(): double free of 0x%lx (block of 48 bytes)", addr(b[1]));
    free(opaque(b[1]));
}

static void double_free_after_realloc_zero(void)
{
    char *b[3];
    row(40, 3, b);
    if (realloc(opaque(b[1]), 0) != NULL)
        setup_failed("realloc(p, 0)");
    expect("mymalloc: free(): double free of 0x%lx (block of 48 bytes)", addr(b[1]));
    free(opaque(b[1]));
}

/* An aligned block merges with the free piece cut off its front: its old
 * header stays. */
static void double_free_aligned(void)
{
    char *p = opaque(aligned_alloc(256, 1000));
    if (p == NULL)
        setup_failed("aligned_alloc");
    size_t size = size_in_header(p);
    free(opaque(p));
    expect("mymalloc: free(): double free of 0x%lx (block of %zu bytes)", addr(p), size);
    free(opaque(p));
}

/* ---- other calls on a freed block ---- */

static void realloc_freed(void)
{
    char *b[3];
    row(40, 3, b);
    free(opaque(b[1]));
    expect("mymalloc: realloc(): double free of 0x%lx (block of 48 bytes)", addr(b[1]));
    must_refuse(opaque(realloc(opaque(b[1]), 100)));
}

static void free_sized_freed(void)
{
    char *b[3];
    row(40, 3, b);
    free(opaque(b[1]));
    expect("mymalloc: free_sized(): double free of 0x%lx (block of 48 bytes)", addr(b[1]));
    free_sized(opaque(b[1]), 40);
}

static void free_aligned_sized_freed(void)
{
    char *b[3];
    row(40, 3, b);
    free(opaque(b[1]));
    expect("mymalloc: free_aligned_sized(): double free of 0x%lx (block of 48 bytes)", addr(b[1]));
    free_aligned_sized(opaque(b[1]), 16, 40);
}

static void usable_size_freed(void)
{
    char *b[3];
    row(40, 3, b);
    free(opaque(b[1]));
    expect("mymalloc: malloc_usable_size(): freed block 0x%lx (block of 48 bytes)", addr(b[1]));
    if (malloc_usable_size(opaque(b[1])) != 0 && carry_on)
        _exit(EXIT_CASE);
}

/* ---- pointers that were never a block ---- */

static void free_misaligned(void)
{
    char *b[3];
    row(40, 3, b);
    expect("mymalloc: free(): invalid pointer 0x%lx (not 16-byte aligned)", addr(b[1] + 8));
    free(opaque(b[1] + 8));
}

static void realloc_misaligned(void)
{
    char *b[3];
    row(40, 3, b);
    expect("mymalloc: realloc(): invalid pointer 0x%lx (not 16-byte aligned)", addr(b[1] + 8));
    must_refuse(opaque(realloc(opaque(b[1] + 8), 100)));
}

static void free_stack(void)
{
    _Alignas(16) unsigned char buf[64];
    scribble(buf, 0, sizeof buf);              /* the "header" reads as 0 */
    expect("mymalloc: free(): invalid pointer 0x%lx (not from mymalloc)", addr(buf + 16));
    free(opaque(buf + 16));
}

static void usable_size_stack(void)
{
    _Alignas(16) unsigned char buf[64];
    scribble(buf, 0, sizeof buf);
    expect("mymalloc: malloc_usable_size(): invalid pointer 0x%lx (not from mymalloc)", addr(buf + 32));
    if (malloc_usable_size(opaque(buf + 32)) != 0 && carry_on)
        _exit(EXIT_CASE);
}

static _Alignas(16) unsigned char static_array[64];   /* zero: a clear "header" */

static void free_static(void)
{
    expect("mymalloc: free(): invalid pointer 0x%lx (not from mymalloc)", addr(static_array + 16));
    free(opaque(static_array + 16));
}

static void free_interior_16(void)
{
    char *b[3];
    row(40, 3, b);
    expect("mymalloc: free(): invalid pointer 0x%lx (inside the block at 0x%lx, block of 48 bytes)",
           addr(b[1] + 16), addr(b[1]));
    free(opaque(b[1] + 16));
}

static void free_interior_32(void)
{
    char *b[3];
    row(40, 3, b);
    scribble(b[1], 'A', 40);                     /* the "header" read is user data */
    expect("mymalloc: free(): invalid pointer 0x%lx (inside the block at 0x%lx, block of 48 bytes)",
           addr(b[1] + 32), addr(b[1]));
    free(opaque(b[1] + 32));
}

static void free_interior_large(void)
{
    char *b[3];
    row(100000, 3, b);
    expect("mymalloc: free(): invalid pointer 0x%lx (inside the block at 0x%lx, block of 100016 bytes)",
           addr(b[1] + 4096), addr(b[1]));
    free(opaque(b[1] + 4096));
}

static void free_interior_of_free_block(void)
{
    char *b[3];
    row(40, 3, b);
    free(opaque(b[1]));
    expect("mymalloc: free(): invalid pointer 0x%lx (inside the free block at 0x%lx, block of 48 bytes)",
           addr(b[1] + 16), addr(b[1]));
    free(opaque(b[1] + 16));
}

static void realloc_interior(void)
{
    char *b[3];
    row(40, 3, b);
    expect("mymalloc: realloc(): invalid pointer 0x%lx (inside the block at 0x%lx, block of 48 bytes)",
           addr(b[1] + 16), addr(b[1]));
    must_refuse(opaque(realloc(opaque(b[1] + 16), 100)));
}

/* Inside a mapped block: the library cannot tell it from a foreign pointer. */
static void free_interior_mapped(void)
{
    char *p = opaque(calloc(1, 200 * KIB));
    if (p == NULL)
        setup_failed("calloc");
    expect("mymalloc: free(): invalid pointer 0x%lx (not from mymalloc)", addr(p + 4096));
    free(opaque(p + 4096));
}

static void free_libc_block(void)
{
    char *q = __libc_malloc(40);
    if (q == NULL)
        setup_failed("__libc_malloc");
    expect("mymalloc: free(): invalid pointer 0x%lx (not from mymalloc)", addr(q));
    free(opaque(q));
}

static char *map_pages(size_t n)
{
    char *m = mmap(NULL, n * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        setup_failed("mmap");
    return m;
}

/* A page of our own with a plausible in-use heap header. */
static void free_fake_heap_header(void)
{
    char *page = map_pages(1);
    size_t *w = (size_t *)page;
    w[0] = 8;
    w[1] = 48 | 3;
    expect("mymalloc: free(): invalid pointer 0x%lx (not from mymalloc)", addr(page + 16));
    free(opaque(page + 16));
}

/* ... and one dressed as a mapped block (offset word and all). */
static void free_fake_mapped_header(void)
{
    char *page = map_pages(2);
    size_t *w = (size_t *)page;
    w[0] = 8;
    w[1] = (2 * 4096 - 16) | 1 | 4;
    expect("mymalloc: free(): invalid pointer 0x%lx (not from mymalloc)", addr(page + 16));
    free(opaque(page + 16));
}

static void free_unmapped_page_start(void)
{
    char *page = map_pages(2);
    munmap(page, 2 * 4096);
    expect("mymalloc: free(): invalid pointer 0x%lx (not mapped: not from mymalloc, or freed twice)",
           addr(page + 16));
    free(opaque(page + 16));
}

/* Not where a mapped block's pointer can be: a report, not a crash. */
static void free_unmapped_page_middle(void)
{
    char *page = map_pages(2);
    munmap(page, 2 * 4096);
    expect("mymalloc: free(): invalid pointer 0x%lx (not mapped: not from mymalloc, or freed twice)", addr(page + 48));
    free(opaque(page + 48));
}

/* Mapped but unreadable (PROT_NONE): the header is never read, at a
 * page start (where a mapped block's pointer would be) or inside a page. */
static void free_prot_none_page_start(void)
{
    char *page = map_pages(2);
    mprotect(page, 2 * 4096, PROT_NONE);
    expect("mymalloc: free(): invalid pointer 0x%lx (not mapped: not from mymalloc, or freed twice)",
           addr(page + 16));
    free(opaque(page + 16));
}

static void free_prot_none_page_middle(void)
{
    char *page = map_pages(2);
    mprotect(page, 2 * 4096, PROT_NONE);
    expect("mymalloc: free(): invalid pointer 0x%lx (not mapped: not from mymalloc, or freed twice)", addr(page + 48));
    free(opaque(page + 48));
}

static void free_small_integer(void)
{
    expect("mymalloc: free(): invalid pointer 0x10 (not mapped: not from mymalloc, or freed twice)");
    free(opaque((void *)(uintptr_t)16));
}

/* ---- headers overwritten ---- */

static void header_report(char **b)
{
    expect("mymalloc: free(): corrupted header of block 0x%lx (overwritten: did the block at 0x%lx before it run past its end?)",
           addr(b[1]), addr(b[0]));
    free(opaque(b[1]));
}

static void header_bit_flip(void)
{
    char *b[3];
    row(40, 3, b);
    words(b[1])[-1] ^= (size_t)1 << 6;         /* size 48 -> 112 */
    header_report(b);
}

static void header_plausible(void)
{
    char *b[3];
    row(40, 3, b);
    words(b[1])[-1] = 64 | 3;                  /* in use, previous in use, 64 bytes */
    header_report(b);
}

static void header_forged_check(void)
{
    char *b[3];
    row(40, 3, b);
    size_t head = head_of(b[1]), guess = (size_t)0x1234 << 48;
    if ((head >> 48) == 0x1234)
        guess = (size_t)0x4321 << 48;
    words(b[1])[-1] = (head & (((size_t)1 << 48) - 1)) | guess;   /* size and flags kept */
    header_report(b);
}

static void header_replayed(void)
{
    char *b[3];
    row(40, 3, b);
    words(b[1])[-1] = head_of(b[0]);           /* a valid header, of another address */
    header_report(b);
}

static void header_fake_mapped_flag(void)
{
    char *b[3];
    row(40, 3, b);
    words(b[1])[-1] = 48 | 7;                  /* claims a mapping of its own */
    words(b[1])[-2] = 8;                       /* with a plausible offset word */
    header_report(b);
}

/* The word before a mapped block's header (its offset in the mapping). */
static void mapped_offset_damaged(void)
{
    char *p = opaque(malloc(200 * KIB));
    if (p == NULL)
        setup_failed("malloc");
    words(p)[-2] = 12345;
    expect("mymalloc: free(): corrupted header of block 0x%lx (a mapped block)", addr(p));
    free(opaque(p));
}

/* A mapped block's header itself: it fails its check, so it is taken for a
 * foreign pointer. */
static void mapped_header_damaged(void)
{
    char *p = opaque(malloc(200 * KIB));
    if (p == NULL)
        setup_failed("malloc");
    words(p)[-1] ^= (size_t)1 << 20;
    expect("mymalloc: free(): invalid pointer 0x%lx (not from mymalloc)", addr(p));
    free(opaque(p));
}

/* ---- writes past the end of a block ---- */

static void overflow_found_at_own_free(void)
{
    char *b[4];
    row(40, 4, b);
    scribble(b[1], 'A', 48);             /* 40 bytes + the next header */
    expect("mymalloc: free(): write past the end of block 0x%lx (the next block's header is overwritten, block of 48 bytes)",
           addr(b[1]));
    free(opaque(b[1]));
}

static void overflow_found_at_neighbour_free(void)
{
    char *b[4];
    row(40, 4, b);
    scribble(b[1], 'A', 48);
    expect("mymalloc: free(): corrupted header of block 0x%lx (overwritten: did the block at 0x%lx before it run past its end?)",
           addr(b[2]), addr(b[1]));
    free(opaque(b[2]));
}

static void overflow_null_byte(void)
{
    char *b[4];
    row(40, 4, b);
    bytes(b[1])[40] = 0;            /* the low byte of the next header */
    expect("mymalloc: free(): write past the end of block 0x%lx (the next block's header is overwritten, block of 48 bytes)",
           addr(b[1]));
    free(opaque(b[1]));
}

static void overflow_into_top(void)
{
    char *guard, *p = at_top(40, &guard);
    scribble(p, 'A', 48);                /* the top's header */
    expect("mymalloc: free(): write past the end of block 0x%lx (the next block's header is overwritten, block of 48 bytes)",
           addr(p));
    free(opaque(p));
}

/* "House of force": the top's size overwritten with a huge one (its check
 * value not), then a big request that would be carved from it. */
static void top_size_forged(void)
{
    char *guard, *p = at_top(40, &guard);
    if (mallopt(M_MMAP_MAX, 0) != 1)
        _exit(EXIT_MALLOPT);
    words(p)[5] = ((size_t)1 << 45) | 2;       /* the top's header, P bit kept */
    expect("mymalloc: malloc(): corrupted header of the top block 0x%lx (a write past the end of the block before it?)",
           addr(p + 48));
    char *q = opaque(malloc(KIB * KIB));
    if (carry_on && q == NULL)
        _exit(EXIT_CASE);
    if (q != NULL)
        scribble(q, 1, KIB * KIB);             /* all of it must be ours */
}

/* ---- the free block before a freed block damaged ---- */

static void prev_tag_overwritten(void)
{
    char *b[4];
    row(40, 4, b);
    free(opaque(b[1]));
    words(b[2])[-2] = 0x4141414141414141u;     /* b[1]'s boundary tag */
    expect("mymalloc: free(): corrupted block before 0x%lx (its boundary tag or header is overwritten, block of 48 bytes)",
           addr(b[2]));
    free(opaque(b[2]));
}

static void prev_header_overwritten(void)
{
    char *b[4];
    row(40, 4, b);
    free(opaque(b[1]));
    words(b[1])[-1] ^= (size_t)1 << 6;         /* the free block's own header */
    expect("mymalloc: free(): corrupted block before 0x%lx (its boundary tag or header is overwritten, block of 48 bytes)",
           addr(b[2]));
    free(opaque(b[2]));
}

/* ---- use after free: a free block's bin links written ---- */

static void uaf_links_found_by_malloc(void)
{
    char *b[3];
    row(40, 3, b);
    free(opaque(b[1]));
    words(b[1])[0] = 0x4141414141414141u;
    expect("mymalloc: malloc(): corrupted free block 0x%lx (written after free?, block of 48 bytes)", addr(b[1]));
    char *q = opaque(malloc(40));
    if (carry_on && (q == NULL || q == b[1]))
        _exit(EXIT_CASE);
}

static void uaf_links_found_by_free_after(void)
{
    char *b[4];
    row(40, 4, b);
    free(opaque(b[1]));
    words(b[1])[0] = 0x4141414141414141u;
    expect("mymalloc: free(): corrupted free block 0x%lx (written after free?, block of 48 bytes)", addr(b[1]));
    free(opaque(b[2]));                        /* its free neighbour before it is b[1] */
}

static void uaf_links_found_by_free_before(void)
{
    char *b[4];
    row(40, 4, b);
    free(opaque(b[2]));
    words(b[2])[1] = 0x4141414141414141u;
    expect("mymalloc: free(): corrupted free block 0x%lx (written after free?, block of 48 bytes)", addr(b[2]));
    free(opaque(b[1]));                        /* its free neighbour after it is b[2] */
}

static void uaf_links_found_by_realloc(void)
{
    char *b[4];
    row(40, 4, b);
    free(opaque(b[2]));
    words(b[2])[0] = 0x4141414141414141u;
    expect("mymalloc: realloc(): corrupted free block 0x%lx (written after free?, block of 48 bytes)", addr(b[2]));
    char *q = opaque(realloc(opaque(b[1]), 80));  /* would grow into b[2] */
    if (carry_on && (q == NULL || q == b[1] || q == b[2]))
        _exit(EXIT_CASE);
}

static void uaf_links_medium(void)
{
    char *b[3];
    row(2000, 3, b);
    free(opaque(b[1]));
    words(b[1])[0] = 0x4141414141414141u;
    expect("mymalloc: malloc(): corrupted free block 0x%lx (written after free?, block of 2016 bytes)", addr(b[1]));
    char *q = opaque(malloc(2000));
    if (carry_on && (q == NULL || q == b[1]))
        _exit(EXIT_CASE);
}

/* Links forged to pass the back-pointer check: next -> an in-use block whose
 * "prev" word points back.  The first malloc hands out the freed block; the
 * forged one becomes the bin head and is caught at the next malloc. */
static void uaf_forged_links_to_inuse(void)
{
    char *b[3];
    row(40, 3, b);
    free(opaque(b[1]));
    words(b[1])[0] = (size_t)(b[2] - 8);
    words(b[2])[1] = (size_t)(b[1] - 8);
    char *q1 = opaque(malloc(40));
    if (q1 != b[1])
        setup_failed("the freed block was not reused first");
    expect("mymalloc: malloc(): corrupted free block 0x%lx (written after free?, block of 48 bytes)", addr(b[2]));
    char *q2 = opaque(malloc(40));
    if (carry_on && (q2 == NULL || q2 == b[1] || q2 == b[2]))
        _exit(EXIT_CASE);
}

/* ... and to a fake free block built inside another block: it cannot carry
 * a valid check value. */
static void uaf_fake_free_block(void)
{
    char *b[3];
    row(40, 3, b);
    free(opaque(b[1]));
    volatile size_t *fake = words(b[2]) + 1;            /* at 8 modulo 16, as a header is */
    fake[0] = 48;                              /* free, 48 bytes */
    fake[1] = 0;                               /* next */
    fake[2] = (size_t)(b[1] - 8);              /* prev: back to the poisoned block */
    words(b[1])[0] = (size_t)(uintptr_t)fake;
    char *q1 = opaque(malloc(40));
    if (q1 != b[1])
        setup_failed("the freed block was not reused first");
    expect("mymalloc: malloc(): corrupted free block 0x%lx (written after free?, block of 48 bytes)", addr(b[2] + 16));
    char *q2 = opaque(malloc(40));
    if (carry_on && (q2 == NULL || q2 == b[1] || q2 == b[2] + 16))
        _exit(EXIT_CASE);
}

/* ---- sized free with the wrong size ---- */

static void free_sized_too_small(void)
{
    char *b[3];
    row(100, 3, b);
    expect("mymalloc: free_sized(): wrong size for 0x%lx (24 bytes given, 104 usable)", addr(b[1]));
    free_sized(opaque(b[1]), 24);
}

static void free_sized_too_big(void)
{
    char *b[3];
    row(100, 3, b);
    expect("mymalloc: free_sized(): wrong size for 0x%lx (200 bytes given, 104 usable)", addr(b[1]));
    free_sized(opaque(b[1]), 200);
}

static void free_aligned_sized_wrong(void)
{
    char *p = opaque(aligned_alloc(64, 100));
    if (p == NULL)
        setup_failed("aligned_alloc");
    expect("mymalloc: free_aligned_sized(): wrong size for 0x%lx (24 bytes given, %zu usable)",
           addr(p), size_in_header(p) - 8);
    free_aligned_sized(opaque(p), 64, 24);
}

static void free_sized_mapped_wrong(void)
{
    char *p = opaque(malloc(300000));
    if (p == NULL)
        setup_failed("malloc");
    expect("mymalloc: free_sized(): wrong size for 0x%lx (100000 bytes given, %zu usable)",
           addr(p), size_in_header(p) - 8);
    free_sized(opaque(p), 100000);
}

/* Carry on after an overflow (the damaged neighbour is quarantined), then
 * free that neighbour with abort back on (glibc's M_CHECK_ACTION 3). */
static void quarantined_freed(void)
{
    char *b[4];
    row(40, 4, b);
    if (mallopt(M_MYMALLOC_ABORT, 0) != 1)
        _exit(EXIT_MALLOPT);
    scribble(b[1], 'A', 48);
    expect("mymalloc: free(): write past the end of block 0x%lx (the next block's header is overwritten, block of 48 bytes)",
           addr(b[1]));
    free(opaque(b[1]));
    if (mallopt(M_CHECK_ACTION, 3) != 1)
        _exit(EXIT_MALLOPT);
    expect("mymalloc: free(): invalid pointer 0x%lx (reported before and kept out of use, block of 48 bytes)",
           addr(b[2]));
    free(opaque(b[2]));
}

/* ---- check level 2: canaries and freed-memory fill ---- */

static void l2_one_byte_past(void)
{
    char *b[3];
    row(40, 3, b);
    bytes(b[1])[40] = 1;
    expect("mymalloc: free(): write past the end of block 0x%lx (40 bytes requested, byte 40 overwritten, block of 64 bytes)",
           addr(b[1]));
    free(opaque(b[1]));
}

/* Level 1: a write past malloc_usable_size of a mapped block changes the
 * keyed word at the end of its mapping, which free and realloc check. */
static char *mapped_written_past_usable(size_t k)
{
    char *p = opaque(malloc(200 * KIB));
    if (p == NULL)
        setup_failed("malloc");
    size_t u = malloc_usable_size(p);
    scribble(p + u, 0, k);
    expect("mymalloc: %s(): write past the end of block 0x%lx (the word after its usable size is overwritten, block of "
           "%zu bytes)", k == 1 ? "free" : "realloc", addr(p), size_in_header(p));
    return p;
}

static void mapped_one_byte_past_usable(void)
{
    free(opaque(mapped_written_past_usable(1)));
}

static void mapped_eight_bytes_past_usable(void)
{
    must_refuse(opaque(realloc(opaque(mapped_written_past_usable(8)), 400 * KIB)));
}

static void l2_mapped_one_byte_past(void)
{
    char *p = opaque(malloc(200 * KIB));
    if (p == NULL)
        setup_failed("malloc");
    bytes(p)[200 * KIB] = 1;      /* the stored size: the block ends right after it, at the guard page */
    expect("mymalloc: free(): write past the end of block 0x%lx (byte 204800 overwritten, block of %zu bytes)",
           addr(p), size_in_header(p));
    free(opaque(p));
}

static void l2_memalign_one_byte_past(void)
{
    char *p = opaque(memalign(64, 40));
    if (p == NULL)
        setup_failed("memalign");
    bytes(p)[40] = 1;
    expect("mymalloc: free(): write past the end of block 0x%lx (40 bytes requested, byte 40 overwritten, block of %zu bytes)",
           addr(p), size_in_header(p));
    free(opaque(p));
}

static void l2_realloc_finds_overflow(void)
{
    char *b[3];
    row(40, 3, b);
    bytes(b[1])[41] = 1;
    expect("mymalloc: realloc(): write past the end of block 0x%lx (40 bytes requested, byte 41 overwritten, block of 64 bytes)",
           addr(b[1]));
    must_refuse(opaque(realloc(opaque(b[1]), 100)));
}

static void l2_calloc_overflow(void)
{
    char *p = opaque(calloc(5, 8));
    if (p == NULL)
        setup_failed("calloc");
    bytes(p)[40] = 1;
    expect("mymalloc: free(): write past the end of block 0x%lx (40 bytes requested, byte 40 overwritten, block of %zu bytes)",
           addr(p), size_in_header(p));
    free(opaque(p));
}

/* The write reaches the stored (keyed) request size itself. */
static void l2_stored_size_overwritten(void)
{
    char *b[3];
    row(40, 3, b);
    bytes(b[1])[50] ^= 0xff;
    expect("mymalloc: free(): write past the end of block 0x%lx (byte 48 overwritten, block of 64 bytes)", addr(b[1]));
    free(opaque(b[1]));
}

/* Without the quarantine a freed block is found written when it is reused. */
static void l2_write_after_free(void)
{
    char *b[3];
    if (mallopt(M_MYMALLOC_QUARANTINE, 0) != 1)
        _exit(EXIT_MALLOPT);
    row(40, 3, b);
    free(opaque(b[1]));
    bytes(b[1])[20] = 'x';
    expect("mymalloc: malloc(): write after free in block 0x%lx (byte 20 changed, block of 64 bytes)", addr(b[1]));
    char *q = opaque(malloc(40));
    if (carry_on && (q == NULL || q == b[1]))
        _exit(EXIT_CASE);
}

/* With it, the block is verified as it leaves the quarantine, pushed out by
 * 4096 more frees (the most blocks that wait). */
static void l2_write_in_quarantine(void)
{
    enum { MORE = 4096 };
    static char *more[MORE];
    char *b[3];
    row(40, 3, b);
    for (int i = 0; i < MORE; i++)
        if ((more[i] = opaque(malloc(40))) == NULL)
            setup_failed("malloc");
    free(opaque(b[1]));
    bytes(b[1])[20] = 'x';
    expect("mymalloc: free(): write after free in block 0x%lx (byte 20 changed while it was in quarantine, block of 64 "
           "bytes)", addr(b[1]));
    for (int i = 0; i < MORE; i++)
        free(opaque(more[i]));
    char *q = opaque(malloc(40));
    if (carry_on && (q == NULL || q == b[1]))
        _exit(EXIT_CASE);
}

/* A write through a dangling pointer made just before exit, into a block in
 * quarantine: found as the quarantine is emptied at exit. */
static void l2_write_before_exit(void)
{
    char *p = opaque(malloc(100));
    if (p == NULL)
        setup_failed("malloc");
    free(opaque(p));
    bytes(p)[50] = 0;
    expect("mymalloc: exit(): write after free in block 0x%lx (byte 50 changed while it was in quarantine, block of "
           "128 bytes)", addr(p));
    exit(0);
}

/* The same into a freed block too big for the quarantine (filled, in a
 * bin): found by the walk of the heap at exit. */
static void l2_write_big_before_exit(void)
{
    char *b[3];
    row(20000, 3, b);
    free(opaque(b[1]));
    bytes(b[1])[5000] = 0;
    expect("mymalloc: exit(): write after free in block 0x%lx (byte 5000 changed, block of %zu bytes)", addr(b[1]),
           (size_t)(b[2] - b[1]));
    exit(0);
}

/* Level 2 keeps the size asked for: a sized free one byte off is caught
 * (level 1 can only tell the block's size). */
static void l2_free_sized_one_off(void)
{
    char *p = opaque(malloc(100));
    if (p == NULL)
        setup_failed("malloc");
    expect("mymalloc: free_sized(): wrong size for 0x%lx (101 bytes given, 100 requested)", addr(p));
    free_sized(opaque(p), 101);
}

static void l2_free_aligned_sized_short(void)
{
    char *p = opaque(aligned_alloc(64, 100));
    if (p == NULL)
        setup_failed("aligned_alloc");
    expect("mymalloc: free_aligned_sized(): wrong size for 0x%lx (90 bytes given, 100 requested)", addr(p));
    free_aligned_sized(opaque(p), 64, 90);
}

static void l2_free_aligned_sized_short_mapped(void)
{
    char *p = opaque(aligned_alloc(64, MIB));
    if (p == NULL)
        setup_failed("aligned_alloc");
    expect("mymalloc: free_aligned_sized(): wrong size for 0x%lx (%zu bytes given, %zu requested)", addr(p),
           (size_t)MIB - 10, (size_t)MIB);
    free_aligned_sized(opaque(p), 64, MIB - 10);
}

/* A freed block that merged into the top keeps its fill there: a write
 * after free into it is found when the top is carved again. */
static void l2_write_after_merge_into_top(void)
{
    char *guard, *p = at_top(20000, &guard);
    free(opaque(p));                     /* filled, merged into the top */
    bytes(p)[5000] = 'x';
    expect("mymalloc: malloc(): write after free in block 0x%lx (byte 5000 changed after it merged into the top, "
           "block of 30016 bytes)", addr(p));
    char *q = opaque(malloc(30000));
    if (carry_on && q == NULL)
        _exit(EXIT_CASE);
}

/* A write just before a block, over its header: the block before it kept
 * its canary, so it is not blamed. */
static void l2_write_just_before(void)
{
    char *b[3];
    row(40, 3, b);
    words(b[1])[-1] = 0x4141414141414141u;
    expect("mymalloc: free(): corrupted header of block 0x%lx (overwritten by a write just before the block)",
           addr(b[1]));
    free(opaque(b[1]));
}

static void l2_double_free(void)
{
    char *b[3];
    row(40, 3, b);
    free(opaque(b[1]));
    expect("mymalloc: free(): double free of 0x%lx (block of 64 bytes)", addr(b[1]));
    free(opaque(b[1]));
}

/* ---- with the per-thread cache of small blocks on (the default) ---- */

#ifdef M_MYMALLOC_TCACHE
/* A small block freed goes to the thread's cache: it stays "in use" for the
 * heap, and its second word holds a key that marks it as cached. */
static char *cached_block(void)
{
    char *p = opaque(malloc(40));
    if (p == NULL)
        setup_failed("malloc");
    free(opaque(p));
    return p;
}

static void cache_double_free(void)
{
    char *p = cached_block();
    expect("mymalloc: free(): double free of 0x%lx (block of 48 bytes)", addr(p));
    free(opaque(p));
}

static pthread_barrier_t cache_barrier;

static void *free_and_stay(void *p)
{
    free(opaque(p));                           /* into this thread's cache */
    pthread_barrier_wait(&cache_barrier);
    pthread_barrier_wait(&cache_barrier);      /* alive until the main thread's free */
    return NULL;
}

static void cache_double_free_threads(void)
{
    pthread_t t;
    char *p = opaque(malloc(40));
    if (p == NULL || pthread_barrier_init(&cache_barrier, NULL, 2) != 0 ||
        pthread_create(&t, NULL, free_and_stay, p) != 0)
        setup_failed("thread");
    pthread_barrier_wait(&cache_barrier);
    expect("mymalloc: free(): double free of 0x%lx (block of 48 bytes)", addr(p));
    free(opaque(p));
    pthread_barrier_wait(&cache_barrier);
    pthread_join(t, NULL);
}

static void cache_realloc_freed(void)
{
    char *p = cached_block();
    expect("mymalloc: realloc(): double free of 0x%lx (block of 48 bytes)", addr(p));
    must_refuse(opaque(realloc(opaque(p), 100)));
}

static void cache_usable_size_freed(void)
{
    char *p = cached_block();
    expect("mymalloc: malloc_usable_size(): freed block 0x%lx (block of 48 bytes)", addr(p));
    if (malloc_usable_size(opaque(p)) != 0 && carry_on)
        _exit(EXIT_CASE);
}

static void cache_free_sized_freed(void)
{
    char *p = cached_block();
    expect("mymalloc: free_sized(): double free of 0x%lx (block of 48 bytes)", addr(p));
    free_sized(opaque(p), 40);
}

/* p, the head of its cache list, had its words written after free: the
 * next malloc of its size reports it and (carrying on) does not hand p out. */
static void malloc_finds_damaged_cache(char *p)
{
    expect("mymalloc: malloc(): write after free in block 0x%lx (a cached block's link or key changed, block of 48 bytes)",
           addr(p));
    char *q = opaque(malloc(40));
    if (carry_on && (q == NULL || q == p))
        _exit(EXIT_CASE);
}

/* The cache's link (mangled) overwritten: found when malloc pops it. */
static void cache_uaf_link(void)
{
    char *p = cached_block();
    words(p)[0] = 0x4141414141414141u;
    malloc_finds_damaged_cache(p);
}

/* A heap pointer written over the link (a freed node reused as a list
 * node): the link is decoded with the key, and a secret's low bits make any
 * 16-byte aligned word decode misaligned, so this is found every time. */
static void cache_uaf_pointer_in_link(void)
{
    char *p = cached_block();
    char *other = opaque(malloc(100));
    words(p)[0] = (size_t)addr(other);
    malloc_finds_damaged_cache(p);
}

/* Zeros over a cached block's first 16 bytes (memset after free): found
 * every time, as the key is checked before the block is handed out. */
static void cache_uaf_zeroed(void)
{
    char *p = cached_block();
    words(p)[0] = 0;
    words(p)[1] = 0;
    expect("mymalloc: malloc(): write after free in a list of cached blocks at 0x%lx (a link leads here, but no key)",
           addr(p));
    char *q = opaque(malloc(40));
    if (carry_on && (q == NULL || q == p))
        _exit(EXIT_CASE);
}

/* Zeros over the words of a cached block that is not at the head of its
 * list: found when more frees overflow the list and the cache drains (the
 * drain walks the whole list), in the name of free. */
static void cache_uaf_found_at_drain(void)
{
    static char *b[200];                 /* more than a list of 48-byte blocks holds (120) */
    for (int i = 0; i < 200; i++)
        if ((b[i] = opaque(malloc(40))) == NULL)
            setup_failed("malloc");
    free(opaque(b[0]));
    words(b[0])[0] = 0;
    words(b[0])[1] = 0;
    expect("mymalloc: free(): write after free in a list of cached blocks at 0x%lx (a link leads here, but no key)",
           addr(b[0]));
    for (int i = 1; i < 200; i++)
        free(opaque(b[i]));
}

/* 121 blocks of 48 bytes, each between blocks in use, freed into b: the
 * list holds 120, so the cache keeps the 60 freed last and parks the 61
 * freed first (park.c), in one chain that starts at whichever end of them
 * lies higher (b[0] or b[60]). */
static void park_sixty_one(char *b[121])
{
    static char *keep[121];
    for (int i = 0; i < 121; i++)
        if ((b[i] = opaque(malloc(40))) == NULL || (keep[i] = opaque(malloc(40))) == NULL)
            setup_failed("malloc");
    for (int i = 0; i < 121; i++)
        free(opaque(b[i]));
}

/* A write after free into the third word of the first block of a chain of
 * parked blocks (park.c: the word leads to the next chain and holds this
 * one's count): found when a refill takes the chain. */
static void cache_parked_chain_damaged(void)
{
    static char *b[121];
    park_sixty_one(b);
    char *head = b[0] > b[60] ? b[0] : b[60];
    words(head)[2] = 0x4141414141414141u;
    for (int i = 0; i < 60; i++)         /* the cached ones */
        if (opaque(malloc(40)) == NULL)
            setup_failed("malloc");
    expect("mymalloc: malloc(): write after free in block 0x%lx (a cached block's link or key changed, block of 48 bytes)",
           addr(head));
    char *q = opaque(malloc(40));        /* the refill takes the chain */
    for (int i = 0; i < 61 && carry_on; i++)
        if (q == NULL || q == b[i])
            _exit(EXIT_CASE);
}

/* malloc_usable_size of a parked block (b[0], one of the 61 parked). */
static void cache_usable_size_parked(void)
{
    static char *b[121];
    park_sixty_one(b);
    expect("mymalloc: malloc_usable_size(): freed block 0x%lx (block of 48 bytes)", addr(b[0]));
    if (malloc_usable_size(opaque(b[0])) != 0 && carry_on)
        _exit(EXIT_CASE);
}

/* malloc_usable_size of a freed block of a thread's arena (in its segments,
 * too big for a cache). */
static void *usable_size_freed_in_arena(void *unused)
{
    (void)unused;
    char *b[3];
    for (int i = 0; i < 3; i++)
        if ((b[i] = opaque(malloc(20000))) == NULL)
            setup_failed("malloc");
    free(opaque(b[1]));
    expect("mymalloc: malloc_usable_size(): freed block 0x%lx (block of 20016 bytes)", addr(b[1]));
    if (malloc_usable_size(opaque(b[1])) != 0 && carry_on)
        _exit(EXIT_CASE);
    return NULL;
}

static void usable_size_freed_thread(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, usable_size_freed_in_arena, NULL) != 0 || pthread_join(t, NULL) != 0)
        setup_failed("thread");
}

/* The key overwritten, then freed again: the second free cannot tell, so the
 * block is cached twice; malloc hands it out once and catches the second
 * (its key was cleared when it was handed out). */
static void cache_key_overwritten_double_free(void)
{
    char *p = cached_block();
    words(p)[1] = 0;
    free(opaque(p));
    char *q1 = opaque(malloc(40));
    if (q1 != p)
        setup_failed("the cached block was not handed out first");
    expect("mymalloc: malloc(): write after free in a list of cached blocks at 0x%lx (a link leads here, but no key)",
           addr(p));
    char *q2 = opaque(malloc(40));     /* p, listed a second time */
    if (carry_on && (q2 == NULL || q2 == p))
        _exit(EXIT_CASE);
}

/* A one-byte write after free into the link of a cached block b, keeping
 * the decoded link 16-byte aligned but moving it by `shift` bytes, to the
 * middle of a live block or onto the start of one: b is handed out, and the
 * block the link leads to is refused for carrying no key.  Before, malloc
 * handed out a pointer into a live block. */
static void cache_link_moved(int onto_live_block)
{
    char *r[3], *b;
    row(40, 3, r);                     /* 48-byte blocks r0 r1 r2 */
    if ((b = opaque(malloc(40))) == NULL)
        setup_failed("malloc");
    scribble(r[1], 'L', 40);           /* r1's data: anything but its key */
    free(opaque(r[0]));
    free(opaque(b));                   /* list: b -> r0 */
    uintptr_t target = onto_live_block ? (uintptr_t)r[1] : (uintptr_t)r[0] ^ 0x10;
    bytes(b)[0] ^= (char)(((uintptr_t)r[0] ^ target) & 0xff);
    words(b)[0] ^= ((uintptr_t)r[0] ^ target) & ~(uintptr_t)0xff;
    char *q1 = opaque(malloc(40));
    if (q1 != b)
        setup_failed("the cached block was not handed out first");
    expect("mymalloc: malloc(): write after free in a list of cached blocks at 0x%lx (a link leads here, but no key)",
           (unsigned long)target);
    char *q2 = opaque(malloc(40));
    if (carry_on && (q2 == NULL || (q2 + 48 > r[0] && q2 < r[2] + 48)))
        _exit(EXIT_CASE);
    if (carry_on)
        for (int i = 0; i < 40; i++)
            if (bytes(r[1])[i] != 'L')
                _exit(EXIT_CASE);
}

/* The link moved onto a block further down the same list: the blocks passed
 * over are never handed out, and the list's count, which says they are
 * still there, shows it when the list runs empty. */
static void cache_link_skips_a_block(void)
{
    char *b[4];
    for (int i = 0; i < 4; i++)
        if ((b[i] = opaque(malloc(40))) == NULL)
            setup_failed("malloc");
    for (int i = 3; i >= 0; i--)
        free(opaque(b[i]));              /* list: b0 -> b1 -> b2 -> b3 -> ... */
    words(b[0])[0] ^= (uintptr_t)b[1] ^ (uintptr_t)b[2];
    expect("mymalloc: malloc(): write after free in a list of cached (48-byte blocks ended early, passing over 1: a link "
           "was changed)");
    for (int i = 0; i < 100; i++) {
        char *q = opaque(malloc(40));
        if (q == b[1])
            _exit(EXIT_CASE);
    }
}

static void cache_link_moved_inside(void) { cache_link_moved(0); }
static void cache_link_moved_onto_live(void) { cache_link_moved(1); }

/* A cached block is not looked at beyond its own header when freed: a write
 * past its end is found when the cache drains it back to the heap. */
static void cache_overflow_found_at_drain(void)
{
    enum { MORE = 200 };                 /* more than a list of 48-byte blocks holds (120) */
    static char *more[MORE];
    char *b[3];
    row(40, 3, b);
    scribble(b[1], 'A', 48);             /* 40 bytes + the next header */
    for (int i = 0; i < MORE; i++)
        if ((more[i] = opaque(malloc(40))) == NULL)
            setup_failed("malloc");
    free(opaque(b[1]));                  /* cached: the oldest of the list */
    expect("mymalloc: free(): write past the end of block 0x%lx (the next block's header is overwritten, block of 48 bytes)",
           addr(b[1]));
    for (int i = 0; i < MORE; i++)       /* the cache overflows and drains */
        free(more[i]);
}

/* The same, but the program exits at once: found as the cache goes back to
 * the heap at exit. */
static void cache_overflow_found_at_exit(void)
{
    char *b[3];
    row(40, 3, b);
    scribble(b[1], 'A', 48);             /* 40 bytes + the next header */
    free(opaque(b[1]));                  /* cached */
    expect("mymalloc: free(): write past the end of block 0x%lx (the next block's header is overwritten, block of 48 bytes)",
           addr(b[1]));
    exit(0);
}

static void cache_free_sized_wrong(void)
{
    char *p = opaque(malloc(100));
    if (p == NULL)
        setup_failed("malloc");
    expect("mymalloc: free_sized(): wrong size for 0x%lx (24 bytes given, 104 usable)", addr(p));
    free_sized(opaque(p), 24);
}
#endif

/* ---- no report expected ---- */

/* MYMALLOC_CHECK=0: nothing is checked.  Only a benign misuse is tried (a
 * sized free with a wrong size simply frees the block); a double free at
 * this level is undefined behaviour and is not attempted. */
static void l0_free_sized_wrong(void)
{
    char *b[3];
    row(100, 3, b);
    free_sized(opaque(b[1]), 24);
    char *q = opaque(malloc(100));
    if (q != b[1])                             /* it was freed, and is reused */
        _exit(EXIT_CASE);
    if (mallopt(M_MYMALLOC_CHECK, 1) != 0)     /* level 0 is one-way */
        _exit(EXIT_CASE);
}

/* Correct use of every entry point prints nothing. */
static void valid_use(void)
{
    char *keep[64];
    for (int i = 0; i < 64; i++) {
        keep[i] = malloc((size_t)(i * 37 + 1));
        if (keep[i] == NULL)
            _exit(EXIT_CASE);
        memset(keep[i], i, (size_t)(i * 37 + 1));
    }
    for (int i = 0; i < 64; i += 3)
        free(keep[i]);
    for (int i = 1; i < 64; i += 3) {
        char *q = realloc(keep[i], (size_t)(i * 100 + 50));
        if (q == NULL)
            _exit(EXIT_CASE);
        keep[i] = q;
    }
    for (int i = 2; i < 64; i += 3) {
        if (malloc_usable_size(keep[i]) < (size_t)(i * 37 + 1))
            _exit(EXIT_CASE);
        free_sized(keep[i], (size_t)(i * 37 + 1));
    }
    for (int i = 1; i < 64; i += 3)
        free_sized(keep[i], (size_t)(i * 100 + 50));
    void *a = opaque(aligned_alloc(256, 1000)), *c = opaque(calloc(10, 100)), *big = opaque(malloc(1 << 20));
    if (a == NULL || c == NULL || big == NULL)
        _exit(EXIT_CASE);
    free_aligned_sized(a, 256, 1000);
    free(c);
    free_sized(big, 1 << 20);
    free(NULL);
}

/* ------------------------------------------------------------------ the cases */

enum {
    L2 = 1 << 0,           /* check level 2 */
    L0 = 1 << 1,           /* check level 0 */
    LEVEL_ENV = 1 << 2,    /* the level comes from MYMALLOC_CHECK in a re-executed child */
    BENIGN = 1 << 3,       /* one pass: exit 0, nothing on stderr */
    SELF = 1 << 4,         /* one pass: the case handles the abort setting itself */
    CARRY_ENV = 1 << 5,    /* carry on through MYMALLOC_ABORT=0 (re-executed) */
    CARRY_GLIBC = 1 << 6,  /* carry on through mallopt(M_CHECK_ACTION, 1) */
    CACHE = 1 << 7         /* the per-thread cache of small blocks on */
};

struct mcase {
    const char *name;
    void (*run)(void);
    int flags;
    int residual;          /* mymalloc_check() after carrying on */
    const char *note;      /* why residual != 0 (when not the broken canary of level 2) */
};

static const char *broken_canary = "the block left alone keeps its broken canary";

static const struct mcase cases[] = {
    { "double free of a small block", double_free_small, CARRY_ENV, 0, NULL },
    { "double free of a medium block", double_free_medium, CARRY_GLIBC, 0, NULL },
    { "double free of a large heap block", double_free_large_heap, 0, 0, NULL },
    { "double free of a mapped block", double_free_mapped, 0, 0, NULL },
    { "double free of a mapped block after 64 other unmaps", double_free_mapped_forgotten, 0, 0, NULL },
    { "double free of a heap block whose memory was trimmed away", double_free_trimmed, 0, 0, NULL },
    { "double free after merging with the free block before", double_free_merged_before, 0, 0, NULL },
    { "double free after merging with the free block after", double_free_merged_after, 0, 0, NULL },
    { "double free after merging into the top", double_free_merged_into_top, 0, 0, NULL },
    { "double free across threads", double_free_threads, 0, 0, NULL },
    { "double free a, b, a", double_free_aba, 0, 0, NULL },
    { "free of a block realloc moved", double_free_after_realloc_moved, 0, 0, NULL },
    { "free of a block realloc(p, 0) freed", double_free_after_realloc_zero, 0, 0, NULL },
    { "double free of an aligned_alloc block", double_free_aligned, 0, 0, NULL },
    { "realloc of a freed block", realloc_freed, 0, 0, NULL },
    { "free of a PROT_NONE page + 16", free_prot_none_page_start, 0, 0, NULL },
    { "free of a PROT_NONE page + 48", free_prot_none_page_middle, 0, 0, NULL },
    { "free_sized of a freed block", free_sized_freed, 0, 0, NULL },
    { "free_aligned_sized of a freed block", free_aligned_sized_freed, 0, 0, NULL },
    { "malloc_usable_size of a freed block", usable_size_freed, 0, 0, NULL },
    { "malloc_usable_size of a freed block of a thread's arena", usable_size_freed_thread, 0, 0, NULL },
    { "free of a misaligned pointer", free_misaligned, 0, 0, NULL },
    { "realloc of a misaligned pointer", realloc_misaligned, 0, 0, NULL },
    { "free of a stack address", free_stack, CARRY_GLIBC, 0, NULL },
    { "malloc_usable_size of a stack address", usable_size_stack, 0, 0, NULL },
    { "free of a static array", free_static, 0, 0, NULL },
    { "free of p+16 of an in-use block", free_interior_16, 0, 0, NULL },
    { "free of p+32 of an in-use block", free_interior_32, 0, 0, NULL },
    { "free of p+4096 of a large heap block", free_interior_large, 0, 0, NULL },
    { "free of p+16 of a free block", free_interior_of_free_block, 0, 0, NULL },
    { "realloc of p+16 of an in-use block", realloc_interior, 0, 0, NULL },
    { "free of p+4096 of a mapped block", free_interior_mapped, 0, 0, NULL },
    { "free of a block from glibc's __libc_malloc", free_libc_block, 0, 0, NULL },
    { "free of a page with a fake heap header", free_fake_heap_header, 0, 0, NULL },
    { "free of a page with a fake mapped-block header", free_fake_mapped_header, 0, 0, NULL },
    { "free of an unmapped page + 16", free_unmapped_page_start, 0, 0, NULL },
    { "free of an unmapped page + 48", free_unmapped_page_middle, 0, 0, NULL },
    { "free of (void *)16", free_small_integer, 0, 0, NULL },
    { "free of a block with one size bit flipped", header_bit_flip, CARRY_ENV, 0, NULL },
    { "free of a block with a plausible header written over", header_plausible, 0, 0, NULL },
    { "free of a block whose check bits were forged", header_forged_check, 0, 0, NULL },
    { "free of a block with another block's header copied in", header_replayed, 0, 0, NULL },
    { "free of a block with a forged mapped flag", header_fake_mapped_flag, 0, 0, NULL },
    { "free of a mapped block with its offset word damaged", mapped_offset_damaged, 0, 0, NULL },
    { "free of a mapped block with its header damaged", mapped_header_damaged, 0, 0, NULL },
    { "overflow into the next header, found freeing the overflowing block", overflow_found_at_own_free, 0, 0, NULL },
    { "overflow into the next header, found freeing the damaged block", overflow_found_at_neighbour_free, 0, 0, NULL },
    { "one NUL byte past the end, found at free", overflow_null_byte, 0, 0, NULL },
    { "overflow into the top's header, found at free", overflow_into_top, 0, 0, NULL },
    { "top size forged, then a big malloc", top_size_forged, 0, 0, NULL },
    { "free next to a free block whose boundary tag was overwritten", prev_tag_overwritten, 0, 0, NULL },
    { "free next to a free block whose header was overwritten", prev_header_overwritten, 0, 0, NULL },
    { "use after free into the bin links, found by malloc", uaf_links_found_by_malloc, CARRY_ENV, 0, NULL },
    { "use after free into the bin links, found freeing the block after", uaf_links_found_by_free_after, 0, 0, NULL },
    { "use after free into the bin links, found freeing the block before", uaf_links_found_by_free_before, 0, 0, NULL },
    { "use after free into the bin links, found growing the block before", uaf_links_found_by_realloc, 0, 0, NULL },
    { "use after free into a medium block's links, found by malloc", uaf_links_medium, 0, 0, NULL },
    { "bin links forged to pass the back-pointer check", uaf_forged_links_to_inuse, 0, 0, NULL },
    { "bin links forged to a fake free block", uaf_fake_free_block, 0, 0, NULL },
    { "free_sized with a size too small", free_sized_too_small, 0, 0, NULL },
    { "free_sized with a size too big", free_sized_too_big, 0, 0, NULL },
    { "free_aligned_sized with a wrong size", free_aligned_sized_wrong, 0, 0, NULL },
    { "free_sized of a mapped block with a wrong size", free_sized_mapped_wrong, 0, 0, NULL },
    { "free of a quarantined block (after carrying on)", quarantined_freed, SELF, 0, NULL },
    { "level 2: one byte past malloc(40)", l2_one_byte_past, L2, 1, NULL },
    { "level 2: one byte past a 200 KiB mapped block", l2_mapped_one_byte_past, L2, 0, NULL },
    { "one byte past malloc_usable_size of a mapped block, found at free", mapped_one_byte_past_usable, 0, 0, NULL },
    { "eight bytes past malloc_usable_size of a mapped block, found by realloc", mapped_eight_bytes_past_usable, 0, 0,
      NULL },
    { "level 2: one byte past memalign(64, 40)", l2_memalign_one_byte_past, L2, 1, NULL },
    { "level 2: realloc finds a write past the end", l2_realloc_finds_overflow, L2, 1, NULL },
    { "level 2: one byte past calloc(5, 8)", l2_calloc_overflow, L2, 1, NULL },
    { "level 2: the stored request size overwritten", l2_stored_size_overwritten, L2, 1, NULL },
    { "level 2, no quarantine: write after free, found at reuse", l2_write_after_free, L2, 0, NULL },
    { "level 2 (MYMALLOC_CHECK=2), no quarantine: write after free, found at reuse", l2_write_after_free, L2 | LEVEL_ENV | CARRY_ENV, 0,
      NULL },
    { "level 2: double free", l2_double_free, L2, 0, NULL },
    { "level 2: free_sized one byte off the request", l2_free_sized_one_off, L2, 0, NULL },
    { "level 2: write after free into a block merged into the top, found when the top is carved",
      l2_write_after_merge_into_top, L2, 0, NULL },
    { "level 2: free_aligned_sized 10 bytes short", l2_free_aligned_sized_short, L2, 0, NULL },
    { "level 2: free_aligned_sized 10 bytes short of a mapped block", l2_free_aligned_sized_short_mapped, L2, 0, NULL },
    { "level 2: a write just before a block blames its header, not the block before", l2_write_just_before, L2, 0,
      NULL },
    { "level 2: write after free, found as the block leaves the quarantine", l2_write_in_quarantine, L2, 0, NULL },
    { "level 2: write after free just before exit, found at exit", l2_write_before_exit, L2, 0, NULL },
    { "level 2: write after free of a big block just before exit, found at exit", l2_write_big_before_exit, L2, 0,
      NULL },
#ifdef M_MYMALLOC_TCACHE
    { "cache: double free of a small block", cache_double_free, CACHE, 0, NULL },
    { "cache: double free across threads", cache_double_free_threads, CACHE, 0, NULL },
    { "cache: realloc of a cached block", cache_realloc_freed, CACHE, 0, NULL },
    { "cache: malloc_usable_size of a cached block", cache_usable_size_freed, CACHE, 0, NULL },
    { "cache: free_sized of a cached block", cache_free_sized_freed, CACHE, 0, NULL },
    { "cache: use after free into a cached block's link, found by malloc", cache_uaf_link, CACHE | CARRY_ENV, 0, NULL },
    { "cache: a pointer written over a cached block's link, found by malloc", cache_uaf_pointer_in_link,
      CACHE | CARRY_ENV, 0, NULL },
    { "cache: zeros written over a cached block's link and key, found by malloc", cache_uaf_zeroed, CACHE, 0, NULL },
    { "cache: zeros written over a cached block's words, found when the cache drains", cache_uaf_found_at_drain,
      CACHE, 0, NULL },
    { "cache: a parked chain's word overwritten after free, found by the refill", cache_parked_chain_damaged,
      CACHE | CARRY_ENV, 0, NULL },
    { "cache: malloc_usable_size of a parked block", cache_usable_size_parked, CACHE, 0, NULL },
    { "cache: key overwritten after free, freed again, found by malloc", cache_key_overwritten_double_free, CACHE, 0,
      NULL },
    { "cache: a cached block's link moved 16 bytes, found by malloc", cache_link_moved_inside, CACHE | CARRY_ENV, 0,
      NULL },
    { "cache: a cached block's link moved past the next block, found when the list runs empty",
      cache_link_skips_a_block, CACHE, 0, NULL },
    { "cache: a cached block's link moved onto a live block, found by malloc", cache_link_moved_onto_live,
      CACHE | CARRY_ENV, 0, NULL },
    { "cache: free_sized with a wrong size", cache_free_sized_wrong, CACHE, 0, NULL },
    { "cache: overflow into the next header, found when the cache drains", cache_overflow_found_at_drain, CACHE, 0,
      NULL },
    { "cache: overflow into the next header, free, exit: found at exit", cache_overflow_found_at_exit, CACHE, 0,
      NULL },
#endif
    { "level 0: free_sized with a wrong size just frees", l0_free_sized_wrong, L0 | BENIGN, 0, NULL },
    { "level 0 (MYMALLOC_CHECK=0): free_sized with a wrong size just frees", l0_free_sized_wrong,
      L0 | LEVEL_ENV | BENIGN, 0, NULL },
    { "valid use of every entry point", valid_use, BENIGN, 0, NULL },
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

/* The residual problems of the level-2 cases that leave a block alone. */
static const char *residual_note(const struct mcase *c)
{
    return c->note != NULL ? c->note : c->residual != 0 ? broken_canary : NULL;
}

/* ------------------------------------------------------------------ the workout */

/* A few thousand allocations, reallocations and frees with every byte
 * verified (overlapping blocks would show), then the heap check. */
static int workout(int residual)
{
    enum { SLOTS = 256, STEPS = 4000 };
    static char *slot[SLOTS];
    static size_t len[SLOTS];
    static unsigned seed[SLOTS];
    uint64_t x = 0x2545f4914f6cdd1du;
    for (int step = 0; step < STEPS; step++) {
        unsigned r = lcg_next(&x);
        int i = (int)(r % SLOTS);
        unsigned kind = (r >> 8) % 64;
        size_t n = kind < 40 ? 1 + (r >> 14) % 256 : kind < 60 ? 257 + (r >> 14) % 4000
                 : kind < 63 ? 4097 + (r >> 14) % 60000 : 140000 + (r >> 14) % 60000;
        if (slot[i] != NULL) {
            if (!has_pattern(slot[i], len[i], seed[i]))
                return EXIT_WORK_DATA;
            if ((r >> 20) % 4 == 0) {
                char *q = realloc(slot[i], n);
                if (q == NULL)
                    return EXIT_WORK_ALLOC;
                size_t keep = n < len[i] ? n : len[i];
                if (!has_pattern(q, keep, seed[i]))
                    return EXIT_WORK_DATA;
                slot[i] = q;
                len[i] = n;
                seed[i] = (unsigned)step;
                fill_pattern(q, n, seed[i]);
            } else {
                free(slot[i]);
                slot[i] = NULL;
            }
        } else {
            char *p = (r >> 20) % 8 == 0 ? calloc(1, n) : malloc(n);
            if (p == NULL)
                return EXIT_WORK_ALLOC;
            if ((r >> 20) % 8 == 0)
                for (size_t k = 0; k < n; k++)
                    if (p[k] != 0)
                        return EXIT_WORK_DATA;
            slot[i] = p;
            len[i] = n;
            seed[i] = (unsigned)step;
            fill_pattern(p, n, seed[i]);
        }
    }
    for (int i = 0; i < SLOTS; i++) {
        if (slot[i] != NULL && !has_pattern(slot[i], len[i], seed[i]))
            return EXIT_WORK_DATA;
        free(slot[i]);
    }
    int problems = mymalloc_check();
    if (problems != residual)
        return EXIT_CHECK + (problems < 0 ? 0 : problems > 99 ? 99 : problems);
    return 0;
}

/* ------------------------------------------------------------------ running a case */

__attribute__((noreturn)) static void child_main(const struct mcase *c, enum carry m, int fd)
{
    int level = (c->flags & LEVEL_ENV) ? -1 : (c->flags & L2) ? 2 : (c->flags & L0) ? 0 : -1;
    misuse_child_start(fd, level, c->flags & CACHE, m);
    c->run();
    if (!carry_on && !(c->flags & BENIGN))
        _exit(EXIT_RETURNED);
    int problems = mymalloc_check();
    if (problems != c->residual)
        _exit(EXIT_CHECK_NOW + (problems < 0 ? 0 : problems > 50 ? 50 : problems));
    _exit(workout(c->residual));
}

static const char *self_path = "/proc/self/exe";

/* Re-execute this program for one case, with the environment it needs. */
__attribute__((noreturn)) static void reexec(int index, enum carry m, int fd)
{
    extern char **environ;
    size_t n = 0;
    while (environ[n] != NULL)
        n++;
    char **env = calloc(n + 4, sizeof *env);
    if (env == NULL)
        _exit(EXIT_EXEC);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "MYMALLOC_CHECK=", 15) != 0 && strncmp(environ[i], "MYMALLOC_ABORT=", 15) != 0 &&
            strncmp(environ[i], "MYMALLOC_TCACHE=", 16) != 0)
            env[k++] = environ[i];
    const struct mcase *c = &cases[index];
    if (c->flags & LEVEL_ENV)
        env[k++] = (c->flags & L2) ? "MYMALLOC_CHECK=2" : "MYMALLOC_CHECK=0";
    if (m == MODE_CARRY_ENV)
        env[k++] = "MYMALLOC_ABORT=0";
    env[k++] = "MYMALLOC_TCACHE=0";
    env[k] = NULL;
    char a1[16], a2[16], a3[16];
    snprintf(a1, sizeof a1, "%d", index);
    snprintf(a2, sizeof a2, "%d", (int)m);
    snprintf(a3, sizeof a3, "%d", fd);
    char *argv[] = { "misuse", "--child", a1, a2, a3, NULL };
    execve(self_path, argv, env);
    _exit(EXIT_EXEC);
}

struct outcome {
    int status;
    char want[1024], got[2048];
};

struct case_run {
    int index;
    enum carry m;
};

/* In the child: the case, re-executed when it needs an environment of its
 * own; fd is where its expected lines go. */
static void case_child(void *arg, int fd)
{
    const struct case_run *r = arg;
    if (r->m == MODE_CARRY_ENV || (cases[r->index].flags & LEVEL_ENV))
        reexec(r->index, r->m, fd);
    child_main(&cases[r->index], r->m, fd);
}

/* Run a case in a child (core dumps off) with its stderr on one pipe and
 * its expected lines on another. */
static struct outcome run(int index, enum carry m)
{
    struct case_run r = { index, m };
    struct outcome o;
    o.status = fork_piped(ERR_TO_SECOND | NO_CORE_DUMP, case_child, &r, o.want, sizeof o.want, o.got, sizeof o.got);
    return o;
}

static const char *exit_meaning(int code)
{
    switch (code) {
    case 0: return "";
    case EXIT_SETUP: return " (setup failed)";
    case EXIT_WORK_ALLOC: return " (the workout after the misuse could not allocate)";
    case EXIT_WORK_DATA: return " (the workout found a block's contents changed)";
    case EXIT_CASE: return " (the case's own check after carrying on failed)";
    case EXIT_MALLOPT: return " (mallopt refused a setting)";
    case EXIT_RETURNED: return " (the misuse returned: no abort)";
    case EXIT_EXEC: return " (re-executing the test failed)";
    default:
        return code >= EXIT_CHECK_NOW ? " (mymalloc_check() right after the misuse: 200 + problems)"
             : code >= EXIT_CHECK ? " (mymalloc_check() after the workout: 100 + problems)" : "";
    }
}

static const char *mode_label(enum carry m)
{
    switch (m) {
    case MODE_CARRY: return "carry on (mallopt M_MYMALLOC_ABORT 0)";
    case MODE_CARRY_ENV: return "carry on (MYMALLOC_ABORT=0)";
    case MODE_CARRY_GLIBC: return "carry on (mallopt M_CHECK_ACTION 1)";
    default: return "abort";
    }
}

static void run_case(int index)
{
    const struct mcase *c = &cases[index];
    char label[200], how[160];

    if (c->flags & BENIGN) {
        struct outcome o = run(index, MODE_ABORT);
        status_text(how, sizeof how, o.status, exit_meaning);
        ok(o.status != -1 && WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0,
           "%s: the child exits 0 after a sound workout (%s)", c->name, how);
        ok(o.got[0] == '\0', "%s: nothing on stderr%s%s", c->name, o.got[0] ? " - got: " : "", o.got);
        return;
    }
    struct outcome o = run(index, MODE_ABORT);
    snprintf(label, sizeof label, "%s [abort]", c->name);
    status_text(how, sizeof how, o.status, exit_meaning);
    ok(o.status != -1 && WIFSIGNALED(o.status) && WTERMSIG(o.status) == SIGABRT,
       "%s: the child died by SIGABRT (%s)", label, how);
    check_lines(label, o.want, o.got);
    if (c->flags & SELF)
        return;

    enum carry m = (c->flags & CARRY_ENV) ? MODE_CARRY_ENV : (c->flags & CARRY_GLIBC) ? MODE_CARRY_GLIBC : MODE_CARRY;
    snprintf(label, sizeof label, "%s [%s]", c->name, mode_label(m));
    o = run(index, m);
    status_text(how, sizeof how, o.status, exit_meaning);
    const char *note = residual_note(c);
    ok(o.status != -1 && WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0,
       "%s: returns, mymalloc_check() == %d%s%s%s, and again after a workout of 4000 verified blocks (%s)", label,
       c->residual, note ? " (" : "", note ? note : "", note ? ")" : "", how);
    check_lines(label, o.want, o.got);
}

/* ------------------------------------------------------------------ accesses that fault */

/* At level 2 these must die by SIGSEGV at once, with nothing on stderr: a
 * malloc(0) pointer is in an inaccessible region, and a mapped block ends
 * (after its canary and the tail word) at a guard page. */
static void fault_read_zero_size(void)
{
    volatile char *p = opaque(malloc(0));
    (void)p[0];
}

static void fault_write_zero_size(void)
{
    volatile char *p = opaque(malloc(0));
    p[0] = 1;
}

static void fault_write_calloc_zero(void)
{
    volatile char *p = opaque(calloc(0, 8));
    p[0] = 1;
}

/* The first byte of the guard page after a 300000-byte block. */
static volatile char *past_mapped(void)
{
    char *p = opaque(malloc(300000));
    if (p == NULL)
        _exit(EXIT_SETUP);
    return (volatile char *)(((uintptr_t)p + 300000 + 4095) & ~(uintptr_t)4095);
}

static void fault_read_past_mapped(void) { (void)past_mapped()[0]; }
static void fault_write_past_mapped(void) { past_mapped()[0] = 1; }

static const struct {
    const char *name;
    void (*run)(void);
} faults[] = {
    { "a read of malloc(0)'s first byte", fault_read_zero_size },
    { "a write of malloc(0)'s first byte", fault_write_zero_size },
    { "a write of calloc(0, 8)'s first byte", fault_write_calloc_zero },
    { "a read just past a mapped block's tail word", fault_read_past_mapped },
    { "a write just past a mapped block's tail word", fault_write_past_mapped },
};
#define NFAULTS ((int)(sizeof faults / sizeof faults[0]))

static void fault_child(void *arg, int fd)
{
    (void)fd;
    int i = *(int *)arg;
    alarm(30);
    if (mallopt(M_MYMALLOC_CHECK, 2) != 1)
        _exit(EXIT_MALLOPT);
    faults[i].run();
    _exit(0);
}

static void run_faults(void)
{
    for (int i = 0; i < NFAULTS; i++) {
        char out[256], err[1024];
        int status = fork_piped(NO_CORE_DUMP | ERR_TO_SECOND, fault_child, &i, out, sizeof out, err, sizeof err);
        ok(status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV && err[0] == '\0',
           "level 2: %s faults at once (SIGSEGV, nothing on stderr): status %#x, stderr \"%s\"", faults[i].name,
           (unsigned)status, err);
    }
}

/* ------------------------------------------------------------------ level 2 in this process */

enum { LEVEL2_POINTS = 13 };

static void level2_in_process(void)
{
    ok(mallopt(M_MYMALLOC_CHECK, 2) == 1, "level 2 in-process: mallopt(M_MYMALLOC_CHECK, 2) returns 1");
    char *a = malloc(40), *z = malloc(0), *m = malloc(200 * KIB), *al = memalign(64, 40), *c = calloc(3, 7);
    char *b[3];
    int laid = try_row(200, 3, b);
    ok(a && z && m && al && c && laid, "level 2 in-process: blocks allocated");
    if (!(a && z && m && al && c && laid)) {
        skip(LEVEL2_POINTS - 2, "no blocks");
        return;
    }
    ok(malloc_usable_size(a) == 40 && malloc_usable_size(z) == 0 && malloc_usable_size(al) == 40 &&
       malloc_usable_size(c) == 21, "level 2 in-process: malloc_usable_size is the requested size (40, 0, 40, 21): %zu %zu %zu %zu",
       malloc_usable_size(a), malloc_usable_size(z), malloc_usable_size(al), malloc_usable_size(c));
    ok(malloc_usable_size(m) == 200 * KIB, "level 2 in-process: ... and 204800 for a mapped block: %zu",
       malloc_usable_size(m));
    char *r = realloc(a, 100);
    ok(r != NULL && malloc_usable_size(r) == 100, "level 2 in-process: ... and 100 after realloc(p, 100): %zu",
       r ? malloc_usable_size(r) : 0);
    if (r != NULL)
        a = r;
    ok(mymalloc_check() == 0, "level 2 in-process: sound heap: mymalloc_check() == 0");

    volatile char *ap = bytes(a);
    unsigned char saved = (unsigned char)ap[101];
    ap[101] = 0;
    int problems = mymalloc_check();
    ok(problems > 0, "level 2 in-process: a byte written past the requested size: mymalloc_check() returns %d > 0, no abort",
       problems);
    ap[101] = (char)saved;
    ok(mymalloc_check() == 0, "level 2 in-process: the byte put back: mymalloc_check() == 0");

    free(opaque(b[1]));                                /* its neighbours are in use: it stays filled */
    volatile char *fp = bytes(b[1]);
    fp[100] ^= 1;
    problems = mymalloc_check();
    ok(problems > 0, "level 2 in-process: a write into a freed block: mymalloc_check() returns %d > 0, no abort", problems);
    fp[100] ^= 1;
    ok(mymalloc_check() == 0, "level 2 in-process: the byte put back: mymalloc_check() == 0");

    free(a);
    free(z);
    free(m);
    free(al);
    free(c);
    free(opaque(b[0]));
    free(opaque(b[2]));
    ok(mymalloc_check() == 0, "level 2 in-process: everything freed: mymalloc_check() == 0");
    ok(mallopt(M_MYMALLOC_CHECK, 1) == 1, "level 2 in-process: back to level 1");
    ok(mymalloc_check() == 0, "level 2 in-process: mymalloc_check() == 0 at level 1");
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--child") == 0) {
        int index = atoi(argv[2]);
        if (index < 0 || index >= NCASES || !misuse_settings())
            _exit(EXIT_EXEC);
        child_main(&cases[index], (enum carry)atoi(argv[3]), atoi(argv[4]));
    }
    if (access(self_path, X_OK) != 0)
        self_path = argv[0];

    if (mallopt(M_MYMALLOC_CHECK, 1) != 1)
        plan_skip_all("checks are off (MYMALLOC_CHECK=0 in the environment)");
    int set = misuse_settings() && mallopt(M_MYMALLOC_ABORT, 1) == 1;

    int points = 2 + LEVEL2_POINTS + NFAULTS;
    for (int i = 0; i < NCASES; i++)
        points += (cases[i].flags & (BENIGN | SELF)) ? 2 : 4;
    plan(points);
    ok(set, "mallopt sets the thresholds, check level 1 and abort on misuse");
    ok(mymalloc_check() == 0, "the heap is sound before the cases");
    diag("each case runs in a child with its stderr captured; %d cases", NCASES);

    for (int i = 0; i < NCASES; i++)
        run_case(i);
    level2_in_process();
    run_faults();
    return done();
}
