#!/usr/bin/env bash
# The TLS floor (issue 29) against native OpenSSL peers on the loopback:
#   server (Wine 10; Wine 8 has no server-side Schannel: its start must be refused, naming
#   SEC_E_UNSUPPORTED_FUNCTION, with the floor options given):
#     openssl s_client -tls1 and -tls1_1 get a protocol_version alert and no echo;
#     -tls1_2 -cipher AES128-SHA (static RSA, CBC) and ECDHE-RSA-AES128-SHA (CBC) get an
#     insufficient_security alert and no echo (refused at the ClientHello, as is one offering
#     an ECDSA AEAD suite the RSA certificate cannot serve); two clients that prefer
#     ECDHE-RSA CBC and RSA GCM to the ECDHE-RSA GCM they also offer negotiate them and get
#     the same alert from the check after the handshake; a default client is echoed; `status`
#     counts the seven
#     in "below the floor" and the log names what each offered or negotiated;
#     --tls-min-version 1.0 echoes TLS 1.0 and 1.1 again.
#   client (both Wines): iocp-client --tls refuses a TLS 1.0-only openssl s_server with exit 8
#     naming the protocol, and a TLS 1.2 static-RSA CBC one naming the suite; with
#     --tls-min-version 1.0 the TLS 1.0 server echoes (s_server -rev: a palindrome comes back
#     as sent).
#   both: --tls-min-version 0.9 refused by both programs, naming the values allowed.
# Usage: tls_floor.sh SERVICE_EXE CLIENT_EXE TLS_DIR WORKDIR   (Linux host; exes under Wine)
# Prints "1 passed, 0 failed" at the end when everything held.
set -euo pipefail
svc=$1 cli=$2 tls=$3
mkdir -p "$4"
work=$(cd "$4" && pwd)
peer_name=tls_floor
source "$(dirname "${BASH_SOURCE[0]}")/peer_lib.sh"
wine_major=$(wine --version | sed -n 's/^wine-\([0-9]*\).*/\1/p')
# OpenSSL 3 sends a TLS 1.0 or 1.1 ClientHello at its default security level, but then refuses
# the server's SHA-1 signature ("legacy sigalg disallowed or unsupported"; -legacy_server_connect
# does not change that): a TLS 1.0 or 1.1 handshake completes only at security level 0.
legacy=(-cipher 'DEFAULT@SECLEVEL=0')

# s_client LABEL PORT ARGS...: one line through; the output in $work/LABEL.out.
s_client() {
    local label=$1 port=$2
    shift 2
    echo "floor-check-$label" | timeout 20 openssl s_client -connect "127.0.0.1:$port" \
        -servername localhost -CAfile "$tls/ca.pem" -quiet "$@" >"$work/$label.out" 2>&1 || true
}
# refused LABEL ALERT: no echo, and the alert seen by OpenSSL.
refused() {
    if grep -q "floor-check-$1" "$work/$1.out"; then
        cat "$work/$1.out"
        fail "$1: the line was echoed"
    fi
    grep -q "$2" "$work/$1.out" || { cat "$work/$1.out"; fail "$1: no '$2'"; }
    echo "$1: refused ($2), no echo"
}
echoed() {
    grep -q "floor-check-$1" "$work/$1.out" || { cat "$work/$1.out"; fail "$1: no echo"; }
    echo "$1: echoed"
}
# start_server NAME ARGS...: sets server (pid) and log.
start_server() {
    local name=$1
    shift
    log=$work/$name.log
    "$run" "$svc" run --port 0 --bind 127.0.0.1 --name "$name-$$" --workers 2 \
        --tls-pfx "$tls/server.pfx" --tls-password iocp-test --tls-handshake-timeout 5 "$@" \
        >"$log" 2>&1 &
    server=$!
    pids+=("$server")
}
stop_server() {
    kill -INT "$server"
    local rc=0
    wait "$server" || rc=$?
    [ "$rc" = 0 ] || { cat "$log"; fail "the server's stop exited $rc"; }
}

echo "== bad input (Wine $wine_major)"
rc=0
"$run" "$svc" run --port 0 --tls-pfx "$tls/server.pfx" --tls-password iocp-test \
    --tls-min-version 0.9 >"$work/bad-svc.out" 2>&1 || rc=$?
cat "$work/bad-svc.out"
[ "$rc" != 0 ] || fail "the service took --tls-min-version 0.9"
grep -q "must be 1.0, 1.1 or 1.2" "$work/bad-svc.out" || fail "the service's refusal names no values"
rc=0
"$run" "$cli" 127.0.0.1 9 --tls --tls-min-version 0.9 hello >"$work/bad-cli.out" 2>&1 || rc=$?
cat "$work/bad-cli.out"
[ "$rc" = 1 ] || fail "the client took --tls-min-version 0.9 (exit $rc, wanted 1, usage)"
grep -q "not 1.0, 1.1 or 1.2" "$work/bad-cli.out" || fail "the client's refusal names no values"

echo "== server role (Wine $wine_major)"
start_server floor
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
    s_client tls1 "$port" -tls1 "${legacy[@]}"
    refused tls1 "alert protocol version"
    s_client tls1_1 "$port" -tls1_1 "${legacy[@]}"
    refused tls1_1 "alert protocol version"
    s_client static_rsa "$port" -tls1_2 -cipher AES128-SHA
    refused static_rsa "alert insufficient security"
    s_client ecdhe_cbc "$port" -tls1_2 -cipher ECDHE-RSA-AES128-SHA
    refused ecdhe_cbc "alert insufficient security"
    # An ECDSA suite the floor accepts does not help an RSA certificate: refused at once too.
    s_client ecdsa_only_good "$port" -tls1_2 -cipher ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-GCM-SHA256
    refused ecdsa_only_good "alert insufficient security"
    # These pass the ClientHello check (ECDHE-RSA-AES128-GCM-SHA256 is offered too, last),
    # and Wine's Schannel takes the client's first choice: the suite negotiated is below the
    # floor, and the check after the handshake replaces the server's Finished with the alert.
    s_client after_cbc "$port" -tls1_2 -cipher ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES128-GCM-SHA256
    refused after_cbc "alert insufficient security"
    s_client after_rsa "$port" -tls1_2 -cipher AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256
    refused after_rsa "alert insufficient security"
    s_client tls1_2 "$port" -tls1_2
    echoed tls1_2
    "$run" "$svc" status --name "floor-$$" >"$work/status.out" 2>&1 || true
    cat "$work/status.out"
    grep -q "handshakes: 1 completed, 7 failed (7 below the floor)" "$work/status.out" ||
        fail "status does not count the seven below the floor"
    stop_server
    grep -q "tls_below_floor=7" "$log" || { cat "$log"; fail "the final statistics miss them"; }
    grep -q "the client offered at most TLS 1.0, below the minimum TLS 1.2" "$log" ||
        fail "the log does not name TLS 1.0"
    grep -q "the client offered at most TLS 1.1, below the minimum TLS 1.2" "$log" ||
        fail "the log does not name TLS 1.1"
    [ "$(grep -c "the client offered no cipher suite with forward secrecy and an AEAD cipher" "$log")" = 3 ] ||
        { cat "$log"; fail "the log does not name the three ClientHellos without a suite to use"; }
    grep -q "negotiated TLS 1.2 with TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA.*no AEAD cipher (CBC), below" "$log" ||
        { cat "$log"; fail "the log does not name the ECDHE CBC suite negotiated"; }
    grep -q "negotiated TLS 1.2 with .*RSA_WITH_AES_128_GCM_SHA[0-9]* (0x[0-9a-f]*): no forward secrecy (static RSA key exchange), below" "$log" ||
        { cat "$log"; fail "the log does not name the static-RSA suite negotiated"; }

    start_server floor10 --tls-min-version 1.0
    port=$(wait_port "$log" "listening on")
    [ -n "$port" ] || { cat "$log"; fail "the TLS server (--tls-min-version 1.0) did not start"; }
    grep -q "minimum TLS 1.0" "$log" || fail "the start line does not say the minimum"
    s_client tls1_again "$port" -tls1 "${legacy[@]}"
    echoed tls1_again
    s_client tls1_1_again "$port" -tls1_1 "${legacy[@]}"
    echoed tls1_1_again
    stop_server
fi

echo "== client role (Wine $wine_major)"
# s_server PROTO-ARGS...: a reversing (-rev) OpenSSL server; sets sport.
s_server() {
    local slog=$work/s_server-$#-$RANDOM.log
    openssl s_server -cert "$tls/server-cert.pem" -key "$tls/server-key.pem" \
        -accept 127.0.0.1:0 -rev "$@" >"$slog" 2>&1 &
    pids+=("$!")
    sport=$(wait_port "$slog" "ACCEPT")
    [ -n "$sport" ] || { cat "$slog"; fail "openssl s_server did not start"; }
}
s_server -tls1 "${legacy[@]}"
rc=0
"$run" "$cli" localhost "$sport" --tls --tls-ca "$tls/ca.pem" --framing line level \
    >"$work/client-tls1.out" 2>&1 || rc=$?
cat "$work/client-tls1.out"
[ "$rc" = 8 ] || fail "a TLS 1.0 server: exit $rc, wanted 8"
grep -q "the server negotiated TLS 1.0, below the minimum TLS 1.2 (--tls-min-version)" \
    "$work/client-tls1.out" || fail "the refusal does not name the protocol"
rc=0
"$run" "$cli" localhost "$sport" --tls --tls-ca "$tls/ca.pem" --tls-min-version 1.0 \
    --framing line level >"$work/client-tls1-ok.out" 2>&1 || rc=$?
cat "$work/client-tls1-ok.out"
[ "$rc" = 0 ] || fail "--tls-min-version 1.0 against a TLS 1.0 server: exit $rc"
grep -qx "level" <(tr -d '\r' <"$work/client-tls1-ok.out") || fail "no echo with --tls-min-version 1.0"
s_server -tls1_2 -cipher AES128-SHA
rc=0
"$run" "$cli" localhost "$sport" --tls --tls-ca "$tls/ca.pem" --framing line level \
    >"$work/client-rsa.out" 2>&1 || rc=$?
cat "$work/client-rsa.out"
[ "$rc" = 8 ] || fail "a static-RSA CBC server: exit $rc, wanted 8"
grep -q "the server negotiated TLS 1.2 with .*below the suite floor" "$work/client-rsa.out" ||
    fail "the refusal does not name the suite"
echo "1 passed, 0 failed"
