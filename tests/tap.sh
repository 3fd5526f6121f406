# tap.sh - TAP helpers for the shell tests; source it, call ok/skip, end with done_testing.
tap_n=0
tap_failed=0
ok() {  # ok STATUS DESCRIPTION: STATUS 0 passes
    tap_n=$((tap_n + 1))
    if [ "$1" -eq 0 ]; then echo "ok $tap_n - $2"; else echo "not ok $tap_n - $2"; tap_failed=$((tap_failed + 1)); fi
}
skip() {  # skip DESCRIPTION REASON
    tap_n=$((tap_n + 1))
    echo "ok $tap_n - $1 # SKIP $2"
}
diag() { echo "# $*"; }
done_testing() {
    echo "1..$tap_n"
    [ "$tap_failed" -eq 0 ]
}
