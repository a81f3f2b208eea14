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
# The three-level chain (`make-certs.sh chain` makes only these, leaving the rest as it is):
#   chain-root.pem         a root CA; chain-int.pem an intermediate by it (CA, pathlen 0)
#   chain-leaf-*           localhost by the intermediate; chain-leaf-bundle.pem = leaf + int
#                          (what a server sends), chain-leaf-full.pem = leaf + int + root;
#                          chain-leaf.pfx the same with its key (password "iocp-test")
#   chain-cas.pem          intermediate + root (a CA file that supplies the intermediate)
#   chain-wrong-root.pem   another root, which signed nothing here
#   chain-expint.pem       an intermediate by the root, valid 2020-01-01 to 2021-01-01 only;
#                          chain-expint-leaf-* localhost by it, -bundle.pem = leaf + expint
#   client-*               a client certificate (clientAuth, CN "iocp test client") by the
#                          intermediate; client-bundle.pem = cert + int; client.pfx with its key
# PFX files use the legacy encryption (-legacy): Wine 10 cannot sign with a key from an
# OpenSSL 3 default PFX (see docs/wine.md); Windows reads both kinds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
pass=iocp-test
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ca_config DIR: an `openssl ca` configuration whose database lives in DIR.
ca_config() {
    mkdir -p "$1"
    cat >"$1/ca.cnf" <<CNF
[ca]
default_ca = test
[test]
dir = $1
database = $1/index.txt
new_certs_dir = $1
serial = $1/serial
default_md = sha256
policy = any
copy_extensions = copy
unique_subject = no
[any]
commonName = supplied
CNF
    touch "$1/index.txt"
    echo 1000 >"$1/serial"
}

# signed ISSUER NAME SUBJ [openssl-ca date options...]: NAME-key.pem and NAME-cert.pem, the
# extensions given in $exts (an array of -addext arguments), signed by ISSUER(.pem/-key.pem).
signed() {
    local issuer=$1 name=$2 subj=$3
    shift 3
    openssl req -newkey rsa:2048 -nodes -keyout "$name-key.pem" -out "$work/$name.csr" \
        -subj "$subj" "${exts[@]}" 2>/dev/null
    openssl ca -batch -config "$work/ca.cnf" -cert "$issuer.pem" -keyfile "$issuer-key.pem" \
        -in "$work/$name.csr" -out "$name-cert.pem" -notext "$@" 2>/dev/null
}

chain() {
    ca_config "$work"
    local ca_exts=(-addext "basicConstraints=critical,CA:TRUE,pathlen:0"
        -addext "keyUsage=critical,keyCertSign,cRLSign")
    openssl req -x509 -newkey rsa:2048 -nodes -keyout chain-root-key.pem -out chain-root.pem \
        -days 7300 -subj "/CN=iocp test root" -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/wrong-key.pem" \
        -out chain-wrong-root.pem -days 7300 -subj "/CN=iocp test wrong root" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    exts=("${ca_exts[@]}")
    signed chain-root chain-int "/CN=iocp test intermediate" -days 7300
    mv chain-int-cert.pem chain-int.pem
    signed chain-root chain-expint "/CN=iocp test expired intermediate" \
        -startdate 20200101000000Z -enddate 20210101000000Z
    mv chain-expint-cert.pem chain-expint.pem
    exts=(-addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"
        -addext "extendedKeyUsage=serverAuth")
    signed chain-int chain-leaf "/CN=localhost" -days 7300
    signed chain-expint chain-expint-leaf "/CN=localhost" -days 7300
    exts=(-addext "extendedKeyUsage=clientAuth")
    signed chain-int client "/CN=iocp test client" -days 7300
    cat chain-leaf-cert.pem chain-int.pem >chain-leaf-bundle.pem
    cat chain-leaf-cert.pem chain-int.pem chain-root.pem >chain-leaf-full.pem
    cat chain-expint-leaf-cert.pem chain-expint.pem >chain-expint-leaf-bundle.pem
    cat client-cert.pem chain-int.pem >client-bundle.pem
    cat chain-int.pem chain-root.pem >chain-cas.pem
    openssl pkcs12 -export -legacy -in chain-leaf-cert.pem -inkey chain-leaf-key.pem \
        -certfile chain-int.pem -out chain-leaf.pfx -passout "pass:$pass"
    openssl pkcs12 -export -legacy -in client-cert.pem -inkey client-key.pem \
        -certfile chain-int.pem -out client.pfx -passout "pass:$pass"
    rm -f chain-root-key.pem chain-int-key.pem chain-expint-key.pem
}
if [ "${1:-}" = chain ]; then
    chain
    exit 0
fi

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
rm -rf "$work" && mkdir -p "$work"
chain
ls
