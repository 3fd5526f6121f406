/* malloc.c - the public entry points: the C, POSIX and glibc malloc family.
 * Each checks its arguments, takes the mapped path for large requests, and
 * otherwise works on the arena under its lock. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"
#include "mymalloc.h"

struct mm_arena mm_main_arena;
int mm_ready;

/* First call: settings from the environment.  Racing threads may both read
 * them; they store the same values. */
void mm_init_slow(void)
{
    if (mm_settings_read_environment())
        __atomic_store_n(&mm_ready, 1, __ATOMIC_RELEASE);
}

static inline int wants_mapping(size_t n)
{
    return n >= mm_setting(&mm_settings.mmap_threshold) &&
           __atomic_load_n(&mm_large_stats.count, __ATOMIC_RELAXED) < mm_setting(&mm_settings.mmap_max);
}

static MM_COLD void *out_of_memory(void)
{
    errno = ENOMEM;
    return NULL;
}

/* Find the block of a pointer handed to free/realloc/malloc_usable_size, or
 * report what is wrong with it.  Heap blocks are checked again under the lock. */
static block_t *block_checked(const void *p, const char *func)
{
    if (unlikely((uintptr_t)p % MM_ALIGN != 0))
        mm_fatal(func, "invalid pointer", p, "not 16-byte aligned", 0);
    block_t *b = block_of_user(p);
    if (block_mmapped(b)) {
        if (unlikely(!block_inuse(b) || !mm_large_valid(b)))
            mm_fatal(func, "invalid pointer", p, "not a block: bad or corrupted header", 0);
    } else if (unlikely(!mm_heap_owns(&mm_main_arena, b))) {
        mm_fatal(func, "invalid pointer", p, "not from this heap", 0);
    }
    return b;
}

/* Under the arena lock: the heap block b must be in use and sane. */
static void heap_block_verify(struct mm_arena *a, block_t *b, const void *p, const char *func)
{
    size_t size = block_size(b);
    if (unlikely(!block_inuse(b)))
        mm_fatal(func, "double free of", p, NULL, size);
    if (unlikely(size < MM_MIN_BLOCK || !mm_heap_owns(a, (char *)b + size - 1) ||
                 !block_prev_inuse(block_next(b))))
        mm_fatal(func, "corrupted header of block", p, NULL, size);
}

void *mm_malloc(size_t n)
{
    struct mm_arena *a = &mm_main_arena;
    mm_init();
    if (unlikely(n > MM_MAX_REQUEST))
        return out_of_memory();
    if (unlikely(wants_mapping(n))) {
        void *p = mm_large_alloc(n, MM_ALIGN);
        if (p != NULL)
            return p;
    }
    mm_lock(&a->lock);
    block_t *b = mm_heap_alloc(a, request_to_block(n), NULL);
    mm_unlock(&a->lock);
    if (unlikely(b == NULL))
        return out_of_memory();
    return block_user(b);
}

/* Could `size` bytes aligned to `alignment` have been asked for to get b?
 * Heap blocks are at most 16 bytes bigger than their request needs; mapped
 * ones at most a page and the alignment. */
static int block_fits_size(const block_t *b, size_t size, size_t alignment)
{
    size_t usable = block_usable(b);
    if (size > usable)
        return 0;
    if (block_mmapped(b))
        return usable - size < mm_page_size() + alignment + 2 * MM_ALIGN;
    return block_size(b) - request_to_block(size) < MM_MIN_BLOCK;
}

static MM_COLD MM_NORETURN void wrong_size(const char *func, const void *p, size_t size, size_t block)
{
    char detail[48];
    char *end = mm_format_unsigned(detail, size);
    memcpy(end, " bytes given", sizeof " bytes given");
    mm_fatal(func, "wrong size for", p, detail, block);
}

/* free() and its sized forms: a nonzero size is checked against the block. */
void mm_free(void *p, size_t size, size_t alignment, const char *func)
{
    struct mm_arena *a = &mm_main_arena;
    if (p == NULL)
        return;
    int saved_errno = errno;
    block_t *b = block_checked(p, func);
    if (block_mmapped(b)) {
        if (size != 0 && !block_fits_size(b, size, alignment))
            wrong_size(func, p, size, block_size(b));
        mm_large_free(b);
    } else {
        mm_lock(&a->lock);
        heap_block_verify(a, b, p, func);
        if (size != 0 && !block_fits_size(b, size, alignment))
            wrong_size(func, p, size, block_size(b));
        mm_heap_release(a, b);
        mm_unlock(&a->lock);
    }
    errno = saved_errno;
}

/* Aligned allocation for a power-of-two alignment > 16: over-allocate, free
 * the misaligned front as a block of its own, then trim the tail. */
void *mm_memalign(size_t alignment, size_t n)
{
    struct mm_arena *a = &mm_main_arena;
    if (alignment <= MM_ALIGN)
        return mm_malloc(n);
    mm_init();
    if (alignment > MM_MAX_REQUEST / 2 || n > MM_MAX_REQUEST - alignment - MM_MIN_BLOCK)
        return out_of_memory();
    if (wants_mapping(n + alignment)) {
        void *p = mm_large_alloc(n, alignment);
        if (p != NULL)
            return p;
    }
    size_t need = request_to_block(n);
    mm_lock(&a->lock);
    block_t *b = mm_heap_alloc(a, need + alignment + MM_MIN_BLOCK, NULL);
    if (b == NULL) {
        mm_unlock(&a->lock);
        return out_of_memory();
    }
    char *user = block_user(b);
    char *aligned = (char *)align_up((uintptr_t)user, alignment);
    if (aligned != user) {
        if ((size_t)(aligned - user) < MM_MIN_BLOCK)
            aligned += alignment;
        size_t lead = (size_t)(aligned - user), size = block_size(b);
        block_t *front = b;
        b = block_of_user(aligned);
        block_set_head(b, size - lead, BLOCK_INUSE);
        block_set_head(front, 0, front->head & BLOCK_PREV_INUSE);
        block_mark_free(front, lead);
        mm_bin_insert(&a->bins, front);
        a->inuse_bytes -= lead;
    }
    mm_block_shrink(a, b, need);
    mm_unlock(&a->lock);
    return aligned;
}

static void *mm_realloc(void *p, size_t n)
{
    struct mm_arena *a = &mm_main_arena;
    if (p == NULL)
        return mm_malloc(n);
    if (n == 0) {
        mm_free(p, 0, 0, "realloc");
        return NULL;
    }
    block_t *b = block_checked(p, "realloc");
    if (unlikely(n > MM_MAX_REQUEST))
        return out_of_memory();
    size_t need = request_to_block(n);

    if (block_mmapped(b)) {
        if (n >= mm_setting(&mm_settings.mmap_threshold)) {
            void *q = mm_large_realloc(b, n);
            if (q != NULL)
                return q;
        }
    } else {
        mm_lock(&a->lock);
        heap_block_verify(a, b, p, "realloc");
        int in_place = 1;
        if (need <= block_size(b))
            mm_block_shrink(a, b, need);
        else
            in_place = mm_block_grow(a, b, need);
        mm_unlock(&a->lock);
        if (in_place)
            return p;
    }
    void *q = mm_malloc(n);
    if (q == NULL)
        return NULL;
    size_t keep = block_usable(b);
    memcpy(q, p, keep < n ? keep : n);
    mm_free(p, 0, 0, "realloc");
    return q;
}

/* ---- the exported family ---- */

MYMALLOC_EXPORT void *malloc(size_t n)
{
    mm_count(MYMALLOC_CALL_MALLOC);
    return mm_malloc(n);
}

MYMALLOC_EXPORT void free(void *p)
{
    mm_count(MYMALLOC_CALL_FREE);
    mm_free(p, 0, 0, "free");
}

MYMALLOC_EXPORT void *calloc(size_t count, size_t size)
{
    struct mm_arena *a = &mm_main_arena;
    size_t n;
    mm_count(MYMALLOC_CALL_CALLOC);
    if (__builtin_mul_overflow(count, size, &n) || n > MM_MAX_REQUEST)
        return out_of_memory();
    mm_init();
    if (wants_mapping(n)) {
        void *p = mm_large_alloc(n, MM_ALIGN);   /* fresh pages are zero */
        if (p != NULL)
            return p;
    }
    size_t dirty;
    mm_lock(&a->lock);
    block_t *b = mm_heap_alloc(a, request_to_block(n), &dirty);
    mm_unlock(&a->lock);
    if (b == NULL)
        return out_of_memory();
    memset(block_user(b), 0, dirty);
    return block_user(b);
}

MYMALLOC_EXPORT void *realloc(void *p, size_t n)
{
    mm_count(MYMALLOC_CALL_REALLOC);
    return mm_realloc(p, n);
}

MYMALLOC_EXPORT void *reallocarray(void *p, size_t count, size_t size)
{
    size_t n;
    mm_count(MYMALLOC_CALL_REALLOCARRAY);
    if (__builtin_mul_overflow(count, size, &n))
        return out_of_memory();
    return mm_realloc(p, n);
}

MYMALLOC_EXPORT int posix_memalign(void **out, size_t alignment, size_t n)
{
    mm_count(MYMALLOC_CALL_POSIX_MEMALIGN);
    if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment % sizeof(void *) != 0)
        return EINVAL;
    int saved_errno = errno;
    void *p = mm_memalign(alignment, n);
    errno = saved_errno;
    if (p == NULL)
        return ENOMEM;
    *out = p;
    return 0;
}

MYMALLOC_EXPORT void *aligned_alloc(size_t alignment, size_t n)
{
    mm_count(MYMALLOC_CALL_ALIGNED_ALLOC);
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
        errno = EINVAL;
        return NULL;
    }
    return mm_memalign(alignment, n);
}

/* glibc's memalign rounds an alignment that is not a power of two up to one. */
MYMALLOC_EXPORT void *memalign(size_t alignment, size_t n)
{
    mm_count(MYMALLOC_CALL_MEMALIGN);
    if (alignment > ((size_t)1 << 63)) {
        errno = EINVAL;
        return NULL;
    }
    if (alignment != 0 && (alignment & (alignment - 1)) != 0)
        alignment = (size_t)1 << (64 - __builtin_clzl(alignment));
    return mm_memalign(alignment, n);
}

MYMALLOC_EXPORT void *valloc(size_t n)
{
    mm_count(MYMALLOC_CALL_VALLOC);
    return mm_memalign(mm_page_size(), n);
}

MYMALLOC_EXPORT void *pvalloc(size_t n)
{
    size_t page = mm_page_size();
    mm_count(MYMALLOC_CALL_PVALLOC);
    if (n > MM_MAX_REQUEST)
        return out_of_memory();
    return mm_memalign(page, n == 0 ? page : align_up(n, page));
}

MYMALLOC_EXPORT size_t malloc_usable_size(void *p)
{
    if (p == NULL)
        return 0;
    block_t *b = block_checked(p, "malloc_usable_size");
    if (unlikely(!block_inuse(b)))
        mm_fatal("malloc_usable_size", "free block", p, "already freed", block_size(b));
    return block_usable(b);
}

MYMALLOC_EXPORT int malloc_trim(size_t pad)
{
    struct mm_arena *a = &mm_main_arena;
    int saved_errno = errno;
    mm_lock(&a->lock);
    int released = mm_heap_trim(a, pad);
    mm_unlock(&a->lock);
    errno = saved_errno;
    return released;
}

MYMALLOC_EXPORT void free_sized(void *p, size_t size)
{
    mm_count(MYMALLOC_CALL_FREE_SIZED);
    mm_free(p, size, 0, "free_sized");
}

MYMALLOC_EXPORT void free_aligned_sized(void *p, size_t alignment, size_t size)
{
    mm_count(MYMALLOC_CALL_FREE_ALIGNED_SIZED);
    mm_free(p, size, alignment, "free_aligned_sized");
}

static const char *const call_names[MYMALLOC_CALL_COUNT] = {
    [MYMALLOC_CALL_MALLOC] = "malloc",
    [MYMALLOC_CALL_FREE] = "free",
    [MYMALLOC_CALL_CALLOC] = "calloc",
    [MYMALLOC_CALL_REALLOC] = "realloc",
    [MYMALLOC_CALL_REALLOCARRAY] = "reallocarray",
    [MYMALLOC_CALL_POSIX_MEMALIGN] = "posix_memalign",
    [MYMALLOC_CALL_ALIGNED_ALLOC] = "aligned_alloc",
    [MYMALLOC_CALL_MEMALIGN] = "memalign",
    [MYMALLOC_CALL_VALLOC] = "valloc",
    [MYMALLOC_CALL_PVALLOC] = "pvalloc",
    [MYMALLOC_CALL_FREE_SIZED] = "free_sized",
    [MYMALLOC_CALL_FREE_ALIGNED_SIZED] = "free_aligned_sized",
    [MYMALLOC_CALL_NEW] = "operator new",
    [MYMALLOC_CALL_NEW_ARRAY] = "operator new[]",
    [MYMALLOC_CALL_NEW_NOTHROW] = "operator new",
    [MYMALLOC_CALL_NEW_ARRAY_NOTHROW] = "operator new[]",
    [MYMALLOC_CALL_NEW_ALIGNED] = "operator new",
    [MYMALLOC_CALL_NEW_ARRAY_ALIGNED] = "operator new[]",
    [MYMALLOC_CALL_NEW_ALIGNED_NOTHROW] = "operator new",
    [MYMALLOC_CALL_NEW_ARRAY_ALIGNED_NOTHROW] = "operator new[]",
    [MYMALLOC_CALL_DELETE] = "operator delete",
    [MYMALLOC_CALL_DELETE_ARRAY] = "operator delete[]",
    [MYMALLOC_CALL_DELETE_NOTHROW] = "operator delete",
    [MYMALLOC_CALL_DELETE_ARRAY_NOTHROW] = "operator delete[]",
    [MYMALLOC_CALL_DELETE_SIZED] = "operator delete",
    [MYMALLOC_CALL_DELETE_ARRAY_SIZED] = "operator delete[]",
    [MYMALLOC_CALL_DELETE_ALIGNED] = "operator delete",
    [MYMALLOC_CALL_DELETE_ARRAY_ALIGNED] = "operator delete[]",
    [MYMALLOC_CALL_DELETE_ALIGNED_NOTHROW] = "operator delete",
    [MYMALLOC_CALL_DELETE_ARRAY_ALIGNED_NOTHROW] = "operator delete[]",
    [MYMALLOC_CALL_DELETE_SIZED_ALIGNED] = "operator delete",
    [MYMALLOC_CALL_DELETE_ARRAY_SIZED_ALIGNED] = "operator delete[]",
};

MYMALLOC_EXPORT const char *mymalloc_call_name(enum mymalloc_call call)
{
    return (unsigned)call < MYMALLOC_CALL_COUNT ? call_names[call] : NULL;
}

MYMALLOC_EXPORT void *mymalloc_alloc_counted(size_t size, size_t alignment, enum mymalloc_call call)
{
    if ((unsigned)call < MYMALLOC_CALL_COUNT)
        mm_count(call);
    if ((alignment & (alignment - 1)) != 0) {
        errno = EINVAL;
        return NULL;
    }
    return mm_memalign(alignment, size);
}

MYMALLOC_EXPORT void mymalloc_free_counted(void *p, size_t size, size_t alignment, enum mymalloc_call call)
{
    const char *name = mymalloc_call_name(call);
    if (name != NULL)
        mm_count(call);
    mm_free(p, size, alignment, name != NULL ? name : "mymalloc_free_counted");
}

MYMALLOC_EXPORT const char *mymalloc_version(void)
{
    return MYMALLOC_VERSION_STRING;
}
