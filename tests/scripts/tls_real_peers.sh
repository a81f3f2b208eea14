#!/usr/bin/env bash
# TLS as real peers speak it (issue 24), against native OpenSSL and Python ssl on the loopback:
#   client (both Wines): a three-level chain (root -> intermediate -> leaf, the server sending
#     leaf + intermediate) accepted with --tls-ca naming only the root; with another root in
#     --tls-ca refused as "no chain to a trusted root" (the intermediate's issuer is nowhere),
#     or as "untrusted root" when the server sends its own root; an expired intermediate
#     refused as expired, naming it; the server gets the fatal alert (unknown_ca,
#     certificate_expired).
#   server (Wine 10 only; Wine 8 has no server role): openssl s_client -tls1_2 and "R" (a
#     renegotiation request) answered at once (no_renegotiation, close_notify), never the
#     handshake timeout's hang; the server's close_notify reaches Python (unwrap() succeeds)
#     after an idle timeout and after a stop.
# Usage: tls_real_peers.sh SERVICE_EXE CLIENT_EXE TLS_DIR WORKDIR   (Linux host; exes under Wine)
# Prints "1 passed, 0 failed" at the end when everything held.
set -euo pipefail
svc=$1 cli=$2 tls=$3
mkdir -p "$4"
work=$(cd "$4" && pwd)
peer_name=tls_real_peers
source "$(dirname "${BASH_SOURCE[0]}")/peer_lib.sh"
peer="python3 $root/tests/scripts/tls_peer.py"
wine_major=$(wine --version | sed -n 's/^wine-\([0-9]*\).*/\1/p')

# py_server CERT KEY [ARGS]: a Python TLS echo server in the background; sets pyport.
py_server() {
    rm -f "$work/py.port"
    $peer server --cert "$1" --key "$2" --port-file "$work/py.port" "${@:3}" &
    pids+=("$!")
    for _ in $(seq 1 100); do [ -s "$work/py.port" ] && break; sleep 0.1; done
    pyport=$(cat "$work/py.port")
}
# refused NAME WANT ARGS...: the client exits 8 and its message matches WANT.
refused() {
    local name=$1 want=$2 rc=0
    shift 2
    "$run" "$cli" "$@" hello >"$work/$name.out" 2>&1 || rc=$?
    cat "$work/$name.out"
    [ "$rc" = 8 ] || fail "$name: exit $rc, wanted 8"
    grep -q "$want" "$work/$name.out" || fail "$name: the message does not say '$want'"
}
# echoed NAME ARGS...: the client exits 0 with its line echoed.
echoed() {
    local name=$1
    shift
    "$run" "$cli" "$@" hello >"$work/$name.out" 2>&1 || { cat "$work/$name.out"; fail "$name: refused"; }
    grep -q hello "$work/$name.out" || fail "$name: no echo"
    echo "$name: echoed"
}

echo "== client role (Wine $wine_major): the three-level chain"
rm -f "$work/alerts.txt" "$work/alerts2.txt"
py_server "$tls/chain-leaf-bundle.pem" "$tls/chain-leaf-key.pem" --errors "$work/alerts.txt"
echoed chain localhost "$pyport" --tls --tls-ca "$tls/chain-root.pem"
# Another root: the chain stops at the intermediate, whose issuer nobody gave.
refused wrong-root "no chain to a trusted root.*'iocp test intermediate' has no issuer" localhost \
    "$pyport" --tls --tls-ca "$tls/chain-wrong-root.pem"
# The server is told: a fatal unknown_ca alert, as OpenSSL's client would send.
# Wine 8's Schannel makes no alert from SCHANNEL_ALERT (docs/wine.md): checked under Wine 10.
alerts() { # alerts FILE WANT
    if [ "$wine_major" -ge 10 ]; then
        grep -q "$2" "$1" 2>/dev/null || { cat "$1" 2>/dev/null; fail "no $2 alert reached the server"; }
        echo "the server got $2"
    fi
}
alerts "$work/alerts.txt" ALERT_UNKNOWN_CA
# The CA file is the only trust: a root is not trusted for being sent by the server.
py_server "$tls/chain-leaf-full.pem" "$tls/chain-leaf-key.pem"
echoed chain-full localhost "$pyport" --tls --tls-ca "$tls/chain-root.pem"
refused wrong-root-sent "untrusted root.*'iocp test root' is not in the CA file" localhost \
    "$pyport" --tls --tls-ca "$tls/chain-wrong-root.pem"
py_server "$tls/chain-expint-leaf-bundle.pem" "$tls/chain-expint-leaf-key.pem" --errors "$work/alerts2.txt"
refused expired-int "expired.*'iocp test expired intermediate'" localhost "$pyport" --tls \
    --tls-ca "$tls/chain-root.pem"
alerts "$work/alerts2.txt" ALERT_CERTIFICATE_EXPIRED

if [ "$wine_major" -lt 10 ]; then
    echo "== server role: not under Wine $wine_major (no server-side Schannel)"
    echo "1 passed, 0 failed"
    exit 0
fi

# server NAME ARGS...: iocp-service in the background (log in $work/NAME.log); sets port, server.
server() {
    local name=$1
    shift
    log=$work/$name.log
    "$run" "$svc" run --port 0 --bind 127.0.0.1 --name "tlsreal-$name-$$" --workers 2 \
        --tls-pfx "$tls/server.pfx" --tls-password iocp-test "$@" >"$log" 2>&1 &
    server=$!
    pids+=("$server")
    port=$(wait_port "$log" "listening on")
    [ -n "$port" ] || { cat "$log"; fail "$name: the server did not start"; }
}
stop_server() {
    kill -INT "$server"
    local rc=0
    wait "$server" || rc=$?
    [ "$rc" = 0 ] || { cat "$log"; fail "the server's stop exited $rc"; }
}

echo "== server role (Wine $wine_major): renegotiation refused at once"
server renegotiation
$peer renegotiate 127.0.0.1 "$port" | tee "$work/renegotiate.out"
grep -q "answered after 0\.[0-9]* s: .*no renegotiation" "$work/renegotiate.out" ||
    fail "R on TLS 1.2 was not refused within a second with no_renegotiation"
# The server goes on serving.
$peer client 127.0.0.1 "$port" --ca "$tls/ca.pem" --bytes 10000 --seed 3 | grep -q "10000 bytes exact" ||
    fail "no echo after a refused renegotiation"
stop_server
grep -q "renegotiation, which is refused" "$log" || { cat "$log"; fail "the refusal is not logged"; }

echo "== server role: close_notify after an idle timeout and after a stop"
server idle --idle-timeout 1
$peer wait-close 127.0.0.1 "$port" --ca "$tls/ca.pem" | tee "$work/idle.out"
grep -q "close_notify from the server" "$work/idle.out" || fail "no close_notify at the idle timeout"
stop_server
server stop
$peer wait-close 127.0.0.1 "$port" --ca "$tls/ca.pem" >"$work/stop.out" &
waiter=$!
pids+=("$waiter")
for _ in $(seq 1 100); do grep -q ready "$work/stop.out" && break; sleep 0.1; done
grep -q ready "$work/stop.out" || fail "the stop case's client did not get its echo"
stop_server
wait "$waiter" || true
cat "$work/stop.out"
grep -q "close_notify from the server" "$work/stop.out" || fail "no close_notify at the stop"

echo "1 passed, 0 failed"
