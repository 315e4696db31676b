package flow

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"netwatch.dev/sensor/internal/decode"
)

// FuzzTable runs the table through arbitrary sequences of packets (a small
// key space of IPv4 and IPv6 TCP/UDP/ICMP flows, FIN and RST, timestamps that
// may go backwards), batches of any size, exports and a full table, and checks
// that every packet and byte comes out exactly once, per direction of every
// flow, that the index finds every flow (checkIndex) and that the flow
// counters add up.
func FuzzTable(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	f.Add([]byte("\x01\x10\x22\x33\x07\x00\x00\x00\x06\x00\x00\x00\x02\x05\x81\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		cfg := DefaultConfig()
		cfg.MaxFlows = 8
		cfg.IdleTimeout = time.Second
		cfg.ActiveTimeout = 2 * time.Second
		cfg.FinLinger = 500 * time.Millisecond
		tb, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer tb.Close()

		type dirKey struct {
			proto        uint8
			src, dst     netip.Addr
			sport, dport uint16
		}
		type sums struct{ pkts, bytes uint64 }
		want, got := map[dirKey]sums{}, map[dirKey]sums{}
		add := func(m map[dirKey]sums, k dirKey, p, b uint64) {
			if p == 0 && b == 0 {
				return
			}
			s := m[k]
			s.pkts += p
			s.bytes += b
			m[k] = s
		}
		emit := func(d *Delta) {
			add(got, dirKey{d.Protocol, d.Src(), d.Dst(), d.SrcPort, d.DstPort}, d.SrcPackets, d.SrcBytes)
			add(got, dirKey{d.Protocol, d.Dst(), d.Src(), d.DstPort, d.SrcPort}, d.DstPackets, d.DstBytes)
		}

		single := data[0]&1 == 1 // Add per packet instead of AddBatch
		data = data[1:]
		ts := t0
		var batch []decode.Packet
		var tss []int64
		sync := func() {
			tb.AddBatch(batch, tss)
			batch, tss = batch[:0], tss[:0]
		}
		for ; len(data) >= 4; data = data[4:] {
			op, b1, b2, b3 := data[0], data[1], data[2], data[3]
			switch op % 8 {
			case 6:
				sync()
				tb.Export(ts, emit)
			case 7:
				sync()
			}
			if op%8 >= 6 {
				if err := tb.checkIndex(); err != nil {
					t.Fatal(err)
				}
				continue
			}
			// A packet of flow b1%24 in direction b2&1.
			fl := b1 % 24
			var p decode.Packet
			switch fl % 3 {
			case 0:
				p = pkt(6, "10.0.0.1", 1000+uint16(fl), "10.0.0.2", 80, 40+uint32(b3)*5, ack|(b2>>1)&(fin|rst))
			case 1:
				p = pkt(17, "2001:db8::1", 1000+uint16(fl), "2001:db8::2", 53, 48+uint32(b3)*5, 0)
			default:
				p = pkt(1, "10.0.0.1", 0, "10.0.0."+string(rune('3'+fl%5)), 0, 28+uint32(b3), 0)
			}
			if b2&1 == 1 {
				p.Src, p.Dst, p.SrcPort, p.DstPort = p.Dst, p.Src, p.DstPort, p.SrcPort
			}
			// Time moves on by 0..1.5 s, or back by up to 0.3 s.
			step := int64(b2>>4) * int64(100*time.Millisecond)
			if b3&0x80 != 0 {
				step = -int64(b3&0x3) * int64(100*time.Millisecond)
			}
			ts += step
			add(want, dirKey{p.Protocol, netip.AddrFrom16(p.Src).Unmap(), netip.AddrFrom16(p.Dst).Unmap(), p.SrcPort, p.DstPort}, 1, uint64(p.Length))
			if single {
				tb.Add(&p, ts)
				continue
			}
			batch, tss = append(batch, p), append(tss, ts)
			if len(batch) == BatchSize {
				sync()
			}
		}
		sync()
		if err := tb.checkIndex(); err != nil {
			t.Fatal(err)
		}
		sync()
		tb.Flush(EndSensorStopped, emit)

		for k, w := range want {
			if g := got[k]; g != w {
				t.Fatalf("%v: got %+v, want %+v", k, g, w)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%d directions out, %d in", len(got), len(want))
		}
		st := tb.Stats()
		if st.Flows != 0 || st.Created != st.Evicted+st.IdleExpired+st.Closed+st.Flushed {
			t.Fatalf("counters do not add up: %+v", st)
		}
		var n uint64
		for _, w := range want {
			n += w.pkts
		}
		if st.Packets != n {
			t.Fatalf("Stats.Packets = %d, want %d", st.Packets, n)
		}
	})
}

// checkIndex verifies the index against the entries: every entry in use is
// found by a lookup of its key, from its slot, and the index holds nothing
// else (white-box, for tests).
func (t *Table) checkIndex() error {
	inUse := 0
	for i := range t.hot {
		e := &t.hot[i]
		if !e.is(stInUse) {
			continue
		}
		inUse++
		k := key{a0: e.a0, a1: e.a1, b0: e.b0, b1: e.b1, ports: e.ports, proto: e.proto, v6: e.is(stV6)}
		if got := t.lookup(&k, t.cold[i].hash, 0); got != int32(i) {
			return fmt.Errorf("entry %d (key %+v): lookup finds %d", i, k, got)
		}
	}
	used := 0
	for _, s := range t.slots {
		if s != 0 {
			used++
		}
	}
	if used != inUse || inUse != t.Stats().Flows {
		return fmt.Errorf("%d slots used, %d entries in use, Stats.Flows %d", used, inUse, t.Stats().Flows)
	}
	return nil
}
