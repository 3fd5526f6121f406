/* arena.h - the arena layer (arena.c): the arenas, which arena a block is
 * in, a thread's arena taken and left, the stacks of pending frees, fork. */
#ifndef MYMALLOC_ARENA_H
#define MYMALLOC_ARENA_H

#include "heap.h"

MM_HIDDEN extern struct mm_arena mm_main_arena;
MM_HIDDEN extern struct mm_arena *mm_arenas[MM_ARENA_SLOTS];
MM_HIDDEN extern unsigned mm_arena_count;
MM_HIDDEN unsigned mm_arena_limit(void);
MM_HIDDEN struct mm_arena *mm_arena_attach(void);
MM_HIDDEN void mm_arena_detach(struct mm_arena *a);
MM_HIDDEN void mm_arenas_fork_prepare(void);
MM_HIDDEN void mm_arenas_fork_parent(void);
MM_HIDDEN void mm_arenas_fork_child(struct mm_arena *own);
MM_HIDDEN void mm_arenas_unlock_all(void);
MM_HIDDEN void mm_arenas_park_release(void);
MM_HIDDEN int mm_arenas_fit_set(int policy);

/* The arena a heap block (or a pointer into a heap) belongs to: one of the
 * non-main arenas' segments, else the main arena. */
static inline struct mm_arena *mm_arena_of(const void *p)
{
    unsigned index = mm_granule_arena((uintptr_t)p);
    return index == 0 ? &mm_main_arena : __atomic_load_n(&mm_arenas[index], __ATOMIC_ACQUIRE);
}
MM_HIDDEN void mm_pending_push(struct mm_arena *a, block_t *b);

/* MYMALLOC_CHECK=2's quarantine (quarantine.c). */
MM_HIDDEN int mm_quarantine_takes(const block_t *b);
MM_HIDDEN void mm_quarantine_fill(block_t *b);
MM_HIDDEN void mm_quarantine_add(block_t *b, const char *func);
MM_HIDDEN void mm_quarantine_empty(const char *func);
MM_HIDDEN void mm_quarantine_settle(const char *func);
MM_HIDDEN void mm_quarantine_fork_prepare(void);
MM_HIDDEN void mm_quarantine_fork_parent(void);
MM_HIDDEN void mm_quarantine_fork_child(void);
MM_HIDDEN void mm_pending_free_all(struct mm_arena *a);
/* With the arena's lock held: take in the blocks other threads left on its
 * stack of pending frees. */
static inline void mm_pending_take(struct mm_arena *a)
{
    if (unlikely(__atomic_load_n(&a->pending, __ATOMIC_RELAXED) != NULL))
        mm_pending_free_all(a);
}

#endif
