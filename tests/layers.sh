# layers.sh - the library's files call only downwards: from the built
# objects (nm), every symbol one object takes from another must be defined in
# a layer below the caller's, in the caller's own layer, or in a leaf; a leaf
# takes only from leaves and the OS layer.  The layers are those lib/README
# draws (the lines between "layers:" and "end of layers").  Each reference
# that breaks the order is one failure naming the symbol and both files.
# Environment: MYMALLOC_LIB (the built .so: its objects are beside it, in
# ../lib/.libs), MYMALLOC_SRCDIR, NM (optional).

srcdir=${MYMALLOC_SRCDIR:-$(dirname "$0")/..}
. "$srcdir/tests/tap.sh"

lib=${MYMALLOC_LIB:-}
[ -n "$lib" ] && [ -f "$lib" ] || { echo "Bail out! MYMALLOC_LIB (${lib:-unset}) is not a file"; exit 1; }
objdir=$(cd "$(dirname "$lib")/../lib/.libs" 2>/dev/null && pwd) ||
    { echo "Bail out! no lib/.libs beside $lib"; exit 1; }
nm_cmd=${NM:-nm}
$nm_cmd --version >/dev/null 2>&1 || { echo "1..0 # SKIP no nm"; exit 0; }

# "layer file file ..." lines, top first, from lib/README.
layers=$(sed -n '/^layers:$/,/^end of layers$/{/^    [a-z]/p}' "$srcdir/lib/README")
[ -n "$layers" ] || { echo "Bail out! lib/README declares no layers"; exit 1; }

# Every object of both libraries, by its source file's name.
objects=
for o in "$objdir"/libmymalloc_la-*.o "$objdir"/libmymalloc___la-*.o; do
    [ -f "$o" ] && objects="$objects $o"
done
[ -n "$objects" ] || { echo "Bail out! no objects in $objdir"; exit 1; }

file_of() { basename "$1" .o | sed 's/^libmymalloc_*la-//'; }

# Lines "file defined-symbol" and "file used-symbol".
defs=$(for o in $objects; do f=$(file_of "$o"); $nm_cmd --defined-only "$o" | awk -v f="$f" '$2 ~ /^[TDBRVWG]$/ {print f, $3}'; done)
uses=$(for o in $objects; do f=$(file_of "$o"); $nm_cmd -u "$o" | awk -v f="$f" '{print f, $NF}'; done)

# Every object must be placed: an unplaced one is a failure of its own.
report=$(
    printf '%s\n' "$layers" | awk '{ for (i = 2; i <= NF; i++) print "L", $i, NR, $1 }'
    printf '%s\n' "$defs" | awk '{ print "D", $1, $2 }'
    printf '%s\n' "$uses" | awk '{ print "U", $1, $2 }'
) 
result=$(printf '%s\n' "$report" | awk '
    $1 == "L" { rank[$2] = $3; layer[$2] = $4; next }
    $1 == "D" { owner[$3] = $2; files[$2] = 1; next }
    $1 == "U" { n++; user[n] = $2; sym[n] = $3; files[$2] = 1 }
    END {
        for (f in files)
            if (!(f in rank))
                print "unplaced", f
        for (i = 1; i <= n; i++) {
            a = user[i]; s = sym[i]
            if (!(s in owner) || owner[s] == a || !(a in rank))
                continue
            b = owner[s]
            if (!(b in rank))
                continue
            if (layer[a] == "leaf")
                ok = layer[b] == "leaf" || layer[b] == "os"
            else
                ok = layer[b] == "leaf" || rank[b] >= rank[a]
            if (!ok)
                printf "up %s %s %s %s %s\n", a, layer[a], s, b, layer[b]
            checked++
        }
        print "checked", checked + 0
    }')

checked=$(printf '%s\n' "$result" | awk '$1 == "checked" {print $2}')
unplaced=$(printf '%s\n' "$result" | awk '$1 == "unplaced" {print $2}' | sort)
ups=$(printf '%s\n' "$result" | awk '$1 == "up"' | sort -u)

count=$(( $(printf '%s\n' "$ups" | grep -c '^up') + $(printf '%s\n' "$unplaced" | grep -c .) + 1 ))
echo "1..$count"
echo "# $checked references between $(echo $objects | wc -w) objects checked against lib/README's layers:"
printf '%s\n' "$layers" | sed 's/^ */#   /'
n=0
for f in $unplaced; do
    n=$((n + 1))
    echo "not ok $n - $f.o is in no layer of lib/README"
done
printf '%s\n' "$ups" | while read -r _ a la s b lb; do
    [ -n "$a" ] || continue
    n=$((n + 1))
    echo "not ok $n - $a.c ($la) uses $s of $b.c ($lb): not below it"
done
if [ -z "$ups" ] && [ -z "$unplaced" ]; then
    echo "ok $count - every reference goes down the layers or to a leaf"
else
    echo "not ok $count - every reference goes down the layers or to a leaf"
fi
