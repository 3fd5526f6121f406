/* init.c - the library's set-up: the constructor that registers the fork
 * handlers and the thread-exit key and starts the background release when
 * asked, and the fork handlers themselves, which take the locks of every
 * layer in rank order.  Entry layer: it calls into all the others. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include "entry.h"

/* ---- fork() ----
 * The parent takes every allocator lock before the fork, so no other thread
 * is half-way through a heap update when the address space is copied; both
 * sides then release them (the child, single-threaded, simply starts with
 * free locks).  In rank order: the thread registry, the arenas list, the
 * arenas in index order, the table of mapped blocks, then the quarantine.
 *
 * Before them, glibc's list of streams (_IO_list_lock): glibc's fork takes
 * it after the fork handlers, but a stream's lock is held across malloc
 * (getline() grows its buffer with realloc) and fflush(NULL) holds the list
 * while it waits for a stream.  Taking our locks first would let the
 * forking thread wait for the list held by fflush(NULL), which waits for a
 * stream held by getline(), which waits for an arena lock the forking
 * thread holds (glibc bug 19431's pattern).  The list lock is recursive:
 * a multi-threaded glibc fork takes it again and releases it once in the
 * parent, where we release our hold after it.  In the child glibc resets it
 * only when the parent had threads; we reset it always, or a child of a
 * single-threaded parent would start with the list held (by its only
 * thread, recursively: fine until it starts a thread that uses stdio). */
#ifdef MM_HAVE_IO_LIST_LOCK
void _IO_list_lock(void);
void _IO_list_unlock(void);
void _IO_list_resetlock(void);
#else
static void _IO_list_lock(void) {}
static void _IO_list_unlock(void) {}
static void _IO_list_resetlock(void) {}
#endif

static void fork_prepare(void)
{
    _IO_list_lock();
    mm_thread_fork_prepare();
    mm_arenas_fork_prepare();
    mm_large_fork_prepare();
    mm_quarantine_fork_prepare();
}

static void fork_parent(void)
{
    mm_quarantine_fork_parent();
    mm_large_fork_parent();
    mm_arenas_fork_parent();
    mm_thread_fork_parent();
    _IO_list_unlock();
}

static void fork_child(void)
{
    mm_quarantine_fork_child();
    mm_large_fork_child();
    mm_arenas_fork_child(mm_self.arena);
    mm_thread_fork_child();
    mm_lockdep_forget_all();
    _IO_list_resetlock();
    mm_background_fork_child();
}

/* ---- the checks at exit ----
 * Runs when exit() is called or main returns (not at _exit or abort), after
 * the program's atexit handlers.  With checks on, the calling thread's cache
 * goes back to the heap, so each block in it and the header after it are
 * checked as any free checks them: an overflow into the next header of a
 * block that was freed only into the cache is found.  A few hundred blocks
 * at most.  At MYMALLOC_CHECK=2 the quarantine is emptied (each block in it
 * verified) and the whole heap is walked as mymalloc_check() walks it: the
 * first problem found in a block (a header, a canary, the fill of a free
 * block, a free block's links) is reported.
 *
 * First, is no arena lock held right now?  exit() called from a signal
 * handler that interrupted an allocation of this thread must not wait for a
 * lock the thread itself holds: the checks are skipped then (and when
 * another thread happens to hold one at that moment). */
static int arenas_unlocked(void)
{
    unsigned count = __atomic_load_n(&mm_arena_count, __ATOMIC_ACQUIRE), taken = 0;
    if (mm_lockdep_held() != 0)       /* (debug builds: this thread is taking or letting go of one) */
        return 0;
    while (taken < count && mm_trylock(&mm_arenas[taken]->lock))
        taken++;
    int all = taken == count;
    while (taken > 0)
        mm_unlock(&mm_arenas[--taken]->lock);
    return all;
}

__attribute__((destructor)) static void checks_at_exit(void)
{
    if (!__atomic_load_n(&mm_ready, __ATOMIC_ACQUIRE) || mm_check_level() == 0 || !arenas_unlocked())
        return;
    int saved_errno = errno;
    if (mm_self.state == MM_THREAD_LIVE)
        mm_cache_flush(&mm_self);
    mm_quarantine_empty("exit");
    if (mm_check_level() == 2)
        mm_check_all("exit");
    errno = saved_errno;
}

/* Runs as a constructor, before main and before the constructors of the
 * libraries that depend on us, and never under one of our locks (both
 * pthread_atfork and pthread_key_create may allocate). */
__attribute__((constructor(101))) static void library_setup(void)
{
    mm_report_set_abort_hook(mm_arenas_unlock_all);
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    mm_thread_setup();
    mm_init();                  /* the settings, for MYMALLOC_BACKGROUND */
    mm_background_start();
}
