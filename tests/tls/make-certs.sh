#!/usr/bin/env bash
# Makes the test certificates in this folder (committed: the tests need no OpenSSL, and they
# run the same on Windows). Run again only to change them. Private keys here are for tests.
#   ca.pem                 the test CA (trusted with --tls-ca / iocpi_tls_creds_client)
#   server.pfx             localhost, 127.0.0.1 and ::1, by the CA; password "iocp-test"
#   server-cert.pem/-key   the same for native peers (openssl s_server, Python ssl)
#   wronghost.*            wrong.example, by the CA
#   expired.*              localhost, by the CA, valid 2020-01-01 to 2021-01-01 only
#   selfsigned.*           localhost, signed by itself
#   nokey.pfx              server's certificate without its key
# PFX files use the legacy encryption (-legacy): Wine 10 cannot sign with a key from an
# OpenSSL 3 default PFX (see docs/wine.md); Windows reads both kinds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
pass=iocp-test
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 7300 \
    -subj "/CN=iocp test CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

cat >"$work/ca.cnf" <<CNF
[ca]
default_ca = test
[test]
dir = $work
database = $work/index.txt
new_certs_dir = $work
serial = $work/serial
default_md = sha256
policy = any
copy_extensions = copy
unique_subject = no
[any]
commonName = supplied
CNF
touch "$work/index.txt"
echo 1000 >"$work/serial"

# leaf NAME CN SAN [START END]: key, certificate by the CA, PFX
leaf() {
    local name=$1 cn=$2 san=$3 start=${4:-} end=${5:-}
    openssl req -newkey rsa:2048 -nodes -keyout "$name-key.pem" -out "$work/$name.csr" \
        -subj "/CN=$cn" -addext "subjectAltName=$san" -addext "extendedKeyUsage=serverAuth" \
        2>/dev/null
    local dates=(-days 7300)
    [ -n "$start" ] && dates=(-startdate "$start" -enddate "$end")
    openssl ca -batch -config "$work/ca.cnf" -cert ca.pem -keyfile ca-key.pem \
        -in "$work/$name.csr" -out "$name-cert.pem" -notext "${dates[@]}" 2>/dev/null
    openssl pkcs12 -export -legacy -in "$name-cert.pem" -inkey "$name-key.pem" \
        -certfile ca.pem -out "$name.pfx" -passout "pass:$pass"
}
leaf server localhost "DNS:localhost,IP:127.0.0.1,IP:::1"
leaf wronghost wrong.example "DNS:wrong.example"
leaf expired localhost "DNS:localhost,IP:127.0.0.1" 20200101000000Z 20210101000000Z

openssl req -x509 -newkey rsa:2048 -nodes -keyout selfsigned-key.pem -out selfsigned-cert.pem \
    -days 7300 -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    2>/dev/null
openssl pkcs12 -export -legacy -in selfsigned-cert.pem -inkey selfsigned-key.pem \
    -out selfsigned.pfx -passout "pass:$pass"
openssl pkcs12 -export -legacy -nokeys -in server-cert.pem -out nokey.pfx -passout "pass:$pass"
rm -f ca-key.pem
ls
