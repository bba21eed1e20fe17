#!/usr/bin/env bash
# A short run of bench/cc.sh (the benchmark itself is run by hand): it must
# complete (every cc applied and acknowledged) and print its figures.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
out=$(bash "$DH_SRC/bench/cc.sh" --count 300 --lag-count 60 --rate 100 --split-rate 50 2>"${TMPDIR:-/tmp}/bench_cc.$$.log") ||
	{ tail -n 40 "${TMPDIR:-/tmp}/bench_cc.$$.log" >&2; dh_fail "bench/cc.sh failed"; }
rm -f "${TMPDIR:-/tmp}/bench_cc.$$.log"
echo "$out"
dh_assert_contains "$out" "ATTRIBUTE_CHANGE apply:" "throughput printed"
dh_assert_contains "$out" "SPLIT lag:" "lag printed"
dh_pass "bench/cc.sh short run"
