#!/usr/bin/env bash
# Runs a Windows program under Wine in the project's own prefix (never ~/.wine).
# CTest uses this as CMAKE_CROSSCOMPILING_EMULATOR; the exit code passes through.
# IOCP_WINEPREFIX overrides the prefix; the default lives in the build tree's parent.
# With cmake/wine10-bin first on PATH, the prefix gets a "-wine10" suffix (cmake/wine-tag.sh).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$here/cmake/wine-tag.sh"
export WINEPREFIX=${IOCP_WINEPREFIX:-$here/build/wineprefix}${IOCP_WINE_TAG:+-$IOCP_WINE_TAG}
export WINEDEBUG=-all
export WINEDLLOVERRIDES=${WINEDLLOVERRIDES:-mscoree,mshtml=}
if [ ! -f "$WINEPREFIX/system.reg" ]; then
    mkdir -p "$(dirname "$WINEPREFIX")"
    # First use: create the prefix once, even when several tests start at the same moment.
    (
        flock 9
        if [ ! -f "$WINEPREFIX/system.reg" ]; then
            wineboot -i >/dev/null 2>&1
            wineserver -w
        fi
    ) 9>"$WINEPREFIX.lock"
fi
exec wine "$@"
