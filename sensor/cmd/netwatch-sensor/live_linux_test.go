package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/common/syncbuf"
	"netwatch.dev/sensor/internal/testnet"
)

// jsonFlow is what the test reads back of a --output jsonl line.
type jsonFlow struct {
	SrcIP, DstIP             string
	SrcPort, DstPort         int
	Protocol                 int
	Packets, Bytes           uint64
	SrcPackets, SrcBytes     uint64
	DstPackets, DstBytes     uint64
	Status, EndReason        string
	SrcTCPFlags, DstTCPFlags string
	FirstSeen, LastSeen      time.Time
}

// TestLiveSensorCountsRealTraffic runs the whole sensor (capture → decode → flow
// table → JSON lines) on the host end of a veth pair and checks the flows against
// traffic the test sends through it: UDP and ICMP exactly, TCP within the bounds GSO
// allows (veth hands the capture super-frames, counted by their IP length).
func TestLiveSensorCountsRealTraffic(t *testing.T) {
	tn := testnet.New(t)
	const udpPort, tcpPort, udpCount, udpSize, pings, tcpBytes = 7007, 7008, 25, 200, 5, 200_000
	tn.UDPEcho(t, tn.PeerIP, udpPort)

	var stdout, stderr syncbuf.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--interface", tn.Host, "--output", "jsonl", "--metrics-listen", "",
			"--export-interval", "200ms", "--sensor-id", "live-test"}, &stdout, &stderr)
	}()
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "msg=capturing") },
		5*time.Second, 10*time.Millisecond, "sensor did not start: %s", stderr.String())

	udpSrc := testnet.UDPExchange(t, tn.PeerIP, udpPort, udpCount, udpSize)
	testnet.Ping(t, tn.PeerIP, pings)
	tn.TCPExchange(t, tcpPort, tcpBytes)
	time.Sleep(300 * time.Millisecond) // a block timeout and an export interval
	cancel()
	select {
	case code := <-done:
		require.Equal(t, 0, code, "stderr: %s", stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("sensor did not stop")
	}

	flows := map[string]jsonFlow{}
	sc := bufio.NewScanner(strings.NewReader(stdout.String()))
	for sc.Scan() {
		var f jsonFlow
		require.NoError(t, json.Unmarshal(sc.Bytes(), &f), sc.Text())
		if f.Protocol == 58 || f.Protocol == 2 { // IPv6 neighbour discovery, IGMP: the kernel's own chatter
			continue
		}
		key := netip.MustParseAddr(f.SrcIP).String() + ">" + f.DstIP + "/" + map[int]string{1: "icmp", 6: "tcp", 17: "udp"}[f.Protocol]
		prev := flows[key]
		f.Packets += prev.Packets // active-timeout records of one flow add up
		f.SrcPackets += prev.SrcPackets
		f.DstPackets += prev.DstPackets
		f.SrcBytes += prev.SrcBytes
		f.DstBytes += prev.DstBytes
		flows[key] = f
	}
	host, peer := tn.HostIP.String(), tn.PeerIP.String()

	udp, ok := flows[host+">"+peer+"/udp"]
	require.True(t, ok, "no UDP flow in %v", flows)
	assert.Equal(t, udpSrc, udp.SrcPort)
	assert.Equal(t, udpPort, udp.DstPort)
	assert.Equal(t, uint64(udpCount), udp.SrcPackets)
	assert.Equal(t, uint64(udpCount), udp.DstPackets)
	assert.Equal(t, uint64(udpCount*(20+8+udpSize)), udp.SrcBytes, "IPv4 total length per datagram")
	assert.Equal(t, uint64(udpCount*(20+8+udpSize)), udp.DstBytes)

	icmp, ok := flows[host+">"+peer+"/icmp"]
	require.True(t, ok, "no ICMP flow in %v", flows)
	assert.Equal(t, uint64(pings), icmp.SrcPackets)
	assert.Equal(t, uint64(pings), icmp.DstPackets)
	assert.Equal(t, 0, icmp.SrcPort, "ICMP flows have ports 0")

	tcp, ok := flows[host+">"+peer+"/tcp"]
	require.True(t, ok, "no TCP flow in %v", flows)
	assert.Equal(t, tcpPort, tcp.DstPort)
	assert.GreaterOrEqual(t, tcp.SrcBytes, uint64(tcpBytes), "payload plus headers")
	assert.Less(t, tcp.SrcBytes, uint64(tcpBytes)+tcp.SrcPackets*80, "at most IP+TCP headers per packet on top of the payload")
	assert.Contains(t, tcp.SrcTCPFlags, "S")
	assert.Contains(t, tcp.DstTCPFlags, "A")
	assert.Equal(t, "closed", tcp.Status, "FIN seen both ways")

	log := stderr.String()
	assert.Contains(t, log, "kernel_drops=0", "tp_drops is reported")
	assert.Regexp(t, `kernel_packets=[1-9]`, log)
}

// TestLiveSensorLoopbackCountsOnce runs the whole sensor on lo inside the
// test namespace: the loopback device hands packet sockets every packet
// twice (outgoing, then incoming), and a flow must still count each datagram
// once, as many as were sent and as tcpdump -i lo captures.
func TestLiveSensorLoopbackCountsOnce(t *testing.T) {
	tn := testnet.New(t)
	const port, count, size = 7055, 50, 120
	filter := fmt.Sprintf("udp port %d", port)
	dump := tn.StartTcpdump(t, true, "lo", true, filter)

	var stdout, stderr syncbuf.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	code := -1
	done := tn.GoInNS(func() {
		code = run(ctx, []string{"--interface", "lo", "--bpf", filter, "--output", "jsonl", "--metrics-listen", "",
			"--export-interval", "200ms", "--sensor-id", "live-lo"}, &stdout, &stderr)
	})
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "msg=capturing") },
		5*time.Second, 10*time.Millisecond, "sensor did not start: %s", stderr.String())

	var recv net.PacketConn
	var send net.Conn
	var err error
	tn.InNS(t, func() {
		if recv, err = net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			send, err = net.Dial("udp4", fmt.Sprintf("127.0.0.1:%d", port))
		}
	})
	require.NoError(t, err)
	defer recv.Close()
	defer send.Close()
	buf := make([]byte, size+1)
	for i := 0; i < count; i++ {
		_, err := send.Write(make([]byte, size))
		require.NoError(t, err)
		recv.SetReadDeadline(time.Now().Add(2 * time.Second))
		k, _, err := recv.ReadFrom(buf)
		require.NoError(t, err, "datagram %d over lo", i)
		require.Equal(t, size, k)
	}
	tcpdump := dump.Stop(t, count)
	time.Sleep(300 * time.Millisecond) // a block timeout and an export interval
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
		require.Equal(t, 0, code, "stderr: %s", stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("sensor did not stop")
	}

	var packets, srcPackets, bytes uint64
	sc := bufio.NewScanner(strings.NewReader(stdout.String()))
	for sc.Scan() {
		var f jsonFlow
		require.NoError(t, json.Unmarshal(sc.Bytes(), &f), sc.Text())
		require.Equal(t, 17, f.Protocol, "only UDP passes the filter: %s", sc.Text())
		require.Equal(t, port, f.DstPort, "one flow, to the listener: %s", sc.Text())
		packets += f.Packets
		srcPackets += f.SrcPackets
		bytes += f.SrcBytes
	}
	assert.Equal(t, count, tcpdump, "tcpdump -i lo")
	assert.Equal(t, uint64(count), packets, "flow packets over lo: want one per datagram sent (stderr: %s)", stderr.String())
	assert.Equal(t, uint64(count), srcPackets)
	assert.Equal(t, uint64(count*(20+8+size)), bytes, "IPv4 total length per datagram")
}
