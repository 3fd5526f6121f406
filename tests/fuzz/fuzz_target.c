/* fuzz_target.c - libFuzzer entry point: each input is a program of
 * allocation operations (see shadow.h) run against the shadow model, with
 * mymalloc linked in as the whole process's malloc (libFuzzer's own
 * allocations included).  Every input starts from the default settings and
 * ends with every block checked and freed and mymalloc_check() == 0, so
 * inputs do not leak into one another.
 *
 * Built by tests/fuzz/run-fuzz:
 *   clang -fsanitize=fuzzer,undefined fuzz_target.c shadow.c <mymalloc objects>
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "shadow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct shadow model;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct shadow_config cfg;

    shadow_config_default(&cfg);
    cfg.live_limit = 16u << 20;
    cfg.edge_every = 1;         /* every op: the edges of every block */
    cfg.full_every = 256;       /* every byte: at the end of the input anyway */
    cfg.heap_every = 64;
    cfg.sparse_above = 64u << 10;   /* big blocks: edges and a line per page */
    shadow_settings_default();
    shadow_init(&model, &cfg);
    shadow_run(&model, data, size);
    shadow_check_all(&model);
    shadow_release_all(&model);
    shadow_settings_default();
    return 0;
}
