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

/* mallopt() parameters of mymalloc's own (glibc's are in <malloc.h>). */
#define M_MYMALLOC_CHECK (-101)  /* check level 0, 1 (default) or 2, as MYMALLOC_CHECK */
#define M_MYMALLOC_ABORT (-102)  /* 1: abort on heap misuse (default); 0: report, carry on */
#define M_MYMALLOC_TCACHE (-103) /* 1: per-thread caches of small blocks (default); 0: none */
#define M_MYMALLOC_FIT (-104)    /* placement policy, as MYMALLOC_FIT: one of these */
#define MYMALLOC_FIT_BEST 0      /* the smallest free block that fits (default) */
#define MYMALLOC_FIT_FIRST 1     /* the free block at the lowest address that fits */
#define MYMALLOC_FIT_NEXT 2      /* the first that fits from where the last search ended */
#define MYMALLOC_FIT_WORST 3     /* the largest free block */
#define M_MYMALLOC_DECAY (-105)  /* ms a big free block stays resident before its pages are
                                    released (default 1000); 0: at once; negative: never */
#define M_MYMALLOC_BACKGROUND (-106) /* 1: a background thread releases free pages once their
                                        decay is over, also while the program sleeps; 0: off (default) */
#define M_MYMALLOC_QUARANTINE (-107) /* bytes of freed small blocks kept out of use at check
                                        level 2 before they are verified and reused (default 1 MiB) */

/* The version of the library actually loaded, "MAJOR.MINOR.PATCH". */
MYMALLOC_EXPORT const char *mymalloc_version(void);

/* Walk the whole heap (every block, boundary tag, bin and bitmap bit) and
 * return the number of problems found: 0 on a sound heap. */
MYMALLOC_EXPORT int mymalloc_check(void);

/* Write an SVG picture of the heap to `path` (created or truncated): every
 * block in address order, coloured by state, with a legend and the
 * fragmentation figures.  0 on success; -1 with errno EINVAL for a NULL
 * path, ENOMEM when its scratch mapping cannot be made, or the errno of
 * open(2), write(2) or close(2).  MYMALLOC_HEAPMAP=path in the environment
 * writes one at exit. */
MYMALLOC_EXPORT int mymalloc_heapmap(const char *path);

/* Every allocation entry point, C and C++, for the call counters of
 * struct mymalloc_stats. */
enum mymalloc_call {
    MYMALLOC_CALL_MALLOC,
    MYMALLOC_CALL_FREE,
    MYMALLOC_CALL_CALLOC,
    MYMALLOC_CALL_REALLOC,
    MYMALLOC_CALL_REALLOCARRAY,
    MYMALLOC_CALL_POSIX_MEMALIGN,
    MYMALLOC_CALL_ALIGNED_ALLOC,
    MYMALLOC_CALL_MEMALIGN,
    MYMALLOC_CALL_VALLOC,
    MYMALLOC_CALL_PVALLOC,
    MYMALLOC_CALL_FREE_SIZED,
    MYMALLOC_CALL_FREE_ALIGNED_SIZED,
    /* libmymalloc++: the replaceable global operators */
    MYMALLOC_CALL_NEW,                         /* operator new(size_t) */
    MYMALLOC_CALL_NEW_ARRAY,                   /* operator new[](size_t) */
    MYMALLOC_CALL_NEW_NOTHROW,                 /* operator new(size_t, nothrow_t) */
    MYMALLOC_CALL_NEW_ARRAY_NOTHROW,
    MYMALLOC_CALL_NEW_ALIGNED,                 /* operator new(size_t, align_val_t) */
    MYMALLOC_CALL_NEW_ARRAY_ALIGNED,
    MYMALLOC_CALL_NEW_ALIGNED_NOTHROW,         /* operator new(size_t, align_val_t, nothrow_t) */
    MYMALLOC_CALL_NEW_ARRAY_ALIGNED_NOTHROW,
    MYMALLOC_CALL_DELETE,                      /* operator delete(void *) */
    MYMALLOC_CALL_DELETE_ARRAY,
    MYMALLOC_CALL_DELETE_NOTHROW,              /* operator delete(void *, nothrow_t) */
    MYMALLOC_CALL_DELETE_ARRAY_NOTHROW,
    MYMALLOC_CALL_DELETE_SIZED,                /* operator delete(void *, size_t) */
    MYMALLOC_CALL_DELETE_ARRAY_SIZED,
    MYMALLOC_CALL_DELETE_ALIGNED,              /* operator delete(void *, align_val_t) */
    MYMALLOC_CALL_DELETE_ARRAY_ALIGNED,
    MYMALLOC_CALL_DELETE_ALIGNED_NOTHROW,      /* operator delete(void *, align_val_t, nothrow_t) */
    MYMALLOC_CALL_DELETE_ARRAY_ALIGNED_NOTHROW,
    MYMALLOC_CALL_DELETE_SIZED_ALIGNED,        /* operator delete(void *, size_t, align_val_t) */
    MYMALLOC_CALL_DELETE_ARRAY_SIZED_ALIGNED,
    MYMALLOC_CALL_COUNT
};

/* The name of an entry point as a user would write it: "malloc",
 * "operator new[]", ...; NULL for a value out of range. */
MYMALLOC_EXPORT const char *mymalloc_call_name(enum mymalloc_call call);

/* The size classes of the request histogram (mymalloc_stats.size_classes):
 * powers of two.  Class 0 counts requests of 0 to 16 bytes, class i (1 to
 * 16) those of (8 << i) + 1 to 16 << i bytes, so that class 16 ends at 1 MiB,
 * and the last class (17) every request of more than 1 MiB.  The largest
 * size a class counts: */
#define MYMALLOC_SIZE_CLASSES 18
#define MYMALLOC_SIZE_CLASS_MAX(i) \
    ((unsigned)(i) + 1 < MYMALLOC_SIZE_CLASSES ? (size_t)16 << (i) : (size_t)-1)

/* A snapshot of the allocator's state. */
struct mymalloc_stats {
    size_t heap_bytes;          /* bytes of heap regions (brk heap and mmap segments) */
    size_t heap_peak_bytes;     /* the most heap_bytes has been */
    size_t inuse_bytes;         /* bytes of in-use heap blocks, headers included */
    size_t free_bytes;          /* bytes of free blocks in the bins */
    size_t free_blocks;         /* number of those blocks */
    size_t top_bytes;           /* the top block: free, at the end of the heap */
    size_t cached_bytes;        /* freed small blocks held in threads' caches, or parked in their
                                   arenas for the caches' refills (counted in inuse_bytes) */
    size_t mapped_blocks;       /* blocks with a mapping of their own */
    size_t mapped_bytes;        /* bytes mapped for them */
    size_t mapped_peak_bytes;
    unsigned long long calls[MYMALLOC_CALL_COUNT];  /* calls of each entry point, all threads */
    /* System calls the allocator made, each counted whether it succeeded or not: */
    unsigned long long sbrk_grow_calls;    /* sbrk() growing the heap */
    unsigned long long sbrk_shrink_calls;  /* sbrk() with a negative increment: trimming */
    unsigned long long mmap_calls;         /* mapped blocks and heap segments */
    unsigned long long munmap_calls;
    unsigned long long mremap_calls;       /* realloc() of mapped blocks */
    unsigned long long madvise_calls;      /* free pages given back inside the heap */
    size_t mapped_peak_blocks;             /* the most mapped_blocks has been */
    /* Allocation requests by size, all threads: malloc, calloc, realloc and
     * reallocarray (except those freeing: a null size with a pointer), the
     * aligned allocators and mymalloc_alloc_counted (so operator new), each
     * counted with the size asked for (count * size for calloc), in the
     * class of MYMALLOC_SIZE_CLASS_MAX above. */
    unsigned long long size_classes[MYMALLOC_SIZE_CLASSES];
    size_t arenas;              /* arenas in use: the main one (brk heap) and those of other threads */
};

/* Fill *stats; 0 on success, -1 with errno EINVAL for a NULL pointer.  The
 * call counters are kept per thread and summed here, so they cost the
 * allocation calls nothing but a thread-local increment. */
MYMALLOC_EXPORT int mymalloc_stats_get(struct mymalloc_stats *stats);
/* malloc_stats() (declared in <malloc.h>) writes these on stderr, after the
 * lines glibc writes; MYMALLOC_STATS=1 in the environment writes them at
 * exit.  malloc_info(0, fp) writes them as glibc's XML. */

/* For language runtimes (libmymalloc++ is built on these): allocate `size`
 * bytes aligned to `alignment` (0 or a power of two), counted as `call`;
 * NULL with errno ENOMEM or EINVAL on failure.  mymalloc_free_counted frees
 * p; a nonzero size (and alignment) is checked against the block, and a
 * mismatch is reported as heap misuse in the name of `call`. */
MYMALLOC_EXPORT void *mymalloc_alloc_counted(size_t size, size_t alignment, enum mymalloc_call call);
MYMALLOC_EXPORT void mymalloc_free_counted(void *ptr, size_t size, size_t alignment, enum mymalloc_call call);

/* C23: free with the size (and alignment) the block was allocated with. */
MYMALLOC_EXPORT void free_sized(void *ptr, size_t size);
MYMALLOC_EXPORT void free_aligned_sized(void *ptr, size_t alignment, size_t size);

#ifdef __cplusplus
}
#endif

#endif
