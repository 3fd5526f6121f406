/* shadow.c - the operation interpreter and its shadow model (see shadow.h).
 *
 * Every live block is filled with a pattern: byte i holds byte i % 8 of the
 * word key + (i / 8) * golden, where the key is drawn anew for every fresh
 * allocation (from the slot and a generation counter).  realloc keeps the
 * key, so the kept prefix is verified wherever the block moved, and the
 * grown part is filled with the same pattern. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "mymalloc.h"
#include "shadow.h"

/* errno read through a volatile lvalue: GCC takes the malloc family (and
 * posix_memalign, free) to leave errno alone and would fold the tests away. */
static int errno_now(void) { return *(volatile int *)&errno; }

/* How a block may be given back with its size (C23). */
enum { KIND_PLAIN, KIND_ALIGNED_ALLOC, KIND_OTHER };

#define GOLDEN 0x9E3779B97F4A7C15ull
#define KIB ((size_t)1024)
#define MIB (KIB * KIB)

/* ---- encoding ---- */

/* Share of the 256 code byte values each operation gets. */
static const unsigned char code_weight[SH_CODE_COUNT] = {
    [SH_MALLOC] = 48, [SH_CALLOC] = 14, [SH_REALLOC] = 20, [SH_REALLOC_GROW] = 16,
    [SH_REALLOC_SHRINK] = 10, [SH_REALLOC_ZERO] = 4, [SH_REALLOCARRAY] = 4,
    [SH_POSIX_MEMALIGN] = 8, [SH_ALIGNED_ALLOC] = 8, [SH_MEMALIGN] = 8,
    [SH_VALLOC] = 2, [SH_PVALLOC] = 2, [SH_FREE] = 52, [SH_FREE_SIZED] = 24,
    [SH_FREE_MANY] = 2, [SH_USABLE] = 12, [SH_REWRITE] = 8, [SH_TRIM] = 4,
    [SH_MALLOPT] = 4, [SH_CHECK] = 2, [SH_FAIL] = 4,
};

static const char *const code_names[SH_CODE_COUNT] = {
    [SH_MALLOC] = "malloc", [SH_CALLOC] = "calloc", [SH_REALLOC] = "realloc",
    [SH_REALLOC_GROW] = "realloc-grow", [SH_REALLOC_SHRINK] = "realloc-shrink",
    [SH_REALLOC_ZERO] = "realloc-zero", [SH_REALLOCARRAY] = "reallocarray",
    [SH_POSIX_MEMALIGN] = "posix_memalign", [SH_ALIGNED_ALLOC] = "aligned_alloc",
    [SH_MEMALIGN] = "memalign", [SH_VALLOC] = "valloc", [SH_PVALLOC] = "pvalloc",
    [SH_FREE] = "free", [SH_FREE_SIZED] = "free-sized", [SH_FREE_MANY] = "free-many",
    [SH_USABLE] = "usable-size", [SH_REWRITE] = "rewrite", [SH_TRIM] = "malloc_trim",
    [SH_MALLOPT] = "mallopt", [SH_CHECK] = "check", [SH_FAIL] = "fail",
};

/* The argument bytes of each operation, in this order after the code byte. */
enum { F_SLOT = 1, F_ARG = 2, F_ARG2 = 4, F_SIZE = 8, F_DELTA = 16 };
static const unsigned char code_fields[SH_CODE_COUNT] = {
    [SH_MALLOC] = F_SLOT | F_SIZE,
    [SH_CALLOC] = F_SLOT | F_ARG | F_SIZE,
    [SH_REALLOC] = F_SLOT | F_SIZE,
    [SH_REALLOC_GROW] = F_SLOT | F_DELTA,
    [SH_REALLOC_SHRINK] = F_SLOT | F_ARG,
    [SH_REALLOC_ZERO] = F_SLOT,
    [SH_REALLOCARRAY] = F_SLOT | F_ARG | F_SIZE,
    [SH_POSIX_MEMALIGN] = F_SLOT | F_ARG | F_SIZE,
    [SH_ALIGNED_ALLOC] = F_SLOT | F_ARG | F_SIZE,
    [SH_MEMALIGN] = F_SLOT | F_ARG | F_SIZE,
    [SH_VALLOC] = F_SLOT | F_SIZE,
    [SH_PVALLOC] = F_SLOT | F_SIZE,
    [SH_FREE] = F_SLOT,
    [SH_FREE_SIZED] = F_SLOT,
    [SH_FREE_MANY] = F_ARG,
    [SH_USABLE] = F_SLOT,
    [SH_REWRITE] = F_SLOT,
    [SH_TRIM] = F_ARG,
    [SH_MALLOPT] = F_ARG | F_ARG2,
    [SH_CHECK] = 0,
    [SH_FAIL] = F_SLOT | F_ARG,
};

/* Sizes: 3 bytes; the top 4 bits pick a class, the other 20 a value in it.
 * Fine classes for small sizes (the exact bins), three for big blocks. */
static const size_t class_lo[16] = {
    0, 9, 17, 33, 49, 65, 97, 129, 257, 513, 1025, 2049, 4097, 16385, 131073, 393217
};
static const size_t class_hi[16] = {
    8, 16, 32, 48, 64, 96, 128, 256, 512, 1024, 2048, 4096, 16384, 131072, 393216, SHADOW_MAX_SIZE
};

const char *shadow_code_name(enum shadow_code code)
{
    return (unsigned)code < SH_CODE_COUNT ? code_names[code] : "?";
}

static enum shadow_code code_of_byte(unsigned b)
{
    unsigned end = 0;
    for (int c = 0; c < SH_CODE_COUNT; c++) {
        end += code_weight[c];
        if (b < end)
            return (enum shadow_code)c;
    }
    return SH_CHECK;    /* not reached: the weights add up to 256 */
}

static unsigned first_byte_of_code(enum shadow_code code)
{
    unsigned start = 0;
    for (int c = 0; c < (int)code; c++)
        start += code_weight[c];
    return start;
}

size_t shadow_encode(const struct shadow_op *op, uint8_t *out)
{
    size_t n = 0;
    unsigned fields = code_fields[op->code];
    out[n++] = (uint8_t)first_byte_of_code(op->code);
    if (fields & F_SLOT)
        out[n++] = (uint8_t)op->slot;
    if (fields & F_ARG)
        out[n++] = (uint8_t)op->arg;
    if (fields & F_ARG2)
        out[n++] = (uint8_t)op->arg2;
    if (fields & F_SIZE) {
        size_t size = op->size > SHADOW_MAX_SIZE ? SHADOW_MAX_SIZE : op->size;
        unsigned c = 0;
        while (size > class_hi[c])
            c++;
        size_t v = size - class_lo[c];
        out[n++] = (uint8_t)(c << 4 | (unsigned)(v >> 16));
        out[n++] = (uint8_t)(v >> 8);
        out[n++] = (uint8_t)v;
    }
    if (fields & F_DELTA) {
        size_t delta = op->size > 0xffff ? 0xffff : op->size;
        out[n++] = (uint8_t)(delta >> 8);
        out[n++] = (uint8_t)delta;
    }
    return n;
}

size_t shadow_decode(const uint8_t *in, size_t n, struct shadow_op *op)
{
    size_t at = 0;
    if (n == 0)
        return 0;
    memset(op, 0, sizeof *op);
    op->code = code_of_byte(in[at++]);
    unsigned fields = code_fields[op->code];
    size_t need = 1 + !!(fields & F_SLOT) + !!(fields & F_ARG) + !!(fields & F_ARG2) +
                  ((fields & F_SIZE) ? 3 : 0) + ((fields & F_DELTA) ? 2 : 0);
    if (n < need)
        return 0;
    if (fields & F_SLOT)
        op->slot = in[at++];
    if (fields & F_ARG)
        op->arg = in[at++];
    if (fields & F_ARG2)
        op->arg2 = in[at++];
    if (fields & F_SIZE) {
        unsigned c = in[at] >> 4;
        size_t v = (size_t)(in[at] & 15) << 16 | (size_t)in[at + 1] << 8 | in[at + 2];
        op->size = class_lo[c] + v % (class_hi[c] - class_lo[c] + 1);
        at += 3;
    }
    if (fields & F_DELTA) {
        op->size = (size_t)in[at] << 8 | in[at + 1];
        at += 2;
    }
    return at;
}

/* ---- the pattern ---- */

static inline uint64_t pattern_word(uint64_t key, size_t word)
{
    return key + (uint64_t)word * GOLDEN;
}

static inline unsigned char pattern_byte(uint64_t key, size_t i)
{
    uint64_t w = pattern_word(key, i / 8);
    unsigned char b[8];
    memcpy(b, &w, sizeof b);
    return b[i % 8];
}

static void pattern_fill(unsigned char *p, size_t from, size_t to, uint64_t key)
{
    size_t i = from;
    for (; i < to && i % 8 != 0; i++)
        p[i] = pattern_byte(key, i);
    for (; i + 8 <= to; i += 8) {
        uint64_t w = pattern_word(key, i / 8);
        memcpy(p + i, &w, sizeof w);
    }
    for (; i < to; i++)
        p[i] = pattern_byte(key, i);
}

/* The offset of the first byte in [from, to) that is not the pattern, or
 * SIZE_MAX when all are. */
static size_t pattern_find_bad(const unsigned char *p, size_t from, size_t to, uint64_t key)
{
    size_t i = from;
    for (; i < to && i % 8 != 0; i++)
        if (p[i] != pattern_byte(key, i))
            return i;
    for (; i + 8 <= to; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, sizeof w);
        if (w != pattern_word(key, i / 8))
            break;
    }
    for (; i < to; i++)
        if (p[i] != pattern_byte(key, i))
            return i;
    return SIZE_MAX;
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 31;
    return x;
}

/* Keep the compiler from seeing (and warning about) the huge constants the
 * failing calls pass. */
static size_t opaque(size_t x)
{
    volatile size_t v = x;
    return v;
}

/* ---- reporting ---- */

static void describe_op(char *out, size_t len, const struct shadow_op *op, const void *result)
{
    unsigned fields = code_fields[op->code];
    int n = snprintf(out, len, "%s", shadow_code_name(op->code));
    if (n < 0 || (size_t)n >= len)
        return;
    if (fields & F_SLOT)
        n += snprintf(out + n, len - (size_t)n, " slot=%u", op->slot);
    if ((size_t)n < len && (fields & F_ARG))
        n += snprintf(out + n, len - (size_t)n, " arg=%u", op->arg);
    if ((size_t)n < len && (fields & F_ARG2))
        n += snprintf(out + n, len - (size_t)n, " arg2=%u", op->arg2);
    if ((size_t)n < len && (fields & (F_SIZE | F_DELTA)))
        n += snprintf(out + n, len - (size_t)n, " %s=%zu", (fields & F_DELTA) ? "delta" : "size", op->size);
    if ((size_t)n < len && result != NULL)
        snprintf(out + n, len - (size_t)n, " -> %p", result);
}

__attribute__((format(printf, 3, 4), noreturn))
static void violation(struct shadow *s, const struct shadow_block *b, const char *fmt, ...)
{
    char what[512], line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (s->in_op)
        fprintf(stderr, "shadow: VIOLATION in operation #%llu: %s\n", s->ops, what);
    else
        fprintf(stderr, "shadow: VIOLATION after operation #%llu: %s\n", s->ops, what);
    if (b != NULL && b->live)
        fprintf(stderr, "shadow:   block %p: %zu bytes requested, usable %zu, alignment %zu, kind %u, key %016llx\n",
                (void *)b->p, b->size, b->usable, b->align, b->kind, (unsigned long long)b->key);
    fprintf(stderr, "shadow:   %u live blocks, %zu bytes; last operations, oldest first:\n", s->live, s->live_bytes);
    unsigned long long end = s->ops + (s->in_op ? 1 : 0);     /* operations shown: [first, end) */
    unsigned long long first = end > SHADOW_RECENT ? end - SHADOW_RECENT : 0;
    for (unsigned long long i = first; i < end; i++) {
        describe_op(line, sizeof line, &s->recent[i % SHADOW_RECENT], s->recent_result[i % SHADOW_RECENT]);
        fprintf(stderr, "shadow:   #%llu %s\n", i, line);
    }
    if (s->cfg.on_violation != NULL)
        s->cfg.on_violation(what);
    abort();
}

/* ---- checks ---- */

static void verify_range(struct shadow *s, struct shadow_block *b, const unsigned char *p,
                         size_t from, size_t to, uint64_t key, const char *when)
{
    size_t bad = pattern_find_bad(p, from, to, key);
    s->bytes_checked += to - from;
    if (bad != SIZE_MAX)
        violation(s, b, "%s: byte %zu of the block at %p is 0x%02x, not 0x%02x (checking bytes %zu to %zu)",
                  when, bad, (const void *)p, p[bad], pattern_byte(key, bad), from, to);
}

/* The bytes of a block the model fills and checks: all of them, or, for a
 * block of more than cfg.sparse_above bytes, its first and last 4 KiB and
 * the first 64 bytes of every 4 KiB in between (every page of a big block is
 * still looked at).  sample_next gives the sampled range at or after `at`:
 * its start (SIZE_MAX when none) and *end. */
#define SAMPLE_EDGE 4096u
#define SAMPLE_LINE 64u

static int sparse(const struct shadow *s, size_t size)
{
    return s->cfg.sparse_above != 0 && size > s->cfg.sparse_above && size > 4 * SAMPLE_EDGE;
}

static size_t sample_next(const struct shadow *s, size_t size, size_t at, size_t *end)
{
    if (at >= size)
        return SIZE_MAX;
    *end = size;
    if (!sparse(s, size))
        return at;
    size_t tail = size - SAMPLE_EDGE;
    if (at < SAMPLE_EDGE) {
        *end = SAMPLE_EDGE;
        return at;
    }
    if (at >= tail)
        return at;
    size_t page = at / SAMPLE_EDGE * SAMPLE_EDGE, start = at;
    if (at - page >= SAMPLE_LINE)
        start = page += SAMPLE_EDGE;
    if (start >= tail)
        return tail;
    *end = page + SAMPLE_LINE;
    return start;
}

/* Fill, or verify, the sampled bytes of [from, to) of a block of `size`. */
static void fill_sampled(const struct shadow *s, unsigned char *p, size_t size, size_t from, size_t to, uint64_t key)
{
    size_t at = from, end;
    while ((at = sample_next(s, size, at, &end)) < to) {
        end = end < to ? end : to;
        pattern_fill(p, at, end, key);
        at = end;
    }
}

static void verify_sampled(struct shadow *s, struct shadow_block *b, const unsigned char *p, size_t size,
                           size_t from, size_t to, uint64_t key, const char *when)
{
    size_t at = from, end;
    while ((at = sample_next(s, size, at, &end)) < to) {
        end = end < to ? end : to;
        verify_range(s, b, p, at, end, key, when);
        at = end;
    }
}

static void verify_block(struct shadow *s, struct shadow_block *b, const char *when)
{
    verify_sampled(s, b, b->p, b->size, 0, b->size, b->key, when);
}

static void verify_edges(struct shadow *s, struct shadow_block *b)
{
    size_t edge = b->size < 16 ? b->size : 16;
    verify_range(s, b, b->p, 0, edge, b->key, "edge check");
    verify_range(s, b, b->p, b->size - edge, b->size, b->key, "edge check");
}

/* A block just returned for `slot`: aligned, big enough, apart from every
 * other live block. */
static void check_new_block(struct shadow *s, unsigned slot, const unsigned char *p, size_t size,
                            size_t align, size_t *usable_out)
{
    struct shadow_block *b = &s->block[slot];
    if (p == NULL)
        violation(s, b, "allocation of %zu bytes (alignment %zu) returned NULL (errno %d)", size, align, errno_now());
    if ((uintptr_t)p % 16 != 0)
        violation(s, b, "%p is not 16-byte aligned", (const void *)p);
    if ((uintptr_t)p % align != 0)
        violation(s, b, "%p is not aligned to %zu as requested", (const void *)p, align);
    size_t usable = malloc_usable_size((void *)p);
    if (usable < size)
        violation(s, b, "malloc_usable_size(%p) = %zu, less than the %zu bytes requested", (const void *)p, usable, size);
    if ((uintptr_t)p + usable < (uintptr_t)p)
        violation(s, b, "block %p of %zu usable bytes wraps around", (const void *)p, usable);
    uintptr_t start = (uintptr_t)p, end = start + usable;
    uintptr_t own_lo = s->lo[slot], own_hi = s->hi[slot];
    unsigned hit = 0;
    s->lo[slot] = s->hi[slot] = 0;      /* the slot's old span does not count */
    for (unsigned i = 0; i < s->cfg.slots; i++)
        hit |= (unsigned)(start < s->hi[i]) & (unsigned)(s->lo[i] < end);
    s->lo[slot] = own_lo;
    s->hi[slot] = own_hi;
    for (unsigned i = 0; hit && i < s->cfg.slots; i++) {
        const struct shadow_block *o = &s->block[i];
        if (i == slot || !o->live)
            continue;
        uintptr_t ostart = (uintptr_t)o->p, oend = ostart + o->usable;
        if (start < oend && ostart < end)
            violation(s, b, "new block [%p, +%zu) overlaps the live block of slot %u [%p, +%zu)",
                      (const void *)p, usable, i, (const void *)o->p, o->usable);
    }
    if (hit)
        violation(s, b, "overlap scan and model disagree for %p", (const void *)p);
    *usable_out = usable;
}

struct interval { uintptr_t start, end; unsigned slot; };

/* Every live block apart from every other: sort by start, compare neighbours. */
static void check_overlaps(struct shadow *s)
{
    struct interval v[SHADOW_MAX_SLOTS];
    unsigned n = 0;
    for (unsigned i = 0; i < s->cfg.slots; i++) {
        if (!s->block[i].live)
            continue;
        struct interval x = { (uintptr_t)s->block[i].p, (uintptr_t)s->block[i].p + s->block[i].usable, i };
        unsigned j = n++;
        while (j > 0 && v[j - 1].start > x.start) {     /* insertion sort */
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
    for (unsigned i = 1; i < n; i++)
        if (v[i].start < v[i - 1].end)
            violation(s, &s->block[v[i].slot], "live blocks overlap: slot %u [%p, %p) and slot %u [%p, %p)",
                      v[i - 1].slot, (void *)v[i - 1].start, (void *)v[i - 1].end,
                      v[i].slot, (void *)v[i].start, (void *)v[i].end);
}

static void check_heap(struct shadow *s)
{
    int problems = mymalloc_check();
    s->heap_checks++;
    if (problems != 0)
        violation(s, NULL, "mymalloc_check() found %d problems", problems);
}

static void check_all_edges(struct shadow *s)
{
    for (unsigned i = 0; i < s->cfg.slots; i++)
        if (s->block[i].live)
            verify_edges(s, &s->block[i]);
}

void shadow_check_all(struct shadow *s)
{
    for (unsigned i = 0; i < s->cfg.slots; i++) {
        struct shadow_block *b = &s->block[i];
        if (!b->live)
            continue;
        verify_block(s, b, "full check");
        if ((uintptr_t)b->p % b->align != 0)
            violation(s, b, "block moved off its alignment");
    }
    check_overlaps(s);
    check_heap(s);
}

/* ---- the model ---- */

void shadow_config_default(struct shadow_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->slots = SHADOW_MAX_SLOTS;
    cfg->live_limit = 64 * MIB;
    cfg->edge_every = 1;
    cfg->full_every = 1024;
    cfg->heap_every = 256;
    cfg->allow_check_level = 1;
    cfg->allow_settings = 1;
}

void shadow_init(struct shadow *s, const struct shadow_config *cfg)
{
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    if (s->cfg.slots == 0 || s->cfg.slots > SHADOW_MAX_SLOTS)
        s->cfg.slots = SHADOW_MAX_SLOTS;
    long page = sysconf(_SC_PAGESIZE);
    s->page = page > 0 ? (size_t)page : 4096;
    /* MYMALLOC_CHECK=0 in the environment turns the checks off for good. */
    s->level_fixed = mallopt(M_MYMALLOC_CHECK, 1) != 1;
}

void shadow_settings_default(void)
{
    mallopt(M_MYMALLOC_CHECK, 1);
#ifdef M_MYMALLOC_TCACHE
    mallopt(M_MYMALLOC_TCACHE, 1);
#endif
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    mallopt(M_TRIM_THRESHOLD, 128 * 1024);
    mallopt(M_TOP_PAD, 128 * 1024);
    mallopt(M_MMAP_MAX, 65536);
}

/* Record a new block in the model and fill it; `zeroed`: calloc's bytes
 * must all be 0 first. */
static void adopt(struct shadow *s, unsigned slot, unsigned char *p, size_t size, size_t align,
                  unsigned char kind, int zeroed)
{
    struct shadow_block *b = &s->block[slot];
    size_t usable;
    check_new_block(s, slot, p, size, align, &usable);
    if (zeroed) {
        size_t at = 0, end;
        while ((at = sample_next(s, size, at, &end)) < size) {
            size_t i = at;
            for (; i + 8 <= end; i += 8) {
                uint64_t w;
                memcpy(&w, p + i, sizeof w);
                if (w != 0)
                    break;
            }
            for (; i < end; i++)
                if (p[i] != 0)
                    violation(s, b, "calloc block %p of %zu bytes: byte %zu is 0x%02x, not 0", (void *)p, size, i, p[i]);
            s->bytes_checked += end - at;
            at = end;
        }
    }
    b->p = p;
    b->size = size;
    b->usable = usable;
    b->align = align;
    b->kind = kind;
    b->key = mix64(++s->generation ^ (uint64_t)slot << 48 ^ (uint64_t)(uintptr_t)s);
    b->live = 1;
    s->lo[slot] = (uintptr_t)p;
    s->hi[slot] = (uintptr_t)p + usable;
    fill_sampled(s, p, size, 0, size, b->key);
    s->live++;
    s->live_bytes += size;
}

static void forget(struct shadow *s, struct shadow_block *b)
{
    s->lo[b - s->block] = s->hi[b - s->block] = 0;
    s->live--;
    s->live_bytes -= b->size;
    b->live = 0;
    b->p = NULL;
}

/* Check a block's contents and give it back: with plain free(), or with its
 * size where C23 allows that. */
static void release(struct shadow *s, unsigned slot, int sized)
{
    struct shadow_block *b = &s->block[slot];
    verify_block(s, b, "before free");
    errno = EDOM;
    if (sized && b->kind == KIND_PLAIN)
        free_sized(b->p, b->size);
    else if (sized && b->kind == KIND_ALIGNED_ALLOC)
        free_aligned_sized(b->p, b->align, b->size);
    else
        free(b->p);
    if (errno_now() != EDOM)
        violation(s, b, "free changed errno to %d", errno_now());
    forget(s, b);
}

/* A request that would take the live bytes over the limit gets small. */
static size_t within_limit(const struct shadow *s, size_t size, size_t replacing)
{
    if (s->live_bytes - replacing + size > s->cfg.live_limit)
        return size % 4096;
    return size;
}

static const size_t align_table[16] = {
    8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 64, 4096
};

static void op_allocate(struct shadow *s, const struct shadow_op *op, unsigned slot)
{
    size_t size = within_limit(s, op->size, 0);
    size_t align = 16, expected_align;
    unsigned char kind = KIND_OTHER;
    void *p = NULL;
    int zeroed = 0;

    switch (op->code) {
    case SH_MALLOC:
        p = malloc(size);
        kind = KIND_PLAIN;
        break;
    case SH_CALLOC: {
        size_t count = 1 + op->arg % 16, each = size / count;
        size = count * each;
        p = calloc(count, each);
        kind = KIND_PLAIN;
        zeroed = 1;
        break;
    }
    case SH_POSIX_MEMALIGN: {
        align = align_table[op->arg % 16];
        int r = posix_memalign(&p, align, size);
        if (r != 0)
            violation(s, NULL, "posix_memalign(%zu, %zu) returned %d", align, size, r);
        break;
    }
    case SH_ALIGNED_ALLOC:
        align = align_table[op->arg % 16];
        p = aligned_alloc(align, size);
        kind = KIND_ALIGNED_ALLOC;
        break;
    case SH_MEMALIGN:
        align = align_table[op->arg % 16];
        if (op->arg & 0x80) {           /* not a power of two: rounded up */
            p = memalign(align + align / 2, size);
            align *= 2;
        } else {
            p = memalign(align, size);
        }
        break;
    case SH_VALLOC:
        align = s->page;
        p = valloc(size);
        break;
    case SH_PVALLOC:
        align = s->page;
        p = pvalloc(size);
        size = size == 0 ? s->page : (size + s->page - 1) / s->page * s->page;
        break;
    default:
        return;
    }
    s->recent_result[s->ops % SHADOW_RECENT] = p;
    expected_align = align < 16 ? 16 : align;
    adopt(s, slot, p, size, expected_align, kind, zeroed);
    if (op->code == SH_ALIGNED_ALLOC)
        s->block[slot].align = align;    /* what free_aligned_sized must be told */
}

static void op_realloc(struct shadow *s, const struct shadow_op *op, unsigned slot)
{
    struct shadow_block *b = &s->block[slot];
    size_t old = b->live ? b->size : 0, n;
    void *q;

    switch (op->code) {
    case SH_REALLOC_GROW: n = old + op->size; break;
    case SH_REALLOC_SHRINK: n = old * op->arg / 256; break;
    case SH_REALLOC_ZERO: n = 0; break;
    default: n = op->size; break;
    }
    n = within_limit(s, n, old);
    if (b->live)
        verify_block(s, b, "before realloc");
    if (op->code == SH_REALLOCARRAY) {
        size_t count = 1 + op->arg % 16, each = n / count;
        n = count * each;
        q = reallocarray(b->live ? b->p : NULL, count, each);
    } else {
        q = realloc(b->live ? b->p : NULL, n);
    }
    s->recent_result[s->ops % SHADOW_RECENT] = q;
    if (n == 0 && b->live) {            /* freed */
        if (q != NULL)
            violation(s, b, "realloc(%p, 0) returned %p, not NULL", (void *)b->p, q);
        forget(s, b);
        return;
    }
    if (!b->live) {                     /* realloc(NULL, n) is malloc(n) */
        adopt(s, slot, q, n, 16, KIND_PLAIN, 0);
        return;
    }
    size_t keep = old < n ? old : n, usable;
    uint64_t key = b->key;
    check_new_block(s, slot, q, n, 16, &usable);    /* anywhere but over the others */
    verify_sampled(s, b, q, old, 0, keep, key, "realloc kept");
    /* Bytes the old block did not sample hold no pattern yet. */
    fill_sampled(s, q, n, sparse(s, old) ? 0 : keep, n, key);
    b->p = q;
    b->size = n;
    b->usable = usable;
    s->lo[slot] = (uintptr_t)q;
    s->hi[slot] = (uintptr_t)q + usable;
    b->align = 16;
    b->kind = KIND_PLAIN;
    s->live_bytes = s->live_bytes - old + n;
}

static void expect_failure(struct shadow *s, void *result, int expected_errno, const char *call)
{
    if (result != NULL)
        violation(s, NULL, "%s returned %p, not NULL", call, result);
    if (errno_now() != expected_errno)
        violation(s, NULL, "%s set errno %d, not %d", call, errno_now(), expected_errno);
}

/* Calls that must fail, leaving everything as it was. */
static void op_fail(struct shadow *s, const struct shadow_op *op, unsigned slot)
{
    struct shadow_block *b = &s->block[slot];
    void *p = b->live ? b->p : NULL, *q = (void *)&s->page;
    int r;

    errno = 0;
    switch (op->arg % 9) {
    case 0:
        expect_failure(s, malloc(opaque(SIZE_MAX - slot)), ENOMEM, "malloc(SIZE_MAX - k)");
        break;
    case 1:
        expect_failure(s, calloc(opaque(SIZE_MAX / 2 + 1 + slot), 2), ENOMEM, "calloc overflowing");
        break;
    case 2:
        expect_failure(s, malloc(opaque((size_t)PTRDIFF_MAX + 1 + slot)), ENOMEM, "malloc(PTRDIFF_MAX + k)");
        break;
    case 3:
        expect_failure(s, realloc(p, opaque(SIZE_MAX - 64 - slot)), ENOMEM, "realloc to a huge size");
        break;
    case 4:
        expect_failure(s, reallocarray(p, opaque(SIZE_MAX / 4), 8 + slot % 8), ENOMEM, "reallocarray overflowing");
        break;
    case 5:
        errno = EXDEV;
        r = posix_memalign(&q, 4096, opaque(SIZE_MAX - 4096 * (size_t)slot));
        if (r != ENOMEM || q != (void *)&s->page || errno_now() != ENOMEM)     /* errno too, as glibc */
            violation(s, NULL, "posix_memalign of a huge size: %d, out %p, errno %d", r, q, errno_now());
        break;
    case 6:
        errno = EXDEV;
        r = posix_memalign(&q, opaque(slot % 2 ? 24 : 4), 64);
        if (r != EINVAL || q != (void *)&s->page || errno_now() != EXDEV)
            violation(s, NULL, "posix_memalign with a bad alignment: %d, out %p, errno %d", r, q, errno_now());
        break;
    case 7:
        expect_failure(s, aligned_alloc(opaque(48 + 32 * (size_t)(slot % 4)), 64), EINVAL,
                       "aligned_alloc with a bad alignment");
        break;
    default:
        expect_failure(s, memalign(opaque(((size_t)1 << 63) + 1 + slot), 16), EINVAL,
                       "memalign with an alignment above 2^63");
        break;
    }
    if (b->live) {                      /* the failed realloc left it alone */
        verify_block(s, b, "after a failed call");
        size_t usable = malloc_usable_size(b->p);
        if (usable != b->usable)
            violation(s, b, "usable size changed from %zu to %zu by a failed call", b->usable, usable);
    }
}

static void op_mallopt(struct shadow *s, const struct shadow_op *op)
{
    static const int mmap_threshold[8] = { 4096, 32768, 65536, 131072, 262144, 524288, 1048576, 32 << 20 };
    static const int trim_threshold[8] = { -1, 0, 4096, 65536, 131072, 1 << 20, 8 << 20, 64 << 20 };
    static const int top_pad[8] = { 0, 4096, 16384, 65536, 131072, 524288, 1 << 20, 4 << 20 };
    static const int mmap_max[8] = { 0, 1, 2, 8, 64, 1024, 65536, 65536 };
    unsigned v = op->arg2 % 8;
    int param, value, r;

    if (!s->cfg.allow_settings)
        return;
    switch (op->arg % 7) {
    case 0: param = M_MMAP_THRESHOLD; value = mmap_threshold[v]; break;
    case 1: param = M_TRIM_THRESHOLD; value = trim_threshold[v]; break;
    case 2: param = M_TOP_PAD; value = top_pad[v]; break;
    case 3: param = M_MMAP_MAX; value = mmap_max[v]; break;
    case 4:
        if (s->level_fixed)
            return;
        param = M_MYMALLOC_CHECK;
        value = s->cfg.allow_check_level ? 1 + (int)(v & 1) : 1;
        break;
#ifdef M_MYMALLOC_TCACHE
    case 5: param = M_MYMALLOC_TCACHE; value = (int)(v & 1); break;
#endif
    default:
        shadow_settings_default();
        check_all_edges(s);
        return;
    }
    r = mallopt(param, value);
    if (r != 1)
        violation(s, NULL, "mallopt(%d, %d) returned %d, not 1", param, value, r);
    check_all_edges(s);
}

void shadow_exec(struct shadow *s, const struct shadow_op *op)
{
    unsigned slot = op->slot % s->cfg.slots;
    struct shadow_block *b = &s->block[slot];

    s->recent[s->ops % SHADOW_RECENT] = *op;
    s->recent_result[s->ops % SHADOW_RECENT] = NULL;
    s->count[op->code]++;
    s->in_op = 1;

    switch (op->code) {
    case SH_MALLOC: case SH_CALLOC: case SH_POSIX_MEMALIGN: case SH_ALIGNED_ALLOC:
    case SH_MEMALIGN: case SH_VALLOC: case SH_PVALLOC:
        if (b->live)
            release(s, slot, (unsigned)s->ops & 1);
        op_allocate(s, op, slot);
        break;
    case SH_REALLOC: case SH_REALLOC_GROW: case SH_REALLOC_SHRINK: case SH_REALLOC_ZERO:
    case SH_REALLOCARRAY:
        op_realloc(s, op, slot);
        break;
    case SH_FREE: case SH_FREE_SIZED:
        if (b->live) {
            release(s, slot, op->code == SH_FREE_SIZED);
        } else {
            errno = EDOM;
            if (op->code == SH_FREE)
                free(NULL);
            else
                free_sized(NULL, 0);
            if (errno_now() != EDOM)
                violation(s, NULL, "free(NULL) changed errno to %d", errno_now());
        }
        break;
    case SH_FREE_MANY: {
        unsigned stride = 1 + op->arg % 8;
        for (unsigned i = 0; i < s->cfg.slots; i += stride)
            if (s->block[i].live)
                release(s, i, i / stride % 2);
        break;
    }
    case SH_USABLE:
        if (!b->live) {
            if (malloc_usable_size(NULL) != 0)
                violation(s, NULL, "malloc_usable_size(NULL) is not 0");
            break;
        }
        {
            size_t usable = malloc_usable_size(b->p);
            if (usable != b->usable)
                violation(s, b, "malloc_usable_size(%p) changed from %zu to %zu", (void *)b->p, b->usable, usable);
            memset(b->p + b->size, 0xa5, usable - b->size);   /* every usable byte may be written */
        }
        break;
    case SH_REWRITE:
        if (b->live) {
            verify_block(s, b, "before rewrite");
            b->key = mix64(++s->generation ^ (uint64_t)slot << 48 ^ 0x5bd1e995u);
            fill_sampled(s, b->p, b->size, 0, b->size, b->key);
        }
        break;
    case SH_TRIM: {
        static const size_t pads[8] = { 0, 64, 4096, 65536, 131072, 1 << 20, 16 << 20, 0 };
        int r = malloc_trim(pads[op->arg % 8]);
        if (r != 0 && r != 1)
            violation(s, NULL, "malloc_trim returned %d", r);
        check_all_edges(s);
        break;
    }
    case SH_MALLOPT:
        op_mallopt(s, op);
        break;
    case SH_CHECK:
        shadow_check_all(s);
        break;
    case SH_FAIL:
        op_fail(s, op, slot);
        break;
    default:
        break;
    }

    /* The periodic checks count as part of this operation in a report. */
    unsigned long long n = s->ops + 1;
    if (s->cfg.edge_every != 0 && n % s->cfg.edge_every == 0)
        check_all_edges(s);
    if (s->cfg.full_every != 0 && n % s->cfg.full_every == 0) {
        for (unsigned i = 0; i < s->cfg.slots; i++)
            if (s->block[i].live)
                verify_block(s, &s->block[i], "periodic check");
        check_overlaps(s);
    }
    if (s->cfg.heap_every != 0 && n % s->cfg.heap_every == 0)
        check_heap(s);
    s->in_op = 0;
    s->ops = n;
}

size_t shadow_run(struct shadow *s, const uint8_t *data, size_t size)
{
    size_t done = 0, at = 0, used;
    struct shadow_op op;
    while ((used = shadow_decode(data + at, size - at, &op)) != 0) {
        at += used;
        shadow_exec(s, &op);
        done++;
    }
    return done;
}

void shadow_release_all(struct shadow *s)
{
    check_overlaps(s);
    for (unsigned i = 0; i < s->cfg.slots; i++)
        if (s->block[i].live)
            release(s, i, i % 2);
    if (s->live != 0 || s->live_bytes != 0)
        violation(s, NULL, "model out of step: %u blocks, %zu bytes live after releasing all", s->live, s->live_bytes);
    check_heap(s);
}
