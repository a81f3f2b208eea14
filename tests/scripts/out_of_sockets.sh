#!/usr/bin/env bash
# Out of sockets (docs/reliability.md): the server runs in a Wine prefix whose wineserver
# (which holds the Unix descriptor of every socket in the prefix) has a small descriptor
# limit. Native clients connect until the server cannot take more. Then:
#   - the server logs the shortage once, not once per attempt;
#   - accepting backs off instead of spinning: server + wineserver CPU stays low while starved
#     (measured with the backlog empty: under Wine a connection the wineserver cannot accept
#     makes the wineserver itself poll in a loop, which no program can prevent; it is reported);
#   - when clients leave, accepting resumes and a new client is echoed.
# Usage: out_of_sockets.sh SERVICE_EXE WORKDIR      (Linux host, cross-built exe under Wine)
set -euo pipefail
exe=$1
mkdir -p "$2"; work=$(cd "$2" && pwd)
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
limit=${OOS_FD_LIMIT:-320}
mkdir -p "$work"
export WINEDEBUG=-all
# cmake/wine-run.sh runs the server in IOCP_WINEPREFIX plus the Wine's suffix; $prefix is
# that folder, for the wineserver commands here (cmake/wine-tag.sh).
source "$root/cmake/wine-tag.sh"
export IOCP_WINEPREFIX=$work/prefix
prefix=$IOCP_WINEPREFIX${IOCP_WINE_TAG:+-$IOCP_WINE_TAG}
if [ ! -f "$prefix/system.reg" ]; then
    # A copy of the project's prefix (booted by the other tests) is ready in under a second;
    # files that other tests delete while it is copied do not matter.
    if [ -f "$root/build/wineprefix${IOCP_WINE_TAG:+-$IOCP_WINE_TAG}/system.reg" ]; then
        cp -a "$root/build/wineprefix${IOCP_WINE_TAG:+-$IOCP_WINE_TAG}" "$prefix" 2>/dev/null || true
    fi
    if [ ! -f "$prefix/system.reg" ]; then
        rm -rf "$prefix"
        mkdir -p "$prefix"
        WINEPREFIX=$prefix wineboot -i >/dev/null 2>&1
        WINEPREFIX=$prefix wineserver -w
    fi
fi
WINEPREFIX=$prefix wineserver -k 2>/dev/null || true
WINEPREFIX=$prefix wineserver -w 2>/dev/null || true
# Let Wine finish any prefix update (it starts several helper processes, each holding
# descriptors) under an unlimited wineserver first, so the limited one only has the server.
WINEPREFIX=$prefix wineboot -u >/dev/null 2>&1 || true
WINEPREFIX=$prefix wineserver -w 2>/dev/null || true
# The small limit applies to the wineserver alone (it is inherited by nothing else here).
(ulimit -n "$limit" && WINEPREFIX=$prefix setsid wineserver -p)
log=$work/server.log
# Its clients are all 127.0.0.1 (no per-IP limit); the budget: 1,000 x (1 MiB + 16 KiB).
"$root/cmake/wine-run.sh" "$exe" run --port 0 --name "oos-$$" --max-connections 1000 \
    --max-connections-per-ip 0 --memory-budget 2048 \
    --workers 2 >"$log" 2>&1 &
server=$!
cleanup() {
    kill -INT "$server" 2>/dev/null || true
    sleep 1
    kill -9 "$server" 2>/dev/null || true
    WINEPREFIX=$prefix wineserver -k 2>/dev/null || true
}
trap cleanup EXIT
port=
for _ in $(seq 1 300); do
    port=$(sed -n 's/^listening on .*:\([0-9][0-9]*\)\r\{0,1\}$/\1/p' "$log" | head -n 1)
    [ -n "$port" ] && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
done
[ -n "$port" ] || { cat "$log"; echo "FAIL: the server did not start"; exit 1; }
ws=$(for p in $(pgrep -x wineserver64; pgrep -x wineserver); do
    case $(readlink /proc/$p/cwd) in
    */"$(printf 'server-%x-%x' $(stat -L -c '%d %i' "$prefix"))") echo "$p" ;;
    esac
done | head -n 1)
srv=$(pgrep -f "iocp-service.exe run --port 0 --name oos-$$" | head -n 1)

python3 - "$port" "$srv" "$ws" "$log" <<'PY'
import os, socket, sys, time
port, srv, ws, log = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
HZ = os.sysconf("SC_CLK_TCK")

def cpu(pid):
    if not pid:
        return 0
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])

def echo(s, payload=b"x"):
    s.sendall(payload)
    return s.recv(16) == payload

held, served = [], 0
for i in range(400):
    s = socket.create_connection(("127.0.0.1", port), timeout=2)
    s.settimeout(2)
    try:
        ok = echo(s)
    except OSError:
        ok = False
    if not ok:
        held.append(s)  # stays in the backlog: the server cannot accept it now
        break
    held.append(s)
    served += 1
print(f"served {served} connections before the server ran out of sockets")
if served >= 399:
    print("FAIL: never ran out of sockets; the descriptor limit did not apply")
    sys.exit(1)

# Starved: the listener must back off, not spin.
def threads(pid):
    out = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        f = open(f"/proc/{pid}/task/{t}/stat").read().rsplit(")", 1)[1].split()
        out[t] = (int(f[11]) + int(f[12]), open(f"/proc/{pid}/task/{t}/comm").read().strip())
    return out
th0 = threads(srv)
s0, w0, t0 = cpu(srv), cpu(ws), time.time()
time.sleep(3)
dt = time.time() - t0
s_used, w_used = (cpu(srv) - s0) / HZ / dt, (cpu(ws) - w0) / HZ / dt
used = s_used + w_used
th1 = threads(srv)
if os.environ.get("OOS_VERBOSE"):
    for t, (v, name) in th1.items():
        print("  thread", t, name, v - th0.get(t, (0, ""))[0])
print(f"CPU while starved, one connection in the backlog: server {s_used * 100:.1f}%, "
      f"wineserver {w_used * 100:.1f}% of one core (Wine's own loop, see below)")
# Wine's own busy loop: while a connection waits in the backlog that the wineserver cannot
# accept (no descriptor), the wineserver polls the listening socket without pause and wakes
# the process, whatever the process does (the numbers above include it). With that connection
# gone, the server is still out of sockets, and its own accept path must be idle: its slots
# wait for the back-off timer.
held.pop().close()
time.sleep(0.5)
a0, b0, t1 = cpu(srv), cpu(ws), time.time()
time.sleep(3)
dt = time.time() - t1
own = (cpu(srv) - a0) / HZ / dt + (cpu(ws) - b0) / HZ / dt
print(f"CPU while starved, backlog empty: {own * 100:.1f}% of one core (server + wineserver)")
text = open(log, errors="replace").read()
shortage = text.count("cannot accept:")
print(f"shortage log lines: {shortage}")

# Clients leave; accepting resumes and a new client is served.
for s in held[: len(held) // 2]:
    s.close()
deadline, resumed = time.time() + 15, False
while time.time() < deadline and not resumed:
    try:
        n = socket.create_connection(("127.0.0.1", port), timeout=2)
        n.settimeout(3)
        resumed = echo(n, b"again")
        held.append(n)
    except OSError:
        time.sleep(0.2)
print(f"accepting resumed after clients left: {resumed}")
# The shortage is over once a probe's accept has succeeded and every accept slot can be armed
# again: the listener must say so and leave its probing mode (it once never did, and went on
# cancelling its accepts every back-off).
resumed_logged = False
deadline = time.time() + 5
while time.time() < deadline and not resumed_logged:
    resumed_logged = "accepting resumed" in open(log, errors="replace").read()
    if not resumed_logged:
        time.sleep(0.1)
print(f"log says accepting resumed: {resumed_logged}")
for s in held:
    s.close()
failed = []
if own > 0.15:
    failed.append("the accept path spins while out of sockets")
if shortage < 1:
    failed.append("no log line says the server ran out of sockets")
if shortage > 3:
    failed.append(f"{shortage} shortage lines: the log is flooded")
if not resumed:
    failed.append("accepting did not resume")
if resumed and not resumed_logged:
    failed.append("no log line says accepting resumed: the listener stayed in its shortage mode")
# Echoes are checked one byte at a time above; the server's contexts are not visible from
# here: "-" for both.
print(f"METRIC scenario=out_of_sockets connections={served + 1} faults=1 bad_inputs=0 "
      f"bytes_lost=- contexts_leaked=-")
if failed:
    print("FAIL: " + "; ".join(failed))
    sys.exit(1)
print("1 passed, 0 failed")
PY
