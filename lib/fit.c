/* fit.c - placement policies other than best fit (MYMALLOC_FIT=first, next
 * or worst), for studying fragmentation.
 *
 * The bins stay exactly as they are under every policy (merging, splitting,
 * realloc and the heap check use them as usual).  Beside them, while a policy
 * other than best fit is in force, an index holds one node per free block in
 * the bins: a treap ordered by the blocks' addresses, each node also knowing
 * the largest block of its subtree.  That answers every question a policy
 * asks in O(log n):
 *
 *   first  the node at the lowest address whose block is big enough: go left
 *          whenever the left subtree's largest block is big enough;
 *   next   the same, but only among addresses at or after the rover (the end
 *          of the block the previous search handed out), then from the
 *          lowest address again (wrap-around);
 *   worst  the largest block is the root's subtree maximum; the lowest-
 *          addressed block of that size is found like a first fit.
 *
 * The nodes live in mappings of their own (never in the heap, never in the
 * free blocks themselves, whose 32 bytes are taken by the bin links and the
 * boundary tag): 48 bytes per free block.  If no mapping can be had the index
 * is dropped and best fit serves the requests until the policy is set again
 * or the bins are rebuilt.  The arena lock is held throughout.
 *
 * The rover is an address, not a pointer to a block, so it can never dangle:
 * when the block it pointed into was taken, the search starts at the next
 * free block; when it was merged with a free block before it, the search
 * starts at the merged block (the one that contains the rover). */
#include <string.h>
#include "heap.h"

struct mm_fit_node {
    uintptr_t addr;                    /* the free block's header: the key */
    size_t size;                       /* its size */
    size_t max;                        /* the largest size in this subtree */
    struct mm_fit_node *left, *right;
    uint64_t priority;                 /* heap order: a hash of the address */
};

#define POOL_BYTES ((size_t)64 * 1024)
struct mm_fit_pool {
    struct mm_fit_pool *next;
    size_t used;                       /* nodes handed out from this pool */
    struct mm_fit_node nodes[];
};
#define POOL_NODES ((POOL_BYTES - sizeof(struct mm_fit_pool)) / sizeof(struct mm_fit_node))

typedef struct mm_fit_node node_t;

/* A well-spread priority from an address (16-byte aligned, often close
 * together): the treap's shape is then that of a random one. */
static uint64_t priority_of(uintptr_t addr)
{
    uint64_t x = (uint64_t)addr >> 4;
    x *= 0x9e3779b97f4a7c15ULL;
    x ^= x >> 29;
    x *= 0xd6e8feb86659fd93ULL;
    x ^= x >> 32;
    return x;
}

static inline size_t max_of(const node_t *t) { return t != NULL ? t->max : 0; }

static inline size_t subtree_max(const node_t *t)
{
    size_t m = t->size, l = max_of(t->left), r = max_of(t->right);
    return m > l ? (m > r ? m : r) : (l > r ? l : r);
}

static inline void update(node_t *t) { t->max = subtree_max(t); }

/* Split t into the nodes below key (*low) and the others (*high). */
static void split(node_t *t, uintptr_t key, node_t **low, node_t **high)
{
    if (t == NULL) {
        *low = *high = NULL;
        return;
    }
    if (t->addr < key) {
        split(t->right, key, &t->right, high);
        *low = t;
    } else {
        split(t->left, key, low, &t->left);
        *high = t;
    }
    update(t);
}

/* Join two treaps, every address of `low` below every one of `high`. */
static node_t *join(node_t *low, node_t *high)
{
    if (low == NULL)
        return high;
    if (high == NULL)
        return low;
    if (low->priority > high->priority) {
        low->right = join(low->right, high);
        update(low);
        return low;
    }
    high->left = join(low, high->left);
    update(high);
    return high;
}

static node_t *insert(node_t *t, node_t *n)
{
    if (t == NULL)
        return n;
    if (n->priority > t->priority) {
        split(t, n->addr, &n->left, &n->right);
        update(n);
        return n;
    }
    if (n->addr < t->addr)
        t->left = insert(t->left, n);
    else
        t->right = insert(t->right, n);
    if (n->size > t->max)
        t->max = n->size;
    return t;
}

static node_t *remove_key(node_t *t, uintptr_t key, node_t **out)
{
    if (t == NULL)
        return NULL;
    if (t->addr == key) {
        *out = t;
        return join(t->left, t->right);
    }
    if (key < t->addr)
        t->left = remove_key(t->left, key, out);
    else
        t->right = remove_key(t->right, key, out);
    update(t);
    return t;
}

/* The node at the lowest address at or after `from` whose block holds
 * `need` bytes, or NULL.  The subtree maxima prune every subtree that has no
 * such block, so this follows O(height) nodes. */
static node_t *lowest_fit(node_t *t, uintptr_t from, size_t need)
{
    if (t == NULL || t->max < need)
        return NULL;
    if (t->addr >= from) {
        node_t *n = lowest_fit(t->left, from, need);
        if (n != NULL)
            return n;
        if (t->size >= need)
            return t;
    }
    return lowest_fit(t->right, from, need);
}

/* Where a next-fit search starts: at the free block that contains the rover
 * (it may have been merged with the block before it since), else at the
 * rover itself. */
static uintptr_t rover_start(const struct mm_fit *f)
{
    const node_t *t = f->root, *below = NULL;
    while (t != NULL) {
        if (t->addr <= f->rover) {
            below = t;
            t = t->right;
        } else {
            t = t->left;
        }
    }
    return below != NULL && f->rover - below->addr < below->size ? below->addr : f->rover;
}

/* ---- the nodes' memory ---- */

static void drop_index(struct mm_fit *f)
{
    struct mm_fit_pool *p = f->pools;
    while (p != NULL) {
        struct mm_fit_pool *next = p->next;
        mm_os_unmap(p, POOL_BYTES);
        p = next;
    }
    f->pools = NULL;
    f->root = NULL;
    f->spare = NULL;
    f->indexed = 0;
}

static node_t *node_new(struct mm_fit *f)
{
    node_t *n = f->spare;
    if (n != NULL) {
        f->spare = n->left;
        return n;
    }
    struct mm_fit_pool *p = f->pools;
    if (p == NULL || p->used == POOL_NODES) {
        p = mm_os_map(POOL_BYTES);
        if (p == NULL)
            return NULL;
        p->next = f->pools;
        p->used = 0;
        f->pools = p;
    }
    return &p->nodes[p->used++];
}

/* ---- what the bins and the heap call ---- */

/* b has just gone into a bin (only called while indexed). */
void mm_fit_insert(struct mm_arena *a, block_t *b)
{
    struct mm_fit *f = &a->fit;
    node_t *n = node_new(f);
    if (unlikely(n == NULL)) {
        drop_index(f);        /* out of memory: best fit from now on */
        return;
    }
    n->addr = (uintptr_t)b;
    n->size = n->max = block_size(b);
    n->left = n->right = NULL;
    n->priority = priority_of(n->addr);
    f->root = insert(f->root, n);
}

/* b has just left its bin (only called while indexed). */
void mm_fit_remove(struct mm_arena *a, block_t *b)
{
    struct mm_fit *f = &a->fit;
    node_t *n = NULL;
    f->root = remove_key(f->root, (uintptr_t)b, &n);
    mm_assert(n != NULL);
    if (n != NULL) {
        n->left = f->spare;
        f->spare = n;
    }
}

/* The bins are about to be rebuilt from the heap: forget every node (the
 * rebuild inserts the blocks again), and index again if the index had been
 * dropped for want of memory. */
void mm_fit_forget(struct mm_arena *a)
{
    drop_index(&a->fit);
    a->fit.indexed = a->fit.policy != MM_FIT_BEST;
}

/* Take the free block the policy chooses for `need` bytes out of its bin;
 * NULL when none fits (the top serves then).  A block whose links were
 * overwritten is named in *corrupt, as mm_bin_take does. */
block_t *mm_fit_take(struct mm_arena *a, size_t need, block_t **corrupt)
{
    struct mm_fit *f = &a->fit;
    node_t *n;

    if (unlikely(!f->indexed))
        return mm_bin_take(a, need, corrupt);
    if (f->root == NULL || f->root->max < need)
        return NULL;
    switch (f->policy) {
    case MM_FIT_WORST:
        n = lowest_fit(f->root, 0, f->root->max);
        break;
    case MM_FIT_NEXT:
        n = lowest_fit(f->root, rover_start(f), need);
        if (n == NULL)
            n = lowest_fit(f->root, 0, need);       /* wrap around */
        break;
    default:
        n = lowest_fit(f->root, 0, need);
        break;
    }
    block_t *b = (block_t *)n->addr;
    if (unlikely(!mm_bin_links_ok(a, b) || block_size(b) != n->size)) {
        *corrupt = b;
        return NULL;
    }
    if (f->policy == MM_FIT_NEXT)
        f->rover = n->addr + need;      /* where the rest of the block, if split, starts */
    mm_bin_remove(&a->bins, b);         /* and its node */
    return b;
}

/* Change the policy (mallopt or the environment): build the index from the
 * bins when leaving best fit, drop it when going back.  The rover starts
 * again at the lowest address. */
int mm_fit_set(struct mm_arena *a, int policy)
{
    struct mm_fit *f = &a->fit;
    mm_lock(&a->lock);
    if (policy == MM_FIT_BEST) {
        drop_index(f);
    } else if (!f->indexed) {
        drop_index(f);
        f->indexed = 1;
        for (size_t i = 0; i < MM_NBINS && f->indexed; i++)
            for (block_t *b = a->bins.head[i]; b != NULL && f->indexed; b = b->next_free)
                mm_fit_insert(a, b);
    }
    f->rover = 0;
    __atomic_store_n(&f->policy, policy, __ATOMIC_RELAXED);
    mm_unlock(&a->lock);
    return 1;
}

/* ---- mymalloc_check() ---- */

struct index_walk {
    const struct mm_arena *a;
    size_t count, bytes;
    int problems;
};

static void check_subtree(struct index_walk *w, const node_t *t, uintptr_t low, uintptr_t high,
                          uint64_t priority, unsigned depth)
{
    if (t == NULL)
        return;
    const block_t *b = (const block_t *)t->addr;
    if (depth > 200 || t->addr < low || t->addr >= high || t->priority > priority || t->max != subtree_max(t)) {
        w->problems++;
        return;                   /* the shape is wrong: do not follow it further */
    }
    if (!mm_heap_owns(w->a, b) || t->addr % MM_ALIGN != MM_WORD || b == w->a->top ||
        !block_head_ok(b) || block_inuse(b) || block_size(b) != t->size)
        w->problems++;
    else {
        w->count++;
        w->bytes += t->size;
    }
    check_subtree(w, t->left, low, t->addr, t->priority, depth + 1);
    check_subtree(w, t->right, t->addr + 1, high, t->priority, depth + 1);
}

/* The index against the bins: every node a free block of the size it says,
 * in address order, with right maxima, as many blocks and bytes as the bins
 * hold.  The number of problems found. */
int mm_fit_check(struct mm_arena *a)
{
    struct index_walk w = { a, 0, 0, 0 };
    size_t bytes;
    if (!a->fit.indexed)
        return 0;
    if (a->fit.policy == MM_FIT_BEST)
        return 1;                 /* an index kept under best fit */
    check_subtree(&w, a->fit.root, 0, UINTPTR_MAX, UINT64_MAX, 0);
    size_t count = mm_bins_count(&a->bins, &bytes);
    if (count != w.count || bytes != w.bytes)
        w.problems++;
    return w.problems;
}
