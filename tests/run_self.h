/* run_self.h - run the test program again, as a probe in a process of its
 * own, with a clean environment: every MYMALLOC_* and MALLOC_* variable of
 * the current one removed, and the given ones added.  For the tests of
 * settings read from the environment at the first allocation. */
#ifndef MYMALLOC_RUN_SELF_H
#define MYMALLOC_RUN_SELF_H

#include "util.h"

extern char **environ;

/* Run /proc/self/exe as `name probe_arg` with the current environment less
 * MYMALLOC_* and MALLOC_*, plus `vars` (NULL-terminated).  Its standard
 * output and error land in out and err.  Returns the wait status, or -1 when
 * the child could not be started. */
static int run_self(const char *name, const char *probe_arg, const char *const *vars, char *out, size_t out_size,
                    char *err, size_t err_size)
{
    static char *env[4096];
    size_t n = 0;
    for (char **e = environ; *e != NULL && n < 4000; e++)
        if (strncmp(*e, "MYMALLOC_", 9) != 0 && strncmp(*e, "MALLOC_", 7) != 0)
            env[n++] = *e;
    for (; *vars != NULL && n < 4090; vars++)
        env[n++] = (char *)*vars;
    env[n] = NULL;
    char *argv[] = { (char *)name, (char *)probe_arg, NULL };
    return run_command("/proc/self/exe", argv, env, out, out_size, err, err_size);
}

#endif
