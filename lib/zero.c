/* zero.c - MYMALLOC_CHECK=2's blocks of size 0.  malloc(0) at level 2 hands
 * out a distinct 16-byte slot of one region that is mapped inaccessible, so
 * that any read or write through the pointer faults at once; free() and
 * realloc() know the region and keep a bit per slot (in our own static
 * memory: nothing is ever written into the region), so a double free or a
 * pointer into the region that was never handed out is reported.  When
 * every slot is taken, malloc(0) falls back to an ordinary block with a
 * canary.  Heap layer, beside the mapped blocks; no lock: the bits are
 * changed with atomic operations. */
#include "heap.h"

#define ZERO_SLOTS 65536                     /* 1 MiB of address space */
#define ZERO_REGION ((size_t)ZERO_SLOTS * MM_ALIGN)

static char *region;                         /* set once, never unmapped */
static uint64_t used[ZERO_SLOTS / 64];
static size_t hint;                          /* where the next search starts */

/* The region, mapped inaccessible on first use; NULL when it cannot be. */
static char *zero_region(void)
{
    char *r = __atomic_load_n(&region, __ATOMIC_ACQUIRE);
    if (r != NULL)
        return r;
    char *fresh = mm_os_map(ZERO_REGION);
    if (fresh == NULL)
        return NULL;
    if (mm_os_protect_none(fresh, ZERO_REGION) != 0) {
        mm_os_unmap(fresh, ZERO_REGION);
        return NULL;
    }
    if (!__atomic_compare_exchange_n(&region, &r, fresh, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        mm_os_unmap(fresh, ZERO_REGION);     /* another thread's won */
        return r;
    }
    return fresh;
}

/* A fresh slot, or NULL (no region, or every slot taken). */
void *mm_zero_alloc(void)
{
    char *r = zero_region();
    if (r == NULL)
        return NULL;
    size_t start = __atomic_load_n(&hint, __ATOMIC_RELAXED) % (ZERO_SLOTS / 64);
    for (size_t k = 0; k < ZERO_SLOTS / 64; k++) {
        size_t w = (start + k) % (ZERO_SLOTS / 64);
        uint64_t bits = __atomic_load_n(&used[w], __ATOMIC_RELAXED);
        while (bits != UINT64_MAX) {
            unsigned bit = (unsigned)__builtin_ctzll(~bits);
            uint64_t mask = (uint64_t)1 << bit;
            bits = __atomic_fetch_or(&used[w], mask, __ATOMIC_ACQ_REL);
            if (!(bits & mask)) {
                __atomic_store_n(&hint, w, __ATOMIC_RELAXED);
                return r + (w * 64 + bit) * MM_ALIGN;
            }
        }
    }
    return NULL;
}

/* Is p inside the region? */
int mm_zero_owns(const void *p)
{
    const char *r = __atomic_load_n(&region, __ATOMIC_ACQUIRE);
    return r != NULL && (const char *)p >= r && (const char *)p < r + ZERO_REGION;
}

/* p (inside the region) as a slot handed out and not freed: its index, or
 * -1 after a report in the name of `func`. */
static long slot_of(const void *p, const char *func)
{
    size_t offset = (size_t)((const char *)p - __atomic_load_n(&region, __ATOMIC_ACQUIRE));
    if (offset % MM_ALIGN != 0) {
        mm_report(func, "invalid pointer", p, "inside the region of blocks of size 0", 0);
        return -1;
    }
    size_t i = offset / MM_ALIGN;
    if (!(__atomic_load_n(&used[i / 64], __ATOMIC_ACQUIRE) & ((uint64_t)1 << (i % 64)))) {
        mm_report(func, "double free of", p, "a block of size 0, freed already or never handed out", 0);
        return -1;
    }
    return (long)i;
}

/* free() of p inside the region. */
void mm_zero_free(const void *p, const char *func)
{
    long i = slot_of(p, func);
    if (i < 0)
        return;
    uint64_t mask = (uint64_t)1 << (i % 64);
    if (!(__atomic_fetch_and(&used[i / 64], ~mask, __ATOMIC_ACQ_REL) & mask))   /* a racing free won */
        mm_report(func, "double free of", p, "a block of size 0, freed already or never handed out", 0);
}

/* Is p (inside the region) a slot in use?  0 after a report. */
int mm_zero_check(const void *p, const char *func)
{
    return slot_of(p, func) >= 0;
}
