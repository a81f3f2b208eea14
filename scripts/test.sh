#!/usr/bin/env bash
# The test command: installs what is missing, checks formatting, builds with MinGW GCC and
# with clang (both warnings-as-errors), and runs the whole CTest suite under Wine with each.
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

echo "== format check (.clang-format)"
mapfile -t sources < <(git ls-files '*.c' '*.h' 2>/dev/null || find iocp client service tests bench -name '*.[ch]')
clang-format --dry-run --Werror "${sources[@]}"

status=0
for preset in mingw-wine mingw-wine-clang; do
    echo "== $preset: configure and build"
    cmake --preset "$preset" >/dev/null
    cmake --build --preset "$preset"
    echo "== $preset: test"
    ctest --preset "$preset" || status=1
    echo "== $preset: reliability summary"
    python3 scripts/reliability-table.py "build/$preset/Testing/Temporary/LastTest.log" || status=1
done

echo "== framing parser: native sanitizer tests and a bounded fuzz run (fixed seed)"
FUZZ_SECONDS=${FUZZ_SECONDS:-60} scripts/fuzz.sh || status=1

exit $status
