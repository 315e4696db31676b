#!/usr/bin/env bash
# bench/restart.sh — restart time of netwatch-collector against its stored flows, for
# bench/run.sh (section "restart"); also runs alone:
#
#	bench/restart.sh COLLECTOR NWLOAD OUTDIR [FLOWSxSENSORS ...]
#
# For each size (default: 100000x1 100000x100 100000x1000 1000000x1 1000000x100
# 1000000x1000 3000000x100): a collector with a fresh data directory takes the flows
# from synthetic sensors (nwload ingest, the real SensorService and durable log:
# segments, and a snapshot each time a segment passes 64 MiB; its per-address
# connection cap is off, as 1000 sensors come from one address), stops (SIGTERM), and
# a second collector starts on that directory; the row is the time from its exec to
# /readyz 200, polled every 50 ms. A collector built before /readyz existed listened
# only once replayed, so any answer but 503 counts as ready for it. Writes a
# markdown section on stdout; raw logs in OUTDIR.
set -euo pipefail
COLLECTOR=$1 NWLOAD=$2 OUT=$3
shift 3
SIZES=("$@")
((${#SIZES[@]})) || SIZES=(100000x1 100000x100 100000x1000 1000000x1 1000000x100 1000000x1000 3000000x100)
mkdir -p "$OUT"
ulimit -n 65536 2>/dev/null || true # 1000 sensors: a connection each, on both sides
GRPC=127.0.0.1:19190 HTTP=127.0.0.1:18180
PID=
trap '[[ -n "$PID" ]] && kill "$PID" 2>/dev/null || true' EXIT

now() { date +%s.%N; }
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$HTTP/readyz" || true; }
hwm_mb() { awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
stop() {
	kill -TERM "$PID"
	wait "$PID" || true
	PID=
}
# start DIR LOG: a collector on DIR; sets PID and T0 (just before exec)
start() {
	T0=$(now)
	"$COLLECTOR" --grpc-listen $GRPC --http-listen $HTTP --data-dir "$1" --rate-limit 0 --rate-limit-local 0 --max-sensors 1100 --grpc-max-conns-loopback 0 >"$2" 2>&1 &
	PID=$!
}
# ready: waits for /readyz 200 (or, from an older build, any answer but 503); sets
# READY (s since T0) and SEEN (the first 503 body, if any)
ready() {
	SEEN=
	while :; do
		c=$(code)
		if [[ $c == 503 && -z $SEEN ]]; then SEEN=$(curl -s --max-time 2 "http://$HTTP/readyz" || true); fi
		if [[ $c != 000 && $c != 503 ]]; then break; fi
		kill -0 "$PID" 2>/dev/null || { echo "collector exited, see its log" >&2; return 1; }
		sleep 0.05
	done
	READY=$(awk -v a="$T0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
}

ROWS=() HEAD=
for size in "${SIZES[@]}"; do
	flows=${size%x*} sensors=${size#*x}
	per=$((flows / sensors))
	dir=$OUT/data-$size
	rm -rf "$dir"
	echo "restart: fill $flows flows from $sensors sensors" >&2
	start "$dir" "$OUT/fill-$size.log"
	ready
	batch=$((per < 1000 ? per : 1000))
	"$NWLOAD" ingest -addr $GRPC -sensors "$sensors" -flows "$per" -batch "$batch" -duration 0s -id rs >"$OUT/fill-$size.json" 2>"$OUT/fill-$size.err" ||
		echo "restart: nwload failed (see $OUT/fill-$size.err); the row restores what was acknowledged" >&2
	stop
	disk=$(du -sm "$dir" | cut -f1)
	snap=$(find "$dir" -name 'snap-*.snap' -printf '%s\n' | sort -n | tail -1)
	echo "restart: restart on $disk MB" >&2
	start "$dir" "$OUT/restart-$size.log"
	ready
	hwm=$(hwm_mb "$PID")
	took=$(grep -o 'msg="durable log replayed".*' "$OUT/restart-$size.log" | grep -o 'took=[^ ]*' | cut -d= -f2 || true)
	stored=$(curl -s "http://$HTTP/api/v1/metrics" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("activeFlows"))' || true)
	stop
	[[ $size == 1000000x100 ]] && HEAD="**Restart, 1M flows from 100 sensors:** ready (exec to /readyz 200) in $READY s, the replay itself $took; listening from the start (/readyz said \"${SEEN:-ready at once}\" meanwhile)."
	ROWS+=("| $flows | $sensors | $disk | $(((${snap:-0} + 524288) / 1048576)) | $stored | **$READY** | ${took:-?} | $hwm | ${SEEN:-(never seen: ready at the first poll)} |")
	rm -rf "$dir"
done

echo "### Restart: time to ready against the stored flows"
echo
echo "\`bench/restart.sh\`: for each row a collector with a fresh data directory takes the flows from \`nwload ingest -sensors S -flows F/S -duration 0s\` (real SensorService over loopback gRPC, durable log with the default 64 MiB segments: a snapshot each time a segment passes them, the rest replayed as batches), stops on SIGTERM, and a second collector starts on that directory. *Ready* is the wall time from its exec to \`/readyz\` 200 (polled every 50 ms); *replay* is its own \"durable log replayed\" figure. The listeners answer from the start: *first 503* is what \`/readyz\` said meanwhile."
echo
echo "| flows | sensors | data dir MB | newest snapshot MB | flows restored | ready s | replay | RSS peak MB | first 503 |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
if [[ -n $HEAD ]]; then
	echo
	echo "$HEAD"
fi
