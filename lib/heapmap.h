/* heapmap.h - what the heap map's two halves share: the walk of the heap
 * into a raster (heapmap.c) and the SVG written from it (svg.c).  Entry
 * layer. */
#ifndef MYMALLOC_HEAPMAP_H
#define MYMALLOC_HEAPMAP_H

#include "entry.h"

/* The map: rows of COLUMNS pixels, each pixel `scale` bytes (a power of two,
 * at least 16, the smallest with which everything fits in ROWS rows).  Each
 * heap region starts a row of its own, arena by arena, unless there are more
 * than MAX_SECTIONS: then the regions of the arenas with the most are packed,
 * following each other PACK_GAP pixels apart in one section per arena (and
 * with more than MAX_SECTIONS arenas, the thread arenas share sections a few
 * at a time).  The mapped blocks come last, drawn back to back. */
#define COLUMNS 1024
#define ROWS 128
#define PIXELS ((size_t)COLUMNS * ROWS)
#define MIN_SCALE ((size_t)16)
#define MAX_SCALE ((size_t)1 << 50)
#define MAX_SECTIONS (ROWS / 2)   /* of heap regions; the mapped blocks have one more */
#define PACK_GAP 2
#define RECORD_SLACK 64           /* room for regions that appear after they are counted */

/* Geometry of the SVG, in its user units (pixels). */
#define MARGIN 12
#define MAP_X 140                 /* left edge of the map; row labels before it */
#define WIDTH (MAP_X + COLUMNS + MARGIN)
#define ROW_HEIGHT 10
#define ROW_PITCH 12
#define TITLE_PITCH 22
#define HEADER 170                /* top of the first section */

/* What a pixel shows: one block in a state (u/v, c/d and m/n alternate
 * between neighbouring blocks, so that block edges show), or a mix. */
enum { PX_NONE, PX_USED, PX_USED2, PX_CACHED, PX_CACHED2, PX_FREE, PX_TOP, PX_MAPPED, PX_MAPPED2,
       PX_MIXED_USED, PX_MIXED_FREE, PX_CLASSES };

enum { ST_USED, ST_CACHED, ST_FREE, ST_TOP, ST_MAPPED, STATES };
enum { SEC_BRK, SEC_SEGMENT, SEC_PACKED, SEC_MAPPED };

/* A heap region as the first pass saw it.  The second pass finds it again
 * by address and draws no more than `bytes` of it (a region can grow in
 * between; one that appeared in between is counted, not drawn). */
struct record {
    uintptr_t base;               /* the struct mm_region: first, the sort key */
    size_t bytes;                 /* of blocks, header and fence left out */
    size_t first_pixel;           /* where its first block is drawn */
    size_t section;
    unsigned arena;
    int from_sbrk;
};

/* An arena's records: records[first .. first + count), in address order. */
struct arena_view {
    size_t first, count;
    int packed;                   /* its regions share one section */
};

struct section {
    int kind;
    unsigned arena_first, arena_last;   /* heap sections: the arenas drawn in it */
    size_t first_record, records;
    uintptr_t start, end;         /* addresses drawn (mapped: lowest and highest) */
    size_t bytes;                 /* bytes drawn */
    size_t first_pixel, rows;
    size_t blocks[STATES];
    int damaged;                  /* a walk stopped at a bad block */
};

struct figures {
    size_t arenas, regions, heap_bytes;
    size_t used_blocks, used_bytes, cached_blocks, cached_bytes;   /* used includes cached */
    size_t free_blocks, free_bytes, largest_free, top_bytes;
    size_t damaged;
    size_t undrawn;               /* regions counted but not laid out */
    struct mm_mapped_totals mapped;
};

struct drawing {
    unsigned char *raster;        /* PIXELS classes */
    struct section *sections;     /* up to MAX_SECTIONS + 1 */
    size_t nsections, scale;
    struct arena_view *views;     /* MM_ARENA_SLOTS */
    unsigned nviews;              /* arenas the first pass saw */
    struct record *records;
    size_t nrecords, record_room;
    struct mm_mapped_extent *mapped;
    size_t mapped_copied;
    struct figures fig;
    /* The pixel shared by the blocks drawn last, and their bytes by state. */
    size_t shared_pixel;
    size_t shared[STATES];
    int sharing;
    unsigned shade;
};

/* Write the drawing to fd as SVG: 0, or the errno of the write that failed. */
MM_HIDDEN int mm_heapmap_write_svg(int fd, const struct drawing *d);

#endif
