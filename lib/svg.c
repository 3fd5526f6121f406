/* svg.c - the heap map written out: the drawing that heapmap.c rendered, as
 * SVG (a legend, the figures, one section of rows per group of regions),
 * with write(2) from a buffer on the stack and numbers formatted by hand:
 * nothing allocated.  Entry layer; it knows nothing of the heap. */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include "heapmap.h"

/* The CSS class of each pixel class. */
static const char *const px_name[PX_CLASSES] = { "", "u", "v", "c", "d", "f", "t", "m", "n", "x", "y" };


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
    out_str(o, ") are freed blocks held in threads' caches or parked for their refills.</text>\n");

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

int mm_heapmap_write_svg(int fd, const struct drawing *d)
{
    struct out o;
    o.fd = fd;
    o.error = 0;
    o.len = 0;
    write_svg(&o, d);
    out_flush(&o);
    return o.error;
}
