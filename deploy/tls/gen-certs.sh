#!/usr/bin/env bash
# gen-certs.sh: a private CA and the mutual-TLS certificates of one collector and its
# sensors, in the file names the example configurations, systemd units and Kubernetes
# manifests use. Run with --help for the usage. Needs openssl.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: gen-certs.sh [--out DIR] [--days N] [--collector-name DNS]... [--collector-ip IP]...
                    [--sensor NAME]...

Writes, under DIR (default ./netwatch-tls):
  ca.crt, ca.key            the CA (created on the first run, reused afterwards: keep ca.key
                            off the hosts, it signs new certificates)
  collector/                copy to the collector host's /etc/netwatch/tls/:
    ca.crt                    verifies the sensors' certificates   (--client-ca)
    collector.crt             server certificate, SANs as given    (--tls-cert)
    collector.key                                                  (--tls-key)
  NAME/                     for each --sensor NAME, copy to that sensor's /etc/netwatch/tls/:
    ca.crt                    verifies the collector's certificate (--ca)
    sensor.crt                client certificate, CN=NAME          (--tls-cert)
    sensor.key                                                     (--tls-key)

  --collector-name DNS  a DNS name sensors use to reach the collector (repeatable)
  --collector-ip IP     an IP address sensors use to reach the collector (repeatable)
  --sensor NAME         issue a sensor client certificate (repeatable)
  --out DIR             output directory (default ./netwatch-tls)
  --days N              validity in days (default 365)

The collector certificate is issued when --collector-name or --collector-ip is given; a
sensor's --collector host:port must be one of those names or addresses (or set the sensor's
--tls-server-name to one). Existing certificates are never overwritten: delete DIR/collector
or DIR/NAME to reissue one. Example (collector at collector.example.net, 192.0.2.10):
  gen-certs.sh --collector-name collector.example.net --collector-ip 192.0.2.10 --sensor sensor-b
USAGE
}

die() { echo "gen-certs.sh: $*" >&2; exit 2; }

out=./netwatch-tls
days=365
names=() ips=() sensors=()
while (($#)); do
  opt=$1
  case $opt in
    -h|--help) usage; exit 0 ;;
    --out|--days|--collector-name|--collector-ip|--sensor)
      (($# >= 2)) && [[ -n $2 ]] || die "$opt needs a value (see --help)"
      val=$2; shift 2 ;;
    --*=*) set -- "${opt%%=*}" "${opt#*=}" "${@:2}"; continue ;;
    *) die "unknown argument '$opt' (see --help)" ;;
  esac
  case $opt in
    --out) out=$val ;;
    --days) [[ $val =~ ^[1-9][0-9]*$ ]] || die "--days: '$val' is not a positive number of days"; days=$val ;;
    --collector-name)
      [[ $val =~ ^[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]] || die "--collector-name: '$val' is not a DNS name"
      names+=("$val") ;;
    --collector-ip)
      [[ $val =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ || $val =~ ^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$ ]] ||
        die "--collector-ip: '$val' is not an IPv4 or IPv6 address (a name goes in --collector-name)"
      ips+=("$val") ;;
    --sensor)
      [[ $val =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ && $val != collector ]] ||
        die "--sensor: '$val' must be letters, digits, '.', '_' or '-' (and not 'collector')"
      [[ " ${sensors[*]} " != *" $val "* ]] || die "--sensor: '$val' given twice"
      sensors+=("$val") ;;
  esac
done
((${#names[@]} + ${#ips[@]} + ${#sensors[@]} > 0)) ||
  die "nothing to issue: give --collector-name/--collector-ip and/or --sensor (see --help)"
command -v openssl >/dev/null || die "openssl is needed (Debian package openssl)"

umask 077
mkdir -p "$out"
cd "$out"
todo=("${sensors[@]}")
((${#names[@]} + ${#ips[@]} == 0)) || todo+=(collector)
for d in "${todo[@]}"; do
  [[ ! -e $d ]] || die "$out/$d exists; delete it to reissue (nothing was written)"
done
# openssl's own messages only when it fails.
run() { local log; log=$(openssl "$@" 2>&1) || { echo "$log" >&2; die "openssl $1 failed"; }; }

if [[ -e ca.key ]]; then
  [[ -e ca.crt ]] || die "$out/ca.key exists without ca.crt"
  echo "gen-certs.sh: reusing the CA in $out (ca.crt, ca.key)"
else
  run req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
    -subj "/CN=netwatch-ca" -keyout ca.key -out ca.crt \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
  chmod 0644 ca.crt
fi

issue() { # dir, file base name, CN, extendedKeyUsage, subjectAltName (may be empty)
  local dir=$1 base=$2 cn=$3 eku=$4 san=$5
  mkdir "$dir"
  run req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$cn" \
    -keyout "$dir/$base.key" -out "$dir/$base.csr"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature"
    echo "extendedKeyUsage=$eku"
    [[ -z $san ]] || echo "subjectAltName=$san"
  } >"$dir/$base.ext"
  run x509 -req -in "$dir/$base.csr" -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
    -days "$days" -extfile "$dir/$base.ext" -out "$dir/$base.crt"
  rm -f "$dir/$base.csr" "$dir/$base.ext"
  cp ca.crt "$dir/ca.crt"
  chmod 0644 "$dir/$base.crt" "$dir/ca.crt"
  echo "gen-certs.sh: $out/$dir/: ca.crt $base.crt $base.key  (CN=$cn${san:+, $san})"
}

if ((${#names[@]} + ${#ips[@]} > 0)); then
  san=()
  for n in "${names[@]}"; do san+=("DNS:$n"); done
  for i in "${ips[@]}"; do san+=("IP:$i"); done
  issue collector collector "${names[0]:-${ips[0]}}" serverAuth "$(IFS=,; echo "${san[*]}")"
fi
for s in "${sensors[@]}"; do
  issue "$s" sensor "$s" clientAuth ""
done
