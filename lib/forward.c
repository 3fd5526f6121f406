/* forward.c - libmymalloc++'s copy of the malloc family's names, each
 * forwarding to libmymalloc's own definition (family.h says why: so that
 * LD_PRELOAD=libmymalloc++.so alone replaces malloc as well as new). */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdlib.h>
#include "family.h"

#define EXPORT __attribute__((visibility("default")))

static const struct mymalloc_family *family(void)
{
    static const struct mymalloc_family *table;
    const struct mymalloc_family *f = __atomic_load_n(&table, __ATOMIC_ACQUIRE);
    if (__builtin_expect(f == NULL, 0)) {
        f = mymalloc_family();
        __atomic_store_n(&table, f, __ATOMIC_RELEASE);
    }
    return f;
}

EXPORT void *malloc(size_t n) { return family()->malloc_fn(n); }
EXPORT void free(void *p) { family()->free_fn(p); }
EXPORT void *calloc(size_t count, size_t size) { return family()->calloc_fn(count, size); }
EXPORT void *realloc(void *p, size_t n) { return family()->realloc_fn(p, n); }
EXPORT void *reallocarray(void *p, size_t count, size_t size) { return family()->reallocarray_fn(p, count, size); }
EXPORT int posix_memalign(void **out, size_t alignment, size_t n) { return family()->posix_memalign_fn(out, alignment, n); }
EXPORT void *aligned_alloc(size_t alignment, size_t n) { return family()->aligned_alloc_fn(alignment, n); }
EXPORT void *memalign(size_t alignment, size_t n) { return family()->memalign_fn(alignment, n); }
EXPORT void *valloc(size_t n) { return family()->valloc_fn(n); }
EXPORT void *pvalloc(size_t n) { return family()->pvalloc_fn(n); }
EXPORT size_t malloc_usable_size(void *p) { return family()->malloc_usable_size_fn(p); }
EXPORT int malloc_trim(size_t pad) { return family()->malloc_trim_fn(pad); }
EXPORT int mallopt(int param, int value) { return family()->mallopt_fn(param, value); }
EXPORT struct mallinfo2 mallinfo2(void) { return family()->mallinfo2_fn(); }
EXPORT void malloc_stats(void) { family()->malloc_stats_fn(); }
EXPORT int malloc_info(int options, FILE *fp) { return family()->malloc_info_fn(options, fp); }
EXPORT void free_sized(void *p, size_t size) { family()->free_sized_fn(p, size); }
EXPORT void free_aligned_sized(void *p, size_t alignment, size_t size) { family()->free_aligned_sized_fn(p, alignment, size); }
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
EXPORT struct mallinfo mallinfo(void) { return family()->mallinfo_fn(); }
#pragma GCC diagnostic pop
