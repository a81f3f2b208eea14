# peer_lib.sh: what the native-peer scripts (tls_peers.sh, udp_peers.sh) share. Source it
# after setting peer_name (the name in failure lines); it sets root, run and WINEDEBUG.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
run=$root/cmake/wine-run.sh
export WINEDEBUG=-all
fail() {
    echo "FAIL $peer_name: $*"
    exit 1
}
# Background processes to end when the script ends, whatever happens.
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
# Waits (30 s at most) for a line "PREFIX ADDR:PORT" in a log; prints the port, or nothing.
wait_port() {
    local log=$1 prefix=$2 port=
    for _ in $(seq 1 300); do
        port=$(sed -n "s/^$prefix .*:\([0-9][0-9]*\).*\$/\1/p" "$log" | tr -d '\r' | head -n 1)
        [ -n "$port" ] && break
        sleep 0.1
    done
    echo "$port"
}
