// Command nwload drives netwatch-collector for bench/run.sh. Each mode prints
// one JSON object on stdout.
//
//	nwload ingest -addr 127.0.0.1:19090 -sensors 100 -flows 10000 -duration 15s
//	    100 synthetic sensors speaking netwatch.v1 SensorService: each first sends
//	    its -flows distinct flows (so 100 x 10000 = 1M flows get stored), then keeps
//	    sending updates of them; reports acknowledged flow deltas per second.
//	nwload ws -url ws://127.0.0.1:18080/api/v1/ws -clients 200 -duration 20s
//	    WebSocket clients subscribed to every flow; reports messages and bytes received.
//	nwload e2e -url ws://... -netns /var/run/netns/nwb-a -ifname veth-a -n 15
//	    sends one UDP frame of a new flow into the veth (from inside the sender
//	    namespace, through an AF_PACKET socket) and times until that flow appears in
//	    a WebSocket "flows" push.
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: nwload ingest|ws|e2e [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "ingest":
		err = ingest(os.Args[2:])
	case "ws":
		err = wsClients(os.Args[2:])
	case "e2e":
		err = e2e(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nwload:", err)
		os.Exit(1)
	}
}

func emit(v any) {
	b, _ := json.Marshal(v)
	fmt.Println(string(b))
}

// ---- ingest ----

func ingest(args []string) error {
	fs := flag.NewFlagSet("ingest", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:19090", "collector gRPC address")
	sensors := fs.Int("sensors", 100, "concurrent sensors")
	flows := fs.Int("flows", 10000, "distinct flows per sensor")
	per := fs.Int("batch", 1000, "deltas per batch")
	window := fs.Int("window", 8, "batches in flight per sensor (unacknowledged)")
	dur := fs.Duration("duration", 15*time.Second, "how long to send after the initial fill")
	rate := fs.Float64("rate", 0, "total deltas per second (0: as fast as acks allow)")
	prefix := fs.String("id", "bench", "sensor id prefix")
	shape := fs.String("shape", "hosts", "hosts: 50,000 clients and 2,000 servers over 100 sensors; unique: a host pair per flow")
	fs.Parse(args)

	var acked, fillAcked atomic.Int64
	var fillDone sync.WaitGroup
	fillDone.Add(*sensors)
	start := time.Now()
	stop := make(chan struct{})
	errc := make(chan error, *sensors)
	var perSensorInterval time.Duration
	if *rate > 0 {
		perSensorInterval = time.Duration(float64(time.Second) * float64(*per) * float64(*sensors) / *rate)
	}
	for s := range *sensors {
		go func() {
			errc <- runSensor(*addr, *shape, fmt.Sprintf("%s-%03d", *prefix, s), s, *flows, *per, *window, perSensorInterval, &acked, &fillAcked, &fillDone, stop)
		}()
	}
	fillErr := make(chan struct{})
	go func() { fillDone.Wait(); close(fillErr) }()
	select {
	case <-fillErr:
	case err := <-errc:
		return fmt.Errorf("during the fill: %w", err)
	}
	fillEl := time.Since(start)
	measureStart, measureAcked := time.Now(), acked.Load()
	time.Sleep(*dur)
	el := time.Since(measureStart)
	n := acked.Load() - measureAcked
	close(stop)
	for range *sensors {
		if err := <-errc; err != nil {
			fmt.Fprintln(os.Stderr, "nwload: sensor:", err)
		}
	}
	emit(map[string]any{
		"sensors": *sensors, "shape": *shape, "flows_stored": *sensors * *flows, "batch": *per,
		"fill_seconds": fillEl.Seconds(), "fill_deltas_per_s": float64(fillAcked.Load()) / fillEl.Seconds(),
		"deltas": n, "seconds": el.Seconds(), "deltas_per_s": float64(n) / el.Seconds(),
	})
	return nil
}

// flowKey is flow j of a sensor. Shape "hosts" (the default): each sensor's
// flows run between 500 client hosts of its own (10.S.x.y) and 2000 servers
// shared by all sensors (172.16.x.y), as in an office or data-centre network:
// 100 sensors give 50,000 clients and 2,000 servers. Shape "unique": every flow
// has its own client and nearly its own server (scan-like; about 1.4M hosts).
func flowKey(shape string, sensor, j int) *netwatchv1.FlowKey {
	proto := uint32(6)
	if j%3 == 2 {
		proto = 17
	}
	dport := []uint32{443, 80, 53, 22}[j%4]
	if shape == "unique" {
		src := netip.AddrFrom4([4]byte{10, byte(sensor), byte(j >> 8), byte(j)})
		dst := netip.AddrFrom4([4]byte{172, 16 + byte(j%16), byte(sensor), byte(j % 251)})
		return &netwatchv1.FlowKey{Protocol: proto, SrcAddr: src.AsSlice(), SrcPort: uint32(1024 + j%60000), DstAddr: dst.AsSlice(), DstPort: dport}
	}
	c, srv := j%500, (j*7+sensor)%2000
	src := netip.AddrFrom4([4]byte{10, byte(sensor), byte(c >> 8), byte(c)})
	dst := netip.AddrFrom4([4]byte{172, 16, byte(srv >> 8), byte(srv)})
	return &netwatchv1.FlowKey{Protocol: proto, SrcAddr: src.AsSlice(), SrcPort: uint32(1024 + j/500), DstAddr: dst.AsSlice(), DstPort: dport}
}

func runSensor(addr, shape, id string, sensor, flows, per, window int, interval time.Duration, acked, fillAcked *atomic.Int64, fillDone *sync.WaitGroup, stop <-chan struct{}) error {
	var once sync.Once
	filled := func() { once.Do(fillDone.Done) }
	defer filled() // a sensor that fails must not hold up the others
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := netwatchv1.NewSensorServiceClient(conn).Ingest(ctx)
	if err != nil {
		return err
	}
	boot := fmt.Sprintf("%x", rand.Uint64())
	if err := st.Send(&netwatchv1.IngestRequest{Message: &netwatchv1.IngestRequest_Hello{Hello: &netwatchv1.SensorHello{
		SensorId: id, Hostname: id, Interface: "bench", Version: "nwload", BootId: boot, ExportIntervalMs: 1000, StartedAt: timestamppb.Now()}}}); err != nil {
		return err
	}
	if _, err := st.Recv(); err != nil {
		return fmt.Errorf("welcome: %w", err)
	}
	// Pre-built deltas (keys stay, counters and times are rewritten per batch).
	keys := make([]*netwatchv1.FlowKey, flows)
	for j := range keys {
		keys[j] = flowKey(shape, sensor, j)
	}
	fillBatches := (flows + per - 1) / per
	sem := make(chan struct{}, window)
	sent := make(chan int, 1<<16) // sizes of batches in flight, in order
	recvErr := make(chan error, 1)
	go func() {
		seq := 0
		for {
			r, err := st.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			if r.GetAck() == nil {
				continue
			}
			seq++
			n := <-sent
			acked.Add(int64(n))
			if seq <= fillBatches {
				fillAcked.Add(int64(n))
				if seq == fillBatches {
					filled()
				}
			}
			<-sem
		}
	}()
	first := timestamppb.New(time.Now().Add(-time.Second))
	next := 0
	tick := time.Now()
	for seq := uint64(1); ; seq++ {
		select {
		case <-stop:
			st.CloseSend()
			return nil
		case err := <-recvErr:
			return err
		case sem <- struct{}{}:
		}
		if interval > 0 && int(seq) > fillBatches {
			tick = tick.Add(interval)
			if d := time.Until(tick); d > 0 {
				time.Sleep(d)
			}
		}
		now := timestamppb.Now()
		b := &netwatchv1.FlowBatch{Sequence: seq, CreatedAt: now, Deltas: make([]*netwatchv1.FlowDelta, 0, per)}
		for range per {
			j := next % flows
			next++
			b.Deltas = append(b.Deltas, &netwatchv1.FlowDelta{Key: keys[j], SrcPackets: 3, SrcBytes: 180, DstPackets: 2, DstBytes: 1200,
				FirstSeen: first, LastSeen: now, SrcTcpFlags: 0x18, DstTcpFlags: 0x18, Status: netwatchv1.FlowStatus_FLOW_STATUS_ACTIVE})
			if int(seq) <= fillBatches && next == flows {
				break
			}
		}
		sent <- len(b.Deltas)
		b.Stats = &netwatchv1.SensorStats{Packets: uint64(next) * 5, Interface: "bench", InterfaceStatus: netwatchv1.InterfaceStatus_INTERFACE_STATUS_UP}
		if err := st.Send(&netwatchv1.IngestRequest{Message: &netwatchv1.IngestRequest_Batch{Batch: b}}); err != nil {
			return fmt.Errorf("send: %w", err)
		}
	}
}

// ---- ws ----

func dialWS(ctx context.Context, url string) (*websocket.Conn, error) {
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"netwatch.v1"}})
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(64 << 20)
	return c, nil
}

func wsClients(args []string) error {
	fs := flag.NewFlagSet("ws", flag.ExitOnError)
	url := fs.String("url", "ws://127.0.0.1:18080/api/v1/ws", "WebSocket URL")
	clients := fs.Int("clients", 200, "concurrent clients")
	dur := fs.Duration("duration", 20*time.Second, "how long to stay connected")
	sub := fs.String("subscribe", `{}`, "flow filter to subscribe to (JSON object; empty string: do not subscribe)")
	fs.Parse(args)
	ctx, cancel := context.WithTimeout(context.Background(), *dur+30*time.Second)
	defer cancel()
	var connected, failed, msgs, bytes, flowsMsgs, lost atomic.Int64
	var wg sync.WaitGroup
	var readyWG sync.WaitGroup
	readyWG.Add(*clients)
	var measuring atomic.Bool
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	var errOnce sync.Once
	var firstErr string
	for range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dialWS(ctx, *url)
			if err != nil {
				failed.Add(1)
				errOnce.Do(func() { firstErr = err.Error() })
				readyWG.Done()
				return
			}
			defer c.CloseNow()
			if *sub != "" {
				c.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","filter":`+*sub+`}`))
			}
			connected.Add(1)
			readyWG.Done()
			// Read from the start (a client that does not read loses pushes), count
			// only inside the measuring window.
			for {
				_, b, err := c.Read(rctx)
				if err != nil {
					return
				}
				if !measuring.Load() {
					continue
				}
				msgs.Add(1)
				bytes.Add(int64(len(b)))
				var m struct {
					Type string `json:"type"`
				}
				if json.Unmarshal(b, &m) == nil {
					switch m.Type {
					case "flows":
						flowsMsgs.Add(1)
					case "lost":
						lost.Add(1)
					}
				}
			}
		}()
	}
	readyWG.Wait()
	fmt.Fprintf(os.Stderr, "nwload ws: %d connected, %d failed; measuring for %v\n", connected.Load(), failed.Load(), *dur)
	time.Sleep(2 * time.Second) // let every client get its first pushes
	measuring.Store(true)
	if f := os.Getenv("NWLOAD_READY_FILE"); f != "" {
		os.WriteFile(f, []byte("ready\n"), 0o644)
	}
	time.Sleep(*dur)
	measuring.Store(false)
	rcancel()
	wg.Wait()
	s := dur.Seconds()
	emit(map[string]any{"clients": *clients, "connected": connected.Load(), "failed": failed.Load(), "first_error": firstErr,
		"seconds": s, "messages": msgs.Load(), "messages_per_client_per_s": float64(msgs.Load()) / max(1, float64(connected.Load())) / s,
		"flows_messages": flowsMsgs.Load(), "lost_messages": lost.Load(), "bytes_per_s": float64(bytes.Load()) / s})
	return nil
}

// ---- e2e ----

// rawSocketIn opens an AF_PACKET socket bound to ifname inside the network
// namespace at nsPath. The socket stays in that namespace; the thread that
// entered it is discarded (its goroutine exits while locked to it).
func rawSocketIn(nsPath, ifname string) (int, error) {
	type res struct {
		fd  int
		err error
	}
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		ns, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- res{-1, err}
			return
		}
		defer unix.Close(ns)
		if err := unix.Setns(ns, unix.CLONE_NEWNET); err != nil {
			ch <- res{-1, fmt.Errorf("setns %s: %w", nsPath, err)}
			return
		}
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			ch <- res{-1, err}
			return
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			ch <- res{-1, err}
			return
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			ch <- res{-1, err}
			return
		}
		ch <- res{fd, nil}
	}()
	r := <-ch
	return r.fd, r.err
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func udpFrame(src, dst [4]byte, sport, dport uint16) []byte {
	f := make([]byte, 14+20+8+18)
	copy(f[0:6], []byte{0x02, 0, 0, 0, 0, 0x02})
	copy(f[6:12], []byte{0x02, 0, 0, 0, 0, 0x01})
	binary.BigEndian.PutUint16(f[12:14], 0x0800)
	ip := f[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], uint16(len(ip)))
	ip[8], ip[9] = 64, 17
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(ip[10:12], ^uint16(sum))
	binary.BigEndian.PutUint16(ip[20:22], sport)
	binary.BigEndian.PutUint16(ip[22:24], dport)
	binary.BigEndian.PutUint16(ip[24:26], uint16(len(ip)-20))
	return f
}

func e2e(args []string) error {
	fs := flag.NewFlagSet("e2e", flag.ExitOnError)
	url := fs.String("url", "ws://127.0.0.1:18080/api/v1/ws", "WebSocket URL")
	nsPath := fs.String("netns", "/var/run/netns/nwb-a", "network namespace of the sending end")
	ifname := fs.String("ifname", "veth-a", "interface to send on (inside -netns)")
	n := fs.Int("n", 15, "samples")
	timeout := fs.Duration("timeout", 10*time.Second, "give up on one sample after this long")
	fs.Parse(args)
	fd, err := rawSocketIn(*nsPath, *ifname)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ctx := context.Background()
	c, err := dialWS(ctx, *url)
	if err != nil {
		return fmt.Errorf("websocket: %w", err)
	}
	defer c.CloseNow()
	src, dst := [4]byte{192, 0, 2, 77}, [4]byte{198, 51, 100, 1}
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","filter":{"src_ip":"192.0.2.77"}}`)); err != nil {
		return err
	}
	seen := make(chan int, 64)
	go func() {
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				close(seen)
				return
			}
			var m struct {
				Type string `json:"type"`
				Data struct {
					Flows []struct {
						SrcIP   string `json:"srcIP"`
						SrcPort int    `json:"srcPort"`
					} `json:"flows"`
				} `json:"data"`
			}
			if json.Unmarshal(b, &m) != nil || m.Type != "flows" {
				continue
			}
			for _, f := range m.Data.Flows {
				if f.SrcIP == "192.0.2.77" {
					seen <- f.SrcPort
				}
			}
		}
	}()
	time.Sleep(1500 * time.Millisecond) // let the subscription settle
	base := 20000 + rand.IntN(20000)
	var lat []float64
	missed := 0
	for i := range *n {
		time.Sleep(time.Duration(200+rand.IntN(1000)) * time.Millisecond) // random phase against the 1 s export and push ticks
		port := base + i
		frame := udpFrame(src, dst, uint16(port), 9999)
		t0 := time.Now()
		if _, err := unix.Write(fd, frame); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		deadline := time.After(*timeout)
	wait:
		for {
			select {
			case p, ok := <-seen:
				if !ok {
					return fmt.Errorf("websocket closed")
				}
				if p == port {
					lat = append(lat, time.Since(t0).Seconds()*1000)
					break wait
				}
			case <-deadline:
				missed++
				break wait
			}
		}
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	emit(map[string]any{"samples": len(lat), "missed": missed, "p50_ms": q(0.5), "p90_ms": q(0.9), "max_ms": q(1), "min_ms": q(0)})
	return nil
}
