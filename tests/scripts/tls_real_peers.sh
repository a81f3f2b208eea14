#!/usr/bin/env bash
# TLS as real peers speak it (issue 24), against native OpenSSL and Python ssl on the loopback:
#   client (both Wines): a three-level chain (root -> intermediate -> leaf, the server sending
#     leaf + intermediate) accepted with --tls-ca naming only the root; with another root in
#     --tls-ca refused as "no chain to a trusted root" (the intermediate's issuer is nowhere),
#     or as "untrusted root" when the server sends its own root; an expired intermediate
#     refused as expired, naming it.
#   server (Wine 10 only; Wine 8 has no server role): see the second half.
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
py_server "$tls/chain-leaf-bundle.pem" "$tls/chain-leaf-key.pem"
echoed chain localhost "$pyport" --tls --tls-ca "$tls/chain-root.pem"
# Another root: the chain stops at the intermediate, whose issuer nobody gave.
refused wrong-root "no chain to a trusted root.*'iocp test intermediate' has no issuer" localhost \
    "$pyport" --tls --tls-ca "$tls/chain-wrong-root.pem"
# The CA file is the only trust: a root is not trusted for being sent by the server.
py_server "$tls/chain-leaf-full.pem" "$tls/chain-leaf-key.pem"
echoed chain-full localhost "$pyport" --tls --tls-ca "$tls/chain-root.pem"
refused wrong-root-sent "untrusted root.*'iocp test root' is not in the CA file" localhost \
    "$pyport" --tls --tls-ca "$tls/chain-wrong-root.pem"
py_server "$tls/chain-expint-leaf-bundle.pem" "$tls/chain-expint-leaf-key.pem"
refused expired-int "expired.*'iocp test expired intermediate'" localhost "$pyport" --tls \
    --tls-ca "$tls/chain-root.pem"

echo "1 passed, 0 failed"
