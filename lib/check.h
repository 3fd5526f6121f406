/* check.h - a leaf (check.c): the header secret and the check levels, the
 * report of heap misuse, probing foreign pointers, and the canaries and
 * freed-memory fill of MYMALLOC_CHECK=2. */
#ifndef MYMALLOC_CHECK_H
#define MYMALLOC_CHECK_H

#include "base.h"

MM_HIDDEN extern int mm_abort_on_error;
MM_HIDDEN void mm_secret_init(void);
MM_HIDDEN int mm_check_level_set(int level);
static inline int mm_check_level(void) { return __atomic_load_n(&mm_secret.level, __ATOMIC_RELAXED); }
/* Report misuse: one line on stderr, then abort() unless MYMALLOC_ABORT=0. */
MM_HIDDEN MM_COLD void mm_report(const char *func, const char *what, const void *p, const char *detail, size_t block);
/* What a report does before it aborts (the arena layer's: let go of every
 * arena lock, so a SIGABRT handler that allocates gets through). */
MM_HIDDEN void mm_report_set_abort_hook(void (*hook)(void));
MM_HIDDEN int mm_probe_mapped(const void *header);
MM_HIDDEN void mm_note_unmapped(const void *p);
MM_HIDDEN int mm_recently_unmapped(const void *p);

MM_HIDDEN void mm_canary_set(block_t *b, size_t n);
MM_HIDDEN size_t mm_canary_requested(block_t *b);
MM_HIDDEN int mm_canary_ok(block_t *b, size_t *offset);
MM_HIDDEN MM_COLD void mm_canary_report(block_t *b, const char *func, size_t offset);
MM_HIDDEN MM_COLD void mm_report_changed(const char *func, const char *what, const void *p, size_t offset,
                                         const char *how, size_t block);
MM_HIDDEN void mm_freed_fill(void *from, size_t length);
MM_HIDDEN int mm_freed_fill_ok(const void *from, size_t length, size_t *offset);
#define MM_CANARY_ROOM MM_WORD   /* extra bytes a request gets at level 2 */

#endif
