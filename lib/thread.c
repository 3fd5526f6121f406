/* thread.c - per-thread state: each thread's call and size-class counters,
 * the registry of threads that have counters (summed by mymalloc_stats_get),
 * and what happens to them at thread exit and in a fork child.  Thread-local
 * storage uses the initial-exec model: no allocation on first touch.
 *
 * The registry is a list of nodes in memory of our own, never links inside
 * a thread's storage: glibc reinitialises that storage for the next thread
 * to get the same stack, and may unmap it.  A thread is registered by its
 * first allocation and unregistered by its key destructor (thread_exit).
 * A thread whose first allocation comes in the last round of key
 * destructors registers too late for its own destructor to run, and exits
 * still registered; so each node also holds a robust mutex that its thread
 * locks at registration: when a thread exits, the kernel marks every robust
 * mutex it holds, and whoever walks the registry (the statistics, the cache
 * switch, registration when out of nodes, a fork child) drops the node of a
 * thread gone that way without reading its storage.  Its counters and the
 * few blocks in its cache are lost. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include "cache.h"

__thread struct mm_thread mm_self __attribute__((tls_model("initial-exec")));

struct registry_node {
    struct registry_node *next;     /* in the registry, or among the spare nodes */
    struct mm_thread *thread;       /* the thread's storage, while it lives */
    pthread_mutex_t alive;          /* robust: held by the thread while it lives */
};

static struct registry_node *registry;      /* registered threads, newest first */
static struct registry_node *spare;         /* nodes to reuse */
static mm_lock_t registry_lock = MM_LOCK_INIT(MM_RANK_REGISTRY);
static uint64_t retired_calls[MYMALLOC_CALL_COUNT];   /* of exited threads */
static uint64_t retired_sizes[MYMALLOC_SIZE_CLASSES];
static pthread_key_t exit_key;
static int exit_key_ready;

/* The node's mutex, new and held by the calling thread (robust: the kernel
 * marks it when the thread exits).  0 when pthreads refused. */
static int node_hold(struct registry_node *n)
{
    pthread_mutexattr_t attr;
    if (pthread_mutexattr_init(&attr) != 0)
        return 0;
    int ok = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST) == 0 &&
             pthread_mutex_init(&n->alive, &attr) == 0 && pthread_mutex_lock(&n->alive) == 0;
    pthread_mutexattr_destroy(&attr);
    return ok;
}

/* Is the node's thread gone without unregistering?  Its mutex says so: a
 * try-lock that finds the owner dead takes it (then made consistent and let
 * go).  Never the calling thread's own node. */
static int node_orphaned(struct registry_node *n)
{
    int r = pthread_mutex_trylock(&n->alive);
    if (r == EBUSY)
        return 0;
    if (r == EOWNERDEAD)
        pthread_mutex_consistent(&n->alive);
    if (r == 0 || r == EOWNERDEAD)
        pthread_mutex_unlock(&n->alive);
    return 1;
}

/* Take *link's node out of the registry (lock held) and keep it for reuse. */
static void node_retire(struct registry_node **link)
{
    struct registry_node *n = *link;
    *link = n->next;
    n->thread = NULL;
    n->next = spare;
    spare = n;
}

/* Walk the registry (lock held), dropping the nodes of threads gone without
 * unregistering (one of them may name this thread's storage, which it had
 * before us: the node, not the storage, tells ours): *link is then each live
 * node in turn.  Usage:
 *   for (struct registry_node **l = &registry; (l = live_from(l)) != NULL; l = &(*l)->next) */
static struct registry_node **live_from(struct registry_node **link)
{
    while (*link != NULL && *link != mm_self.node && node_orphaned(*link))
        node_retire(link);
    return *link != NULL ? link : NULL;
}

/* A node for a thread registering (lock held): a spare one, else one freed
 * from a thread gone without unregistering, else a new page of them.  NULL
 * when no memory can be had. */
static struct registry_node *node_take(void)
{
    if (spare == NULL)
        for (struct registry_node **l = &registry; (l = live_from(l)) != NULL; l = &(*l)->next)
            ;
    if (spare == NULL) {
        static struct registry_node first_nodes[64];     /* most programs need no more */
        static int first_used;
        size_t count = 64;
        struct registry_node *fresh = first_nodes;
        if (first_used) {
            count = mm_page_size() / sizeof *fresh;
            fresh = mm_os_map(mm_page_size());
            if (fresh == NULL)
                return NULL;
        }
        first_used = 1;
        for (size_t i = 0; i < count; i++) {
            fresh[i].next = spare;
            spare = &fresh[i];
        }
    }
    struct registry_node *n = spare;
    spare = n->next;
    return n;
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
static void counters_retire(const struct mm_thread *t)
{
    uint64_t calls[MYMALLOC_CALL_COUNT], sizes[MYMALLOC_SIZE_CLASSES];
    counters_read(t, calls, sizes);
    for (int i = 0; i < MYMALLOC_CALL_COUNT; i++)
        __atomic_add_fetch(&retired_calls[i], calls[i], __ATOMIC_RELAXED);
    for (int i = 0; i < MYMALLOC_SIZE_CLASSES; i++)
        __atomic_add_fetch(&retired_sizes[i], sizes[i], __ATOMIC_RELAXED);
}

/* The calling thread's node, out of the registry and let go; lock held. */
static void registry_leave(struct mm_thread *t)
{
    struct registry_node **link = &registry;
    while (*link != NULL && *link != t->node)
        link = &(*link)->next;
    if (*link == NULL)
        return;
    pthread_mutex_unlock(&t->node->alive);
    node_retire(link);
    t->node = NULL;
}

/* The calling thread has no arena yet: it takes one, and the cache an
 * exited thread left there. */
struct mm_arena *mm_thread_attach(struct mm_thread *t)
{
    struct mm_arena *a = mm_arena_attach();
    t->arena = a;
    mm_cache_adopt(t, a);
    return a;
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
    if (t->arena != NULL)
        mm_arena_detach(t->arena);      /* its arena is free for the next thread */
    mm_lock(&registry_lock);
    counters_retire(t);
    registry_leave(t);
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
    int saved_errno = errno;            /* a page of nodes refused: no error of the caller's */
    mm_lock(&registry_lock);
    struct registry_node *n = node_take();
    if (n == NULL || !node_hold(n)) {
        if (n != NULL) {
            n->next = spare;
            spare = n;
        }
        mm_unlock(&registry_lock);
        errno = saved_errno;
        __atomic_add_fetch(&retired_calls[call], 1, __ATOMIC_RELAXED);
        return;                         /* unregistered: counted, never cached */
    }
    n->thread = t;
    n->next = registry;
    registry = n;
    t->node = n;
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
    for (struct registry_node **l = &registry; (l = live_from(l)) != NULL; l = &(*l)->next) {
        const struct mm_thread *t = (*l)->thread;
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
        cached += __atomic_load_n(&a->parked_bytes, __ATOMIC_RELAXED);   /* parked (park.c) */
        blocks += __atomic_load_n(&a->parked_blocks, __ATOMIC_RELAXED);
    }
    mm_unlock(&registry_lock);
    totals->cached_bytes = cached;
    totals->cached_blocks = blocks;
}

/* Caching was turned on or off: every live thread follows at its next call. */
void mm_thread_cache_switch(int on)
{
    mm_lock(&registry_lock);
    for (struct registry_node **l = &registry; (l = live_from(l)) != NULL; l = &(*l)->next)
        __atomic_store_n(&(*l)->thread->cache_on, (uint8_t)on, __ATOMIC_RELAXED);
    mm_unlock(&registry_lock);
}

void mm_thread_fork_prepare(void) { mm_lock(&registry_lock); }
void mm_thread_fork_parent(void) { mm_unlock(&registry_lock); }

/* In the child only the forking thread lives on: the others' counters are
 * retired (their storage is a copy of the parent's, still mapped; not that
 * of threads gone without unregistering, which may not be) and their nodes
 * freed.  The forking thread's mutex is taken again: the child's thread has
 * a new id and glibc empties its list of robust mutexes. */
void mm_thread_fork_child(void)
{
    struct registry_node *self = mm_self.node;
    for (struct registry_node **l = &registry; (l = live_from(l)) != NULL;) {
        if (*l == self) {
            l = &(*l)->next;
            continue;
        }
        counters_retire((*l)->thread);
        node_retire(l);
    }
    if (self != NULL && !node_hold(self)) {      /* cannot fail: the memory is there */
        node_retire(&registry);                 /* (the only node left) */
        mm_self.node = NULL;
        mm_self.state = MM_THREAD_EXITED;       /* counted, never cached */
        mm_self.cache_on = 0;
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
