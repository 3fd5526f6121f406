/* block.h - the block layout: one header word before every user pointer, and a
 * boundary tag at the end of every free block.  Everything that reads or writes
 * a header goes through the accessors here. */
#ifndef MYMALLOC_BLOCK_H
#define MYMALLOC_BLOCK_H

#include <stddef.h>
#include <stdint.h>

/*
 * Every block starts with one 8-byte header word and is a multiple of 16
 * bytes long.  Headers sit at addresses that are 8 modulo 16, so the user
 * pointer right after a header is 16-byte aligned.
 *
 *   in-use block                            free block (in a bin)
 *
 *   h ->  +-----------------------+ h ->    +-----------------------+
 *         | check|origin|size|flags|        | check|0|size|P|U=0    |  header
 *   p ->  +-----------------------+         +-----------------------+
 *         |                       |         | next free (in bin)    |  16 bytes of
 *         | user data             |         | prev free (in bin)    |  list links
 *         | (size - 8 bytes)      |         +-----------------------+
 *         |                       |         | unused                |
 *         |                       |         +-----------------------+
 *         |                       |         | size  (boundary tag)  |  last word
 *   h+size+-----------------------+         +-----------------------+
 *         | header of next block: its P bit says whether this block is in use
 *
 * The header word:
 *
 *   63        48 47  46 45                    4   3   2   1   0
 *   +-----------+------+------------------------+---+---+---+---+
 *   |   check   |origin|   size (multiple of 16) | C | M | P | U |
 *   +-----------+------+------------------------+---+---+---+---+
 *
 *   U  BLOCK_INUSE      this block is allocated
 *   P  BLOCK_PREV_INUSE the block before this one is allocated; when it is clear
 *                       the word just before this header is the previous block's
 *                       boundary tag, so free() finds it in O(1)
 *   M  BLOCK_MMAPPED    the block has a mapping of its own (see large.c); the word
 *                       before its header holds the offset of the header from the
 *                       start of that mapping
 *   C  BLOCK_CANARY     the block's slack holds a canary (MYMALLOC_CHECK=2)
 *   origin              who allocated it: the malloc family, operator new or
 *                       operator new[]; freeing it through another family is
 *                       reported (ORIGIN_QUARANTINE: reported once, never freed)
 *   check               16 bits chosen so that the whole word, xor the header's
 *                       address plus 8, times a secret odd multiplier chosen at
 *                       start-up, has its top 16 bits clear: a stray write, a
 *                       foreign pointer or a guess fails it (see head_check_bits)
 *
 * Because only free blocks keep a boundary tag, an in-use block costs exactly
 * one word (8 bytes) of overhead, and the smallest block is 32 bytes: header,
 * two links and the tag.  A request of n bytes needs a block of
 * max(32, round_up(n + 8, 16)) bytes.
 *
 * A heap region (the sbrk heap, or an mmap segment when sbrk cannot be used):
 *
 *   region -> [struct mm_region: 24 bytes][block][block]...[top][fence]
 *
 * The last block of the current region is the top (wilderness) block; the
 * region ends with a fence: an 8-byte header with U set and size 0 that stops
 * coalescing and heap walks.
 */

#define MM_ALIGN         16u
#define MM_WORD          8u
#define MM_HEADER        MM_WORD
#define MM_MIN_BLOCK     32u

#define BLOCK_INUSE      ((size_t)1)
#define BLOCK_PREV_INUSE ((size_t)2)
#define BLOCK_MMAPPED    ((size_t)4)
#define BLOCK_CANARY     ((size_t)8)
#define BLOCK_SIZE_BITS  46
#define BLOCK_SIZE_MASK  ((((size_t)1 << BLOCK_SIZE_BITS) - 1) & ~(size_t)15)
#define ORIGIN_SHIFT     46
#define ORIGIN_MASK      ((size_t)3 << ORIGIN_SHIFT)
#define ORIGIN_MALLOC    ((size_t)0 << ORIGIN_SHIFT)
#define ORIGIN_NEW       ((size_t)1 << ORIGIN_SHIFT)
#define ORIGIN_NEW_ARRAY ((size_t)2 << ORIGIN_SHIFT)
#define ORIGIN_QUARANTINE ((size_t)3 << ORIGIN_SHIFT)
#define CHECK_SHIFT      48
/* Everything of the header but size and check: flag bits and origin. */
#define BLOCK_FLAGS      ((size_t)15 | ORIGIN_MASK)

/* Largest request we even try: keeps every size computation below overflow
 * and every block size inside the header's 46-bit field (64 TiB, beyond any
 * single mapping a 47-bit address space can hold). */
#define MM_MAX_REQUEST   (((size_t)1 << BLOCK_SIZE_BITS) - ((size_t)1 << 21))

typedef struct block {
    size_t head;                /* check | origin | size | flags */
    /* The following two fields exist only while the block is free. */
    struct block *next_free;
    struct block *prev_free;
} block_t;

_Static_assert(sizeof(size_t) == MM_WORD, "mymalloc assumes 64-bit size_t");
_Static_assert(sizeof(block_t) + MM_WORD <= MM_MIN_BLOCK, "free block fits the minimum");
_Static_assert((MM_MIN_BLOCK % MM_ALIGN) == 0, "minimum block keeps alignment");

/* The header check: keyed by two secrets chosen at start-up (check.c).  With
 * checks off (MYMALLOC_CHECK=0) it is 0 and nothing verifies it. */
struct mm_secret { uint64_t mix, multiplier, inverse, link; int level; };
extern struct mm_secret mm_secret __attribute__((visibility("hidden")));

/* A header word read at `where`, check bits and all, xor the address just
 * past it (a block's user pointer, which free() has at hand), times the odd
 * secret multiplier: a sound header's product has its top 16 bits clear.
 * One xor, one multiply and one shift to verify: cheap enough for every
 * free(). */
static inline uint64_t head_hash(const void *where, size_t head)
{
    return ((uint64_t)head ^ ((uint64_t)(uintptr_t)where + MM_WORD)) * mm_secret.multiplier;
}

/* The check bits C that make a header word `head` (its check bits clear)
 * sound at `where`.  The product's top 16 bits are those of the product of
 * the other 48 bits, t, plus C times the multiplier (mod 2^16): C is -t
 * times the multiplier's inverse. */
static inline size_t head_check_bits(const void *where, size_t head)
{
    uint64_t t = head_hash(where, head) >> CHECK_SHIFT;
    return (size_t)((0 - t) * mm_secret.inverse) << CHECK_SHIFT;
}

static inline size_t head_with_check(const void *where, size_t head)
{
    if (__atomic_load_n(&mm_secret.level, __ATOMIC_RELAXED) == 0)
        return head;
    return head | head_check_bits(where, head);
}

/* Does a header word read at `where` carry the right check value?  Only
 * meaningful with checks on. */
static inline int head_check_matches(const void *where, size_t head)
{
    return (head_hash(where, head) >> CHECK_SHIFT) == 0;
}

/* The same for a header word read at `where` (always, with checks off). */
static inline int block_head_matches_level(const void *where, size_t head)
{
    return __atomic_load_n(&mm_secret.level, __ATOMIC_RELAXED) == 0 || head_check_matches(where, head);
}

/* Is the header's check value right (always, with checks off)? */
static inline int block_head_ok(const struct block *b)
{
    if (__atomic_load_n(&mm_secret.level, __ATOMIC_RELAXED) == 0)
        return 1;
    return head_check_matches(b, b->head);
}

static inline size_t block_size(const block_t *b) { return b->head & BLOCK_SIZE_MASK; }
static inline size_t block_origin(const block_t *b) { return b->head & ORIGIN_MASK; }
static inline int block_inuse(const block_t *b) { return (b->head & BLOCK_INUSE) != 0; }
static inline int block_prev_inuse(const block_t *b) { return (b->head & BLOCK_PREV_INUSE) != 0; }
static inline int block_mmapped(const block_t *b) { return (b->head & BLOCK_MMAPPED) != 0; }

static inline void *block_user(block_t *b) { return (char *)b + MM_HEADER; }
static inline block_t *block_of_user(const void *p) { return (block_t *)((char *)p - MM_HEADER); }
static inline block_t *block_at(void *b, size_t offset) { return (block_t *)((char *)b + offset); }
static inline block_t *block_next(block_t *b) { return block_at(b, block_size(b)); }

/* Bytes the user may use in a block of this size. */
static inline size_t block_usable(const block_t *b) { return block_size(b) - MM_HEADER; }

/* The boundary tag lives in the last word of a free block. */
static inline size_t *block_tag(block_t *b) { return (size_t *)((char *)b + block_size(b) - MM_WORD); }
static inline size_t block_prev_tag(const block_t *b) { return ((const size_t *)b)[-1]; }
static inline block_t *block_prev(block_t *b) { return (block_t *)((char *)b - block_prev_tag(b)); }

/* Every header write goes through here, so the check value always follows. */
static inline void block_set_head(block_t *b, size_t size, size_t flags)
{
    b->head = head_with_check(b, size | flags);
}
static inline void block_set_prev_inuse(block_t *b)
{
    b->head = head_with_check(b, (b->head | BLOCK_PREV_INUSE) & (((size_t)1 << CHECK_SHIFT) - 1));
}
static inline void block_clear_prev_inuse(block_t *b)
{
    b->head = head_with_check(b, b->head & ~BLOCK_PREV_INUSE & (((size_t)1 << CHECK_SHIFT) - 1));
}

/* Make b a free block of the given size: header (keeping P), tag, and the
 * next block's P bit cleared. */
static inline void block_mark_free(block_t *b, size_t size)
{
    block_set_head(b, size, b->head & BLOCK_PREV_INUSE);
    *block_tag(b) = size;
    block_clear_prev_inuse(block_next(b));
}

/* The same for a block just split off the end of an in-use one (so the
 * block before it is in use): one header write. */
static inline void block_mark_free_after_inuse(block_t *b, size_t size)
{
    block_set_head(b, size, BLOCK_PREV_INUSE);
    *block_tag(b) = size;
    block_clear_prev_inuse(block_next(b));
}

/* Block size for a request of n bytes; n must be <= MM_MAX_REQUEST. */
static inline size_t request_to_block(size_t n)
{
    size_t s = (n + MM_HEADER + MM_ALIGN - 1) & ~(size_t)(MM_ALIGN - 1);
    return s < MM_MIN_BLOCK ? MM_MIN_BLOCK : s;
}

/* request_to_block(n) / 16, for the per-thread caches' class index. */
static inline size_t request_to_class(size_t n)
{
    size_t cls = (n + MM_HEADER + MM_ALIGN - 1) / MM_ALIGN;
    return cls < MM_MIN_BLOCK / MM_ALIGN ? MM_MIN_BLOCK / MM_ALIGN : cls;
}

/* ---- a block held in a thread's cache or a stack of pending frees ----
 * It stays in use for the heap; its first two user words say where it is.
 * The caches hold blocks of at most MM_CACHE_MAX_BLOCK bytes. */
#define MM_CACHE_MAX_BLOCK 8192u
/* The first two user words of a cached block (or one waiting on an arena's
 * stack of pending frees): a key made of the block's address and a secret,
 * and the link to the next block's user pointer, mangled with the key and a
 * second secret.  A free() that finds the key is freeing a block already
 * cached (a double free).  Because the link is decoded with the key, a write
 * after free into either word (or a second free that pushed the block twice
 * after its key was overwritten) decodes to a link that is not 16-byte
 * aligned, which malloc() reports; both secrets have nonzero low bits, so
 * zeros, aligned pointers and most other words written over them always do:
 *
 *   user[0]  next ^ user[1] ^ secret.link       (link's low 4 bits: 0100)
 *   user[1]  user ^ secret.mix                  (mix's low 4 bits:  1000)
 */
static inline size_t cache_key(const void *user)
{
    return (uintptr_t)mm_secret.mix ^ (uintptr_t)user;
}

/* Write both words; `key` is cache_key(user). */
static inline void cache_words_set_keyed(void *user, const void *next, size_t key)
{
    size_t *w = user;
    w[1] = key;
    w[0] = (uintptr_t)next ^ key ^ (uintptr_t)mm_secret.link;
}

static inline void cache_words_set(void *user, const void *next)
{
    cache_words_set_keyed(user, next, cache_key(user));
}

/* Is the key of a block whose key would be `key` in place? */
static inline int cache_word_is_key(const void *user, size_t key)
{
    return ((const size_t *)user)[1] == key;
}

/* The link, decoded; when it is not 16-byte aligned a word was damaged. */
static inline void *cache_words_next(const void *user)
{
    const size_t *w = user;
    return (void *)(w[0] ^ w[1] ^ (uintptr_t)mm_secret.link);
}

static inline int cache_words_keyed(const void *user)
{
    return cache_word_is_key(user, cache_key(user));
}

/* Is the in-use block b sitting in a thread's cache or on an arena's stack
 * of pending frees (freed already)?  Its key tells. */
static inline int mm_block_cached(block_t *b)
{
    return block_size(b) <= MM_CACHE_MAX_BLOCK && cache_words_keyed(block_user(b));
}

static inline size_t align_up(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }
static inline size_t align_down(size_t n, size_t a) { return n & ~(a - 1); }

#endif
