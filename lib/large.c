/* large.c - blocks with a mapping of their own: requests at or above the mmap
 * threshold (and aligned ones that would be).  They never enter the heap;
 * free() unmaps them and realloc() moves them with mremap().
 *
 *   map -> [ unused ... | offset | header | user data ...          ] <- map + length
 *                         ^ the word before the header: header - map
 *   header size = length - offset - 8 (a multiple of 16: the header sits at 8
 *   modulo 16, so the mapping's last word is spare), flags INUSE | MMAPPED
 */
#include "internal.h"

static inline size_t *offset_word(const block_t *b) { return (size_t *)b - 1; }
static inline char *mapping_of(const block_t *b) { return (char *)b - *offset_word(b); }
static inline size_t mapping_length(const block_t *b) { return *offset_word(b) + block_size(b) + MM_WORD; }

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
    char *map = mm_os_map(length);
    if (map == NULL)
        return NULL;
    char *user = (char *)align_up((uintptr_t)map + MM_ALIGN, alignment > MM_ALIGN ? alignment : MM_ALIGN);
    size_t lead = align_down((size_t)(user - MM_ALIGN - map), page);
    if (lead > 0) {                       /* give back the unused leading pages */
        if (mm_os_unmap(map, lead) != 0) {
            mm_os_unmap(map, length);
            return NULL;
        }
        map += lead;
        length -= lead;
    }
    block_t *b = block_of_user(user);
    *offset_word(b) = (size_t)((char *)b - map);
    block_set_head(b, length - *offset_word(b) - MM_WORD, BLOCK_INUSE | BLOCK_MMAPPED | origin);
    mm_stats_large_add(length);
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

void mm_large_free(block_t *b)
{
    size_t length = mapping_length(b);
    mm_os_unmap(mapping_of(b), length);
    mm_stats_large_sub(length);
    mm_settings_mapped_freed(length);
}

/* Resize a mapped block with mremap; NULL (block untouched) when it cannot. */
void *mm_large_realloc(block_t *b, size_t n)
{
    size_t offset = *offset_word(b);
    size_t old_length = mapping_length(b);
    size_t new_length = align_up(offset + request_to_block(n) + MM_WORD, mm_page_size());

    if (new_length == old_length)
        return block_user(b);
    char *map = mm_os_remap(mapping_of(b), old_length, new_length);
    if (map == NULL)
        return NULL;
    b = block_at(map, offset);
    block_set_head(b, new_length - offset - MM_WORD, b->head & BLOCK_FLAGS);
    mm_stats_large_sub(old_length);
    mm_stats_large_add(new_length);
    return block_user(b);
}
