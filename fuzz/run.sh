#!/bin/sh
# run.sh - a libFuzzer campaign against the cc decoder (not part of ctest).
#
# usage: fuzz/run.sh [SECONDS] [BUILD_DIR]
#   SECONDS    how long to fuzz (default 60)
#   BUILD_DIR  clang build tree (default <repo>/build-fuzz; configured here)
#
# Builds cc_fuzz with clang, -fsanitize=fuzzer,address,undefined, and runs it
# on a scratch copy of fuzz/corpus/cc (new inputs libFuzzer finds stay in
# BUILD_DIR/corpus-cc; copy interesting small ones into fuzz/corpus/cc by
# hand). Crash reproducers land in BUILD_DIR/artifacts/. Exit status is
# libFuzzer's: 0 when nothing was found.
set -eu

secs=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${2:-$repo/build-fuzz}

command -v clang >/dev/null || { echo "run.sh: clang not found" >&2; exit 2; }
if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S "$repo" -B "$build" -DDH_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
cmake --build "$build" --target cc_fuzz -j "$(nproc)"

mkdir -p "$build/corpus-cc" "$build/artifacts"
cp -n "$here"/corpus/cc/* "$build/corpus-cc/" 2>/dev/null || true
exec "$build/fuzz/cc_fuzz" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 \
  -timeout=10 -print_final_stats=1 -artifact_prefix="$build/artifacts/" \
  "$build/corpus-cc"
