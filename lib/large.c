/* large.c - blocks with a mapping of their own: requests at or above the mmap
 * threshold (and aligned ones that would be).  They never enter the heap;
 * free() unmaps them and realloc() moves them with mremap().  A table of the
 * live ones (mapping address and length, nothing kept in the blocks) lets the
 * heap map draw them.
 *
 *   map -> [ unused ... | offset | header | user data ...   | tail ] <- map + length
 *                         ^ the word before the header: header - map
 *   header size = length - offset - 8 (a multiple of 16: the header sits at 8
 *   modulo 16, so the mapping's last word is spare), flags INUSE | MMAPPED
 *
 * The spare last word, the tail, holds a value keyed by the block's address
 * and a secret (with checks on): a write of even one byte past the usable
 * size changes it, and free and realloc check it.  A block made at check
 * level 2 (C flag) is placed at the end of its mapping, which is followed by
 * an inaccessible guard page: a write or read more than the tail past its
 * end faults at once.
 *
 *   level 2: [ unused | offset | header | user data | canary | tail ][ guard page ]
 */
#include "heap.h"

static inline size_t *offset_word(const block_t *b) { return (size_t *)b - 1; }
static inline char *mapping_of(const block_t *b) { return (char *)b - *offset_word(b); }
static inline size_t mapping_length(const block_t *b) { return *offset_word(b) + block_size(b) + MM_WORD; }
static inline size_t *tail_word(const block_t *b) { return (size_t *)((char *)b + block_size(b)); }
static inline size_t tail_key(const block_t *b)
{
    return (size_t)(((uint64_t)(uintptr_t)b * UINT64_C(0xd6e8feb86659fd93)) ^ mm_secret.link);
}
/* A level-2 block has a guard page after its mapping. */
static inline size_t guard_length(const block_t *b) { return (b->head & BLOCK_CANARY) ? mm_page_size() : 0; }

/* Nothing was written past b's usable size (checks on). */
int mm_large_tail_ok(const block_t *b)
{
    return *tail_word(b) == tail_key(b);
}

static void tail_set(block_t *b)
{
    if (mm_check_level() != 0)
        *tail_word(b) = tail_key(b);
}

/* Counters of the mapped blocks, for the statistics: atomics. */
struct mm_large_stats mm_large_stats;

static void counted_add(size_t bytes)
{
    size_t count = __atomic_add_fetch(&mm_large_stats.count, 1, __ATOMIC_RELAXED);
    size_t peak_count = __atomic_load_n(&mm_large_stats.peak_count, __ATOMIC_RELAXED);
    while (count > peak_count &&
           !__atomic_compare_exchange_n(&mm_large_stats.peak_count, &peak_count, count, 1, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
        ;
    size_t now = __atomic_add_fetch(&mm_large_stats.bytes, bytes, __ATOMIC_RELAXED);
    size_t peak = __atomic_load_n(&mm_large_stats.peak_bytes, __ATOMIC_RELAXED);
    while (now > peak &&
           !__atomic_compare_exchange_n(&mm_large_stats.peak_bytes, &peak, now, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

static void counted_sub(size_t bytes)
{
    __atomic_sub_fetch(&mm_large_stats.count, 1, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&mm_large_stats.bytes, bytes, __ATOMIC_RELAXED);
}

/* The table of live mapped blocks: open addressing with linear probing on
 * the mapping address, under a lock of its own, which is taken for a few
 * instructions around each change and never across a system call.  It
 * starts in static memory and moves to a mapping twice its size when half
 * full; when that mapping cannot be had, further blocks are only counted.
 * Nothing in it is read from the blocks themselves, so a program that
 * overwrites its blocks cannot make the table (or the heap map) go astray. */
#define TABLE_INITIAL 256
static struct mm_mapped_extent table_initial[TABLE_INITIAL];
static struct {
    struct mm_mapped_extent *slots;   /* start 0: an empty slot */
    size_t capacity;                  /* a power of two */
    size_t used, bytes;               /* entries, and their lengths summed */
    size_t untracked, untracked_bytes;  /* blocks the table had no room for */
} table = { table_initial, TABLE_INITIAL, 0, 0, 0, 0 };
static mm_lock_t table_lock = MM_LOCK_INIT(MM_RANK_MAPPED);

/* fork(): the table's lock is taken last, after every arena's. */
void mm_large_fork_prepare(void) { mm_lock(&table_lock); }
void mm_large_fork_parent(void) { mm_unlock(&table_lock); }
void mm_large_fork_child(void) { __atomic_store_n(&table_lock.state, 0, __ATOMIC_RELAXED); }

static size_t slot_home(uintptr_t start, size_t capacity)
{
    uint64_t h = (uint64_t)(start >> 12) * UINT64_C(0x9e3779b97f4a7c15);
    return (size_t)(h >> (64 - __builtin_ctzl(capacity)));
}

/* Enter a mapping; the caller made sure there is room. */
static void slot_put(uintptr_t start, size_t length)
{
    size_t mask = table.capacity - 1, i = slot_home(start, table.capacity);
    while (table.slots[i].start != 0)
        i = (i + 1) & mask;
    table.slots[i].start = start;
    table.slots[i].length = length;
    table.used++;
    table.bytes += length;
}

/* Remove a mapping: 0 when it is not in the table.  The entries after it in
 * its probe run move back, so no lookup ever meets a hole too early. */
static int slot_remove(uintptr_t start)
{
    size_t mask = table.capacity - 1, i = slot_home(start, table.capacity);
    while (table.slots[i].start != start) {
        if (table.slots[i].start == 0)
            return 0;
        i = (i + 1) & mask;
    }
    table.used--;
    table.bytes -= table.slots[i].length;
    for (size_t j = (i + 1) & mask; table.slots[j].start != 0; j = (j + 1) & mask) {
        size_t home = slot_home(table.slots[j].start, table.capacity);
        /* Entry j may fill the hole at i unless its home lies in (i, j]. */
        int stays = i < j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            table.slots[i] = table.slots[j];
            i = j;
        }
    }
    table.slots[i].start = 0;
    table.slots[i].length = 0;
    return 1;
}

static void table_note(uintptr_t start, size_t length)
{
    void *drop = NULL;
    size_t drop_bytes = 0;

    mm_lock(&table_lock);
    if (table.used + 1 > table.capacity / 2) {
        size_t want = table.capacity * 2;
        mm_unlock(&table_lock);
        struct mm_mapped_extent *fresh = mm_os_map(want * sizeof *fresh);   /* zero-filled */
        mm_lock(&table_lock);
        if (fresh != NULL && table.capacity < want) {
            struct mm_mapped_extent *old = table.slots;
            size_t old_capacity = table.capacity;
            table.slots = fresh;
            table.capacity = want;
            table.used = table.bytes = 0;
            for (size_t i = 0; i < old_capacity; i++)
                if (old[i].start != 0)
                    slot_put(old[i].start, old[i].length);
            if (old != table_initial) {
                drop = old;
                drop_bytes = old_capacity * sizeof *old;
            }
        } else if (fresh != NULL) {       /* another thread grew it meanwhile */
            drop = fresh;
            drop_bytes = want * sizeof *fresh;
        }
    }
    if (table.used + 1 <= table.capacity / 2) {
        slot_put(start, length);
    } else {
        table.untracked++;
        table.untracked_bytes += length;
    }
    mm_unlock(&table_lock);
    if (drop != NULL)
        mm_os_unmap(drop, drop_bytes);
}

/* The mapping at `start` is gone (new_start 0) or is now new_start, new_length. */
static void table_change(uintptr_t start, size_t length, uintptr_t new_start, size_t new_length)
{
    mm_lock(&table_lock);
    if (slot_remove(start)) {
        if (new_start != 0)
            slot_put(new_start, new_length);   /* the room it left */
    } else if (table.untracked > 0) {
        table.untracked_bytes -= length;
        if (new_start != 0)
            table.untracked_bytes += new_length;
        else
            table.untracked--;
    }
    mm_unlock(&table_lock);
}

size_t mm_large_list(struct mm_mapped_extent *out, size_t room, struct mm_mapped_totals *totals)
{
    size_t copied = 0;
    mm_lock(&table_lock);
    for (size_t i = 0; i < table.capacity && copied < room; i++)
        if (table.slots[i].start != 0)
            out[copied++] = table.slots[i];
    totals->listed = table.used;
    totals->listed_bytes = table.bytes;
    totals->unlisted = table.untracked;
    totals->unlisted_bytes = table.untracked_bytes;
    mm_unlock(&table_lock);
    return copied;
}

/* A new mapped block, or NULL (errno unspecified: the caller falls back to
 * the heap and sets it). */
void *mm_large_alloc(size_t n, size_t alignment, size_t origin)
{
    size_t page = mm_page_size();
    size_t need = request_to_block(n);
    size_t extra = alignment > MM_ALIGN ? alignment : 0;

    if (n > MM_MAX_REQUEST || need > MM_MAX_REQUEST - extra - page)
        return NULL;

    size_t length = align_up(need + 2 * MM_WORD + extra, page);
    size_t guard = (origin & BLOCK_CANARY) ? page : 0;
    char *map = mm_os_map(length + guard);
    if (map == NULL)
        return NULL;
    if (guard != 0 && mm_os_protect_none(map + length, guard) != 0) {
        mm_os_unmap(map, length + guard);
        return NULL;
    }
    size_t align = alignment > MM_ALIGN ? alignment : MM_ALIGN;
    char *user = guard != 0 ? (char *)align_down((uintptr_t)map + length - need, align)   /* against the guard */
                            : (char *)align_up((uintptr_t)map + MM_ALIGN, align);
    size_t lead = align_down((size_t)(user - MM_ALIGN - map), page);
    if (lead > 0) {                       /* give back the unused leading pages */
        if (mm_os_unmap(map, lead) != 0) {
            mm_os_unmap(map, length + guard);
            return NULL;
        }
        map += lead;
        length -= lead;
    }
    block_t *b = block_of_user(user);
    *offset_word(b) = (size_t)((char *)b - map);
    block_set_head(b, length - *offset_word(b) - MM_WORD, BLOCK_INUSE | BLOCK_MMAPPED | origin);
    tail_set(b);
    counted_add(length + guard);
    table_note((uintptr_t)map, length + guard);
    return user;
}

/* A mapped block's header must describe a page-aligned mapping of whole pages. */
int mm_large_valid(const block_t *b)
{
    size_t page = mm_page_size();
    size_t offset = *offset_word(b);
    return offset >= MM_WORD && offset % MM_ALIGN == MM_WORD && offset < page + MM_ALIGN &&
           (uintptr_t)mapping_of(b) % page == 0 && mapping_length(b) % page == 0 &&
           block_size(b) >= MM_MIN_BLOCK;
}

/* Unmap b's mapping; its length. */
size_t mm_large_free(block_t *b)
{
    size_t length = mapping_length(b) + guard_length(b);
    table_change((uintptr_t)mapping_of(b), length, 0, 0);
    mm_os_unmap(mapping_of(b), length);
    counted_sub(length);
    return length;
}

/* Resize a mapped block with mremap; NULL (block untouched) when it cannot,
 * or when it has a guard page (the caller moves it). */
void *mm_large_realloc(block_t *b, size_t n)
{
    if (guard_length(b) != 0)
        return NULL;
    size_t offset = *offset_word(b);
    size_t old_length = mapping_length(b);
    size_t new_length = align_up(offset + request_to_block(n) + MM_WORD, mm_page_size());

    if (new_length == old_length)
        return block_user(b);
    char *old_map = mapping_of(b);
    char *map = mm_os_remap(old_map, old_length, new_length);
    if (map == NULL)
        return NULL;
    table_change((uintptr_t)old_map, old_length, (uintptr_t)map, new_length);
    b = block_at(map, offset);
    block_set_head(b, new_length - offset - MM_WORD, b->head & BLOCK_FLAGS);
    tail_set(b);
    counted_sub(old_length);
    counted_add(new_length);
    return block_user(b);
}
