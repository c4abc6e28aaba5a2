#!/usr/bin/env bash
# Makes a throwaway CA, a server certificate for localhost/127.0.0.1 and a
# client certificate, for trying TLS and mutual TLS locally:
#
#   scripts/make-test-ca.sh DIR [NAME]
#
# writes DIR/NAME-ca.pem, DIR/server.pem, DIR/server.key, DIR/client.pem,
# DIR/client.key (NAME defaults to "ventana-test"). Then in ventana.toml:
#
#   [tls]
#   cert = "DIR/server.pem"
#   key = "DIR/server.key"
#   client_ca = "DIR/NAME-ca.pem"     # only for mutual TLS
#
# and: grpcurl -cacert DIR/NAME-ca.pem -cert DIR/client.pem -key DIR/client.key localhost:50051 list
set -euo pipefail
dir=${1:?usage: make-test-ca.sh DIR [NAME]}
name=${2:-ventana-test}
mkdir -p "$dir"
cd "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
  -subj "/CN=$name CA" -keyout "$name-ca.key" -out "$name-ca.pem" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
issue() { # issue NAME SUBJECT EXTENSIONS
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "$2" \
    -keyout "$1.key" -out "$1.csr" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA "$name-ca.pem" -CAkey "$name-ca.key" -CAcreateserial -days 30 \
    -extfile <(printf '%s\n' "$3") -out "$1.pem" 2>/dev/null
  rm -f "$1.csr"
}
issue server "/CN=localhost" "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth
basicConstraints=critical,CA:FALSE"
issue client "/CN=ventana-test-client" "extendedKeyUsage=clientAuth
basicConstraints=critical,CA:FALSE"
echo "wrote $dir/{$name-ca.pem,server.pem,server.key,client.pem,client.key}"
