/* arena.c - several arenas, so threads do not all wait on one lock.  The main
 * arena owns the brk heap; the others grow in mmap segments aligned to 1 MiB
 * granules, and a two-level map from granule to arena tells which arena a
 * block belongs to (a block freed by another thread goes back to its own).
 * Threads are spread over the arenas, up to a limit of 8 per CPU this process
 * may run on (its affinity mask and cgroup quota), or MYMALLOC_ARENA_MAX /
 * MALLOC_ARENA_MAX.  Arenas are never destroyed: a thread that exits leaves
 * its arena to the next thread that comes.  (Their segments and the map of
 * granules are the heap layer's: segment.c.) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "arena.h"

struct mm_arena mm_main_arena = { .lock = MM_LOCK_INIT(MM_RANK_ARENA) };
struct mm_arena *mm_arenas[MM_ARENA_SLOTS] = { &mm_main_arena };
unsigned mm_arena_count = 1;
static mm_lock_t arenas_lock = MM_LOCK_INIT(MM_RANK_ARENAS);   /* creating arenas, attaching threads */

/* ---- blocks freed by threads without a cache ----
 * A thread that has never allocated (a consumer that only frees what others
 * made) has no cache: its frees of small blocks are pushed, without a lock,
 * on a stack of the block's arena, with the cache's link and key (so a
 * second free is still seen), and the arena takes them in at its next heap
 * operation under its lock. */
void mm_pending_push(struct mm_arena *a, block_t *b)
{
    void *user = block_user(b);
    void *head = __atomic_load_n(&a->pending, __ATOMIC_RELAXED);
    do
        cache_words_set(user, head);
    while (!__atomic_compare_exchange_n(&a->pending, &head, user, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

/* The arena's lock is held: every block waiting on its stack goes back to the heap. */
void mm_pending_free_all(struct mm_arena *a)
{
    mm_heap_free_cached_list(a, __atomic_exchange_n(&a->pending, NULL, __ATOMIC_ACQUIRE));
}

/* ---- the limit ---- */

/* CPUs in this process's affinity mask (raw system call: no allocation). */
static unsigned cpus_in_affinity(void)
{
    unsigned long mask[16];   /* 1024 CPUs */
    long bytes = syscall(SYS_sched_getaffinity, 0, sizeof mask, mask);
    unsigned n = 0;
    for (long i = 0; i < bytes / (long)sizeof mask[0]; i++)
        n += (unsigned)__builtin_popcountl(mask[i]);
    return n;
}

/* The cgroup (v2) CPU quota, rounded up to whole CPUs; 0 when unlimited. */
static unsigned cpus_in_cgroup_quota(void)
{
    char text[64];
    int fd = open("/sys/fs/cgroup/cpu.max", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0)
        return 0;
    text[n] = '\0';
    unsigned long quota = 0, period = 0;
    const char *s = text;
    if (*s < '0' || *s > '9')
        return 0;                           /* "max": no quota */
    for (; *s >= '0' && *s <= '9'; s++)
        quota = quota * 10 + (unsigned long)(*s - '0');
    for (; *s == ' '; s++)
        ;
    for (; *s >= '0' && *s <= '9'; s++)
        period = period * 10 + (unsigned long)(*s - '0');
    if (quota == 0 || period == 0)
        return 0;
    return (unsigned)((quota + period - 1) / period);
}

static unsigned arena_limit_default;

unsigned mm_arena_limit(void)
{
    size_t set = mm_setting(&mm_settings.arena_max);
    if (set != 0)
        return set < MM_ARENA_SLOTS ? (unsigned)set : MM_ARENA_SLOTS;
    unsigned limit = __atomic_load_n(&arena_limit_default, __ATOMIC_RELAXED);
    if (limit == 0) {
        unsigned cpus = cpus_in_affinity(), quota = cpus_in_cgroup_quota();
        if (cpus == 0)
            cpus = 1;
        if (quota != 0 && quota < cpus)
            cpus = quota;
        limit = cpus * 8 < MM_ARENA_SLOTS ? cpus * 8 : MM_ARENA_SLOTS;
        __atomic_store_n(&arena_limit_default, limit, __ATOMIC_RELAXED);
    }
    return limit;
}

/* ---- threads and arenas ---- */

static struct mm_arena *arena_create(unsigned index)
{
    size_t bytes = align_up(sizeof(struct mm_arena), mm_page_size());
    struct mm_arena *a = mm_os_map(bytes);     /* zero-filled */
    if (a == NULL)
        return NULL;
    a->index = index;
    a->lock.rank = MM_RANK_ARENA + index;
    a->no_sbrk = 1;
    int policy = (int)mm_setting(&mm_settings.fit);
    if (policy != MM_FIT_BEST)
        mm_fit_set(a, policy);          /* every arena follows MYMALLOC_FIT */
    return a;
}

/* MYMALLOC_FIT / M_MYMALLOC_FIT: the policy of every arena, and of those to come. */
int mm_arenas_fit_set(int policy)
{
    int done = 1;
    mm_lock(&arenas_lock);
    for (unsigned i = 0; i < mm_arena_count; i++)
        done &= mm_fit_set(mm_arenas[i], policy);
    mm_unlock(&arenas_lock);
    return done;
}

/* A thread that has no arena yet takes one (thread.c): the main thread (and
 * every thread when the limit is 1) takes the main arena; another takes an arena no live
 * thread uses, a new one while under the limit, else the least shared. */
struct mm_arena *mm_arena_attach(void)
{
    struct mm_arena *chosen = &mm_main_arena;
    int saved_errno = errno;            /* the cgroup probe, a failed mapping: not the caller's */
    unsigned limit = mm_arena_limit();

    mm_lock(&arenas_lock);
    if (limit > 1 && getpid() != (pid_t)syscall(SYS_gettid)) {
        unsigned count = mm_arena_count;
        struct mm_arena *idle = NULL, *least = &mm_main_arena;
        for (unsigned i = 1; i < count; i++) {
            struct mm_arena *a = mm_arenas[i];
            if (__atomic_load_n(&a->threads, __ATOMIC_RELAXED) == 0 && idle == NULL)
                idle = a;
            if (a->threads < least->threads)
                least = a;
        }
        if (idle != NULL)
            chosen = idle;
        else if (count < limit && (chosen = arena_create(count)) != NULL) {
            __atomic_store_n(&mm_arenas[count], chosen, __ATOMIC_RELEASE);
            __atomic_store_n(&mm_arena_count, count + 1, __ATOMIC_RELEASE);
        } else {
            chosen = least;
        }
    }
    __atomic_store_n(&chosen->threads, chosen->threads + 1, __ATOMIC_RELAXED);
    mm_unlock(&arenas_lock);
    errno = saved_errno;
    return chosen;
}

/* The thread is exiting: its arena is free for the next thread. */
void mm_arena_detach(struct mm_arena *a)
{
    mm_lock(&arenas_lock);
    if (a->threads == 1)
        __atomic_store_n(&a->idle_since, mm_now_ms(), __ATOMIC_RELAXED);
    __atomic_store_n(&a->threads, a->threads - 1, __ATOMIC_RELAXED);
    mm_unlock(&arenas_lock);
}

/* fork(): every arena lock, in index order, after the arenas lock. */
void mm_arenas_fork_prepare(void)
{
    mm_lock(&arenas_lock);
    for (unsigned i = 0; i < mm_arena_count; i++)
        mm_lock(&mm_arenas[i]->lock);
}

void mm_arenas_fork_parent(void)
{
    for (unsigned i = mm_arena_count; i-- > 0;)
        mm_unlock(&mm_arenas[i]->lock);
    mm_unlock(&arenas_lock);
}

/* In the child only the forking thread lives: it alone uses an arena, `own`
 * (NULL: none yet). */
void mm_arenas_fork_child(struct mm_arena *own)
{
    for (unsigned i = 0; i < mm_arena_count; i++) {
        __atomic_store_n(&mm_arenas[i]->lock.state, 0, __ATOMIC_RELAXED);
        mm_arenas[i]->threads = 0;
    }
    if (own != NULL)
        own->threads = 1;
    __atomic_store_n(&arenas_lock.state, 0, __ATOMIC_RELAXED);
}

/* Caching went off: every arena's parked blocks are merged into its heap. */
void mm_arenas_park_release(void)
{
    unsigned count = __atomic_load_n(&mm_arena_count, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < count; i++) {
        struct mm_arena *a = __atomic_load_n(&mm_arenas[i], __ATOMIC_ACQUIRE);
        if (__atomic_load_n(&a->parked_bytes, __ATOMIC_RELAXED) == 0)
            continue;
        mm_lock(&a->lock);
        mm_park_release(a);
        mm_unlock(&a->lock);
    }
}

/* A report is about to abort: let a SIGABRT handler that allocates through. */
void mm_arenas_unlock_all(void)
{
    for (unsigned i = 0; i < mm_arena_count; i++)
        __atomic_store_n(&mm_arenas[i]->lock.state, 0, __ATOMIC_RELEASE);
    mm_lockdep_forget_all();
}
