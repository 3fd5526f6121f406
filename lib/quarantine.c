/* quarantine.c - MYMALLOC_CHECK=2's quarantine.  A small block freed at
 * level 2 does not go back to its heap at once: it waits, filled with the
 * freed pattern and marked with the cache key (so a second free, a realloc
 * or malloc_usable_size of it is reported as one of a freed block), in a
 * first-in first-out queue of at most QUARANTINE_SLOTS blocks and
 * MYMALLOC_QUARANTINE bytes.  The oldest leave as new ones come in, and each
 * is verified as it leaves: a write through a dangling pointer made while it
 * waited is reported, instead of landing in the next owner's block.
 * malloc_trim, a change of check level and the end of the program empty it.
 * Arena layer: it takes the lock of the arena of each block that leaves,
 * and never holds its own lock meanwhile. */
#include "arena.h"

#define QUARANTINE_SLOTS 4096
#define QUARANTINE_BATCH 32     /* blocks taken out per turn of the lock */

static struct {
    block_t *ring[QUARANTINE_SLOTS];
    size_t first, count;        /* the oldest's slot; blocks waiting */
    size_t bytes;               /* their sizes summed */
} queue;
static mm_lock_t queue_lock = MM_LOCK_INIT(MM_RANK_QUARANTINE);

/* Is b one the quarantine takes?  Small blocks only: a bigger freed block is
 * filled and verified when it is reused, and a mapped one is unmapped. */
int mm_quarantine_takes(const block_t *b)
{
    return mm_check_level() == 2 && block_size(b) <= MM_CACHE_MAX_BLOCK &&
           mm_setting(&mm_settings.quarantine) != 0;
}

/* b (its arena's lock held, checked as a free checks it) starts waiting: its
 * inside filled, the key in its second word.  mm_quarantine_add then queues
 * it, with no lock held. */
void mm_quarantine_fill(block_t *b)
{
    char *user = block_user(b);
    mm_freed_fill(user, block_usable(b));
    ((size_t *)user)[1] = cache_key(user);
}

/* Where the fill of a waiting block first changed (from the user pointer),
 * or SIZE_MAX when it is whole. */
static size_t changed_at(block_t *b)
{
    char *user = block_user(b);
    size_t offset;
    if (!mm_freed_fill_ok(user, MM_WORD, &offset))
        return offset;
    if (((size_t *)user)[1] != cache_key(user))
        return MM_WORD;
    if (!mm_freed_fill_ok(user + 2 * MM_WORD, block_usable(b) - 2 * MM_WORD, &offset))
        return 2 * MM_WORD + offset;
    return SIZE_MAX;
}

/* b leaves: verified, then freed into its heap (`func` names the call in a
 * report).  A block written while it waited is reported and kept out of
 * use. */
static void leave(block_t *b, const char *func)
{
    struct mm_arena *a = mm_arena_of(b);
    mm_lock(&a->lock);
    size_t at = changed_at(b);
    if (unlikely(at != SIZE_MAX)) {
        mm_report_changed(func, "write after free in block", block_user(b), at, " while it was in quarantine",
                          block_size(b));
        block_set_head(b, block_size(b), BLOCK_INUSE | ORIGIN_QUARANTINE | (b->head & BLOCK_PREV_INUSE));
    } else {
        mm_freed_fill((char *)block_user(b) + MM_WORD, MM_WORD);    /* the key goes: no longer freed */
        if (mm_heap_block_sound_any(a, b) ||
            mm_heap_block_report(a, b, block_user(b), func, block_origin(b)))
            mm_heap_free(a, b, MM_FILL_DONE, func);
    }
    mm_unlock(&a->lock);
}

/* Take out the oldest blocks while more than `bytes` or `slots` wait, at
 * most QUARANTINE_BATCH at a time; how many were taken. */
static size_t take_oldest(size_t bytes, size_t slots, block_t **out)
{
    size_t n = 0;
    mm_lock(&queue_lock);
    while (n < QUARANTINE_BATCH && queue.count > 0 && (queue.bytes > bytes || queue.count > slots)) {
        block_t *b = queue.ring[queue.first];
        queue.first = (queue.first + 1) % QUARANTINE_SLOTS;
        queue.count--;
        queue.bytes -= block_size(b);
        out[n++] = b;
    }
    mm_unlock(&queue_lock);
    return n;
}

/* Let blocks leave until at most `bytes` and `slots` wait. */
static void drain_to(size_t bytes, size_t slots, const char *func)
{
    block_t *out[QUARANTINE_BATCH];
    size_t n;
    while ((n = take_oldest(bytes, slots, out)) != 0)
        for (size_t i = 0; i < n; i++)
            leave(out[i], func);
}

/* Queue b (filled by mm_quarantine_fill); no lock is held.  The oldest leave
 * when it is full. */
void mm_quarantine_add(block_t *b, const char *func)
{
    mm_lock(&queue_lock);
    while (queue.count == QUARANTINE_SLOTS) {     /* rare: made room for below */
        mm_unlock(&queue_lock);
        drain_to(SIZE_MAX, QUARANTINE_SLOTS - 1, func);
        mm_lock(&queue_lock);
    }
    queue.ring[(queue.first + queue.count) % QUARANTINE_SLOTS] = b;
    queue.count++;
    queue.bytes += block_size(b);
    size_t over = queue.bytes > mm_setting(&mm_settings.quarantine);
    mm_unlock(&queue_lock);
    if (over)
        drain_to(mm_setting(&mm_settings.quarantine), QUARANTINE_SLOTS, func);
}

/* Every waiting block leaves, verified (malloc_trim, the end of the
 * program). */
void mm_quarantine_empty(const char *func)
{
    drain_to(0, 0, func);
}

/* The level or the size of the quarantine changed: as many leave as must. */
void mm_quarantine_settle(const char *func)
{
    drain_to(mm_check_level() == 2 ? mm_setting(&mm_settings.quarantine) : 0, QUARANTINE_SLOTS, func);
}

/* fork(): the queue's lock is taken after every arena's. */
void mm_quarantine_fork_prepare(void) { mm_lock(&queue_lock); }
void mm_quarantine_fork_parent(void) { mm_unlock(&queue_lock); }
void mm_quarantine_fork_child(void) { __atomic_store_n(&queue_lock.state, 0, __ATOMIC_RELAXED); }
