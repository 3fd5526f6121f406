/* cache.c - per-thread caches of small blocks: refilled from the arena and
 * drained back to it in batches (one lock round trip for many blocks), left
 * to the arena for the next thread when the thread exits, flushed on
 * malloc_trim and when caching is turned off; the stacks of frees by threads
 * without a cache.  Cached blocks stay "in use" for the heap, so nothing
 * else touches them; the fast paths are in cache.h. */
#include <string.h>
#include "cache.h"

int mm_cache_mode;

/* Block sizes: class * 16 up to 1008, then sixteenths of powers of two. */
#define R(lg, k) (uint16_t)(((k) + 1) << ((lg) - 4))
#define R4(lg, k) R(lg, k), R(lg, k + 1), R(lg, k + 2), R(lg, k + 3)
#define R16(lg) R4(lg, 16), R4(lg, 20), R4(lg, 24), R4(lg, 28)
#define S(c) (uint16_t)((c) * 16)
#define S4(c) S(c), S(c + 1), S(c + 2), S(c + 3)
#define S16(c) S4(c), S4(c + 4), S4(c + 8), S4(c + 12)
const uint16_t mm_cache_block[MM_CACHE_CLASSES] = { S16(0), S16(16), S16(32), S16(48), R(9, 31), R16(10), R16(11),
                                                    R16(12) };
_Static_assert(sizeof mm_cache_block / sizeof mm_cache_block[0] == MM_CACHE_CLASSES, "a size for every class");

/* request_to_class(8 * step): the biggest request of the step, whose block
 * every smaller request of the step shares. */
#define C(g) (uint8_t)((g) * 8 + MM_HEADER + MM_ALIGN - 1 < MM_MIN_BLOCK ? MM_MIN_BLOCK / MM_ALIGN \
                                                                    : ((g) * 8 + MM_HEADER + MM_ALIGN - 1) / MM_ALIGN)
#define C4(g) C(g), C(g + 1), C(g + 2), C(g + 3)
#define C16(g) C4(g), C4(g + 4), C4(g + 8), C4(g + 12)
const uint8_t mm_cache_class_of_step[MM_FAST_SIZES] = { C16(0), C16(16), C16(32), C16(48),
                                                        C16(64), C16(80), C16(96), C16(112) };
_Static_assert(MM_FAST_SIZES * 8 > MM_CACHE_SMALL_MAX_REQUEST, "a step for every small request");

/* Blocks kept per class: about 16 KiB worth, between 8 and 120 blocks, for
 * the small classes; 16 KiB worth, between 2 and 8 blocks, for the ranged
 * ones.  (4 KiB worth, 4 to 32 blocks, until 2026-12-06: four times as many
 * cost about 1% more peak RSS and made the classic benchmarks' churn 9%
 * faster, glibc-simple twice as fast.) */
#define PER(cls) (1024 / ((cls) < 2 ? 2 : (cls)))
#define L(cls) ((cls) < 2 ? 0 : PER(cls) > MM_CACHE_LIMIT_MAX ? MM_CACHE_LIMIT_MAX : PER(cls) < 8 ? 8 : PER(cls))
#define L4(c) L(c), L(c + 1), L(c + 2), L(c + 3)
#define L16(c) L4(c), L4(c + 4), L4(c + 8), L4(c + 12)
#define RL(lg, k) (16384 / R(lg, k) > 8 ? 8 : 16384 / R(lg, k) < 2 ? 2 : 16384 / R(lg, k))
#define RL4(lg, k) RL(lg, k), RL(lg, k + 1), RL(lg, k + 2), RL(lg, k + 3)
#define RL16(lg) RL4(lg, 16), RL4(lg, 20), RL4(lg, 24), RL4(lg, 28)
_Static_assert(RL(9, 31) <= MM_CACHE_LIMIT_MAX, "a drain's batch fits");
const uint8_t mm_cache_limit[MM_CACHE_CLASSES] = { L16(0), L16(16), L16(32), L16(48), RL(9, 31), RL16(10), RL16(11),
                                                   RL16(12) };

/* The arena of block b, locked: *held (if not NULL) is the arena whose lock
 * this thread holds, switched when b is another arena's.  A drain's chain
 * of parked blocks (if `chain` is not NULL) is parked in the arena left,
 * on list (o, cls), before its lock goes. */
static struct mm_arena *hold_arena_of(struct mm_arena **held, block_t *b, struct mm_park_chain *chain, size_t o,
                                      size_t cls)
{
    struct mm_arena *a = mm_arena_of(b);
    if (a != *held) {
        if (*held != NULL && chain != NULL)
            mm_park_close(*held, chain, o, cls);
        if (*held != NULL)
            mm_unlock_heap(*held);
        mm_lock(&a->lock);
        *held = a;
    }
    return a;
}

/* Hand a cached block back to its own arena (see hold_arena_of).  Its
 * neighbours are checked here, not when it was freed: a write past its end
 * into the next header is reported now, in the name of the family that
 * freed it. */
static void cache_block_free(struct mm_arena **held, block_t *b)
{
    mm_heap_free_cached(hold_arena_of(held, b, NULL, 0, 0), b);
}

/* Arena a's lock is held by thread t, whose cache is empty for a class it
 * needs: the blocks other threads freed and left waiting on a's stack go to
 * t's cache where their list has room (each checked as free() checks it:
 * its header may have been overwritten while it waited), the rest back to
 * the heap.  A producer whose blocks a consumer frees gets them back without
 * merging and splitting them again. */
static void pending_to_cache(struct mm_arena *a, struct mm_thread *t)
{
    void *user = __atomic_exchange_n(&a->pending, NULL, __ATOMIC_ACQUIRE);
    while (user != NULL) {
        void *next = mm_cached_next(user);
        block_t *b = block_of_user(user);
        size_t head = b->head, o = (head & ORIGIN_MASK) >> ORIGIN_SHIFT;
        size_t cls = mm_cache_class_of_block(head & BLOCK_SIZE_MASK);
        if (cls != 0 && o < MM_CACHE_ORIGINS && t->cache.room[o][cls] > 0 && block_head_ok(b) &&
            (head & (BLOCK_FLAGS & ~BLOCK_PREV_INUSE)) == (BLOCK_INUSE | (head & ORIGIN_MASK))) {
            cache_words_set(user, t->cache.head[o][cls]);
            t->cache.head[o][cls] = user;
            t->cache.room[o][cls]--;
        } else {
            mm_heap_free_cached(a, b);
        }
        user = next;
    }
}

/* A list ended while its count says it still holds blocks: a write after
 * free moved a link onto a block further down the list (each block is
 * checked for its key as it is handed out, so none was handed out twice;
 * the ones passed over are lost).  Reported, and the count put right. */
static MM_COLD MM_NOINLINE void cache_list_cut_short(struct mm_thread *t, size_t o, size_t cls)
{
    char detail[112], *d = mm_format_unsigned(detail, mm_cache_block[cls]);
    memcpy(d, "-byte blocks ended early, passing over ", 39);
    d = mm_format_unsigned(d + 39, (size_t)(mm_cache_limit[cls] - t->cache.room[o][cls]));
    memcpy(d, ": a link was changed", sizeof ": a link was changed");
    t->cache.room[o][cls] = (int8_t)mm_cache_limit[cls];
    mm_report("malloc", "write after free in a list of cached", NULL, detail, 0);
}

/* The cache of this class is empty: take a batch of blocks under one lock
 * (twice the last batch, 2 the first time, at most half the limit), return
 * one and keep the rest, listed in address order (neighbours carved from
 * the top are handed out in the order they lie).  NULL when out of memory. */
void *mm_cache_refill(struct mm_thread *t, size_t o, size_t cls, size_t origin)
{
    struct mm_arena *a = mm_thread_arena();
    if (t->cache.head[o][cls] != NULL)              /* adopted with the arena just taken */
        return mm_cache_pop(t, o, cls);
    if (unlikely(t->cache.room[o][cls] != mm_cache_limit[cls]))
        cache_list_cut_short(t, o, cls);
    unsigned most = mm_cache_limit[cls] / 2u;
    unsigned batch = t->cache.batch[o][cls] == 0 ? 2u : 2u * t->cache.batch[o][cls];
    if (batch > most)
        batch = most;
    t->cache.batch[o][cls] = (uint8_t)batch;
    block_t *first, *last = NULL;

    mm_lock(&a->lock);
    if (__atomic_load_n(&a->pending, __ATOMIC_RELAXED) != NULL) {
        pending_to_cache(a, t);
        if (t->cache.head[o][cls] != NULL) {
            mm_unlock_heap(a);
            return mm_cache_pop(t, o, cls);
        }
    }
    if (a->parked[o][cls] != NULL) {       /* drained blocks of this class, as they were */
        unsigned count = 0;
        void *list = mm_park_take(a, o, cls, &count);
        if (list != NULL) {
            t->cache.head[o][cls] = list;
            t->cache.room[o][cls] = (int8_t)(t->cache.room[o][cls] - (int)count);
            mm_unlock_heap(a);
            return mm_cache_pop(t, o, cls);
        }
    }
    size_t need = mm_cache_block[cls];
    first = mm_heap_alloc_span(a, need, batch, origin);
    if (first == NULL && a != &mm_main_arena) {     /* the arena cannot grow: try main */
        mm_unlock_heap(a);
        a = &mm_main_arena;
        mm_lock(&a->lock);
        first = mm_heap_alloc_span(a, need, batch, origin);
    }
    if (first != NULL) {
        /* Cut the span into blocks: the first handed out, the rest cached in
         * address order.  (A span of one block may be a little bigger.) */
        size_t span = block_size(first), count = span / need;
        mm_assert(count == 1 || span == count * need);
        if (count > 1)
            block_set_head(first, need, BLOCK_INUSE | origin | (first->head & BLOCK_PREV_INUSE));
        for (size_t i = 1; i < count; i++) {
            block_t *b = block_at(first, i * need);
            block_set_head(b, need, BLOCK_INUSE | BLOCK_PREV_INUSE | origin);
            if (last != NULL)
                cache_words_set(block_user(last), block_user(b));
            else
                t->cache.head[o][cls] = block_user(b);
            last = b;
            t->cache.room[o][cls]--;
        }
    }
    if (last != NULL)
        cache_words_set(block_user(last), NULL);
    mm_unlock_heap(a);
    return first != NULL ? block_user(first) : NULL;
}

/* The cache of this class is over its limit: keep the most recently freed
 * half (warm in the CPU cache) and give the rest back under one lock. */
void mm_cache_drain(struct mm_thread *t, size_t o, size_t cls)
{
    unsigned keep = mm_cache_limit[cls] / 2u;
    void *user = t->cache.head[o][cls];

    unsigned kept = 1;
    for (; kept < keep; kept++) {
        void *next = mm_cached_next(user);
        if (next == NULL)
            break;              /* damaged (reported): the rest is left out of use */
        user = next;
    }
    void *rest = kept == keep ? mm_cached_next(user) : NULL;
    cache_words_set(user, NULL);
    t->cache.room[o][cls] = (int8_t)(mm_cache_limit[cls] - kept);

    /* The rest go back in their list's order or the reverse, whichever
     * starts at the higher address: a block freed just below the top joins
     * it, and then so does the one below that, rather than being parked
     * under it.  (A cache lists blocks freed in reverse order in address
     * order; the merge of parked blocks at a top join would miss these, as
     * their chain is parked only once the drain is done, and freeing the end
     * of the heap in reverse order must lower the break at once.) */
    void *batch[MM_CACHE_LIMIT_MAX + 1];
    unsigned n = 0;
    while (rest != NULL && n <= MM_CACHE_LIMIT_MAX) {
        batch[n++] = rest;
        rest = mm_cached_next(rest);
    }
    int up = n > 1 && (uintptr_t)batch[0] < (uintptr_t)batch[n - 1];
    /* Each is parked in its arena, unmerged, for the next refill of this
     * class, while there is room (park.c); else freed.  The blocks parked
     * in one arena make one chain, which a refill takes whole. */
    struct mm_arena *held = NULL;
    struct mm_park_chain chain = { 0 };
    for (unsigned i = 0; i < n; i++) {
        block_t *b = block_of_user(batch[up ? n - 1 - i : i]);
        struct mm_arena *a = hold_arena_of(&held, b, &chain, o, cls);
        if (i == 0)
            mm_heap_prefetch_neighbours(a, batch, n);
        if (!mm_park_add(a, &chain, b))
            mm_heap_free_cached(a, b);
    }
    if (held != NULL) {
        mm_park_close(held, &chain, o, cls);
        mm_unlock_heap(held);
    }
}

/* The slow end of a push (mm_cache_push_keyed): the list over its limit,
 * or the thread due for a poll of its arena. */
void mm_cache_pushed(struct mm_thread *t, size_t o, size_t cls)
{
    if (t->cache.room[o][cls] < 0)
        mm_cache_drain(t, o, cls);
    if (t->poll_countdown == 0) {
        t->poll_countdown = 255;
        mm_decay_poll(t);
    }
}

/* ---- a cache left to the arena at thread exit ----
 * A thread that exits leaves its cache to its arena (if the arena holds no
 * other), and the next thread to take the arena adopts it: a program that
 * keeps starting short-lived threads does not send every cached block back
 * to the heap and carve it out again.  A cache left there for the decay with
 * no thread to take it is given back by the busy arenas' look at the idle
 * ones (release.c), and by malloc_trim(). */
/* The blocks of other arenas in t's cache go home, onto their arenas'
 * stacks of pending frees (their threads take them at their next refill),
 * or into the heap of an arena no thread uses: a cache left to arena a
 * keeps only a's blocks.  Else the caches of a program whose threads free
 * each other's blocks (larson) mix the threads' blocks ever finer with each
 * generation, until blocks that two threads write share cache lines
 * (larson with 10-100 byte blocks took 1.33x glibc's time, now 0.91x). */
static void cache_send_others_home(struct mm_thread *t, struct mm_arena *a)
{
    struct mm_arena *held = NULL;
    for (size_t o = 0; o < MM_CACHE_ORIGINS; o++)
        for (size_t cls = 0; cls < MM_CACHE_CLASSES; cls++) {
            void *user = t->cache.head[o][cls], *kept = NULL, *last = NULL;
            int count = 0;
            while (user != NULL) {
                void *next = mm_cached_next(user);
                block_t *b = block_of_user(user);
                struct mm_arena *home = mm_arena_of(b);
                if (home == a) {
                    if (last != NULL)
                        cache_words_set(last, user);
                    else
                        kept = user;
                    last = user;
                    count++;
                } else if (__atomic_load_n(&home->threads, __ATOMIC_RELAXED) != 0) {
                    mm_pending_push(home, b);
                } else {
                    cache_block_free(&held, b);
                }
                user = next;
            }
            if (last != NULL)
                cache_words_set(last, NULL);
            t->cache.head[o][cls] = kept;
            t->cache.room[o][cls] = (int8_t)(mm_cache_limit[cls] - count);
        }
    if (held != NULL)
        mm_unlock_heap(held);
}

int mm_cache_stash(struct mm_thread *t)
{
    struct mm_arena *a = t->arena;
    if (a == NULL || !__atomic_load_n(&mm_cache_mode, __ATOMIC_RELAXED))
        return 0;
    cache_send_others_home(t, a);
    mm_lock(&a->lock);
    int done = !a->stashed;
    if (done) {
        a->stash = t->cache;
        a->stash_since = mm_now_ms();
        __atomic_store_n(&a->stashed, 1, __ATOMIC_RELAXED);
    }
    mm_unlock(&a->lock);
    if (done)
        mm_cache_reset(t);
    return done;
}

/* Thread t has just taken arena a, with its cache still empty. */
void mm_cache_adopt(struct mm_thread *t, struct mm_arena *a)
{
    if (!__atomic_load_n(&a->stashed, __ATOMIC_RELAXED) || !t->cache_on)
        return;
    for (size_t o = 0; o < MM_CACHE_ORIGINS; o++)
        for (size_t cls = 0; cls < MM_CACHE_CLASSES; cls++)
            if (t->cache.head[o][cls] != NULL)
                return;
    mm_lock(&a->lock);
    if (a->stashed) {
        t->cache = a->stash;
        __atomic_store_n(&a->stashed, 0, __ATOMIC_RELAXED);
    }
    mm_unlock(&a->lock);
}

/* Arena a's lock is held: give back the blocks of the cache left there, a's
 * own to its heap and other arenas' onto their stacks of pending frees (no
 * second lock is taken). */
void mm_cache_stash_free(struct mm_arena *a)
{
    if (!a->stashed)
        return;
    __atomic_store_n(&a->stashed, 0, __ATOMIC_RELAXED);
    for (size_t o = 0; o < MM_CACHE_ORIGINS; o++)
        for (size_t cls = 0; cls < MM_CACHE_CLASSES; cls++) {
            void *user = a->stash.head[o][cls];
            while (user != NULL) {
                void *next = mm_cached_next(user);
                block_t *b = block_of_user(user);
                struct mm_arena *home = mm_arena_of(b);
                if (home == a)
                    mm_heap_free_cached(a, b);
                else
                    mm_pending_push(home, b);
                user = next;
            }
        }
}

/* Bytes and blocks a cache holds (read racily by the statistics). */
size_t mm_cache_count(const struct mm_cache *c, size_t *blocks)
{
    size_t bytes = 0, n = 0;
    for (size_t o = 0; o < MM_CACHE_ORIGINS; o++)
        for (size_t cls = 0; cls < MM_CACHE_CLASSES; cls++) {
            int room = __atomic_load_n(&c->room[o][cls], __ATOMIC_RELAXED);
            size_t k = room < mm_cache_limit[cls] ? (size_t)(mm_cache_limit[cls] - room) : 0;
            bytes += k * mm_cache_block[cls];
            n += k;
        }
    *blocks = n;
    return bytes;
}

/* Every list empty, with room for its limit. */
void mm_cache_reset(struct mm_thread *t)
{
    for (size_t o = 0; o < MM_CACHE_ORIGINS; o++)
        for (size_t cls = 0; cls < MM_CACHE_CLASSES; cls++) {
            t->cache.head[o][cls] = NULL;
            t->cache.room[o][cls] = (int8_t)mm_cache_limit[cls];
            t->cache.batch[o][cls] = 0;
        }
}

/* Give every cached block back (thread exit, malloc_trim, caching off). */
void mm_cache_flush(struct mm_thread *t)
{
    struct mm_arena *held = NULL;
    for (size_t o = 0; o < MM_CACHE_ORIGINS; o++) {
        for (size_t cls = 0; cls < MM_CACHE_CLASSES; cls++) {
            void *user = t->cache.head[o][cls];
            while (user != NULL) {
                void *next = mm_cached_next(user);
                cache_block_free(&held, block_of_user(user));
                user = next;
            }
        }
    }
    mm_cache_reset(t);
    if (held != NULL)
        mm_unlock_heap(held);
}

/* A cached block's link or key was overwritten after it was freed: report
 * it and abandon the rest of that list (its blocks stay in use: leaked, never
 * handed out twice).  When the head carries no key (a write after free into
 * its own key, or one that moved the link of the block handed out before it,
 * or a block listed twice and handed out once already), the report says only
 * where the list led: the block there may not be a cached one at all. */
void *mm_cache_corrupt(struct mm_thread *t, size_t o, size_t cls)
{
    void *user = t->cache.head[o][cls];
    t->cache.head[o][cls] = NULL;
    t->cache.room[o][cls] = (int8_t)mm_cache_limit[cls];
    if (cache_words_keyed(user))
        mm_cached_report("malloc", user);
    else
        mm_cached_keyless_report("malloc", user);
    return NULL;
}
