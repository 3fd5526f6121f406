/* heapmap.c - the heap map: mymalloc_heapmap() draws the heap as an SVG
 * picture (every block of every arena's regions, arena by arena, each
 * region in address order, then the blocks with a mapping of their own),
 * with a legend and the fragmentation figures of the whole process, and
 * MYMALLOC_HEAPMAP=path draws one at exit.
 * Drawing never touches the heap it draws: the picture is rendered into a
 * raster in a scratch mapping of its own, each arena walked under its own
 * lock and no other; the SVG is then written with write(2) from a buffer on
 * the stack, numbers formatted by hand. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include "entry.h"
#include "mymalloc.h"

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
static const char *const px_name[PX_CLASSES] = { "", "u", "v", "c", "d", "f", "t", "m", "n", "x", "y" };

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

/* ---- rendering into the raster ---- */

static unsigned char whole_class(int state, unsigned shade)
{
    switch (state) {
    case ST_USED: return shade ? PX_USED2 : PX_USED;
    case ST_CACHED: return shade ? PX_CACHED2 : PX_CACHED;
    case ST_FREE: return PX_FREE;
    case ST_TOP: return PX_TOP;
    default: return shade ? PX_MAPPED2 : PX_MAPPED;
    }
}

static void shared_flush(struct drawing *d)
{
    if (!d->sharing)
        return;
    int states = 0, only = 0;
    for (int s = 0; s < STATES; s++) {
        if (d->shared[s] != 0) {
            states++;
            only = s;
        }
    }
    size_t used = d->shared[ST_USED] + d->shared[ST_CACHED] + d->shared[ST_MAPPED];
    size_t unused = d->shared[ST_FREE] + d->shared[ST_TOP];
    unsigned char c = states == 1 ? whole_class(only, 0) : unused > used ? PX_MIXED_FREE : PX_MIXED_USED;
    if (d->shared_pixel < PIXELS)
        d->raster[d->shared_pixel] = c;
    memset(d->shared, 0, sizeof d->shared);
    d->sharing = 0;
}

static void shared_add(struct drawing *d, size_t pixel, int state, size_t bytes)
{
    if (d->sharing && d->shared_pixel != pixel)
        shared_flush(d);
    d->sharing = 1;
    d->shared_pixel = pixel;
    d->shared[state] += bytes;
}

/* Bytes [s, e) of the section whose first pixel is `base`, in one state: the
 * pixels it fills alone take its colour; those it shares with neighbours are
 * settled when the next pixel is reached (shared_flush). */
static void draw_block(struct drawing *d, size_t base, size_t s, size_t e, int state)
{
    size_t scale = d->scale;
    size_t ps = base + s / scale, pe = base + e / scale, first = ps;
    unsigned char c = whole_class(state, d->shade++ & 1);

    if (ps == pe) {
        shared_add(d, ps, state, e - s);
        return;
    }
    if (s % scale != 0) {
        shared_add(d, ps, state, scale - s % scale);
        first++;
    }
    if (pe > first) {
        shared_flush(d);
        if (first < PIXELS)
            memset(d->raster + first, c, (pe < PIXELS ? pe : PIXELS) - first);
    }
    if (e % scale != 0)
        shared_add(d, pe, state, e % scale);
}

/* ---- the heap: each arena under its own lock, one at a time ---- */

static inline size_t region_bytes(const struct mm_region *r)
{
    return r->size - MM_REGION_FIRST_BLOCK - MM_WORD;      /* blocks, not header and fence */
}

static size_t ceil_div(size_t n, size_t d) { return n / d + (n % d != 0); }

/* Heap sort of n elements of `size` bytes (at most 64), by the address each
 * starts with: the records of an arena, the mapped extents. */
static uintptr_t key_of(const char *e)
{
    uintptr_t key;
    memcpy(&key, e, sizeof key);
    return key;
}

static void swap_elements(char *x, char *y, size_t size)
{
    char t[64];
    memcpy(t, x, size);
    memcpy(x, y, size);
    memcpy(y, t, size);
}

static void sift_down(char *e, size_t size, size_t root, size_t n)
{
    for (size_t child; (child = 2 * root + 1) < n; root = child) {
        if (child + 1 < n && key_of(e + (child + 1) * size) > key_of(e + child * size))
            child++;
        if (key_of(e + root * size) >= key_of(e + child * size))
            return;
        swap_elements(e + root * size, e + child * size, size);
    }
}

static void sort_by_address(void *array, size_t n, size_t size)
{
    char *e = array;
    for (size_t i = n / 2; i-- > 0;)
        sift_down(e, size, i, n);
    for (size_t end = n; end-- > 1;) {
        swap_elements(e, e + end * size, size);
        sift_down(e, size, 0, end);
    }
}
_Static_assert(sizeof(struct record) <= 64 && sizeof(struct mm_mapped_extent) <= 64, "sort_by_address's room");
_Static_assert(offsetof(struct record, base) == 0 && offsetof(struct mm_mapped_extent, start) == 0,
               "sorted by the address each element starts with");

static struct mm_arena *arena_at(unsigned k) { return __atomic_load_n(&mm_arenas[k], __ATOMIC_ACQUIRE); }
static unsigned arenas_now(void) { return __atomic_load_n(&mm_arena_count, __ATOMIC_ACQUIRE); }

/* The regions of every arena, counted to size the scratch mapping. */
static size_t count_regions(void)
{
    size_t n = 0;
    for (unsigned k = 0, arenas = arenas_now(); k < arenas; k++) {
        struct mm_arena *a = arena_at(k);
        mm_lock(&a->lock);
        for (const struct mm_region *r = a->regions; r != NULL; r = r->next)
            n++;
        mm_unlock(&a->lock);
    }
    return n;
}

/* First pass: the regions of every arena (as many as there is room for),
 * each arena under its lock in turn; the table of mapped blocks under its
 * own lock. */
static void record_regions(struct drawing *d, size_t mapped_room)
{
    unsigned arenas = arenas_now();
    for (unsigned k = 0; k < arenas; k++) {
        struct mm_arena *a = arena_at(k);
        struct arena_view *v = &d->views[k];
        v->first = d->nrecords;
        if (k == 0)
            d->mapped_copied = mm_large_list(d->mapped, mapped_room, &d->fig.mapped);
        mm_lock(&a->lock);
        for (const struct mm_region *r = a->regions; r != NULL && d->nrecords < d->record_room; r = r->next) {
            struct record *rec = &d->records[d->nrecords++];
            rec->base = (uintptr_t)r;
            rec->bytes = region_bytes(r);
            rec->arena = k;
            rec->from_sbrk = r->from_sbrk != 0;
        }
        mm_unlock(&a->lock);
        v->count = d->nrecords - v->first;
        sort_by_address(d->records + v->first, v->count, sizeof *d->records);
    }
    d->nviews = arenas;
}

/* Pixels a section needs at this scale. */
static size_t section_pixels(const struct drawing *d, const struct section *sec, size_t scale)
{
    if (sec->kind != SEC_PACKED)
        return ceil_div(sec->bytes, scale);
    size_t pixels = 0;
    for (size_t i = 0; i < sec->records; i++)
        pixels += ceil_div(d->records[sec->first_record + i].bytes, scale) + PACK_GAP;
    return pixels;
}

static size_t section_rows(const struct drawing *d, const struct section *sec, size_t scale)
{
    size_t rows = ceil_div(section_pixels(d, sec, scale), COLUMNS);
    return rows == 0 ? 1 : rows;
}

/* Which arenas have their regions packed into one section: none while
 * every region can have a section of its own, else those with the most
 * regions first, until MAX_SECTIONS suffice.  Returns how many thread
 * arenas share each section: 1, unless there are more arenas than sections
 * (the main arena keeps a section of its own). */
static unsigned choose_packing(struct drawing *d)
{
    size_t sections = d->nrecords, busy = 0;
    for (unsigned k = 1; k < d->nviews; k++)
        busy += d->views[k].count != 0;
    while (sections > MAX_SECTIONS) {
        struct arena_view *most = NULL;
        for (unsigned k = 0; k < d->nviews; k++) {
            struct arena_view *v = &d->views[k];
            if (!v->packed && v->count > 1 && (most == NULL || v->count > most->count))
                most = v;
        }
        if (most == NULL)
            break;
        most->packed = 1;
        sections -= most->count - 1;
    }
    if (sections <= MAX_SECTIONS)
        return 1;
    /* Every arena with more than one region is packed by now: the main
     * arena has one section, the thread arenas share the others. */
    for (unsigned k = 1; k < d->nviews; k++)
        d->views[k].packed = 1;
    return (unsigned)ceil_div(busy, MAX_SECTIONS - 1);
}

static struct section *section_new(struct drawing *d, int kind, unsigned arena, size_t first_record)
{
    struct section *sec = &d->sections[d->nsections++];
    sec->kind = kind;
    sec->arena_first = sec->arena_last = arena;
    sec->first_record = first_record;
    return sec;
}

/* Record i, the next one, joins the section. */
static void section_add(struct drawing *d, struct section *sec, size_t i)
{
    struct record *rec = &d->records[i];
    uintptr_t start = rec->base + MM_REGION_FIRST_BLOCK, end = start + rec->bytes;
    if (sec->records == 0 || start < sec->start)
        sec->start = start;
    if (end > sec->end)
        sec->end = end;
    sec->records++;
    sec->bytes += rec->bytes;
    sec->arena_last = rec->arena;
    rec->section = (size_t)(sec - d->sections);
}

/* Sections (arena by arena, each one's regions in address order, then the
 * mapped blocks), the scale, and where each section and region starts:
 * from the records alone, no lock held. */
static void layout(struct drawing *d)
{
    unsigned group = choose_packing(d), grouped = 0;
    struct section *sec = NULL;

    for (unsigned k = 0; k < d->nviews; k++) {
        const struct arena_view *v = &d->views[k];
        if (v->count == 0)
            continue;
        if (!v->packed) {
            for (size_t i = v->first; i < v->first + v->count; i++) {
                sec = section_new(d, d->records[i].from_sbrk ? SEC_BRK : SEC_SEGMENT, k, i);
                section_add(d, sec, i);
            }
            continue;
        }
        if (k == 0 || grouped++ % group == 0)
            sec = section_new(d, SEC_PACKED, k, v->first);
        for (size_t i = v->first; i < v->first + v->count; i++)
            section_add(d, sec, i);
    }
    if (d->fig.mapped.listed + d->fig.mapped.unlisted > 0) {
        sec = section_new(d, SEC_MAPPED, 0, 0);
        sec->bytes = d->fig.mapped.listed_bytes + d->fig.mapped.unlisted_bytes;
    }

    size_t rows;
    for (d->scale = MIN_SCALE;; d->scale *= 2) {
        rows = 0;
        for (size_t i = 0; i < d->nsections; i++)
            rows += section_rows(d, &d->sections[i], d->scale);
        if (rows <= ROWS || d->scale >= MAX_SCALE)
            break;
    }
    rows = 0;
    for (size_t i = 0; i < d->nsections; i++) {
        sec = &d->sections[i];
        sec->first_pixel = rows * COLUMNS;
        sec->rows = section_rows(d, sec, d->scale);
        rows += sec->rows;
        size_t pixel = sec->first_pixel;
        for (size_t j = 0; j < sec->records; j++) {
            struct record *rec = &d->records[sec->first_record + j];
            rec->first_pixel = pixel;
            pixel += ceil_div(rec->bytes, d->scale) + PACK_GAP;
        }
    }
}

/* The record of region r of arena k, or NULL: a binary search by address. */
static const struct record *record_of(const struct drawing *d, unsigned k, const struct mm_region *r)
{
    if (k >= d->nviews)
        return NULL;
    const struct arena_view *v = &d->views[k];
    size_t lo = v->first, hi = v->first + v->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->records[mid].base < (uintptr_t)r)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < v->first + v->count && d->records[lo].base == (uintptr_t)r ? &d->records[lo] : NULL;
}

/* A cached block (read racily: the owner may take it back at any moment);
 * a quarantined block is never one. */
static int block_cached(block_t *b)
{
    return block_origin(b) != ORIGIN_QUARANTINE && mm_block_cached(b);
}

/* Every block of region r into the figures, and into the map as far as the
 * layout made room for the region (none when rec is NULL). */
static void walk_region(struct drawing *d, struct mm_arena *a, struct mm_region *r, const struct record *rec)
{
    struct figures *f = &d->fig;
    struct section *sec = rec != NULL ? &d->sections[rec->section] : NULL;
    size_t room = rec != NULL ? rec->bytes : 0;
    char *first = (char *)r + MM_REGION_FIRST_BLOCK;
    block_t *fence = (block_t *)((char *)r + r->size - MM_WORD);

    if (rec == NULL)
        f->undrawn++;
    d->shade = 0;
    for (block_t *b = (block_t *)first; b != fence; b = block_next(b)) {
        size_t size = block_size(b);
        int state;
        if (size < MM_MIN_BLOCK || (char *)b + size > (char *)fence || block_mmapped(b)) {
            f->damaged++;
            if (sec != NULL)
                sec->damaged = 1;
            break;
        }
        if (b == a->top) {
            state = ST_TOP;
            f->top_bytes += size;
        } else if (!block_inuse(b)) {
            state = ST_FREE;
            f->free_blocks++;
            f->free_bytes += size;
            if (size > f->largest_free)
                f->largest_free = size;
        } else {
            state = block_cached(b) ? ST_CACHED : ST_USED;
            f->used_blocks++;
            f->used_bytes += size;
            if (state == ST_CACHED) {
                f->cached_blocks++;
                f->cached_bytes += size;
            }
        }
        size_t s = (size_t)((char *)b - first);
        if (sec != NULL && s < room) {      /* a region grown since it was laid out: clipped */
            sec->blocks[state]++;
            draw_block(d, rec->first_pixel, s, s + size < room ? s + size : room, state);
        }
    }
    shared_flush(d);
}

/* Second pass: each arena under its lock in turn, every region walked for
 * the figures and drawn where the layout put it. */
static void draw_arenas(struct drawing *d)
{
    unsigned arenas = arenas_now();
    for (unsigned k = 0; k < arenas; k++) {
        struct mm_arena *a = arena_at(k);
        mm_lock(&a->lock);
        d->fig.heap_bytes += a->system_bytes;
        for (struct mm_region *r = a->regions; r != NULL; r = r->next) {
            d->fig.regions++;
            walk_region(d, a, r, record_of(d, k, r));
        }
        mm_unlock(&a->lock);
    }
    d->fig.arenas = arenas;
}

/* ---- the mapped blocks, no lock held ---- */

static void draw_mapped(struct drawing *d)
{
    struct section *sec = NULL;
    for (size_t i = 0; i < d->nsections; i++)
        if (d->sections[i].kind == SEC_MAPPED)
            sec = &d->sections[i];
    if (sec == NULL)
        return;
    sort_by_address(d->mapped, d->mapped_copied, sizeof *d->mapped);
    size_t offset = 0;
    d->shade = 0;
    for (size_t i = 0; i < d->mapped_copied; i++) {
        const struct mm_mapped_extent *e = &d->mapped[i];
        if (sec->start == 0 || e->start < sec->start)
            sec->start = e->start;
        if (e->start + e->length > sec->end)
            sec->end = e->start + e->length;
        draw_block(d, sec->first_pixel, offset, offset + e->length, ST_MAPPED);
        offset += e->length;
    }
    /* Blocks the table could not hold, or listed since the scratch was sized: one bar. */
    if (sec->bytes > offset)
        draw_block(d, sec->first_pixel, offset, sec->bytes, ST_MAPPED);
    shared_flush(d);
    sec->blocks[ST_MAPPED] = d->fig.mapped.listed + d->fig.mapped.unlisted;
}

/* ---- the SVG ---- */

struct out {
    int fd;
    int error;                    /* the first errno of a failed write */
    size_t len;
    char buf[4096];
};

static void out_flush(struct out *o)
{
    size_t done = 0;
    while (done < o->len && o->error == 0) {
        ssize_t n = write(o->fd, o->buf + done, o->len - done);
        if (n > 0)
            done += (size_t)n;
        else if (n < 0 && errno == EINTR)
            continue;
        else
            o->error = n < 0 ? errno : EIO;
    }
    o->len = 0;
}

static void out_mem(struct out *o, const char *s, size_t n)
{
    while (n > 0) {
        if (o->len == sizeof o->buf)
            out_flush(o);
        size_t k = sizeof o->buf - o->len;
        if (k > n)
            k = n;
        memcpy(o->buf + o->len, s, k);
        o->len += k;
        s += k;
        n -= k;
    }
}

static void out_str(struct out *o, const char *s) { out_mem(o, s, strlen(s)); }

static void out_uint(struct out *o, size_t v)
{
    char t[24];
    out_mem(o, t, (size_t)(mm_format_unsigned(t, v) - t));
}

static void out_hex(struct out *o, uintptr_t v)
{
    char t[24];
    out_mem(o, t, (size_t)(mm_format_hex(t, v) - t));
}

/* "0.123": part / whole to three decimals (0 when whole is 0). */
static void out_ratio(struct out *o, size_t part, size_t whole)
{
    size_t thousandths = whole == 0 ? 0 : (size_t)(((unsigned __int128)part * 1000 + whole / 2) / whole);
    char t[8] = { (char)('0' + thousandths / 1000), '.', (char)('0' + thousandths / 100 % 10),
                  (char)('0' + thousandths / 10 % 10), (char)('0' + thousandths % 10), 0 };
    out_str(o, t);
}

/* "1.5 MiB"-style: one decimal, in the largest unit not above the value. */
static void out_human(struct out *o, size_t bytes)
{
    static const char *const units[] = { " bytes", " KiB", " MiB", " GiB", " TiB", " PiB" };
    int u = 0;
    while (u < 5 && bytes >= (size_t)1 << (10 * (u + 1)))
        u++;
    if (u == 0) {
        out_uint(o, bytes);
    } else {
        size_t unit = (size_t)1 << (10 * u);
        size_t tenths = (size_t)(((unsigned __int128)bytes * 10 + unit / 2) / unit);
        out_uint(o, tenths / 10);
        char t[3] = { '.', (char)('0' + tenths % 10), 0 };
        out_str(o, t);
    }
    out_str(o, units[u]);
}

/* "135168 bytes (132.0 KiB)" */
static void out_size(struct out *o, size_t bytes)
{
    out_uint(o, bytes);
    out_str(o, bytes == 1 ? " byte" : " bytes");
    if (bytes >= 1024) {
        out_str(o, " (");
        out_human(o, bytes);
        out_str(o, ")");
    }
}

static void out_count(struct out *o, size_t n, const char *one, const char *many)
{
    out_uint(o, n);
    out_str(o, n == 1 ? one : many);
}

/* <text x=".." y=".." class=".."> with the opening tag left open for the content. */
static void out_text(struct out *o, size_t x, size_t y, const char *cls)
{
    out_str(o, "<text x=\"");
    out_uint(o, x);
    out_str(o, "\" y=\"");
    out_uint(o, y);
    if (cls != NULL) {
        out_str(o, "\" class=\"");
        out_str(o, cls);
    }
    out_str(o, "\">");
}

static void out_rect(struct out *o, size_t x, size_t y, size_t width, size_t height, const char *cls, int continued)
{
    out_str(o, "<rect x=\"");
    out_uint(o, x);
    out_str(o, "\" y=\"");
    out_uint(o, y);
    out_str(o, "\" width=\"");
    out_uint(o, width);
    out_str(o, "\" height=\"");
    out_uint(o, height);
    out_str(o, "\" class=\"");
    out_str(o, cls);
    if (continued)
        out_str(o, " k");
    out_str(o, "\"/>\n");
}

static const char style[] =
    "<style>\n"
    ".u{fill:#4477aa}.v{fill:#2c5788}.c{fill:#66ccee}.d{fill:#3aa6cf}.f{fill:#228833}"
    ".t{fill:#ccbb44}.m{fill:#aa3377}.n{fill:#7b1f55}.x{fill:#8a9cc0}.y{fill:#9fd39f}\n"
    "text{font-family:'DejaVu Sans Mono',monospace;font-size:12px;fill:#222222}\n"
    "text.b{font-size:16px;font-weight:bold}text.h{font-weight:bold}"
    "text.a{font-size:10px;text-anchor:end;fill:#666666}\n"
    "</style>\n";

static void write_header(struct out *o, const struct drawing *d, size_t height)
{
    const struct figures *f = &d->fig;
    size_t all_free = f->free_bytes + f->top_bytes;
    size_t largest_all = f->largest_free > f->top_bytes ? f->largest_free : f->top_bytes;

    out_str(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"");
    out_uint(o, WIDTH);
    out_str(o, "\" height=\"");
    out_uint(o, height);
    out_str(o, "\" viewBox=\"0 0 ");
    out_uint(o, WIDTH);
    out_str(o, " ");
    out_uint(o, height);
    out_str(o, "\">\n<desc>mymalloc heap map: arenas=");
    out_uint(o, f->arenas);
    out_str(o, " regions=");
    out_uint(o, f->regions);
    out_str(o, " heap_bytes=");
    out_uint(o, f->heap_bytes);
    out_str(o, " inuse_blocks=");
    out_uint(o, f->used_blocks);
    out_str(o, " inuse_bytes=");
    out_uint(o, f->used_bytes);
    out_str(o, " cached_blocks=");
    out_uint(o, f->cached_blocks);
    out_str(o, " cached_bytes=");
    out_uint(o, f->cached_bytes);
    out_str(o, " free_blocks=");
    out_uint(o, f->free_blocks);
    out_str(o, " free_bytes=");
    out_uint(o, f->free_bytes);
    out_str(o, " largest_free=");
    out_uint(o, f->largest_free);
    out_str(o, " top_bytes=");
    out_uint(o, f->top_bytes);
    out_str(o, " mapped_blocks=");
    out_uint(o, f->mapped.listed + f->mapped.unlisted);
    out_str(o, " mapped_bytes=");
    out_uint(o, f->mapped.listed_bytes + f->mapped.unlisted_bytes);
    out_str(o, " scale=");
    out_uint(o, d->scale);
    out_str(o, " damaged_regions=");
    out_uint(o, f->damaged);
    out_str(o, " undrawn_regions=");
    out_uint(o, f->undrawn);
    out_str(o, "</desc>\n");
    out_str(o, style);
    out_str(o, "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n");

    out_text(o, MARGIN, 26, "b");
    out_str(o, "mymalloc heap map: process ");
    out_uint(o, (size_t)getpid());
    out_str(o, ", mymalloc " MYMALLOC_VERSION_STRING "</text>\n");

    out_text(o, MARGIN, 50, NULL);
    out_str(o, "heap: ");
    out_count(o, f->arenas, " arena, ", " arenas, ");
    out_count(o, f->regions, " region, ", " regions, ");
    out_size(o, f->heap_bytes);
    out_str(o, ".  Mapped blocks: ");
    out_uint(o, f->mapped.listed + f->mapped.unlisted);
    out_str(o, ", ");
    out_size(o, f->mapped.listed_bytes + f->mapped.unlisted_bytes);
    out_str(o, ".</text>\n");

    out_text(o, MARGIN, 68, NULL);
    out_str(o, "in use: ");
    out_count(o, f->used_blocks, " block, ", " blocks, ");
    out_size(o, f->used_bytes);
    out_str(o, "; of these, ");
    out_uint(o, f->cached_blocks);
    out_str(o, " (");
    out_human(o, f->cached_bytes);
    out_str(o, ") are freed blocks held in threads' caches.</text>\n");

    out_text(o, MARGIN, 86, NULL);
    out_str(o, "free: ");
    out_count(o, f->free_blocks, " block in bins, ", " blocks in bins, ");
    out_size(o, f->free_bytes);
    out_str(o, ", largest ");
    out_size(o, f->largest_free);
    out_str(o, ".  Top: ");
    out_size(o, f->top_bytes);
    out_str(o, ".</text>\n");

    out_text(o, MARGIN, 104, NULL);
    out_str(o, "fragmentation: ");
    out_ratio(o, f->free_bytes - f->largest_free, f->free_bytes);
    out_str(o, " of the free bytes in bins lie outside the largest free block; ");
    out_ratio(o, all_free - largest_all, all_free);
    out_str(o, " with the top.</text>\n");

    out_text(o, MARGIN, 122, NULL);
    out_str(o, "scale: 1 pixel = ");
    out_human(o, d->scale);
    out_str(o, ", 1 row = ");
    out_human(o, d->scale * COLUMNS);
    out_str(o, ".  A pixel shared by blocks in different states is drawn mixed; neighbouring blocks alternate shades.");
    if (f->damaged != 0) {
        out_str(o, "  The walk stopped at a bad block in ");
        out_count(o, f->damaged, " region", " regions");
        out_str(o, ": see mymalloc_check().");
    }
    if (f->undrawn != 0) {
        out_str(o, "  ");
        out_count(o, f->undrawn, " region", " regions");
        out_str(o, " appeared while the map was drawn: counted, not drawn.");
    }
    out_str(o, "</text>\n");

    static const struct { unsigned char cls; const char *label; } legend[] = {
        { PX_USED, "in use" }, { PX_CACHED, "in a thread's cache" }, { PX_FREE, "free" },
        { PX_TOP, "top" }, { PX_MAPPED, "mapped" }, { PX_MIXED_USED, "mixed, mostly in use" },
        { PX_MIXED_FREE, "mixed, mostly free" },
    };
    size_t x = MARGIN;
    out_str(o, "<g id=\"legend\">\n");
    for (size_t i = 0; i < sizeof legend / sizeof legend[0]; i++) {
        out_rect(o, x, 136, 12, 12, px_name[legend[i].cls], 0);
        out_text(o, x + 17, 146, NULL);
        out_str(o, legend[i].label);
        out_str(o, "</text>\n");
        x += 17 + strlen(legend[i].label) * 15 / 2 + 18;    /* about 7.5 pixels a character */
    }
    out_str(o, "</g>\n");
}

static void write_section_title(struct out *o, const struct drawing *d, const struct section *sec, size_t y)
{
    int threads = sec->kind != SEC_MAPPED && sec->arena_first != 0;
    out_text(o, MARGIN, y, "h");
    if (threads && sec->arena_last != sec->arena_first) {
        out_str(o, "arenas ");
        out_uint(o, sec->arena_first);
        out_str(o, " to ");
        out_uint(o, sec->arena_last);
        out_str(o, " (thread heaps): ");
    } else if (threads) {
        out_str(o, "arena ");
        out_uint(o, sec->arena_first);
        out_str(o, " (thread heap): ");
    }
    switch (sec->kind) {
    case SEC_BRK: out_str(o, "brk heap "); break;
    case SEC_SEGMENT: out_str(o, threads ? "segment " : "mmap segment "); break;
    case SEC_PACKED:
        out_count(o, sec->records, " heap region", " heap regions");
        out_str(o, sec->arena_last != sec->arena_first ? ", arena by arena, each in address order after a gap, "
                                                       : ", in address order, each after a gap, ");
        break;
    default:
        out_count(o, sec->blocks[ST_MAPPED], " mapped block", " mapped blocks");
        out_str(o, ", back to back in address order, ");
        break;
    }
    out_hex(o, sec->start);
    out_str(o, "-");
    out_hex(o, sec->end);
    out_str(o, ", ");
    out_size(o, sec->bytes);
    if (sec->kind != SEC_MAPPED) {
        out_str(o, ": ");
        out_uint(o, sec->blocks[ST_USED] + sec->blocks[ST_CACHED]);
        out_str(o, " in use (");
        out_uint(o, sec->blocks[ST_CACHED]);
        out_str(o, " cached), ");
        out_uint(o, sec->blocks[ST_FREE]);
        out_str(o, " free");
        if (sec->blocks[ST_TOP] != 0)
            out_str(o, ", the top");
        if (sec->damaged)
            out_str(o, "; the walk stopped at a bad block");
    } else if (d->fig.mapped.unlisted != 0 || d->mapped_copied < d->fig.mapped.listed) {
        out_str(o, " (");
        out_uint(o, d->fig.mapped.unlisted + d->fig.mapped.listed - d->mapped_copied);
        out_str(o, " unlisted, drawn as one bar at the end)");
    }
    out_str(o, "</text>\n");
}

/* Each row: runs of one class become one rectangle; a run that carries on a
 * block from the row above gets the class "k" as well. */
static void write_rows(struct out *o, const struct drawing *d, const struct section *sec, size_t y)
{
    for (size_t row = 0; row < sec->rows; row++) {
        size_t p0 = sec->first_pixel + row * COLUMNS, ry = y + row * ROW_PITCH;
        if (p0 >= PIXELS)
            return;
        const unsigned char *px = d->raster + p0;
        if (sec->kind == SEC_BRK || sec->kind == SEC_SEGMENT) {
            out_text(o, MAP_X - 6, ry + 9, "a");
            out_hex(o, sec->start + row * COLUMNS * d->scale);
            out_str(o, "</text>\n");
        }
        unsigned char above = row > 0 ? px[-1] : PX_NONE;
        for (size_t col = 0; col < COLUMNS;) {
            size_t run = 1;
            while (col + run < COLUMNS && px[col + run] == px[col])
                run++;
            if (px[col] != PX_NONE)
                out_rect(o, MAP_X + col, ry, run, ROW_HEIGHT, px_name[px[col]], col == 0 && px[col] == above);
            col += run;
        }
    }
}

static void write_svg(struct out *o, const struct drawing *d)
{
    size_t height = HEADER + MARGIN;
    for (size_t i = 0; i < d->nsections; i++)
        height += TITLE_PITCH + d->sections[i].rows * ROW_PITCH;
    if (d->nsections == 0)
        height += TITLE_PITCH;

    write_header(o, d, height);
    out_str(o, "<g id=\"map\">\n");
    size_t y = HEADER;
    if (d->nsections == 0) {
        out_text(o, MARGIN, y + 14, NULL);
        out_str(o, "nothing allocated yet: no heap region, no mapped block</text>\n");
    }
    for (size_t i = 0; i < d->nsections; i++) {
        const struct section *sec = &d->sections[i];
        out_str(o, "<g>\n");
        write_section_title(o, d, sec, y + 14);
        write_rows(o, d, sec, y + TITLE_PITCH);
        out_str(o, "</g>\n");
        y += TITLE_PITCH + sec->rows * ROW_PITCH;
    }
    out_str(o, "</g>\n</svg>\n");
}

/* ---- entry points ---- */

/* Draw the heap into fd: 0, or an errno value.  The arenas are walked
 * twice, each under its own lock and no other: once to record their regions
 * for the layout (which needs them all to choose the scale), once to draw. */
static int heapmap_fd(int fd)
{
    size_t regions = count_regions();
    size_t record_room = regions + regions / 4 + RECORD_SLACK;
    size_t mapped_room = __atomic_load_n(&mm_large_stats.count, __ATOMIC_RELAXED) + 64;
    size_t sections_bytes = (MAX_SECTIONS + 1) * sizeof(struct section);
    size_t views_bytes = MM_ARENA_SLOTS * sizeof(struct arena_view);
    size_t records_bytes = record_room * sizeof(struct record);
    size_t length = align_up(PIXELS + sections_bytes + views_bytes + records_bytes +
                                 mapped_room * sizeof(struct mm_mapped_extent), mm_page_size());
    char *scratch = mm_os_map(length);          /* zero-filled */
    if (scratch == NULL)
        return ENOMEM;

    struct drawing d;
    memset(&d, 0, sizeof d);
    d.raster = (unsigned char *)scratch;
    d.sections = (struct section *)(scratch + PIXELS);
    d.views = (struct arena_view *)(scratch + PIXELS + sections_bytes);
    d.records = (struct record *)(scratch + PIXELS + sections_bytes + views_bytes);
    d.record_room = record_room;
    d.mapped = (struct mm_mapped_extent *)(scratch + PIXELS + sections_bytes + views_bytes + records_bytes);

    record_regions(&d, mapped_room);
    layout(&d);
    draw_arenas(&d);
    draw_mapped(&d);

    struct out o;
    o.fd = fd;
    o.error = 0;
    o.len = 0;
    write_svg(&o, &d);
    out_flush(&o);
    mm_os_unmap(scratch, length);
    return o.error;
}

static int heapmap_path(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0)
        return errno;
    int error = heapmap_fd(fd);
    if (close(fd) != 0 && error == 0 && errno != EINTR)
        error = errno;
    return error;
}

MYMALLOC_EXPORT int mymalloc_heapmap(const char *path)
{
    int saved_errno = errno;
    if (path == NULL) {
        errno = EINVAL;
        return -1;
    }
    int error = heapmap_path(path);
    if (error != 0) {
        errno = error;
        return -1;
    }
    errno = saved_errno;
    return 0;
}

/* MYMALLOC_HEAPMAP: kept from the environment (read once, see settings.c)
 * for the destructor below.  Only the process that read it writes the map
 * (a forked child that exits would overwrite its parent's), unless the path
 * holds "%p", which becomes the process id. */
static char exit_path[4096];
static pid_t exit_pid;

int mm_heapmap_at_exit(const char *path)
{
    size_t n = strlen(path);
    if (n >= sizeof exit_path)
        return 0;
    memcpy(exit_path, path, n + 1);
    exit_pid = getpid();
    return 1;
}

static void report_exit_failure(const char *path, int error)
{
    char number[24];
    mm_write_str(STDERR_FILENO, "mymalloc: MYMALLOC_HEAPMAP: cannot write ");
    mm_write_str(STDERR_FILENO, path);
    mm_write_str(STDERR_FILENO, " (");
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
    const char *name = strerrorname_np(error);     /* a constant: nothing translated or allocated */
    if (name != NULL) {
        mm_write_str(STDERR_FILENO, name);
        mm_write_str(STDERR_FILENO, ", ");
    }
#endif
    mm_format_unsigned(number, (size_t)error);
    mm_write_str(STDERR_FILENO, "errno ");
    mm_write_str(STDERR_FILENO, number);
    mm_write_str(STDERR_FILENO, ")\n");
}

/* Runs at exit() and when main returns, after the program's atexit handlers
 * and the destructors of the objects that depend on this library; not after
 * _exit(), abort() or a fatal signal. */
__attribute__((destructor)) static void heapmap_at_exit(void)
{
    if (exit_path[0] == '\0')
        return;
    pid_t pid = getpid();
    if (strstr(exit_path, "%p") == NULL && pid != exit_pid)
        return;

    char path[sizeof exit_path + 64], pidtext[24];
    size_t used = 0, pidlen = (size_t)(mm_format_unsigned(pidtext, (size_t)pid) - pidtext);
    for (const char *s = exit_path; *s != '\0' && used + pidlen < sizeof path - 1; s++) {
        if (s[0] == '%' && s[1] == 'p') {
            memcpy(path + used, pidtext, pidlen);
            used += pidlen;
            s++;
        } else {
            path[used++] = *s;
        }
    }
    path[used] = '\0';

    int saved_errno = errno;
    int error = heapmap_path(path);
    if (error != 0)
        report_exit_failure(path, error);
    errno = saved_errno;
}
