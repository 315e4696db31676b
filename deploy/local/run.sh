#!/usr/bin/env bash
# `make run`: the collector on 127.0.0.1 and a sensor on the default-route interface.
# `make demo` (run.sh demo): no privilege needed, the sensor replays a bundled real capture
# in a loop at its own pace with timestamps moved to now, and the collector keeps memory only.
# Ctrl-C stops both cleanly. Overrides: NETWATCH_INTERFACE, NETWATCH_PORT (HTTP, 8080),
# NETWATCH_GRPC_PORT (9090), NETWATCH_DATA_DIR (./netwatch-data), NETWATCH_DEMO_PCAP.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${1:-run}

iface=${NETWATCH_INTERFACE:-$(ip -o route show default 2>/dev/null | awk '{for (i=1;i<NF;i++) if ($i=="dev") {print $(i+1); exit}}')}
http_port=${NETWATCH_PORT:-8080}
grpc_port=${NETWATCH_GRPC_PORT:-9090}
data_dir=${NETWATCH_DATA_DIR:-./netwatch-data}

if [[ $mode == demo ]]; then
  pcap=${NETWATCH_DEMO_PCAP:-common/oracle/testdata/pcaps/ndpi-alexa-app.pcapng}
  data_dir=${NETWATCH_DATA_DIR:-}
  sensor_args=(--read "$pcap" --loop --speed 1x --rebase-time --sensor-id demo)
elif [[ -z $iface ]]; then
  echo "run: no default route, so no interface to capture on; set NETWATCH_INTERFACE=IF (ip -br link lists them)" >&2
  exit 2
else
  sensor_args=(--interface "$iface")
fi
# Live capture needs CAP_NET_RAW. Stop early with the fix only when we know the sensor lacks
# it: not root, no CAP_NET_RAW inherited (ambient), and getcap (libcap2-bin, in /usr/sbin,
# which a plain user's PATH often lacks) shows none on the binary. Without getcap, start
# anyway: the sensor names the missing capability itself.
can_capture() {
  [[ $(id -u) -eq 0 ]] && return 0
  local amb
  amb=$(awk '/^CapAmb:/ {print $2}' /proc/$$/status 2>/dev/null)
  [[ -n $amb ]] && (((0x$amb >> 13) & 1)) && return 0 # CAP_NET_RAW is capability 13
  local getcap
  getcap=$(PATH="$PATH:/usr/sbin:/sbin" command -v getcap) || return 0
  "$getcap" bin/netwatch-sensor 2>/dev/null | grep -q cap_net_raw
}
if [[ $mode != demo ]] && ! can_capture; then
  cat >&2 <<MSG
run: live capture needs CAP_NET_RAW, which bin/netwatch-sensor does not have. Either
  sudo make run
or give the sensor binary the capability (again whenever make rebuilds it):
  sudo setcap cap_net_raw,cap_net_admin+ep bin/netwatch-sensor && make run
or try it without capture: make demo
MSG
  exit 2
fi

pids=()
stop() {
  trap - INT TERM EXIT
  # Sensor first (it flushes its flows and waits for the collector's acks), then the collector.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  echo "run: stopped"
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap stop EXIT

# Each binary in its own session: Ctrl-C reaches only this script, which then stops them
# in order instead of both at once.
setsid bin/netwatch-collector --grpc-listen "127.0.0.1:$grpc_port" --http-listen "127.0.0.1:$http_port" --data-dir "$data_dir" &
pids+=($!)
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$http_port") 2>/dev/null && break
  sleep 0.1
done
setsid bin/netwatch-sensor "${sensor_args[@]}" --collector "127.0.0.1:$grpc_port" &
pids+=($!)

echo
what="capturing on $iface"
[[ $mode == demo ]] && what="replaying $pcap in a loop"
echo "  Netwatch dashboard: http://127.0.0.1:$http_port/    ($what; Ctrl-C stops)"
echo
status=0
wait -n "${pids[@]}" || status=$?
echo "run: a process exited (status $status); its message is above. Stopping." >&2
exit "$status"
