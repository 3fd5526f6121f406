/* run_self.h - run the test program again, as a probe in a process of its
 * own, with a clean environment: every MYMALLOC_* and MALLOC_* variable of
 * the current one removed, and the given ones added.  For the tests of
 * settings read from the environment at the first allocation. */
#ifndef MYMALLOC_RUN_SELF_H
#define MYMALLOC_RUN_SELF_H

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Read fd into buf (NUL-terminated, cut to size), then drain the rest so the
 * writer never blocks. */
static size_t run_self_read(int fd, char *buf, size_t size)
{
    size_t length = 0;
    ssize_t n;
    while (length < size - 1 && (n = read(fd, buf + length, size - 1 - length)) > 0)
        length += (size_t)n;
    buf[length] = '\0';
    char sink[256];
    while (read(fd, sink, sizeof sink) > 0)
        ;
    return length;
}

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

    int to_out[2], to_err[2];
    out[0] = err[0] = '\0';
    if (pipe(to_out) != 0)
        return -1;
    if (pipe(to_err) != 0) {
        close(to_out[0]);
        close(to_out[1]);
        return -1;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        char *argv[] = { (char *)name, (char *)probe_arg, NULL };
        dup2(to_out[1], STDOUT_FILENO);
        dup2(to_err[1], STDERR_FILENO);
        close(to_out[0]);
        close(to_out[1]);
        close(to_err[0]);
        close(to_err[1]);
        execve("/proc/self/exe", argv, env);
        _exit(127);
    }
    close(to_out[1]);
    close(to_err[1]);
    run_self_read(to_out[0], out, out_size);
    run_self_read(to_err[0], err, err_size);
    close(to_out[0]);
    close(to_err[0]);
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    return status;
}

#endif
