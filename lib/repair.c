/* repair.c - what the heap does when a check fails: the report of what is
 * wrong with a block handed back (freed or resized), the diagnosis of a
 * header that fails its check (a pointer inside a block, or a block whose
 * header was overwritten), and the mending that lets a program carry on
 * after a report (MYMALLOC_ABORT=0): a damaged block kept out of use in
 * quarantine, a boundary tag rewritten.  Heap layer; the arena lock is held. */
#include <string.h>
#include "heap.h"

static const char *origin_name(size_t origin)
{
    switch (origin) {
    case ORIGIN_NEW: return "allocated by operator new";
    case ORIGIN_NEW_ARRAY: return "allocated by operator new[]";
    case ORIGIN_QUARANTINE: return "reported before and kept out of use";
    default: return "allocated by malloc";
    }
}

/* Is b's origin the one `expected` (ORIGIN_ANY: any family's)?  Else a
 * report, and 0. */
int mm_origin_ok(const block_t *b, const void *p, const char *func, size_t expected)
{
    size_t origin = block_origin(b);
    if (likely(origin == expected || (expected == ORIGIN_ANY && origin != ORIGIN_QUARANTINE)))
        return 1;
    if (origin == ORIGIN_QUARANTINE)
        mm_report(func, "invalid pointer", p, origin_name(origin), block_size(b));
    else
        mm_report(func, "wrong deallocator for", p, origin_name(origin), block_size(b));
    return 0;
}

/* What mm_heap_block_sound (check.h) found wrong with a heap block about to
 * be freed or resized, reported: 0, the block then left alone (1 when
 * nothing was wrong after all). */
int mm_heap_block_report(struct mm_arena *a, block_t *b, const void *p, const char *func, size_t origin)
{
    if (unlikely(!block_head_ok(b))) {
        mm_diagnose_header(a, b, p, func);
        return 0;
    }
    size_t size = block_size(b);
    if (unlikely(!block_inuse(b) || mm_block_cached(b))) {
        mm_report(func, "double free of", p, NULL, size);
        return 0;
    }
    if (unlikely(!mm_origin_ok(b, p, func, origin)))
        return 0;
    block_t *next = block_next(b);
    if (unlikely(!mm_heap_owns(a, next) || !block_head_ok(next))) {
        mm_report(func, "write past the end of block", p, "the next block's header is overwritten", size);
        mm_quarantine_header(a, next, 1);
        return 0;
    }
    if (unlikely(!block_prev_inuse(next))) {
        mm_report(func, "corrupted header of block", p, "its neighbour says it is free", size);
        return 0;
    }
    if (!block_prev_inuse(b)) {
        size_t tag = block_prev_tag(b);
        /* The tag is checked before it is used to find the block before. */
        int tag_sane = tag >= MM_MIN_BLOCK && tag % MM_ALIGN == 0 && tag <= (uintptr_t)b &&
                       mm_heap_owns(a, (char *)b - tag);
        block_t *prev = tag_sane ? block_prev(b) : NULL;
        if (unlikely(!tag_sane || !block_head_ok(prev) || block_inuse(prev) || block_size(prev) != tag)) {
            mm_report(func, "corrupted block before", p, "its boundary tag or header is overwritten", size);
            mm_repair_before(a, b);
            return 0;
        }
    }
    return 1;     /* (the free neighbours' links are checked as they are unlinked: heap.c) */
}

static struct mm_region *region_containing(struct mm_arena *a, const void *p)
{
    for (struct mm_region *r = a->regions; r != NULL; r = r->next)
        if ((const char *)p >= (char *)r && (const char *)p < (char *)r + r->size)
            return r;
    return NULL;
}

/* Where a bad header's block really ends: the next word, 16-byte step by step,
 * that is a valid header whose P bit says its predecessor is in use.  0 when
 * none is found before the fence. */
static size_t scan_true_size(struct mm_region *r, block_t *b)
{
    char *fence = (char *)r + r->size - MM_WORD;
    for (char *q = (char *)b + MM_MIN_BLOCK; q <= fence; q += MM_ALIGN) {
        block_t *c = (block_t *)q;
        if (block_head_ok(c) && block_prev_inuse(c) && (q == fence || block_size(c) >= MM_MIN_BLOCK))
            return (size_t)(q - (char *)b);
    }
    return 0;
}

/* Keep a block whose header was destroyed out of every later use: rewrite it
 * as an in-use block in quarantine, so the heap stays walkable, and refile
 * the free blocks (it may have been one). */
static void quarantine(struct mm_arena *a, struct mm_region *r, block_t *b, int prev_inuse)
{
    size_t size = scan_true_size(r, b);
    if (size != 0) {
        block_set_head(b, size, BLOCK_INUSE | ORIGIN_QUARANTINE | (prev_inuse ? BLOCK_PREV_INUSE : 0));
        mm_heap_rebuild_bins(a);
    }
}

/* The header of `b`, known to be a block start, was overwritten.  The top's
 * extent is known (it ends at the fence), so it is simply rewritten. */
void mm_quarantine_header(struct mm_arena *a, block_t *b, int prev_inuse)
{
    struct mm_region *r = region_containing(a, b);
    if (r == NULL)
        return;
    if (b == a->top) {
        char *fence = (char *)r + r->size - MM_WORD;
        block_set_head(b, (size_t)(fence - (char *)b), BLOCK_PREV_INUSE);
        return;
    }
    quarantine(a, r, b, prev_inuse);
}

/* The block before b claims to be free but its tag or header is wrong: find
 * it by walking the region, then mend its tag or quarantine it. */
void mm_repair_before(struct mm_arena *a, block_t *b)
{
    struct mm_region *r = region_containing(a, b);
    if (r == NULL)
        return;
    block_t *walk = block_at(r, MM_REGION_FIRST_BLOCK), *prev = NULL;
    int prev_inuse = 1;
    while (walk < b) {
        if (!block_head_ok(walk) || block_size(walk) < MM_MIN_BLOCK) {
            quarantine(a, r, walk, prev_inuse);
            return;
        }
        prev = walk;
        prev_inuse = walk == a->top ? 0 : block_inuse(walk);
        walk = block_next(walk);
    }
    if (prev == NULL || walk != b)
        return;
    if (!block_inuse(prev))
        *block_tag(prev) = block_size(prev);     /* header sound: mend the tag */
    else
        block_set_prev_inuse(b);                 /* b's P bit was what was wrong */
    mm_heap_rebuild_bins(a);
}

/* The header before p fails its check (the arena lock is held): find out
 * whether p is inside a block, or is a block whose header was overwritten,
 * report it, and with MYMALLOC_ABORT=0 quarantine the block. */
void mm_diagnose_header(struct mm_arena *a, block_t *b, const void *p, const char *func)
{
    struct mm_region *r = region_containing(a, b);
    if (r == NULL) {
        mm_report(func, "invalid pointer", p, "not from mymalloc", 0);
        return;
    }
    block_t *walk = block_at(r, MM_REGION_FIRST_BLOCK), *fence = (block_t *)((char *)r + r->size - MM_WORD);
    block_t *before = NULL;
    int prev_inuse = 1;
    while (walk < b && walk != fence) {
        if (!block_head_ok(walk) || block_size(walk) < MM_MIN_BLOCK) {
            char detail[64];
            char *o = mm_format_hex(detail, (uintptr_t)block_user(walk));
            memcpy(o, " is overwritten", sizeof " is overwritten");
            mm_report(func, "heap corrupted near", p, detail, 0);
            quarantine(a, r, walk, prev_inuse);
            return;
        }
        before = walk;
        prev_inuse = walk == a->top ? 0 : block_inuse(walk);
        walk = block_next(walk);
    }
    if (walk == b) {
        /* Who wrote it?  An in-use block before it that kept its canary
         * (level 2), or a free one, did not run past its end: the write was
         * aimed just before this block. */
        char detail[112], *o = detail;
        size_t offset;
        int before_innocent = before != NULL && (before == a->top || !block_inuse(before) ||
                                                 ((before->head & BLOCK_CANARY) && mm_canary_ok(before, &offset)));
        if (before != NULL && !before_innocent) {
            memcpy(o, "overwritten: did the block at ", 30);
            o = mm_format_hex(o + 30, (uintptr_t)block_user(before));
            memcpy(o, " before it run past its end?", sizeof " before it run past its end?");
        } else if (before != NULL) {
            memcpy(o, "overwritten by a write just before the block", sizeof "overwritten by a write just before the block");
        } else {
            memcpy(o, "overwritten", sizeof "overwritten");
        }
        mm_report(func, "corrupted header of block", p, detail, 0);
        quarantine(a, r, b, prev_inuse);
        return;
    }
    if (before == NULL) {
        mm_report(func, "invalid pointer", p, "not from mymalloc", 0);
        return;
    }
    /* p lies inside the block `before`. */
    int free_block = before == a->top || !block_inuse(before);
    char detail[96];
    const char *intro = free_block ? "inside the free block at " : "inside the block at ";
    size_t len = strlen(intro);
    memcpy(detail, intro, len);
    mm_format_hex(detail + len, (uintptr_t)block_user(before));
    mm_report(func, "invalid pointer", p, detail, block_size(before));
}

/* ---- blocks held in a cache or a stack of pending frees ---- */

/* A cached block whose link or key was written after free, reported in the
 * name of `func`. */
void mm_cached_report(const char *func, void *user)
{
    mm_report(func, "write after free in block", user, "a cached block's link or key changed",
              block_size(block_of_user(user)));
}

/* The next block of a list of cached or waiting blocks, walked other than
 * by malloc's pop (a drain, a flush, the stacks of pending frees, a stashed
 * cache): NULL at the end.  A link that does not decode 16-byte aligned, or
 * to a block that carries no key (a write after free into a block's first
 * two words), is reported, in the name of free, which put the blocks there,
 * and ends the walk: the blocks after it are left out of use. */
void *mm_cached_next(void *user)
{
    void *next = cache_words_next(user);
    if (likely((uintptr_t)next % MM_ALIGN == 0 && (next == NULL || cache_words_keyed(next))))
        return next;
    if ((uintptr_t)next % MM_ALIGN != 0)
        mm_cached_report("free", user);
    else
        mm_cached_keyless_report("free", next);
    return NULL;
}

/* A list of cached blocks leads to `user`, which carries no key: a write
 * after free into its key, or into the link that leads to it. */
void mm_cached_keyless_report(const char *func, void *user)
{
    mm_report(func, "write after free in a list of cached blocks at", user, "a link leads here, but no key", 0);
}
