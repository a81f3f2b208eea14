#!/usr/bin/env bash
# bench/run.sh: side-by-side benchmark of our server (iocp-service) against a standalone-asio
# echo server, both under the same Wine prefix, driven by a native Linux load generator.
#
#   bench/run.sh                       # 3 rounds of 10 s per workload, all workloads
#   BENCH_SECONDS=3 BENCH_ROUNDS=1 bench/run.sh
#
# Environment:
#   BENCH_ROUNDS (3)       rounds per workload; the servers alternate which goes first
#   BENCH_SECONDS (10)     length of one timed run
#   BENCH_WORKERS (nproc)  worker threads of every server (ours --workers, asio --threads)
#   BENCH_WORKLOADS        subset of: pingpong pipelined bulk many churn churn-proxy scale udp,
#                          and the same over TLS: pingpong-tls pipelined-tls bulk-tls many-tls
#                          churn-tls (ours and native only: asio and minimal have no TLS).
#                          Just the churn pair: BENCH_WORKLOADS="churn churn-proxy"
#   BENCH_WINE (auto)      8 = the system's Wine, 10 = the Wine 10 tree (cmake/wine10-bin, its
#                          own prefix PREFIX-wine10); auto = 10 when a TLS workload is asked
#                          for (only Wine 10 has server-side Schannel), else the system's.
#                          Every run of one bench run uses that one Wine, so the plaintext rows
#                          beside the TLS ones are the same Wine.
#   BENCH_IMPLS            subset of: ours asio minimal native (minimal = the floor: the least
#                          an IOCP echo loop can do; native = the load generator's calibration)
#   BENCH_SCALE_CONNECTIONS (10000), BENCH_CHURN_SLOTS (32)
#   BENCH_UDP_SOCKETS (16), BENCH_UDP_DEPTH (4), BENCH_UDP_SIZE (64): the udp workload
#   BENCH_ASIO_UDP_RECEIVES (1) receives the asio UDP server keeps outstanding (its example's
#                          model is 1; more is an experiment beyond the example)
#   BENCH_SCALE_SETTLE (3) seconds between the last echo and the memory sample: quiet
#                          connections give their receive buffers back after 1-1.5 s
#   BENCH_SCALE_IDLE_FIRST=1  scale: the connections first stay silent (settle + 3 s) and
#                          memory is sampled then too (rss_*_kb_idle in the JSON), then echo
#   BENCH_SKIP_BUILD=1     use the binaries as they are (no cmake build of ours)
#   BENCH_OURS_ARGS        more options for ours (e.g. "--drain-timeout 2")
#   BENCH_OURS_EXE         measure this iocp-service.exe as ours (another build or commit,
#                          for an A/B comparison; use with BENCH_SKIP_BUILD=1 and BENCH_OUT)
#   BENCH_OUT              the JSON results (default bench/results/latest.json, under Wine 10
#                          bench/results/wine10.json, the udp workload alone
#                          bench/results/udp.json; RESULTS.md shows all three)
#   BENCH_RETRIES (1)      repeats of a run whose server stopped before the bench stopped it
#   BENCH_BUSY_CPUS (0)    busy loops at nice 19 kept running during the runs: they take only
#                          idle CPU time, so no CPU sleeps and a wake-up costs no idle exit.
#                          An experiment, not the benchmark: it shows how much of a latency-
#                          bound workload (ping-pong) is the machine waking CPUs up.
#   BENCH_WINEPREFIX       the prefix both servers share (default build/bench/wineprefix, a copy
#                          of the project's build/wineprefix, so that a test run elsewhere in
#                          the project's prefix does not share the wineserver with the bench)
#
# Workloads (loadgen: every echoed byte is verified; timing starts after every connection is
# established and has echoed once):
#   1 pingpong   1 connection, 64 B, depth 1           -> msg/s, latency
#   2 pipelined  100 connections, 64 B, depth 4        -> msg/s
#   3 bulk       100 connections, 4 KiB, depth 4       -> msg/s (and MB/s)
#   4 many       1000 connections, 64 B, depth 1       -> msg/s
#   5 churn      32 slots of connect, one echo, close  -> connections/s
#   6 scale      10,000 connections, then all echo once; server VmRSS (+ wineserver) per
#                connection from /proc, and the time of a graceful stop (Ctrl+C) holding them
#   7 udp        16 connected UDP sockets, 64 B datagrams, 4 in flight each -> datagrams/s,
#                latency, loss (a datagram unanswered after 0.5 s: lost, replaced). Ours is
#                run --udp-only, asio is asio-echo/asio_udp_echo.cpp (asio's async UDP echo
#                example), native is native_echo --udp; the minimal loop has no UDP
#   churn-proxy  churn behind a load balancer: ours with --proxy-protocol 127.0.0.1/32, the
#                loadgen sending a PROXY v2 header (--proxy v2, a different 10.x.y.z client
#                each connection) first on every connection; ours only (the peers do not
#                speak PROXY), compared with ours' plain churn. With churn in the same run it
#                runs inside churn's rounds, right beside ours' plain run (ours, ours PROXY,
#                asio in odd rounds; asio, ours PROXY, ours in even ones)
#   X-tls        workload X over TLS 1.2: ours with --tls-pfx tests/tls/server.pfx, native
#                with tests/tls/server-cert.pem; loadgen --tls verifies the chain against
#                tests/tls/ca.pem. Timing starts after every handshake (bulk-tls, many-tls
#                measure the record layer); churn-tls is connect, full handshake, one echo,
#                close_notify, close: connections/s = handshakes/s
# Output: a table on stdout, bench/results/latest.json, logs in build/bench/logs/.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$root/build/bench
logs=$out/logs

ROUNDS=${BENCH_ROUNDS:-3}
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
WORKERS=${BENCH_WORKERS:-$(nproc)}
WORKLOADS=${BENCH_WORKLOADS:-pingpong pipelined bulk many churn churn-proxy scale udp}
IMPLS=${BENCH_IMPLS:-ours asio minimal native}
SCALE_CONNECTIONS=${BENCH_SCALE_CONNECTIONS:-10000}
SCALE_SETTLE=${BENCH_SCALE_SETTLE:-3}
SCALE_IDLE_FIRST=${BENCH_SCALE_IDLE_FIRST:-0}
CHURN_SLOTS=${BENCH_CHURN_SLOTS:-32}
UDP_SOCKETS=${BENCH_UDP_SOCKETS:-16}
UDP_DEPTH=${BENCH_UDP_DEPTH:-4}
UDP_SIZE=${BENCH_UDP_SIZE:-64}
ASIO_UDP_RECEIVES=${BENCH_ASIO_UDP_RECEIVES:-1}
RETRIES=${BENCH_RETRIES:-1}
BUFFER_SIZE=16384
OURS_MAX_CONNECTIONS=$((SCALE_CONNECTIONS + 1024))

OURS_EXE=${BENCH_OURS_EXE:-$root/build/mingw-wine/service/iocp-service.exe}
ASIO_EXE=$out/asio_echo.exe
ASIO_UDP_EXE=$out/asio_udp_echo.exe
MINIMAL_EXE=$out/minimal_echo.exe
LOADGEN=$out/loadgen
NATIVE=$out/native_echo
RUNS=$out/runs.jsonl

export WINEDEBUG=-all
export IOCP_WINEPREFIX=${BENCH_WINEPREFIX:-$out/wineprefix}
TLS_DIR=$root/tests/tls

# The Wine: one for the whole run (see BENCH_WINE above).
BENCH_WINE=${BENCH_WINE:-auto}
if [ "$BENCH_WINE" = auto ]; then
    BENCH_WINE=8
    case " $WORKLOADS " in *-tls" "*) BENCH_WINE=10 ;; esac
fi
case $BENCH_WINE in
10)
    # cmake/wine-run.sh then runs Wine 10 in its tree, in the prefix PREFIX-wine10.
    export PATH=$root/cmake/wine10-bin:$PATH
    ;;
8) ;;
*)
    printf 'bench: BENCH_WINE is 8, 10 or auto, not %s\n' "$BENCH_WINE" >&2
    exit 1
    ;;
esac
# shellcheck source=cmake/wine-tag.sh
source "$root/cmake/wine-tag.sh"
# Each scale run waits for the prefix's wineserver to end (a fresh one measures the memory):
# wine-run.sh's server ends with the prefix's last program, not 30 s later.
export IOCP_WINESERVER_LINGER=${IOCP_WINESERVER_LINGER:-0}
# The prefix the servers really run in (wine-run.sh adds the tag), for wineserver and /proc.
PREFIX=$IOCP_WINEPREFIX${IOCP_WINE_TAG:+-$IOCP_WINE_TAG}
# One results file per Wine: a Wine 10 run's rows are not comparable with a Wine 8 run's.
results_file=${BENCH_OUT:-$root/bench/results/$([ "$BENCH_WINE" = 10 ] && echo wine10 || echo latest).json}
# A run of the udp workload alone has its own file (RESULTS.md shows it as a third section),
# so that it does not replace the TCP tables of latest.json.
[ -z "${BENCH_OUT:-}" ] && [ "$(echo $WORKLOADS)" = udp ] && results_file=$root/bench/results/udp.json
results_dir=$(dirname "$results_file")
mkdir -p "$out" "$logs" "$results_dir"

log() { printf '%s\n' "$*" >&2; }
die() {
    log "bench: $*"
    exit 1
}

# ---- cleanup: only what this script started ------------------------------------------------
SRV_PID=
LG_PID=
BUSY_PIDS=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ ${#BUSY_PIDS[@]} -gt 0 ] && kill "${BUSY_PIDS[@]}" 2>/dev/null
    if [ -n "$LG_PID" ] && kill -0 "$LG_PID" 2>/dev/null; then
        kill -TERM "$LG_PID" 2>/dev/null || true
    fi
    if [ -n "$SRV_PID" ] && kill -0 "$SRV_PID" 2>/dev/null; then
        kill -INT "$SRV_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            proc_alive "$SRV_PID" || break
            sleep 0.1
        done
        kill -KILL "$SRV_PID" 2>/dev/null || true
    fi
    wait 2>/dev/null || true
    exit $rc
}
trap cleanup EXIT
trap 'log "bench: interrupted"; exit 130' INT TERM

# Alive and not a zombie (a child stays a zombie until waited for).
proc_alive() {
    local st
    st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"

# ---- build -------------------------------------------------------------------------------
build_native() {
    local cflags="-std=c11 -O2 -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes"
    log "bench: building loadgen and native_echo (native, gcc -O2, OpenSSL for --tls)"
    [ -f /usr/include/openssl/ssl.h ] || die "OpenSSL headers missing (apt-get install libssl-dev)"
    # shellcheck disable=SC2086
    gcc $cflags -I"$root/iocp/include" -I"$root/client" "$root/bench/loadgen.c" "$root/client/histogram.c" \
        -o "$LOADGEN" -lpthread -lm -lssl -lcrypto
    # shellcheck disable=SC2086
    gcc $cflags "$root/bench/native_echo.c" -o "$NATIVE" -lpthread -lssl -lcrypto
}

build_asio() {
    if [ ! -f /usr/include/asio.hpp ]; then
        log "bench: installing libasio-dev (standalone asio headers)"
        if [ "$(id -u)" = 0 ]; then
            apt-get install -y libasio-dev >/dev/null 2>&1 ||
                { apt-get update >/dev/null 2>&1 && apt-get install -y libasio-dev >/dev/null; }
        else
            sudo apt-get install -y libasio-dev >/dev/null
        fi
    fi
    [ -f /usr/include/asio.hpp ] || die "standalone asio headers missing (apt-get install libasio-dev)"
    # Only asio itself on the include path: all of /usr/include would mix glibc headers in.
    mkdir -p "$out/asio-include"
    ln -sfn /usr/include/asio.hpp "$out/asio-include/asio.hpp"
    ln -sfn /usr/include/asio "$out/asio-include/asio"
    local name src exe
    for name in asio_echo asio_udp_echo; do
        src=$root/bench/asio-echo/$name.cpp
        exe=$out/$name.exe
        if [ ! -f "$exe" ] || [ "$src" -nt "$exe" ] || [ /usr/include/asio/version.hpp -nt "$exe" ]; then
            log "bench: building $name.exe (MinGW g++ -O2, standalone asio)"
            x86_64-w64-mingw32-g++-posix -O2 -std=c++17 -Wall -Wextra -DASIO_STANDALONE \
                -D_WIN32_WINNT=0x0601 -isystem "$out/asio-include" "$src" -o "$exe" \
                -static -lws2_32 -lmswsock
        fi
    done
}

build_minimal() {
    local src=$root/bench/minimal-iocp/minimal_echo.c
    if [ ! -f "$MINIMAL_EXE" ] || [ "$src" -nt "$MINIMAL_EXE" ]; then
        log "bench: building minimal_echo.exe (MinGW gcc -O2)"
        x86_64-w64-mingw32-gcc -O2 -std=c11 -Wall -Wextra -Wpedantic -Wshadow "$src" \
            -o "$MINIMAL_EXE" -lws2_32 -lmswsock
    fi
}

OURS_NOTE=
build_ours() {
    if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
        log "bench: building ours (cmake --preset mingw-wine && cmake --build --preset mingw-wine)"
        if ! (cd "$root" && cmake --preset mingw-wine >"$logs/build-ours.log" 2>&1 &&
            cmake --build --preset mingw-wine >>"$logs/build-ours.log" 2>&1); then
            if [ -f "$OURS_EXE" ]; then
                OURS_NOTE="build failed (see $logs/build-ours.log): measured the existing, possibly stale exe"
            else
                OURS_NOTE="build failed (see $logs/build-ours.log)"
            fi
            log "bench: WARNING: ours: $OURS_NOTE"
        fi
    fi
    if [ -n "${BENCH_OURS_EXE:-}" ]; then
        OURS_NOTE="${OURS_NOTE:+$OURS_NOTE; }ours is $BENCH_OURS_EXE"
    fi
    if [ ! -f "$OURS_EXE" ]; then
        OURS_NOTE=${OURS_NOTE:-"not built"}
        log "bench: SKIPPING ours: $OURS_EXE does not exist ($OURS_NOTE)"
        return 1
    fi
    return 0
}

prepare_prefix() {
    local project=$root/build/wineprefix${IOCP_WINE_TAG:+-$IOCP_WINE_TAG}
    if [ "$BENCH_WINE" = 10 ] && ! wine --version >/dev/null 2>&1; then
        die "Wine 10 is not ready ($(wine --version 2>&1 | head -1)); BENCH_WINE=8 for the system's"
    fi
    if [ ! -f "$PREFIX/system.reg" ] && [ -f "$project/system.reg" ] && [ "$PREFIX" != "$project" ]; then
        log "bench: copying the project's Wine prefix $project to $PREFIX"
        mkdir -p "$(dirname "$PREFIX")"
        cp -a "$project" "$PREFIX"
    fi
    # Boots the prefix if needed (wine-run.sh does it once) and warms Wine up.
    "$root/cmake/wine-run.sh" cmd /c exit 0 >/dev/null 2>&1 || true
}

# ---- servers -----------------------------------------------------------------------------
SRV_PORT=
SRV_HOST=
SRV_LOG=
# start_server KIND TAG [tls|udp|proxy]: starts it in the background, waits for "listening
# on ADDR:PORT". udp: the UDP echo server of that kind (ours --udp-only prints "listening on
# ADDR:PORT (udp)"). proxy: ours trusting the loopback load generator as its balancer.
start_server() {
    local kind=$1 tag=$2 tls= udp= tls_args=() udp_args=() proxy_args=()
    case ${3:-} in
    tls) tls=tls ;;
    udp) udp=udp ;;
    proxy)
        [ "$kind" = ours ] || die "$kind has no PROXY protocol"
        proxy_args=(--proxy-protocol 127.0.0.1/32)
        ;;
    esac
    SRV_LOG=$logs/$tag.$kind.log
    if [ -n "$udp" ]; then
        case $kind in
        ours) udp_args=(--udp-only) ;;
        native) udp_args=(--udp) ;;
        asio) ;;
        *) die "$kind has no UDP" ;;
        esac
    fi
    if [ -n "$tls" ]; then
        case $kind in
        # A Windows path (Z: is the Unix root in every prefix; the Wine 10 tree mounts this
        # worktree at the same path).
        ours) tls_args=(--tls-pfx "Z:${TLS_DIR//\//\\}\\server.pfx" --tls-password iocp-test) ;;
        native) tls_args=(--tls-cert "$TLS_DIR/server-cert.pem" --tls-key "$TLS_DIR/server-key.pem") ;;
        *) die "$kind has no TLS" ;;
        esac
    fi
    case $kind in
    ours)
        # --max-connections: the default (1024) would refuse most of the scale workload;
        # --bind: the same loopback listener as asio's (ours defaults to dual-stack [::]);
        # every client is 127.0.0.1, trusted: no per-IP limit, the engine's 4 MiB send queue
        # the results were measured with (the service's default is 1 MiB), and a memory
        # budget that covers its worst case (connections x (4 MiB + 2 buffers), rounded up).
        # shellcheck disable=SC2086
        "$root/cmake/wine-run.sh" "$OURS_EXE" run --port 0 --workers "$WORKERS" \
            --buffer-size "$BUFFER_SIZE" --max-connections "$OURS_MAX_CONNECTIONS" \
            --max-connections-per-ip 0 --send-queue-cap 4194304 \
            --memory-budget $((OURS_MAX_CONNECTIONS * (5 + 2 * BUFFER_SIZE / 1048576))) \
            --bind 127.0.0.1 --name iocp-bench "${tls_args[@]}" "${udp_args[@]}" \
            "${proxy_args[@]}" ${BENCH_OURS_ARGS:-} >"$SRV_LOG" 2>&1 &
        ;;
    asio)
        if [ -n "$udp" ]; then
            # 64 KiB buffers (any datagram whole), as ours' receives.
            "$root/cmake/wine-run.sh" "$ASIO_UDP_EXE" --port 0 --threads "$WORKERS" \
                --receives "$ASIO_UDP_RECEIVES" >"$SRV_LOG" 2>&1 &
        else
            "$root/cmake/wine-run.sh" "$ASIO_EXE" --port 0 --threads "$WORKERS" \
                --buffer-size "$BUFFER_SIZE" >"$SRV_LOG" 2>&1 &
        fi
        ;;
    minimal)
        "$root/cmake/wine-run.sh" "$MINIMAL_EXE" --port 0 --threads "$WORKERS" \
            --buffer-size "$BUFFER_SIZE" >"$SRV_LOG" 2>&1 &
        ;;
    native)
        "$NATIVE" --port 0 --threads "$WORKERS" --buffer-size "$BUFFER_SIZE" "${tls_args[@]}" \
            "${udp_args[@]}" >"$SRV_LOG" 2>&1 &
        ;;
    esac
    SRV_PID=$!
    local line="" deadline=$(($(now_ms) + 60000))
    while [ "$(now_ms)" -lt $deadline ]; do
        line=$(listening_line "$SRV_LOG")
        [ -n "$line" ] && break
        proc_alive "$SRV_PID" || break
        sleep 0.05
    done
    if [ -z "$line" ]; then
        log "bench: $kind did not start (log $SRV_LOG):"
        sed 's/^/    /' "$SRV_LOG" | head -20 >&2
        stop_server
        return 1
    fi
    SRV_PORT=${line##*:}
    local addr=${line#listening on }
    addr=${addr%:*}
    case $addr in
    0.0.0.0 | "[::]" | "*" | "") SRV_HOST=127.0.0.1 ;;
    "[::1]") SRV_HOST=::1 ;;
    \[*\]) SRV_HOST=${addr#[} && SRV_HOST=${SRV_HOST%]} ;;
    *) SRV_HOST=$addr ;;
    esac
    case $SRV_HOST in
    127.* | ::1 | localhost) ;;
    *) SRV_HOST=127.0.0.1 ;; # loopback only, whatever the server says it bound
    esac
    return 0
}

# stop_server: Ctrl+C (SIGINT: Wine turns it into CTRL_C_EVENT), then waits for the process to
# be gone. Sets STOP_MS (or "killed" when it took over 30 s: then SIGKILL) and STOP_RC.
STOP_TIMEOUT_MS=30000
STOP_MS=
STOP_RC=
stop_server() {
    STOP_MS=
    STOP_RC=
    [ -n "$SRV_PID" ] || return 0
    local t0 t1
    t0=$(now_ms)
    kill -INT "$SRV_PID" 2>/dev/null || true
    while proc_alive "$SRV_PID"; do
        if [ $(($(now_ms) - t0)) -gt $STOP_TIMEOUT_MS ]; then
            kill -KILL "$SRV_PID" 2>/dev/null || true
            break
        fi
        sleep 0.01
    done
    t1=$(now_ms)
    STOP_RC=0
    wait "$SRV_PID" 2>/dev/null || STOP_RC=$?
    STOP_MS=$((t1 - t0))
    [ "$STOP_MS" -le $STOP_TIMEOUT_MS ] || STOP_MS=killed
    SRV_PID=
}

# ---- workloads ---------------------------------------------------------------------------
# loadgen_args WORKLOAD: X-tls is X with --tls (the chain verified against the test CA).
loadgen_args() {
    case $1 in
    *-tls) echo "$(loadgen_args "${1%-tls}") --tls --tls-ca $TLS_DIR/ca.pem" ;;
    *-proxy) echo "$(loadgen_args "${1%-proxy}") --proxy v2" ;;
    pingpong) echo "--connections 1 --depth 1 --size 64 --duration $SECONDS_PER_RUN" ;;
    pipelined) echo "--connections 100 --depth 4 --size 64 --duration $SECONDS_PER_RUN" ;;
    bulk) echo "--connections 100 --depth 4 --size 4096 --duration $SECONDS_PER_RUN" ;;
    many) echo "--connections 1000 --depth 1 --size 64 --duration $SECONDS_PER_RUN" ;;
    churn) echo "--churn --connections $CHURN_SLOTS --size 64 --duration $SECONDS_PER_RUN" ;;
    udp) echo "--udp --connections $UDP_SOCKETS --depth $UDP_DEPTH --size $UDP_SIZE --duration $SECONDS_PER_RUN" ;;
    scale)
        echo "--idle-connections $SCALE_CONNECTIONS --hold 300"
        [ "$SCALE_IDLE_FIRST" = 1 ] && echo "--idle-first $((SCALE_SETTLE + 3))"
        ;;
    esac
}

# run_one WORKLOAD IMPL ROUND: one server start, one loadgen run, one stop; appends a JSON line.
run_one() {
    local wl=$1 impl=$2 round=$3 tag="$1.r$3" load
    local tls=
    case $wl in *-tls) tls=tls ;; udp) tls=udp ;; *-proxy) tls=proxy ;; esac
    if [ "$wl" = scale ] && [ "$impl" != native ]; then
        # A fresh wineserver for each scale run: it keeps the memory it has grown to, so a
        # warm one would hide its share of the per-connection cost. -w only waits for the
        # prefix's wineserver to exit on its own (a few seconds after its last process).
        timeout 60 env WINEPREFIX="$PREFIX" wineserver -w 2>/dev/null || true
    fi
    # The machine is shared: the load average before the run goes into the record.
    load=$(cut -d' ' -f1 /proc/loadavg)
    if ! start_server "$impl" "$tag" $tls; then
        printf '{"workload":"%s","impl":"%s","round":%s,"failed":"server did not start"}\n' \
            "$wl" "$impl" "$round" >>"$RUNS"
        return 1
    fi
    local lg_json=$logs/$tag.$impl.loadgen.json lg_err=$logs/$tag.$impl.loadgen.err
    local lg_rc=0 extra="" gone_early=false
    # shellcheck disable=SC2046
    if [ "$wl" != scale ]; then
        timeout -s TERM $((SECONDS_PER_RUN + 180)) "$LOADGEN" --host "$SRV_HOST" --port "$SRV_PORT" \
            $(loadgen_args "$wl") --json >"$lg_json" 2>"$lg_err" || lg_rc=$?
        server_gone_early && gone_early=true
    else
        # Baseline memory of the idle server, then 10,000 connections held by loadgen.
        sleep 1
        local ws rss0 ws0 rss1 ws1
        ws=$(IOCP_WINEPREFIX=$PREFIX wineserver_pid || true)
        rss0=$(rss_kb "$SRV_PID")
        ws0=0
        [ "$impl" != native ] && [ -n "$ws" ] && ws0=$(rss_kb "$ws")
        "$LOADGEN" --host "$SRV_HOST" --port "$SRV_PORT" $(loadgen_args "$wl") --json \
            >"$lg_json" 2>"$lg_err" &
        LG_PID=$!
        local deadline=$(($(now_ms) + 600000)) rssi=0 wsi=0
        if [ "$SCALE_IDLE_FIRST" = 1 ]; then
            # Connections that never spoke: sampled while they are silent.
            while ! grep -q 'loadgen: idle' "$lg_err" 2>/dev/null; do
                if ! kill -0 "$LG_PID" 2>/dev/null || [ "$(now_ms)" -gt $deadline ]; then
                    break
                fi
                sleep 0.1
            done
            sleep "$SCALE_SETTLE"
            ws=$(wineserver_pid || true)
            rssi=$(rss_kb "$SRV_PID")
            [ "$impl" != native ] && [ -n "$ws" ] && wsi=$(rss_kb "$ws")
        fi
        while ! grep -q 'loadgen: ready' "$lg_err" 2>/dev/null; do
            if ! kill -0 "$LG_PID" 2>/dev/null || [ "$(now_ms)" -gt $deadline ]; then
                break
            fi
            sleep 0.1
        done
        # The held state: ours gives a quiet connection's receive buffer back after
        # idle_receive_ms (1 s) plus a sweep (0.5 s at most).
        sleep "$SCALE_SETTLE"
        ws=$(IOCP_WINEPREFIX=$PREFIX wineserver_pid || true)
        rss1=$(rss_kb "$SRV_PID")
        ws1=0
        [ "$impl" != native ] && [ -n "$ws" ] && ws1=$(rss_kb "$ws")
        server_gone_early && gone_early=true
        stop_server
        # loadgen ends when the server has closed every connection (or at once if it died).
        for _ in $(seq 100); do
            kill -0 "$LG_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -TERM "$LG_PID" 2>/dev/null || true
        wait "$LG_PID" || lg_rc=$?
        LG_PID=
        extra=$(printf ',"rss_server_kb_before":%s,"rss_server_kb":%s,"rss_wineserver_kb_before":%s,"rss_wineserver_kb":%s,"rss_server_kb_idle":%s,"rss_wineserver_kb_idle":%s,"stop_ms":"%s","server_exit":%s' \
            "${rss0:-0}" "${rss1:-0}" "${ws0:-0}" "${ws1:-0}" "${rssi:-0}" "${wsi:-0}" "$STOP_MS" "$STOP_RC")
    fi
    if [ "$wl" != scale ]; then
        stop_server
        extra=$(printf ',"stop_ms":"%s","server_exit":%s' "$STOP_MS" "$STOP_RC")
    fi
    local lg
    lg=$(tail -n1 "$lg_json" 2>/dev/null || true)
    case $lg in
    \{*\}) ;;
    *) lg='{}' ;;
    esac
    printf '{"workload":"%s","impl":"%s","round":%s,"loadavg_before":%s,"server_gone_early":%s,"loadgen_exit":%s%s,"loadgen":%s}\n' \
        "$wl" "$impl" "$round" "$load" "$gone_early" "$lg_rc" "$extra" "$lg" >>"$RUNS"
    local summary
    summary=$(python3 -c 'import json,sys
r=json.loads(sys.argv[1]); lg=r.get("loadgen") or {}
if r["workload"]=="scale":
    print("echo %.0f ms, server %s kB (+wineserver %s kB), stop %s ms" % (lg.get("echo_ms",-1), r.get("rss_server_kb"), r.get("rss_wineserver_kb"), r.get("stop_ms")))
    if r.get("rss_server_kb_idle"):
        n = max(lg.get("established", 1), 1)
        print("silent first: server %s kB (+wineserver %s kB): %.0f B per connection over the idle server" % (r["rss_server_kb_idle"], r["rss_wineserver_kb_idle"], ((r["rss_server_kb_idle"] - r["rss_server_kb_before"]) + (r["rss_wineserver_kb_idle"] - r["rss_wineserver_kb_before"])) * 1024.0 / n))
else:
    tls=lg.get("tls") or {}
    udp=lg.get("udp") or {}
    print("%.0f %s, p99 %s us, errors %s%s%s%s" % (lg.get("rate",0), "conn/s" if r["workload"].startswith("churn") else "datagrams/s" if udp else "msg/s", (lg.get("lat_us") or {}).get("p99"), lg.get("errors"), ", %s %s, handshake p50 %s us" % (tls.get("protocol"), tls.get("cipher"), (tls.get("handshake_us") or {}).get("p50")) if tls else "", ", lost %s of %s, late %s" % (udp.get("lost"), udp.get("sent"), udp.get("late")) if udp else "", ", PROXY %s headers" % lg["proxy"] if lg.get("proxy") else ""))' \
        "$(tail -n1 "$RUNS")" 2>/dev/null || echo "?")
    log "bench:   $wl round $round $impl: $summary (loadgen exit $lg_rc)"
    if [ "$lg_rc" != 0 ]; then
        sed 's/^/    /' "$lg_err" | grep -v '^    loadgen: ready' | head -8 >&2 || true
    fi
    if [ "$gone_early" = true ]; then
        log "bench:   $wl round $round $impl: the server stopped or exited before the bench stopped it (log $SRV_LOG)"
        return 3
    fi
    return 0
}

# The server stopped before we asked (it exited, or its log says it is stopping): a crash, or
# a stop from outside (on a shared machine another session's broad kill can reach it).
server_gone_early() {
    ! proc_alive "$SRV_PID" || grep -qiE 'stopping|asio-(udp-)?echo: stopped' "$SRV_LOG" 2>/dev/null
}

# ---- main --------------------------------------------------------------------------------
build_native
build_asio
build_minimal
have_ours=1
have_ours_tls=1
case " $IMPLS " in *" ours "*) build_ours || have_ours=0 ;; *) have_ours=0 ;; esac
prepare_prefix

: >"$RUNS"
log "bench: rounds $ROUNDS, $SECONDS_PER_RUN s per run, $WORKERS server worker threads, $(wine --version 2>/dev/null) (BENCH_WINE=$BENCH_WINE), prefix $PREFIX"
BUSY_CPUS=${BENCH_BUSY_CPUS:-0}
for ((i = 0; i < BUSY_CPUS; i++)); do
    nice -n 19 sh -c 'while :; do :; done' &
    BUSY_PIDS+=($!)
done
[ "$BUSY_CPUS" -gt 0 ] && log "bench: $BUSY_CPUS busy loop(s) at nice 19 keep the CPUs awake"

# churn-proxy beside churn: its runs go into churn's rounds (an entry WORKLOAD:IMPL below),
# next to ours' plain run, so the pair shares each round's machine load.
proxy_in_churn=0
case " $WORKLOADS " in *" churn "*) case " $WORKLOADS " in *" churn-proxy "*) proxy_in_churn=1 ;; esac ;; esac
for outer in $WORKLOADS; do
    [ "$outer" = churn-proxy ] && [ $proxy_in_churn = 1 ] && continue
    for round in $(seq "$ROUNDS"); do
        order="ours asio"
        [ $((round % 2)) = 0 ] && order="asio ours"
        if [ "$outer" = churn ] && [ $proxy_in_churn = 1 ]; then
            order="ours churn-proxy:ours asio"
            [ $((round % 2)) = 0 ] && order="asio churn-proxy:ours ours"
        fi
        for entry in $order minimal native; do
            wl=$outer
            impl=$entry
            case $entry in *:*) wl=${entry%%:*} impl=${entry#*:} ;; esac
            case " $IMPLS " in *" $impl "*) ;; *) continue ;; esac
            # The PROXY protocol is ours only: the peers do not speak it.
            case $wl/$impl in *-proxy/ours) ;; *-proxy/*) continue ;; esac
            # The floor has no graceful stop, and its memory is not what scale compares.
            [ "$impl" = minimal ] && [ "$wl" = scale ] && continue
            # The minimal loop is TCP only.
            [ "$impl" = minimal ] && [ "$wl" = udp ] && continue
            # asio and the minimal loop have no TLS.
            case $wl/$impl in *-tls/asio | *-tls/minimal) continue ;; esac
            [ "$impl" = ours ] && [ "$have_ours" = 0 ] && continue
            case $wl/$impl in *-tls/ours) [ "$have_ours_tls" = 1 ] || continue ;; esac
            rc=0
            run_one "$wl" "$impl" "$round" || rc=$?
            tries=0
            while [ $rc = 3 ] && [ $tries -lt "$RETRIES" ]; do
                tries=$((tries + 1))
                log "bench:   repeating $wl round $round $impl (the record above stays, marked)"
                rc=0
                run_one "$wl" "$impl" "$round" || rc=$?
            done
            if [ $rc = 1 ] && [ "$impl" = ours ] && [ "$wl" != "${wl%-tls}" ]; then
                # Without TLS it may still start: only the TLS workloads are given up.
                have_ours_tls=0
                OURS_NOTE="${OURS_NOTE:+$OURS_NOTE; }did not start with TLS: $(head -c 300 "$SRV_LOG" | tr '\n' ' ')"
                log "bench: SKIPPING ours' TLS workloads from here on ($OURS_NOTE)"
            elif [ $rc = 1 ] && [ "$impl" = ours ]; then
                # It never printed its listening line: no point in trying it again.
                have_ours=0
                OURS_NOTE="did not start: $(head -c 300 "$SRV_LOG" | tr '\n' ' ')"
                log "bench: SKIPPING ours from here on ($OURS_NOTE)"
            fi
        done
    done
done

python3 "$root/bench/report.py" --runs "$RUNS" --out "$results_file" \
    --rounds "$ROUNDS" --seconds "$SECONDS_PER_RUN" --workers "$WORKERS" \
    --scale-connections "$SCALE_CONNECTIONS" --churn-slots "$CHURN_SLOTS" \
    --udp-sockets "$UDP_SOCKETS" --udp-depth "$UDP_DEPTH" --udp-size "$UDP_SIZE" \
    --asio-udp-receives "$ASIO_UDP_RECEIVES" \
    --ours-note "${OURS_NOTE:-}" --have-ours "$have_ours" --prefix "$PREFIX" \
    --busy-cpus "$BUSY_CPUS" --bench-wine "$BENCH_WINE"
