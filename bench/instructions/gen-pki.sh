#!/usr/bin/env bash
# Test PKI for bench/instructions.sh: one ECDSA P-256 chain shared by every mode.
#   usage: gen-pki.sh OUTDIR CLIENT_ID SERVER_ID
#
#   root (trust anchor)  ->  intermediate ("issuer", pathlen 0)  ->  leaves
#
# Written to OUTDIR:
#   ca.crt                     root only (trust anchor for haproxy and the mesh proxies)
#   issuer.crt, issuer.key     intermediate; the fake control plane signs proxy leaves with it
#                              and returns it as the intermediate, like Linkerd's identity service
#   client.pem, server.pem     haproxy leaves (leaf + intermediate + key), SAN DNS:client / DNS:server;
#                              also <name>.crt, <name>.key, <name>-chain.crt (leaf + intermediate) for curl
#   id-client/, id-server/     mesh proxy identity documents: key.p8 (PKCS#8 DER), csr.der
#                              (DER CSR, CN = identity), name; the proxy gets its leaf via Certify
#   token                      fake service-account token sent in Certify
# Test-only keys, never used outside the benchmark's own network namespaces.
set -euo pipefail
OUT=${1:?outdir}; CLIENT_ID=${2:?client identity}; SERVER_ID=${3:?server identity}
mkdir -p "$OUT"; cd "$OUT"
newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -pkeyopt ec_param_enc:named_curve -out "$1" 2>/dev/null; }

cat > ext.cnf <<'EOF'
[inter]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[server]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = DNS:server, URI:spiffe://mesh.test/ns/default/sa/server
[client]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = DNS:client, URI:spiffe://mesh.test/ns/default/sa/client
EOF

newkey root.key
openssl req -new -x509 -sha256 -key root.key -subj "/O=ztmesh-bench/CN=root.linkerd.cluster.local" -days 30 \
  -addext "basicConstraints=critical,CA:true" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -addext "subjectKeyIdentifier=hash" -out ca.crt

newkey issuer.key
openssl req -new -sha256 -key issuer.key -subj "/O=ztmesh-bench/CN=identity.linkerd.cluster.local" -out issuer.csr
openssl x509 -req -sha256 -in issuer.csr -CA ca.crt -CAkey root.key -CAcreateserial \
  -days 30 -extfile ext.cnf -extensions inter -out issuer.crt 2>/dev/null

# haproxy leaves
for name in server client; do
  newkey $name.key
  openssl req -new -sha256 -key $name.key -subj "/O=ztmesh-bench/CN=$name" -out $name.csr
  openssl x509 -req -sha256 -in $name.csr -CA issuer.crt -CAkey issuer.key -CAcreateserial \
    -days 30 -extfile ext.cnf -extensions $name -out $name.crt 2>/dev/null
  cat $name.crt issuer.crt > $name-chain.crt
  cat $name.crt issuer.crt $name.key > $name.pem
done

# mesh proxy identity documents (the proxy generates nothing itself: it sends csr.der in Certify)
for side in client server; do
  id=$CLIENT_ID; [[ $side == server ]] && id=$SERVER_ID
  mkdir -p id-$side
  newkey id-$side/key.pem
  openssl pkcs8 -topk8 -nocrypt -in id-$side/key.pem -outform DER -out id-$side/key.p8
  openssl req -new -key id-$side/key.pem -subj "/CN=$id" -outform DER -out id-$side/csr.der
  echo "$id" > id-$side/name
done
echo -n "fake-serviceaccount-token" > token

rm -f ./*.csr ./*.srl
openssl verify -CAfile ca.crt -untrusted issuer.crt server.crt client.crt
