#!/usr/bin/env bash
# Hostile UDP peers against two `iocp-service run --udp-only` instances with their default
# options (raw sockets: as root, loopback only; docs/reliability.md "Hostile peers"):
#   a spoofed loop between A and B (one datagram from 127.0.0.1:B to A) dies within a few
#     seconds: both sides' counters stop, each side's count is printed;
#   a spoofed self-loop (from 127.0.0.1:A to A) gets no answer, counted as from our own port;
#   a datagram from port 19 gets no answer, counted;
#   datagrams from a multicast and a broadcast source get no answer, counted;
#   a legitimate client is still answered exactly.
# Usage: udp_hostile.sh SERVICE_EXE WORKDIR   (Linux host, root; the exe under Wine)
# Prints "1 passed, 0 failed" at the end when everything held.
set -euo pipefail
svc=$1
mkdir -p "$2"
work=$(cd "$2" && pwd)
peer_name=udp_hostile
source "$(dirname "${BASH_SOURCE[0]}")/peer_lib.sh"
hostile="python3 $root/tests/scripts/udp_hostile.py"
[ "$(id -u)" = 0 ] || fail "raw sockets need root"

# "in out refused_loop+rate_limited refused_self refused_port refused_address" from `status`.
counters() {
    "$run" "$svc" status --name "$1" | tr -d '\r' | awk '
        /^  udp: on/ { match($0, /datagrams: [0-9]+ in, [0-9]+ out/);
                       split(substr($0, RSTART, RLENGTH), d, /[ ,]+/); din = d[2]; dout = d[4] }
        /^  limits:/ { match($0, /[0-9]+ from ports below 1024/); split(substr($0, RSTART), p, " "); port = p[1];
                       match($0, /[0-9]+ from our own port/); split(substr($0, RSTART), s, " "); self = s[1];
                       match($0, /[0-9]+ from no-reply/); split(substr($0, RSTART), n, " "); addr = n[1];
                       match($0, /[0-9]+ echo loops/); split(substr($0, RSTART), l, " ");
                       match($0, /[0-9]+ over a source/); split(substr($0, RSTART), r, " "); rate = r[1] + l[1] }
        END { print din, dout, rate, self, port, addr }'
}

# start NAME LOG: sets started_port. Not called in $(...): the pid must reach this shell's
# pids, or the cleanup leaves the instance running.
start() {
    "$run" "$svc" run --port 0 --bind 127.0.0.1 --name "$1" --workers 2 --udp-only >"$2" 2>&1 &
    pids+=("$!")
    started_port=$(wait_port "$2" "listening on")
    [ -n "$started_port" ] || { cat "$2"; fail "$1 did not start"; }
}
a=hostileA-$$ b=hostileB-$$
start "$a" "$work/a.log"
pa=$started_port
start "$b" "$work/b.log"
pb=$started_port
echo "A on $pa, B on $pb (defaults: --udp-rate 32000 --udp-burst 4000 per address, --udp-flow-rate 2000 per address and port)"

echo "== a spoofed loop between A and B"
$hostile spoof "$pb" "$pa"
t0=$(date +%s.%N)
prev="" still=0 dead=""
for i in $(seq 1 60); do # 30 s at most; the loop must be dead long before
    sleep 0.5
    now="$(counters "$a") | $(counters "$b")"
    if [ "$now" = "$prev" ]; then
        still=$((still + 1))
        if [ "$still" -ge 2 ]; then dead=$i; break; fi
    else
        still=0
        last_change=$(date +%s.%N)
    fi
    prev=$now
done
[ -n "$dead" ] || fail "the loop still runs after 30 s: A and B: $now"
read -r ain aout arate _ _ < <(counters "$a")
read -r bin bout brate _ _ < <(counters "$b")
secs=$(awk -v a="$last_change" -v b="$t0" 'BEGIN { printf "%.1f", a - b }')
echo "loop dead within ${secs} s: A received $ain, answered $aout, refused $arate (loop or rate); B received $bin, answered $bout, refused $brate"
[ $((arate + brate)) -ge 1 ] || fail "the loop ended, but no side counts a loop or a datagram over its rate"
awk -v s="$secs" 'BEGIN { exit !(s <= 10) }' || fail "the loop took $secs s to die (10 s allowed)"

echo "== a spoofed self-loop"
read -r in0 out0 _ self0 _ < <(counters "$a")
$hostile spoof "$pa" "$pa"
for _ in $(seq 1 50); do
    read -r in1 out1 _ self1 _ < <(counters "$a")
    [ "$self1" -gt "$self0" ] && break
    sleep 0.2
done
[ "$self1" = $((self0 + 1)) ] || fail "the self-loop datagram was not refused (own port: $self0 -> $self1)"
[ "$out1" = "$out0" ] || fail "the self-loop was answered: out $out0 -> $out1"
echo "self-loop: refused as from our own port, nothing answered (in $in0 -> $in1, out $out1)"

echo "== a datagram from port 19"
read -r _ out0 _ _ port0 < <(counters "$a")
$hostile lowport 19 "$pa" || fail "port 19"
read -r _ out1 _ _ port1 < <(counters "$a")
[ "$port1" = $((port0 + 1)) ] || fail "port 19 not counted ($port0 -> $port1)"
[ "$out1" = "$out0" ] || fail "port 19 was answered: out $out0 -> $out1"

echo "== multicast and broadcast sources"
read -r _ out0 _ _ _ addr0 < <(counters "$a")
$hostile spoof 5555 "$pa" 1 224.0.0.1
$hostile spoof 5555 "$pa" 1 255.255.255.255
for _ in $(seq 1 50); do
    read -r _ out1 _ _ _ addr1 < <(counters "$a")
    [ "$addr1" -ge $((addr0 + 2)) ] && break
    sleep 0.2
done
[ "$addr1" = $((addr0 + 2)) ] || fail "multicast/broadcast sources not refused ($addr0 -> $addr1)"
[ "$out1" = "$out0" ] || fail "a multicast or broadcast source was answered: out $out0 -> $out1"
echo "multicast and broadcast sources: refused, nothing answered"

echo "== a legitimate client"
$hostile client "$pa" || fail "client"
$hostile client "$pb" || fail "client of B"
echo "1 passed, 0 failed"
