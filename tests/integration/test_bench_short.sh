#!/usr/bin/env bash
# Short runs of the three throughput benches of issues 2, 3 and 4 (the real
# measurements are run by hand, see bench/README.md): each must end with
# every target holding / delivering what it was sent and print its ratios.
# Figures from such small runs mean nothing; what is checked is that the
# benches work on this machine and that their correctness checks pass.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
log=${TMPDIR:-/tmp}/bench_short.$$.log
run() { # $1 name, rest: command; prints its output, fails with its log tail
	local name=$1 out
	shift
	out=$("$@" 2>"$log") || { tail -n 40 "$log" >&2; rm -f "$log"; dh_fail "$name failed"; }
	rm -f "$log"
	echo "$out"
	BENCH_OUT=$out
}
run "bench/ingest.sh" bash "$DH_SRC/bench/ingest.sh" --count 200 --only hubd --only dcmqrscp
dh_assert_contains "$BENCH_OUT" "hubd/dcmqrscp" "ingest ratio printed"
dh_assert_eq 2 "$(grep -cE '^(hubd|dcmqrscp) +200 .* ok' <<<"$BENCH_OUT")" "both ingest targets hold 200 instances"

run "bench/archive.sh" bash "$DH_SRC/bench/archive.sh" --count 200
dh_assert_contains "$BENCH_OUT" "archiving / sequential write" "archiving ratio printed"
dh_assert_contains "$BENCH_OUT" "C-MOVE NEARLINE / ONLINE" "retrieval ratio printed"

run "bench/qr.sh --move-only" bash "$DH_SRC/bench/qr.sh" --move-only --count 250
dh_assert_contains "$BENCH_OUT" "hubd/dcmqrscp" "C-MOVE ratio printed"
dh_assert_eq 2 "$(grep -cE '^(hubd|dcmqrscp) +250 .* ok' <<<"$BENCH_OUT")" "both archives delivered 250 instances"
dh_pass "short bench runs"
