#!/usr/bin/env bash
# bench/run.sh — Netwatch's reproducible benchmark (make bench). Root, Debian.
#
# Generates seeded pcaps, runs netwatch-sensor side by side with the tools people
# would pick instead (offline and live capture in network namespaces), drives the
# collector with synthetic sensors, wrk and WebSocket clients, and writes
# bench/RESULTS.md. Everything comparative is measured in this run and quoted as a
# ratio. Scratch files and raw logs: bench/out/ (gitignored).
#
# Environment: SECTIONS="gen offline live collector restart gobench" (default: all),
# QUICK=1 (small pcaps, short runs: a smoke test of the script, not figures).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/bench/out
LOG=$OUT/logs
MD=$OUT/md
BIN=$OUT/bin
mkdir -p "$OUT" "$LOG" "$MD" "$BIN"
SECTIONS=${SECTIONS:-gen offline live collector restart gobench}
QUICK=${QUICK:-0}
T0=$(date +%s)
NSA=nwb-a NSB=nwb-b
PIDS=()

say() { printf '\n== %s\n' "$*" >&2; }
has() { [[ " $SECTIONS " == *" $1 "* ]]; }

cleanup() {
	local p
	for p in "${PIDS[@]:-}"; do [[ -n "$p" ]] && kill "$p" 2>/dev/null || true; done
	ip netns del $NSA 2>/dev/null || true
	ip netns del $NSB 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[[ $(id -u) == 0 ]] || { echo "bench/run.sh needs root (packages, namespaces, capture)" >&2; exit 1; }

# ---------------------------------------------------------------- packages
need=()
for p in softflowd:softflowd nfpcapd:nfdump argus:argus-server ra:argus-client pmacctd:pmacct \
	tcpdump:tcpdump tcpreplay:tcpreplay trafgen:netsniff-ng wrk:wrk /usr/bin/time:time ip:iproute2 ethtool:ethtool; do
	command -v "${p%%:*}" >/dev/null || need+=("${p#*:}")
done
if ((${#need[@]})); then
	say "installing ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >"$LOG/apt.log" 2>&1 ||
		{ apt-get update >>"$LOG/apt.log" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >>"$LOG/apt.log" 2>&1; }
fi

# ---------------------------------------------------------------- build
say "build"
(cd sensor && CGO_ENABLED=0 go build -trimpath -o "$BIN/netwatch-sensor" ./cmd/netwatch-sensor &&
	go build -trimpath -o "$BIN/netwatch-pcapgen" ./cmd/netwatch-pcapgen)
(cd collector && CGO_ENABLED=0 go build -trimpath -o "$BIN/netwatch-collector" ./cmd/netwatch-collector)
(cd bench && go build -trimpath -o "$BIN/nwload" ./cmd/nwload && go build -trimpath -o "$BIN/nwxdpgen" ./cmd/nwxdpgen)
SENSOR=$BIN/netwatch-sensor COLLECTOR=$BIN/netwatch-collector NWLOAD=$BIN/nwload GEN=$BIN/netwatch-pcapgen XDPGEN=$BIN/nwxdpgen

# ---------------------------------------------------------------- helpers
CLK=$(getconf CLK_TCK)
# cpu_s PID: user+sys CPU seconds of a process so far
cpu_s() { awk -v c="$CLK" '{ split($0, a, ") "); split(a[2], f, " "); printf "%.3f", (f[12] + f[13]) / c }' "/proc/$1/stat"; }
rss_mb() { awk '/VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
hwm_mb() { awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# timed NAME CMD...: run CMD under /usr/bin/time; sets W (wall s), U, S, CPU (U+S), RSS (MB)
timed() {
	local name=$1
	shift
	echo "$*" >"$LOG/$name.cmd"
	/usr/bin/time -f '%e %U %S %M' -o "$LOG/$name.time" "$@" >"$LOG/$name.out" 2>"$LOG/$name.err" || {
		echo "FAILED: $name (see $LOG/$name.err)" >&2
		W=NaN U=NaN S=NaN CPU=NaN RSS=NaN
		return 1
	}
	read -r W U S RSS < <(tail -1 "$LOG/$name.time")
	CPU=$(calc %.2f "$U + $S")
	RSS=$(calc %.0f "$RSS / 1024")
}

if ((QUICK)); then
	NA=1000000 FA=100000 NB=500000 FB=100000 NLIVE=300000 DUR=5
else
	NA=10000000 FA=100000 NB=5000000 FB=1000000 NLIVE=1000000 DUR=15
fi
PA=$OUT/uniform-${NA}.pcap PB=$OUT/mixed-${NB}.pcap PL=$OUT/live-${NLIVE}.pcap PLM=$OUT/live-mixed-${NLIVE}.pcap

# ---------------------------------------------------------------- machine
{
	echo "## Machine"
	echo
	echo '```'
	lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core|Socket|Hypervisor|L2|L3)' || true
	echo "kernel: $(uname -srm)"
	echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	echo "go: $(go version | cut -d' ' -f3-)"
	echo "load average at start (1/5/15 min): $(loadavg)"
	for t in softflowd nfdump argus pmacct tcpdump tcpreplay netsniff-ng wrk; do
		echo "$t: $(dpkg-query -W -f '${Version}' "$t" 2>/dev/null || echo '?')"
	done
	echo "netwatch: $(git describe --tags --always --dirty 2>/dev/null || echo dev) (working tree)"
	echo '```'
} >"$MD/00-machine.md"

# ---------------------------------------------------------------- 1. generator
if has gen; then
	say "generate pcaps"
	gen() { # FILE ARGS...: generate once (the generator is deterministic: same args, same file)
		local f=$1
		shift
		if [[ ! -s $f || $(cat "$f.args" 2>/dev/null) != "$*" ]]; then
			"$GEN" "$@" -o "$f" 2>"$f.summary"
			echo "$*" >"$f.args"
		fi
	}
	gt=$(date +%s.%N)
	gen "$PA" -profile uniform -frames $NA -flows $FA -len 64 -seed 1
	gen "$PB" -profile mixed -frames $NB -flows $FB -seed 1
	gen "$PL" -profile uniform -frames $NLIVE -flows 100000 -len 64 -seed 2
	gen "$PLM" -profile mixed -frames $NLIVE -flows $((NLIVE / 5)) -seed 2
	gt=$(calc %.1f "$(date +%s.%N) - $gt")
	{
		echo "## 1. Generated captures"
		echo
		echo "\`netwatch-pcapgen\` (sensor/cmd/netwatch-pcapgen, package sensor/internal/synth), seeded: same flags, same bytes. Generated (or reused when already present with the same flags) in ${gt} s."
		echo
		echo "| file | command | size | what |"
		echo "|---|---|---|---|"
		echo "| (a) \`$(basename "$PA")\` | \`netwatch-pcapgen $(cat "$PA.args")\` | $(du -h "$PA" | cut -f1) | $NA frames of 64 bytes, Ethernet/IPv4, TCP (PSH-ACK) and UDP, each on one of $FA bidirectional flows drawn uniformly, either direction |"
		echo "| (b) \`$(basename "$PB")\` | \`netwatch-pcapgen $(cat "$PB.args")\` | $(du -h "$PB" | cut -f1) | see the summary below |"
		echo "| live | \`netwatch-pcapgen $(cat "$PL.args")\` | $(du -h "$PL" | cut -f1) | replayed into the veth |"
		echo "| live mixed | \`netwatch-pcapgen $(cat "$PLM.args")\` | $(du -h "$PLM" | cut -f1) | replayed into the veth at 1 Gbit/s |"
		echo
		echo "Summary of (b) as the generator reports it:"
		echo
		echo '```'
		cat "$PB.summary"
		echo '```'
		echo
		echo "(b): Zipf flow sizes (P(size = m) ∝ m^-2.1, the head as drawn, the largest flows capped to hit the frame total), up to 10,000 flows in progress at once; flows of 6+ packets 85 % TCP with SYN / SYN-ACK / ACK, data and FIN-ACK both ways plus the last ACK, shorter flows mostly UDP or incomplete TCP; ICMP(v6) echo; 30 % IPv6; data frames 7:4:1 of 64/576/1500-byte IP packets (IMIX-like), handshake and ACK frames as small as their headers. Frames are 1 µs apart."
	} >"$MD/10-gen.md"
fi

# ---------------------------------------------------------------- 2. offline
# Each tool reads the whole file once and aggregates it into flows; the output
# goes to bench/out (page cache). Flow counts are what each tool reports.
offline_one() { # TAG PCAP
	local tag=$1 pcap=$2
	local rows=$MD/.offline-$tag.rows
	: >"$rows"
	row() { # TOOL FLOWS NOTE
		local pps ppc
		pps=$(calc %.0f "$PKTS / $W")
		ppc=$(calc %.0f "$PKTS / ($CPU > 0 ? $CPU : 0.001)")
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$W" "$CPU" "$RSS" "$pps" "$ppc" "$2" "$3" "$(cat "$LOG/$CUR.cmd")" >>"$rows"
	}
	# Read floor (also warms the page cache for everyone after it).
	cat "$pcap" >/dev/null
	CUR=$tag-tcpdump
	timed $CUR tcpdump -n -r "$pcap" -w /dev/null
	PKTS=$(awk '{for(i=1;i<=NF;i++) if($i=="-frames") print $(i+1)}' "$pcap.args")
	row tcpdump "—" "read floor: reads and writes every packet, no flows"
	for run in 1 2; do
		CUR=$tag-netwatch-$run
		timed $CUR "$SENSOR" --read "$pcap" --output jsonl --metrics-listen '' --sensor-id bench || true
		row "netwatch (run $run)" "$(wc -l <"$LOG/$CUR.out")" "bidirectional 5-tuple flows (JSON lines)"
		if ((run == 1)); then
			CUR=$tag-softflowd
			timed $CUR softflowd -d -6 -m 2000000 -v 9 -n 127.0.0.1:9 -r "$pcap" || true
			row softflowd "$(grep -o 'Flows expired: [0-9]*' "$LOG/$CUR.out" | grep -o '[0-9]*$' || echo '?')" "bidirectional; 'Flows expired' (a TCP flow closed by FINs and seen again is a new flow); -m 2000000 so that no flow is forced out"
			CUR=$tag-nfpcapd
			rm -rf "$OUT/nfcapd-$tag" && mkdir -p "$OUT/nfcapd-$tag"
			timed $CUR nfpcapd -r "$pcap" -w "$OUT/nfcapd-$tag" -B 2097152 || true
			row "nfpcapd (nfdump)" "$(nfdump -R "$OUT/nfcapd-$tag" -I 2>/dev/null | awk '/^Flows:/ {print $2}')" "unidirectional (NetFlow): about 2x the bidirectional count; 'nfdump -I' Flows"
			CUR=$tag-argus
			rm -f "$OUT/argus-$tag.out"
			timed $CUR argus -r "$pcap" -w "$OUT/argus-$tag.out" || true
			local arec akeys
			arec=$(racount -r "$OUT/argus-$tag.out" 2>/dev/null | awk '$1=="sum" {print $2}')
			akeys=$(ra -r "$OUT/argus-$tag.out" -n -L -1 -s proto saddr sport daddr dport 2>/dev/null | sort -u | wc -l)
			row argus "$akeys" "bidirectional; distinct (proto, saddr, sport, daddr, dport) in its records ($arec records: status records every 5 s split long flows)"
			CUR=$tag-pmacctd
			cat >"$OUT/pmacctd-$tag.conf" <<-EOF
				daemonize: false
				pcap_savefile: $pcap
				aggregate: src_host,dst_host,src_port,dst_port,proto
				plugins: print
				print_output: csv
				print_output_file: $OUT/pmacctd-$tag.csv
				print_refresh_time: 3600
				print_cache_entries: 262139
				plugin_buffer_size: 10240000
				plugin_pipe_size: 102400000
			EOF
			rm -f "$OUT/pmacctd-$tag.csv"
			timed $CUR pmacctd -f "$OUT/pmacctd-$tag.conf" || true
			row pmacctd "$(($(wc -l <"$OUT/pmacctd-$tag.csv" 2>/dev/null || echo 1) - 1))" "unidirectional (src_host, dst_host, src_port, dst_port, proto), print plugin; wall includes pmacctd's fixed 2 s wait before reading a savefile"
		fi
	done
}

offline_md() { # TAG TITLE
	local tag=$1 rows=$MD/.offline-$1.rows
	awk -F'\t' -v title="$2" '
	BEGIN { print "### " title; print ""; print "| tool | wall s | CPU s (user+sys) | peak RSS MB | packets/s (wall) | packets per CPU-second | flows | how it counts |"; print "|---|---|---|---|---|---|---|---|" }
	{ printf "| %s | %.2f | %.2f | %s | %\047.0f | %\047.0f | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8 }' "$rows"
	echo
	# Netwatch (mean of its two runs) against the fastest peer by wall and by CPU.
	awk -F'\t' -v tag="$3" '
	$1 ~ /^netwatch/ { nw++; nws += $2; nwc += $3; nwr = $4 }
	$1 !~ /^netwatch/ && $1 != "tcpdump" && $2 > 0 { if (bw == "" || $2 < bw) { bw = $2; bwn = $1 } if (bc == "" || $3 < bc) { bc = $3; bcn = $1 } }
	$1 == "tcpdump" { tw = $2; tc = $3 }
	END {
		nws /= nw; nwc /= nw
		printf "**Offline %s, Netwatch vs the fastest peer:** %.1fx the packet rate of %s (wall %.2f s vs %.2f s); %.1fx less CPU than the most CPU-frugal peer, %s (%.2f vs %.2f CPU s). Netwatch takes %.1fx the wall time of the tcpdump read floor.\n", tag, bw / nws, bwn, nws, bw, bc / nwc, bcn, nwc, bc, nws / tw
	}' "$rows"
	echo
	echo "<details><summary>exact commands</summary>"
	echo
	awk -F'\t' '{ print "- " $1 ": `" $9 "`" }' "$rows"
	echo
	echo "</details>"
}

if has offline; then
	say "offline: pcap (a)"
	offline_one a "$PA"
	say "offline: pcap (b)"
	offline_one b "$PB"
	{
		echo "## 2. Offline aggregation (read a pcap, write flows)"
		echo
		echo "One run of each peer, two of Netwatch (first and last, to show the drift of this shared machine; ratios use their mean); all read the file from the page cache. CPU and peak RSS from \`/usr/bin/time -f '%e %U %S %M'\`. Load average when done: $(loadavg)."
		echo
		offline_md a "(a) $NA x 64-byte frames, $FA flows" "(a) 64-byte frames"
		echo
		offline_md b "(b) $NB mixed frames, $FB flows (IPv4/IPv6, TCP/UDP/ICMP, Zipf)" "(b) mixed traffic"
		echo
		echo "Flow-count sanity: the generator made exactly $FA flows in (a) and $FB in (b) (bidirectional 5-tuples; an ICMP echo flow is keyed by its two addresses). Netwatch must report exactly those; softflowd and argus, bidirectional too, should come close (softflowd starts a new flow for packets after both FINs; argus prints ICMP type/code in the port columns); nfpcapd and pmacctd count each direction, so about twice as many (fewer when a flow is one-way, e.g. a lone SYN or single-packet UDP). nfpcapd exports every UDP packet to or from port 53 as a flow of its own (its DNS handling; nfdump -o long shows 1-packet records), which is why its count for (a), whose UDP flows are all port 53, is about 5M: the bidirectional TCP half gives the expected 2 x 50,000. argus writes a status record every 5 s of capture time per flow, so it has more records than flows."
	} >"$MD/20-offline.md"
fi

# ---------------------------------------------------------------- namespaces
# setup_ns [QUEUES]: a veth pair veth-a ($NSA) -- veth-b ($NSB)
setup_ns() {
	local q=${1:-1}
	ip netns del $NSA 2>/dev/null || true
	ip netns del $NSB 2>/dev/null || true
	ip netns add $NSA
	ip netns add $NSB
	ip link add veth-a numtxqueues "$q" numrxqueues "$q" netns $NSA type veth peer name veth-b numtxqueues "$q" numrxqueues "$q" netns $NSB
	ip -n $NSA link set veth-a up
	ip -n $NSB link set veth-b up
	ip -n $NSA link set lo up
	ip -n $NSB link set lo up
	sleep 0.5
}

# start_capture KIND LOGNAME: start a capture in $NSB on veth-b, at nice -20 like the senders
start_capture() {
	local kind=$1 name=$2
	case $kind in
	nw1) ip netns exec $NSB nice -n -20 "$SENSOR" --interface veth-b --output jsonl --metrics-listen '' --sensor-id bench >/dev/null 2>"$LOG/$name.err" & ;;
	nw2) ip netns exec $NSB nice -n -20 "$SENSOR" --interface veth-b --fanout 2 --output jsonl --metrics-listen '' --sensor-id bench >/dev/null 2>"$LOG/$name.err" & ;;
	tcpdump) ip netns exec $NSB nice -n -20 tcpdump -i veth-b -n -B 16384 -w /dev/null 2>"$LOG/$name.err" & ;;
	esac
	CAP=$!
	PIDS+=("$CAP")
	# ip netns exec and nice exec: $! is the capture process itself
	for _ in $(seq 50); do
		grep -qE 'msg=capturing|listening on' "$LOG/$name.err" 2>/dev/null && break
		sleep 0.1
	done
	sleep 0.3
}
# stop_capture KIND LOGNAME: SIGINT, wait; sets SEEN DROPS
stop_capture() {
	local kind=$1 name=$2
	kill -INT "$CAP"
	wait "$CAP" || true
	case $kind in
	nw*)
		SEEN=$(grep -o 'msg="capture stopped".*' "$LOG/$name.err" | grep -o ' packets=[0-9]*' | head -1 | cut -d= -f2 || true)
		DROPS=$(grep -o 'msg="capture stopped".*' "$LOG/$name.err" | grep -o 'kernel_drops=[0-9]*' | cut -d= -f2 || true)
		;;
	tcpdump)
		SEEN=$(awk '/packets captured/ {print $1}' "$LOG/$name.err")
		DROPS=$(awk '/dropped by kernel/ {print $1}' "$LOG/$name.err")
		;;
	esac
	SEEN=${SEEN:-0} DROPS=${DROPS:-0}
}

# live_run KIND NAME SENDER...: capture with KIND while SENDER runs in $NSA. With
# WARMUP=1 the sender runs once first, untimed, so that the measured run meets a
# capture whose flow table already holds (and has touched the memory of) the same flows.
# Sets LCPU (capture CPU s), LWALL (sender wall s), LSEND (the sender's own sending time:
# tcpreplay's "sent in", trafgen's time on its CPU; its wall time otherwise), SENT, RATE
# (SENT / LSEND), MBPS, LRSS.
live_run() {
	local kind=$1 name=$2
	shift 2
	start_capture "$kind" "$name"
	local c0 c1 t0 t1
	if ((${WARMUP:-0})); then
		ip netns exec $NSA nice -n -20 "$@" >"$LOG/$name.warmup" 2>&1 || true
		sleep 0.3
	fi
	c0=$(cpu_s "$CAP")
	t0=$(date +%s.%N)
	ip netns exec $NSA nice -n -20 "$@" >"$LOG/$name.send" 2>&1 || true
	t1=$(date +%s.%N)
	sleep 0.3 # let the capture drain its ring
	c1=$(cpu_s "$CAP")
	LRSS=$(rss_mb "$CAP")
	stop_capture "$kind" "$name"
	LCPU=$(calc %.2f "$c1 - $c0")
	LWALL=$(calc %.2f "$t1 - $t0")
	SENT=$(grep -oE 'Actual: [0-9]+ packets' "$LOG/$name.send" | grep -oE '[0-9]+' | head -1 || true)
	SENT=${SENT:-$(tr -d '\r' <"$LOG/$name.send" | awk '/packets outgoing/ {print $1}')}
	# The sending time, not the sender's wall time: tcpreplay -K first loads the file
	# into memory (seconds for the IMIX capture), while the capture idles.
	LSEND=$(grep -oE 'sent in [0-9.]+ seconds' "$LOG/$name.send" | grep -oE '[0-9.]+' | head -1 || true)
	[[ -n $LSEND ]] || LSEND=$(tr -d '\r' <"$LOG/$name.send" | awk '/ sec, .* usec on CPU/ {printf "%.3f", $1 + $3 / 1e6; exit}')
	[[ -n $LSEND ]] && (($(calc %.0f "$LSEND * 1000") > 0)) || LSEND=$LWALL
	RATE=$(calc %.0f "${SENT:-0} / $LSEND")
	MBPS=$(grep -oE '[0-9.]+ Mbps' "$LOG/$name.send" | head -1 | cut -d' ' -f1 || true)
	[[ -n $MBPS ]] || MBPS=$(tr -d '\r' <"$LOG/$name.send" | awk -v w="$LWALL" '/bytes outgoing/ {printf "%.1f", $1 * 8 / 1e6 / w}')
	MBPS=${MBPS:-0}
	echo "$*" >"$LOG/$name.cmd"
}

if has live; then
	say "live capture (veth in namespaces $NSA -> $NSB)"
	setup_ns
	LOOPS=3
	((QUICK)) && LOOPS=1
	REPLAY=(tcpreplay -i veth-a --topspeed -K --loop=$LOOPS "$PL")
	rows=$MD/.live.rows
	: >"$rows"
	for kind in tcpdump nw1 nw2; do
		live_run $kind live-$kind "${REPLAY[@]}"
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$SENT" "$RATE" "$SEEN" "$DROPS" "$LCPU" "$LRSS" "$LWALL" >>"$rows"
	done
	# Fixed rates: 100 kpps (tcpreplay --pps), then 1 Mpps asked of tcpreplay (it sends what it can),
	# then 1 Gbit/s of the mixed capture (tcpreplay --mbps=1000).
	frows=$MD/.fixed.rows
	: >"$frows"
	fixed() { # NAME LABEL SENDER...
		local name=$1 label=$2
		shift 2
		live_run nw1 "live-fixed-$name" "$@"
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$SENT" "$RATE" "$SEEN" "$DROPS" "$LCPU" "$LSEND" "$(calc %.1f "100 * $LCPU / $LSEND")" "$*" "$MBPS" >>"$frows"
	}
	N100=$((DUR * 100000 / 2))
	fixed 100kpps "100 kpps (64 B)" tcpreplay -i veth-a -K --pps=100000 --limit=$N100 "$PL"
	fixed 1mpps "1 Mpps asked (64 B)" tcpreplay -i veth-a -K --pps=1000000 --loop=2 "$PL"
	fixed 1gbit "1 Gbit/s mixed (IMIX-like)" tcpreplay -i veth-a -K --mbps=1000 "$PLM"
	WARMUP=1 fixed 1gbit-warm "1 Gbit/s mixed, replayed a second time (warm table; seen counts both)" tcpreplay -i veth-a -K --mbps=1000 "$PLM"
	# trafgen on one CPU at full speed (its -b rate limiter is slower than tcpreplay here),
	# 64-byte UDP frames over up to 64k source ports (flows)
	cat >"$OUT/trafgen.cfg" <<-'EOF'
		{ eth(da=02:00:00:00:00:02, sa=02:00:00:00:00:01), ipv4(saddr=10.1.0.1, daddr=172.16.0.1, ttl=64), udp(sp=drnd(), dp=53), fill(0x00, 18) }
	EOF
	fixed trafgen "trafgen, 1 CPU, full speed (64 B)" trafgen -i "$OUT/trafgen.cfg" -o veth-a -P 1 -n $((DUR * 200000)) -q
	# 2 Mpps and more of 64-byte frames: tcpreplay and trafgen pay an skb, the qdisc and
	# veth_xmit per frame and stop far below that here, so two XDP generators
	# (bench/cmd/nwxdpgen, BPF_PROG_RUN with live frames) push into a 2-queue veth, one
	# per CPU; the peer's receive path (NAPI, GRO, the AF_PACKET tap) runs on their CPUs.
	setup_ns 2
	ip netns exec $NSB ethtool -K veth-b gro on >/dev/null # NAPI for XDP frames on the peer
	xrows=$MD/.xdp.rows
	: >"$xrows"
	xdp_run() { # NAME LABEL RATE_PER_GENERATOR (0: as fast as they go)
		local name=$1 label=$2 rate=$3 c0 c1 rx0 rx1 secs flows
		start_capture nw1 "$name"
		c0=$(cpu_s "$CAP")
		rx0=$(ip netns exec $NSB cat /sys/class/net/veth-b/statistics/rx_packets)
		local gens=()
		for cpu in 0 1; do
			ip netns exec $NSA nice -n -20 "$XDPGEN" -dev veth-a -peer-netns $NSB -q -duration ${DUR}s -rate "$rate" \
				-cpu $cpu -src 10.20$cpu.0.1 -flows 50000 >"$LOG/$name.send$cpu" 2>&1 &
			gens+=($!)
		done
		wait "${gens[@]}" || true
		rx1=$(ip netns exec $NSB cat /sys/class/net/veth-b/statistics/rx_packets)
		sleep 0.3
		c1=$(cpu_s "$CAP")
		stop_capture nw1 "$name"
		echo "2 x $XDPGEN -dev veth-a -peer-netns $NSB -q -duration ${DUR}s -rate $rate -cpu {0,1} -src 10.20{0,1}.0.1 -flows 50000" >"$LOG/$name.cmd"
		secs=$(grep -ho 'seconds=[0-9.]*' "$LOG/$name.send0" "$LOG/$name.send1" | cut -d= -f2 | sort -n | tail -1)
		SENT=$((rx1 - rx0))
		LCPU=$(calc %.2f "$c1 - $c0")
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$SENT" "$(calc %.0f "$SENT / ${secs:-1}")" "$SEEN" "$DROPS" "$LCPU" "$(calc %.1f "100 * $LCPU / ${secs:-1}")" >>"$xrows"
	}
	xdp_run xdp-max "as fast as 2 generators go" 0
	xdp_run xdp-2m "about 2 Mpps (2 x 1.2 Mpps asked)" 1200000
	{
		echo "## 3. Live capture (veth pair between two namespaces the script creates)"
		echo
		echo "Sender in \`$NSA\` on \`veth-a\`, capture in \`$NSB\` on \`veth-b\`; sender and capture both at \`nice -n -20\` (trafgen/tcpreplay would otherwise starve the capture). CPU is the capture process's user+sys from /proc over the send window (+0.3 s drain); packets and kernel drops are what each tool reports at exit (netwatch: \`capture stopped\` log line, tcpdump: its exit statistics). Load average when done: $(loadavg)."
		echo
		echo "### Same replay, three captures: \`${REPLAY[*]/$OUT\//}\`"
		echo
		echo "| capture | sent | sender rate pps | packets seen | kernel drops | capture CPU s | CPU s per Mpps seen | RSS MB |"
		echo "|---|---|---|---|---|---|---|---|"
		awk -F'\t' 'BEGIN { n["tcpdump"]="tcpdump -w /dev/null (-B 16 MiB)"; n["nw1"]="netwatch, 1 worker"; n["nw2"]="netwatch, --fanout 2" }
			{ printf "| %s | %\047d | %\047d | %\047d | %\047d | %.2f | %.2f | %s |\n", n[$1], $2, $3, $4, $5, $6, ($4 > 0 ? $6 / ($4 / 1e6) : 0), $7 }' "$rows"
		echo
		awk -F'\t' '{ cpm[$1] = ($4 > 0 ? $6 / ($4 / 1e6) : 0); seen[$1] = $4; sent[$1] = $2 }
			END { printf "**Live, Netwatch vs tcpdump on the same replay:** netwatch (1 worker) saw %.1f %% of the packets sent, tcpdump %.1f %%; netwatch used %.2fx the CPU per packet of tcpdump -w /dev/null (with --fanout 2: %.2fx).\n", 100*seen["nw1"]/sent["nw1"], 100*seen["tcpdump"]/sent["tcpdump"], cpm["nw1"]/cpm["tcpdump"], cpm["nw2"]/cpm["tcpdump"] }' "$rows"
		echo
		echo "### Sensor CPU at fixed rates (netwatch, 1 worker)"
		echo
		echo "| asked | sent | achieved pps | achieved Mbit/s (frames) | packets seen | kernel drops | CPU s | send s | CPU % of one core | CPU % scaled to 1 Gbit/s of this traffic | sender |"
		echo "|---|---|---|---|---|---|---|---|---|---|---|"
		awk -F'\t' '{ c = $9; gsub(/\/[^ ]*\//, "", c); printf "| %s | %\047d | %\047d | %.0f | %\047d | %\047d | %.2f | %.2f | %s | %s | `%s` |\n", $1, $2, $3, $10, $4, $5, $6, $7, $8, ($10 > 0 ? sprintf("%.0f", $8 * 1000 / $10) : "?"), c }' "$frows"
		echo
		echo "CPU % of one core is the capture's CPU over the sender's own sending time (*send s*: tcpreplay's \"sent in\", trafgen's time on its CPU). Runs of this script before 2026-11-26 02:10 divided by the sender's wall time, which includes tcpreplay -K loading the file into memory while the capture idles, and so understated the CPU % by up to 2x (the 1 Gbit/s row most). The first 1 Gbit/s row starts a fresh sensor, so every flow is new and its table's memory is touched for the first time (the kernel zeroes those pages: about a quarter of the sensor's CPU in a perf profile); the warm row replays the same capture a second time into the same sensor, closer to a sensor that has run for a while."
		echo
		echo "Scaling to 1 Gbit/s assumes CPU grows linearly with the packet rate of the same traffic (the per-packet cost falls as the rate rises, as the rows show, so this overstates the cost at 1 Gbit/s somewhat). For scale: 1 Gbit/s is 1.488 Mpps of 64-byte frames, about 400 kpps of this IMIX-like mix (295-byte frames on average), 81 kpps of 1514-byte frames."
		echo
		echo "The sender, the veth and the capture share the machine's 2 cores, so no sender reaches 1 Mpps here (tcpreplay about 0.3 Mpps, trafgen on one CPU about 0.6 Mpps): the \"1 Mpps asked\" rows show the rate actually reached."
		echo
		echo "### 64-byte frames at 2 Mpps and more (netwatch, 1 worker)"
		echo
		echo "Two \`nwxdpgen\` processes (bench/cmd/nwxdpgen: an XDP program run by BPF_PROG_RUN with live frames, the technique of xdp-tools' xdp-trafficgen), one per CPU, 50,000 UDP flows each, into a 2-queue veth whose peer has GRO (NAPI) on; the capture is one netwatch worker (\`--interface veth-b\`, no fanout). *Delivered* is veth-b's rx_packets over the run (what the capture socket was offered), *seen* and *kernel drops* are the sensor's own \`capture stopped\` figures (PACKET_STATISTICS, accumulated). The generators and the kernel's receive path use both CPUs; the sensor's CPU is its process's user+sys."
		echo
		echo "| rate | delivered | delivered pps | packets seen | kernel drops | sensor CPU s | sensor CPU % of one core |"
		echo "|---|---|---|---|---|---|---|"
		awk -F'\t' '{ printf "| %s | %\047d | %\047d | %\047d | %\047d | %.2f | %s |\n", $1, $2, $3, $4, $5, $6, $7 }' "$xrows"
		echo
		awk -F'\t' '{ d += $5; if ($3 > best) best = $3; runs = runs (n++ ? ", " : "") sprintf("%.2f Mpps %s drops", $3 / 1e6, $5) }
			END { printf "**Live, 64-byte frames into one worker:** %d kernel drops in all; up to %.2f Mpps delivered (runs: %s).\n", d, best / 1e6, runs }' "$xrows"
		echo
		awk -F'\t' '$1 == "1 Gbit/s mixed (IMIX-like)" { cold = $8; mb = $10; cpp = $6 / ($4 / 1e6) } $1 ~ /^1 Gbit.*warm/ { warm = $8 }
			END { printf "**Live, 1 Gbit/s of the mixed traffic (%.0f Mbit/s reached):** netwatch used %s %% of one core with a fresh sensor, %s %% replayed a second time (warm table; the target is < 5 %%); %.2f CPU s per Mpps vs %.2f at 64-byte topspeed.\n", mb, cold, warm, cpp, cpm }' cpm="$(awk -F'\t' '$1=="nw1" && $4>0 {printf "%.3f", $6/($4/1e6)}' "$rows")" "$frows"
	} >"$MD/30-live.md"
	ip netns del $NSA
	ip netns del $NSB
fi

# ---------------------------------------------------------------- 4. collector
if has collector; then
	say "collector"
	GRPC=127.0.0.1:19090 HTTP=127.0.0.1:18080
	# Memory cap (address space) so that a runaway query cannot take the shared machine down.
	(ulimit -v 12000000 && exec "$COLLECTOR" --grpc-listen $GRPC --http-listen $HTTP --data-dir '' \
		--rate-limit 0 --rate-limit-local 0 --ws-max-clients 300 --log-level warn) >"$LOG/collector.log" 2>&1 &
	COLL=$!
	PIDS+=("$COLL")
	for _ in $(seq 50); do curl -sf "http://$HTTP/api/v1/health" >/dev/null && break; sleep 0.1; done
	# Ingest: 100 sensors fill 1M flows, then keep updating them for DUR seconds.
	c0=$(cpu_s $COLL)
	echo "$NWLOAD ingest -addr $GRPC -sensors 100 -flows 10000 -batch 1000 -duration ${DUR}s" >"$LOG/ingest.cmd"
	$NWLOAD ingest -addr $GRPC -sensors 100 -flows 10000 -batch 1000 -duration ${DUR}s >"$LOG/ingest.json" 2>"$LOG/ingest.err"
	c1=$(cpu_s $COLL)
	ING=$(cat "$LOG/ingest.json")
	jq() { python3 -c "import json,sys; d=json.load(open('$1')); print($2)"; }
	ING_CPU=$(calc %.1f "$c1 - $c0")
	RSS_1M=$(rss_mb $COLL)
	STORED=$(curl -s "http://$HTTP/api/v1/metrics" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("activeFlows"))')
	# REST under 50 clients.
	wrkrun() { # NAME PATH
		echo "wrk -t2 -c50 -d${DUR}s --timeout 60s --latency http://$HTTP$2" >"$LOG/wrk-$1.cmd"
		wrk -t2 -c50 -d${DUR}s --timeout 60s --latency "http://$HTTP$2" >"$LOG/wrk-$1.out" 2>&1 || true
	}
	wc0=$(cpu_s $COLL)
	wrkrun flows /api/v1/flows
	wc1=$(cpu_s $COLL)
	wrkrun top /api/v1/top-talkers
	wc2=$(cpu_s $COLL)
	RSS_AFTER_WRK=$(rss_mb $COLL)
	HWM_WRK=$(hwm_mb $COLL)
	wrkrow() { # NAME LABEL
		awk -v l="$2" '
			/^ +50%/ { p50 = $2 } /^ +90%/ { p90 = $2 } /^ +99%/ { p99 = $2 }
			/requests in/ { n = $1 } /Requests\/sec/ { rps = $2 } /Non-2xx/ { bad = $NF } /Socket errors/ { err = $0 }
			END { printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", l, p50, p90, p99, rps, n, (bad == "" ? 0 : bad), (err == "" ? "none" : err) }' "$LOG/wrk-$1.out"
	}
	# Requests wrk gave up on may still be running: wait until the collector is idle.
	for _ in $(seq 120); do
		i0=$(cpu_s $COLL)
		sleep 1
		(($(calc %.0f "100 * ($(cpu_s $COLL) - $i0)") < 20)) && break
	done
	# WebSocket fan-out: a trickle of ingest so that every push has changed flows.
	$NWLOAD ingest -addr $GRPC -sensors 10 -flows 1000 -batch 100 -rate 5000 -id trickle -duration $((3 * DUR + 30))s \
		>"$LOG/trickle.json" 2>"$LOG/trickle.err" &
	TRICKLE=$!
	PIDS+=("$TRICKLE")
	sleep 3
	b0=$(cpu_s $COLL)
	sleep $DUR
	b1=$(cpu_s $COLL)
	WS_BASE_CPU=$(calc %.1f "100 * ($b1 - $b0) / $DUR")
	WS_BASE_RSS=$(rss_mb $COLL)
	rm -f "$OUT/ws.ready"
	echo "$NWLOAD ws -url ws://$HTTP/api/v1/ws -clients 200 -duration ${DUR}s -subscribe '{}'" >"$LOG/ws.cmd"
	NWLOAD_READY_FILE=$OUT/ws.ready $NWLOAD ws -url "ws://$HTTP/api/v1/ws" -clients 200 -duration ${DUR}s -subscribe '{}' >"$LOG/ws.json" 2>"$LOG/ws.err" &
	WSP=$!
	for _ in $(seq 300); do [[ -e $OUT/ws.ready ]] && break; sleep 0.1; done
	s0=$(cpu_s $COLL)
	ts0=$(date +%s.%N)
	wait $WSP || true
	s1=$(cpu_s $COLL)
	ts1=$(date +%s.%N)
	WS_CPU=$(calc %.1f "100 * ($s1 - $s0) / ($ts1 - $ts0)")
	WS_RSS=$(rss_mb $COLL)
	kill $TRICKLE 2>/dev/null || true
	wait $TRICKLE 2>/dev/null || true
	kill $COLL
	wait $COLL 2>/dev/null || true

	# End to end: packet into the veth -> sensor -> collector -> WebSocket push.
	setup_ns
	E2E_GRPC=127.0.0.1:29090 E2E_HTTP=127.0.0.1:28080
	ip netns exec $NSB "$COLLECTOR" --grpc-listen $E2E_GRPC --http-listen $E2E_HTTP --data-dir '' --log-level warn >"$LOG/e2e-collector.log" 2>&1 &
	E2EC=$!
	PIDS+=("$E2EC")
	sleep 1
	ip netns exec $NSB "$SENSOR" --interface veth-b --collector $E2E_GRPC --metrics-listen '' --sensor-id e2e >"$LOG/e2e-sensor.log" 2>&1 &
	E2ES=$!
	PIDS+=("$E2ES")
	sleep 2
	N_E2E=15
	((QUICK)) && N_E2E=5
	echo "ip netns exec $NSB $NWLOAD e2e -url ws://$E2E_HTTP/api/v1/ws -netns /var/run/netns/$NSA -ifname veth-a -n $N_E2E" >"$LOG/e2e.cmd"
	ip netns exec $NSB "$NWLOAD" e2e -url "ws://$E2E_HTTP/api/v1/ws" -netns /var/run/netns/$NSA -ifname veth-a -n $N_E2E >"$LOG/e2e.json" 2>"$LOG/e2e.err" || true
	kill $E2ES $E2EC 2>/dev/null || true
	wait $E2ES $E2EC 2>/dev/null || true
	ip netns del $NSA
	ip netns del $NSB
	{
		echo "## 4. Collector"
		echo
		echo "\`netwatch-collector --data-dir '' --rate-limit 0 --rate-limit-local 0 --ws-max-clients 300\` (memory only, API rate limits off so that wrk measures the server, not the limiter), run under \`ulimit -v 12000000\`. Load generator: \`bench/cmd/nwload\` (netwatch.v1 SensorService over loopback gRPC, batches of 1000 deltas, up to 8 unacknowledged batches per sensor, as a sensor's spool does). Flow shape: each of 100 sensors has 10,000 flows between 500 clients of its own and 2,000 servers shared by all (50,000 + 2,000 hosts). Load average when done: $(loadavg)."
		echo
		echo "### Ingest, 100 concurrent sensors"
		echo
		echo '```'
		cat "$LOG/ingest.cmd"
		echo "$ING"
		echo '```'
		echo
		python3 - "$LOG/ingest.json" "$ING_CPU" "$STORED" "$RSS_1M" <<-'EOF'
			import json, sys
			d = json.load(open(sys.argv[1]))
			print(f"| phase | flow deltas/s |\n|---|---|\n| fill: 1M new flows | {d['fill_deltas_per_s']:,.0f} |\n| updates of stored flows for {d['seconds']:.0f} s | {d['deltas_per_s']:,.0f} |")
			print()
			total = d['deltas'] + d['flows_stored']
			print(f"Collector CPU over the whole ingest: {sys.argv[2]} s for about {total/1e6:.1f} M deltas (≈ {float(sys.argv[2])/ (total/1e6):.2f} CPU s per million deltas). Flows stored afterwards (/api/v1/metrics activeFlows): {sys.argv[3]}; collector RSS {sys.argv[4]} MB.")
		EOF
		echo
		echo "### REST latency, 50 concurrent clients (wrk, keep-alive), ${STORED} flows stored, no ingest running"
		echo
		echo "| endpoint | p50 | p90 | p99 | requests/s | requests | non-2xx | socket errors |"
		echo "|---|---|---|---|---|---|---|---|"
		wrkrow flows "GET /api/v1/flows (default: 100 newest)"
		wrkrow top "GET /api/v1/top-talkers (default: 10 hosts, 5 min)"
		echo
		p50() { awk '/^ +50%/ { print $2 }' "$LOG/wrk-$1.out"; }
		echo "**REST at 1M flows, 50 clients:** /api/v1/flows p50 $(p50 flows), /api/v1/top-talkers p50 $(p50 top) (wrk; both CPU-bound on the 2 cores, so the latency is mostly queueing: throughput is the requests/s column)."
		echo
		echo "Collector CPU: $(calc %.1f "$wc1 - $wc0") s during the flows run, $(calc %.1f "$wc2 - $wc1") s during the top-talkers run (${DUR} s each; 2 cores = $((2 * DUR)) s at most). RSS after both: ${RSS_AFTER_WRK} MB (peak so far ${HWM_WRK} MB)."
		echo
		echo "### WebSocket fan-out (1 s pushes), 200 clients subscribed to all flows, a trickle of 5,000 deltas/s ingest"
		echo
		echo '```'
		cat "$LOG/ws.cmd"
		cat "$LOG/ws.json"
		echo '```'
		echo
		echo "| | collector CPU % of one core | collector RSS MB |"
		echo "|---|---|---|"
		echo "| no WebSocket client (baseline, same trickle) | $WS_BASE_CPU | $WS_BASE_RSS |"
		echo "| 200 clients | $WS_CPU | $WS_RSS |"
		echo
		echo "**Collector, 200 WebSocket clients:** $(calc %.1f "($WS_CPU + 0.001) / ($WS_BASE_CPU + 0.001)")x the CPU of the same collector and ingest without clients ($WS_CPU % vs $WS_BASE_CPU % of one core)."
		echo
		echo "RSS caveat: the baseline comes right after the wrk runs, and the Go runtime keeps returning the memory those queries used to the OS during these windows, so the two RSS figures do not isolate what the WebSocket clients cost; the CPU figures do."
		echo
		echo "### End to end: packet on the wire -> flow on the WebSocket"
		echo
		echo "A fresh collector and a live sensor (\`--interface veth-b --collector\`, default --export-interval 1s) in \`$NSB\`; \`nwload e2e\` subscribes to \`src_ip=192.0.2.77\` on the WebSocket, then $N_E2E times sends one UDP frame of a new flow into \`veth-a\` (an AF_PACKET socket opened inside \`$NSA\`) at a random phase and times until the flow arrives in a \"flows\" push. The sensor exports every 1 s and the collector pushes every 1 s, so about 0–2 s is the design's expectation."
		echo
		echo '```'
		cat "$LOG/e2e.cmd"
		cat "$LOG/e2e.json" "$LOG/e2e.err"
		echo '```'
		echo
		python3 - "$LOG/e2e.json" <<-'EOF' || echo "(e2e produced no result: see the log above)"
			import json, sys
			d = json.load(open(sys.argv[1]))
			print(f"**End to end, packet on the veth to its flow on the WebSocket:** p50 {d['p50_ms']:.0f} ms, p90 {d['p90_ms']:.0f} ms, max {d['max_ms']:.0f} ms over {d['samples']} samples ({d['missed']} missed), with the default 1 s export and 1 s push intervals.")
		EOF
	} >"$MD/40-collector.md"
fi

# ---------------------------------------------------------------- 5. restart
if has restart; then
	say "restart"
	# Exec to /readyz 200 against the stored flows (bench/restart.sh); 3M flows take
	# about 1.5 GB in the collector, 1000 sensors a connection each.
	RSIZES=(100000x1 100000x100 100000x1000 1000000x1 1000000x100 1000000x1000 3000000x100)
	((QUICK)) && RSIZES=(100000x1 100000x100)
	echo "bench/restart.sh $COLLECTOR $NWLOAD $OUT/restart ${RSIZES[*]}" >"$LOG/restart.cmd"
	bench/restart.sh "$COLLECTOR" "$NWLOAD" "$OUT/restart" "${RSIZES[@]}" >"$MD/47-restart.md" 2>"$LOG/restart.err" ||
		echo "FAILED: restart (see $LOG/restart.err)" >&2
fi

# ---------------------------------------------------------------- Go benchmark: heap per flow
if has gobench; then
	say "go benchmark: sensor decode + aggregate"
	# 1M generated 64-byte frames over 100k flows (and 10k: a table that fits in the
	# caches); one op is one packet, decoded and added to the flow table in batches as
	# the capture loop and --read do, with an export per second of packet time.
	SBENCH="cd sensor && go test -run '^\$' -bench 'BenchmarkDecode\$|DecodeAggregateBatch' -benchmem -count 5 -benchtime 2s ./internal/decode/ ./internal/flow/"
	echo "$SBENCH" >"$LOG/sensor-bench.cmd"
	(cd sensor && go test -run '^$' -bench 'BenchmarkDecode$|DecodeAggregateBatch' -benchmem -count 5 -benchtime 2s ./internal/decode/ ./internal/flow/) >"$LOG/sensor-bench.out" 2>&1 || true
	{
		echo "### Sensor hot path: decode and decode + aggregate (Go benchmarks, ns per packet)"
		echo
		echo '```'
		cat "$LOG/sensor-bench.cmd"
		grep -E '^Benchmark' "$LOG/sensor-bench.out" || tail -5 "$LOG/sensor-bench.out"
		echo '```'
		echo
		grep -E '^BenchmarkDecodeAggregateBatch/flows=100000' "$LOG/sensor-bench.out" |
			awk '{ for (i = 1; i < NF; i++) { if ($(i+1) == "ns/packet") ns = $i; if ($(i+1) == "allocs/op") a = $i }; print ns, a }' | sort -n |
			awk '{ v[++n] = $1; if ($2 > a) a = $2 }
				END { if (n) printf "**Sensor decode + aggregate, 64-byte frames over 100k flows:** median %.1f ns/packet (%.1f-%.1f over %d runs; target <= 50), %d allocs/packet.\n", v[int((n+1)/2)], v[1], v[n], n, a }'
	} >"$MD/45-sensor-bench.md"
	say "go benchmark: heap bytes per stored flow"
	echo "cd collector && go test -run '^\$' -bench 'HeapPerFlow' -benchtime 1x ./internal/store/" >"$LOG/heap.cmd"
	(cd collector && go test -run '^$' -bench 'HeapPerFlow' -benchtime 1x ./internal/store/) >"$LOG/heap.out" 2>&1 || true
	{
		echo "### Heap bytes per stored flow (Go benchmark, 1,000,000 flows)"
		echo
		echo '```'
		cat "$LOG/heap.cmd"
		grep -E '^Benchmark' "$LOG/heap.out" || tail -5 "$LOG/heap.out"
		echo '```'
	} >"$MD/50-heap.md"
	say "go benchmark: restoring a snapshot into the store"
	echo "cd collector && go test -run '^\$' -bench 'BenchmarkRestore' -benchtime 1x ./internal/store/" >"$LOG/restore.cmd"
	(cd collector && go test -run '^$' -bench 'BenchmarkRestore' -benchtime 1x ./internal/store/) >"$LOG/restore.out" 2>&1 || true
	{
		echo "### Restoring a snapshot into the store (Go benchmark, 100 sensors, in the order a snapshot holds them)"
		echo
		echo "ns/flow stays flat from 10k to 1M flows when restoring is linear (it was 5.6 µs at 100k and 362 µs at 1M when each flow was inserted in place)."
		echo
		echo '```'
		cat "$LOG/restore.cmd"
		grep -E '^Benchmark' "$LOG/restore.out" || tail -5 "$LOG/restore.out"
		echo '```'
	} >"$MD/51-restore.md"
fi

# ---------------------------------------------------------------- RESULTS.md
T1=$(date +%s)
{
	echo "# Netwatch benchmark results"
	echo
	echo "Written by \`make bench\` (bench/run.sh) on $(date -u '+%Y-%m-%d %H:%M UTC'); sections run: $SECTIONS$( ((QUICK)) && echo ' (QUICK=1: smoke test, small inputs — not figures to quote)'); whole run $((T1 - T0)) s. Load average at the end: $(loadavg). This is a shared 2-core VM with other builds running: compare the ratios (both sides measured in this run), not the absolute numbers. Raw logs and the exact command of every row: bench/out/logs/."
	echo
	echo "## Headline (ratios measured side by side in this run)"
	echo
	grep -h '^\*\*' "$MD"/[0-9]*.md | sed 's/^/- /' || true
	echo
	for f in "$MD"/[0-9]*.md; do
		cat "$f"
		echo
	done
} >"$ROOT/bench/RESULTS.md"
say "wrote bench/RESULTS.md in $((T1 - T0)) s"
