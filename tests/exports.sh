# exports.sh - the dynamic symbols libmymalloc.so defines are exactly the
# malloc family and mymalloc's own functions: one TAP point per expected
# function, one for "nothing else exported".
# Environment: MYMALLOC_LIB (the .so), MYMALLOC_SRCDIR, NM (optional).

srcdir=${MYMALLOC_SRCDIR:-$(dirname "$0")/..}
. "$srcdir/tests/tap.sh"

expected='aligned_alloc calloc free free_aligned_sized free_sized mallinfo mallinfo2 malloc
malloc_stats malloc_trim malloc_usable_size mallopt memalign mymalloc_alloc_counted
mymalloc_call_name mymalloc_check mymalloc_free_counted mymalloc_stats_get mymalloc_version
posix_memalign pvalloc realloc reallocarray valloc'

if [ -z "${MYMALLOC_LIB:-}" ] || [ ! -f "$MYMALLOC_LIB" ]; then
    echo "Bail out! MYMALLOC_LIB (${MYMALLOC_LIB:-unset}) is not a file"
    exit 1
fi

# $NM may carry options ("nm -B"): split it on purpose.  It must know -D.
nm_cmd=
if [ -n "${NM:-}" ] && $NM -D --defined-only "$MYMALLOC_LIB" >/dev/null 2>&1; then
    nm_cmd=$NM
elif command -v nm >/dev/null 2>&1 && nm -D --defined-only "$MYMALLOC_LIB" >/dev/null 2>&1; then
    nm_cmd='nm'
fi
if [ -z "$nm_cmd" ]; then
    echo "1..0 # SKIP no nm that reads dynamic symbols (-D)"
    exit 0
fi

listing=$($nm_cmd -D --defined-only "$MYMALLOC_LIB") || {
    echo "Bail out! $nm_cmd -D --defined-only $MYMALLOC_LIB failed"
    exit 1
}

# "ADDRESS TYPE NAME[@VERSION]" lines -> "NAME TYPE".  Left out: absolute
# symbols (version nodes of a version script) and what the linker itself
# defines (_init, _fini, section-end markers).
symbols=$(printf '%s\n' "$listing" | awk '
    NF >= 2 {
        type = $(NF - 1); name = $NF
        sub(/@.*/, "", name)
        if (type == "A") next
        if (name == "_init" || name == "_fini" || name == "_edata" || name == "_end" || name == "__bss_start") next
        print name, type
    }' | sort -u)

for fn in $expected; do
    type=$(printf '%s\n' "$symbols" | awk -v n="$fn" '$1 == n { print $2; exit }')
    case $type in
    T|W|i) ok 0 "exports function $fn" ;;
    '') ok 1 "exports function $fn (missing)" ;;
    *) ok 1 "exports function $fn (exported with type $type, not a function)" ;;
    esac
done

# shellcheck disable=SC2086
expected_line=" $(printf '%s ' $expected)"
unexpected=
for name in $(printf '%s\n' "$symbols" | awk '{ print $1 }'); do
    case $expected_line in
    *" $name "*) ;;
    *) unexpected="$unexpected $name" ;;
    esac
done
if [ -z "$unexpected" ]; then
    ok 0 "nothing else exported"
else
    ok 1 "nothing else exported (unexpected:$unexpected)"
fi
missing=
for fn in $expected; do
    printf '%s\n' "$symbols" | awk -v n="$fn" '$1 == n { found = 1 } END { exit !found }' || missing="$missing $fn"
done
[ -z "$missing" ] || diag "missing:$missing"
[ -z "$unexpected" ] || diag "unexpected:$unexpected"

done_testing
