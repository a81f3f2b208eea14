# bench/lib.sh: helpers shared by bench/run.sh and bench/profile.sh (sourced, not run).
# Both need IOCP_WINEPREFIX set to the prefix the servers run in.

# The wineserver of that prefix: its working directory is server-<dev>-<inode> of the prefix.
wineserver_pid() {
    local want p dev ino
    read -r dev ino < <(stat -L -c '%d %i' "$IOCP_WINEPREFIX")
    want=$(printf 'server-%x-%x' "$dev" "$ino")
    for p in $(pgrep -x wineserver64 2>/dev/null; pgrep -x wineserver 2>/dev/null); do
        case $(readlink "/proc/$p/cwd" 2>/dev/null) in
        */"$want") echo "$p" && return 0 ;;
        esac
    done
    return 1
}

# listening_line FILE...: "listening on ADDR:PORT" from a server's own line. "(^|: )" skips
# the "... listening on ADDR" inside ours' warning about a killed previous holder of the
# instance name, which names that holder's old port.
listening_line() {
    local line
    line=$(grep -h -m1 -oE '(^|: )listening on [^ ]*:[0-9]+' "$@" 2>/dev/null | head -n1 || true)
    echo "${line#: }"
}
