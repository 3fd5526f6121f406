# preload_cxx.sh - libmymalloc++ in real C++ programs: the C++ compiler
# itself run with LD_PRELOAD=libmymalloc++.so (which brings libmymalloc.so
# along), the STL program it built run both plainly and preloaded (the same
# output, and the preloaded run finds mymalloc_stats_get with dlsym and sees
# its own operator new calls counted), and a C++11 program linked with
# -lmymalloc++ -lmymalloc.  Each part is skipped when its tool is missing.
# Environment: MYMALLOCXX_LIB (required), MYMALLOC_SRCDIR, CXX (default g++).

srcdir=${MYMALLOC_SRCDIR:-$(dirname "$0")/..}
. "$srcdir/tests/preload-lib.sh"

library MYMALLOCXX_LIB
libdir=$(dirname "$lib")
case $srcdir in
/*) ;;
*) srcdir=$(pwd)/$srcdir ;;
esac

scratch mymalloc-preload-cxx
predictable MYMALLOC_CHECK MYMALLOC_ABORT MYMALLOC_TCACHE MYMALLOC_STATS

cxx=${CXX:-g++}
# shellcheck disable=SC2086
set -- $cxx
if [ -n "${1:-}" ] && command -v "$1" >/dev/null 2>&1; then
    have_cxx=yes
    diag "C++ compiler: $cxx"
else
    have_cxx=no
fi

# ------------------------------------------------ an STL program
# It prints what it computed; with the argument "stats" it then looks for
# mymalloc_stats_get in the process (no link-time dependency on mymalloc:
# <mymalloc.h> only gives the struct and the enum) and prints its counters.
cat >"$tmp/stl.cc" <<'CXX'
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>
#include "mymalloc.h"

struct alignas(64) Slot {
    long value[8];
};

int main(int argc, char **argv)
{
    std::vector<char> composite(30000, 0);
    std::vector<int> primes;
    for (int i = 2; i < 30000; i++) {
        if (composite[i])
            continue;
        primes.push_back(i);
        for (int j = 2 * i; j < 30000; j += i)
            composite[j] = 1;
    }
    long sum = 0;
    for (int p : primes)
        sum += p;

    std::map<std::string, int> last_digits;
    for (int p : primes)
        last_digits["ends in " + std::to_string(p % 10)]++;

    std::vector<std::string> names;
    for (int p : primes)
        names.push_back(std::to_string(p * 7919 % 100003));
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    std::string joined;
    for (std::size_t i = 0; i < names.size(); i += 400)
        joined += names[i] + ";";

    std::vector<std::unique_ptr<Slot>> slots;          // over-aligned: aligned operator new
    long slot_sum = 0;
    for (int i = 0; i < 100; i++) {
        slots.emplace_back(new Slot());
        slots.back()->value[i % 8] = i;
        if (reinterpret_cast<unsigned long>(slots.back().get()) % 64 != 0)
            std::cout << "misaligned Slot\n";
    }
    for (const auto &s : slots)
        for (long v : s->value)
            slot_sum += v;

    std::cout << primes.size() << " primes below 30000, sum " << sum << ", largest " << primes.back() << "\n";
    for (const auto &kv : last_digits)
        std::cout << kv.first << ": " << kv.second << "\n";
    std::cout << names.size() << " distinct names, " << joined << "\n";
    std::cout << "slots " << slots.size() << " sum " << slot_sum << "\n";

    if (argc > 1 && std::strcmp(argv[1], "stats") == 0) {
        typedef int stats_fn(struct mymalloc_stats *);
        stats_fn *get = reinterpret_cast<stats_fn *>(dlsym(RTLD_DEFAULT, "mymalloc_stats_get"));
        if (get == nullptr) {
            std::cout << "stats: mymalloc_stats_get not found\n";
            return 0;
        }
        // Ten malloc calls of our own (kept from the optimizer by volatile):
        // counted if malloc is mymalloc's.
        static void *volatile blocks[10];
        for (int i = 0; i < 10; i++)
            blocks[i] = std::malloc(1000);
        for (int i = 0; i < 10; i++)
            std::free(blocks[i]);
        struct mymalloc_stats s;
        if (get(&s) != 0)
            return 2;
        unsigned long long deletes = 0;
        for (int i = MYMALLOC_CALL_DELETE; i <= MYMALLOC_CALL_DELETE_ARRAY_SIZED_ALIGNED; i++)
            deletes += s.calls[i];
        std::cout << "stats: new " << s.calls[MYMALLOC_CALL_NEW] << " aligned " << s.calls[MYMALLOC_CALL_NEW_ALIGNED]
                  << " delete " << deletes << " malloc " << s.calls[MYMALLOC_CALL_MALLOC] << "\n";
    }
    return 0;
}
CXX

cat >"$tmp/stl.expected" <<'OUT'
3245 primes below 30000, sum 45675864, largest 29989
ends in 1: 808
ends in 2: 1
ends in 3: 815
ends in 5: 1
ends in 7: 818
ends in 9: 802
3245 distinct names, 10016;2082;31721;42715;53857;6495;75718;87012;98809;
slots 100 sum 4950
OUT

# The C library's malloc family is in libmymalloc.so: with it preloaded as
# well as libmymalloc++.so, both sets of functions are ours.
clib=${MYMALLOC_LIB:-$libdir/libmymalloc.so}
case $clib in
/*) ;;
*) clib=$(pwd)/$clib ;;
esac

# compile_preloaded PRELOAD OUT: compile stl.cc into $tmp/OUT with
# LD_PRELOAD=PRELOAD and a bad setting: every process that starts mymalloc's
# malloc says so once on stderr.  Leaves the exit status in $status, the
# number of those lines in $n, and the rest of stderr in $tmp/OUT.rest.
compile_preloaded() {
    # shellcheck disable=SC2086
    LD_PRELOAD="$1" MYMALLOC_TOP_PAD=not-a-size $cxx -std=c++17 -O2 -I"$srcdir/include" -o "$tmp/$2" \
        "$tmp/stl.cc" -ldl >"$tmp/$2.out" 2>"$tmp/$2.err"
    status=$?
    bad='^mymalloc: ignoring MYMALLOC_TOP_PAD=not-a-size: not a valid size$'
    n=$(grep -c "$bad" "$tmp/$2.err")
    grep -v "$bad" "$tmp/$2.err" >"$tmp/$2.rest"
}

if [ "$have_cxx" = yes ]; then
    # (a) The compiler (driver, cc1plus, as, collect2, ld) runs preloaded.
    compile_preloaded "$lib" stl
    [ "$status" -eq 0 ] && [ -x "$tmp/stl" ] && stderr_clean "$tmp/stl.rest"
    ok $? "$cxx compiles an STL program (vector, map, string, algorithm, iostream) with LD_PRELOAD=libmymalloc++.so (exit status $status)"
    [ "$status" -eq 0 ] || show "$tmp/stl.rest"

    # g++ runs the driver, cc1plus, as, collect2 and ld, all of which
    # allocate with malloc; clang++ runs fewer processes.
    # shellcheck disable=SC2086
    cc1plus=$($cxx -print-prog-name=cc1plus 2>/dev/null)
    case $cc1plus in
    /*) want=4 ;;
    *) want=2 ;;
    esac
    [ "$n" -ge "$want" ]
    ok $? "LD_PRELOAD=libmymalloc++.so alone puts the compiler's processes on mymalloc ($n processes started it, $want or more expected)"
    if [ "$n" -eq 0 ]; then
        diag "libmymalloc.so, loaded as a dependency of the preloaded libmymalloc++.so, comes after"
        diag "libc.so.6 in the symbol search order, so malloc stays glibc's (LD_DEBUG=bindings shows it)"
    fi

    if [ -f "$clib" ]; then
        compile_preloaded "$clib $lib" stl3
        [ "$status" -eq 0 ] && [ "$n" -ge "$want" ] && stderr_clean "$tmp/stl3.rest"
        ok $? "with LD_PRELOAD=\"libmymalloc.so libmymalloc++.so\" the compiler's processes use mymalloc's malloc ($n processes reported, $want or more expected; exit status $status)"
    else
        skip "with LD_PRELOAD=\"libmymalloc.so libmymalloc++.so\" the compiler's processes use mymalloc's malloc" \
            "no libmymalloc.so at $clib"
    fi

    if [ -x "$tmp/stl" ]; then
        "$tmp/stl" >"$tmp/plain.out" 2>"$tmp/plain.err"
        status=$?
        [ "$status" -eq 0 ] && cmp -s "$tmp/stl.expected" "$tmp/plain.out"
        ok $? "the program built by the preloaded compiler prints the right results (exit status $status)"
        if ! cmp -s "$tmp/stl.expected" "$tmp/plain.out"; then
            diff "$tmp/stl.expected" "$tmp/plain.out" | sed -n '1,15s/^/#   /p'
        fi

        # (b) The same program, preloaded.
        LD_PRELOAD="$lib" "$tmp/stl" >"$tmp/pre.out" 2>"$tmp/pre.err"
        status=$?
        [ "$status" -eq 0 ] && cmp -s "$tmp/stl.expected" "$tmp/pre.out" && stderr_clean "$tmp/pre.err"
        ok $? "run with LD_PRELOAD=libmymalloc++.so it prints the same (exit status $status)"
        if ! cmp -s "$tmp/stl.expected" "$tmp/pre.out"; then
            diff "$tmp/stl.expected" "$tmp/pre.out" | sed -n '1,15s/^/#   /p'
            show "$tmp/pre.err"
        fi

        LD_PRELOAD="$lib" "$tmp/stl" stats >"$tmp/stats.out" 2>"$tmp/stats.err"
        status=$?
        line=$(sed -n 's/^stats: //p' "$tmp/stats.out")
        # shellcheck disable=SC2086
        set -- $line
        # "new N aligned A delete D malloc M"
        [ "$status" -eq 0 ] && [ "${1:-}" = new ] && [ "${2:-0}" -gt 0 ] && [ "${4:-0}" -ge 100 ] &&
            [ "${6:-0}" -gt 0 ] 2>/dev/null
        ok $? "preloaded, dlsym finds mymalloc_stats_get and the program's operator new and delete calls were counted (${line:-no stats line})"
        [ -n "$line" ] || show "$tmp/stats.err"
        [ "$status" -eq 0 ] && [ "${7:-}" = malloc ] && [ "${8:-0}" -ge 10 ] 2>/dev/null
        ok $? "preloaded, the program's own ten malloc calls went to mymalloc too (malloc counted ${8:-?} times)"

        "$tmp/stl" stats >"$tmp/nostats.out" 2>&1
        line=$(sed -n 's/^stats: //p' "$tmp/nostats.out")
        [ "$line" = "mymalloc_stats_get not found" ]
        ok $? "without the preload the same lookup finds nothing (\"$line\")"

        # MYMALLOC_STATS=1: the table at exit names the C++ forms apart.
        MYMALLOC_STATS=1 LD_PRELOAD="$lib" "$tmp/stl" >"$tmp/atexit.out" 2>"$tmp/atexit.err"
        status=$?
        plain_new=$(sed -n 's/^  operator new  *\([0-9][0-9]*\)$/\1/p' "$tmp/atexit.err")
        aligned_new=$(sed -n 's/^  operator new (aligned)  *\([0-9][0-9]*\)$/\1/p' "$tmp/atexit.err")
        [ "$status" -eq 0 ] && cmp -s "$tmp/stl.expected" "$tmp/atexit.out" &&
            grep -q '^mymalloc [0-9.]* statistics (process [0-9]*):$' "$tmp/atexit.err" &&
            [ "${plain_new:-0}" -gt 0 ] && [ "${aligned_new:-0}" -ge 100 ] 2>/dev/null
        ok $? "MYMALLOC_STATS=1, LD_PRELOAD=libmymalloc++.so: the table at exit counts operator new (${plain_new:-?}) and operator new (aligned) (${aligned_new:-?}) apart"
        [ "$status" -eq 0 ] || show "$tmp/atexit.err"
    else
        skip "the program built by the preloaded compiler prints the right results" "it was not built"
        skip "run with LD_PRELOAD=libmymalloc++.so it prints the same" "it was not built"
        skip "preloaded, dlsym finds mymalloc_stats_get" "it was not built"
        skip "preloaded, the program's own malloc calls went to mymalloc" "it was not built"
        skip "without the preload the same lookup finds nothing" "it was not built"
        skip "MYMALLOC_STATS=1, LD_PRELOAD=libmymalloc++.so: the table at exit" "it was not built"
    fi
else
    for what in "$cxx compiles an STL program with LD_PRELOAD=libmymalloc++.so" \
        "LD_PRELOAD=libmymalloc++.so alone puts the compiler's processes on mymalloc" \
        "with LD_PRELOAD=\"libmymalloc.so libmymalloc++.so\" the compiler's processes use mymalloc's malloc" \
        "the program built by the preloaded compiler prints the right results" \
        "run with LD_PRELOAD=libmymalloc++.so it prints the same" \
        "preloaded, dlsym finds mymalloc_stats_get" \
        "preloaded, the program's own malloc calls went to mymalloc" \
        "without the preload the same lookup finds nothing" \
        "MYMALLOC_STATS=1, LD_PRELOAD=libmymalloc++.so: the table at exit"; do
        skip "$what" "no C++ compiler ($cxx)"
    done
fi

# ------------------------------------------------ (c) C++11, linked
# No aligned new in C++11 (and no sized delete in GCC's C++11 mode): the
# library serves the forms such a program uses; the others go unused.
cat >"$tmp/old.cc" <<'CXX'
#include <cstdio>
#include <cstdlib>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <vector>
#include "mymalloc.h"

struct Item {
    std::string name;
    std::vector<int> values;
};

int main()
{
    struct mymalloc_stats before, after;
    if (mymalloc_stats_get(&before) != 0)
        return 2;
    std::map<int, std::unique_ptr<Item> > items;
    for (int i = 0; i < 500; i++) {
        std::unique_ptr<Item> item(new Item);
        item->name = "item number " + std::to_string(i);
        for (int j = 0; j <= i % 17; j++)
            item->values.push_back(i * j);
        items[i * 37 % 500] = std::move(item);
    }
    std::list<std::string> names;
    long total = 0;
    for (std::map<int, std::unique_ptr<Item> >::const_iterator it = items.begin(); it != items.end(); ++it) {
        for (std::size_t j = 0; j < it->second->values.size(); j++)
            total += it->second->values[j];
        if (it->first % 50 == 0)
            names.push_back(it->second->name);
    }
    static void *volatile blocks[10];                 // volatile: the calls must happen
    for (int i = 0; i < 10; i++)
        blocks[i] = std::malloc(100);
    for (int i = 0; i < 10; i++)
        std::free(blocks[i]);
    int *raw = new int[1000];
    for (int i = 0; i < 1000; i++)
        raw[i] = i;
    for (int i = 0; i < 1000; i += 100)
        total += raw[i];
    delete[] raw;
    items.clear();
    if (mymalloc_stats_get(&after) != 0)
        return 2;
    unsigned long long news = after.calls[MYMALLOC_CALL_NEW] - before.calls[MYMALLOC_CALL_NEW];
    unsigned long long arrays = after.calls[MYMALLOC_CALL_NEW_ARRAY] - before.calls[MYMALLOC_CALL_NEW_ARRAY];
    unsigned long long deletes = 0;
    for (int i = MYMALLOC_CALL_DELETE; i <= MYMALLOC_CALL_DELETE_ARRAY_SIZED_ALIGNED; i++)
        deletes += after.calls[i] - before.calls[i];
    std::printf("%zu names, first \"%s\", last \"%s\", total %ld\n", names.size(), names.front().c_str(),
                names.back().c_str(), total);
    unsigned long long mallocs = after.calls[MYMALLOC_CALL_MALLOC] - before.calls[MYMALLOC_CALL_MALLOC];
    std::printf("counted: new %s, new[] %s, delete %s, malloc %s\n", news >= 1500 ? "yes" : "no",
                arrays >= 1 ? "yes" : "no", deletes >= 1500 ? "yes" : "no", mallocs >= 10 ? "yes" : "no");
    return mymalloc_check() == 0 ? 0 : 3;
}
CXX

if [ "$have_cxx" = yes ]; then
    # shellcheck disable=SC2086
    $cxx -std=c++11 -O2 -I"$srcdir/include" -o "$tmp/old" "$tmp/old.cc" \
        -L"$libdir" -lmymalloc++ -lmymalloc -Wl,-rpath,"$libdir" >"$tmp/old-cxx.out" 2>&1
    status=$?
    [ "$status" -eq 0 ] && [ -x "$tmp/old" ]
    ok $? "a -std=c++11 program compiles and links with -lmymalloc++ -lmymalloc (exit status $status)"
    [ "$status" -eq 0 ] || show "$tmp/old-cxx.out"

    if [ -x "$tmp/old" ]; then
        got=$("$tmp/old" 2>"$tmp/old.err")
        status=$?
        want='10 names, first "item number 0", last "item number 350", total 5954290
counted: new yes, new[] yes, delete yes, malloc yes'
        [ "$status" -eq 0 ] && [ "$got" = "$want" ] && stderr_clean "$tmp/old.err"
        ok $? "the C++11 program runs on libmymalloc++ and prints the right results (exit status $status)"
        if [ "$got" != "$want" ]; then
            diag "expected:"
            echo "$want" | sed 's/^/#   /'
            diag "got:"
            echo "$got" | sed -n '1,10s/^/#   /p'
        fi
    else
        skip "the C++11 program runs on libmymalloc++ and prints the right results" "it was not built"
    fi
else
    skip "a -std=c++11 program compiles and links with -lmymalloc++ -lmymalloc" "no C++ compiler ($cxx)"
    skip "the C++11 program runs on libmymalloc++ and prints the right results" "no C++ compiler ($cxx)"
fi

done_testing
