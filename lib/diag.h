/* diag.h - a leaf (diag.c): the one-line messages and number formatting,
 * without allocating. */
#ifndef MYMALLOC_DIAG_H
#define MYMALLOC_DIAG_H

#include "base.h"

MM_HIDDEN MM_COLD void mm_report_line(const char *func, const char *what, const void *p,
                                     const char *detail, size_t block);
MM_HIDDEN void mm_write_str(int fd, const char *s);
MM_HIDDEN char *mm_format_unsigned(char *out, size_t value);   /* returns end, NUL written */
MM_HIDDEN char *mm_format_hex(char *out, uintptr_t value);     /* "0x..." */

#endif
