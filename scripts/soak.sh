#!/usr/bin/env bash
# The long soak (docs/reliability.md) and the long forms of the other scenarios.
#
#   scripts/soak.sh                     # 10,000 connections echoing for 10 minutes + churn
#   SOAK_SECONDS=60 SOAK_CONNECTIONS=2000 scripts/soak.sh   # a shorter rehearsal
#
# 1. The reliability scenarios at ten times their test.sh size (IOCP_RELIABILITY_SCALE=10).
# 2. iocp-service run in a prefix of its own, SOAK_CONNECTIONS connections from the native
#    load generator (outside Wine: the wineserver holds every socket of its prefix) echoing
#    64-byte messages, every byte verified, with a churn of connect/echo/close beside them.
#    The server's memory (VmRSS of the server process plus its wineserver) is sampled every
#    10 s; after warm-up it must stay flat (the last sample within 10% of the first after
#    warm-up). Then a graceful stop (Ctrl+C): the engine logs "stopped" only once every
#    context is back in the pool.
# Prints the summary table of the fault suite and exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

SECONDS_TOTAL=${SOAK_SECONDS:-600}
CONNECTIONS=${SOAK_CONNECTIONS:-10000}
out=build/soak
mkdir -p "$out"
status=0

cmake --preset mingw-wine >/dev/null
cmake --build --preset mingw-wine >/dev/null
gcc -O2 -std=c11 -Iiocp/include -Iclient bench/loadgen.c client/histogram.c \
    -o "$out/loadgen" -lpthread -lm -lssl -lcrypto # loadgen speaks TLS too (--tls)

echo "== 1. reliability scenarios, ten times their test.sh size"
(cd build/mingw-wine && IOCP_RELIABILITY_SCALE=10 ctest -R 'test_reliability|test_faults' \
    -j2 --timeout 1800 >/dev/null) || status=1
python3 scripts/reliability-table.py build/mingw-wine/Testing/Temporary/LastTest.log \
    | tee "$out/scenarios.txt" || status=1

echo "== 2. soak: $CONNECTIONS connections for $SECONDS_TOTAL s, with churn"
export IOCP_WINEPREFIX=$PWD/$out/wineprefix
if [ ! -f "$IOCP_WINEPREFIX/system.reg" ]; then
    mkdir -p "$IOCP_WINEPREFIX"
    cp -a build/wineprefix/. "$IOCP_WINEPREFIX/" 2>/dev/null || true
fi
log=$out/server.log
# Room beside the held connections for the churn's: a connection the client has closed keeps
# its context until the server reaches its end-of-stream, behind every busy connection's turn
# (measured with 2,000 busy connections and 8 churn slots at 700 connections/s: 200 to 290
# contexts at a time; with only 200 spare the churn met the limit and its slots died).
# Every client is 127.0.0.1: no per-IP limit; the budget covers the worst case of the default
# 1 MiB send queue (connections x 2 MiB), whatever this machine's memory.
cmake/wine-run.sh build/mingw-wine/service/iocp-service.exe run --port 0 --name "soak-$$" \
    --max-connections $((CONNECTIONS + 2000)) --idle-timeout 0 --max-connections-per-ip 0 \
    --memory-budget $(((CONNECTIONS + 2000) * 2)) >"$log" 2>&1 &
server=$!
trap 'kill -INT $server 2>/dev/null || true' EXIT
port=
for _ in $(seq 1 300); do
    port=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)\r\{0,1\}$/\1/p' "$log" | head -n 1)
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { cat "$log"; echo "soak: the server did not start" >&2; exit 1; }
server_exe_pid=$(pgrep -f "iocp-service.exe run --port 0 --name soak-$$" | head -n 1)
# (if, not &&: a last wineserver of another prefix must not end the loop, and with pipefail
# the script, with a failure)
ws_pid=$(pgrep -f "wineserver" | while read -r p; do
    if [ "$(readlink /proc/$p/cwd 2>/dev/null | xargs -r basename)" = \
      "$(printf 'server-%x-%x' $(stat -L -c '%d %i' "$IOCP_WINEPREFIX"))" ]; then echo "$p"; fi
done | head -n 1)

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

"$out/loadgen" --host 127.0.0.1 --port "$port" --connections "$CONNECTIONS" --depth 1 \
    --size 64 --duration "$SECONDS_TOTAL" --json --stall-timeout 60 >"$out/main.json" \
    2>"$out/main.err" &
main=$!
"$out/loadgen" --host 127.0.0.1 --port "$port" --connections 8 --churn \
    --duration "$SECONDS_TOTAL" --json >"$out/churn.json" 2>"$out/churn.err" &
churn=$!

: >"$out/memory.tsv"
t=0
while kill -0 "$main" 2>/dev/null; do
    sleep 10
    t=$((t + 10))
    s=$(rss_kib "$server_exe_pid")
    w=$([ -n "$ws_pid" ] && rss_kib "$ws_pid" || echo 0)
    printf '%d\t%d\t%d\n' "$t" "$s" "$w" | tee -a "$out/memory.tsv"
done
wait "$main" || status=1
wait "$churn" || status=1

kill -INT "$server"
wait "$server" || true
trap - EXIT

python3 - "$out" "$CONNECTIONS" <<'PY' || status=1
import json, sys
out, conns = sys.argv[1], int(sys.argv[2])
main = json.load(open(f"{out}/main.json"))
churn = json.load(open(f"{out}/churn.json"))
rows = [l.split() for l in open(f"{out}/memory.tsv") if l.strip()]
mem = [int(s) + int(w) for _, s, w in rows]
warm = mem[len(mem) // 3:] if len(mem) >= 3 else mem
flat = bool(warm) and max(warm) <= warm[0] * 1.10
log = open(f"{out}/server.log", errors="replace").read()
clean_stop = "stopped in" in log
mism = main.get("mismatches", 0) + churn.get("mismatches", 0)
print(f"soak: {conns} connections, {main.get('count', 0)} echoes ({main.get('rate', 0)}/s), "
      f"{churn.get('count', 0)} churned connections, mismatches {mism}")
if warm:
    print(f"soak: memory (server + wineserver VmRSS) after warm-up {warm[0]} KiB -> {warm[-1]} KiB "
          f"(max {max(warm)} KiB): {'flat' if flat else 'GROWING'}")
print(f"soak: graceful stop with every context back: {'yes' if clean_stop else 'NO'}")
print(f"METRIC-SOAK connections={conns} bytes_lost={mism} contexts_leaked={0 if clean_stop else 1}")
sys.exit(0 if (mism == 0 and flat and clean_stop and main.get('errors', 0) == 0) else 1)
PY
echo "soak: $([ $status -eq 0 ] && echo PASSED || echo FAILED)"
exit $status
