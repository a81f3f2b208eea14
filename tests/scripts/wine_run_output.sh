#!/usr/bin/env bash
# cmake/wine-run.sh hands a program's output back when the program ends, even when it is the
# first program of an idle prefix and another program keeps the prefix busy afterwards.
# (A wineserver, and the programs Wine boots with it, inherit the output of the Wine program
# that starts them and live until the prefix is idle; when a test started them, CTest waited
# for every other program of the prefix: test_framing.raw_every_split, 0 ms of work, timed
# out after printing its verdict. docs/wine.md.)
#   1. a prefix of its own, with no wineserver running;
#   2. program A (iocp-service run) through wine-run.sh, its output into a pipe read here;
#   3. once A listens, program B (iocp-service run) in the same prefix, its output elsewhere;
#   4. A is stopped (SIGINT, which Wine delivers as Ctrl+C): A's pipe must reach its end
#      within 15 s, while B still runs;
#   5. B is stopped; the prefix's wineserver is ended.
# Usage: wine_run_output.sh SERVICE_EXE WORKDIR      (Linux host, cross-built exe under Wine)
set -euo pipefail
exe=$1
mkdir -p "$2"
work=$(cd "$2" && pwd)
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
run=$root/cmake/wine-run.sh
export WINEDEBUG=-all
fail() {
    echo "FAIL wine_run_output: $*"
    for f in a.out b.out; do
        [ -f "$work/$f" ] && { echo "--- $f"; cat "$work/$f"; }
    done
    exit 1
}
# wine-run.sh runs the programs in IOCP_WINEPREFIX plus the Wine's suffix; $prefix is that
# folder, for the wineserver commands here (cmake/wine-tag.sh).
source "$root/cmake/wine-tag.sh"
export IOCP_WINEPREFIX=$work/prefix
prefix=$IOCP_WINEPREFIX${IOCP_WINE_TAG:+-$IOCP_WINE_TAG}
if [ ! -f "$prefix/system.reg" ]; then
    # A copy of the project's prefix is ready in under a second (wine-run.sh creates one
    # otherwise); files that other tests delete while it is copied do not matter.
    project_prefix=$root/build/wineprefix${IOCP_WINE_TAG:+-$IOCP_WINE_TAG}
    if [ -f "$project_prefix/system.reg" ]; then
        cp -a "$project_prefix" "$prefix" 2>/dev/null || true
    fi
fi
# An idle prefix: no wineserver, so the first program below is the one that starts it.
WINEPREFIX=$prefix wineserver -k 2>/dev/null || true
WINEPREFIX=$prefix wineserver -w 2>/dev/null || true

a="" b="" reader=""
cleanup() {
    for p in $a $b; do kill -INT "$p" 2>/dev/null || true; done
    sleep 1
    for p in $a $b $reader; do kill -9 "$p" 2>/dev/null || true; done
    WINEPREFIX=$prefix wineserver -k 2>/dev/null || true
}
trap cleanup EXIT

# Waits (60 s at most) for a "listening on" line in a program's output.
wait_listening() {
    for _ in $(seq 1 600); do
        grep -q 'listening on ' "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# A's output goes into a pipe: its end is what CTest waits for.
rm -f "$work/a.pipe" "$work/a.out" "$work/a.end" "$work/b.out"
mkfifo "$work/a.pipe"
{
    cat "$work/a.pipe" >"$work/a.out"
    date +%s%N >"$work/a.end"
} &
reader=$!
"$run" "$exe" run --port 0 --name "wro-a-$$" --drain-timeout 1 </dev/null >"$work/a.pipe" 2>&1 &
a=$!
wait_listening "$work/a.out" || fail "program A did not start listening"

"$run" "$exe" run --port 0 --name "wro-b-$$" --drain-timeout 1 </dev/null >"$work/b.out" 2>&1 &
b=$!
wait_listening "$work/b.out" || fail "program B did not start listening"

stopped=$(date +%s%N)
kill -INT "$a"
status=0
wait "$a" || status=$?
a=
ended=
for _ in $(seq 1 150); do
    if [ -s "$work/a.end" ]; then
        ended=$(cat "$work/a.end")
        break
    fi
    sleep 0.1
done
kill -0 "$b" 2>/dev/null || fail "program B ended before the check (its output is below)"
[ -n "$ended" ] || fail "A's output did not end within 15 s of A's stop (exit code $status)" \
    "while B ran: the prefix's wineserver or its boot programs hold it"
grep -q 'listening on ' "$work/a.out" || fail "A's output lost its lines"
echo "wine-run output: A's output ended $(((ended - stopped) / 1000000)) ms after SIGINT" \
    "(A's exit code $status), while B still ran in the same prefix"

kill -INT "$b"
wait "$b" || true
b=
echo "1 passed, 0 failed"
