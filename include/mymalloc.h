/* mymalloc.h - mymalloc's own interface, beyond the standard malloc family
 * (which <stdlib.h> and <malloc.h> declare).  Usable from C and C++. */
#ifndef MYMALLOC_H
#define MYMALLOC_H

#include <stddef.h>

/* configure.ac reads the version from these lines: keep them the only place. */
#define MYMALLOC_VERSION_MAJOR 0
#define MYMALLOC_VERSION_MINOR 1
#define MYMALLOC_VERSION_PATCH 0
#define MYMALLOC_VERSION_STRING "0.1.0"
#define MYMALLOC_VERSION_NUMBER \
    (MYMALLOC_VERSION_MAJOR * 10000 + MYMALLOC_VERSION_MINOR * 100 + MYMALLOC_VERSION_PATCH)

#if defined(__GNUC__)
#define MYMALLOC_EXPORT __attribute__((visibility("default")))
#else
#define MYMALLOC_EXPORT
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the library actually loaded, "MAJOR.MINOR.PATCH". */
MYMALLOC_EXPORT const char *mymalloc_version(void);

/* Walk the whole heap (every block, boundary tag, bin and bitmap bit) and
 * return the number of problems found: 0 on a sound heap. */
MYMALLOC_EXPORT int mymalloc_check(void);

/* C23: free with the size (and alignment) the block was allocated with. */
MYMALLOC_EXPORT void free_sized(void *ptr, size_t size);
MYMALLOC_EXPORT void free_aligned_sized(void *ptr, size_t alignment, size_t size);

#ifdef __cplusplus
}
#endif

#endif
