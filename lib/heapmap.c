/* heapmap.c - the heap map: mymalloc_heapmap() draws the heap as an SVG
 * picture (every block of every arena's regions, arena by arena, each
 * region in address order, then the blocks with a mapping of their own),
 * with a legend and the fragmentation figures of the whole process, and
 * MYMALLOC_HEAPMAP=path draws one at exit.
 * Drawing never touches the heap it draws: the picture is rendered into a
 * raster in a scratch mapping of its own, each arena walked under its own
 * lock and no other (this file); the SVG is then written from it (svg.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include "heapmap.h"
#include "mymalloc.h"

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

    int error = mm_heapmap_write_svg(fd, &d);
    mm_os_unmap(scratch, length);
    return error;
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
