/* shadow.h - an interpreter of allocation operations with a shadow model.
 *
 * A byte string is read as a sequence of operations (malloc, calloc, the
 * realloc forms, aligned allocations, the free forms, malloc_usable_size,
 * malloc_trim, mallopt, checks and failing calls) on up to 256 slots.  The
 * model remembers every live block: its requested size and alignment, the
 * usable size the library reported, and the key of the pattern its bytes
 * were filled with.  After every operation the block it touched is checked
 * (alignment, usable size, no overlap with any other live block, calloc
 * zeroing, contents kept across realloc), and every few operations all live
 * blocks are (their edges, then every byte, a sorted-interval overlap check,
 * and mymalloc_check()).  On a violation the interpreter prints what went
 * wrong with the last operations and calls abort().
 *
 * Also checked: aligned calls honour alignments of 8 bytes to 64 KiB (and
 * memalign rounds others up), sized frees are given the requested size
 * (free_sized for malloc/calloc/realloc blocks, free_aligned_sized for
 * aligned_alloc ones, as C23 allows), free() keeps errno, malloc_usable_size
 * is at least the request and stable, every byte up to it may be written,
 * and calls that must fail (huge sizes, overflowing products, bad
 * alignments) return NULL or an error with the right errno and leave the
 * block they were given intact.  Sizes run from 0 to about 1 MiB.
 *
 * Used by tests/fuzz/fuzz_target.c (libFuzzer) and tests/random_ops.c (a
 * deterministic long random run in make check).
 *
 * Encoding: one operation is a code byte followed by 0 to 6 argument bytes
 * (see shadow_encode); a string that ends inside an operation ends the run.
 * Every byte string is a valid program.
 */
#ifndef MYMALLOC_SHADOW_H
#define MYMALLOC_SHADOW_H

#include <stddef.h>
#include <stdint.h>

#define SHADOW_MAX_SLOTS 256
#define SHADOW_OP_MAX_BYTES 7        /* the longest encoded operation */
#define SHADOW_MAX_SIZE ((size_t)1114111)   /* largest encodable size: 1 MiB + 64 KiB - 1 */
#define SHADOW_RECENT 16             /* operations shown in a violation report */

enum shadow_code {
    SH_MALLOC,          /* slot size: malloc (a live slot is freed first) */
    SH_CALLOC,          /* slot count size: calloc(1 + count % 16, size / that) */
    SH_REALLOC,         /* slot size: realloc (of NULL on an empty slot; size 0 frees) */
    SH_REALLOC_GROW,    /* slot delta: realloc to the old size + delta (0..65535) */
    SH_REALLOC_SHRINK,  /* slot frac: realloc to old size * frac / 256 */
    SH_REALLOC_ZERO,    /* slot: realloc(p, 0) frees; realloc(NULL, 0) allocates */
    SH_REALLOCARRAY,    /* slot count size */
    SH_POSIX_MEMALIGN,  /* slot align size */
    SH_ALIGNED_ALLOC,   /* slot align size */
    SH_MEMALIGN,        /* slot align size (bit 7 of align: not a power of two) */
    SH_VALLOC,          /* slot size */
    SH_PVALLOC,         /* slot size */
    SH_FREE,            /* slot: free (free(NULL) on an empty slot) */
    SH_FREE_SIZED,      /* slot: free_sized / free_aligned_sized where C23 allows it, else free */
    SH_FREE_MANY,       /* stride: free every live slot i with i % (1 + stride % 8) == 0 */
    SH_USABLE,          /* slot: malloc_usable_size, then write the bytes past the request */
    SH_REWRITE,         /* slot: fill the block with a new pattern */
    SH_TRIM,            /* pad: malloc_trim(one of 8 pads) */
    SH_MALLOPT,         /* param value: mallopt(mmap/trim threshold, top pad, mmap max, check
                           level 1-2, per-thread cache on/off, or all defaults) */
    SH_CHECK,           /* check every live block and mymalloc_check() now */
    SH_FAIL,            /* kind slot: a call that must fail cleanly (huge size, bad alignment) */
    SH_CODE_COUNT
};

/* One decoded operation.  Which fields matter depends on the code. */
struct shadow_op {
    enum shadow_code code;
    unsigned slot;      /* 0..255 (taken modulo the configured slot count) */
    unsigned arg;       /* 0..255: count, alignment code, fraction, stride, pad, param, failure kind */
    unsigned arg2;      /* 0..255: the mallopt value code */
    size_t size;        /* 0..SHADOW_MAX_SIZE; the delta of SH_REALLOC_GROW (0..65535) */
};

struct shadow_config {
    unsigned slots;             /* live slots, 1..SHADOW_MAX_SLOTS */
    size_t live_limit;          /* most requested bytes live at once; bigger requests shrink */
    unsigned edge_every;        /* check the first and last bytes of every live block every N ops */
    unsigned full_every;        /* check every byte of every live block, and overlaps, every N ops */
    unsigned heap_every;        /* mymalloc_check() every N ops */
    size_t sparse_above;        /* blocks bigger than this: fill and check only their edges
                                   and 64 bytes of every 4 KiB (0: every byte of every block) */
    int allow_check_level;      /* mallopt may switch MYMALLOC_CHECK between 1 and 2 */
    int allow_settings;         /* mallopt operations are carried out (else skipped) */
    /* Called with the report's first line before abort() (may be NULL). */
    void (*on_violation)(const char *what);
};

struct shadow_block {
    unsigned char *p;
    size_t size;        /* requested bytes: these must be kept */
    size_t usable;      /* what malloc_usable_size said */
    size_t align;       /* alignment asked for (16 when none) */
    uint64_t key;       /* pattern key of the contents */
    unsigned char kind; /* how it was allocated: decides the sized free */
    unsigned char live;
};

struct shadow {
    struct shadow_config cfg;
    struct shadow_block block[SHADOW_MAX_SLOTS];
    /* Each live slot's usable span [lo, hi), packed for the overlap scan;
     * 0, 0 for an empty slot. */
    uintptr_t lo[SHADOW_MAX_SLOTS], hi[SHADOW_MAX_SLOTS];
    unsigned live;                      /* live blocks */
    size_t live_bytes;                  /* their requested bytes */
    uint64_t generation;                /* makes every fill's key different */
    unsigned long long ops;             /* operations carried out (the next one's number) */
    int in_op;                          /* inside shadow_exec */
    unsigned long long count[SH_CODE_COUNT];
    unsigned long long bytes_checked;   /* bytes compared with the pattern */
    unsigned long long heap_checks;     /* mymalloc_check() calls */
    struct shadow_op recent[SHADOW_RECENT];
    void *recent_result[SHADOW_RECENT];
    size_t page;
    int level_fixed;                    /* the check level cannot change (MYMALLOC_CHECK=0) */
};

/* A configuration with the defaults: 256 slots, 64 MiB live, edges every
 * op, every byte every 1024 ops, the heap every 256 ops, settings on. */
void shadow_config_default(struct shadow_config *cfg);

/* Start a model with no live blocks. */
void shadow_init(struct shadow *s, const struct shadow_config *cfg);

/* Put the library's settings back to their defaults (mmap and trim
 * thresholds, top pad, mmap max, check level 1). */
void shadow_settings_default(void);

/* Interpret `data`: returns the number of operations carried out. */
size_t shadow_run(struct shadow *s, const uint8_t *data, size_t size);

/* Carry out one decoded operation. */
void shadow_exec(struct shadow *s, const struct shadow_op *op);

/* Check every live block completely, overlaps, and mymalloc_check() == 0. */
void shadow_check_all(struct shadow *s);

/* Check and free every live block, then mymalloc_check() == 0. */
void shadow_release_all(struct shadow *s);

/* Encode / decode one operation.  shadow_encode writes at most
 * SHADOW_OP_MAX_BYTES and returns how many; shadow_decode returns the bytes
 * used, 0 when `n` bytes do not hold a whole operation. */
size_t shadow_encode(const struct shadow_op *op, uint8_t *out);
size_t shadow_decode(const uint8_t *in, size_t n, struct shadow_op *op);

/* The name of an operation code ("malloc", "realloc-grow", ...). */
const char *shadow_code_name(enum shadow_code code);

#endif
