/* background.c - the background release thread (MYMALLOC_BACKGROUND=1,
 * mallopt(M_MYMALLOC_BACKGROUND, 1); off by default).  Without it, free
 * pages go back to the kernel when the program next calls the allocator
 * after their decay (release.c); a program that frees and then sleeps keeps
 * them until it wakes.  With it, a thread of ours wakes four times per decay
 * (between 10 ms and 1 s apart) and does, for every arena whose lock is free
 * at that moment, what the arena's own heap operations would have done.
 *
 * The thread never allocates and is never registered as a thread of the
 * program; it holds one arena lock at a time, taken with a try-lock, so a
 * program thread never waits for it.  It starts from the library's
 * constructor (when the environment asks for it) or from mallopt(), never
 * from inside an allocation that the dynamic loader might be making.  A
 * fork child has no such thread: the child's next poll (release.c) starts
 * one.  At exit it is simply stopped with the process. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include "thread.h"

static int running;     /* a background thread exists (or is being started) */

static void sleep_ms(size_t ms)
{
    struct timespec t = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
    while (nanosleep(&t, &t) != 0 && errno == EINTR)
        ;
}

/* How long to sleep between two rounds: a quarter of the decay, from 10 ms
 * to 1 s (1 s when pages are never released). */
static size_t round_gap(void)
{
    size_t decay = mm_setting(&mm_settings.decay_ms);
    if (decay == SIZE_MAX)
        return 1000;
    size_t gap = decay / 4;
    return gap < 10 ? 10 : gap > 1000 ? 1000 : gap;
}

static void *background_main(void *arg)
{
    (void)arg;
    for (;;) {
        sleep_ms(round_gap());
        if (!mm_setting(&mm_settings.background)) {
            /* Turned off: leave, unless it was turned on again meanwhile
             * by a mallopt() that saw this thread still running. */
            __atomic_store_n(&running, 0, __ATOMIC_SEQ_CST);
            int idle = 0;
            if (!mm_setting(&mm_settings.background) ||
                !__atomic_compare_exchange_n(&running, &idle, 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
                return NULL;
        }
        mm_decay_round();
    }
}

/* Start the thread if the setting asks for one and there is none.  The
 * caller holds no allocator lock (pthread_create allocates).  The thread
 * starts with every signal blocked: the program's signals are not ours. */
void mm_background_start(void)
{
    int idle = 0;
    if (!mm_setting(&mm_settings.background) || __atomic_load_n(&running, __ATOMIC_RELAXED) ||
        !__atomic_compare_exchange_n(&running, &idle, 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        return;
    int saved_errno = errno;
    sigset_t all, old;
    sigfillset(&all);
    pthread_attr_t attr;
    pthread_t thread;
    int started = 0;
    if (pthread_attr_init(&attr) == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 64 * 1024);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        started = pthread_create(&thread, &attr, background_main, NULL) == 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_attr_destroy(&attr);
        if (started)
            pthread_setname_np(thread, "mymalloc-bg");
    }
    if (!started)
        __atomic_store_n(&running, 0, __ATOMIC_SEQ_CST);    /* tried again at the next poll */
    errno = saved_errno;
}

/* In a fork child the thread is gone. */
void mm_background_fork_child(void)
{
    __atomic_store_n(&running, 0, __ATOMIC_RELAXED);
}

/* Is a background thread wanted but missing (a fork child, a failed start)? */
int mm_background_missing(void)
{
    return mm_setting(&mm_settings.background) && !__atomic_load_n(&running, __ATOMIC_RELAXED);
}
