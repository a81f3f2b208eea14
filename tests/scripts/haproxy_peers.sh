#!/usr/bin/env bash
# Behind a load balancer: Debian's HAProxy in front of two `iocp-service run` instances under
# Wine, each with the PROXY protocol from 127.0.0.1 and an admin endpoint that HAProxy checks
# (send-proxy-v2, option httpchk GET /readyz; the haproxy.cfg is docs/scale-out.md's):
#   - echoes through HAProxy come back exact;
#   - the per-address limit counts the client behind the balancer: from 127.0.0.7 no more
#     than the limit per instance is served while 127.0.0.8 still is;
#   - a direct connection from an untrusted address (127.0.0.9) with a forged PROXY line is
#     not believed: the line comes back as data;
#   - /metrics parses with prometheus_client and its counters equal `status`'s;
#   - the admin endpoint refuses POST, garbage, an oversized head and a slow one;
#   - `iocp-service drain` on one instance: /readyz answers 503, HAProxy takes it out, a load
#     through HAProxy meanwhile sees no failed connection, and the instance stops cleanly.
# Usage: haproxy_peers.sh SERVICE_EXE WORKDIR   (Linux host; the service under Wine)
# Prints "1 passed, 0 failed" at the end when everything held.
set -euo pipefail
svc=$1
mkdir -p "$2"
work=$(cd "$2" && pwd)
peer_name=haproxy_peers
source "$(dirname "${BASH_SOURCE[0]}")/peer_lib.sh"
command -v haproxy >/dev/null || fail "haproxy is not installed (scripts/setup.sh installs it)"
/usr/bin/python3 -c 'import prometheus_client' 2>/dev/null ||
    fail "python3-prometheus-client is not installed for /usr/bin/python3 (scripts/setup.sh)"
peer="/usr/bin/python3 $root/tests/scripts/haproxy_peer.py"
PER_IP=2

mapfile -t ports < <($peer freeports 3)
admin_a=${ports[0]} admin_b=${ports[1]} front=${ports[2]}
start_instance() { # name admin_port log
    "$run" "$svc" run --port 0 --bind 127.0.0.1 --name "$1" --workers 1 \
        --proxy-protocol 127.0.0.1/32 --max-connections-per-ip $PER_IP \
        --admin-port "$2" --unready-delay 3 --drain-timeout 5 >"$3" 2>&1 &
    pids+=("$!")
}
name_a=lb-a-$$ name_b=lb-b-$$
start_instance "$name_a" "$admin_a" "$work/a.log"
pid_a=${pids[-1]}
start_instance "$name_b" "$admin_b" "$work/b.log"
port_a=$(wait_port "$work/a.log" "listening on")
port_b=$(wait_port "$work/b.log" "listening on")
[ -n "$port_a" ] && [ -n "$port_b" ] || { cat "$work/a.log" "$work/b.log"; fail "an instance did not start"; }
echo "instances on $port_a (admin $admin_a) and $port_b (admin $admin_b); HAProxy on $front"

cfg=$work/haproxy.cfg
cat >"$cfg" <<CFG
global
    maxconn 2000
    stats socket $work/haproxy.sock mode 600 level admin

defaults
    mode tcp
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 3
    option redispatch

frontend echo
    bind 127.0.0.1:$front
    default_backend iocp

backend iocp
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 250ms fall 1 rise 2
    server a 127.0.0.1:$port_a send-proxy-v2 check port $admin_a
    server b 127.0.0.1:$port_b send-proxy-v2 check port $admin_b
CFG
haproxy -c -f "$cfg" >/dev/null || fail "haproxy -c rejects the generated haproxy.cfg"
haproxy -db -f "$cfg" >"$work/haproxy.log" 2>&1 &
pids+=("$!")
both_up=
for _ in $(seq 1 100); do
    st=$($peer stat "$work/haproxy.sock" 2>/dev/null | tr '\n' ' ' || true)
    [ "$st" = "a UP b UP " ] && { both_up=1; break; }
    sleep 0.2
done
[ -n "$both_up" ] || { cat "$work/haproxy.log"; fail "HAProxy never saw both instances UP: $st"; }
echo "HAProxy: $st"

echo "== echoes through HAProxy"
$peer echo 127.0.0.1 "$front" 40 || fail "echo through HAProxy"

echo "== the per-address limit behind the balancer"
# Five connections from 127.0.0.7, held: round-robin puts three on one instance, whose limit
# is $PER_IP: at most 2 x $PER_IP are served. Then 127.0.0.8 is served while they are held.
exec {hold}> >($peer perip "$front" 127.0.0.7 5 >"$work/perip7.out")
holder=$!
for _ in $(seq 1 100); do [ "$(wc -l <"$work/perip7.out")" -ge 5 ] && break; sleep 0.1; done
served=$(grep -c '^served$' "$work/perip7.out" || true)
refused=$(grep -c '^refused$' "$work/perip7.out" || true)
echo "127.0.0.7: $served served, $refused refused"
[ $((served + refused)) = 5 ] || fail "127.0.0.7: $(cat "$work/perip7.out")"
[ "$served" -le $((2 * PER_IP)) ] || fail "127.0.0.7 got $served connections, limit $PER_IP per instance"
[ "$refused" -ge 1 ] || fail "127.0.0.7 was never limited"
$peer perip "$front" 127.0.0.8 2 </dev/null >"$work/perip8.out"
[ "$(grep -c '^served$' "$work/perip8.out")" = 2 ] || fail "127.0.0.8 not served: $(cat "$work/perip8.out")"
echo "127.0.0.8: served while 127.0.0.7 is at its limit"
exec {hold}>&-
wait "$holder" 2>/dev/null || true

echo "== a forged PROXY line from an untrusted address"
$peer forged "$port_a" 127.0.0.9 || fail "forged PROXY line"

echo "== /metrics against status"
metric() { sed -n "s/^$1=//p" "$work/metrics.txt"; }
ok=
for _ in $(seq 1 20); do
    "$run" "$svc" status --name "$name_a" | tr -d '\r' >"$work/status.txt" || true
    $peer metrics "$admin_a" >"$work/metrics.txt" || fail "/metrics did not parse"
    read -r open acc rej < <(sed -n 's/^  connections: \([0-9]*\) open, \([0-9]*\) accepted, \([0-9]*\) rejected$/\1 \2 \3/p' "$work/status.txt")
    read -r bin bout < <(sed -n 's/^  bytes: \([0-9]*\) in, \([0-9]*\) out$/\1 \2/p' "$work/status.txt")
    read -r min mout < <(sed -n 's/^  messages: \([0-9]*\) in, \([0-9]*\) out$/\1 \2/p' "$work/status.txt")
    mrej=$(($(metric 'iocp_connections_rejected_total{reason=slots}') + $(metric 'iocp_connections_rejected_total{reason=per_address}') + $(metric 'iocp_connections_rejected_total{reason=rate}')))
    got="open $(metric iocp_connections_open) accepted $(metric iocp_connections_accepted_total) rejected $mrej bytes $(metric iocp_received_bytes_total)/$(metric iocp_sent_bytes_total) messages $(metric iocp_messages_received_total)/$(metric iocp_messages_sent_total)"
    want="open $open accepted $acc rejected $rej bytes $bin/$bout messages $min/$mout"
    [ "$got" = "$want" ] && { ok=1; break; }
    sleep 0.3 # a connection was still closing between the two reads
done
[ -n "$ok" ] || fail "/metrics ($got) differs from status ($want)"
echo "/metrics = status: $got"
[ "$(metric 'iocp_proxy_headers_total')" -ge 20 ] || fail "PROXY headers: $(metric iocp_proxy_headers_total)"

echo "== the admin endpoint refuses what it does not serve"
expect_http() { # kind, wanted status line prefix
    local line
    line=$($peer http "$admin_a" "$1")
    case "$line" in "$2"*) echo "$1: $line" ;; *) fail "$1: '$line', wanted '$2'" ;; esac
}
expect_http post "HTTP/1.1 405"
expect_http garbage "HTTP/1.1 400"
expect_http big "HTTP/1.1 431"
expect_http unknown "HTTP/1.1 404"
expect_http version "HTTP/1.1 505"
slow=$($peer slow "$admin_a")
case "$slow" in "HTTP/1.1 408"* | closed* | reset*) echo "slow head: $slow" ;; *) fail "slow head: $slow" ;; esac
[ "$($peer readyz "$admin_a")" = 200 ] || fail "/readyz of a serving instance"

echo "== drain one instance under load"
$peer load "$front" 10 "$work/load.out" &
load=$!
sleep 2
"$run" "$svc" drain --name "$name_a" | tr -d '\r' || fail "iocp-service drain"
r=$($peer readyz "$admin_a")
[ "$r" = 503 ] || fail "/readyz while draining: $r"
echo "/readyz while draining: 503"
out=
for _ in $(seq 1 40); do
    st=$($peer stat "$work/haproxy.sock" | tr '\n' ' ')
    case "$st" in "a DOWN"*) out=1; break ;; esac
    sleep 0.1
done
[ -n "$out" ] || fail "HAProxy did not take the draining instance out: $st"
echo "HAProxy: $st"
rc=0
wait "$pid_a" || rc=$?
[ "$rc" = 0 ] || { tail -n 20 "$work/a.log"; fail "the drained instance exited $rc"; }
grep -q "^stopped" <(tr -d '\r' <"$work/a.log") || fail "the drained instance did not say stopped"
wait "$load" || fail "the load client failed"
cat "$work/load.out"
grep -q "^ok [1-9][0-9]* failed 0 " "$work/load.out" || fail "the load saw failures: $(cat "$work/load.out")"
echo "1 passed, 0 failed"
