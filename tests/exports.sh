# exports.sh - the dynamic symbols libmymalloc.so defines are exactly the
# malloc family and mymalloc's own functions, and libmymalloc++.so exports
# exactly the 20 replaceable operators: one TAP point per expected function,
# one per library for "nothing else exported".
# Environment: MYMALLOC_LIB, MYMALLOCXX_LIB (the .so files), MYMALLOC_SRCDIR, NM (optional).

srcdir=${MYMALLOC_SRCDIR:-$(dirname "$0")/..}
. "$srcdir/tests/tap.sh"

expected='aligned_alloc calloc free free_aligned_sized free_sized mallinfo mallinfo2 malloc
malloc_info malloc_stats malloc_trim malloc_usable_size mallopt memalign mymalloc_alloc_counted
mymalloc_call_name mymalloc_check mymalloc_family mymalloc_free_counted mymalloc_heapmap mymalloc_stats_get mymalloc_version
posix_memalign pvalloc realloc reallocarray valloc'

# operator new/delete: plain, nothrow, aligned, aligned nothrow; sized deletes.
expected_cxx='_Znwm _Znam _ZnwmRKSt9nothrow_t _ZnamRKSt9nothrow_t _ZnwmSt11align_val_t
_ZnamSt11align_val_t _ZnwmSt11align_val_tRKSt9nothrow_t _ZnamSt11align_val_tRKSt9nothrow_t
_ZdlPv _ZdaPv _ZdlPvRKSt9nothrow_t _ZdaPvRKSt9nothrow_t _ZdlPvm _ZdaPvm _ZdlPvSt11align_val_t
_ZdaPvSt11align_val_t _ZdlPvSt11align_val_tRKSt9nothrow_t _ZdaPvSt11align_val_tRKSt9nothrow_t
_ZdlPvmSt11align_val_t _ZdaPvmSt11align_val_t
aligned_alloc calloc free free_aligned_sized free_sized mallinfo mallinfo2 malloc malloc_info malloc_stats
malloc_trim malloc_usable_size mallopt memalign posix_memalign pvalloc realloc reallocarray valloc'

for lib in "${MYMALLOC_LIB:-}" "${MYMALLOCXX_LIB:-}"; do
    if [ -z "$lib" ] || [ ! -f "$lib" ]; then
        echo "Bail out! MYMALLOC_LIB or MYMALLOCXX_LIB (${lib:-unset}) is not a file"
        exit 1
    fi
done

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

# check_exports LIB EXPECTED-NAMES
check_exports() {
lib=$1
expected=$2
listing=$($nm_cmd -D --defined-only "$lib") || {
    echo "Bail out! $nm_cmd -D --defined-only $lib failed"
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
    T|W|i) ok 0 "$(basename "$lib") exports function $fn" ;;
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
    ok 0 "nothing else exported by $(basename "$lib")"
else
    ok 1 "nothing else exported by $(basename "$lib") (unexpected:$unexpected)"
fi
missing=
for fn in $expected; do
    printf '%s\n' "$symbols" | awk -v n="$fn" '$1 == n { found = 1 } END { exit !found }' || missing="$missing $fn"
done
[ -z "$missing" ] || diag "missing:$missing"
[ -z "$unexpected" ] || diag "unexpected:$unexpected"

}

check_exports "$MYMALLOC_LIB" "$expected"
check_exports "$MYMALLOCXX_LIB" "$expected_cxx"
done_testing
