#!/usr/bin/env bash
# The second Win32 implementation: Wine 10.0 from Debian 13 (trixie), in a directory tree of
# its own beside the system's Wine 8 (Debian 12 packages only 8.0). See docs/wine.md.
#
#   wine10.sh up      builds the tree if it is missing (mmdebstrap, ~30 s, ~1.1 GB, kept
#                     between runs at $IOCP_WINE10_ROOT), mounts /proc, /dev and this project
#                     inside it (at the same path, so every path means the same in both)
#   wine10.sh down    ends the tree's Wine processes and unmounts what `up` mounted
#
# cmake/wine10-bin/ holds `wine`, `wineserver` and `wineboot` that run the tree's programs
# (chroot); put it first on PATH and every script here runs Wine 10 instead of Wine 8.
# Needs root (chroot, mount), as apt-get does: scripts/test.sh runs as root in CI.
set -euo pipefail
root=${IOCP_WINE10_ROOT:-/var/lib/iocp-wine10}
project=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

# The Debian mirror apt already uses (its deb822 .sources files or one-line .list files; not
# the security archive): the tree is fetched from where this machine is allowed to fetch.
# None configured: stop and say what to configure, rather than reach out to an address
# written here.
mirror_uri() {
    local files=() uri
    for f in /etc/apt/sources.list.d/*.sources; do [ -f "$f" ] && files+=("$f"); done
    uri=$( ((${#files[@]})) && sed -n 's/^URIs:[[:space:]]*//p' "${files[@]}" |
        tr ' \t' '\n\n' | grep -E '^(https?|file)://' | grep -v security | head -n 1 || true)
    if [ -z "$uri" ]; then
        files=()
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [ -f "$f" ] && files+=("$f")
        done
        uri=$( ((${#files[@]})) && sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\{0,1\}\([^[:space:]]*\).*/\2/p' \
            "${files[@]}" | grep -v security | head -n 1 || true)
    fi
    if [ -z "$uri" ]; then
        echo "wine10: apt's configuration names no Debian mirror (no 'URIs:' in" \
            "/etc/apt/sources.list.d/*.sources, no 'deb' line in /etc/apt/sources.list or" \
            "/etc/apt/sources.list.d/*.list), and the Wine 10 tree is fetched from the mirror apt" \
            "uses: configure one (e.g. /etc/apt/sources.list.d/debian.sources with" \
            "'Types: deb', 'URIs: <your Debian mirror>', 'Suites: bookworm'," \
            "'Components: main'), or build the tree elsewhere and set IOCP_WINE10_ROOT" >&2
        return 1
    fi
    echo "$uri"
}

mount_once() { # mount_once TARGET MOUNT-ARGS...
    local target=$1
    shift
    mountpoint -q "$target" || "${sudo_cmd[@]}" mount "$@" "$target"
}

up() {
    if [ ! -x "$root/usr/bin/wine" ]; then
        local mirror
        mirror=$(mirror_uri) || exit 1
        command -v mmdebstrap >/dev/null || {
            "${sudo_cmd[@]}" apt-get update -qq
            DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq \
                --no-install-recommends mmdebstrap >/dev/null
        }
        echo "wine10: building the Wine 10 tree at $root (Debian 13 from $mirror, about 30 s)"
        "${sudo_cmd[@]}" rm -rf "$root.partial"
        "${sudo_cmd[@]}" mmdebstrap --quiet --variant=apt --include=wine64,wine,ca-certificates \
            trixie "$root.partial" "deb $mirror trixie main"
        "${sudo_cmd[@]}" mv "$root.partial" "$root"
    fi
    # "localhost" must resolve inside as outside (the tree comes without /etc/hosts).
    "${sudo_cmd[@]}" cp /etc/hosts "$root/etc/hosts"
    mount_once "$root/proc" -t proc proc
    mount_once "$root/dev" --bind /dev
    mount_once "$root/dev/pts" --bind /dev/pts
    "${sudo_cmd[@]}" mkdir -p "$root$project"
    mount_once "$root$project" --bind "$project"
}

down() {
    [ -d "$root" ] || return 0
    # Every prefix's wineserver in the tree (they keep /dev busy): ask, then insist.
    local pids
    pids=$(for p in $(pgrep -x wineserver64; pgrep -x wineserver); do
        [ "$(readlink "/proc/$p/root")" = "$root" ] && echo "$p"
    done || true)
    if [ -n "$pids" ]; then
        kill $pids 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 $pids 2>/dev/null || break
            sleep 0.1
        done
        kill -9 $pids 2>/dev/null || true
    fi
    for target in "$root$project" "$root/dev/pts" "$root/dev" "$root/proc"; do
        mountpoint -q "$target" && "${sudo_cmd[@]}" umount -l "$target"
    done
    return 0
}

case ${1:-} in
up) up ;;
down) down ;;
*)
    echo "usage: wine10.sh up|down" >&2
    exit 2
    ;;
esac
