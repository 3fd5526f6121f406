# preload.sh - real programs with libmymalloc.so as their malloc through
# LD_PRELOAD: a threaded Python workload (with PYTHONMALLOC=malloc, so every
# Python object comes from us), a bash script doing real work, gcc compiling
# a program (the driver, cc1, as and ld all preloaded), and a program that
# allocates in its constructors, before main.  Outputs are compared with the
# same programs run without the preload.  Each part is skipped when its tool
# is missing.
# Environment: MYMALLOC_LIB, MYMALLOC_SRCDIR, CC, PYTHON3, BASH (all optional
# but MYMALLOC_LIB).

srcdir=${MYMALLOC_SRCDIR:-$(dirname "$0")/..}
. "$srcdir/tests/preload-lib.sh"

library MYMALLOC_LIB
scratch mymalloc-preload
predictable MYMALLOC_STATS

# same_output WHAT EXPECTED ACTUAL STATUS STDERR: the preloaded run exited 0,
# printed something, the same thing as the plain run, and mymalloc had
# nothing to report.
same_output() {
    if [ "$4" -ne 0 ]; then
        diag "$1: exit status $4; stderr:"
        show "$5"
        return 1
    fi
    if [ ! -s "$2" ]; then
        diag "$1: the run without LD_PRELOAD printed nothing"
        return 1
    fi
    if ! cmp -s "$2" "$3"; then
        diag "$1: output differs from the run without LD_PRELOAD:"
        diff "$2" "$3" | sed -n '1,15s/^/#   /p'
        return 1
    fi
    stderr_clean "$5"
}

# ---------------------------------------------------------------- Python
python=${PYTHON3:-}
[ -n "$python" ] || python=$(command -v python3 2>/dev/null)
if [ -n "$python" ] && "$python" -c 'import threading, zlib, ctypes' >/dev/null 2>&1; then
    have_python=yes
else
    have_python=no
fi

cat >"$tmp/work.py" <<'PY'
import threading, zlib

def work(k, out):
    table = {}
    crc = 0
    for i in range(20000):
        key = "t%d-%d-%s" % (k, i, "x" * (i % 17))
        table[key] = [i, i * k, str(i * 7919 % 10007), key.upper()]
        if i % 3 == 0:
            table.pop("t%d-%d-%s" % (k, i // 2, "x" * ((i // 2) % 17)), None)
        if i % 1000 == 999:
            blob = "".join(sorted(table)[::7]).encode()
            crc = zlib.crc32(blob, crc)
            big = bytearray(blob) * 8           # large: above the mmap threshold
            big.extend(bytes(range(256)) * (i // 1000))
            crc = zlib.crc32(big, crc)
            del big
    words = sorted(set(v[2] for v in table.values()))
    out[k] = (len(table), len(words), zlib.crc32(" ".join(words).encode(), crc))

out = [None] * 4
threads = [threading.Thread(target=work, args=(k, out)) for k in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(" ".join("%d:%d:%d:%08x" % ((k,) + out[k]) for k in range(4)))
PY

# py_run NAME [VAR=VALUE...]: work.py preloaded, with PYTHONMALLOC=malloc.
py_run() {
    name=$1
    shift
    env LD_PRELOAD="$lib" PYTHONMALLOC=malloc "$@" "$python" "$tmp/work.py" \
        >"$tmp/py-$name.out" 2>"$tmp/py-$name.err"
}

if [ "$have_python" = yes ]; then
    diag "python: $python"
    "$python" "$tmp/work.py" >"$tmp/py-plain.out" 2>"$tmp/py-plain.err"
    py_run threads
    same_output "python" "$tmp/py-plain.out" "$tmp/py-threads.out" $? "$tmp/py-threads.err"
    ok $? "python3 (PYTHONMALLOC=malloc, 4 threads) gives the same result preloaded"

    env LD_PRELOAD="$lib" PYTHONMALLOC=malloc "$python" -c '
import ctypes
f = ctypes.CDLL(None).mymalloc_version
f.restype = ctypes.c_char_p
print(f().decode())' >"$tmp/py-version.out" 2>"$tmp/py-version.err"
    got=$(cat "$tmp/py-version.out")
    [ -n "$version" ] && [ "$got" = "$version" ]
    ok $? "preloaded python3 finds mymalloc_version() = \"$version\" (got \"$got\")"
    [ -n "$got" ] || show "$tmp/py-version.err"
else
    skip "python3 (PYTHONMALLOC=malloc, 4 threads) gives the same result preloaded" "no python3"
    skip "preloaded python3 finds mymalloc_version()" "no python3"
fi

# ---------------------------------------------------------------- bash
bash_prog=${BASH:-}
[ -n "$bash_prog" ] && [ -x "$bash_prog" ] || bash_prog=$(command -v bash 2>/dev/null)

cat >"$tmp/work.bash" <<'BASH'
set -e
declare -a items
declare -A count
for ((i = 0; i < 4000; i++)); do
    items+=("item$(( (i * 7919) % 1009 ))")
done
for w in "${items[@]}"; do
    count[$w]=$(( ${count[$w]:-0} + 1 ))
done
echo "${#items[@]} items, ${#count[@]} distinct"
s=
for ((i = 0; i < 1500; i++)); do
    s+="${items[i]},"
done
echo "${#s} ${s:100:40}"
t=${s//item/I}
echo "${#t} ${t:0:30} ${s^^}" | cksum
parts=(${s//,/ })
echo "${#parts[@]} ${parts[*]:10:5}"
printf '%s\n' "${items[@]}" | sort | uniq -c | sort -k1,1nr -k2,2 | head -n 5
keys=$(printf '%s\n' "${!count[@]}" | sort -t m -k2,2n | tr '\n' ' ')
echo "${#keys} ${keys:0:60}"
total=0
for n in $(printf '%s\n' "${count[@]}" | sort -n | uniq); do
    total=$(( total + n * $(printf '%s\n' "${count[@]}" | grep -cx "$n") ))
done
echo "total $total"
lines=$(for ((i = 0; i < 300; i++)); do printf 'line %05d %s\n' $(( (i * 37) % 300 )) "${items[i]}"; done | sort -r | tail -n 3)
echo "$lines"
BASH

if [ -n "$bash_prog" ]; then
    diag "bash: $bash_prog"
    "$bash_prog" "$tmp/work.bash" >"$tmp/bash-plain.out" 2>"$tmp/bash-plain.err"
    LD_PRELOAD="$lib" "$bash_prog" "$tmp/work.bash" >"$tmp/bash-pre.out" 2>"$tmp/bash-pre.err"
    same_output "bash" "$tmp/bash-plain.out" "$tmp/bash-pre.out" $? "$tmp/bash-pre.err"
    ok $? "a bash script (arrays, strings, sort/uniq pipelines, \$(...)) gives the same output preloaded"

    # bash reads its own memory map: the library must be in it, under the
    # name the kernel knows it by (symbolic links resolved).
    real=$(readlink -f "$lib" 2>/dev/null) || real=$lib
    file=${real##*/}
    LD_PRELOAD="$lib" "$bash_prog" -c 'n=0
        while IFS= read -r line; do
            case $line in */"$1") n=$((n + 1)) ;; esac
        done </proc/self/maps
        echo "$n"' maps "$file" >"$tmp/maps.out" 2>"$tmp/maps.err"
    n=$(cat "$tmp/maps.out")
    [ "${n:-0}" -gt 0 ] 2>/dev/null
    ok $? "$file is mapped in the preloaded bash (/proc/self/maps: ${n:-?} lines)"
else
    skip "a bash script gives the same output preloaded" "no bash"
    skip "libmymalloc is mapped in the preloaded bash" "no bash"
fi

# ---------------------------------------------------------------- gcc
cc=${CC:-cc}
# shellcheck disable=SC2086
set -- $cc
if [ -n "${1:-}" ] && command -v "$1" >/dev/null 2>&1; then
    have_cc=yes
else
    have_cc=no
fi

cat >"$tmp/primes.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node { struct node *next; int value; };

static int by_value_desc(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x < y) - (x > y);
}

int main(void)
{
    enum { LIMIT = 10000 };
    char *composite = calloc(LIMIT, 1);
    struct node *list = NULL;
    long sum = 0;
    int count = 0;
    if (composite == NULL)
        return 1;
    for (int i = 2; i < LIMIT; i++) {
        if (composite[i])
            continue;
        for (int j = 2 * i; j < LIMIT; j += i)
            composite[j] = 1;
        struct node *n = malloc(sizeof *n);
        if (n == NULL)
            return 1;
        n->value = i;
        n->next = list;
        list = n;
    }
    int *values = NULL;
    for (struct node *n = list; n != NULL; n = n->next) {
        int *grown = realloc(values, (size_t)(count + 1) * sizeof *values);
        if (grown == NULL)
            return 1;
        values = grown;
        values[count++] = n->value;
        sum += n->value;
    }
    qsort(values, (size_t)count, sizeof *values, by_value_desc);
    printf("%d primes below %d, sum %ld, largest %d\n", count, LIMIT, sum, values[0]);
    while (list != NULL) {
        struct node *next = list->next;
        free(list);
        list = next;
    }
    free(values);
    free(composite);
    return 0;
}
C

if [ "$have_cc" = yes ]; then
    diag "compiler: $cc"
    # shellcheck disable=SC2086
    LD_PRELOAD="$lib" $cc -O2 -o "$tmp/primes" "$tmp/primes.c" >"$tmp/cc.out" 2>"$tmp/cc.err"
    status=$?
    [ "$status" -eq 0 ] && [ -x "$tmp/primes" ] && stderr_clean "$tmp/cc.err"
    ok $? "$cc -O2 compiles and links a program preloaded (exit status $status)"
    [ "$status" -eq 0 ] || show "$tmp/cc.err"

    got=$("$tmp/primes" 2>&1)
    [ "$got" = "1229 primes below 10000, sum 5736396, largest 9973" ]
    ok $? "the program built by the preloaded compiler works (\"$got\")"

    # Every process that starts with the library reads its settings once:
    # a bad one makes each of them say so on stderr, so the lines count the
    # compiler's processes that ran with mymalloc.
    # shellcheck disable=SC2086
    LD_PRELOAD="$lib" MYMALLOC_TOP_PAD=not-a-size $cc -O2 -o "$tmp/primes2" "$tmp/primes.c" \
        >"$tmp/cc2.out" 2>"$tmp/cc2.err"
    status=$?
    n=$(grep -c '^mymalloc: ignoring MYMALLOC_TOP_PAD=not-a-size: not a valid size$' "$tmp/cc2.err")
    # gcc runs the driver, cc1, as, collect2 and ld; a compiler whose front
    # end is built in (clang) fewer.
    # shellcheck disable=SC2086
    cc1=$($cc -print-prog-name=cc1 2>/dev/null)
    case $cc1 in
    /*) want=4 ;;
    *) want=2 ;;
    esac
    [ "$status" -eq 0 ] && [ "${n:-0}" -ge "$want" ]
    ok $? "the compiler's own processes ran preloaded ($n processes reported, $want or more expected)"
else
    skip "$cc compiles and links a program preloaded" "no C compiler ($cc)"
    skip "the program built by the preloaded compiler works" "no C compiler ($cc)"
    skip "the compiler's own processes ran preloaded" "no C compiler ($cc)"
fi

# ------------------------------------------- allocation before main()
cat >"$tmp/early.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Present only when libmymalloc is loaded (weak: no link-time dependency). */
extern const char *mymalloc_version(void) __attribute__((weak));
extern int mymalloc_check(void) __attribute__((weak));

static char *message;
static long *squares;
static int early_check = -1;

__attribute__((constructor)) static void before_main(void)
{
    message = malloc(16);
    squares = calloc(1000, sizeof *squares);
    void *big = malloc(1 << 20);           /* a mapped block */
    if (message == NULL || squares == NULL || big == NULL)
        exit(3);
    strcpy(message, "early");
    for (int i = 0; i < 1000; i++)
        squares[i] = (long)i * i;
    message = realloc(message, 4096);
    if (message == NULL)
        exit(3);
    strcat(message, " and grown");
    memset(big, 1, 1 << 20);
    free(big);
    if (mymalloc_check != NULL)
        early_check = mymalloc_check();
}

int main(void)
{
    long sum = 0;
    for (int i = 0; i < 1000; i++)
        sum += squares[i];
    printf("%s %ld check %d %s\n", message, sum, early_check,
           mymalloc_version != NULL ? mymalloc_version() : "(not mymalloc)");
    free(message);
    free(squares);
    return 0;
}
C

if [ "$have_cc" = yes ]; then
    # shellcheck disable=SC2086
    if $cc -O1 -o "$tmp/early" "$tmp/early.c" >"$tmp/early-cc.out" 2>&1; then
        got=$(LD_PRELOAD="$lib" "$tmp/early" 2>"$tmp/early.err")
        status=$?
        [ "$status" -eq 0 ] && [ "$got" = "early and grown 332833500 check 0 $version" ] &&
            stderr_clean "$tmp/early.err"
        ok $? "a program allocating in its constructor runs preloaded (\"$got\", exit status $status)"
    else
        show "$tmp/early-cc.out"
        ok 1 "a program allocating in its constructor runs preloaded (could not compile it)"
    fi
else
    skip "a program allocating in its constructor runs preloaded" "no C compiler ($cc)"
fi

# ----------------------------------------------------- settings, preloaded
if [ "$have_python" = yes ]; then
    py_run mmap4k MYMALLOC_MMAP_THRESHOLD=4k
    same_output "python, MYMALLOC_MMAP_THRESHOLD=4k" "$tmp/py-plain.out" "$tmp/py-mmap4k.out" $? \
        "$tmp/py-mmap4k.err"
    ok $? "python3 with MYMALLOC_MMAP_THRESHOLD=4k gives the same result preloaded"

    py_run trim0 MYMALLOC_TRIM_THRESHOLD=0 MYMALLOC_TOP_PAD=0
    same_output "python, MYMALLOC_TRIM_THRESHOLD=0 MYMALLOC_TOP_PAD=0" "$tmp/py-plain.out" \
        "$tmp/py-trim0.out" $? "$tmp/py-trim0.err"
    ok $? "python3 with MYMALLOC_TRIM_THRESHOLD=0 MYMALLOC_TOP_PAD=0 gives the same result preloaded"
else
    skip "python3 with MYMALLOC_MMAP_THRESHOLD=4k gives the same result preloaded" "no python3"
    skip "python3 with MYMALLOC_TRIM_THRESHOLD=0 MYMALLOC_TOP_PAD=0 gives the same result preloaded" "no python3"
fi

# ------------------------------------------------ MYMALLOC_STATS=1, preloaded
# A program that knows nothing of mymalloc prints its output, then the table
# at exit on stderr.
if command -v sort >/dev/null 2>&1; then
    printf 'pear\napple\nfig\n' >"$tmp/sort.in"
    MYMALLOC_STATS=1 LD_PRELOAD="$lib" sort "$tmp/sort.in" >"$tmp/sort.out" 2>"$tmp/sort.err"
    status=$?
    calls=$(sed -n 's/^  malloc  *\([0-9][0-9]*\)$/\1/p' "$tmp/sort.err")
    [ "$status" -eq 0 ] && [ "$(cat "$tmp/sort.out")" = "$(printf 'apple\nfig\npear')" ] &&
        grep -q "^mymalloc $version statistics (process [0-9]*):\$" "$tmp/sort.err" &&
        grep -q '^requests by size:$' "$tmp/sort.err" && [ "${calls:-0}" -gt 0 ] 2>/dev/null
    ok $? "MYMALLOC_STATS=1 LD_PRELOAD=libmymalloc.so sort: the sorted lines, then the table at exit (malloc called ${calls:-?} times)"
    [ "$status" -eq 0 ] || show "$tmp/sort.err"
else
    skip "MYMALLOC_STATS=1 LD_PRELOAD=libmymalloc.so sort: the table at exit" "no sort"
fi

done_testing
