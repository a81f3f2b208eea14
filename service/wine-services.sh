#!/usr/bin/env bash
# The CTest fixture of the service tests under Wine (tests/CMakeLists.txt).
#
#   wine-services.sh up PREFIX     creates PREFIX if needed, starts a persistent wineserver
#   wine-services.sh down PREFIX   ends that wineserver and everything running in PREFIX
#
# Why a prefix of their own: Wine ends every service a second or so after the last ordinary
# process of the prefix exits, unless the wineserver is persistent (`wineserver -p`). A
# persistent server cannot be made from one that is already running (`wineserver -p` then
# exits with 2), and ending it afterwards (`wineserver -k`) kills every process of the prefix:
# in the shared prefix either would race with the other tests running in parallel. In a prefix
# only these cases use, `up` and `down` are safe. cmake/wine-run.sh runs the cases in it
# (IOCP_WINEPREFIX, set per test; both add the same suffix for Wine 10: cmake/wine-tag.sh).
set -u
action=${1:?usage: wine-services.sh up|down PREFIX}
source "$(dirname "${BASH_SOURCE[0]}")/../cmake/wine-tag.sh"
export WINEPREFIX=${2:?usage: wine-services.sh up|down PREFIX}${IOCP_WINE_TAG:+-$IOCP_WINE_TAG}
export WINEDEBUG=-all
export WINEDLLOVERRIDES=${WINEDLLOVERRIDES:-mscoree,mshtml=}

case $action in
up)
    mkdir -p "$(dirname "$WINEPREFIX")"
    (
        flock 9
        # A server left over from an interrupted run: end it, start clean.
        # (Every Wine command here gets 9>&-: a server or service that inherited the lock's
        # descriptor would hold the lock for as long as it lives.)
        wineserver -k >/dev/null 2>&1 9>&-
        wineserver -w >/dev/null 2>&1 9>&-
        if [ ! -f "$WINEPREFIX/system.reg" ]; then
            echo "creating Wine prefix $WINEPREFIX"
            wineboot -i >/dev/null 2>&1 9>&-
            wineserver -w 9>&-
        fi
        # Returns once the server listens; setsid and closed output keep it out of CTest's way.
        setsid wineserver -p </dev/null >/dev/null 2>&1 9>&-
        rc=$?
        if [ $rc -ne 0 ]; then
            echo "wine-services: cannot start a persistent wineserver in $WINEPREFIX (rc $rc)"
            exit 1
        fi
        # Boot the prefix's services (services.exe and the SCM) before the first test.
        wine cmd /c exit 0 </dev/null >/dev/null 2>&1 9>&-
        echo "persistent wineserver running for $WINEPREFIX"
    ) 9>"$WINEPREFIX.lock"
    ;;
down)
    wineserver -k >/dev/null 2>&1
    wineserver -w >/dev/null 2>&1
    echo "wineserver for $WINEPREFIX stopped"
    ;;
*)
    echo "usage: wine-services.sh up|down PREFIX" >&2
    exit 2
    ;;
esac
