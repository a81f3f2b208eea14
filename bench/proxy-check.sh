#!/usr/bin/env bash
# bench/proxy-check.sh: the load generator's PROXY headers are what ours takes them for, so the
# churn-proxy workload measures served connections, not refused ones. Ours runs trusting the
# loopback balancer (--proxy-protocol 127.0.0.1/32) with ONE connection per address, then:
#   1. 16 connections held at once, each with a v2 header: all echo, which only 16 different
#      header addresses allow (from 127.0.0.1 itself the limit would refuse 15 of them);
#   2. 200 churn cycles (plus the warm-up's one) with v1 headers: all echo;
#   3. 2 connections without a header: the server closes them (the loadgen must fail);
#   4. /metrics (the admin endpoint): iocp_proxy_headers_total = 16 + 201 exactly, and 2 rejected
#      for a bad PROXY header.
# Takes a few seconds; needs what bench/run.sh builds (build/bench/loadgen, ours' build).
#
#   bench/proxy-check.sh              # BENCH_OURS_EXE=x.exe for another build
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
exe=${BENCH_OURS_EXE:-$root/build/mingw-wine/service/iocp-service.exe}
loadgen=$root/build/bench/loadgen
work=$(mktemp -d)
export WINEDEBUG=-all
[ -x "$loadgen" ] || { echo "proxy-check: $loadgen missing: run bench/run.sh once" >&2 && exit 2; }
[ -f "$exe" ] || { echo "proxy-check: $exe missing: build ours first" >&2 && exit 2; }

srv=
cleanup() {
    if [ -n "$srv" ] && kill -0 "$srv" 2>/dev/null; then
        kill -INT "$srv" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$srv" 2>/dev/null || break && sleep 0.1; done
        kill -KILL "$srv" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
fail() {
    echo "proxy-check: FAIL: $*" >&2
    sed 's/^/    server: /' "$work/server.log" | tail -20 >&2
    exit 1
}

admin=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$root/cmake/wine-run.sh" "$exe" run --port 0 --bind 127.0.0.1 --workers 2 \
    --proxy-protocol 127.0.0.1/32 --max-connections-per-ip 1 --admin-port "$admin" \
    --name "iocp-proxy-check-$$" >"$work/server.log" 2>&1 &
srv=$!
source "$root/bench/lib.sh"
port=
for _ in $(seq 600); do
    line=$(listening_line "$work/server.log")
    [ -n "$line" ] && port=${line##*:} && break
    kill -0 "$srv" 2>/dev/null || fail "the server did not start"
    sleep 0.1
done
[ -n "$port" ] || fail "the server did not say where it listens within 60 s"

lg() { "$loadgen" --host 127.0.0.1 --port "$port" --stall-timeout 10 "$@"; }
lg --connections 16 --depth 1 --size 64 --messages 1600 --proxy v2 >"$work/held.txt" 2>&1 ||
    fail "16 held connections with v2 headers: $(cat "$work/held.txt")"
echo "proxy-check: 16 connections held at once, v2 headers, per-address limit 1: all echoed"
lg --churn --connections 1 --size 64 --messages 200 --proxy v1 >"$work/churn.txt" 2>&1 ||
    fail "churn with v1 headers: $(cat "$work/churn.txt")"
echo "proxy-check: 201 churn cycles, v1 headers: all echoed"
if lg --connections 2 --depth 1 --size 64 --messages 2 --stall-timeout 5 >"$work/bare.txt" 2>&1; then
    fail "2 connections without a header were served"
fi
echo "proxy-check: 2 connections without a header: closed by the server"

# GET /metrics from the admin port on loopback (http.client: a host and a port, no address
# beyond this machine).
metrics=$(python3 -c 'import sys, http.client
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
c.request("GET", "/metrics")
r = c.getresponse()
sys.exit("status %d" % r.status) if r.status != 200 else print(r.read().decode())' "$admin") ||
    fail "GET /metrics"
headers=$(awk '$1 == "iocp_proxy_headers_total" {print $2}' <<<"$metrics")
rejected=$(awk '$1 == "iocp_connections_rejected_total{reason=\"proxy_header\"}" {print $2}' <<<"$metrics")
echo "proxy-check: /metrics: iocp_proxy_headers_total $headers, rejected for the PROXY header $rejected"
[ "$headers" = 217 ] || fail "iocp_proxy_headers_total is $headers, not 16 + 201"
[ "$rejected" = 2 ] || fail "rejected for the PROXY header: $rejected, not 2"
echo "proxy-check: ok"
