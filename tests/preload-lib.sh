# preload-lib.sh - what the shell tests that run programs on mymalloc share
# (preload.sh, preload_cxx.sh, programs.sh, mymalloc_run.sh): tap.sh, the
# library file as an absolute path, a scratch directory removed at exit, an
# environment the runs inherit predictably, and the helpers that show what
# went wrong.  Source it with srcdir set:
#   srcdir=${MYMALLOC_SRCDIR:-$(dirname "$0")/..}
#   . "$srcdir/tests/preload-lib.sh"

. "$srcdir/tests/tap.sh"

# The version the library must report, from the header it was built from.
version=$(sed -n 's/^#define MYMALLOC_VERSION_STRING "\(.*\)"$/\1/p' "$srcdir/include/mymalloc.h")

# library VAR: the file the variable VAR (MYMALLOC_LIB, MYMALLOCXX_LIB) names,
# as an absolute path in $lib; bail out when it is not a file.
library() {
    eval "lib=\${$1:-}"
    if [ -z "$lib" ] || [ ! -f "$lib" ]; then
        echo "Bail out! $1 (${lib:-unset}) is not a file"
        exit 1
    fi
    case $lib in
    /*) ;;
    *) lib=$(pwd)/$lib ;;
    esac
}

# scratch NAME: a new directory in $tmp (under $TMPDIR, named after NAME),
# removed when the script exits.
scratch() {
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX") || {
        echo "Bail out! mktemp -d failed"
        exit 1
    }
    trap 'rm -rf "$tmp"' EXIT
    trap 'exit 1' HUP INT TERM
}

# predictable [NAME...]: keep what the runs inherit predictable: no
# LD_PRELOAD, none of the threshold variables (mymalloc's and glibc's), none
# of the NAMEs, and the C locale.
predictable() {
    unset LD_PRELOAD MYMALLOC_MMAP_THRESHOLD MYMALLOC_TRIM_THRESHOLD MYMALLOC_TOP_PAD MYMALLOC_MMAP_MAX \
        MALLOC_MMAP_THRESHOLD_ MALLOC_TRIM_THRESHOLD_ MALLOC_TOP_PAD_ MALLOC_MMAP_MAX_ "$@"
    LC_ALL=C
    export LC_ALL
}

# show FILE: a file's first lines ($show_lines, 15 unless set) as TAP comments.
show() {
    [ -s "$1" ] && sed -n "1,${show_lines:-15}s/^/#   /p" "$1"
    return 0
}

# stderr_clean FILE: no mymalloc report (heap misuse, bad setting) in it.
stderr_clean() {
    if grep -q 'mymalloc' "$1"; then
        diag "mymalloc wrote on stderr:"
        show "$1"
        return 1
    fi
    return 0
}
