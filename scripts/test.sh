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
    log=build/$preset/Testing/Temporary/LastTest.log
    if ! ctest --preset "$preset"; then
        # A failure that printed nothing at all is a Wine process that never ran the test
        # (scripts/unstarted-tests.py): those, and only when they are all that failed, run
        # once more. Anything that printed a line stays a failure.
        mapfile -t unstarted < <(python3 scripts/unstarted-tests.py "$log")
        failed=$(grep -c . "build/$preset/Testing/Temporary/LastTestsFailed.log" || true)
        if [ "${#unstarted[@]}" -gt 0 ] && [ "${#unstarted[@]}" -eq "$failed" ]; then
            echo "== $preset: ${unstarted[*]}: failed with no output at all (Wine did not start the program); running once more"
            cp "$log" "$log.first"
            regex="^($(IFS='|'; echo "${unstarted[*]}"))\$"
            ctest --preset "$preset" -R "$regex" || status=1
            cat "$log.first" "$log" >"$log.all" && mv "$log.all" "$log"
        else
            status=1
        fi
    fi
    echo "== $preset: reliability summary"
    python3 scripts/reliability-table.py "$log" || status=1
done

echo "== framing parser: native sanitizer tests and a bounded fuzz run (fixed seed)"
FUZZ_SECONDS=${FUZZ_SECONDS:-60} scripts/fuzz.sh || status=1

exit $status
