#!/usr/bin/env bash
# Under Wine: `iocp-service run` stops gracefully on Ctrl+C. A Windows test cannot send the
# event here (GenerateConsoleCtrlEvent fails under Wine), but Wine turns SIGINT to the process
# into CTRL_C_EVENT for its console handlers, as a terminal's Ctrl+C would. So: start `run`,
# echo a line over a connection, send SIGINT, and expect the open connection to be closed
# cleanly, "stopped" on stdout and exit code 0, within the drain timeout.
#   console-ctrl-c.sh PATH/TO/iocp-service.exe
set -u
exe=${1:?usage: console-ctrl-c.sh iocp-service.exe}
root=$(cd "$(dirname "$0")/.." && pwd)
name=iocpt-ctrlc-$$
out=$(mktemp)
err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
fail() {
    echo "console ctrl-c: FAIL: $*"
    echo "--- stdout"; cat "$out"; echo "--- stderr"; cat "$err"
    kill -9 "$runner" 2>/dev/null
    exit 1
}

# wine-run.sh execs wine, which becomes the Windows process: $runner is its process id.
"$root/cmake/wine-run.sh" "$exe" run --port 0 --name "$name" --framing line \
    --drain-timeout 5 >"$out" 2>"$err" </dev/null &
runner=$!
for _ in $(seq 1 300); do
    grep -q '^listening on ' "$out" && break
    kill -0 "$runner" 2>/dev/null || fail "run exited early"
    sleep 0.1
done
port=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)\r\{0,1\}$/\1/p' "$out")
[ -n "$port" ] || fail "no 'listening on' line"

exec 3<>"/dev/tcp/127.0.0.1/$port" || fail "cannot connect to port $port"
printf 'hello\n' >&3
IFS= read -r -t 10 line <&3 || fail "no echo"
[ "$line" = "hello" ] || fail "echo was '$line'"

start=$(date +%s%N)
kill -INT "$runner"
# The open connection is closed by the server's drain: EOF, not a hang.
if IFS= read -r -t 15 line <&3; then fail "data after Ctrl+C: '$line'"; fi
exec 3<&-
for _ in $(seq 1 200); do
    kill -0 "$runner" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$runner" 2>/dev/null && fail "still running 20 s after Ctrl+C"
wait "$runner"
rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$rc" -eq 0 ] || fail "exit code $rc"
grep -q '^stopped' "$out" || fail "no 'stopped' line"
grep -q 'final statistics: accepted=1 ' "$err" || fail "no final statistics"
echo "console ctrl-c: ok (stopped in $ms ms, exit code 0)"
