#!/usr/bin/env bash
# Installs what `make test` needs on a fresh Debian/Ubuntu machine with Go. As root it
# runs apt-get; otherwise it names what is missing and how to install it.
set -euo pipefail

# command -> Debian package
declare -A need=(
  [ip]=iproute2
  [ping]=iputils-ping
  [tcpreplay]=tcpreplay
  [tcpdump]=tcpdump     # live capture counts and the filter compiler are compared with tcpdump/libpcap
  [mount]=mount         # the collector fault test mounts a small tmpfs as a full data dir (and umount -l)
  [systemd-analyze]=systemd
  [promtool]=prometheus  # the /metrics tests run promtool check metrics on both binaries' text
  [openssl]=openssl     # deploy/tls/gen-certs.sh and its test
  [setcap]=libcap2-bin  # the make-run tests set file capabilities on a copied sensor
  [chromium]=chromium   # the browser tests drive Debian's chromium (playwright cannot download one)
  [node]=nodejs
  [npm]=npm
)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
if ! command -v go >/dev/null 2>&1; then
  echo "deps: Go is not installed (https://go.dev/doc/install); Netwatch needs Go 1.26" >&2
  exit 1
fi
if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "deps: missing Debian packages: ${missing[*]}" >&2
    echo "deps: install them with: sudo apt-get install -y ${missing[*]}   (or run make test as root)" >&2
    exit 1
  fi
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The dashboard's test dependencies (playwright-core, and chart.js to check the
# vendored copy), pinned by webui/package-lock.json; npm ci needs no root.
webui="$(cd "$(dirname "$0")/../webui" && pwd)"
if [[ ! -d "$webui/node_modules/playwright-core" || "$webui/package-lock.json" -nt "$webui/node_modules/.package-lock.json" ]]; then
  echo "deps: npm ci in webui/"
  if ! (cd "$webui" && npm ci --no-audit --no-fund --loglevel=error); then
    echo "deps: npm ci failed in webui/: the browser tests need playwright-core from the npm registry" >&2
    exit 1
  fi
fi
