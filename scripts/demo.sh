#!/usr/bin/env bash
# The main job, for real: build, start the echo server (the service host's console mode) on a
# free local port, send messages with the console client (one larger than the server's
# receive buffer), print what came back, and stop the server with Ctrl+C (SIGINT), cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

echo "== building (MinGW-w64 GCC, build/mingw-wine)"
cmake --preset mingw-wine >/dev/null
cmake --build --preset mingw-wine >/dev/null

bin=build/mingw-wine
run=cmake/wine-run.sh
log=$(mktemp)
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -f "$log"
}
trap cleanup EXIT

echo "== starting the echo server: iocp-service run --port 0 --buffer-size 1024"
# --port 0: the system picks a free port, which the server prints once it is listening.
"$run" "$bin/service/iocp-service.exe" run --port 0 --buffer-size 1024 \
    --name "demo-$$" >"$log" 2>&1 &
server_pid=$!
port=
for _ in $(seq 1 200); do
    port=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)\r\{0,1\}$/\1/p' "$log" | head -n 1)
    [ -n "$port" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$port" ]; then
    echo "demo: the server did not start:" >&2
    cat "$log" >&2
    exit 1
fi
grep '^listening on' "$log"

big=$(python3 -c "print(' '.join('word%04d' % i for i in range(400)))")
echo "== iocp-client 127.0.0.1 $port: three messages, the last ${#big} bytes (the buffer is 1024)"
"$run" "$bin/client/iocp-client.exe" 127.0.0.1 "$port" "hello" "echo, echo" "$big" |
    awk '{ if (length($0) > 120) printf "%s ... (%d bytes)\n", substr($0, 1, 100), length($0); else print }'
status=${PIPESTATUS[0]}

echo "== stopping the server (Ctrl+C)"
kill -INT "$server_pid"
wait "$server_pid" || true
server_pid=
sed -n '/stopping/,$p' "$log"
if [ "$status" -ne 0 ]; then
    echo "demo: the client reported a failure (exit code $status)" >&2
    exit "$status"
fi
echo "demo: every echo matched what was sent"
