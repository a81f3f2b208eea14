#!/usr/bin/env bash
# bench/profile.sh: where an echo's time goes under Wine, for ours, asio or the minimal loop.
#
#   bench/profile.sh ours|asio|minimal WORKLOAD [COUNT]
#
# WORKLOAD is one of bench/run.sh's: pingpong pipelined bulk many churn churn-proxy udp; COUNT
# is the number of echoes (connections for churn) to measure, default 20000 (3000 for churn).
# churn-proxy (ours only): churn with a PROXY v2 header first on every connection, ours
# trusting the loopback load generator (--proxy-protocol 127.0.0.1/32). Two runs:
#   1. plain: echoes per second, and the CPU time the server process, the wineserver and the
#      load generator spent, per echo (utime+stime from /proc);
#   2. traced (WINEDEBUG=+server, much slower): the wineserver requests the server made, per
#      echo, by request type. Every Winsock call under Wine is one or more such requests.
# Needs what bench/run.sh builds (build/bench/loadgen, asio_echo.exe, minimal_echo.exe, ours'
# build); it uses the bench's Wine prefix. Prints a small table; nothing is written into the
# repository.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
kind=${1:?usage: bench/profile.sh ours|asio|minimal WORKLOAD [COUNT]}
workload=${2:?usage: bench/profile.sh ours|asio|minimal WORKLOAD [COUNT]}
case $workload in
pingpong) args=(--connections 1 --depth 1 --size 64) ;;
pipelined) args=(--connections 100 --depth 4 --size 64) ;;
bulk) args=(--connections 100 --depth 4 --size 4096) ;;
many) args=(--connections 1000 --depth 1 --size 64) ;;
churn) args=(--churn --connections 32 --size 64) ;;
churn-proxy) args=(--churn --connections 32 --size 64 --proxy v2) ;; # ours only
udp) args=(--udp --connections 16 --depth 4 --size 64) ;; # ours --udp-only, asio_udp_echo.exe
*)
    echo "profile: unknown workload '$workload' (pingpong pipelined bulk many churn churn-proxy udp)" >&2
    exit 2
    ;;
esac
count=${3:-$(case $workload in churn*) echo 3000 ;; *) echo 20000 ;; esac)}
case $count in
'' | *[!0-9]*)
    echo "profile: COUNT must be a whole number, not '$count'" >&2
    exit 2
    ;;
esac

loadgen=$root/build/bench/loadgen
case $kind in
ours)
    exe=${BENCH_OURS_EXE:-$root/build/mingw-wine/service/iocp-service.exe} # another build: A/B
    srv_args=(run --port 0 --workers 2 --buffer-size 16384 --bind 127.0.0.1
        --max-connections 11024 --name "iocp-profile-$$"
        --max-connections-per-ip 0 --send-queue-cap 4194304 --memory-budget 55120)
    # as bench/run.sh: loopback clients, the 4 MiB queue, a budget of 11,024 x 5 MiB
    [ "$workload" = udp ] && srv_args+=(--udp-only)
    [ "$workload" = churn-proxy ] && srv_args+=(--proxy-protocol 127.0.0.1/32)
    ;;
asio)
    exe=$root/build/bench/asio_echo.exe
    srv_args=(--port 0 --threads 2 --buffer-size 16384)
    if [ "$workload" = udp ]; then
        exe=$root/build/bench/asio_udp_echo.exe
        srv_args=(--port 0 --threads 2 --receives "${BENCH_ASIO_UDP_RECEIVES:-1}")
    fi
    ;;
minimal)
    [ "$workload" = udp ] && { echo "profile: the minimal loop has no UDP" >&2 && exit 2; }
    exe=$root/build/bench/minimal_echo.exe
    srv_args=(--port 0 --threads 2 --buffer-size 16384)
    ;;
*)
    echo "profile: the first argument is ours, asio or minimal, not '$kind'" >&2
    exit 2
    ;;
esac
if [ "$workload" = churn-proxy ] && [ "$kind" != ours ]; then
    echo "profile: churn-proxy is ours only ($kind does not speak the PROXY protocol)" >&2
    exit 2
fi
for f in "$loadgen" "$exe"; do
    [ -x "$f" ] || [ -f "$f" ] || {
        echo "profile: $f is missing: run bench/run.sh once (it builds everything)" >&2
        exit 1
    }
done

export WINEPREFIX=${BENCH_WINEPREFIX:-$root/build/bench/wineprefix}
export IOCP_WINEPREFIX=$WINEPREFIX
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
export WINEDLLOVERRIDES="mscoree,mshtml="
[ -f "$WINEPREFIX/system.reg" ] || "$root/cmake/wine-run.sh" cmd /c exit 0 >/dev/null 2>&1 || true
work=$(mktemp -d)
srv_pid=
cleanup() {
    [ -n "$srv_pid" ] && kill -KILL "$srv_pid" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "profile: $kind, $workload: $1; its output:" >&2
    cat "$2" "$work/srv.out" >&2
    exit 1
}
# start_server DEBUG: the server in the background, its log in $work/srv.log; sets $port.
start_server() {
    WINEDEBUG=$1 wine "$exe" "${srv_args[@]}" >"$work/srv.out" 2>"$work/srv.log" &
    srv_pid=$!
    port=
    for _ in $(seq 600); do
        port=$(listening_line "$work/srv.out" "$work/srv.log")
        port=${port##*:}
        [ -n "$port" ] && return 0
        kill -0 "$srv_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "profile: $kind did not start; its output:" >&2
    cat "$work/srv.out" "$work/srv.log" >&2
    exit 1
}
stop_server() {
    kill -KILL "$srv_pid" 2>/dev/null || true
    wait "$srv_pid" 2>/dev/null || true
    srv_pid=
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
hz=$(getconf CLK_TCK)

# 1. plain run: rate and CPU per echo.
start_server -all
"$loadgen" --host 127.0.0.1 --port "$port" "${args[@]}" --messages 500 >"$work/lg0.out" 2>&1 ||
    fail "the load generator's warm-up failed" "$work/lg0.out"
server_proc=$(pgrep -f "^$exe" | head -n1)
ws=$(wineserver_pid || true)
s0=$(cpu_ticks "$server_proc")
w0=$(cpu_ticks "$ws")
t0=$(date +%s%N)
/usr/bin/time -f '%U %S' -o "$work/lg.time" "$loadgen" --host 127.0.0.1 --port "$port" \
    "${args[@]}" --messages "$count" >"$work/lg.out" 2>&1 || fail "the load generator failed" "$work/lg.out"
t1=$(date +%s%N)
s1=$(cpu_ticks "$server_proc")
w1=$(cpu_ticks "$ws")
stop_server
read -r lg_user lg_sys <"$work/lg.time"
echoes=$(grep -m1 -oE '^ *[0-9]+ (messages|connections|datagrams)' "$work/lg.out" | grep -oE '[0-9]+')
[ -n "$echoes" ] && [ "$echoes" -gt 0 ] || {
    echo "profile: the load generator echoed nothing:" >&2
    cat "$work/lg.out" >&2
    exit 1
}

# 2. traced run: wineserver requests per echo. The wineserver writes the trace, and only one
# started with WINEDEBUG=+server does: wait for the plain run's to exit (it lingers a few
# seconds after its last process), so that the traced server starts a fresh one.
timeout 60 wineserver -w 2>/dev/null || true
if ws=$(wineserver_pid); then
    echo "profile: a wineserver (pid $ws) is still running in $WINEPREFIX (another Wine program" \
        "in the prefix?): the traced run needs a fresh one" >&2
    exit 1
fi
# The server's own log is quiet after the warm-up (its connections closed): what the log
# gains during the measured run is its work.
start_server +server
"$loadgen" --host 127.0.0.1 --port "$port" "${args[@]}" --messages 200 >"$work/lg0.out" 2>&1 ||
    fail "the load generator's warm-up failed" "$work/lg0.out"
# Settled: under 4 KB of log in a second (ours' timeout sweep logs a few requests each run).
size=0
for _ in $(seq 30); do
    now=$(stat -c %s "$work/srv.log")
    [ $((now - size)) -lt 4096 ] && break
    size=$now
    sleep 1
done
size=$(stat -c %s "$work/srv.log")
"$loadgen" --host 127.0.0.1 --port "$port" "${args[@]}" --messages "$count" >"$work/lg2.out" 2>&1 ||
    fail "the load generator failed (traced run)" "$work/lg2.out"
sleep 1
stop_server
# A request is logged as "tid: name( args )" and its reply as "tid: name() = STATUS": count calls.
tail -c +"$((size + 1))" "$work/srv.log" | grep -vE '^[0-9a-f]{4}: [a-z_]+\(\) = ' |
    grep -oE '^[0-9a-f]{4}: [a-z_]+\(' |
    awk '{print $2}' | sort | uniq -c | sort -rn >"$work/requests" || true
if [ ! -s "$work/requests" ]; then
    echo "profile: the traced run logged no wineserver requests (log: $(stat -c %s "$work/srv.log") bytes)" >&2
    exit 1
fi

awk -v kind="$kind" -v wl="$workload" -v n="$echoes" -v ns="$((t1 - t0))" -v hz="$hz" \
    -v s="$((s1 - s0))" -v w="$((w1 - w0))" -v lu="$lg_user" -v ls="$lg_sys" '
BEGIN {
    unit = (wl ~ /^churn/) ? "connection" : "echo"
    units = (wl ~ /^churn/) ? "connections" : "echoes"
    printf "%s, %s: %d %s in %.2f s = %.0f/s\n", kind, wl, n, units, ns / 1e9, n / (ns / 1e9)
    printf "CPU per %s: server %.1f us, wineserver %.1f us, loadgen %.1f us (wall %.1f us)\n",
        unit, s * 1e6 / hz / n, w * 1e6 / hz / n, (lu + ls) * 1e6 / n, ns / 1e3 / n
}
{ total += $1; line[NR] = $0 }
END {
    printf "wineserver requests per %s: %.1f\n", unit, total / n
    for (i = 1; i <= NR && i <= 12; i++) {
        split(line[i], f, " ")
        printf "  %-28s %6.2f\n", substr(f[2], 1, length(f[2]) - 1), f[1] / n
    }
}' "$work/requests"
