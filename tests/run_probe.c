/* run_probe.c - the program tests/mymalloc_run.sh runs through mymalloc-run.
 * It is linked with libc alone, so whatever mymalloc it sees came from the
 * preload.  One mode per run:
 *   run_probe args ARG...    each ARG on a line of its own, between brackets
 *   run_probe env NAME...    NAME=value, or "NAME unset", for each NAME
 *   run_probe malloc         which object malloc() comes from, and the
 *                            mymalloc_version() found in the process
 *   run_probe maps           the libmymalloc files mapped in the process
 *   run_probe pid            the process id
 *   run_probe exit N         exits with status N
 *   run_probe overflow       writes one byte past a 20-byte request (inside
 *                            the block's slack), frees it and says "freed" */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int usage(void)
{
    fputs("usage: run_probe args|env|malloc|maps|pid|exit|overflow ...\n", stderr);
    return 64;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL ? slash + 1 : path;
}

static int show_malloc(void)
{
    Dl_info info;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    const char *(*version)(void);
    void *v = dlsym(RTLD_DEFAULT, "mymalloc_version");

    if (m != NULL && dladdr(m, &info) != 0 && info.dli_fname != NULL)
        printf("malloc from %s\n", base_name(info.dli_fname));
    else
        printf("malloc from (unknown)\n");
    /* POSIX's way to turn the object pointer dlsym returns into a function. */
    memcpy(&version, &v, sizeof version);
    printf("mymalloc_version %s\n", version != NULL ? version() : "(absent)");
    return 0;
}

static int show_maps(void)
{
    char line[4096], seen[8][256];
    int n = 0;
    FILE *f = fopen("/proc/self/maps", "r");

    if (f == NULL)
        return 1;
    while (fgets(line, sizeof line, f) != NULL) {
        char *path = strchr(line, '/');
        if (path == NULL || strstr(path, "libmymalloc") == NULL)
            continue;
        path[strcspn(path, "\n")] = '\0';
        int known = 0;
        for (int i = 0; i < n; i++)
            known |= strcmp(seen[i], path) == 0;
        if (!known && n < 8 && strlen(path) < sizeof seen[0]) {
            strcpy(seen[n++], path);
            printf("%s\n", path);
        }
    }
    fclose(f);
    return 0;
}

static int overflow(void)
{
    /* volatile: the compiler must not see (and warn about) the overrun. */
    volatile size_t n = 20;
    char *p = malloc(n);

    if (p == NULL)
        return 1;
    memset(p, 'a', n);
    /* Byte 20, the first past the request, but still inside the block: only
     * MYMALLOC_CHECK=2's canary notices it. */
    ((volatile char *)p)[n] = 'X';
    free(p);
    printf("freed\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    const char *mode = argv[1];
    if (strcmp(mode, "args") == 0) {
        for (int i = 2; i < argc; i++)
            printf("[%s]\n", argv[i]);
        return 0;
    }
    if (strcmp(mode, "env") == 0) {
        for (int i = 2; i < argc; i++) {
            const char *value = getenv(argv[i]);
            if (value != NULL)
                printf("%s=%s\n", argv[i], value);
            else
                printf("%s unset\n", argv[i]);
        }
        return 0;
    }
    if (strcmp(mode, "malloc") == 0)
        return show_malloc();
    if (strcmp(mode, "maps") == 0)
        return show_maps();
    if (strcmp(mode, "pid") == 0) {
        printf("%ld\n", (long)getpid());
        return 0;
    }
    if (strcmp(mode, "exit") == 0 && argc == 3)
        return atoi(argv[2]);
    if (strcmp(mode, "overflow") == 0)
        return overflow();
    return usage();
}
