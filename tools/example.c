/* example.c - a small program on libmymalloc, used by the README's Quick start:
 *   cc tools/example.c $(pkg-config --cflags --libs mymalloc) -o example && ./example */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mymalloc.h>

int main(void)
{
    enum { COUNT = 100000 };
    static char *words[COUNT];
    size_t total = 0;

    /* Many small strings, then a large buffer that gets its own mapping. */
    for (int i = 0; i < COUNT; i++) {
        char text[32];
        int n = snprintf(text, sizeof text, "word-%d", i);
        words[i] = malloc((size_t)n + 1);
        if (words[i] == NULL)
            return 1;
        memcpy(words[i], text, (size_t)n + 1);
        total += (size_t)n;
    }
    char *big = calloc(1, 4 << 20);
    struct mallinfo2 info = mallinfo2();

    printf("mymalloc %s: %d strings (%zu bytes) and a 4 MiB buffer\n", mymalloc_version(), COUNT, total);
    printf("heap %zu KiB, in use %zu KiB, mapped blocks %zu (%zu KiB), heap check: %d problems\n",
           info.arena / 1024, info.uordblks / 1024, info.hblks, info.hblkhd / 1024, mymalloc_check());
    for (int i = 0; i < COUNT; i++)
        free(words[i]);
    free(big);
    return 0;
}
