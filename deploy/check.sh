#!/usr/bin/env bash
# check.sh - everything CI checks, runnable on any dev machine (README command 2; .ci/run).
#
# Installs the Debian packages (deploy/install-deps.sh), builds twice -- build/
# (RelWithDebInfo) and build-asan/ (AddressSanitizer + UBSan, -DDH_SANITIZE=ON)
# -- then runs every ctest test in build/, and every test not labelled `slow`
# in build-asan/ (the crash and memory tests take minutes and measure the
# normal build). Both builds come first, so that a compile error in either
# shows before minutes of tests. A failing step does not stop the others: the
# summary at the end has one line per build, and the exit status is non-zero
# when anything failed.
#
# Usage: deploy/check.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
JOBS=$(nproc)
failed=0
declare -A result=()

# build DIR CMAKE-ARGS...
build() {
	local dir=$1
	shift
	echo "=== check: configure and build $dir/"
	if cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" && cmake --build "$dir" -j"$JOBS"; then
		result[$dir]="built"
	else
		result[$dir]="BUILD FAILED, tests not run"
		failed=1
	fi
}

# run_tests DIR CTEST-ARGS...: only when DIR built
run_tests() {
	local dir=$1
	shift
	[ "${result[$dir]}" = built ] || return 0
	echo "=== check: ctest in $dir/ $*"
	local log=$dir/check-ctest.log rc=0 line
	(cd "$dir" && ctest --output-on-failure -j2 --timeout 600 --no-tests=error "$@") 2>&1 |
		tee "$log" || rc=$?
	# ctest's own count: "95% tests passed, 1 tests failed out of 20"
	line=$(grep -E "tests passed|No tests were found" "$log" | tail -n 1) || line="no ctest summary"
	if [ "$rc" -eq 0 ]; then
		result[$dir]="OK: $line"
	else
		result[$dir]="TESTS FAILED: $line (log: $dir/check-ctest.log)"
		failed=1
	fi
}

echo "=== check: packages (deploy/install-deps.sh)"
"$ROOT/deploy/install-deps.sh"

build build
build build-asan -DDH_SANITIZE=ON
run_tests build
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	run_tests build-asan -LE slow

echo
echo "check: build/      (RelWithDebInfo):          ${result[build]}"
echo "check: build-asan/ (ASan+UBSan, not 'slow'):  ${result[build-asan]}"
if [ "$failed" -ne 0 ]; then
	echo "check: FAILED"
	exit 1
fi
echo "check: all passed"
