#!/usr/bin/env bash
# TLS against peers nobody here wrote (native Python ssl and openssl on the loopback):
#   server (Wine 10; Wine 8 has no server-side Schannel and must refuse to start, naming it):
#     1 MiB in random splits from Python, exact, close_notify both ways; openssl s_client with
#     certificate verification; plaintext on the TLS port closed at once while a TLS client is
#     served; a client that stops after its ClientHello reset at the handshake deadline.
#   client (both Wines): iocp-client --tls against a native Python TLS echo server: 10 MiB
#     exact in load mode; a server certificate for another name refused with its own exit
#     code and the chain error named; accepted with --tls-insecure.
# Usage: tls_peers.sh SERVICE_EXE CLIENT_EXE TLS_DIR WORKDIR   (Linux host; exes under Wine)
# Prints "1 passed, 0 failed" at the end when everything held.
set -euo pipefail
svc=$1 cli=$2 tls=$3
mkdir -p "$4"
work=$(cd "$4" && pwd)
peer_name=tls_peers
source "$(dirname "${BASH_SOURCE[0]}")/peer_lib.sh"
peer="python3 $root/tests/scripts/tls_peer.py"
wine_major=$(wine --version | sed -n 's/^wine-\([0-9]*\).*/\1/p')

echo "== server role (Wine $wine_major)"
log=$work/server.log
"$run" "$svc" run --port 0 --bind 127.0.0.1 --name "tlspeers-$$" --workers 2 \
    --tls-pfx "$tls/server.pfx" --tls-password iocp-test --tls-handshake-timeout 2 >"$log" 2>&1 &
server=$!
pids+=("$server")
if [ "$wine_major" -lt 10 ]; then
    rc=0
    wait "$server" || rc=$?
    cat "$log"
    [ "$rc" = 2 ] || fail "the server started (exit $rc) on a Wine without server-side TLS"
    grep -q SEC_E_UNSUPPORTED_FUNCTION "$log" || fail "the refusal does not name the cause"
    echo "refused as it should, exit 2"
else
    port=$(wait_port "$log" "listening on")
    [ -n "$port" ] || { cat "$log"; fail "the TLS server did not start"; }
    $peer client 127.0.0.1 "$port" --ca "$tls/ca.pem" --bytes 1048576 --seed 7 | tee "$work/py.out"
    grep -q "1048576 bytes exact" "$work/py.out" || fail "Python's echo was not exact"
    grep -q "close_notify both ways" "$work/py.out" || fail "no close_notify both ways"
    out=$(echo "hello over openssl" | timeout 20 openssl s_client -connect "127.0.0.1:$port" \
        -servername localhost -CAfile "$tls/ca.pem" -verify_return_error -quiet 2>&1 || true)
    echo "$out" | tail -3
    echo "$out" | grep -q "hello over openssl" || fail "openssl s_client got no echo"
    # Plaintext: closed at once. Meanwhile Python is served.
    python3 - "$port" <<'EOF' || fail "plaintext was not closed at once"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"hello\n")
t0 = time.monotonic()
while s.recv(4096):
    pass
print(f"plaintext client closed after {time.monotonic() - t0:.2f} s")
sys.exit(0 if time.monotonic() - t0 < 3 else 1)
EOF
    $peer client 127.0.0.1 "$port" --ca "$tls/ca.pem" --bytes 10000 --seed 8 |
        grep -q "10000 bytes exact" || fail "a TLS client after the plaintext one was not served"
    $peer hello-only 127.0.0.1 "$port" | tee "$work/hello.out"
    grep -q "closed by the server after [0-3]\." "$work/hello.out" ||
        fail "a client silent after its ClientHello was not reset at the 2 s deadline"
    kill -INT "$server"
    rc=0
    wait "$server" || rc=$?
    [ "$rc" = 0 ] || { cat "$log"; fail "the server's stop exited $rc"; }
    grep -q "not a TLS ClientHello" "$log" || fail "the plaintext client is not in the log"
fi

echo "== client role (Wine $wine_major)"
rm -f "$work/py.port"
$peer server --cert "$tls/server-cert.pem" --key "$tls/server-key.pem" \
    --port-file "$work/py.port" &
pids+=("$!")
for _ in $(seq 1 100); do [ -s "$work/py.port" ] && break; sleep 0.1; done
pyport=$(cat "$work/py.port")
# 10 MiB through: 160 echoes of 64 KiB on one connection, every byte checked by the client.
"$run" "$cli" localhost "$pyport" --tls --tls-ca "$tls/ca.pem" --load --connections 1 \
    --size 65536 --messages 160 >"$work/client.out" 2>&1 || { cat "$work/client.out"; fail "the client's 10 MiB load failed"; }
tail -8 "$work/client.out"
grep -qi "handshake" "$work/client.out" || fail "the load report has no handshake figures"
# The certificate is for localhost: asked for another name, the client refuses it.
rc=0
"$run" "$cli" 127.0.0.1 "$pyport" --tls --tls-ca "$tls/ca.pem" --tls-server-name other.example \
    hello >"$work/refused.out" 2>&1 || rc=$?
cat "$work/refused.out"
[ "$rc" = 8 ] || fail "a certificate for another name: exit $rc, wanted 8"
grep -q "does not match" "$work/refused.out" || fail "the chain error is not named"
"$run" "$cli" 127.0.0.1 "$pyport" --tls --tls-insecure --tls-server-name other.example \
    hello >"$work/insecure.out" 2>&1 || { cat "$work/insecure.out"; fail "--tls-insecure was refused"; }
grep -q hello "$work/insecure.out" || fail "no echo with --tls-insecure"
echo "1 passed, 0 failed"
