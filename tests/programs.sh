# programs.sh - big real programs on mymalloc through LD_PRELOAD, each with a
# result that is checked against a value known in advance (or against the
# same run without the preload where the output is long):
#   - sqlite3 builds a database of a million rows (recursive CTE), indexes
#     it, runs aggregates, a grouped count, an index lookup, a full sort and
#     a DISTINCT, then checks the file's integrity from a second process;
#   - git creates a repository of 400 files, branches, commits, merges,
#     repacks (gc) and checks out; object ids and outputs must be those of
#     the same steps run without the preload, and git fsck must be clean;
#   - python3 with PYTHONMALLOC=malloc (every object from malloc) runs eight
#     threads building dicts, lists and strings and a producer/consumer queue;
#   - bash runs a script of associative arrays, arrays and string work;
#   - g++ compiles an STL program under libmymalloc++ (operator new too),
#     and the program runs preloaded as well.
# Every preloaded run sets MYMALLOC_TOP_PAD to a bad value: each process that
# really runs on mymalloc says so once on stderr, which proves the preload
# took; any other line from mymalloc fails the point.  A point is skipped
# with a reason when its tool is missing.
# Environment: MYMALLOC_LIB (required), MYMALLOCXX_LIB, MYMALLOC_SRCDIR,
# PYTHON3, BASH, CXX.

srcdir=${MYMALLOC_SRCDIR:-$(dirname "$0")/..}
. "$srcdir/tests/preload-lib.sh"

library MYMALLOC_LIB
libxx=${MYMALLOCXX_LIB:-}
case $libxx in
'' | /*) ;;
*) libxx=$(pwd)/$libxx ;;
esac

scratch mymalloc-programs
predictable MYMALLOC_CHECK MYMALLOC_ABORT MYMALLOC_TCACHE PYTHONMALLOC

probe=programs-probe
probe_line="mymalloc: ignoring MYMALLOC_TOP_PAD=$probe: not a valid size"

# A hung program must not hang the suite.
if command -v timeout >/dev/null 2>&1; then
    limit="timeout 120"
else
    limit=
fi

# preloaded LIB COMMAND...: run COMMAND (and what it starts) on LIB.
preloaded() {
    pl_lib=$1
    shift
    # shellcheck disable=SC2086
    LD_PRELOAD=$pl_lib MYMALLOC_TOP_PAD=$probe $limit "$@"
}

# on_mymalloc WHAT STDERR MIN: at least MIN processes ran on mymalloc (each
# printed the probe line once) and mymalloc reported nothing else.
on_mymalloc() {
    om_n=$(grep -cxF "$probe_line" "$2")
    om_other=$(grep 'mymalloc' "$2" | grep -cvxF "$probe_line")
    if [ "${om_other:-0}" -ne 0 ]; then
        diag "$1: mymalloc reported on stderr:"
        grep 'mymalloc' "$2" | grep -vxF "$probe_line" | sed -n '1,10s/^/#   /p'
        return 1
    fi
    if [ "${om_n:-0}" -lt "$3" ]; then
        diag "$1: $om_n processes ran on mymalloc, $3 or more expected (is the preload working?)"
        return 1
    fi
    return 0
}

# same WHAT EXPECTED ACTUAL: the files are equal (diff shown when not).
same() {
    if cmp -s "$2" "$3"; then
        return 0
    fi
    diag "$1: unexpected output:"
    diff "$2" "$3" | sed -n '1,20s/^/#   /p'
    return 1
}

# ---------------------------------------------------------------- sqlite3
if command -v sqlite3 >/dev/null 2>&1; then
    cat >"$tmp/build.sql" <<'SQL'
PRAGMA cache_size = -65536;
PRAGMA synchronous = OFF;
CREATE TABLE t(i INTEGER PRIMARY KEY, v INTEGER, s TEXT);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000)
INSERT INTO t SELECT x, x % 1000, 'row-' || x FROM c;
CREATE INDEX t_v ON t(v);
SELECT count(*), sum(i), sum(v), sum(length(s)) FROM t;
SELECT count(*) FROM (SELECT v, count(*) AS n FROM t GROUP BY v HAVING n = 1000);
SELECT count(*), sum(i) FROM t WHERE v = 123;
SELECT sum(length(s)), min(s), max(s) FROM (SELECT s FROM t ORDER BY s DESC);
SELECT count(DISTINCT s) FROM t;
SQL
    # 1..1000000: the sum of i, of i % 1000, of the lengths of 'row-' || i
    # (4 * 10^6 + the digits of all numbers up to a million); v = 123 for
    # i = 123 + 1000k, k < 1000.
    cat >"$tmp/build.expected" <<'OUT'
1000000|500000500000|499500000|9888896
1000
1000|499623000
9888896|row-1|row-999999
1000000
OUT
    preloaded "$lib" sqlite3 -batch "$tmp/db" <"$tmp/build.sql" >"$tmp/build.out" 2>"$tmp/build.err"
    status=$?
    [ "$status" -eq 0 ] && same "sqlite3" "$tmp/build.expected" "$tmp/build.out" &&
        on_mymalloc "sqlite3" "$tmp/build.err" 1
    ok $? "sqlite3: a million rows inserted, indexed, aggregated, sorted: the known results (exit $status)"
    [ "$status" -eq 0 ] || show "$tmp/build.err"

    printf '%s\n' 'PRAGMA integrity_check;' 'SELECT count(*), sum(v) FROM t WHERE v BETWEEN 100 AND 199;' |
        preloaded "$lib" sqlite3 -batch "$tmp/db" >"$tmp/check.out" 2>"$tmp/check.err"
    status=$?
    printf '%s\n' ok '100000|14950000' >"$tmp/check.expected"
    [ "$status" -eq 0 ] && same "sqlite3 integrity" "$tmp/check.expected" "$tmp/check.out" &&
        on_mymalloc "sqlite3" "$tmp/check.err" 1
    ok $? "sqlite3: the database file passes integrity_check from a second preloaded process"
    rm -f "$tmp/db"
else
    skip "sqlite3: a million rows" "sqlite3 not installed (Debian: sqlite3)"
    skip "sqlite3: integrity_check" "sqlite3 not installed (Debian: sqlite3)"
fi

# ---------------------------------------------------------------- git
# The same steps in a fresh repository; fixed names and dates make every
# object id reproducible.  Prints what the steps should agree on.
git_steps() {
    (
        set -e
        repo=$1
        git init -q "$repo"
        cd "$repo"
        git symbolic-ref HEAD refs/heads/main
        d=0
        while [ $d -lt 20 ]; do
            mkdir "dir$d"
            f=0
            while [ $f -lt 20 ]; do
                printf 'file %d of directory %d\nline two\n%s\n' $f $d "$(printf '%*s' $((f * 10 + d)) '' | tr ' ' x)" \
                    >"dir$d/file$f.txt"
                f=$((f + 1))
            done
            d=$((d + 1))
        done
        git add -A
        git commit -q -m "400 files"
        git checkout -q -b feature
        d=0
        while [ $d -lt 20 ]; do
            printf 'changed on feature\n' >>"dir$d/file3.txt"
            printf 'new file on feature\n' >"dir$d/new.txt"
            d=$((d + 1))
        done
        git rm -q dir7/file9.txt dir8/file9.txt
        git add -A
        git commit -q -m "feature: 20 changed, 20 new, 2 removed"
        git checkout -q main
        printf 'changed on main\n' >>dir0/file0.txt
        git commit -q -a -m "main: one change"
        git merge -q --no-edit feature
        git gc -q
        git fsck --full --strict --no-progress
        echo "head $(git rev-parse HEAD)"
        echo "feature $(git rev-parse feature)"
        echo "tree $(git rev-parse 'HEAD^{tree}')"
        echo "commits $(git rev-list --count HEAD)"
        echo "files $(git ls-files | wc -l)"
        echo "packed $(git count-objects -v | sed -n 's/^in-pack: //p')"
        git log --format='%s' | sort
        git diff --stat HEAD~1 HEAD | tail -n 1
        git checkout -q HEAD~2
        echo "detached $(wc -l <dir5/file3.txt) $(ls dir5 | wc -l)"
        git checkout -q feature
        echo "feature $(wc -l <dir0/file0.txt) $(ls dir7 | wc -l)"
    )
}

if command -v git >/dev/null 2>&1; then
    mkdir "$tmp/home"
    HOME=$tmp/home
    GIT_CONFIG_NOSYSTEM=1
    GIT_AUTHOR_NAME=mymalloc GIT_AUTHOR_EMAIL=mymalloc@example.org GIT_AUTHOR_DATE='2024-01-02T03:04:05+00:00'
    GIT_COMMITTER_NAME=mymalloc GIT_COMMITTER_EMAIL=mymalloc@example.org GIT_COMMITTER_DATE='2024-01-02T03:04:05+00:00'
    export HOME GIT_CONFIG_NOSYSTEM GIT_AUTHOR_NAME GIT_AUTHOR_EMAIL GIT_AUTHOR_DATE \
        GIT_COMMITTER_NAME GIT_COMMITTER_EMAIL GIT_COMMITTER_DATE
    git_steps "$tmp/plain" >"$tmp/git.expected" 2>"$tmp/git-plain.err"
    plain=$?
    LD_PRELOAD=$lib MYMALLOC_TOP_PAD=$probe
    export LD_PRELOAD MYMALLOC_TOP_PAD
    git_steps "$tmp/preloaded" >"$tmp/git.out" 2>"$tmp/git.err"
    status=$?
    unset LD_PRELOAD MYMALLOC_TOP_PAD
    if [ "$plain" -ne 0 ]; then
        skip "git: repository steps" "git fails without the preload too (exit $plain)"
        show "$tmp/git-plain.err"
    else
        # One line of each kind is checked against what the steps must give.
        grep -qx 'commits 4' "$tmp/git.out" && grep -qx 'files 418' "$tmp/git.out" &&
            grep -qx 'detached 3 20' "$tmp/git.out" && grep -qx 'feature 3 20' "$tmp/git.out"
        known=$?
        [ "$status" -eq 0 ] && [ "$known" -eq 0 ] && same "git" "$tmp/git.expected" "$tmp/git.out" &&
            on_mymalloc "git" "$tmp/git.err" 10
        ok $? "git: init, add 400 files, branch, commit, merge, gc, fsck, checkout: the same objects as without the preload (exit $status)"
        [ "$status" -eq 0 ] || show "$tmp/git.err"
    fi
    rm -rf "$tmp/plain" "$tmp/preloaded"
else
    skip "git: repository steps" "git not installed (Debian: git)"
fi

# ---------------------------------------------------------------- python3
python=${PYTHON3:-}
[ -n "$python" ] || python=/usr/bin/python3
[ -x "$python" ] || python=$(command -v python3 2>/dev/null)
if [ -n "$python" ] && "$python" -c 'import threading, queue, hashlib' >/dev/null 2>&1; then
    cat >"$tmp/work.py" <<'PY'
import hashlib
import queue
import threading

THREADS, PER = 8, 50000
sums = [0] * THREADS
digests = [None] * THREADS

def build(k):
    table = {}
    for i in range(k * PER, (k + 1) * PER):
        table["key-%d" % i] = [i, i * i, "x" * (i % 7)]
    total = 0
    for key, value in table.items():
        total += value[1]
    h = hashlib.sha256()
    for key in sorted(table):
        h.update(key.encode())
        h.update(table[key][2].encode())
    sums[k] = total
    digests[k] = h.hexdigest()[:16]

threads = [threading.Thread(target=build, args=(k,)) for k in range(THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()

# Producer/consumer: strings made in one thread, measured in others.
q = queue.Queue(maxsize=1000)
lengths = []
lock = threading.Lock()

def consume():
    local = 0
    while True:
        item = q.get()
        if item is None:
            break
        local += len(item)
    with lock:
        lengths.append(local)

consumers = [threading.Thread(target=consume) for _ in range(4)]
for t in consumers:
    t.start()
for i in range(100000):
    q.put(str(i) * 3)
for _ in consumers:
    q.put(None)
for t in consumers:
    t.join()

print(sum(sums))
print(sum(lengths))
print(" ".join(digests))
PY
    # sum of i*i for i < 400000; 3 * (digits of 0..99999)
    squares=$((399999 * 400000 * 799999 / 6))
    digits=$((3 * (10 * 1 + 90 * 2 + 900 * 3 + 9000 * 4 + 90000 * 5)))
    "$python" "$tmp/work.py" >"$tmp/py.expected" 2>"$tmp/py-plain.err"
    plain=$?
    PYTHONMALLOC=malloc preloaded "$lib" "$python" "$tmp/work.py" >"$tmp/py.out" 2>"$tmp/py.err"
    status=$?
    first=$(sed -n 1p "$tmp/py.out")
    second=$(sed -n 2p "$tmp/py.out")
    [ "$status" -eq 0 ] && [ "$plain" -eq 0 ] && [ "$first" = "$squares" ] && [ "$second" = "$digits" ] &&
        same "python3" "$tmp/py.expected" "$tmp/py.out" && on_mymalloc "python3" "$tmp/py.err" 1
    ok $? "python3 (PYTHONMALLOC=malloc): 8 threads of dicts and strings, a queue to 4 consumers: $first, $second (exit $status)"
    [ "$status" -eq 0 ] || show "$tmp/py.err"
else
    skip "python3: threaded workload" "python3 not found"
fi

# ---------------------------------------------------------------- bash
bash=${BASH:-}
case $bash in
*/bash) ;;
*) bash=$(command -v bash 2>/dev/null) ;;
esac
if [ -n "$bash" ] && [ -x "$bash" ]; then
    cat >"$tmp/work.bash" <<'BASH'
declare -A h
for ((i = 0; i < 20000; i++)); do h["k$i"]=$((i * 3)); done
sum=0
for k in "${!h[@]}"; do ((sum += h[$k])); done
echo "assoc ${#h[@]} $sum"
unset 'h[k5]' 'h[k6]'
echo "after unset ${#h[@]}"
arr=()
for ((i = 0; i < 20000; i++)); do arr+=("item-$i"); done
joined="${arr[*]}"
echo "joined ${#joined}"
s=
for ((i = 0; i < 2000; i++)); do s+=ab; done
t=${s//ab/xyz}
echo "strings ${#s} ${#t}"
n=0
for i in $(seq 1 300); do x=$(printf '%s' "$i"); n=$((n + x)); done
echo "subshells $n"
mapfile -t lines < <(printf 'line %d\n' {1..5000})
echo "mapfile ${#lines[@]} ${lines[4999]}"
BASH
    # 3 * (0 + ... + 19999); 20000 * 5 + the digits of 0..19999 + 19999 spaces
    cat >"$tmp/bash.expected" <<'OUT'
assoc 20000 599970000
after unset 19998
joined 208889
strings 4000 6000
subshells 45150
mapfile 5000 line 5000
OUT
    preloaded "$lib" "$bash" "$tmp/work.bash" >"$tmp/bash.out" 2>"$tmp/bash.err"
    status=$?
    [ "$status" -eq 0 ] && same "bash" "$tmp/bash.expected" "$tmp/bash.out" &&
        on_mymalloc "bash" "$tmp/bash.err" 1
    ok $? "bash: associative arrays, arrays, strings, subshells, mapfile: the known results (exit $status)"
    [ "$status" -eq 0 ] || show "$tmp/bash.err"
else
    skip "bash: script" "bash not found"
fi

# ---------------------------------------------------------------- g++
cxx=${CXX:-g++}
# shellcheck disable=SC2086
set -- $cxx
if [ -z "$libxx" ] || [ ! -f "$libxx" ]; then
    skip "g++: STL program compiled under libmymalloc++" "MYMALLOCXX_LIB (${libxx:-unset}) is not a file"
    skip "g++: the program runs under libmymalloc++" "MYMALLOCXX_LIB is not a file"
elif [ -z "${1:-}" ] || ! command -v "$1" >/dev/null 2>&1; then
    skip "g++: STL program compiled under libmymalloc++" "no C++ compiler ($cxx)"
    skip "g++: the program runs under libmymalloc++" "no C++ compiler ($cxx)"
else
    cat >"$tmp/stl.cc" <<'CXX'
#include <algorithm>
#include <deque>
#include <iostream>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

int main()
{
    std::vector<std::string> words;
    for (int i = 0; i < 200000; i++)
        words.push_back("w" + std::to_string(i % 5000));
    std::unordered_map<std::string, int> freq;
    for (const auto &w : words)
        freq[w]++;
    auto minmax = std::minmax_element(freq.begin(), freq.end(),
                                      [](const auto &a, const auto &b) { return a.second < b.second; });

    long long total = 0;
    std::mutex m;
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; t++)
        threads.emplace_back([t, &total, &m] {
            std::set<long long> squares;
            for (long long i = t * 100000LL; i < (t + 1) * 100000LL; i++)
                squares.insert(i * i);
            long long sum = std::accumulate(squares.begin(), squares.end(), 0LL);
            std::lock_guard<std::mutex> hold(m);
            total += sum;
        });
    for (auto &th : threads)
        th.join();

    std::map<int, std::list<std::shared_ptr<std::string>>> buckets;
    for (int i = 0; i < 50000; i++)
        buckets[i % 97].push_back(std::make_shared<std::string>(std::to_string(i)));
    std::size_t chars = 0;
    for (const auto &b : buckets)
        for (const auto &s : b.second)
            chars += s->size();

    std::deque<std::unique_ptr<int[]>> arrays;
    for (int i = 0; i < 1000; i++) {
        arrays.emplace_back(new int[i + 1]());
        arrays.back()[i] = i;
        if (arrays.size() > 100)
            arrays.pop_front();
    }

    std::ostringstream out;
    out << freq.size() << " " << minmax.first->second << " " << minmax.second->second << "\n"
        << total << "\n" << buckets.size() << " " << chars << "\n" << arrays.size() << " " << arrays.back()[999] << "\n";
    std::cout << out.str();
    return 0;
}
CXX
    # 5000 words of 40 each; sum of i*i for i < 400000; the digits of 0..49999.
    printf '%s\n' '5000 40 40' "$((399999 * 400000 * 799999 / 6))" \
        "97 $((10 * 1 + 90 * 2 + 900 * 3 + 9000 * 4 + 40000 * 5))" '100 999' >"$tmp/stl.expected"
    # shellcheck disable=SC2086
    preloaded "$libxx" $cxx -std=c++17 -O1 -pthread -o "$tmp/stl" "$tmp/stl.cc" >"$tmp/cxx.out" 2>"$tmp/cxx.err"
    status=$?
    # The driver, cc1plus and as at least (collect2 and ld too with gcc).
    [ "$status" -eq 0 ] && [ -x "$tmp/stl" ] && on_mymalloc "$cxx" "$tmp/cxx.err" 3
    ok $? "$cxx compiles an STL program with every process on libmymalloc++ (exit $status)"
    [ "$status" -eq 0 ] || show "$tmp/cxx.err"
    if [ -x "$tmp/stl" ]; then
        preloaded "$libxx" "$tmp/stl" >"$tmp/stl.out" 2>"$tmp/stl.err"
        status=$?
        [ "$status" -eq 0 ] && same "stl" "$tmp/stl.expected" "$tmp/stl.out" && on_mymalloc "stl" "$tmp/stl.err" 1
        ok $? "the STL program (threads, sets, maps, shared_ptr, arrays) runs on libmymalloc++ with the known results"
    else
        skip "the STL program runs on libmymalloc++" "it was not built"
    fi
fi

done_testing
