// cxx_operators.cc - libmymalloc++: each of the 20 replaceable global
// operators is the one that runs, called by name and reached through
// new- and delete-expressions (checked with the call counters of
// mymalloc_stats_get: exactly the expected counter moves, by exactly one);
// alignment of over-aligned types; new of size 0; std::bad_alloc and
// std::bad_array_new_length; the new_handler loop (in forked children under
// a low RLIMIT_AS when memory must really run out); the nothrow forms; the
// size check of sized operator delete (a wrong size aborts with one exact
// line, every right size is accepted); and the family check (a block from
// operator new, operator new[] or malloc freed by another family aborts).
#include "misuse.h"
#include <cerrno>
#include <csignal>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <new>
#include <type_traits>

// Compilers that do not use sized deallocation by default (clang before 19)
// leave the sized forms undeclared; they are still in libmymalloc++.
#if !defined(__cpp_sized_deallocation)
void operator delete(void *p, std::size_t size) noexcept;
void operator delete[](void *p, std::size_t size) noexcept;
void operator delete(void *p, std::size_t size, std::align_val_t alignment) noexcept;
void operator delete[](void *p, std::size_t size, std::align_val_t alignment) noexcept;
#endif

namespace {

// ------------------------------------------------------------ helpers

// Hide a pointer from the optimizer, so no new/delete pair is elided.
template <class T> T *keep(T *p)
{
    __asm__ volatile("" : : "g"(p) : "memory");
    return p;
}

// Enumerator names, for messages (mymalloc_call_name gives the same name to
// all forms of an operator).
const char *const call_label[MYMALLOC_CALL_COUNT] = {
    "MALLOC", "FREE", "CALLOC", "REALLOC", "REALLOCARRAY", "POSIX_MEMALIGN", "ALIGNED_ALLOC", "MEMALIGN",
    "VALLOC", "PVALLOC", "FREE_SIZED", "FREE_ALIGNED_SIZED",
    "NEW", "NEW_ARRAY", "NEW_NOTHROW", "NEW_ARRAY_NOTHROW", "NEW_ALIGNED", "NEW_ARRAY_ALIGNED",
    "NEW_ALIGNED_NOTHROW", "NEW_ARRAY_ALIGNED_NOTHROW",
    "DELETE", "DELETE_ARRAY", "DELETE_NOTHROW", "DELETE_ARRAY_NOTHROW", "DELETE_SIZED", "DELETE_ARRAY_SIZED",
    "DELETE_ALIGNED", "DELETE_ARRAY_ALIGNED", "DELETE_ALIGNED_NOTHROW", "DELETE_ARRAY_ALIGNED_NOTHROW",
    "DELETE_SIZED_ALIGNED", "DELETE_ARRAY_SIZED_ALIGNED",
};
static_assert(sizeof call_label / sizeof call_label[0] == MYMALLOC_CALL_COUNT, "one label per counter");

struct Counts {
    unsigned long long c[MYMALLOC_CALL_COUNT];
};

// A snapshot of the call counters; takes no allocation of its own.
void snap(Counts &out)
{
    struct mymalloc_stats s;
    if (mymalloc_stats_get(&s) != 0)
        std::memset(&s, 0xff, sizeof s);
    std::memcpy(out.c, s.calls, sizeof out.c);
}

// One expected move of a counter: `call` up by one, or (when alt differs)
// `alt` up by one instead, for choices the compiler may make either way.
struct Want {
    mymalloc_call call, alt;
};
Want W(mymalloc_call c) { return Want{c, c}; }
Want W(mymalloc_call c, mymalloc_call alt) { return Want{c, alt}; }

char moved_text[600];

// Did the counters move exactly as wanted, and no other counter at all?
// With `runtime`, malloc and free may move too: the C++ runtime allocates
// exception objects with malloc.  The actual moves are left in moved_text.
bool moved(const Counts &a, const Counts &b, std::initializer_list<Want> wants, bool runtime = false)
{
    bool expected[MYMALLOC_CALL_COUNT] = {};
    bool good = true;
    for (const Want &w : wants) {
        unsigned long long d1 = b.c[w.call] - a.c[w.call], d2 = b.c[w.alt] - a.c[w.alt];
        if (w.alt == w.call)
            good = good && d1 == 1;
        else
            good = good && ((d1 == 1 && d2 == 0) || (d1 == 0 && d2 == 1));
        expected[w.call] = expected[w.alt] = true;
    }
    char *o = moved_text, *end = moved_text + sizeof moved_text;
    *o = '\0';
    for (int i = 0; i < MYMALLOC_CALL_COUNT; i++) {
        unsigned long long d = b.c[i] - a.c[i];
        if (d == 0)
            continue;
        if (o < end - 1)
            o += std::snprintf(o, (std::size_t)(end - o), " %s%+lld", call_label[i], (long long)d);
        bool runtime_call = i == MYMALLOC_CALL_MALLOC || i == MYMALLOC_CALL_FREE;
        if (!expected[i] && !(runtime && runtime_call))
            good = false;
    }
    if (moved_text[0] == '\0')
        std::snprintf(moved_text, sizeof moved_text, " (no counter moved)");
    return good;
}

// ok() for a counter check, with the actual moves on failure.
void ok_moved(bool good, const char *what)
{
    ok(good, "%s", what);
    if (!good)
        diag("counters moved:%s", moved_text);
}

// ------------------------------------------------------------ forked children

// In a child: a note for the parent (with the expected line on its pipe).
__attribute__((format(printf, 1, 2))) void child_note(const char *fmt, ...)
{
    char line[300];
    va_list ap;
    va_start(ap, fmt);
    int n = std::vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0 && write(expect_fd, line, (std::size_t)n < sizeof line ? (std::size_t)n : sizeof line - 1) < 0)
        _exit(90);
}

struct Outcome {
    int status = -1;
    char want[512] = "";   // what the child wrote on its note pipe
    char got[1024] = "";   // its stderr (and stdout)
};

struct Scenario {
    void (*run)(int);
    int arg;
};

void scenario_child(void *arg, int fd)
{
    const Scenario *s = static_cast<const Scenario *>(arg);
    expect_fd = fd;
    s->run(s->arg);
    _exit(0);
}

// Run scenario(arg) in a child with its stdout and stderr on one pipe and
// its notes on another.
Outcome run_child(void (*scenario)(int), int arg = 0)
{
    Outcome o;
    Scenario s = { scenario, arg };
    o.status = fork_piped(OUT_TO_SECOND | ERR_TO_SECOND | NO_CORE_DUMP, scenario_child, &s, o.want, sizeof o.want,
                          o.got, sizeof o.got);
    return o;
}

bool exited_zero(const Outcome &o) { return o.status != -1 && WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0; }

void show_child(const Outcome &o)
{
    if (o.status != -1 && WIFEXITED(o.status))
        diag("child exited with status %d", WEXITSTATUS(o.status));
    else if (o.status != -1 && WIFSIGNALED(o.status))
        diag("child killed by signal %d", WTERMSIG(o.status));
    if (o.want[0] != '\0')
        diag("child's notes: %.*s", (int)std::strcspn(o.want, "\n"), o.want);
    if (o.got[0] != '\0')
        diag("child's output: %.*s", (int)std::strcspn(o.got, "\n"), o.got);
}

// A child that must misbehave and be stopped by mymalloc: SIGABRT, with
// exactly the line it announced on stderr.  Two TAP points.
void aborts(const char *what, void (*scenario)(int), int arg = 0)
{
    Outcome o = run_child(scenario, arg);
    bool signalled = o.status != -1 && WIFSIGNALED(o.status) && WTERMSIG(o.status) == SIGABRT;
    ok(signalled, "%s: the child died by SIGABRT (status 0x%x)", what, (unsigned)o.status);
    check_lines(what, o.want, o.got);
}

// A child that must run through and exit 0 with nothing on stderr.
void runs_clean(const char *what, void (*scenario)(int), int arg = 0)
{
    Outcome o = run_child(scenario, arg);
    bool good = exited_zero(o) && o.got[0] == '\0';
    ok(good, "%s", what);
    if (!good)
        show_child(o);
}

// ------------------------------------------------------------ types for new-expressions

struct Plain {
    unsigned char bytes[24];
};

int destroyed;
struct WithDtor {   // a non-trivial destructor: arrays get a cookie
    unsigned char bytes[24];
    ~WithDtor() { destroyed++; }
};

struct alignas(64) Line {
    unsigned char bytes[100];
};
static_assert(sizeof(Line) == 128 && alignof(Line) == 64, "Line is two cache lines");

struct alignas(64) LineWithDtor {
    unsigned char bytes[100];
    ~LineWithDtor() { destroyed++; }
};

struct alignas(4096) Page {
    unsigned char bytes[100];
};
static_assert(sizeof(Page) == 4096, "Page is one page");

volatile int throw_now = 1;
struct Thrower {
    int x;
    Thrower() : x(1)
    {
        if (throw_now)
            throw 7;
    }
};
struct alignas(64) LineThrower {
    int x;
    LineThrower() : x(1)
    {
        if (throw_now)
            throw 7;
    }
};

struct Base {       // no virtual destructor: deleting a Derived through it is a bug
    int id;
};
struct Derived : Base {
    unsigned char payload[200];
};

// With sized deallocation (C++14 and later in GCC), a delete-expression for a
// complete type passes the size; delete[] passes it only for arrays that
// carry a cookie (element type with a non-trivial destructor).
#if defined(__cpp_sized_deallocation)
const mymalloc_call EXPR_DELETE = MYMALLOC_CALL_DELETE_SIZED;
const mymalloc_call EXPR_DELETE_ARRAY_COOKIE = MYMALLOC_CALL_DELETE_ARRAY_SIZED;
const mymalloc_call EXPR_DELETE_ALIGNED = MYMALLOC_CALL_DELETE_SIZED_ALIGNED;
const mymalloc_call EXPR_DELETE_ARRAY_ALIGNED_COOKIE = MYMALLOC_CALL_DELETE_ARRAY_SIZED_ALIGNED;
#else
const mymalloc_call EXPR_DELETE = MYMALLOC_CALL_DELETE;
const mymalloc_call EXPR_DELETE_ARRAY_COOKIE = MYMALLOC_CALL_DELETE_ARRAY;
const mymalloc_call EXPR_DELETE_ALIGNED = MYMALLOC_CALL_DELETE_ALIGNED;
const mymalloc_call EXPR_DELETE_ARRAY_ALIGNED_COOKIE = MYMALLOC_CALL_DELETE_ARRAY_ALIGNED;
#endif

// ------------------------------------------------------------ 1. each operator, by name

struct Pair {
    const char *new_text, *delete_text;
    void *(*make)(std::size_t n, std::size_t alignment);
    void (*drop)(void *p, std::size_t n, std::size_t alignment);
    mymalloc_call new_call, delete_call;
    bool aligned;
};

using std::align_val_t;
using std::nothrow;

const Pair pairs[] = {
    {"operator new(n)", "operator delete(p)",
     [](std::size_t n, std::size_t) { return ::operator new(n); },
     [](void *p, std::size_t, std::size_t) { ::operator delete(p); },
     MYMALLOC_CALL_NEW, MYMALLOC_CALL_DELETE, false},
    {"operator new[](n)", "operator delete[](p)",
     [](std::size_t n, std::size_t) { return ::operator new[](n); },
     [](void *p, std::size_t, std::size_t) { ::operator delete[](p); },
     MYMALLOC_CALL_NEW_ARRAY, MYMALLOC_CALL_DELETE_ARRAY, false},
    {"operator new(n, nothrow)", "operator delete(p, nothrow)",
     [](std::size_t n, std::size_t) { return ::operator new(n, nothrow); },
     [](void *p, std::size_t, std::size_t) { ::operator delete(p, nothrow); },
     MYMALLOC_CALL_NEW_NOTHROW, MYMALLOC_CALL_DELETE_NOTHROW, false},
    {"operator new[](n, nothrow)", "operator delete[](p, nothrow)",
     [](std::size_t n, std::size_t) { return ::operator new[](n, nothrow); },
     [](void *p, std::size_t, std::size_t) { ::operator delete[](p, nothrow); },
     MYMALLOC_CALL_NEW_ARRAY_NOTHROW, MYMALLOC_CALL_DELETE_ARRAY_NOTHROW, false},
    {"operator new(n, al)", "operator delete(p, al)",
     [](std::size_t n, std::size_t al) { return ::operator new(n, align_val_t(al)); },
     [](void *p, std::size_t, std::size_t al) { ::operator delete(p, align_val_t(al)); },
     MYMALLOC_CALL_NEW_ALIGNED, MYMALLOC_CALL_DELETE_ALIGNED, true},
    {"operator new[](n, al)", "operator delete[](p, al)",
     [](std::size_t n, std::size_t al) { return ::operator new[](n, align_val_t(al)); },
     [](void *p, std::size_t, std::size_t al) { ::operator delete[](p, align_val_t(al)); },
     MYMALLOC_CALL_NEW_ARRAY_ALIGNED, MYMALLOC_CALL_DELETE_ARRAY_ALIGNED, true},
    {"operator new(n, al, nothrow)", "operator delete(p, al, nothrow)",
     [](std::size_t n, std::size_t al) { return ::operator new(n, align_val_t(al), nothrow); },
     [](void *p, std::size_t, std::size_t al) { ::operator delete(p, align_val_t(al), nothrow); },
     MYMALLOC_CALL_NEW_ALIGNED_NOTHROW, MYMALLOC_CALL_DELETE_ALIGNED_NOTHROW, true},
    {"operator new[](n, al, nothrow)", "operator delete[](p, al, nothrow)",
     [](std::size_t n, std::size_t al) { return ::operator new[](n, align_val_t(al), nothrow); },
     [](void *p, std::size_t, std::size_t al) { ::operator delete[](p, align_val_t(al), nothrow); },
     MYMALLOC_CALL_NEW_ARRAY_ALIGNED_NOTHROW, MYMALLOC_CALL_DELETE_ARRAY_ALIGNED_NOTHROW, true},
    {"operator new(n)", "operator delete(p, n)",
     [](std::size_t n, std::size_t) { return ::operator new(n); },
     [](void *p, std::size_t n, std::size_t) { ::operator delete(p, n); },
     MYMALLOC_CALL_NEW, MYMALLOC_CALL_DELETE_SIZED, false},
    {"operator new[](n)", "operator delete[](p, n)",
     [](std::size_t n, std::size_t) { return ::operator new[](n); },
     [](void *p, std::size_t n, std::size_t) { ::operator delete[](p, n); },
     MYMALLOC_CALL_NEW_ARRAY, MYMALLOC_CALL_DELETE_ARRAY_SIZED, false},
    {"operator new(n, al)", "operator delete(p, n, al)",
     [](std::size_t n, std::size_t al) { return ::operator new(n, align_val_t(al)); },
     [](void *p, std::size_t n, std::size_t al) { ::operator delete(p, n, align_val_t(al)); },
     MYMALLOC_CALL_NEW_ALIGNED, MYMALLOC_CALL_DELETE_SIZED_ALIGNED, true},
    {"operator new[](n, al)", "operator delete[](p, n, al)",
     [](std::size_t n, std::size_t al) { return ::operator new[](n, align_val_t(al)); },
     [](void *p, std::size_t n, std::size_t al) { ::operator delete[](p, n, align_val_t(al)); },
     MYMALLOC_CALL_NEW_ARRAY_ALIGNED, MYMALLOC_CALL_DELETE_ARRAY_SIZED_ALIGNED, true},
};

// 2 points per pair and size: 48.
void test_each_operator_by_name()
{
    char what[200];
    for (std::size_t n : {(std::size_t)100, (std::size_t)300000}) {
        for (const Pair &pr : pairs) {
            std::size_t al = pr.aligned ? (n < 1000 ? 64 : 4096) : 0;
            Counts a, b;
            snap(a);
            void *p = keep(pr.make(n, al));
            snap(b);
            bool good = moved(a, b, {W(pr.new_call)});
            bool usable = p != nullptr && aligned_to(p, al ? al : 16) && malloc_usable_size(p) >= n;
            if (p != nullptr)
                std::memset(p, 0x5a, n);
            char al_text[32] = "";
            if (al != 0)
                std::snprintf(al_text, sizeof al_text, ", al=%zu", al);
            std::snprintf(what, sizeof what, "%s, n=%zu%s: only %s moved, by 1; pointer usable, %zu-byte aligned",
                          pr.new_text, n, al_text, call_label[pr.new_call], al ? al : 16);
            ok_moved(good && usable, what);

            snap(a);
            if (p != nullptr)
                pr.drop(keep(p), n, al);
            snap(b);
            good = moved(a, b, {W(pr.delete_call)});
            std::snprintf(what, sizeof what, "%s after %s, n=%zu: only %s moved, by 1", pr.delete_text,
                          pr.new_text, n, call_label[pr.delete_call]);
            ok_moved(good, what);
        }
    }
}

// ------------------------------------------------------------ 2. through new- and delete-expressions

template <class T> void expr_single(const char *type, bool with_nothrow, mymalloc_call want_new,
                                    mymalloc_call want_delete)
{
    char what[200];
    Counts a, b;
    snap(a);
    T *p = with_nothrow ? keep(new (nothrow) T) : keep(new T);
    snap(b);
    bool good = moved(a, b, {W(want_new)});
    bool fine = p != nullptr && aligned_to(p, alignof(T) > 16 ? alignof(T) : 16);
    std::snprintf(what, sizeof what, "new %s%s (alignof %zu): only %s moved, by 1; pointer %zu-byte aligned",
                  with_nothrow ? "(nothrow) " : "", type, alignof(T), call_label[want_new], alignof(T) > 16 ? alignof(T) : 16);
    ok_moved(good && fine, what);
    if (p == nullptr)
        return;
    std::memset(static_cast<void *>(p), 0x11, sizeof(T));
    snap(a);
    delete keep(p);
    snap(b);
    std::snprintf(what, sizeof what, "delete p, p a %s *: only %s moved, by 1", type, call_label[want_delete]);
    ok_moved(moved(a, b, {W(want_delete)}), what);
}

template <class T> void expr_array(const char *type, std::size_t count, bool with_nothrow, mymalloc_call want_new,
                                   mymalloc_call want_delete)
{
    char what[200];
    Counts a, b;
    volatile std::size_t n = count;
    snap(a);
    T *p = with_nothrow ? keep(new (nothrow) T[n]) : keep(new T[n]);
    snap(b);
    bool good = moved(a, b, {W(want_new)});
    // Without a cookie the array starts the block (16-byte aligned at least);
    // a cookie for a non-over-aligned type puts it 8 bytes in.
    std::size_t want_align = alignof(T) > 16 ? alignof(T) : std::is_trivially_destructible<T>::value ? 16 : 8;
    bool fine = p != nullptr && aligned_to(p, want_align);
    std::snprintf(what, sizeof what, "new %s%s[%zu] (alignof %zu, %zu bytes): only %s moved, by 1; pointer %zu-byte "
                  "aligned", with_nothrow ? "(nothrow) " : "", type, count, alignof(T), sizeof(T) * count,
                  call_label[want_new], want_align);
    ok_moved(good && fine, what);
    if (p == nullptr)
        return;
    std::memset(static_cast<void *>(p), 0x22, sizeof(T) * count);
    snap(a);
    delete[] keep(p);
    snap(b);
    std::snprintf(what, sizeof what, "delete[] p, p a %s * to %zu elements: only %s moved, by 1", type, count,
                  call_label[want_delete]);
    ok_moved(moved(a, b, {W(want_delete)}), what);
}

// A constructor that throws: the new-expression frees the memory with the
// operator delete matching its operator new.
template <class T> void expr_ctor_throws(const char *text, T *(*make)(), Want want_new, Want want_delete)
{
    char what[200];
    Counts a, b;
    bool caught = false;
    snap(a);
    try {
        keep(make());
    } catch (int) {
        caught = true;
    }
    snap(b);
    std::snprintf(what, sizeof what, "%s with a throwing constructor: %s then %s%s%s, each by 1", text,
                  call_label[want_new.call], call_label[want_delete.call], want_delete.alt != want_delete.call ? " or " : "",
                  want_delete.alt != want_delete.call ? call_label[want_delete.alt] : "");
    ok_moved(caught && moved(a, b, {want_new, want_delete}, true), what);
}

// 2 points each for 14 cases, 1 each for 8: 36.
void test_expressions()
{
    expr_single<Plain>("Plain", false, MYMALLOC_CALL_NEW, EXPR_DELETE);
    expr_array<Plain>("Plain", 5, false, MYMALLOC_CALL_NEW_ARRAY, MYMALLOC_CALL_DELETE_ARRAY);
    int before = destroyed;
    expr_array<WithDtor>("WithDtor", 5, false, MYMALLOC_CALL_NEW_ARRAY, EXPR_DELETE_ARRAY_COOKIE);
    ok(destroyed - before == 5, "delete[] of a WithDtor[5] ran 5 destructors (%d)", destroyed - before);
    expr_single<Plain>("Plain", true, MYMALLOC_CALL_NEW_NOTHROW, EXPR_DELETE);
    expr_array<Plain>("Plain", 5, true, MYMALLOC_CALL_NEW_ARRAY_NOTHROW, MYMALLOC_CALL_DELETE_ARRAY);
    expr_single<Line>("Line", false, MYMALLOC_CALL_NEW_ALIGNED, EXPR_DELETE_ALIGNED);
    expr_array<Line>("Line", 3, false, MYMALLOC_CALL_NEW_ARRAY_ALIGNED, MYMALLOC_CALL_DELETE_ARRAY_ALIGNED);
    before = destroyed;
    expr_array<LineWithDtor>("LineWithDtor", 3, false, MYMALLOC_CALL_NEW_ARRAY_ALIGNED,
                             EXPR_DELETE_ARRAY_ALIGNED_COOKIE);
    ok(destroyed - before == 3, "delete[] of a LineWithDtor[3] ran 3 destructors (%d)", destroyed - before);
    expr_single<Line>("Line", true, MYMALLOC_CALL_NEW_ALIGNED_NOTHROW, EXPR_DELETE_ALIGNED);
    expr_array<Line>("Line", 3, true, MYMALLOC_CALL_NEW_ARRAY_ALIGNED_NOTHROW,
                     MYMALLOC_CALL_DELETE_ARRAY_ALIGNED);
    expr_single<Page>("Page", false, MYMALLOC_CALL_NEW_ALIGNED, EXPR_DELETE_ALIGNED);
    expr_array<Page>("Page", 2, false, MYMALLOC_CALL_NEW_ARRAY_ALIGNED, MYMALLOC_CALL_DELETE_ARRAY_ALIGNED);
    expr_array<Page>("Page", 40, false, MYMALLOC_CALL_NEW_ARRAY_ALIGNED,
                     MYMALLOC_CALL_DELETE_ARRAY_ALIGNED);
    expr_array<char>("char", 300000, false, MYMALLOC_CALL_NEW_ARRAY, MYMALLOC_CALL_DELETE_ARRAY);

    // The nothrow operator delete forms are only ever called by a nothrow
    // new-expression whose constructor throws.
    expr_ctor_throws<Thrower>("new (nothrow) Thrower", [] { return new (nothrow) Thrower; },
                              W(MYMALLOC_CALL_NEW_NOTHROW), W(MYMALLOC_CALL_DELETE_NOTHROW));
    expr_ctor_throws<Thrower>("new (nothrow) Thrower[2]", [] { return new (nothrow) Thrower[2]; },
                              W(MYMALLOC_CALL_NEW_ARRAY_NOTHROW), W(MYMALLOC_CALL_DELETE_ARRAY_NOTHROW));
    expr_ctor_throws<LineThrower>("new (nothrow) alignas(64) LineThrower",
                                  [] { return new (nothrow) LineThrower; },
                                  W(MYMALLOC_CALL_NEW_ALIGNED_NOTHROW), W(MYMALLOC_CALL_DELETE_ALIGNED_NOTHROW));
    expr_ctor_throws<LineThrower>("new (nothrow) alignas(64) LineThrower[2]",
                                  [] { return new (nothrow) LineThrower[2]; },
                                  W(MYMALLOC_CALL_NEW_ARRAY_ALIGNED_NOTHROW),
                                  W(MYMALLOC_CALL_DELETE_ARRAY_ALIGNED_NOTHROW));
    // Plain forms: whether the size is passed is the compiler's choice.
    expr_ctor_throws<Thrower>("new Thrower", [] { return new Thrower; }, W(MYMALLOC_CALL_NEW),
                              W(MYMALLOC_CALL_DELETE, MYMALLOC_CALL_DELETE_SIZED));
    expr_ctor_throws<LineThrower>("new alignas(64) LineThrower", [] { return new LineThrower; },
                                  W(MYMALLOC_CALL_NEW_ALIGNED),
                                  W(MYMALLOC_CALL_DELETE_ALIGNED, MYMALLOC_CALL_DELETE_SIZED_ALIGNED));
}

// ------------------------------------------------------------ 3. alignment of over-aligned types

// 4 points.
void test_alignment()
{
    enum { ROUNDS = 300 };
    static Line *lines[ROUNDS];
    static char *fillers[ROUNDS];
    static Page *pages[40];
    bool all = true;
    for (int i = 0; i < ROUNDS; i++) {
        fillers[i] = keep(new char[(std::size_t)(i * 37 % 500)]);    // varied heap state between them
        lines[i] = keep(new Line);
        all = all && aligned_to(lines[i], 64);
        std::memset(lines[i]->bytes, i & 0xff, sizeof lines[i]->bytes);
        if (i % 3 == 0) {
            delete[] fillers[i];
            fillers[i] = nullptr;
        }
    }
    bool intact = true;
    for (int i = 0; i < ROUNDS; i++) {
        for (unsigned char c : lines[i]->bytes)
            intact = intact && c == (i & 0xff);
        delete lines[i];
    }
    ok(all && intact, "%d alignas(64) objects from new (between varied blocks) are 64-byte aligned and intact",
       ROUNDS);

    all = true;
    for (int n = 1; n <= 60; n++) {
        volatile int count = n;
        Line *arr = keep(new Line[count]);
        LineWithDtor *arr2 = keep(new LineWithDtor[count]);
        all = all && aligned_to(arr, 64) && aligned_to(arr2, 64);
        std::memset(static_cast<void *>(arr), 1, sizeof(Line) * (std::size_t)n);
        std::memset(static_cast<void *>(arr2), 2, sizeof(LineWithDtor) * (std::size_t)n);
        delete[] arr;
        delete[] arr2;
    }
    ok(all, "arrays new Line[1..60] and new LineWithDtor[1..60] (a cookie) are 64-byte aligned");

    all = true;
    for (int i = 0; i < 40; i++) {
        char *filler = keep(new char[(std::size_t)(i * 101 % 700 + 1)]);
        pages[i] = keep(new Page);
        all = all && aligned_to(pages[i], 4096);
        std::memset(pages[i]->bytes, i, sizeof pages[i]->bytes);
        if (i % 2 == 0)
            delete[] filler;
    }
    intact = true;
    for (int i = 0; i < 40; i++) {
        for (unsigned char c : pages[i]->bytes)
            intact = intact && c == i;
        delete pages[i];
    }
    ok(all && intact, "40 alignas(4096) objects from new are page aligned and intact");

    all = true;
    for (int n : {1, 2, 3, 7, 20, 31, 32, 33, 40, 100}) {     // 32 pages and more: a mapping of its own
        volatile int count = n;
        Page *arr = keep(new Page[count]);
        all = all && aligned_to(arr, 4096);
        std::memset(static_cast<void *>(arr), 3, sizeof(Page) * (std::size_t)n);
        delete[] arr;
    }
    ok(all, "arrays new Page[n] for n = 1 .. 100 (heap and mapped) are page aligned");
}

// 4 points: every alignment from 32 to 2 MiB by each aligned form.
void test_explicit_alignments()
{
    for (int form = 0; form < 4; form++) {
        static const char *const names[] = {"operator new(n, al)", "operator new[](n, al)",
                                            "operator new(n, al, nothrow)", "operator new[](n, al, nothrow)"};
        int tried = 0, bad = 0;
        for (std::size_t al = 32; al <= ((std::size_t)1 << 21); al *= 2) {
            for (std::size_t n : {0, 1, 17, 100, 4000, 70000, 200000}) {
                void *p = nullptr;
                align_val_t a = align_val_t(al);
                switch (form) {
                case 0: p = ::operator new(n, a); break;
                case 1: p = ::operator new[](n, a); break;
                case 2: p = ::operator new(n, a, nothrow); break;
                default: p = ::operator new[](n, a, nothrow); break;
                }
                tried++;
                if (p == nullptr || !aligned_to(keep(p), al)) {
                    if (bad++ == 0)
                        diag("%s: n=%zu al=%zu gave %p", names[form], n, al, p);
                }
                if (p == nullptr)
                    continue;
                std::memset(p, 0x77, n);
                switch (form) {
                case 0: ::operator delete(p, n, a); break;
                case 1: ::operator delete[](p, n, a); break;
                case 2: ::operator delete(p, a, nothrow); break;
                default: ::operator delete[](p, a, nothrow); break;
                }
            }
        }
        ok(bad == 0, "%s: %d requests, alignments 32 .. 2 MiB, sizes 0 .. 200000: all aligned", names[form], tried);
    }
}

// ------------------------------------------------------------ 4. size 0

// 3 points.
void test_size_zero()
{
    enum { N = 64 };
    void *p[4 * N];
    int k = 0;
    for (int i = 0; i < N; i++) {
        p[k++] = keep(::operator new(0));
        p[k++] = keep(::operator new[](0));
        p[k++] = keep(::operator new(0, nothrow));
        p[k++] = keep(::operator new(0, align_val_t(64)));
    }
    bool all = true;
    for (int i = 0; i < k; i++)
        all = all && p[i] != nullptr;
    int same = 0;
    for (int i = 0; i < k && all; i++)
        for (int j = i + 1; j < k; j++)
            same += p[i] == p[j];
    bool al = true;
    for (int i = 3; i < k; i += 4)
        al = al && aligned_to(p[i], 64);
    ok(all && same == 0 && al, "%d news of size 0 (plain, array, nothrow, aligned): all non-null and distinct, "
       "aligned ones aligned (%d equal pairs)", k, same);
    for (int i = 0; i < k; i += 4) {
        ::operator delete(p[i], (std::size_t)0);
        ::operator delete[](p[i + 1]);
        ::operator delete(p[i + 2], nothrow);
        ::operator delete(p[i + 3], align_val_t(64));
    }

    volatile std::size_t zero = 0;
    char *c1 = keep(new char[zero]), *c2 = keep(new char[zero]);
    Line *l1 = keep(new Line[zero]), *l2 = keep(new Line[zero]);
    ok(c1 != nullptr && c2 != nullptr && c1 != c2, "new char[0] twice: two distinct pointers");
    ok(l1 != nullptr && l2 != nullptr && l1 != l2 && aligned_to(l1, 64) && aligned_to(l2, 64),
       "new alignas(64) Line[0] twice: two distinct aligned pointers");
    delete[] c1;
    delete[] c2;
    delete[] l1;
    delete[] l2;
}

// ------------------------------------------------------------ 5. failures: bad_alloc, nothrow

volatile std::size_t huge = SIZE_MAX / 2;      // PTRDIFF_MAX: never satisfiable
volatile std::size_t too_many = SIZE_MAX / 8;  // times sizeof(Plain) overflows

enum Caught { NOTHING, BAD_ALLOC, BAD_ARRAY_NEW_LENGTH, OTHER };
const char *const caught_text[] = {"nothing", "std::bad_alloc", "std::bad_array_new_length", "something else"};

template <class F> Caught what_throws(F f)
{
    try {
        f();
    } catch (const std::bad_array_new_length &) {
        return BAD_ARRAY_NEW_LENGTH;
    } catch (const std::bad_alloc &) {
        return BAD_ALLOC;
    } catch (...) {
        return OTHER;
    }
    return NOTHING;
}

template <class F> void throws_bad_alloc(const char *text, F f, mymalloc_call call)
{
    char what[200];
    Counts a, b;
    snap(a);
    Caught c = what_throws(f);
    snap(b);
    std::snprintf(what, sizeof what, "%s throws std::bad_alloc (got %s); %s moved by 1", text, caught_text[c],
                  call_label[call]);
    ok_moved(c == BAD_ALLOC && moved(a, b, {W(call)}, true), what);
}

template <class F> void returns_null(const char *text, F f, mymalloc_call call)
{
    char what[200];
    Counts a, b;
    void *p = reinterpret_cast<void *>(1);
    snap(a);
    Caught c = what_throws([&] { p = f(); });
    snap(b);
    std::snprintf(what, sizeof what, "%s returns nullptr (got %p, threw %s); %s moved by 1", text, p,
                  caught_text[c], call_label[call]);
    ok_moved(p == nullptr && c == NOTHING && moved(a, b, {W(call)}, true), what);
}

// 12 points.
void test_failures()
{
    throws_bad_alloc("operator new(SIZE_MAX/2)", [] { keep(::operator new(huge)); }, MYMALLOC_CALL_NEW);
    throws_bad_alloc("operator new[](SIZE_MAX)", [] { keep(::operator new[](huge * 2 + 1)); },
                     MYMALLOC_CALL_NEW_ARRAY);
    throws_bad_alloc("operator new(SIZE_MAX/2, al=64)", [] { keep(::operator new(huge, align_val_t(64))); },
                     MYMALLOC_CALL_NEW_ALIGNED);
    throws_bad_alloc("operator new[](SIZE_MAX/2, al=4096)",
                     [] { keep(::operator new[](huge, align_val_t(4096))); }, MYMALLOC_CALL_NEW_ARRAY_ALIGNED);
    throws_bad_alloc("new Plain[SIZE_MAX/2/24] (no overflow, too big)", [] { keep(new Plain[huge / sizeof(Plain)]); },
                     MYMALLOC_CALL_NEW_ARRAY);

    returns_null("operator new(SIZE_MAX/2, nothrow)", [] { return keep(::operator new(huge, nothrow)); },
                 MYMALLOC_CALL_NEW_NOTHROW);
    returns_null("operator new[](SIZE_MAX/2, nothrow)", [] { return keep(::operator new[](huge, nothrow)); },
                 MYMALLOC_CALL_NEW_ARRAY_NOTHROW);
    returns_null("operator new(SIZE_MAX/2, al=64, nothrow)",
                 [] { return keep(::operator new(huge, align_val_t(64), nothrow)); },
                 MYMALLOC_CALL_NEW_ALIGNED_NOTHROW);
    returns_null("operator new[](SIZE_MAX/2, al=4096, nothrow)",
                 [] { return keep(::operator new[](huge, align_val_t(4096), nothrow)); },
                 MYMALLOC_CALL_NEW_ARRAY_ALIGNED_NOTHROW);
    returns_null("new (nothrow) Plain[SIZE_MAX/2/24]",
                 [] { return static_cast<void *>(keep(new (nothrow) Plain[huge / sizeof(Plain)])); },
                 MYMALLOC_CALL_NEW_ARRAY_NOTHROW);

    // A count whose size overflows: GCC throws std::bad_array_new_length
    // without calling operator new[]; clang passes SIZE_MAX to it instead,
    // which must then throw std::bad_alloc.
    Counts a, b;
    snap(a);
    Caught c = what_throws([] { keep(new Plain[too_many]); });
    snap(b);
    bool good = moved(a, b, {}, true) ? c == BAD_ARRAY_NEW_LENGTH
                                      : c == BAD_ALLOC && moved(a, b, {W(MYMALLOC_CALL_NEW_ARRAY)}, true);
    ok(good, "new Plain[SIZE_MAX/8] (size overflows) throws std::bad_array_new_length without calling an operator "
       "new, or std::bad_alloc from operator new[] (threw %s; counters:%s)", caught_text[c], moved_text);
    snap(a);
    c = what_throws([] { keep(new Line[too_many]); });
    snap(b);
    good = moved(a, b, {}, true) ? c == BAD_ARRAY_NEW_LENGTH
                                 : c == BAD_ALLOC && moved(a, b, {W(MYMALLOC_CALL_NEW_ARRAY_ALIGNED)}, true);
    ok(good, "new alignas(64) Line[SIZE_MAX/8] throws std::bad_array_new_length without calling an operator new, "
       "or std::bad_alloc from operator new[] (threw %s; counters:%s)", caught_text[c], moved_text);
}

// ------------------------------------------------------------ 6. the new_handler loop

int handler_calls;
int handler_limit;      // calls after which the handler gives up
void *reserve;          // what a handler may free

void handler_gives_up_after_limit()
{
    if (++handler_calls >= handler_limit)
        std::set_new_handler(nullptr);
}

void handler_throws()
{
    ++handler_calls;
    throw std::bad_alloc();
}

// Frees the reserve the first time; gives up if called again with nothing left.
void handler_frees_reserve()
{
    ++handler_calls;
    if (reserve != nullptr) {
        ::operator delete(reserve);
        reserve = nullptr;
    } else {
        std::set_new_handler(nullptr);
    }
}

// 11 points.
void test_new_handler_without_memory_pressure()
{
    Counts a, b;
    handler_calls = 0;
    handler_limit = 1;
    std::set_new_handler(handler_gives_up_after_limit);
    snap(a);
    Caught c = what_throws([] { keep(::operator new(huge)); });
    snap(b);
    ok(c == BAD_ALLOC && handler_calls == 1 && std::get_new_handler() == nullptr,
       "operator new(SIZE_MAX/2) with a handler that removes itself: handler ran once (%d), then %s",
       handler_calls, caught_text[c]);
    ok(b.c[MYMALLOC_CALL_NEW] - a.c[MYMALLOC_CALL_NEW] >= 1, "... and NEW moved (by %llu: one per attempt)",
       b.c[MYMALLOC_CALL_NEW] - a.c[MYMALLOC_CALL_NEW]);

    handler_calls = 0;
    handler_limit = 3;
    std::set_new_handler(handler_gives_up_after_limit);
    c = what_throws([] { keep(::operator new[](huge, align_val_t(256))); });
    ok(c == BAD_ALLOC && handler_calls == 3,
       "operator new[](SIZE_MAX/2, al=256): the handler is called until it removes itself (3 calls: %d), then %s",
       handler_calls, caught_text[c]);

    handler_calls = 0;
    std::set_new_handler(handler_throws);
    c = what_throws([] { keep(::operator new(huge)); });
    ok(c == BAD_ALLOC && handler_calls == 1, "a handler that throws std::bad_alloc: operator new lets it through "
       "(handler ran %d times, caught %s)", handler_calls, caught_text[c]);
    handler_calls = 0;
    void *p = reinterpret_cast<void *>(1);
    c = what_throws([&] { p = keep(::operator new(huge, align_val_t(64), nothrow)); });
    ok(p == nullptr && c == NOTHING && handler_calls == 1,
       "a handler that throws std::bad_alloc: operator new(n, al, nothrow) returns nullptr (handler ran %d times)",
       handler_calls);
    std::set_new_handler(nullptr);

    // The nothrow forms run the handler loop too.
    for (int form = 0; form < 4; form++) {
        static const char *const names[] = {"operator new(n, nothrow)", "operator new[](n, nothrow)",
                                            "operator new(n, al, nothrow)", "operator new[](n, al, nothrow)"};
        handler_calls = 0;
        handler_limit = 2;
        std::set_new_handler(handler_gives_up_after_limit);
        p = reinterpret_cast<void *>(1);
        c = what_throws([&] {
            switch (form) {
            case 0: p = keep(::operator new(huge, nothrow)); break;
            case 1: p = keep(::operator new[](huge, nothrow)); break;
            case 2: p = keep(::operator new(huge, align_val_t(128), nothrow)); break;
            default: p = keep(::operator new[](huge, align_val_t(128), nothrow)); break;
            }
        });
        ok(p == nullptr && c == NOTHING && handler_calls == 2,
           "%s on SIZE_MAX/2 calls the handler until it gives up (2 calls: %d), then returns nullptr", names[form],
           handler_calls);
    }
    std::set_new_handler(nullptr);

    handler_calls = 0;
    reserve = keep(::operator new(1000));
    std::set_new_handler(handler_frees_reserve);
    c = what_throws([] { keep(::operator new(huge)); });
    ok(c == BAD_ALLOC && handler_calls == 2 && reserve == nullptr,
       "a handler that frees a reserve but cannot help: called twice (%d), then std::bad_alloc", handler_calls);
    ok(std::get_new_handler() == nullptr, "no new_handler is left installed");
}

// In a child: limit the address space to what the process has now plus
// `extra` bytes.  Returns false if that could not be done.
bool limit_address_space(std::size_t extra)
{
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    const char *v = std::strstr(buf, "VmSize:");
    if (v == nullptr)
        return false;
    unsigned long kib = std::strtoul(v + 7, nullptr, 10);
    if (kib == 0)
        return false;
    struct rlimit lim;
    lim.rlim_cur = lim.rlim_max = (rlim_t)kib * 1024 + extra;
    return setrlimit(RLIMIT_AS, &lim) == 0;
}

const std::size_t MiB = (std::size_t)1 << 20;

// In a child under RLIMIT_AS: a 64 MiB reserve, then a 64 MiB request that
// cannot fit until the handler frees the reserve.  Form 0..7 picks the operator.
void child_handler_frees_reserve(int form)
{
    if (!limit_address_space(96 * MiB))
        _exit(10);
    reserve = ::operator new(64 * MiB, nothrow);
    if (reserve == nullptr)
        _exit(11);
    std::memset(reserve, 1, 64 * MiB);
    void *probe = ::operator new(64 * MiB, nothrow);   // must fail: the setup is right
    if (probe != nullptr)
        _exit(12);
    handler_calls = 0;
    std::set_new_handler(handler_frees_reserve);
    void *p = nullptr;
    std::size_t n = 64 * MiB;
    align_val_t al = align_val_t(4096);
    try {
        switch (form) {
        case 0: p = ::operator new(n); break;
        case 1: p = ::operator new[](n); break;
        case 2: p = ::operator new(n, nothrow); break;
        case 3: p = ::operator new[](n, nothrow); break;
        case 4: p = ::operator new(n, al); break;
        case 5: p = ::operator new[](n, al); break;
        case 6: p = ::operator new(n, al, nothrow); break;
        default: p = ::operator new[](n, al, nothrow); break;
        }
    } catch (const std::bad_alloc &) {
        child_note("bad_alloc after %d handler calls", handler_calls);
        _exit(13);
    }
    keep(p);
    child_note("handler ran %d times; got %p", handler_calls, p);
    if (p == nullptr)
        _exit(14);
    if (form >= 4 && !aligned_to(p, 4096))
        _exit(15);
    std::memset(p, 2, n);
    if (handler_calls < 1 || reserve != nullptr)
        _exit(16);
    _exit(0);
}

// In a child under RLIMIT_AS: fill the memory with 4000-byte array blocks
// (the form and size asked for at the end, so no room for it is left) until
// the nothrow form says no, then ask once more with a handler that frees some.
void *filled;            // the blocks, chained through their first word
void handler_frees_some_filled()
{
    ++handler_calls;
    for (int i = 0; i < 8 && filled != nullptr; i++) {
        void *next = *static_cast<void **>(filled);
        ::operator delete[](filled, (std::size_t)4000);
        filled = next;
    }
}

void child_fill_then_handler(int)
{
    if (!limit_address_space(24 * MiB))
        _exit(10);
    long count = 0;
    for (;;) {
        void *p = ::operator new[](4000, nothrow);
        if (p == nullptr)
            break;
        *static_cast<void **>(p) = filled;
        filled = p;
        if (++count > 1000000)
            _exit(11);          // the limit does not work
    }
    if (count < 100)
        _exit(12);
    handler_calls = 0;
    std::set_new_handler(handler_frees_some_filled);
    char *q = nullptr;
    try {
        q = keep(new char[4000]);
    } catch (const std::bad_alloc &) {
        child_note("filled %ld blocks; bad_alloc after %d handler calls", count, handler_calls);
        _exit(13);
    }
    child_note("filled %ld blocks; handler ran %d times", count, handler_calls);
    std::memset(q, 3, 4000);
    if (handler_calls < 1)
        _exit(14);
    delete[] q;
    while (filled != nullptr) {
        void *next = *static_cast<void **>(filled);
        ::operator delete[](filled, (std::size_t)4000);
        filled = next;
    }
    if (mymalloc_check() != 0)
        _exit(15);
    _exit(0);
}

// 9 points.
void test_new_handler_under_memory_pressure()
{
    static const char *const names[] = {
        "operator new(n)", "operator new[](n)", "operator new(n, nothrow)", "operator new[](n, nothrow)",
        "operator new(n, al)", "operator new[](n, al)", "operator new(n, al, nothrow)",
        "operator new[](n, al, nothrow)",
    };
    for (int form = 0; form < 8; form++) {
        Outcome o = run_child(child_handler_frees_reserve, form);
        bool good = exited_zero(o);
        ok(good, "RLIMIT_AS child: %s of 64 MiB fails, the handler frees a 64 MiB reserve, the retry succeeds (%.*s)",
           names[form], (int)std::strcspn(o.want, "\n"), o.want);
        if (!good)
            show_child(o);
    }
    Outcome o = run_child(child_fill_then_handler);
    bool good = exited_zero(o);
    ok(good, "RLIMIT_AS child: memory filled until nothrow new returns nullptr; new char[4000] then succeeds "
       "through a handler that frees blocks (%.*s)", (int)std::strcspn(o.want, "\n"), o.want);
    if (!good)
        show_child(o);
}

// ------------------------------------------------------------ 7. sized delete

// A heap block of exactly 64 bytes from operator new(50) (or exit).
void *block_of_64(void *(*make)(std::size_t))
{
    for (int i = 0; i < 200; i++) {
        void *p = make(50);
        if (block_bytes(p) == 64)
            return p;           // the others are leaked on purpose: the child ends soon
    }
    expect("(setup failed: no 64-byte block)");
    _exit(3);
}

void *plain_new(std::size_t n) { return ::operator new(n); }
void *array_new(std::size_t n) { return ::operator new[](n); }

void wrong_size_too_small(int)
{
    void *p = block_of_64(plain_new);
    expect("mymalloc: operator delete(): wrong size for 0x%lx (24 bytes given, 56 usable)", addr(p));
    ::operator delete(p, (std::size_t)24);
}

void wrong_size_too_big(int)
{
    void *p = block_of_64(plain_new);
    expect("mymalloc: operator delete(): wrong size for 0x%lx (57 bytes given, 56 usable)", addr(p));
    ::operator delete(p, (std::size_t)57);
}

void wrong_size_array(int)
{
    void *p = block_of_64(array_new);
    expect("mymalloc: operator delete[](): wrong size for 0x%lx (24 bytes given, 56 usable)", addr(p));
    ::operator delete[](p, (std::size_t)24);
}

void wrong_size_aligned(int)
{
    void *p = ::operator new(100, align_val_t(64));
    expect("mymalloc: operator delete(): wrong size for 0x%lx (20 bytes given, %zu usable)", addr(p),
           block_bytes(p) - 8);
    ::operator delete(p, (std::size_t)20, align_val_t(64));
}

void wrong_size_aligned_array(int)
{
    void *p = ::operator new[](100, align_val_t(256));
    expect("mymalloc: operator delete[](): wrong size for 0x%lx (200 bytes given, %zu usable)", addr(p),
           block_bytes(p) - 8);
    ::operator delete[](p, (std::size_t)200, align_val_t(256));
}

void wrong_size_mapped(int)
{
    void *p = ::operator new(MiB);
    expect("mymalloc: operator delete(): wrong size for 0x%lx (524288 bytes given, %zu usable)",
           addr(p), block_bytes(p) - 8);
    ::operator delete(p, MiB / 2);
}

[[maybe_unused]] void wrong_size_through_base(int)
{
    Derived *d = new Derived;                        // 204 bytes: a block of 224
    Base *b = d;
    expect("mymalloc: operator delete(): wrong size for 0x%lx (%zu bytes given, %zu usable)", addr(b),
           sizeof(Base), block_bytes(d) - 8);
    if (block_bytes(d) != 224)
        _exit(3);
    delete keep(b);                                  // sized delete with sizeof(Base)
}

// Freeing with the wrong family: each block remembers whether malloc,
// operator new or operator new[] made it.
// (The compiler sees some of these mistakes too: it is told not to warn.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void *malloc_new(std::size_t n) { return std::malloc(n); }

// A 64-byte block from make (which calls itself `maker` in reports) given
// to operator delete.
void delete_from(void *(*make)(std::size_t), const char *maker)
{
    void *p = block_of_64(make);
    expect("mymalloc: operator delete(): wrong deallocator for 0x%lx (allocated by %s, block of 64 bytes)", addr(p),
           maker);
    ::operator delete(p);
}

void new_array_then_delete(int) { delete_from(array_new, "operator new[]"); }

void new_then_delete_array(int)
{
    void *p = block_of_64(plain_new);
    expect("mymalloc: operator delete[](): wrong deallocator for 0x%lx (allocated by operator new, block of 64 "
           "bytes)", addr(p));
    ::operator delete[](p);
}

void new_then_free(int)
{
    void *p = block_of_64(plain_new);
    expect("mymalloc: free(): wrong deallocator for 0x%lx (allocated by operator new, block of 64 bytes)", addr(p));
    std::free(keep(p));
}

void malloc_then_delete(int) { delete_from(malloc_new, "malloc"); }

void array_expression_then_delete(int)
{
    Plain *p = new Plain[5];                         // 120 bytes: a block of 128
    expect("mymalloc: operator delete(): wrong deallocator for 0x%lx (allocated by operator new[], block of %zu "
           "bytes)", addr(p), block_bytes(p));
    delete keep(p);                                  // should have been delete[]
}

void aligned_new_then_aligned_delete_array(int)
{
    void *p = ::operator new(100, align_val_t(256));
    expect("mymalloc: operator delete[](): wrong deallocator for 0x%lx (allocated by operator new, block of %zu "
           "bytes)", addr(p), block_bytes(p));
    ::operator delete[](p, align_val_t(256));
}

void mapped_new_array_then_delete(int)
{
    void *p = ::operator new[](MiB);
    expect("mymalloc: operator delete(): wrong deallocator for 0x%lx (allocated by operator new[], block of %zu "
           "bytes)", addr(p), block_bytes(p));
    ::operator delete(p);
}

void double_delete(int)
{
    // Three 48-byte blocks in a row (either way round: a thread's cache
    // hands out a batch from the top down): freeing the middle one merges it
    // with nothing, whatever the rest of the heap looks like.
    for (int i = 0; i < 1000; i++) {
        char *before = static_cast<char *>(::operator new(40));
        char *p = static_cast<char *>(::operator new(40));
        char *after = static_cast<char *>(::operator new(40));
        bool up = p == before + 48 && after == p + 48, down = p == before - 48 && after == p - 48;
        if (!up && !down)
            continue;                                // (leaked: the child ends soon)
        void *volatile again = p;                    // hidden from -Wuse-after-free
        ::operator delete(p);
        expect("mymalloc: operator delete(): double free of 0x%lx (block of 48 bytes)", addr(again));
        ::operator delete(again);
        return;
    }
    expect("(setup failed: no three adjacent 48-byte blocks)");
    _exit(3);
}

#pragma GCC diagnostic pop

// Every size a 64-byte block could have been asked with is accepted.
void right_sizes_of_a_64_byte_block(int)
{
    for (std::size_t n = 25; n <= 56; n++) {
        void *p = block_of_64(n % 2 ? plain_new : array_new);
        if (n % 2)
            ::operator delete(p, n);
        else
            ::operator delete[](p, n);
    }
    // A request of 40 bytes (a block of 48) served by a 64-byte block from a
    // bin: best fit takes it whole once no 48-byte block is free, since the
    // 16 spare bytes cannot be a block of their own.
    for (int i = 0; i < 50; i++) {
        void *p = block_of_64(plain_new);
        keep(::operator new(10));                   // keeps p from merging with what follows
        ::operator delete(p, (std::size_t)50);
    }
    malloc_trim(0);          // the cached (and parked) 64-byte blocks go to the bins
    int tries = 0;
    for (;; tries++) {
        void *q = ::operator new(40);
        if (block_bytes(q) == 64) {
            ::operator delete(q, (std::size_t)40);
            break;
        }
        if (tries > 100000) {
            child_note("no 40-byte request got a 64-byte block");
            _exit(5);
        }
    }
    _exit(mymalloc_check() == 0 ? 0 : 4);
}

// Allocate and free with the right size: form 0 plain, 1 array, 2 aligned,
// 3 aligned array; sizes 0..5000 one by one and big ones past the mmap threshold.
void right_sizes(int form)
{
    static const std::size_t big[] = {
        131072 - 64, 131072 - 8, 131072 - 1, 131072, 131073, 131072 + 4096, 200000, 262144, 1000000,
        MiB - 1, MiB, MiB + 1, MiB + 12345, 8 * MiB + 3, 33 * MiB,
    };
    static const std::size_t alignments[] = {32, 64, 128, 256, 4096, 65536};
    auto one = [form](std::size_t n, std::size_t al) {
        void *p;
        switch (form) {
        case 0: p = ::operator new(n); break;
        case 1: p = ::operator new[](n); break;
        case 2: p = ::operator new(n, align_val_t(al)); break;
        default: p = ::operator new[](n, align_val_t(al)); break;
        }
        std::memset(p, 0x33, n < 64 ? n : 64);
        switch (form) {
        case 0: ::operator delete(p, n); break;
        case 1: ::operator delete[](p, n); break;
        case 2: ::operator delete(p, n, align_val_t(al)); break;
        default: ::operator delete[](p, n, align_val_t(al)); break;
        }
    };
    // Keep some blocks alive so later ones come from bins as well as the top.
    void *keep_alive[64] = {};
    for (std::size_t n = 0; n <= 5000; n++) {
        one(n, alignments[n % 6]);
        if (n % 79 == 0) {
            int slot = (int)(n / 79 % 64);
            ::operator delete(keep_alive[slot]);
            keep_alive[slot] = ::operator new(n * 3 % 2000);
        }
    }
    for (std::size_t n : big)
        for (std::size_t al : alignments)
            one(n, al);
    for (void *p : keep_alive)
        ::operator delete(p);
    _exit(mymalloc_check() == 0 ? 0 : 4);
}

// Random mixed workload with exact sizes, a fixed seed; live blocks freed
// out of order.  With arg 1, a 4 KiB mmap threshold makes many blocks mapped.
void right_sizes_random(int low_threshold)
{
    if (low_threshold && mallopt(M_MMAP_THRESHOLD, 4096) != 1)
        _exit(5);
    struct Live {
        void *p;
        std::size_t n, al;
        int form;
    };
    static Live live[512];
    std::uint32_t seed = 12345;
    auto next = [&seed] {
        seed = seed * 1103515245u + 12345u;
        return seed >> 8;
    };
    auto release = [](Live &l) {
        switch (l.form) {
        case 0: ::operator delete(l.p, l.n); break;
        case 1: ::operator delete[](l.p, l.n); break;
        case 2: ::operator delete(l.p, l.n, align_val_t(l.al)); break;
        default: ::operator delete[](l.p, l.n, align_val_t(l.al)); break;
        }
        l.p = nullptr;
    };
    for (int i = 0; i < 40000; i++) {
        Live &l = live[next() % 512];
        if (l.p != nullptr)
            release(l);
        std::uint32_t r = next();
        l.form = (int)(r % 4);
        l.n = r % 16 == 0 ? next() % 300000 : next() % 3000;
        l.al = (std::size_t)16 << (next() % 8);
        switch (l.form) {
        case 0: l.p = ::operator new(l.n); break;
        case 1: l.p = ::operator new[](l.n); break;
        case 2: l.p = ::operator new(l.n, align_val_t(l.al)); break;
        default: l.p = ::operator new[](l.n, align_val_t(l.al)); break;
        }
        if (l.n > 0)
            static_cast<unsigned char *>(l.p)[l.n - 1] = 1;
    }
    for (Live &l : live)
        if (l.p != nullptr)
            release(l);
    _exit(mymalloc_check() == 0 ? 0 : 4);
}

// 30 + 8 = 38 points.
void test_sized_delete()
{
    aborts("operator delete(p, 24) of a 64-byte block (size too small)", wrong_size_too_small);
    aborts("operator delete(p, 57) of a 64-byte block (more than it holds)", wrong_size_too_big);
    aborts("operator delete[](p, 24) of a 64-byte block", wrong_size_array);
    aborts("operator delete(p, 20, al=64) after operator new(100, al=64)", wrong_size_aligned);
    aborts("operator delete[](p, 200, al=256) after operator new[](100, al=256)", wrong_size_aligned_array);
    aborts("operator delete(p, 512 KiB) of a mapped 1 MiB block", wrong_size_mapped);
#if defined(__cpp_sized_deallocation)
    aborts("delete of a Derived (204 bytes) through a Base * without a virtual destructor", wrong_size_through_base);
#else
    skip(2, "the compiler does not pass sizes to operator delete");
#endif
    aborts("operator delete(p) of a block from operator new[]", new_array_then_delete);
    aborts("operator delete[](p) of a block from operator new", new_then_delete_array);
    aborts("free(p) of a block from operator new", new_then_free);
    aborts("operator delete(p) of a block from malloc", malloc_then_delete);
    aborts("delete (not delete[]) of an array from new Plain[5]", array_expression_then_delete);
    aborts("operator delete[](p, al) of a block from operator new(n, al)", aligned_new_then_aligned_delete_array);
    aborts("operator delete(p) of a mapped block from operator new[]", mapped_new_array_then_delete);
    aborts("operator delete(p) twice", double_delete);

    runs_clean("sized delete accepts every size 25 .. 56 for a 64-byte block, and 40 for a 48-byte "
               "request served by a 64-byte block", right_sizes_of_a_64_byte_block);
    static const char *const forms[] = {"operator delete(p, n)", "operator delete[](p, n)",
                                        "operator delete(p, n, al)", "operator delete[](p, n, al)"};
    char what[200];
    for (int form = 0; form < 4; form++) {
        std::snprintf(what, sizeof what, "%s with the right size: n = 0 .. 5000 and 15 sizes from 128 KiB to 33 MiB%s",
                      forms[form], form >= 2 ? ", alignments 32 .. 64 KiB" : "");
        runs_clean(what, right_sizes, form);
    }
    runs_clean("40000 random sized allocations and frees (4 forms, sizes up to 300000, alignments up to 2 KiB)",
               right_sizes_random, 0);
    runs_clean("the same with a 4 KiB mmap threshold (many mapped blocks)", right_sizes_random, 1);

    // And in this process: a sized delete-expression with the right size.
    Derived *d = keep(new Derived);
    Counts a, b;
    snap(a);
    delete keep(d);
    snap(b);
    ok_moved(moved(a, b, {W(EXPR_DELETE)}), "delete of a Derived through a Derived * is accepted");
}

// operator new[] and delete[] take the thread's cache, as new and delete do:
// a block deleted is handed out again by the next new[] of its size with no
// heap operation (it stays counted as cached in between), and the block
// caches of the two families stay apart.
void test_array_cache()
{
    mymalloc_stats s0, s1, s2;
    char *warm = keep(new char[100]);      // this thread is registered, its cache on
    delete[] keep(warm);
    char *p = keep(new char[100]);
    mymalloc_stats_get(&s0);
    delete[] keep(p);
    mymalloc_stats_get(&s1);
    char *q = keep(new char[100]);
    mymalloc_stats_get(&s2);
    ok(s1.cached_bytes == s0.cached_bytes + 112 && s2.cached_bytes == s0.cached_bytes && q == p,
       "operator delete[] caches a 112-byte block (cached bytes %zu -> %zu), operator new[] takes it back (%zu, "
       "the same address: %s)", s0.cached_bytes, s1.cached_bytes, s2.cached_bytes, q == p ? "yes" : "no");
    char *r = static_cast<char *>(keep(::operator new(100)));
    ok(r != q, "operator new does not get the block operator new[] holds");
    delete[] keep(q);
    char *n = static_cast<char *>(keep(::operator new(100)));
    ok(n != q, "nor one that operator delete[] cached");
    ::operator delete(keep(r));
    ::operator delete(keep(n));
}

} // namespace

int main(int, char **argv)
{
    // Small blocks belong in the heap, and the default check level holds
    // (the expected block sizes and reports assume it), whatever the
    // environment says.
    // Level 0 (MYMALLOC_CHECK=0) cannot be left at run time: start again
    // without it.
    bool set = mallopt(M_MMAP_THRESHOLD, 128 * 1024) == 1 && mallopt(M_MMAP_MAX, 65536) == 1 &&
               mallopt(M_MYMALLOC_CHECK, 1) == 1 && mallopt(M_MYMALLOC_ABORT, 1) == 1;
    if (!set && std::getenv("MYMALLOC_CHECK") != nullptr && std::getenv("CXX_OPERATORS_RESTARTED") == nullptr) {
        unsetenv("MYMALLOC_CHECK");
        setenv("CXX_OPERATORS_RESTARTED", "1", 1);
        execv("/proc/self/exe", argv);
    }
    plan(1 + 1 + 48 + 36 + 4 + 4 + 3 + 12 + 11 + 9 + 38 + 3 + 1);
    ok(set, "mallopt sets the default mmap threshold, mmap max, check level 1 and abort on misuse");

    bool names = true;
    for (int i = MYMALLOC_CALL_NEW; i < MYMALLOC_CALL_COUNT; i++) {
        const char *name = mymalloc_call_name(static_cast<mymalloc_call>(i));
        bool array = std::strstr(call_label[i], "ARRAY") != nullptr;
        const char *want = i < MYMALLOC_CALL_DELETE ? (array ? "operator new[]" : "operator new")
                                                    : (array ? "operator delete[]" : "operator delete");
        if (name == nullptr || std::strcmp(name, want) != 0) {
            names = false;
            diag("mymalloc_call_name(%s) = \"%s\", expected \"%s\"", call_label[i], name ? name : "(null)", want);
        }
    }
    ok(names, "mymalloc_call_name names the 20 operator forms \"operator new\", \"operator new[]\", "
       "\"operator delete\", \"operator delete[]\"");

    test_each_operator_by_name();
    test_expressions();
    test_alignment();
    test_explicit_alignments();
    test_size_zero();
    test_failures();
    test_new_handler_without_memory_pressure();
    test_new_handler_under_memory_pressure();
    test_sized_delete();
    test_array_cache();

    int problems = mymalloc_check();
    ok(problems == 0, "mymalloc_check() finds no problem at the end (%d)", problems);
    return done();
}
