# mymalloc_run.sh - the mymalloc-run command: it runs programs on mymalloc
# (the real library file, first in LD_PRELOAD, kept through exec and in the
# children), passes arguments and the exit status through untouched, turns
# its options into the library's environment variables, and fails with
# env(1)'s statuses and a usage message.  The man page renders cleanly and
# documents every option.
# It runs tests/mymalloc-run, the script make builds from
# tools/mymalloc-run.in for the build tree's library, and tests/run_probe.
# Environment: MYMALLOC_TEST_BIN, MYMALLOC_LIB, MYMALLOC_SRCDIR,
# MYMALLOCXX_LIB (optional).

srcdir=${MYMALLOC_SRCDIR:-$(dirname "$0")/..}
. "$srcdir/tests/preload-lib.sh"

bin=${MYMALLOC_TEST_BIN:-}
run=$bin/mymalloc-run
probe=$bin/run_probe
for f in "$run" "$probe"; do
    if [ ! -x "$f" ]; then
        echo "Bail out! $f is missing (MYMALLOC_TEST_BIN=${bin:-unset}; run through make check)"
        exit 1
    fi
done
library MYMALLOC_LIB
# What the script must preload: the file behind the symbolic links.
real=$(readlink -f "$lib")

scratch mymalloc-run
tmp=$(cd "$tmp" && pwd)
predictable MYMALLOC_STATS MYMALLOC_CHECK MYMALLOC_HEAPMAP MYMALLOC_ABORT
# No core file from the runs that abort (dash, bash and busybox sh have -c).
# shellcheck disable=SC3045
ulimit -c 0 2>/dev/null

out=$tmp/out
err=$tmp/err

# show (preload-lib.sh) gives a file's first 12 lines here.
show_lines=12

# try COMMAND...: run it with stdout in $out, stderr in $err; status in $st.
try() {
    "$@" >"$out" 2>"$err"
    st=$?
}

# expect_out TEXT: $out is exactly TEXT (and a newline), or say what it was.
expect_out() {
    printf '%s\n' "$1" >"$tmp/want"
    cmp -s "$tmp/want" "$out" && return 0
    diag "expected on stdout:"
    show "$tmp/want"
    diag "got (exit status $st):"
    show "$out"
    diag "stderr:"
    show "$err"
    return 1
}

# expect_status N: $st is N, or say what happened.
expect_status() {
    [ "$st" -eq "$1" ] && return 0
    diag "exit status $st, expected $1; stderr:"
    show "$err"
    return 1
}

# usage_failure STATUS PATTERN: the run failed with STATUS, stderr has a line
# matching PATTERN (a grep BRE), and the command did not run (no stdout).
usage_failure() {
    expect_status "$1" || return 1
    if ! grep -q "$2" "$err"; then
        diag "stderr does not match '$2':"
        show "$err"
        return 1
    fi
    if [ -s "$out" ]; then
        diag "the command ran anyway:"
        show "$out"
        return 1
    fi
    return 0
}

# ------------------------------------------------------- --version, --help
try "$run" --version
expect_status 0 && [ -n "$version" ] && expect_out "mymalloc-run (mymalloc) $version"
ok $? "--version prints \"mymalloc-run (mymalloc) $version\""

try "$run" --help
expect_status 0 && [ ! -s "$err" ] &&
    [ "$(sed -n 1p "$out")" = "Usage: mymalloc-run [OPTION]... [--] COMMAND [ARG]..." ]
ok $? "--help prints the usage on stdout and exits 0"

# --------------------------------------------------- the program's malloc
try "$probe" malloc
expect_out "malloc from libc.so.6
mymalloc_version (absent)"
ok $? "run_probe alone gets malloc from libc (it is not linked with mymalloc)"

file=${real##*/}
try "$run" "$probe" malloc
expect_status 0 && expect_out "malloc from $file
mymalloc_version $version" && [ ! -s "$err" ]
ok $? "under mymalloc-run, its malloc comes from $file and mymalloc_version() is \"$version\""

try "$run" "$probe" env LD_PRELOAD
expect_out "LD_PRELOAD=$real"
ok $? "LD_PRELOAD names the library's real file by its absolute path"

try "$run" "$probe" maps
expect_out "$real"
ok $? "$file is mapped in the program (/proc/self/maps)"

# shellcheck disable=SC2016
try "$run" /bin/sh -c '"$1" malloc' sh "$probe"
expect_status 0 && expect_out "malloc from $file
mymalloc_version $version"
ok $? "a program started by the command (through /bin/sh) runs on mymalloc too"

# ---------------------------------------------- arguments and exit status
nl='
'
# shellcheck disable=SC2016
set -- "a b" "" "  two  spaces  " 'say "hi"' "it's" '*' '$HOME' 'back\slash' \
    "line one${nl}line two" -n --stats --check=7 -- "tab	here"
printf '[%s]\n' "$@" >"$tmp/want-args"
try "$run" "$probe" args "$@"
cmp -s "$tmp/want-args" "$out" && expect_status 0
ok $? "arguments reach the program verbatim (spaces, empty, quotes, glob, newline, option-like)"
if [ "$st" -ne 0 ] || ! cmp -s "$tmp/want-args" "$out"; then
    diag "got (exit status $st):"
    show "$out"
    show "$err"
fi
set --

for n in 0 3 42 125 255; do
    try "$run" "$probe" exit "$n"
    expect_status "$n"
    ok $? "the program's exit status $n comes back"
done

"$run" "$probe" pid >"$out" 2>"$err" &
job=$!
wait "$job"
st=$?
expect_status 0 && expect_out "$job"
ok $? "mymalloc-run execs the program (same process id, no shell left waiting)"

try "$run" -- "$probe" args -- x
expect_status 0 && expect_out "[--]
[x]"
ok $? "-- ends the options; later arguments, -- too, belong to the program"

try "$run" "$probe" env MYMALLOC_STATS --stats
expect_out "MYMALLOC_STATS unset
--stats unset"
ok $? "options after the command name are the program's"

mkdir "$tmp/bin1" "$tmp/bin2"
: >"$tmp/bin1/run_probe"
chmod 644 "$tmp/bin1/run_probe"
ln -s "$probe" "$tmp/bin2/run_probe"
try env PATH="$tmp/bin1:$tmp/bin2:$PATH" "$run" run_probe malloc
expect_status 0 && expect_out "malloc from $file
mymalloc_version $version"
ok $? "a command name is looked up in PATH (skipping a file that is not executable)"

# ------------------------------------------------------------ --check
try "$probe" overflow
expect_status 0 && expect_out "freed"
ok $? "run_probe overflow alone: glibc does not notice a byte written past a 20-byte request"

try "$run" "$probe" overflow
expect_status 0 && expect_out "freed" && [ ! -s "$err" ]
ok $? "with the default checks (level 1) mymalloc does not see it either: the byte is in the block's slack"

pattern='^mymalloc: free(): write past the end of block 0x[0-9a-f]* (20 bytes requested, byte 20 overwritten, block of [0-9]* bytes)$'
try "$run" --check=2 "$probe" overflow
expect_status 134 && [ ! -s "$out" ] && grep -q "$pattern" "$err"
ok $? "--check=2: the program dies by SIGABRT with the level-2 write-past-the-end report"
[ "$st" -eq 134 ] || show "$err"

try "$run" --check 2 "$probe" overflow
expect_status 134 && grep -q "$pattern" "$err"
ok $? "--check 2 (value as the next argument) works the same"

for level in 0 1 2; do
    try "$run" --check="$level" "$probe" env MYMALLOC_CHECK
    expect_status 0 && expect_out "MYMALLOC_CHECK=$level"
    ok $? "--check=$level sets MYMALLOC_CHECK=$level"
done

for bad in 7 -1 1x 02 " 1" ""; do
    try "$run" --check="$bad" "$probe" args ran
    usage_failure 125 "^mymalloc-run: .*check" && grep -q '^Usage: mymalloc-run ' "$err"
    ok $? "--check='$bad' is a usage error (status 125, usage on stderr, nothing run)"
done

try "$run" --check
usage_failure 125 "^mymalloc-run: option '--check' requires a level"
ok $? "--check as the last argument is a usage error"

try "$run" --check "" "$probe" args ran
usage_failure 125 "^mymalloc-run: option '--check' requires a level"
ok $? "--check with an empty next argument is a usage error"

try "$run" --check "$probe" args ran
usage_failure 125 "^mymalloc-run: invalid check level '.*run_probe'"
ok $? "--check followed by the command is a usage error naming the bad level"

# ---------------------------------------------------- --stats, --heapmap
try "$run" "$probe" env MYMALLOC_STATS MYMALLOC_HEAPMAP MYMALLOC_CHECK
expect_out "MYMALLOC_STATS unset
MYMALLOC_HEAPMAP unset
MYMALLOC_CHECK unset"
ok $? "without options mymalloc-run sets none of the variables"

try "$run" --stats "$probe" env MYMALLOC_STATS
expect_status 0 && expect_out "MYMALLOC_STATS=1"
ok $? "--stats sets MYMALLOC_STATS=1"

try "$run" --heapmap="$tmp/map.svg" "$probe" env MYMALLOC_HEAPMAP
expect_status 0 && expect_out "MYMALLOC_HEAPMAP=$tmp/map.svg"
ok $? "--heapmap=FILE sets MYMALLOC_HEAPMAP=FILE"

(cd "$tmp/bin1" && "$run" --heapmap maps/heap.svg "$probe" env MYMALLOC_HEAPMAP) >"$out" 2>"$err"
st=$?
expect_status 0 && expect_out "MYMALLOC_HEAPMAP=$tmp/bin1/maps/heap.svg"
ok $? "--heapmap FILE with a relative name: made absolute from the current directory"

try "$run" --stats --check=2 --heapmap="$tmp/m.svg" --check=0 "$probe" env MYMALLOC_STATS MYMALLOC_CHECK MYMALLOC_HEAPMAP
expect_status 0 && expect_out "MYMALLOC_STATS=1
MYMALLOC_CHECK=0
MYMALLOC_HEAPMAP=$tmp/m.svg"
ok $? "options combine; the last --check wins"

for bad in --heapmap= --heapmap; do
    try "$run" $bad
    usage_failure 125 "^mymalloc-run: option '--heapmap' requires a file name"
    ok $? "'$bad' without a file name is a usage error"
done

try "$run" --stats=yes "$probe" args ran
usage_failure 125 "^mymalloc-run: option '--stats' doesn't allow an argument"
ok $? "--stats=yes is a usage error"

# ------------------------------------------------------------ LD_PRELOAD
other=${MYMALLOCXX_LIB:-}
if [ -n "$other" ] && [ -f "$other" ]; then
    try env LD_PRELOAD="$other" "$run" "$probe" env LD_PRELOAD
    expect_status 0 && expect_out "LD_PRELOAD=$real:$other"
    ok $? "an existing LD_PRELOAD is kept, after the library"

    try env LD_PRELOAD="$other" "$run" "$probe" maps
    expect_status 0 && grep -qx "$real" "$out" && grep -q '/libmymalloc++\.so' "$out"
    ok $? "both libraries are then loaded in the program"
    [ "$st" -eq 0 ] || show "$err"
else
    skip "an existing LD_PRELOAD is kept, after the library" "no libmymalloc++ (MYMALLOCXX_LIB)"
    skip "both libraries are then loaded in the program" "no libmymalloc++ (MYMALLOCXX_LIB)"
fi

# ----------------------------------------------------------- usage errors
for bad in --bogus -x --stat --check-level=1; do
    try "$run" $bad "$probe" args ran
    usage_failure 125 "^mymalloc-run: unrecognized option '$bad'$" && grep -q '^Usage: mymalloc-run ' "$err"
    ok $? "unknown option $bad: status 125, usage on stderr, nothing run"
done

for args in "" "--stats" "--" "--check=1 --"; do
    # shellcheck disable=SC2086
    try "$run" $args
    usage_failure 125 "^mymalloc-run: no command given$" && grep -q '^Usage: mymalloc-run ' "$err"
    ok $? "no command after '$args': status 125 and the usage"
done

try "$run" mymalloc-run-no-such-command arg
usage_failure 127 "^mymalloc-run: mymalloc-run-no-such-command: command not found$"
ok $? "a command not in PATH: status 127 with a message"

try "$run" "$tmp/no/such/program"
usage_failure 127 "^mymalloc-run: $tmp/no/such/program: No such file or directory$"
ok $? "a missing program path: status 127 with a message"

try env PATH="$tmp/bin1" "$run" run_probe
usage_failure 126 "^mymalloc-run: $tmp/bin1/run_probe: Permission denied$"
ok $? "a command found only as a file that is not executable: status 126"

try "$run" "$tmp/bin1"
usage_failure 126 "^mymalloc-run: $tmp/bin1: Is a directory$"
ok $? "a directory as the command: status 126"

# ------------------------------------------------- the library's location
# Copies of the script, as make writes it, for other library directories.
sed "s|^libdir=.*|libdir='$tmp/nowhere'|" "$run" >"$tmp/run-nowhere"
try sh "$tmp/run-nowhere" "$probe" args ran
usage_failure 125 "^mymalloc-run: cannot find the mymalloc library $tmp/nowhere/libmymalloc\.so\."
ok $? "no library where the script looks: status 125 with a message, nothing run"

mkdir "$tmp/lib dir"
cp "$real" "$tmp/lib dir/"
dlname=$(sed -n "s/^dlname='\(.*\)'$/\1/p" "$run")
ln -s "$file" "$tmp/lib dir/$dlname"
sed "s|^libdir=.*|libdir='$tmp/lib dir'|" "$run" >"$tmp/run-space"
try sh "$tmp/run-space" "$probe" args ran
usage_failure 125 "^mymalloc-run: cannot preload $tmp/lib dir/$file: LD_PRELOAD cannot hold a path with a space"
ok $? "a library path with a space (LD_PRELOAD cannot take it): status 125"

# The installed script is the same text, but for the library directory.
inst=$bin/../tools/mymalloc-run
if [ -f "$inst" ]; then
    sed '/^libdir=/d' "$inst" >"$tmp/inst.body"
    sed '/^libdir=/d' "$run" >"$tmp/run.body"
    inst_libdir=$(sed -n 's/^libdir=//p' "$inst")
    cmp -s "$tmp/inst.body" "$tmp/run.body" && [ -n "$inst_libdir" ] &&
        [ "$inst_libdir" != "$(sed -n 's/^libdir=//p' "$run")" ]
    ok $? "tools/mymalloc-run (installed) differs from the tested script only in its libdir ($inst_libdir)"
else
    ok 1 "tools/mymalloc-run was not built"
fi

# ---------------------------------------------------------- the man page
page=$srcdir/man/mymalloc-run.1
if command -v man >/dev/null 2>&1; then
    MANWIDTH=80 man --warnings -l "$page" 2>"$tmp/man.err" >"$tmp/man.txt"
    st=$?
    [ "$st" -eq 0 ] && [ ! -s "$tmp/man.err" ] && grep -q 'mymalloc-run' "$tmp/man.txt"
    ok $? "man/mymalloc-run.1 renders without a warning (man --warnings -l)"
    [ -s "$tmp/man.err" ] && show "$tmp/man.err"
else
    skip "man/mymalloc-run.1 renders without a warning" "no man (man-db)"
fi

# Every option --help lists has its entry in the page's OPTIONS.
"$run" --help | sed -n 's/^  \(--[a-z]*\).*/\1/p' >"$tmp/options"
missing=
n=0
while IFS= read -r opt; do
    n=$((n + 1))
    # In the page: .BR \-\-check = N  or .B \-\-stats
    esc=$(printf '%s\n' "$opt" | sed 's/-/\\\\-/g')
    grep -q "^\.B[RI]* $esc\b" "$page" || missing="$missing $opt"
done <"$tmp/options"
[ "$n" -ge 5 ] && [ -z "$missing" ]
ok $? "the man page documents each of the $n options of --help${missing:+ (missing:$missing)}"

done_testing
