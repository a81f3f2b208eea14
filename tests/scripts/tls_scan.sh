#!/usr/bin/env bash
# testssl.sh (Debian's testssl, a scanner nobody here wrote) against `iocp-service run
# --tls-pfx tests/tls/server.pfx` with the default floor, and what it reports asserted:
#   Wine 10: SSL 2, SSL 3, TLS 1 and TLS 1.1 not offered, TLS 1.2 offered; the NULL, anonymous,
#     export, LOW, 3DES and obsolete CBC cipher categories not offered, strong (AEAD) offered;
#     forward secrecy offered; LUCKY13 not vulnerable; secure renegotiation (RFC 5746)
#     supported and a client's renegotiation refused (the log says so). The forward-secrecy
#     list is what Wine's Schannel puts in a ServerHello: it takes the client's first suite, so CBC suites appear
#     there when testssl lists them before an AEAD one (docs/wine.md). testssl reads the
#     ServerHello and hangs up; each of those suites is then offered the same way by openssl
#     s_client, which must get the insufficient_security alert from the check after the
#     handshake and no echo (the log names the suite, `status` counts it below the floor).
#     The report goes to WORKDIR/testssl.txt.
#   Wine 8 (no server-side Schannel): the service's start with the floor refused, naming
#     SEC_E_UNSUPPORTED_FUNCTION, and testssl runnable.
# Usage: tls_scan.sh SERVICE_EXE TLS_DIR WORKDIR   (Linux host; the exe under Wine)
# Installs testssl.sh (scripts/setup.sh) when missing. Prints "1 passed, 0 failed" when all held.
set -euo pipefail
svc=$1 tls=$2
mkdir -p "$3"
work=$(cd "$3" && pwd)
peer_name=tls_scan
source "$(dirname "${BASH_SOURCE[0]}")/peer_lib.sh"
source "$root/scripts/setup.sh"
wine_major=$(wine --version | sed -n 's/^wine-\([0-9]*\).*/\1/p')
version=$(testssl --version 2>&1 || true)
version=$(echo "$version" | sed -n 's/^ *testssl  *\([0-9][0-9.a-z+~-]*\) .*/\1/p' | head -n 1)
[ -n "$version" ] || fail "testssl does not run (no version from testssl --version)"
echo "testssl $version"

log=$work/server.log
"$run" "$svc" run --port 0 --bind 127.0.0.1 --name "tlsscan-$$" --workers 2 \
    --tls-pfx "$tls/server.pfx" --tls-password iocp-test --tls-min-version 1.2 >"$log" 2>&1 &
server=$!
pids+=("$server")
if [ "$wine_major" -lt 10 ]; then
    rc=0
    wait "$server" || rc=$?
    cat "$log"
    [ "$rc" = 2 ] || fail "the server started (exit $rc) on a Wine without server-side TLS"
    grep -q SEC_E_UNSUPPORTED_FUNCTION "$log" || fail "the refusal does not name the cause"
    echo "no server-side TLS under Wine $wine_major: the start is refused, naming it; nothing to scan"
    echo "1 passed, 0 failed"
    exit 0
fi
port=$(wait_port "$log" "listening on")
[ -n "$port" ] || { cat "$log"; fail "the TLS server did not start"; }
rm -f "$work/testssl.json"
# HEADER_MAXSLEEP: testssl's wait for a service banner (an echo server sends none), 5 s else.
start=$(date +%s)
HEADER_MAXSLEEP=1 timeout 280 testssl --protocols --std --fs --lucky13 -R --quiet --color 0 \
    --warnings off --jsonfile "$work/testssl.json" "127.0.0.1:$port" >"$work/testssl.txt" 2>&1 ||
    true
echo "testssl took $(($(date +%s) - start)) s"
sed -n '/Testing protocols/,$p' "$work/testssl.txt"
# Each CBC suite in the forward-secrecy list: offered first (an AEAD one after it, so the
# ClientHello check lets it through), Wine's Schannel picks it, and the check after the
# handshake must refuse it before any byte: an alert and no echo.
: >"$work/fs_cbc_refused.txt"
python3 - "$work/testssl.json" >"$work/fs_cbc.txt" <<'PY'
import json, re, sys
found = {e["id"]: e["finding"] for e in json.load(open(sys.argv[1]))}
fs = found.get("PFS_ciphers", found.get("FS_ciphers", "")).split()
print(" ".join(c for c in fs if not re.search(r"GCM|CHACHA20|CCM", c)))
PY
for suite in $(cat "$work/fs_cbc.txt"); do
    case $suite in
    DHE-*) aead=DHE-RSA-AES128-GCM-SHA256 ;;
    *) aead=ECDHE-RSA-AES128-GCM-SHA256 ;;
    esac
    out=$(echo "scan-check-$suite" | timeout 20 openssl s_client -connect "127.0.0.1:$port" \
        -tls1_2 -cipher "$suite:$aead" -groups x25519:ffdhe2048 -brief 2>&1 || true)
    if echo "$out" | grep -q "scan-check-$suite"; then
        # Echoed: only if Schannel chose the AEAD suite after all.
        echo "$out" | grep -q "Ciphersuite: $aead" || { echo "$out"; fail "$suite: echoed"; }
        echo "$suite: Wine's Schannel chose $aead this time; echoed over it"
        continue
    fi
    if echo "$out" | grep -q "alert insufficient security"; then
        echo "$suite: listed by testssl (in a ServerHello), refused after the handshake, no echo"
        echo "$suite" >>"$work/fs_cbc_refused.txt"
    else
        # OpenSSL 3.0 offers no FFDHE group for TLS 1.2, and Wine's Schannel has no other
        # DH parameters: a DHE handshake fails inside Schannel (testssl offers the groups).
        [[ $suite == DHE-* ]] || { echo "$out"; fail "$suite: no alert"; }
        echo "$suite: the handshake failed in Schannel (no FFDHE group from openssl), no echo"
    fi
done
"$run" "$svc" status --name "tlsscan-$$" >"$work/status.out" 2>&1 || true
kill -INT "$server"
wait "$server" || true
python3 - "$work/testssl.json" "$log" "$work/status.out" "$work/fs_cbc_refused.txt" <<'PY'
import json, re, sys
found = {e["id"]: e["finding"] for e in json.load(open(sys.argv[1]))}
log = open(sys.argv[2], errors="replace").read()
status = open(sys.argv[3], errors="replace").read()
cbc = open(sys.argv[4]).read().split()
bad = []
def want(key, text):
    if found.get(key) != text:
        bad.append(f"{key}: '{found.get(key)}', wanted '{text}'")
for key in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
    want(key, "not offered")
want("TLS1_2", "offered")
for key in ("cipherlist_NULL", "cipherlist_aNULL", "cipherlist_EXPORT", "cipherlist_LOW",
            "cipherlist_3DES_IDEA", "cipherlist_AVERAGE"):
    want(key, "not offered")
want("cipherlist_STRONG", "offered")
fs_key = "PFS" if "PFS" in found else "FS"  # testssl 3.0 says PFS, 3.1 FS
want(fs_key, "offered")
if not found.get("LUCKY13", "").startswith("not vulnerable"):
    bad.append(f"LUCKY13: '{found.get('LUCKY13')}'")
want("secure_renego", "supported")  # RFC 5746's extension (Schannel's)
# A client's renegotiation: the engine answers no_renegotiation and closes (testssl may add
# "timed out": its s_client keeps waiting on its input after the close).
client_renego = found.get("secure_client_renego", "")
if not re.match(r"(likely )?not vulnerable", client_renego):
    bad.append(f"secure_client_renego: '{client_renego}'")
if "asked for a TLS renegotiation, which is refused" not in log:
    bad.append("the server's log does not show the renegotiation refused")
fs = found.get(fs_key + "_ciphers", "").split()
if not fs:
    bad.append("no forward-secrecy cipher list")
if any(not re.match(r"(ECDHE|DHE)-", c) for c in fs):
    bad.append(f"a suite without forward secrecy in the list: {fs}")
refused = len(re.findall(r"no AEAD cipher \(CBC\), below the suite floor", log))
m = re.search(r"\((\d+) below the floor\)", status)
below = int(m.group(1)) if m else -1
print(f"forward-secrecy list: {len(fs)} suites; CBC ones refused when chosen: {len(cbc)} "
      f"({' '.join(cbc) or 'none'}); "
      f"CBC handshakes refused after the fact: {refused}; status below the floor: {below}")
if refused < len(cbc):
    bad.append(f"{len(cbc)} CBC suites refused by an alert, only {refused} refusals in the log")
if below < refused:
    bad.append(f"status counts {below} below the floor, the log {refused}")
if bad:
    print("\n".join(bad))
    sys.exit(1)
PY
echo "1 passed, 0 failed"
