/* thread.c - per-thread state: each thread's call and size-class counters, the registry of
 * threads that have counters (summed by mymalloc_stats_get), and what happens
 * to them at thread exit and in a fork child.  Thread-local storage uses the
 * initial-exec model: no allocation on first touch. */
#include <pthread.h>
#include "cache.h"
#include "internal.h"

__thread struct mm_thread mm_self __attribute__((tls_model("initial-exec")));

static struct mm_thread *registry;          /* threads in state MM_THREAD_LIVE */
static mm_lock_t registry_lock;
static uint64_t retired_calls[MYMALLOC_CALL_COUNT];   /* of exited threads */
static uint64_t retired_sizes[MYMALLOC_SIZE_CLASSES];
static pthread_key_t exit_key;
static int exit_key_ready;

static void registry_unlink(struct mm_thread *t)
{
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        registry = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    t->next = t->prev = NULL;
}

/* A thread's counters, with its malloc fast-path counts folded in. */
static void counters_read(const struct mm_thread *t, uint64_t calls[MYMALLOC_CALL_COUNT],
                          uint64_t sizes[MYMALLOC_SIZE_CLASSES])
{
    for (int i = 0; i < MYMALLOC_CALL_COUNT; i++)
        calls[i] = __atomic_load_n(&t->calls[i], __ATOMIC_RELAXED);
    for (int i = 0; i < MYMALLOC_SIZE_CLASSES; i++)
        sizes[i] = __atomic_load_n(&t->sizes[i], __ATOMIC_RELAXED);
    for (size_t g = 0; g < MM_FAST_SIZES; g++) {
        uint64_t n = __atomic_load_n(&t->fast_sizes[g], __ATOMIC_RELAXED);
        calls[MYMALLOC_CALL_MALLOC] += n;
        sizes[mm_size_class(g * 8)] += n;       /* every request of that step is in one class */
    }
}

/* Fold a thread's counters into the retired totals; registry lock held.
 * Atomic adds: exited threads count there without the lock. */
static void counters_retire(struct mm_thread *t)
{
    uint64_t calls[MYMALLOC_CALL_COUNT], sizes[MYMALLOC_SIZE_CLASSES];
    counters_read(t, calls, sizes);
    for (int i = 0; i < MYMALLOC_CALL_COUNT; i++)
        __atomic_add_fetch(&retired_calls[i], calls[i], __ATOMIC_RELAXED);
    for (int i = 0; i < MYMALLOC_SIZE_CLASSES; i++)
        __atomic_add_fetch(&retired_sizes[i], sizes[i], __ATOMIC_RELAXED);
}

/* pthread key destructor: the thread is exiting. */
static void thread_exit(void *arg)
{
    struct mm_thread *t = arg;
    mm_lock(&registry_lock);
    t->state = MM_THREAD_EXITED;        /* from here on, no caching */
    t->cache_on = 0;
    mm_unlock(&registry_lock);
    if (!mm_cache_stash(t))             /* left to its arena for the next thread */
        mm_cache_flush(t);
    mm_arena_detach(t);                 /* its arena is free for the next thread */
    mm_lock(&registry_lock);
    counters_retire(t);
    registry_unlink(t);
    mm_unlock(&registry_lock);
}

static int is_deallocation(enum mymalloc_call call)
{
    return call == MYMALLOC_CALL_FREE || call == MYMALLOC_CALL_FREE_SIZED ||
           call == MYMALLOC_CALL_FREE_ALIGNED_SIZED || call >= MYMALLOC_CALL_DELETE;
}

/* First counted call of a thread, or a call after its exit handler ran. */
void mm_count_slow(enum mymalloc_call call)
{
    struct mm_thread *t = &mm_self;

    /* A thread is registered by its first allocation, never by a free: glibc
     * frees per-thread buffers after the key destructors have run, and a
     * thread registered then would never be unregistered. */
    if (t->state == MM_THREAD_EXITED || is_deallocation(call)) {
        __atomic_add_fetch(&retired_calls[call], 1, __ATOMIC_RELAXED);
        return;
    }
    mm_lock(&registry_lock);
    t->prev = NULL;
    t->next = registry;
    if (registry != NULL)
        registry->prev = t;
    registry = t;
    t->state = MM_THREAD_LIVE;
    mm_cache_reset(t);
    t->cache_on = (uint8_t)__atomic_load_n(&mm_cache_mode, __ATOMIC_RELAXED);
    t->calls[call]++;
    mm_unlock(&registry_lock);
    /* May allocate (and so recurse into mymalloc) for high key numbers:
     * done outside every lock, with this thread already registered. */
    if (__atomic_load_n(&exit_key_ready, __ATOMIC_ACQUIRE))
        pthread_setspecific(exit_key, t);
}

/* The same for an allocating call with the size class of its request. */
void mm_count_alloc_slow(enum mymalloc_call call, size_t cls)
{
    struct mm_thread *t = &mm_self;
    mm_count_slow(call);                /* registers the thread if it can */
    if (t->state == MM_THREAD_LIVE)
        t->sizes[cls]++;
    else
        __atomic_add_fetch(&retired_sizes[cls], 1, __ATOMIC_RELAXED);
}

/* Call and size counts of all threads, and what their caches hold. */
void mm_thread_counts(struct mm_thread_totals *totals)
{
    size_t cached = 0, blocks = 0;
    mm_lock(&registry_lock);
    for (int i = 0; i < MYMALLOC_CALL_COUNT; i++)
        totals->calls[i] = __atomic_load_n(&retired_calls[i], __ATOMIC_RELAXED);
    for (int i = 0; i < MYMALLOC_SIZE_CLASSES; i++)
        totals->sizes[i] = __atomic_load_n(&retired_sizes[i], __ATOMIC_RELAXED);
    for (struct mm_thread *t = registry; t != NULL; t = t->next) {
        uint64_t calls[MYMALLOC_CALL_COUNT], sizes[MYMALLOC_SIZE_CLASSES];
        counters_read(t, calls, sizes);
        for (int i = 0; i < MYMALLOC_CALL_COUNT; i++)
            totals->calls[i] += calls[i];
        for (int i = 0; i < MYMALLOC_SIZE_CLASSES; i++)
            totals->sizes[i] += sizes[i];
        size_t n;
        cached += mm_cache_count(&t->cache, &n);
        blocks += n;
    }
    unsigned count = __atomic_load_n(&mm_arena_count, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < count; i++) {     /* caches left to arenas */
        const struct mm_arena *a = __atomic_load_n(&mm_arenas[i], __ATOMIC_ACQUIRE);
        size_t n;
        if (__atomic_load_n(&a->stashed, __ATOMIC_RELAXED)) {
            cached += mm_cache_count(&a->stash, &n);
            blocks += n;
        }
    }
    mm_unlock(&registry_lock);
    totals->cached_bytes = cached;
    totals->cached_blocks = blocks;
}

/* Caching was turned on or off: every live thread follows at its next call. */
void mm_thread_cache_switch(int on)
{
    mm_lock(&registry_lock);
    for (struct mm_thread *t = registry; t != NULL; t = t->next)
        __atomic_store_n(&t->cache_on, (uint8_t)on, __ATOMIC_RELAXED);
    mm_unlock(&registry_lock);
}

void mm_thread_fork_prepare(void) { mm_lock(&registry_lock); }
void mm_thread_fork_parent(void) { mm_unlock(&registry_lock); }

/* In the child only the forking thread lives on: the others' counters are
 * retired, so their memory (reused by glibc for new threads' stacks) is never
 * linked twice. */
void mm_thread_fork_child(void)
{
    struct mm_thread *self = &mm_self, *t = registry, *next;
    for (; t != NULL; t = next) {
        next = t->next;
        if (t != self)
            counters_retire(t);
    }
    registry = NULL;
    if (self->state == MM_THREAD_LIVE) {
        self->next = self->prev = NULL;
        registry = self;
    }
    __atomic_store_n(&registry_lock.state, 0, __ATOMIC_RELAXED);
}

void mm_thread_setup(void)
{
    if (pthread_key_create(&exit_key, thread_exit) == 0) {
        __atomic_store_n(&exit_key_ready, 1, __ATOMIC_RELEASE);
        if (mm_self.state == MM_THREAD_LIVE)
            pthread_setspecific(exit_key, &mm_self);
    }
}
