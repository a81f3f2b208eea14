#!/usr/bin/env bash
# UDP against peers nobody here wrote (native Python sockets on the loopback):
#   iocp-service run --udp: 2,000 datagrams of 0..1,472 bytes from 8 sockets echoed exact; a
#     65,507-byte datagram whole; empty datagrams; echoes to closed ports leave the endpoint
#     serving; a burst of 20,000 datagrams: every one received is echoed or counted dropped
#     (status: in = out + dropped + errors + over the rates), the peer gets no more than
#     were sent out; Ctrl+C with every receive pending stops cleanly (exit 0, "stopped").
#   iocp-service run --udp-only: UDP echo, no TCP listener.
#   iocp-client --udp against a native Python echo server: messages, load mode exact; a
#     server that answers nothing: exit 9.
# Usage: udp_peers.sh SERVICE_EXE CLIENT_EXE WORKDIR   (Linux host; exes under Wine)
# Prints "1 passed, 0 failed" at the end when everything held.
set -euo pipefail
svc=$1 cli=$2
mkdir -p "$3"
work=$(cd "$3" && pwd)
peer_name=udp_peers
source "$(dirname "${BASH_SOURCE[0]}")/peer_lib.sh"
peer="python3 $root/tests/scripts/udp_peer.py"
# One counter from `status`: "datagrams: N in, M out; ..." -> field by name.
udp_status() {
    "$run" "$svc" status --name "$1" | tr -d '\r' | sed -n 's/^  udp: on [^;]*; //p'
}

echo "== iocp-service run --udp"
name=udppeers-$$
log=$work/server.log
"$run" "$svc" run --port 0 --bind 127.0.0.1 --name "$name" --workers 2 --udp >"$log" 2>&1 &
server=$!
pids+=("$server")
port=$(wait_port "$log" "udp on")
[ -n "$port" ] || { cat "$log"; fail "no 'udp on' line"; }
tcp=$(wait_port "$log" "listening on")
[ "$port" = "$tcp" ] || fail "UDP on $port, TCP on $tcp: not the same number"
$peer exact 127.0.0.1 "$port" || fail "exact"
$peer largest 127.0.0.1 "$port" || fail "largest"
$peer closed 127.0.0.1 "$port" || fail "closed ports"
before=$(udp_status "$name")
echo "before the burst: $before"
$peer burst 127.0.0.1 "$port" 20000 | tee "$work/burst.out" || fail "burst"
came=$(sed -n 's/^burst: [0-9]* sent, \([0-9]*\) came back$/\1/p' "$work/burst.out")
after=$(udp_status "$name")
echo "after the burst: $after"
read -r din dout ddrop dtrunc derr < <(echo "$after" |
    sed -n 's/^datagrams: \([0-9]*\) in, \([0-9]*\) out; .*; \([0-9]*\) dropped.*, \([0-9]*\) truncated, \([0-9]*\) errors$/\1 \2 \3 \4 \5/p')
[ -n "${din:-}" ] || fail "no UDP counters in status"
# One socket sending 20,000 at once passes its source's bucket (--udp-rate): those are counted.
read -r drate dcap < <("$run" "$svc" status --name "$name" | tr -d '\r' |
    sed -n 's/^  limits: .* \([0-9]*\) echo loops, \([0-9]*\) over a source.s rate, \([0-9]*\) over the total rate$/\1 \2 \3/p' |
    awk '{ print $1 + $2, $3 }')
[ -n "${drate:-}" ] || fail "no limits line in status"
[ $((dout + ddrop + derr + drate + dcap)) = "$din" ] ||
    fail "in $din != out $dout + dropped $ddrop + errors $derr + over the rates $drate + $dcap: a datagram vanished silently"
[ "$dtrunc" = 0 ] || fail "$dtrunc truncated with 64 KiB buffers"
[ "$came" -le "$dout" ] || fail "the peer got $came, more than the $dout sent out"
echo "accounting holds: in $din = out $dout + dropped $ddrop + errors $derr + over the rates $drate + $dcap; the peer got $came"
kill -INT "$server"
rc=0
wait "$server" || rc=$?
[ "$rc" = 0 ] || { cat "$log"; fail "the stop exited $rc"; }
grep -q "stopped" "$log" || fail "no 'stopped' line"
echo "stopped with every receive pending: exit 0"

echo "== iocp-service run --udp-only"
log=$work/udponly.log
"$run" "$svc" run --port 0 --bind 127.0.0.1 --name "$name-only" --workers 1 --udp-only >"$log" 2>&1 &
server=$!
pids+=("$server")
port=$(wait_port "$log" "listening on")
[ -n "$port" ] || { cat "$log"; fail "--udp-only did not start"; }
grep -q "(udp)" "$log" || fail "--udp-only does not say udp"
$peer largest 127.0.0.1 "$port" || fail "--udp-only largest"
python3 - "$port" <<'PY' && fail "TCP answered with --udp-only"
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2).close()
except OSError:
    sys.exit(1)
PY
kill -INT "$server"
wait "$server" || fail "--udp-only stop"

echo "== iocp-client --udp against a native echo server"
rm -f "$work/py.port" "$work/drop.port"
$peer server "$work/py.port" &
pids+=("$!")
$peer server "$work/drop.port" drop &
pids+=("$!")
for _ in $(seq 1 100); do [ -s "$work/py.port" ] && [ -s "$work/drop.port" ] && break; sleep 0.1; done
pyport=$(cat "$work/py.port")
dropport=$(cat "$work/drop.port")
out=$("$run" "$cli" 127.0.0.1 "$pyport" --udp hello "" world | tr -d '\r')
[ "$out" = $'hello\n\nworld' ] || fail "client messages: '$out'"
"$run" "$cli" 127.0.0.1 "$pyport" --udp --load --connections 4 --depth 4 --size 1200 \
    --messages 20000 --quiet >"$work/load.out" 2>&1 || { cat "$work/load.out"; fail "client load"; }
cat "$work/load.out"
grep -q " 0 mismatched" "$work/load.out" || fail "mismatches in the client's load"
rc=0
"$run" "$cli" 127.0.0.1 "$dropport" --udp --timeout 300 --retries 2 x >"$work/drop.out" 2>&1 || rc=$?
cat "$work/drop.out"
[ "$rc" = 9 ] || fail "no answer: exit $rc, wanted 9"
grep -q "after 3 tries" "$work/drop.out" || fail "the retries are not reported"
echo "1 passed, 0 failed"
