#!/usr/bin/env bash
# Example mTLS material for deploy/kubernetes: a private CA, the collector's server
# certificate (for netwatch-collector.netwatch.svc) and one client certificate shared by the
# sensors, written to OUT (default ./netwatch-tls) and printed as kubectl commands.
# For production, issue per-node sensor certificates from your own PKI (e.g. cert-manager).
set -euo pipefail
out=${1:-./netwatch-tls}
days=${DAYS:-365}
svc=${COLLECTOR_DNS:-netwatch-collector.netwatch.svc}
mkdir -p "$out" && cd "$out"
umask 077

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
  -subj "/CN=netwatch-ca" -keyout ca.key -out ca.crt 2>/dev/null

issue() { # name, extendedKeyUsage, subjectAltName (optional)
  local name=$1 eku=$2 san=${3:-}
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
    -keyout "$name.key" -out "$name.csr" 2>/dev/null
  {
    echo "extendedKeyUsage=$eku"
    [[ -n $san ]] && echo "subjectAltName=$san"
  } > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" \
    -extfile "$name.ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}
issue collector serverAuth "DNS:$svc,DNS:netwatch-collector,DNS:localhost,IP:127.0.0.1"
issue sensor clientAuth

cat <<MSG
Written to $(pwd): ca.crt, collector.{crt,key}, sensor.{crt,key}. Create the secrets with:
  kubectl -n netwatch create secret generic netwatch-collector-tls --from-file=tls.crt=collector.crt --from-file=tls.key=collector.key --from-file=ca.crt=ca.crt
  kubectl -n netwatch create secret generic netwatch-sensor-tls --from-file=tls.crt=sensor.crt --from-file=tls.key=sensor.key --from-file=ca.crt=ca.crt
  kubectl -n netwatch create secret generic netwatch-api-token --from-literal=token=\$(openssl rand -hex 24)
MSG
