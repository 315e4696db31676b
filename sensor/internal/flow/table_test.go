package flow

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/common/difftest"
	"netwatch.dev/sensor/internal/decode"
)

const sec = int64(time.Second)

// t0 is an arbitrary capture start (2026-01-01T00:00:00Z).
const t0 = 1767225600 * sec

// pkt builds a decoded packet (what the decoder would produce).
func pkt(proto uint8, src string, sport uint16, dst string, dport uint16, length uint32, flags uint8) decode.Packet {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	return decode.Packet{
		Src: s.As16(), Dst: d.As16(), IsIPv6: s.Is6() && !s.Is4In6(),
		Protocol: proto, SrcPort: sport, DstPort: dport, Length: length, TCPFlags: flags,
	}
}

const (
	fin = 0x01
	syn = 0x02
	rst = 0x04
	ack = 0x10
)

func newTable(t *testing.T, mod func(*Config)) *Table {
	t.Helper()
	cfg := DefaultConfig()
	if mod != nil {
		mod(&cfg)
	}
	tb, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, tb.Close()) })
	return tb
}

// collect returns an emit func appending copies of the deltas to *out.
func collect(out *[]Delta) func(*Delta) {
	return func(d *Delta) { *out = append(*out, *d) }
}

func TestDefaultConfigChecks(t *testing.T) {
	require.NoError(t, DefaultConfig().Check())
}

func TestConfigCheckNamesField(t *testing.T) {
	for _, tc := range []struct {
		field string
		mod   func(*Config)
	}{
		{"IdleTimeout", func(c *Config) { c.IdleTimeout = 0 }},
		{"ActiveTimeout", func(c *Config) { c.ActiveTimeout = -time.Second }},
		{"FinLinger", func(c *Config) { c.FinLinger = -1 }},
		{"MaxFlows", func(c *Config) { c.MaxFlows = 0 }},
		{"MaxFragments", func(c *Config) { c.MaxFragments = 0 }},
		{"FragmentTimeout", func(c *Config) { c.FragmentTimeout = -1 }},
		{"MaxPendingEvicted", func(c *Config) { c.MaxPendingEvicted = 0 }},
	} {
		t.Run(tc.field, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.mod(&cfg)
			err := cfg.Check()
			if assert.Error(t, err, tc.field) {
				assert.Contains(t, err.Error(), tc.field)
			}
			_, err = New(cfg)
			assert.Error(t, err, "New with bad %s", tc.field)
		})
	}
}

func TestBidirectionalInitiator(t *testing.T) {
	tb := newTable(t, nil)
	// The responder has the lower address: the initiator must still be
	// the source of the first packet.
	a := pkt(6, "10.0.0.9", 40000, "10.0.0.1", 80, 60, syn)
	b := pkt(6, "10.0.0.1", 80, "10.0.0.9", 40000, 60, syn|ack)
	c := pkt(6, "10.0.0.9", 40000, "10.0.0.1", 80, 52, ack)
	tb.Add(&a, t0)
	tb.Add(&b, t0+1)
	tb.Add(&c, t0+2)
	var out []Delta
	tb.Export(t0+3, collect(&out))
	require.Len(t, out, 1)
	difftest.Equal(t, Delta{
		Protocol: 6,
		SrcAddr:  netip.MustParseAddr("::ffff:10.0.0.9").As16(), DstAddr: netip.MustParseAddr("::ffff:10.0.0.1").As16(),
		SrcPort: 40000, DstPort: 80,
		SrcPackets: 2, SrcBytes: 112, DstPackets: 1, DstBytes: 60,
		FirstSeen: t0, LastSeen: t0 + 2,
		SrcTCPFlags: syn | ack, DstTCPFlags: syn | ack,
		Status: StatusActive, EndReason: EndNone,
	}, out[0])

	// Nothing changed: nothing emitted.
	out = nil
	tb.Export(t0+4, collect(&out))
	assert.Empty(t, out)
}

func TestIdenticalEndpointsAllForward(t *testing.T) {
	tb := newTable(t, nil)
	p := pkt(17, "127.0.0.1", 5000, "127.0.0.1", 5000, 100, 0)
	tb.Add(&p, t0)
	tb.Add(&p, t0+1)
	var out []Delta
	tb.Flush(EndSensorStopped, collect(&out))
	require.Len(t, out, 1)
	assert.Equal(t, uint64(2), out[0].SrcPackets)
	assert.Zero(t, out[0].DstPackets)
}

func TestIPv4AndMappedIPv6AreDistinct(t *testing.T) {
	tb := newTable(t, nil)
	a := pkt(17, "10.0.0.1", 1, "10.0.0.2", 2, 40, 0)
	b := pkt(17, "::ffff:10.0.0.1", 1, "::ffff:10.0.0.2", 2, 60, 0)
	b.IsIPv6 = true
	tb.Add(&a, t0)
	tb.Add(&b, t0)
	var out []Delta
	tb.Flush(EndSensorStopped, collect(&out))
	require.Len(t, out, 2)
	assert.Equal(t, "::ffff:10.0.0.1", out[1].Src().String())
}

func TestVLANNotInKeyFirstKept(t *testing.T) {
	tb := newTable(t, nil)
	a := pkt(6, "10.0.0.1", 1000, "10.0.0.2", 80, 40, syn)
	b := a
	a.VLAN, a.HasVLAN = 42, true
	b.VLAN, b.HasVLAN = 7, true
	c := pkt(6, "10.0.0.2", 80, "10.0.0.1", 1000, 40, ack) // untagged
	tb.Add(&c, t0)
	tb.Add(&a, t0+1)
	tb.Add(&b, t0+2)
	var out []Delta
	tb.Flush(EndSensorStopped, collect(&out))
	require.Len(t, out, 1)
	assert.True(t, out[0].HasVLAN)
	assert.Equal(t, uint16(42), out[0].VLAN)
	assert.Equal(t, uint64(3), out[0].SrcPackets+out[0].DstPackets)
}

func TestIdleTimeout(t *testing.T) {
	tb := newTable(t, func(c *Config) { c.IdleTimeout = 10 * time.Second })
	a := pkt(17, "10.0.0.1", 53, "10.0.0.2", 53, 80, 0)
	b := pkt(17, "10.0.0.3", 53, "10.0.0.4", 53, 80, 0)
	tb.Add(&a, t0)
	tb.Add(&b, t0+5*sec)
	var out []Delta
	tb.Export(t0+6*sec, collect(&out))
	require.Len(t, out, 2) // both changed, none expired
	out = nil
	tb.Export(t0+10*sec, collect(&out)) // a idle for exactly 10s
	require.Len(t, out, 1)
	assert.Equal(t, "10.0.0.1", out[0].Src().String())
	assert.Equal(t, StatusIdle, out[0].Status)
	assert.Equal(t, EndIdleTimeout, out[0].EndReason)
	assert.True(t, out[0].Removed())
	assert.Zero(t, out[0].SrcPackets, "already exported")
	assert.Equal(t, 1, tb.Stats().Flows)

	// b gets a packet at 14s: not idle at 20s, idle at 24s.
	tb.Add(&b, t0+14*sec)
	out = nil
	tb.Export(t0+20*sec, collect(&out))
	require.Len(t, out, 1)
	assert.Equal(t, EndNone, out[0].EndReason)
	out = nil
	tb.Export(t0+24*sec, collect(&out))
	require.Len(t, out, 1)
	assert.Equal(t, EndIdleTimeout, out[0].EndReason)
	assert.Equal(t, 0, tb.Stats().Flows)
	assert.Equal(t, uint64(2), tb.Stats().IdleExpired)

	// A new packet makes a new flow.
	tb.Add(&a, t0+30*sec)
	assert.Equal(t, uint64(3), tb.Stats().Created)
}

// TestTimestampsGoingBackwards: lastSeen is the last packet in arrival order,
// but idle expiry goes by the newest timestamp seen.
func TestTimestampsGoingBackwards(t *testing.T) {
	tb := newTable(t, func(c *Config) { c.IdleTimeout = 10 * time.Second })
	a := pkt(17, "10.0.0.1", 53, "10.0.0.2", 53, 80, 0)
	tb.Add(&a, t0)
	tb.Add(&a, t0+30*sec) // another epoch: the flow moves in the LRU list
	tb.Add(&a, t0+2*sec)  // from an interface whose clock lags
	var out []Delta
	tb.Export(t0+35*sec, collect(&out))
	require.Len(t, out, 1)
	assert.Equal(t, EndNone, out[0].EndReason, "newest packet 5 s ago: not idle")
	assert.Equal(t, t0, out[0].FirstSeen)
	assert.Equal(t, t0+2*sec, out[0].LastSeen, "last in arrival order")
	assert.Equal(t, uint64(3), out[0].SrcPackets)
	out = nil
	tb.Export(t0+40*sec, collect(&out))
	require.Len(t, out, 1)
	assert.Equal(t, EndIdleTimeout, out[0].EndReason)
}

// TestCounterCarry: per-export counters are 32 bits in the packet path and
// carry into 64-bit totals.
func TestCounterCarry(t *testing.T) {
	tb := newTable(t, nil)
	a := pkt(6, "10.0.0.1", 1000, "10.0.0.2", 80, 65535, ack)
	b := pkt(6, "10.0.0.2", 80, "10.0.0.1", 1000, 40, ack)
	tb.Add(&b, t0)            // the initiator is 10.0.0.2 (b)
	const n = 1<<32/65535 + 3 // past 2^32 bytes from 10.0.0.1
	for i := range n {
		tb.Add(&a, t0+int64(i))
	}
	// Packets: push the responder's 32-bit counter to its limit, white-box
	// (2^32 real packets would take minutes).
	idx := tb.lookupPacket(&a)
	require.NotEqual(t, int32(nilIdx), idx)
	tb.hot[idx].pkts[1] = 1<<32 - 1
	tb.Add(&a, t0+n)
	tb.Add(&b, t0+n+1)
	var out []Delta
	tb.Export(t0+n+2, collect(&out))
	require.Len(t, out, 1)
	d := out[0]
	assert.Equal(t, "10.0.0.2", d.Src().String())
	assert.Equal(t, uint64(2), d.SrcPackets)
	assert.Equal(t, uint64(80), d.SrcBytes)
	assert.Equal(t, uint64(1<<32), d.DstPackets)
	assert.Equal(t, uint64(n+1)*65535, d.DstBytes)

	// The counters start again from 0 after the export, carries included.
	tb.Add(&a, t0+n+3)
	out = nil
	tb.Export(t0+n+4, collect(&out))
	require.Len(t, out, 1)
	assert.Equal(t, uint64(1), out[0].DstPackets)
	assert.Equal(t, uint64(65535), out[0].DstBytes)
	assert.Zero(t, out[0].SrcPackets)
}

func TestActiveTimeoutInterim(t *testing.T) {
	tb := newTable(t, func(c *Config) { c.ActiveTimeout = 60 * time.Second; c.IdleTimeout = 30 * time.Second })
	p := pkt(6, "10.0.0.1", 1000, "10.0.0.2", 443, 100, ack)
	var out []Delta
	for s := int64(0); s <= 150; s++ {
		tb.Add(&p, t0+s*sec)
		if s%10 == 9 {
			tb.Export(t0+s*sec, collect(&out))
		}
	}
	tb.Flush(EndSensorStopped, collect(&out))
	var interim, pkts int
	for _, d := range out {
		pkts += int(d.SrcPackets)
		if d.EndReason == EndActiveTimeout {
			interim++
			assert.Equal(t, StatusActive, d.Status)
			assert.False(t, d.Removed())
		}
		assert.Equal(t, t0, d.FirstSeen, "FirstSeen is absolute")
	}
	assert.Equal(t, 151, pkts, "deltas sum to the total")
	assert.Equal(t, 2, interim, "records cut at 60s and 120s")
	assert.Equal(t, EndSensorStopped, out[len(out)-1].EndReason)
	assert.Equal(t, uint64(1), tb.Stats().Created, "one flow throughout")
}

func TestFINLinger(t *testing.T) {
	tb := newTable(t, func(c *Config) { c.FinLinger = 2 * time.Second })
	c2s := pkt(6, "10.0.0.1", 1000, "10.0.0.2", 80, 52, fin|ack)
	s2c := pkt(6, "10.0.0.2", 80, "10.0.0.1", 1000, 52, fin|ack)
	last := pkt(6, "10.0.0.1", 1000, "10.0.0.2", 80, 40, ack)
	var out []Delta
	tb.Add(&c2s, t0)
	tb.Export(t0, collect(&out)) // FIN one way: still open
	require.Len(t, out, 1)
	assert.Equal(t, StatusActive, out[0].Status)
	tb.Add(&s2c, t0+sec)
	tb.Add(&last, t0+sec+1)
	out = nil
	tb.Export(t0+2*sec, collect(&out)) // closed, lingering
	require.Len(t, out, 1)
	assert.Equal(t, StatusClosed, out[0].Status)
	assert.Equal(t, EndNone, out[0].EndReason)
	assert.Equal(t, uint64(1), out[0].SrcPackets, "since the previous export")
	assert.Equal(t, uint64(1), out[0].DstPackets)
	out = nil
	tb.Export(t0+3*sec-1, collect(&out)) // linger not over, nothing new
	assert.Empty(t, out)
	tb.Export(t0+3*sec, collect(&out))
	require.Len(t, out, 1)
	assert.Equal(t, EndFIN, out[0].EndReason)
	assert.Equal(t, StatusClosed, out[0].Status)
	assert.True(t, out[0].Removed())
	assert.Zero(t, out[0].SrcPackets+out[0].DstPackets)
	assert.Equal(t, uint64(1), tb.Stats().Closed)
	assert.Equal(t, 0, tb.Stats().Flows)
}

func TestRSTLinger(t *testing.T) {
	tb := newTable(t, func(c *Config) { c.FinLinger = 0 })
	a := pkt(6, "10.0.0.1", 1000, "10.0.0.2", 80, 40, syn)
	r := pkt(6, "10.0.0.2", 80, "10.0.0.1", 1000, 40, rst|ack)
	tb.Add(&a, t0)
	tb.Add(&r, t0+1)
	var out []Delta
	tb.Export(t0+1, collect(&out))
	require.Len(t, out, 1)
	assert.Equal(t, EndRST, out[0].EndReason)
	assert.Equal(t, uint64(1), out[0].DstPackets)
	assert.Equal(t, uint8(rst|ack), out[0].DstTCPFlags)
}

func TestEvictionAtMaxFlows(t *testing.T) {
	tb := newTable(t, func(c *Config) { c.MaxFlows = 3 })
	ps := []decode.Packet{
		pkt(17, "10.0.0.1", 1, "10.0.1.1", 1, 30, 0),
		pkt(17, "10.0.0.2", 1, "10.0.1.1", 1, 30, 0),
		pkt(17, "10.0.0.3", 1, "10.0.1.1", 1, 30, 0),
		pkt(17, "10.0.0.4", 1, "10.0.1.1", 1, 30, 0),
	}
	for i := range 3 {
		tb.Add(&ps[i], t0+int64(i)*10*sec)
	}
	tb.Add(&ps[0], t0+30*sec) // flow 0 is now the most recent; flow 1 the longest idle
	tb.Add(&ps[3], t0+40*sec) // table full: evicts flow 1
	st := tb.Stats()
	assert.Equal(t, uint64(1), st.Evicted)
	assert.Equal(t, 3, st.Flows)
	var out []Delta
	tb.Export(t0+40*sec, collect(&out))
	require.NotEmpty(t, out)
	assert.Equal(t, "10.0.0.2", out[0].Src().String())
	assert.Equal(t, EndEvicted, out[0].EndReason)
	assert.Equal(t, StatusIdle, out[0].Status)
	assert.Equal(t, uint64(1), out[0].SrcPackets, "evicted flow keeps its unexported counts")
	var total uint64
	for _, d := range out {
		total += d.SrcPackets
	}
	assert.Equal(t, uint64(5), total)
}

func TestEvictionBufferOverflowCounted(t *testing.T) {
	tb := newTable(t, func(c *Config) { c.MaxFlows = 1; c.MaxPendingEvicted = 2 })
	for i := range 5 {
		p := pkt(17, "10.0.0.1", uint16(i+1), "10.0.1.1", 1, 30, 0)
		tb.Add(&p, t0+int64(i))
	}
	st := tb.Stats()
	assert.Equal(t, uint64(4), st.Evicted)
	assert.Equal(t, uint64(2), st.EvictedLost)
	var out []Delta
	tb.Export(t0+10, collect(&out))
	assert.Len(t, out, 3) // 2 evicted + the live flow
}

// TestDeltasSumToTotals drives many flows with random-ish exports and
// expiry, and checks that per flow (per record lifetime) the deltas add up to
// what was added.
func TestDeltasSumToTotals(t *testing.T) {
	tb := newTable(t, func(c *Config) {
		c.IdleTimeout = 5 * time.Second
		c.ActiveTimeout = 7 * time.Second
		c.FinLinger = time.Second
		c.MaxFlows = 50
	})
	var wantPkts, wantBytes, gotPkts, gotBytes uint64
	emit := func(d *Delta) {
		gotPkts += d.SrcPackets + d.DstPackets
		gotBytes += d.SrcBytes + d.DstBytes
	}
	x := uint32(1)
	for i := range 20000 {
		x = x*1664525 + 1013904223
		flow := x >> 24 % 52
		flags := uint8(ack)
		switch {
		case x%1009 == 0:
			flags |= rst
		case x%307 == 0:
			flags |= fin
		}
		p := pkt(6, "10.0.0.1", uint16(1000+flow), "10.0.0.2", 80, 40+x%1000, flags)
		if x&1 == 1 {
			p.Src, p.Dst, p.SrcPort, p.DstPort = p.Dst, p.Src, p.DstPort, p.SrcPort
		}
		ts := t0 + int64(i)*int64(5*time.Millisecond)
		tb.Add(&p, ts)
		wantPkts++
		wantBytes += uint64(p.Length)
		if i%97 == 0 {
			tb.Export(ts, emit)
		}
	}
	tb.Export(t0+200*sec, emit) // everything left is idle
	tb.Flush(EndSensorStopped, emit)
	st := tb.Stats()
	assert.Equal(t, wantPkts, gotPkts)
	assert.Equal(t, wantBytes, gotBytes)
	assert.NotZero(t, st.Evicted)
	assert.NotZero(t, st.Closed)
	assert.NotZero(t, st.ActiveTimeouts)
	assert.NotZero(t, st.IdleExpired)
	assert.Equal(t, st.Created, st.Evicted+st.IdleExpired+st.Closed+st.Flushed)
}

func TestAddBatchMatchesAdd(t *testing.T) {
	var pkts []decode.Packet
	var tss []int64
	for i := range 1000 {
		p := pkt(17, "10.0.0.1", uint16(i%77), "10.0.0.2", uint16(i%13), uint32(28+i), 0)
		if i%3 == 0 {
			p.Src, p.Dst, p.SrcPort, p.DstPort = p.Dst, p.Src, p.DstPort, p.SrcPort
		}
		pkts = append(pkts, p)
		tss = append(tss, t0+int64(i))
	}
	a := newTable(t, func(c *Config) { c.MaxFlows = 500 })
	b := newTable(t, func(c *Config) { c.MaxFlows = 500 })
	for i := range pkts {
		a.Add(&pkts[i], tss[i])
	}
	b.AddBatch(pkts, tss)
	var da, db []Delta
	a.Flush(EndSensorStopped, collect(&da))
	b.Flush(EndSensorStopped, collect(&db))
	assert.Equal(t, da, db)
}

func TestFragmentAttribution(t *testing.T) {
	tb := newTable(t, nil)
	first := pkt(17, "10.0.0.1", 6363, "10.0.0.2", 6363, 1500, 0)
	first.IsFragment, first.FragMore, first.FragID = true, true, 77
	later := pkt(17, "10.0.0.1", 0, "10.0.0.2", 0, 500, 0)
	later.IsFragment, later.FragOffset, later.FragID = true, 185, 77
	orphan := later
	orphan.FragID = 78
	tb.Add(&first, t0)
	tb.Add(&later, t0+1)
	tb.Add(&orphan, t0+2) // first fragment never seen: ports-0 flow
	var out []Delta
	tb.Flush(EndSensorStopped, collect(&out))
	require.Len(t, out, 2)
	assert.Equal(t, uint64(2000), out[0].SrcBytes)
	assert.Equal(t, uint16(6363), out[0].SrcPort)
	assert.Zero(t, out[1].SrcPort)
	st := tb.Stats()
	assert.Equal(t, uint64(1), st.FragmentsAttributed)
	assert.Equal(t, uint64(1), st.FragmentsUnattributed)

	// IPv6: the key has no protocol; an unattributed fragment takes the
	// Fragment header's Next Header.
	tb6 := newTable(t, nil)
	f6 := pkt(17, "2001:db8::1", 53, "2001:db8::2", 5353, 1280, 0)
	f6.IsFragment, f6.FragMore, f6.FragID = true, true, 0xdeadbeef
	l6 := pkt(17, "2001:db8::1", 0, "2001:db8::2", 0, 100, 0)
	l6.IsFragment, l6.FragOffset, l6.FragID = true, 154, 0xdeadbeef
	tb6.Add(&f6, t0)
	tb6.Add(&l6, t0+1)
	out = nil
	tb6.Flush(EndSensorStopped, collect(&out))
	require.Len(t, out, 1)
	assert.Equal(t, uint64(2), out[0].SrcPackets)
}

func TestFragmentTableBounded(t *testing.T) {
	tb := newTable(t, func(c *Config) { c.MaxFragments = 4; c.FragmentTimeout = 0 })
	for id := range uint32(10) {
		p := pkt(17, "10.0.0.1", 1, "10.0.0.2", 2, 1500, 0)
		p.IsFragment, p.FragMore, p.FragID = true, true, id
		tb.Add(&p, t0)
	}
	assert.Equal(t, uint64(6), tb.Stats().FragmentsForgotten)
	for id := range uint32(10) {
		p := pkt(17, "10.0.0.1", 0, "10.0.0.2", 0, 100, 0)
		p.IsFragment, p.FragOffset, p.FragID = true, 185, id
		tb.Add(&p, t0+1)
	}
	st := tb.Stats()
	assert.Equal(t, uint64(4), st.FragmentsAttributed, "the 4 newest first fragments")
	assert.Equal(t, uint64(6), st.FragmentsUnattributed)
}

func TestFlushEmptiesAndTableReusable(t *testing.T) {
	tb := newTable(t, nil)
	for i := range 100 {
		p := pkt(17, "10.0.0.1", uint16(i), "10.0.0.2", 2, 30, 0)
		tb.Add(&p, t0)
	}
	n := 0
	tb.Flush(EndSensorStopped, func(d *Delta) {
		n++
		assert.Equal(t, EndSensorStopped, d.EndReason)
	})
	assert.Equal(t, 100, n)
	assert.Equal(t, 0, tb.Stats().Flows)
	p := pkt(17, "10.0.0.1", 1, "10.0.0.2", 2, 30, 0)
	tb.Add(&p, t0)
	n = 0
	tb.Export(t0, func(*Delta) { n++ })
	assert.Equal(t, 1, n)
}

func TestAddZeroAllocs(t *testing.T) {
	tb := newTable(t, func(c *Config) { c.MaxFlows = 4096 })
	var pkts [BatchSize]decode.Packet
	var tss [BatchSize]int64
	for i := range pkts {
		pkts[i] = pkt(6, "10.0.0.1", uint16(i), "10.0.0.2", 80, 60, ack)
	}
	i := 0
	// Warm up: the flows exist and the index has its size.
	for range 3 {
		tb.AddBatch(pkts[:], tss[:])
	}
	allocs := testing.AllocsPerRun(1000, func() {
		p := &pkts[i%BatchSize]
		p.SrcPort = uint16(i % 3000) // new flows too, up to MaxFlows, then evictions
		tb.Add(p, t0+int64(i))
		i++
		if i%500 == 0 {
			tb.Export(t0+int64(i), func(*Delta) {})
		}
	})
	assert.Zero(t, allocs)
}

func TestStrings(t *testing.T) {
	for _, s := range []Status{StatusActive, StatusIdle, StatusClosed, 9} {
		assert.NotEmpty(t, s.String())
	}
	for r := EndNone; r <= EndSensorStopped+1; r++ {
		assert.False(t, strings.Contains(r.String(), " "))
	}
}

// TestFlushKeepsHowAClosedFlowEnded: a TCP flow that closed (FIN both ways) and was
// still lingering when the sensor stopped is reported as ended by FIN, not by the stop.
func TestFlushKeepsHowAClosedFlowEnded(t *testing.T) {
	cfg := DefaultConfig()
	tbl, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Close()
	var a, b decode.Packet
	a.Src, a.Dst = netipAddr16(10, 0, 0, 1), netipAddr16(10, 0, 0, 2)
	a.Protocol, a.SrcPort, a.DstPort, a.Length = 6, 40000, 80, 40
	b = a
	b.Src, b.Dst, b.SrcPort, b.DstPort = a.Dst, a.Src, a.DstPort, a.SrcPort
	a.TCPFlags, b.TCPFlags = 0x11, 0x11 // FIN|ACK each way
	tbl.Add(&a, 1)
	tbl.Add(&b, 2)
	var reasons []EndReason
	tbl.Flush(EndSensorStopped, func(d *Delta) { reasons = append(reasons, d.EndReason) })
	if len(reasons) != 1 || reasons[0] != EndFIN {
		t.Fatalf("end reasons %v, want [fin]", reasons)
	}
}

func netipAddr16(a, b, c, d byte) [16]byte {
	return [16]byte{10: 0xff, 11: 0xff, 12: a, 13: b, 14: c, 15: d}
}

// TestExportEndedEmitsWholeRecords: ExportEnded holds back the deltas of flows that go
// on, so each record comes out once, with all its counters, when it ends.
func TestExportEndedEmitsWholeRecords(t *testing.T) {
	cfg := DefaultConfig()
	tbl, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Close()
	var p decode.Packet
	p.Src, p.Dst = netipAddr16(10, 0, 0, 1), netipAddr16(10, 0, 0, 2)
	p.Protocol, p.SrcPort, p.DstPort, p.Length = 17, 5000, 53, 100
	var got []Delta
	emit := func(d *Delta) { got = append(got, *d) }
	sec := int64(1e9)
	for i := int64(0); i < 5; i++ { // a packet a second: the flow goes on
		tbl.Add(&p, i*sec)
		tbl.ExportEnded(i*sec+sec/2, emit)
	}
	if len(got) != 0 {
		t.Fatalf("a flow that goes on was emitted: %+v", got)
	}
	tbl.ExportEnded(4*sec+cfg.IdleTimeout.Nanoseconds()+sec, emit)
	if len(got) != 1 || got[0].SrcPackets != 5 || got[0].SrcBytes != 500 || got[0].EndReason != EndIdleTimeout {
		t.Fatalf("got %+v, want one idle-timeout record of 5 packets, 500 bytes", got)
	}
}

// lookupPacket returns the entry of p's flow, or nilIdx.
func (t *Table) lookupPacket(p *decode.Packet) int32 {
	var pk prepared
	t.prepare(p, 0, &pk)
	return t.lookup(&pk.key, pk.hash, 0)
}

// TestChurnPerDirectionTotals drives a small table through constant eviction,
// idle expiry and closes with AddBatch (the pipelined path), IPv4 and IPv6,
// and checks the packets and bytes of every direction of every flow: a slot
// or entry mixed up between flows would show here, not in grand totals.
func TestChurnPerDirectionTotals(t *testing.T) {
	tb := newTable(t, func(c *Config) {
		c.IdleTimeout = 2 * time.Second
		c.FinLinger = time.Second
		c.MaxFlows = 200
	})
	type dirKey struct {
		src, dst     netip.Addr
		sport, dport uint16
	}
	type sums struct{ pkts, bytes uint64 }
	want, got := map[dirKey]sums{}, map[dirKey]sums{}
	add := func(m map[dirKey]sums, k dirKey, p, b uint64) {
		s := m[k]
		s.pkts += p
		s.bytes += b
		m[k] = s
	}
	emit := func(d *Delta) {
		add(got, dirKey{d.Src(), d.Dst(), d.SrcPort, d.DstPort}, d.SrcPackets, d.SrcBytes)
		add(got, dirKey{d.Dst(), d.Src(), d.DstPort, d.SrcPort}, d.DstPackets, d.DstBytes)
	}
	x := uint32(7)
	next := func() uint32 { x = x*1664525 + 1013904223; return x >> 8 }
	var batch []decode.Packet
	var tss []int64
	for i := range 60000 {
		f := next() % 260
		if (i/8000)%2 == 1 {
			f &^= 1 // odd flows go silent for 4 s: idle expiry
		}
		var p decode.Packet
		if f%5 == 0 {
			p = pkt(17, "2001:db8::1", uint16(f), "2001:db8::2", 53, 60+next()%500, 0)
		} else {
			flags := uint8(ack)
			switch next() % 600 {
			case 0:
				flags |= rst
			case 1, 2, 3:
				flags |= fin
			}
			p = pkt(6, "10.1.0.1", uint16(f), "10.2.0.2", 443, 40+next()%1400, flags)
		}
		if next()&1 == 1 {
			p.Src, p.Dst, p.SrcPort, p.DstPort = p.Dst, p.Src, p.DstPort, p.SrcPort
		}
		k := dirKey{netip.AddrFrom16(p.Src).Unmap(), netip.AddrFrom16(p.Dst).Unmap(), p.SrcPort, p.DstPort}
		add(want, k, 1, uint64(p.Length))
		ts := t0 + int64(i)*int64(500*time.Microsecond)
		batch, tss = append(batch, p), append(tss, ts)
		if len(batch) == int(1+next()%300) || i%5000 == 0 {
			tb.AddBatch(batch, tss)
			batch, tss = batch[:0], tss[:0]
		}
		if i%3000 == 0 {
			tb.AddBatch(batch, tss)
			batch, tss = batch[:0], tss[:0]
			tb.Export(ts, emit)
			require.NoError(t, tb.checkIndex())
		}
	}
	tb.AddBatch(batch, tss)
	tb.Flush(EndSensorStopped, emit)
	st := tb.Stats()
	require.NotZero(t, st.Evicted)
	require.NotZero(t, st.Closed)
	require.NotZero(t, st.IdleExpired)
	for k, w := range want {
		assert.Equal(t, w, got[k], "%v", k)
	}
	assert.Len(t, got, len(want))
}

// TestHashCollisions puts flows with one and the same hash into the index
// (white-box: a real 32-bit collision is too rare to meet by chance) and
// checks that lookups compare keys, and that removals keep the others
// reachable.
func TestHashCollisions(t *testing.T) {
	tb := newTable(t, func(c *Config) { c.MaxFlows = 64 })
	const h = 0xdeadbeef
	keys := make([]key, 6)
	idx := make([]int32, len(keys))
	for i := range keys {
		keys[i] = key{a1: uint64(i + 1), b1: 99, ports: 80, proto: 6}
		require.Equal(t, int32(nilIdx), tb.lookup(&keys[i], h, 0))
		idx[i] = tb.create(&keys[i], h, t0)
	}
	other := key{a1: 1000, b1: 99, ports: 80, proto: 6}
	assert.Equal(t, int32(nilIdx), tb.lookup(&other, h, 0), "same hash, absent key")
	for i := range keys {
		assert.Equal(t, idx[i], tb.lookup(&keys[i], h, 0), "key %d", i)
	}
	tb.remove(idx[0])
	tb.remove(idx[3])
	for i := range keys {
		want := idx[i]
		if i == 0 || i == 3 {
			want = nilIdx
		}
		assert.Equal(t, want, tb.lookup(&keys[i], h, 0), "after removals, key %d", i)
		// A stale hint (the slot the flow had before the removals) gives
		// the same answer.
		hint := h&^tb.idxMask | uint32(idx[i]+1)
		assert.Equal(t, want, tb.lookup(&keys[i], h, hint), "stale hint, key %d", i)
	}
}
