// cxx_threads.cc - libmymalloc++ under 4 threads: each thread builds parcels
// of STL containers (vector, string, map, unordered_map, list, deque,
// shared_ptr from make_shared, unique_ptr to alignas(64) objects and arrays,
// a vector of over-aligned elements) and hands them through mutex-protected
// mailboxes to the next thread, which checks them and passes them on once
// more; the thread after that checks them again and destroys them, so
// every parcel's blocks are freed by a thread that did not allocate them.  Every
// check compares the containers' contents with values computed from the
// parcel's (producer, round) by plain arithmetic, without any container.
// At the end the call counters of mymalloc_stats_get must account for the
// operations known to have happened, and the heap must be sound.
#include "util.h"
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

const int THREADS = 4;
const int ROUNDS = 1000;         // parcels made by each thread

// ------------------------------------------------------------ deterministic data

std::uint64_t mix(std::uint64_t seed, std::uint64_t i)
{
    std::uint64_t z = seed * 0x9e3779b97f4a7c15u + i * 0xbf58476d1ce4e5b9u + 0x94d049bb133111ebu;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

std::uint64_t seed_of(int producer, int round)
{
    return (std::uint64_t)producer * 1000003u + (std::uint64_t)round * 7919u + 17u;
}

std::uint64_t fnv(std::uint64_t h, const void *data, std::size_t n)
{
    const unsigned char *p = static_cast<const unsigned char *>(data);
    for (std::size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3u;
    return h;
}
const std::uint64_t FNV_START = 0xcbf29ce484222325u;

std::uint64_t fold(std::uint64_t h, std::uint64_t v) { return (h ^ v) * 0x100000001b3u + (v >> 7); }

struct alignas(64) Cell {
    std::uint64_t v[8];
};
static_assert(alignof(Cell) == 64 && sizeof(Cell) == 64, "Cell needs aligned new");

struct Node {
    std::uint64_t seed;
    std::uint64_t value;
};

// What a parcel must contain, summarized.
struct Summary {
    std::size_t n = 0, map_keys = 0, words = 0, list_size = 0, deque_size = 0, cells = 0;
    std::uint64_t vec = 0, text = 0, map = 0, umap = 0, list = 0, deque = 0, node = 0, cell = 0;
    bool operator==(const Summary &o) const
    {
        return n == o.n && map_keys == o.map_keys && words == o.words && list_size == o.list_size &&
               deque_size == o.deque_size && cells == o.cells && vec == o.vec && text == o.text &&
               map == o.map && umap == o.umap && list == o.list && deque == o.deque && node == o.node &&
               cell == o.cell;
    }
    std::uint64_t total() const
    {
        std::uint64_t h = FNV_START;
        for (std::uint64_t v : {(std::uint64_t)n, (std::uint64_t)map_keys, (std::uint64_t)words,
                                (std::uint64_t)list_size, (std::uint64_t)deque_size, (std::uint64_t)cells, vec,
                                text, map, umap, list, deque, node, cell})
            h = fold(h, v);
        return h;
    }
};

std::size_t count_of(std::uint64_t seed) { return 50 + (std::size_t)(seed % 200); }
std::size_t cells_of(std::uint64_t seed) { return 1 + (std::size_t)(seed % 5); }
int map_key(std::uint64_t seed, std::size_t i) { return (int)(mix(seed, i) % 1000); }
int word_id(std::uint64_t seed, std::size_t i) { return (int)(mix(seed, i) % 97); }
int list_value(std::uint64_t seed, std::size_t i) { return (int)(mix(seed, i) % 10000); }
bool goes_front(std::uint64_t seed, std::size_t i) { return (mix(seed, i + 77) & 1) != 0; }
std::uint64_t node_value(std::uint64_t seed) { return mix(seed, 424242); }
std::uint64_t cell_word(std::uint64_t seed, std::size_t which, std::size_t j) { return mix(seed, 1000 + which * 8 + j); }

// The summary from (producer, round) alone: arrays and arithmetic only.
Summary reference(int producer, int round)
{
    Summary s;
    std::uint64_t seed = seed_of(producer, round);
    std::size_t n = count_of(seed);
    s.n = n;

    for (std::size_t i = 0; i < n; i++)
        s.vec += mix(seed, i) * (i + 1);

    s.text = FNV_START;
    for (std::size_t i = 0; i < n; i++) {
        char buf[32];
        int len = std::snprintf(buf, sizeof buf, "%llu,", (unsigned long long)(mix(seed, i) % 100000));
        s.text = fnv(s.text, buf, (std::size_t)len);
    }

    bool present[1000] = {};
    for (std::size_t i = 0; i < n; i++)
        present[map_key(seed, i)] = true;
    s.map = FNV_START;
    for (int k = 0; k < 1000; k++) {
        if (!present[k] || k % 3 == 0)
            continue;
        s.map_keys++;
        s.map = fold(fold(s.map, (std::uint64_t)k), (std::uint64_t)(1 + k % 50) * (std::uint64_t)('a' + k % 26));
    }

    int count[97] = {};
    for (std::size_t i = 0; i < n; i++)
        count[word_id(seed, i)]++;
    for (int w = 0; w < 97; w++) {
        if (count[w] == 0)
            continue;
        char buf[8];
        int len = std::snprintf(buf, sizeof buf, "w%d", w);
        s.words++;
        s.umap += fnv(FNV_START, buf, (std::size_t)len) * (std::uint64_t)count[w];
    }

    int values[256];
    for (std::size_t i = 0; i < n; i++)
        values[i] = list_value(seed, i);
    std::sort(values, values + n);
    std::size_t distinct = (std::size_t)(std::unique(values, values + n) - values);
    s.list_size = distinct;
    s.list = FNV_START;
    for (std::size_t i = distinct; i-- > 0;)       // reversed
        s.list = fold(s.list, (std::uint64_t)values[i]);

    int ring[512];
    std::size_t head = 256, tail = 256;            // [head, tail)
    for (std::size_t i = 0; i < n; i++) {
        if (goes_front(seed, i))
            ring[--head] = (int)i;
        else
            ring[tail++] = (int)i;
    }
    head += 10;                                    // ten pop_front
    s.deque_size = tail - head;
    s.deque = FNV_START;
    for (std::size_t i = head; i < tail; i++)
        s.deque = fold(s.deque, (std::uint64_t)ring[i]);

    s.node = fold(seed, node_value(seed));

    std::size_t k = cells_of(seed);
    s.cells = k;
    for (std::size_t j = 0; j < 8; j++)
        s.cell += cell_word(seed, 0, j);
    for (std::size_t c = 0; c < k; c++)
        for (std::size_t j = 0; j < 8; j++)
            s.cell += cell_word(seed, 1 + c, j) + 3 * cell_word(seed, 100 + c, j);
    return s;
}

// ------------------------------------------------------------ parcels

struct Parcel {
    int producer = 0, round = 0, hops = 0;
    std::vector<std::uint64_t> numbers;
    std::string text;
    std::map<int, std::string> dict;
    std::unordered_map<std::string, int> words;
    std::list<int> items;
    std::deque<int> queue;
    std::shared_ptr<const Node> node;
    std::vector<std::shared_ptr<const Node>> older;   // shared with the producer and other parcels
    std::unique_ptr<Cell> cell;
    std::unique_ptr<Cell[]> cells;
    std::size_t cell_count = 0;
    std::vector<Cell> cell_vector;                   // over-aligned elements: aligned allocator calls
};

std::unique_ptr<Parcel> make_parcel(int producer, int round, std::vector<std::shared_ptr<const Node>> &history)
{
    std::uint64_t seed = seed_of(producer, round);
    std::size_t n = count_of(seed);
    auto p = std::make_unique<Parcel>();
    p->producer = producer;
    p->round = round;

    p->numbers.reserve(n);
    for (std::size_t i = 0; i < n; i++)
        p->numbers.push_back(mix(seed, i));

    for (std::size_t i = 0; i < n; i++) {
        p->text += std::to_string(mix(seed, i) % 100000);
        p->text += ',';
    }

    for (std::size_t i = 0; i < n; i++) {
        int k = map_key(seed, i);
        p->dict[k] = std::string((std::size_t)(1 + k % 50), (char)('a' + k % 26));
    }
    for (auto it = p->dict.begin(); it != p->dict.end();)
        it = it->first % 3 == 0 ? p->dict.erase(it) : std::next(it);

    for (std::size_t i = 0; i < n; i++)
        p->words["w" + std::to_string(word_id(seed, i))]++;

    for (std::size_t i = 0; i < n; i++)
        p->items.push_back(list_value(seed, i));
    p->items.sort();
    p->items.unique();
    p->items.reverse();

    for (std::size_t i = 0; i < n; i++) {
        if (goes_front(seed, i))
            p->queue.push_front((int)i);
        else
            p->queue.push_back((int)i);
    }
    for (int i = 0; i < 10; i++)
        p->queue.pop_front();

    p->node = std::make_shared<const Node>(Node{seed, node_value(seed)});
    p->older = history;
    history.push_back(p->node);
    if (history.size() > 6)
        history.erase(history.begin());

    p->cell = std::make_unique<Cell>();
    for (std::size_t j = 0; j < 8; j++)
        p->cell->v[j] = cell_word(seed, 0, j);
    std::size_t k = cells_of(seed);
    p->cell_count = k;
    p->cells.reset(new Cell[k]);
    p->cell_vector.reserve(k);
    for (std::size_t c = 0; c < k; c++) {
        Cell v;
        for (std::size_t j = 0; j < 8; j++) {
            p->cells[c].v[j] = cell_word(seed, 1 + c, j);
            v.v[j] = cell_word(seed, 100 + c, j);
        }
        p->cell_vector.push_back(v);
    }
    return p;
}

bool aligned64(const void *p) { return (reinterpret_cast<std::uintptr_t>(p) & 63) == 0; }

// The summary of what a parcel holds, from its containers.
Summary measure(const Parcel &p)
{
    Summary s;
    s.n = p.numbers.size();
    for (std::size_t i = 0; i < p.numbers.size(); i++)
        s.vec += p.numbers[i] * (i + 1);
    s.text = fnv(FNV_START, p.text.data(), p.text.size());
    s.map = FNV_START;
    for (const auto &kv : p.dict) {
        s.map_keys++;
        std::uint64_t letters = 0;
        for (char c : kv.second)
            letters += (std::uint64_t)(unsigned char)c;
        s.map = fold(fold(s.map, (std::uint64_t)kv.first), letters);
    }
    for (const auto &kv : p.words) {
        s.words++;
        s.umap += fnv(FNV_START, kv.first.data(), kv.first.size()) * (std::uint64_t)kv.second;
    }
    s.list = FNV_START;
    for (int v : p.items) {
        s.list_size++;
        s.list = fold(s.list, (std::uint64_t)v);
    }
    s.deque = FNV_START;
    for (int v : p.queue) {
        s.deque_size++;
        s.deque = fold(s.deque, (std::uint64_t)v);
    }
    s.node = p.node ? fold(p.node->seed, p.node->value) : 0;
    s.cells = p.cell_count;
    if (p.cell && aligned64(p.cell.get()))
        for (std::uint64_t w : p.cell->v)
            s.cell += w;
    if (p.cells && aligned64(p.cells.get()))
        for (std::size_t c = 0; c < p.cell_count; c++)
            for (std::uint64_t w : p.cells[c].v)
                s.cell += w;
    if (p.cell_vector.size() == p.cell_count && aligned64(p.cell_vector.data()))
        for (const Cell &c : p.cell_vector)
            for (std::uint64_t w : c.v)
                s.cell += 3 * w;
    return s;
}

// The nodes a parcel shares with others must still be intact.
bool older_nodes_intact(const Parcel &p)
{
    for (const auto &n : p.older)
        if (!n || n->value != node_value(n->seed) || n.use_count() < 1)
            return false;
    return true;
}

// Plain operator new calls a parcel surely made: one per list node and per
// map and unordered_map node, the parcel, the vector, the text, the
// shared node, the older-node vector (when not empty), the deque's map and
// one deque chunk.
unsigned long long plain_news_at_least(int producer, int round)
{
    Summary s = reference(producer, round);
    std::uint64_t seed = seed_of(producer, round);
    bool present[1000] = {};
    std::size_t keys = 0;
    for (std::size_t i = 0; i < s.n; i++)
        if (!present[map_key(seed, i)]) {
            present[map_key(seed, i)] = true;
            keys++;
        }
    return s.n + keys + s.words + 6 + (round > 0 ? 1 : 0);
}

// ------------------------------------------------------------ mailboxes and workers

struct Mailbox {
    std::mutex lock;
    std::condition_variable ready;
    std::deque<std::unique_ptr<Parcel>> parcels;
};
Mailbox boxes[THREADS];

void post(int to, std::unique_ptr<Parcel> p)
{
    Mailbox &box = boxes[to];
    {
        std::lock_guard<std::mutex> guard(box.lock);
        box.parcels.push_back(std::move(p));
    }
    box.ready.notify_one();
}

struct Result {
    int received = 0, first_hop = 0, second_hop = 0, bad = 0, bad_older = 0;
    std::uint64_t total = 0;       // sum of the totals of the parcels this thread destroyed
    char first_bad[160] = "";
};
Result results[THREADS];

std::size_t backlog(int of)
{
    std::lock_guard<std::mutex> guard(boxes[of].lock);
    return boxes[of].parcels.size();
}

void worker(int self)
{
    Result &res = results[self];
    std::vector<std::shared_ptr<const Node>> history;
    const int expected = 2 * ROUNDS;
    const int next = (self + 1) % THREADS;
    int round = 0;
    while (round < ROUNDS || res.received < expected) {
        // Make a parcel unless the next thread is well behind (memory stays bounded).
        bool made = false;
        if (round < ROUNDS && backlog(next) < 8) {
            post(next, make_parcel(self, round, history));
            round++;
            made = true;
        }
        std::deque<std::unique_ptr<Parcel>> got;
        {
            std::unique_lock<std::mutex> guard(boxes[self].lock);
            auto arrived = [self] { return !boxes[self].parcels.empty(); };
            if (res.received < expected && round >= ROUNDS)
                boxes[self].ready.wait(guard, arrived);           // nothing left but waiting
            else if (res.received < expected && !made)
                boxes[self].ready.wait_for(guard, std::chrono::milliseconds(1), arrived);
            if (!boxes[self].parcels.empty())
                got.swap(boxes[self].parcels);
        }
        for (auto &p : got) {
            res.received++;
            Summary want = reference(p->producer, p->round), have = measure(*p);
            if (!(want == have)) {
                if (res.bad++ == 0)
                    std::snprintf(res.first_bad, sizeof res.first_bad,
                                  "parcel %d/%d (hop %d): vec %d text %d map %d umap %d list %d deque %d node %d "
                                  "cells %d", p->producer, p->round, p->hops, want.vec == have.vec,
                                  want.text == have.text, want.map == have.map, want.umap == have.umap,
                                  want.list == have.list, want.deque == have.deque, want.node == have.node,
                                  want.cell == have.cell);
            }
            if (!older_nodes_intact(*p))
                res.bad_older++;
            if (p->hops == 0) {
                res.first_hop++;
                p->hops = 1;
                post((self + 1) % THREADS, std::move(p));
            } else {
                res.second_hop++;
                res.total += have.total();
                p.reset();                         // freed two threads away from its maker
            }
        }
    }
}

struct Counts {
    unsigned long long c[MYMALLOC_CALL_COUNT];
};

void snap(Counts &out)
{
    struct mymalloc_stats s;
    std::memset(&s, 0, sizeof s);
    mymalloc_stats_get(&s);
    std::memcpy(out.c, s.calls, sizeof out.c);
}

unsigned long long sum_of(const Counts &a, const Counts &b, int first, int last)
{
    unsigned long long d = 0;
    for (int i = first; i <= last; i++)
        d += b.c[i] - a.c[i];
    return d;
}

} // namespace

int main()
{
    plan(13);
    // Small blocks belong in the heap whatever the environment says.
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);

    // What must come out, computed before anything runs: the thread that
    // destroys producer p's parcels is p + 2.
    std::uint64_t want_total[THREADS] = {};
    unsigned long long plain_news = 0;
    for (int p = 0; p < THREADS; p++)
        for (int r = 0; r < ROUNDS; r++) {
            want_total[(p + 2) % THREADS] += reference(p, r).total();
            plain_news += plain_news_at_least(p, r);
        }
    unsigned long long cells = 0;
    for (int p = 0; p < THREADS; p++)
        for (int r = 0; r < ROUNDS; r++)
            cells += cells_of(seed_of(p, r));
    const unsigned long long parcels = (unsigned long long)THREADS * ROUNDS;

    Counts before, after;
    snap(before);
    int started = 0;
    {
        std::vector<std::thread> threads;
        threads.reserve(THREADS);
        for (int t = 0; t < THREADS; t++) {
            threads.emplace_back(worker, t);
            started++;
        }
        for (auto &t : threads)
            t.join();
    }
    snap(after);
    ok(started == THREADS, "%d threads ran %d rounds each, passing parcels on twice", started, ROUNDS);

    for (int t = 0; t < THREADS; t++) {
        const Result &r = results[t];
        bool good = r.received == 2 * ROUNDS && r.first_hop == ROUNDS && r.second_hop == ROUNDS && r.bad == 0 &&
                    r.total == want_total[t];
        ok(good, "thread %d: %d parcels checked (%d passed on, %d destroyed), %d mismatches, total %016llx "
           "(expected %016llx)", t, r.received, r.first_hop, r.second_hop, r.bad, (unsigned long long)r.total,
           (unsigned long long)want_total[t]);
        if (r.bad != 0)
            diag("first mismatch: %s", r.first_bad);
    }
    int bad_older = 0;
    for (const Result &r : results)
        bad_older += r.bad_older;
    ok(bad_older == 0, "shared nodes (make_shared, copies held by producers and later parcels) stayed intact "
       "(%d bad)", bad_older);

    unsigned long long news = sum_of(before, after, MYMALLOC_CALL_NEW, MYMALLOC_CALL_NEW_ARRAY_ALIGNED_NOTHROW);
    unsigned long long deletes = sum_of(before, after, MYMALLOC_CALL_DELETE, MYMALLOC_CALL_DELETE_ARRAY_SIZED_ALIGNED);
    unsigned long long d_new = after.c[MYMALLOC_CALL_NEW] - before.c[MYMALLOC_CALL_NEW];
    ok(d_new >= plain_news, "operator new(size_t) counted %llu calls, at least the %llu known to be made",
       d_new, plain_news);
    ok(deletes >= plain_news, "operator delete (all forms) counted %llu calls, at least %llu", deletes, plain_news);
    ok(news == deletes, "every operator new in the run was matched by an operator delete (%llu news, %llu deletes)",
       news, deletes);

    // Over-aligned allocations come only from the parcels' Cells: exact counts.
    unsigned long long na = after.c[MYMALLOC_CALL_NEW_ALIGNED] - before.c[MYMALLOC_CALL_NEW_ALIGNED];
    unsigned long long nda = after.c[MYMALLOC_CALL_NEW_ARRAY_ALIGNED] - before.c[MYMALLOC_CALL_NEW_ARRAY_ALIGNED];
    unsigned long long da = sum_of(before, after, MYMALLOC_CALL_DELETE_ALIGNED, MYMALLOC_CALL_DELETE_ALIGNED) +
                            sum_of(before, after, MYMALLOC_CALL_DELETE_SIZED_ALIGNED, MYMALLOC_CALL_DELETE_SIZED_ALIGNED);
    unsigned long long dda =
        sum_of(before, after, MYMALLOC_CALL_DELETE_ARRAY_ALIGNED, MYMALLOC_CALL_DELETE_ARRAY_ALIGNED) +
        sum_of(before, after, MYMALLOC_CALL_DELETE_ARRAY_SIZED_ALIGNED, MYMALLOC_CALL_DELETE_ARRAY_SIZED_ALIGNED);
    ok(na == 2 * parcels && da == 2 * parcels,
       "aligned operator new: %llu calls, aligned operator delete: %llu (make_unique<Cell> and vector<Cell> in "
       "%llu parcels: %llu each)", na, da, parcels, 2 * parcels);
    ok(nda == parcels && dda == parcels,
       "aligned operator new[]: %llu calls, aligned operator delete[]: %llu (new Cell[k] in each of %llu parcels)",
       nda, dda, parcels);
    unsigned long long nothrow = 0;
    for (int i : {MYMALLOC_CALL_NEW_NOTHROW, MYMALLOC_CALL_NEW_ARRAY_NOTHROW, MYMALLOC_CALL_NEW_ALIGNED_NOTHROW,
                  MYMALLOC_CALL_NEW_ARRAY_ALIGNED_NOTHROW, MYMALLOC_CALL_DELETE_NOTHROW,
                  MYMALLOC_CALL_DELETE_ARRAY_NOTHROW, MYMALLOC_CALL_DELETE_ALIGNED_NOTHROW,
                  MYMALLOC_CALL_DELETE_ARRAY_ALIGNED_NOTHROW})
        nothrow += after.c[i] - before.c[i];
    ok(nothrow == 0, "no nothrow form was called (%llu calls)", nothrow);
    diag("%llu Cells in arrays; counters: new %llu, new[] %llu, delete %llu, delete(sized) %llu, malloc %llu, "
         "free %llu", cells, d_new, after.c[MYMALLOC_CALL_NEW_ARRAY] - before.c[MYMALLOC_CALL_NEW_ARRAY],
         after.c[MYMALLOC_CALL_DELETE] - before.c[MYMALLOC_CALL_DELETE],
         after.c[MYMALLOC_CALL_DELETE_SIZED] - before.c[MYMALLOC_CALL_DELETE_SIZED],
         after.c[MYMALLOC_CALL_MALLOC] - before.c[MYMALLOC_CALL_MALLOC],
         after.c[MYMALLOC_CALL_FREE] - before.c[MYMALLOC_CALL_FREE]);

    int problems = mymalloc_check();
    ok(problems == 0, "mymalloc_check() finds no problem after the threads (%d)", problems);
    return done();
}
