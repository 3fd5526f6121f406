// misuse_cxx.cc - heap-misuse fault injection for the C++ operators of
// libmymalloc++: a block freed by the wrong family (free() of new and new[],
// delete of new[], delete[] of new, delete of malloc), a double delete, a
// sized delete with the wrong size, delete[] of an interior pointer.  As in
// misuse.c, each case runs in a forked child that announces its exact report
// line on one pipe and then misbehaves with its stderr on another; pass 1
// expects SIGABRT, pass 2 carries on (mallopt(M_MYMALLOC_ABORT, 0), once
// glibc's mallopt(M_CHECK_ACTION, 1)) and must keep a usable heap: a workout
// of verified allocations, then mymalloc_check() == 0 and exit 0.  The
// per-thread cache of small blocks is off except for the "cache:" cases.
#include "misuse.h"
#include <cerrno>
#include <csignal>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

namespace {

// Hide a pointer from the optimizer: no elided new/delete pair, no
// mismatched-new-delete reasoning.
template <class T> T *launder_ptr(T *p)
{
    T *volatile v = p;
    return v;
}

std::size_t size_in_header(const void *p)
{
    const volatile std::size_t *w = static_cast<const volatile std::size_t *>(p);
    return w[-1] & ((((std::size_t)1 << 46) - 1) & ~(std::size_t)15);
}

struct S40 { char c[40]; };                 // operator new(40): a block of 48 bytes
struct alignas(64) A64 { char c[40]; };     // operator new(40, align_val_t(64))

// Three S40 from operator new in a row: the middle one has in-use neighbours.
S40 *guarded_new()
{
    for (int attempt = 0; attempt < 200; attempt++) {
        S40 *a = launder_ptr(new S40()), *b = launder_ptr(new S40()), *c = launder_ptr(new S40());
        if (reinterpret_cast<char *>(b) == reinterpret_cast<char *>(a) + size_in_header(a) &&
            reinterpret_cast<char *>(c) == reinterpret_cast<char *>(b) + size_in_header(b))
            return b;
    }
    setup_failed("no adjacent blocks");
}

// ---- the cases ----

void free_of_new()
{
    S40 *s = launder_ptr(new S40());
    expect("mymalloc: free(): wrong deallocator for 0x%lx (allocated by operator new, block of 48 bytes)", addr(s));
    std::free(launder_ptr(s));
}

void free_of_new_array()
{
    char *a = launder_ptr(new char[40]);
    expect("mymalloc: free(): wrong deallocator for 0x%lx (allocated by operator new[], block of 48 bytes)", addr(a));
    std::free(launder_ptr(a));
}

void free_of_aligned_new()
{
    A64 *x = launder_ptr(new A64());
    expect("mymalloc: free(): wrong deallocator for 0x%lx (allocated by operator new, block of %zu bytes)", addr(x),
           size_in_header(x));
    std::free(launder_ptr(x));
}

void realloc_of_new()
{
    S40 *s = launder_ptr(new S40());
    expect("mymalloc: realloc(): wrong deallocator for 0x%lx (allocated by operator new, block of 48 bytes)", addr(s));
    void *q = std::realloc(launder_ptr(s), 100);
    if (carry_on && (q != nullptr || errno != EINVAL))
        _exit(EXIT_CASE);
}

void delete_of_new_array()
{
    char *a = launder_ptr(new char[40]);
    expect("mymalloc: operator delete(): wrong deallocator for 0x%lx (allocated by operator new[], block of 48 bytes)",
           addr(a));
    delete launder_ptr(a);
}

void delete_array_of_new()
{
    S40 *s = launder_ptr(new S40());
    expect("mymalloc: operator delete[](): wrong deallocator for 0x%lx (allocated by operator new, block of 48 bytes)",
           addr(s));
    delete[] launder_ptr(s);
}

void delete_of_malloc()
{
    char *m = launder_ptr(static_cast<char *>(std::malloc(40)));
    if (m == nullptr)
        setup_failed("malloc");
    expect("mymalloc: operator delete(): wrong deallocator for 0x%lx (allocated by malloc, block of 48 bytes)", addr(m));
    delete launder_ptr(m);
}

void double_delete()
{
    S40 *s = guarded_new();
    delete launder_ptr(s);
    expect("mymalloc: operator delete(): double free of 0x%lx (block of 48 bytes)", addr(s));
    delete launder_ptr(s);
}

void sized_delete_wrong_size()
{
    void *p = launder_ptr(::operator new(100));
    expect("mymalloc: operator delete(): wrong size for 0x%lx (24 bytes given, 104 usable)", addr(p));
    ::operator delete(launder_ptr(p), static_cast<std::size_t>(24));
}

void delete_array_interior()
{
    char *a = launder_ptr(new char[100]());
    expect("mymalloc: operator delete[](): invalid pointer 0x%lx (inside the block at 0x%lx, block of 112 bytes)",
           addr(a + 16), addr(a));
    delete[] launder_ptr(a + 16);
}

void delete_of_stack_object()
{
    alignas(16) unsigned char buf[64];
    for (unsigned char &c : buf)
        *launder_ptr(&c) = 0;
    expect("mymalloc: operator delete(): invalid pointer 0x%lx (not from mymalloc)", addr(buf + 16));
    ::operator delete(launder_ptr(buf + 16));
}

// With the thread cache on (the default), a deleted block sits in the
// cache, still "in use" for the heap, marked by a key: deleting it again
// must still be caught, and so must freeing a cached-size new block with free().
void cache_double_delete()
{
    S40 *s = launder_ptr(new S40());
    delete launder_ptr(s);
    expect("mymalloc: operator delete(): double free of 0x%lx (block of 48 bytes)", addr(s));
    delete launder_ptr(s);
}

void cache_free_of_new()
{
    S40 *s = launder_ptr(new S40());
    expect("mymalloc: free(): wrong deallocator for 0x%lx (allocated by operator new, block of 48 bytes)", addr(s));
    std::free(launder_ptr(s));
}

enum { CARRY_GLIBC = 1, CACHE = 2 };

struct mcase {
    const char *name;
    void (*run)();
    int flags;
};

const mcase cases[] = {
    { "free() of a new block", free_of_new, 0 },
    { "free() of a new[] block", free_of_new_array, CARRY_GLIBC },
    { "free() of an over-aligned new block", free_of_aligned_new, 0 },
    { "realloc() of a new block", realloc_of_new, 0 },
    { "delete of a new[] block", delete_of_new_array, 0 },
    { "delete[] of a new block", delete_array_of_new, 0 },
    { "delete of a malloc block", delete_of_malloc, 0 },
    { "double delete", double_delete, 0 },
    { "sized delete with the wrong size", sized_delete_wrong_size, 0 },
    { "delete[] of an interior pointer", delete_array_interior, 0 },
    { "delete of a stack address", delete_of_stack_object, 0 },
#ifdef M_MYMALLOC_TCACHE
    { "cache: double delete", cache_double_delete, CACHE },
    { "cache: free() of a new block", cache_free_of_new, CACHE },
#endif
};
constexpr int NCASES = static_cast<int>(sizeof cases / sizeof cases[0]);

// ---- after carrying on: the heap still works ----

int workout()
{
    enum { SLOTS = 256, STEPS = 4000 };
    static char *slot[SLOTS];
    static std::size_t len[SLOTS];
    static unsigned seed[SLOTS];
    static bool array[SLOTS];               // from new[] (freed with delete[]) or from malloc
    std::uint64_t x = 0x2545f4914f6cdd1du;
    for (int step = 0; step < STEPS; step++) {
        unsigned r = lcg_next(&x);
        int i = static_cast<int>(r % SLOTS);
        unsigned kind = (r >> 8) % 64;
        std::size_t n = kind < 40 ? 1 + (r >> 14) % 256 : kind < 62 ? 257 + (r >> 14) % 4000 : 140000 + (r >> 14) % 60000;
        if (slot[i] != nullptr) {
            if (!has_pattern(slot[i], len[i], seed[i]))
                return EXIT_WORK_DATA;
            if (array[i])
                delete[] slot[i];
            else
                std::free(slot[i]);
            slot[i] = nullptr;
        } else {
            array[i] = (r >> 20) % 2 == 0;
            char *p = array[i] ? new (std::nothrow) char[n] : static_cast<char *>(std::malloc(n));
            if (p == nullptr)
                return EXIT_WORK_ALLOC;
            slot[i] = p;
            len[i] = n;
            seed[i] = static_cast<unsigned>(step);
            fill_pattern(p, n, seed[i]);
        }
    }
    for (int i = 0; i < SLOTS; i++) {
        if (array[i])
            delete[] slot[i];
        else
            std::free(slot[i]);
    }
    int problems = mymalloc_check();
    return problems == 0 ? 0 : EXIT_CHECK + (problems > 99 ? 99 : problems);
}

// ---- running a case ----

[[noreturn]] void child_main(const mcase &c, carry m, int fd)
{
    misuse_child_start(fd, -1, c.flags & CACHE, m);
    c.run();
    if (!carry_on)
        _exit(EXIT_RETURNED);
    int problems = mymalloc_check();
    if (problems != 0)
        _exit(EXIT_CHECK_NOW + (problems > 50 ? 50 : problems));
    _exit(workout());
}

struct outcome {
    int status = -1;
    char want[1024] = "", got[2048] = "";
};

struct case_run {
    const mcase *c;
    carry m;
};

void case_child(void *arg, int fd)
{
    const case_run *r = static_cast<const case_run *>(arg);
    child_main(*r->c, r->m, fd);
}

outcome run(const mcase &c, carry m)
{
    case_run r = { &c, m };
    outcome o;
    o.status = fork_piped(ERR_TO_SECOND | NO_CORE_DUMP, case_child, &r, o.want, sizeof o.want, o.got, sizeof o.got);
    return o;
}

const char *exit_meaning(int code)
{
    if (code == EXIT_RETURNED)
        return " (the misuse returned: no abort)";
    if (code >= EXIT_CHECK_NOW)
        return " (mymalloc_check() right after: 200 + problems)";
    if (code >= EXIT_CHECK)
        return " (mymalloc_check() after the workout: 100 + problems)";
    return code == EXIT_CASE ? " (the case's own check failed)" : "";
}

} // namespace

int main()
{
    if (mallopt(M_MYMALLOC_CHECK, 1) != 1)
        plan_skip_all("checks are off (MYMALLOC_CHECK=0 in the environment)");
    bool set = misuse_settings() && mallopt(M_MYMALLOC_ABORT, 1) == 1;
    plan(1 + 4 * NCASES);
    ok(set, "mallopt sets the thresholds, check level 1 and abort on misuse");
    diag("each case runs in a child with its stderr captured; %d cases", NCASES);

    for (const mcase &c : cases) {
        char label[200], how[160];
        outcome o = run(c, MODE_ABORT);
        std::snprintf(label, sizeof label, "%s [abort]", c.name);
        status_text(how, sizeof how, o.status, exit_meaning);
        ok(o.status != -1 && WIFSIGNALED(o.status) && WTERMSIG(o.status) == SIGABRT, "%s: the child died by SIGABRT (%s)",
           label, how);
        check_lines(label, o.want, o.got);

        carry m = (c.flags & CARRY_GLIBC) ? MODE_CARRY_GLIBC : MODE_CARRY;
        o = run(c, m);
        std::snprintf(label, sizeof label, "%s [carry on (%s)]", c.name,
                      m == MODE_CARRY_GLIBC ? "mallopt M_CHECK_ACTION 1" : "mallopt M_MYMALLOC_ABORT 0");
        status_text(how, sizeof how, o.status, exit_meaning);
        ok(o.status != -1 && WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0,
           "%s: returns, mymalloc_check() == 0, and again after a workout of 4000 verified blocks (%s)", label, how);
        check_lines(label, o.want, o.got);
    }
    return done();
}
