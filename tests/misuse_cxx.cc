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
#include <cerrno>
#include <csignal>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <malloc.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include "mymalloc.h"
#include "tap.h"

namespace {

enum {
    EXIT_SETUP = 3, EXIT_WORK_ALLOC = 4, EXIT_WORK_DATA = 5, EXIT_CASE = 7, EXIT_MALLOPT = 9,
    EXIT_RETURNED = 10, EXIT_CHECK = 100, EXIT_CHECK_NOW = 200
};

int expect_fd = -1;
bool carry_on;

__attribute__((format(printf, 1, 2))) void expect(const char *fmt, ...)
{
    char line[600];
    va_list ap;
    va_start(ap, fmt);
    int n = std::vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0 || static_cast<std::size_t>(n) >= sizeof line - 1)
        _exit(2);
    line[n++] = '\n';
    if (write(expect_fd, line, static_cast<std::size_t>(n)) != n)
        _exit(2);
}

unsigned long addr(const void *p) { return static_cast<unsigned long>(reinterpret_cast<std::uintptr_t>(p)); }

// Hide a pointer from the optimizer: no elided new/delete pair, no
// mismatched-new-delete reasoning.
template <class T> T *launder_ptr(T *p)
{
    T *volatile v = p;
    return v;
}

std::size_t block_bytes(const void *p)
{
    const volatile std::size_t *w = static_cast<const volatile std::size_t *>(p);
    return w[-1] & ((((std::size_t)1 << 46) - 1) & ~(std::size_t)15);
}

struct S40 { char c[40]; };                 // operator new(40): a block of 48 bytes
struct alignas(64) A64 { char c[40]; };     // operator new(40, align_val_t(64))

[[noreturn]] void setup_failed(const char *what)
{
    expect("(setup failed: %s)", what);
    _exit(EXIT_SETUP);
}

// Three S40 from operator new in a row: the middle one has in-use neighbours.
S40 *guarded_new()
{
    for (int attempt = 0; attempt < 200; attempt++) {
        S40 *a = launder_ptr(new S40()), *b = launder_ptr(new S40()), *c = launder_ptr(new S40());
        if (reinterpret_cast<char *>(b) == reinterpret_cast<char *>(a) + block_bytes(a) &&
            reinterpret_cast<char *>(c) == reinterpret_cast<char *>(b) + block_bytes(b))
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
           block_bytes(x));
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
    expect("mymalloc: operator delete(): wrong size for 0x%lx (24 bytes given, block of 112 bytes)", addr(p));
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

unsigned char pattern(std::size_t seed, std::size_t k) { return static_cast<unsigned char>(seed * 131 + k * 7 + (k >> 8)); }

int workout()
{
    enum { SLOTS = 256, STEPS = 4000 };
    static char *slot[SLOTS];
    static std::size_t len[SLOTS], seed[SLOTS];
    static bool array[SLOTS];               // from new[] (freed with delete[]) or from malloc
    std::uint64_t x = 0x2545f4914f6cdd1du;
    for (int step = 0; step < STEPS; step++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        unsigned r = static_cast<unsigned>(x >> 33);
        int i = static_cast<int>(r % SLOTS);
        unsigned kind = (r >> 8) % 64;
        std::size_t n = kind < 40 ? 1 + (r >> 14) % 256 : kind < 62 ? 257 + (r >> 14) % 4000 : 140000 + (r >> 14) % 60000;
        if (slot[i] != nullptr) {
            for (std::size_t k = 0; k < len[i]; k++)
                if (static_cast<unsigned char>(slot[i][k]) != pattern(seed[i], k))
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
            seed[i] = static_cast<std::size_t>(step);
            for (std::size_t k = 0; k < n; k++)
                p[k] = static_cast<char>(pattern(seed[i], k));
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

enum mode { MODE_ABORT, MODE_CARRY, MODE_CARRY_GLIBC };

bool base_settings()
{
    bool set = mallopt(M_MMAP_THRESHOLD, 128 * 1024) == 1 && mallopt(M_MMAP_MAX, 65536) == 1 &&
               mallopt(M_TRIM_THRESHOLD, 128 * 1024) == 1 && mallopt(M_TOP_PAD, 128 * 1024) == 1;
#ifdef M_MYMALLOC_TCACHE
    set = set && mallopt(M_MYMALLOC_TCACHE, 0) == 1;
#endif
    return set;
}

[[noreturn]] void child_main(const mcase &c, mode m, int fd)
{
    expect_fd = fd;
    alarm(30);
#ifdef M_MYMALLOC_TCACHE
    if ((c.flags & CACHE) && mallopt(M_MYMALLOC_TCACHE, 1) != 1)
        _exit(EXIT_MALLOPT);
#endif
    if (m == MODE_CARRY && mallopt(M_MYMALLOC_ABORT, 0) != 1)
        _exit(EXIT_MALLOPT);
    if (m == MODE_CARRY_GLIBC && mallopt(M_CHECK_ACTION, 1) != 1)
        _exit(EXIT_MALLOPT);
    carry_on = m != MODE_ABORT;
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

void collect(int want_fd, int got_fd, outcome &o)
{
    std::size_t have[2] = { 0, 0 }, room[2] = { sizeof o.want - 1, sizeof o.got - 1 };
    char *buf[2] = { o.want, o.got };
    pollfd pf[2] = { { want_fd, POLLIN, 0 }, { got_fd, POLLIN, 0 } };
    int open_fds = 2;
    while (open_fds > 0) {
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (pf[i].fd < 0 || pf[i].revents == 0)
                continue;
            char sink[512];
            char *to = have[i] < room[i] ? buf[i] + have[i] : sink;
            std::size_t space = have[i] < room[i] ? room[i] - have[i] : sizeof sink;
            ssize_t got = read(pf[i].fd, to, space);
            if (got <= 0) {
                pf[i].fd = -1;
                open_fds--;
            } else if (to != sink) {
                have[i] += static_cast<std::size_t>(got);
            }
        }
    }
    o.want[have[0]] = '\0';
    o.got[have[1]] = '\0';
}

outcome run(const mcase &c, mode m)
{
    outcome o;
    int want[2], got[2];
    if (pipe(want) != 0 || pipe(got) != 0)
        return o;
    std::fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        rlimit no_core = { 0, 0 };
        setrlimit(RLIMIT_CORE, &no_core);
        close(want[0]);
        close(got[0]);
        dup2(got[1], STDERR_FILENO);
        close(got[1]);
        child_main(c, m, want[1]);
    }
    close(want[1]);
    close(got[1]);
    if (pid > 0)
        collect(want[0], got[0], o);
    close(want[0]);
    close(got[0]);
    if (pid > 0)
        waitpid(pid, &o.status, 0);
    return o;
}

void describe(char *out, std::size_t size, int status)
{
    if (status == -1)
        std::snprintf(out, size, "no child");
    else if (WIFSIGNALED(status))
        std::snprintf(out, size, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else if (WIFEXITED(status))
        std::snprintf(out, size, "exit %d%s", WEXITSTATUS(status),
                      WEXITSTATUS(status) == EXIT_RETURNED ? " (the misuse returned: no abort)"
                      : WEXITSTATUS(status) >= EXIT_CHECK_NOW ? " (mymalloc_check() right after: 200 + problems)"
                      : WEXITSTATUS(status) >= EXIT_CHECK ? " (mymalloc_check() after the workout: 100 + problems)"
                      : WEXITSTATUS(status) == EXIT_CASE ? " (the case's own check failed)" : "");
    else
        std::snprintf(out, size, "status 0x%x", status);
}

void check_lines(const char *label, const outcome &o)
{
    bool same = o.want[0] != '\0' && std::strcmp(o.want, o.got) == 0;
    ok(same, "%s: stderr is exactly: %.*s", label, static_cast<int>(std::strcspn(o.want, "\n")), o.want);
    if (!same)
        diag("expected \"%s\", got \"%s\"", o.want, o.got);
}

} // namespace

int main()
{
    if (mallopt(M_MYMALLOC_CHECK, 1) != 1)
        plan_skip_all("checks are off (MYMALLOC_CHECK=0 in the environment)");
    bool set = base_settings() && mallopt(M_MYMALLOC_ABORT, 1) == 1;
    plan(1 + 4 * NCASES);
    ok(set, "mallopt sets the thresholds, check level 1 and abort on misuse");
    diag("each case runs in a child with its stderr captured; %d cases", NCASES);

    for (const mcase &c : cases) {
        char label[200], how[160];
        outcome o = run(c, MODE_ABORT);
        std::snprintf(label, sizeof label, "%s [abort]", c.name);
        describe(how, sizeof how, o.status);
        ok(o.status != -1 && WIFSIGNALED(o.status) && WTERMSIG(o.status) == SIGABRT, "%s: the child died by SIGABRT (%s)",
           label, how);
        check_lines(label, o);

        mode m = (c.flags & CARRY_GLIBC) ? MODE_CARRY_GLIBC : MODE_CARRY;
        o = run(c, m);
        std::snprintf(label, sizeof label, "%s [carry on (%s)]", c.name,
                      m == MODE_CARRY_GLIBC ? "mallopt M_CHECK_ACTION 1" : "mallopt M_MYMALLOC_ABORT 0");
        describe(how, sizeof how, o.status);
        ok(o.status != -1 && WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0,
           "%s: returns, mymalloc_check() == 0, and again after a workout of 4000 verified blocks (%s)", label, how);
        check_lines(label, o);
    }
    return done();
}
