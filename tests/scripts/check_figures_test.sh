#!/usr/bin/env bash
# scripts/check-figures.py on a scratch repository: a table naming the last commit that
# changed the code is current (exit 0); a later change to that code makes it stale (exit 1,
# naming the table); a marker naming the newest commit makes it hold again (exit 0); a change
# after the marker makes it stale again; a dated paragraph without a commit is stale.
set -u
check=${1:?usage: check_figures_test.sh PATH/TO/check-figures.py SCRATCH-DIR}
dir=${2:?usage: check_figures_test.sh PATH/TO/check-figures.py SCRATCH-DIR}
fail() { echo "FAIL check_figures: $*"; exit 1; }
rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || fail "cannot make $dir"
git init -q . && git config user.email t@t && git config user.name t
mkdir -p iocp bench docs scripts
echo 'int a;' >iocp/a.c && git add -A && git commit -qm code
c1=$(git rev-parse --short HEAD)
printf '# Results\n\n- date 2026-12-06, commit %s, wine-8.0\n\n| a | b |\n|---|---|\n| 1 | 2 |\n' "$c1" >bench/RESULTS.md
printf '# Reliability\n\nFrom the scenarios (commit %s, GCC):\n\n```text\nx\n```\n' "$c1" >docs/reliability.md
git add -A && git commit -qm tables
out=$(python3 "$check" --list) || fail "current tables reported stale: $out"
echo "$out" | grep -q "ok    bench/RESULTS.md:3" || fail "no ok line: $out"

echo 'int b;' >>iocp/a.c && git add -A && git commit -qm change
c2=$(git rev-parse --short HEAD)
out=$(python3 "$check") && fail "a table older than the code passed: $out"
echo "$out" | grep -q "STALE bench/RESULTS.md:3: measured at $c1; 1 later commit" || fail "$out"
echo "$out" | grep -q "STALE docs/reliability.md:3" || fail "$out"

printf '<!-- figures hold at %s: the change adds a variable nothing reads -->\n' "$c2" >>bench/RESULTS.md
printf '<!-- figures hold at %s: the same -->\n' "$c2" >>docs/reliability.md
git add -A && git commit -qm marker
out=$(python3 "$check") || fail "a marker at the newest change did not hold: $out"

echo 'int c;' >>iocp/a.c && git add -A && git commit -qm again
out=$(python3 "$check") && fail "a change after the marker passed: $out"
echo "$out" | grep -q "STALE bench/RESULTS.md:3: measured at $c2" || fail "$out"

c3=$(git rev-parse --short HEAD)
printf '<!-- figures hold at %s: checked again -->\n' "$c3" | tee -a bench/RESULTS.md >>docs/reliability.md
git add -A && git commit -qm marker2
out=$(python3 "$check") || fail "a second marker did not hold: $out"
printf '\nLatest soak (2026-11-26): 10 minutes, nothing lost.\n' >>docs/reliability.md
git add -A && git commit -qm soak
out=$(python3 "$check") && fail "a dated paragraph without a commit passed: $out"
echo "$out" | grep -q "measured figures that name no commit: Latest soak" || fail "$out"
echo "check_figures: 1 passed, 0 failed"
