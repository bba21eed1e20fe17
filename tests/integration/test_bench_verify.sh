#!/usr/bin/env bash
# A short run of bench/verify.sh (the 100,000-instance measurement is run by
# hand): 5,000 generated instances at both ends, three injected differences;
# verify must find exactly those and the script print its figure.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
out=$(bash "$DH_SRC/bench/verify.sh" --count 5000 2>"${TMPDIR:-/tmp}/bench_verify.$$.log") ||
	{ tail -n 40 "${TMPDIR:-/tmp}/bench_verify.$$.log" >&2; dh_fail "bench/verify.sh failed"; }
rm -f "${TMPDIR:-/tmp}/bench_verify.$$.log"
echo "$out"
dh_assert_contains "$out" "5000 instances in 50 studies" "figure printed"
dh_assert_contains "$out" "3 of 3 injected differences found" "differences found"
dh_pass "bench/verify.sh short run"
