#!/usr/bin/env bash
# Runs a Windows program under Wine in the project's own prefix (never ~/.wine).
# CTest uses this as CMAKE_CROSSCOMPILING_EMULATOR; the exit code passes through.
# IOCP_WINEPREFIX overrides the prefix; the default lives in the build tree's parent.
# With cmake/wine10-bin first on PATH, the prefix gets a "-wine10" suffix (cmake/wine-tag.sh).
# IOCP_WINESERVER_LINGER: how long (seconds) a wineserver this script starts outlives the
# prefix's last program (default 30).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$here/cmake/wine-tag.sh"
export WINEPREFIX=${IOCP_WINEPREFIX:-$here/build/wineprefix}${IOCP_WINE_TAG:+-$IOCP_WINE_TAG}
export WINEDEBUG=-all
export WINEDLLOVERRIDES=${WINEDLLOVERRIDES:-mscoree,mshtml=}
linger=${IOCP_WINESERVER_LINGER:-30}
mkdir -p "$(dirname "$WINEPREFIX")"
# Why the wineserver is started here and not by the program: a wineserver inherits the
# standard error of the Wine program that starts it, and the programs Wine boots with it
# (services.exe, winedevice.exe, plugplay.exe, rpcss.exe, explorer.exe...) inherit that
# program's output too; all of them live until the prefix is idle. Started by a test, they
# hold CTest's output pipe, and CTest sees the test end only once every other program of the
# prefix has ended: test_framing.raw_every_split (0 ms of work) became a CTest Timeout at
# 120 s, its verdict printed, while another program stayed 130 s in the prefix (docs/wine.md:
# the output it lends). So this script starts the server and boots the prefix with no output
# of anyone's. The server stays $linger s after the last program, so consecutive tests share
# one booted prefix instead of booting it (2 to 3 s) each time. A server that is already
# running (started here, or by a script that manages its prefix itself: the services fixture,
# out_of_sockets.sh) is left as it is.
(
    flock 9
    # First use: create the prefix once, even when several tests start at the same moment.
    if [ ! -f "$WINEPREFIX/system.reg" ]; then
        wineboot -i >/dev/null 2>&1
        wineserver -w
    fi
    # 0: this started it (it forks once it listens); 2: one is running.
    if wineserver -p"$linger" </dev/null >/dev/null 2>&1 9>&-; then
        wine cmd /c exit 0 </dev/null >/dev/null 2>&1 9>&-
    fi
) 9>"$WINEPREFIX.lock"
exec wine "$@"
