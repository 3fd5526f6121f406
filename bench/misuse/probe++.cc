// probe++.cc - the C++ heap misuses, one per run, for bench/misuse-table.
//
//     probe++ CASE
//
// Compiled with plain g++ (C++17, -fsized-deallocation) and NOT linked with
// mymalloc: bench/misuse-table runs it with each allocator through LD_PRELOAD
// (for mymalloc both libmymalloc.so and libmymalloc++.so; with glibc alone
// libstdc++'s operators call malloc and free).  As in probe.c: the misuse,
// then a little ordinary work, exit 0; nothing of the probe's own on stderr;
// "note: ..." lines on stdout.  "probe++ which" prints where operator new and
// malloc come from; "probe++ list" the case names.  Exit 2: usage error.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <new>
#include <sys/prctl.h>
#include <unistd.h>

#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace {

template <typename T> T *launder(T *p)
{
    __asm__ volatile("" : "+r"(p) : : "memory");
    return p;
}

void note(const char *text)
{
    char line[200];
    int n = std::snprintf(line, sizeof line, "note: %s\n", text);
    if (n > 0 && write(STDOUT_FILENO, line, static_cast<size_t>(n)) < 0)
        _exit(3);
}

// What the program does next: new and delete of the size just misused and
// of a few others; reports the same block handed out twice.
void aftermath(std::size_t size)
{
    char *q[4];
    bool twice = false;
    for (int i = 0; i < 4; i++) {
        q[i] = launder(static_cast<char *>(::operator new(size)));
        for (int j = 0; j < i; j++)
            twice |= q[j] == q[i];
    }
    if (twice)
        note("the same block was handed out twice");
    for (int i = 0; i < 4; i++)
        std::memset(q[i], 'a' + i, size);
    for (int i = 0; i < 4; i++)
        ::operator delete(q[i]);
    static const std::size_t mix[] = { 8, 24, 64, 100, 500, 3000, 200000 };
    for (std::size_t n : mix) {
        char *a = launder(new char[n]);
        char *m = launder(static_cast<char *>(std::malloc(n)));
        std::memset(a, 'a', n);
        if (m != nullptr)
            std::memset(m, 'm', n);
        delete[] a;
        std::free(m);
    }
}

// Trivially destructible, no virtual destructor: "delete base" of a Derived
// calls the sized operator delete(void *, size_t) with sizeof(Base), 8,
// for a block of sizeof(Derived), 64 bytes.
struct Base {
    long id;
};
struct Derived : Base {
    char payload[56];
};

void sized_delete_wrong()
{
    Base *b = launder(static_cast<Base *>(new Derived()));
    delete b;
    aftermath(sizeof(Derived));
}

struct Object {
    long v[5];
};

void free_of_new()
{
    Object *o = launder(new Object());
    std::free(o);
    aftermath(sizeof(Object));
}

// int is trivially destructible: no array cookie, delete gets the pointer
// new[] returned (through the sized operator delete(void *, 4)).
void delete_of_new_array()
{
    int *a = launder(new int[10]());
    delete a;
    aftermath(10 * sizeof(int));
}

// An over-aligned block (operator new with std::align_val_t(64)) released
// by the aligned sized operator delete with a size 10 bytes short of the one
// allocated.
void aligned_sized_delete_wrong_size(std::size_t n)
{
    char *p = launder(static_cast<char *>(::operator new(n, std::align_val_t(64))));
    std::memset(p, 'p', n);
    ::operator delete(p, n - 10, std::align_val_t(64));
    aftermath(n);
}

void aligned_sized_delete_wrong()
{
    aligned_sized_delete_wrong_size(100);
}

void aligned_sized_delete_wrong_large()
{
    aligned_sized_delete_wrong_size(1 << 20);
}

const char *library_of(const char *symbol)
{
    Dl_info info;
    void *f = dlsym(RTLD_DEFAULT, symbol);
    return f != nullptr && dladdr(f, &info) && info.dli_fname != nullptr ? info.dli_fname : "?";
}

void which()
{
    std::printf("malloc-from: %s\n", library_of("malloc"));
    std::printf("new-from: %s\n", library_of("_Znwm"));
    std::printf("sized-delete-from: %s\n", library_of("_ZdlPvm"));
    auto version = reinterpret_cast<const char *(*)()>(dlsym(RTLD_DEFAULT, "mymalloc_version"));
    std::printf("mymalloc-version: %s\n", version != nullptr ? version() : "-");
}

const struct {
    const char *name;
    void (*run)();
} cases[] = {
    { "sized-delete-wrong", sized_delete_wrong },
    { "free-of-new", free_of_new },
    { "delete-of-new-array", delete_of_new_array },
    { "aligned-sized-delete-wrong", aligned_sized_delete_wrong },
    { "aligned-sized-delete-wrong-large", aligned_sized_delete_wrong_large },
    { "which", which },
};

} // namespace

int main(int argc, char **argv)
{
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);     // no core dumps, whatever core_pattern says
    if (argc == 2 && std::strcmp(argv[1], "list") == 0) {
        for (const auto &c : cases)
            std::printf("%s\n", c.name);
        return 0;
    }
    for (const auto &c : cases) {
        if (argc == 2 && std::strcmp(argv[1], c.name) == 0) {
            c.run();
            return 0;
        }
    }
    std::fprintf(stderr, "probe++: unknown case (try: probe++ list)\n");
    return 2;
}
