#!/bin/bash
# bench/scale-check.sh: the held-connection memory goal as a check (issue 17). Runs the scale
# workload against ours only (BENCH_SCALE_CONNECTIONS, default 10,000; connections first silent,
# then all echo once) and fails unless every sample costs at most BENCH_SCALE_MAX_BYTES (4096)
# per held connection: (server VmRSS + its wineserver's) over the idle server's, per
# connection, for the connections while silent and after their echo. Takes about a minute.
#
#   bench/scale-check.sh                       # build ours (as run.sh does), 10,000 connections
#   BENCH_SKIP_BUILD=1 BENCH_OURS_EXE=x.exe bench/scale-check.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
max=${BENCH_SCALE_MAX_BYTES:-4096}
out=$(mktemp --suffix=.json)
trap 'rm -f "$out"' EXIT
BENCH_OUT=$out BENCH_WORKLOADS=scale BENCH_IMPLS=ours BENCH_ROUNDS=1 BENCH_SCALE_IDLE_FIRST=1 \
    "$root/bench/run.sh" >&2
python3 - "$out" "$max" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
limit = float(sys.argv[2])
runs = [r for r in data["workloads"]["scale"]["runs"] if r.get("impl") == "ours"]
if not runs:
    sys.exit("scale-check: no run of ours")
bad = 0
for r in runs:
    lg = r.get("loadgen") or {}
    want = lg.get("connections", 0)
    n = lg.get("established", 0)
    if r.get("loadgen_exit") != 0 or n != want or n == 0:
        print("scale-check: FAIL: %s of %s connections held, loadgen exit %s" % (n, want, r.get("loadgen_exit")))
        bad += 1
        continue
    base = r["rss_server_kb_before"] + r["rss_wineserver_kb_before"]
    for name, srv, ws in (("silent", "rss_server_kb_idle", "rss_wineserver_kb_idle"),
                          ("after the echo", "rss_server_kb", "rss_wineserver_kb")):
        per = (r[srv] + r[ws] - base) * 1024.0 / n
        ok = 0 < r[srv] and per <= limit
        print("scale-check: %s: %d connections, %.0f B each (server %d kB + wineserver %d kB "
              "over %d kB idle): %s (limit %.0f)" % (name, n, per, r[srv], r[ws], base,
                                                    "ok" if ok else "FAIL", limit))
        bad += not ok
sys.exit(1 if bad else 0)
PY
