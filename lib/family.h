/* family.h - the malloc family of libmymalloc as a table of its own
 * definitions, for libmymalloc++: when only libmymalloc++.so is preloaded,
 * the dynamic loader finds glibc's malloc before that of libmymalloc.so (a
 * dependency of a preloaded library comes after the program's own), so
 * libmymalloc++ exports the family itself, forwarding through this table. */
#ifndef MYMALLOC_FAMILY_H
#define MYMALLOC_FAMILY_H

#include <malloc.h>
#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct mymalloc_family {
    void *(*malloc_fn)(size_t);
    void (*free_fn)(void *);
    void *(*calloc_fn)(size_t, size_t);
    void *(*realloc_fn)(void *, size_t);
    void *(*reallocarray_fn)(void *, size_t, size_t);
    int (*posix_memalign_fn)(void **, size_t, size_t);
    void *(*aligned_alloc_fn)(size_t, size_t);
    void *(*memalign_fn)(size_t, size_t);
    void *(*valloc_fn)(size_t);
    void *(*pvalloc_fn)(size_t);
    size_t (*malloc_usable_size_fn)(void *);
    int (*malloc_trim_fn)(size_t);
    int (*mallopt_fn)(int, int);
    struct mallinfo (*mallinfo_fn)(void);
    struct mallinfo2 (*mallinfo2_fn)(void);
    void (*malloc_stats_fn)(void);
    void (*free_sized_fn)(void *, size_t);
    void (*free_aligned_sized_fn)(void *, size_t, size_t);
    int (*malloc_info_fn)(int, FILE *);
};

/* Exported by libmymalloc.so; the table points at its own definitions. */
__attribute__((visibility("default"))) const struct mymalloc_family *mymalloc_family(void);

#ifdef __cplusplus
}
#endif

#endif
