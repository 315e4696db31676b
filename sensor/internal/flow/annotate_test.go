package flow

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/proto/flowmeta"
	"netwatch.dev/sensor/internal/decode"
)

type finding struct {
	App  flowmeta.App
	Name string
}

func findingOf(d *Delta) finding { return finding{d.App, d.ServerName} }

// TestAnnotateKeptOnEveryDelta: the first finding of a flow is on every delta
// (interim, active timeout, final), from either direction's packet, and
// later findings do not replace it.
func TestAnnotateKeptOnEveryDelta(t *testing.T) {
	tb := newTable(t, nil)
	c2s := pkt(6, "10.0.0.1", 40000, "10.0.0.2", 443, 100, syn)
	s2c := pkt(6, "10.0.0.2", 443, "10.0.0.1", 40000, 100, syn|ack)
	other := pkt(6, "10.0.0.3", 40000, "10.0.0.2", 443, 100, syn)
	tb.Add(&c2s, t0)
	tb.Add(&s2c, t0+1)
	tb.Add(&other, t0+2)
	name := []byte("www.example.com")
	tb.Annotate(&c2s, flowmeta.AppTLS, name)
	name[0] = 'X'                                                 // Annotate copied it
	tb.Annotate(&s2c, flowmeta.AppHTTP, []byte("other.example"))  // later: ignored
	tb.Annotate(&other, flowmeta.AppNone, []byte("none.example")) // nothing found: nothing kept

	want := finding{flowmeta.AppTLS, "www.example.com"}
	var out []Delta
	tb.Export(t0+sec, collect(&out))
	require.Len(t, out, 2)
	for _, d := range out {
		if d.Src().String() == "10.0.0.1" {
			assert.Equal(t, want, findingOf(&d))
		} else {
			assert.Equal(t, finding{}, findingOf(&d))
		}
	}
	// Next interval, interim delta, then the final one.
	tb.Add(&s2c, t0+2*sec)
	out = out[:0]
	tb.Export(t0+3*sec, collect(&out))
	require.Len(t, out, 1)
	assert.Equal(t, want, findingOf(&out[0]))
	tb.Add(&c2s, t0+70*sec)
	out = out[:0]
	tb.Export(t0+71*sec, collect(&out)) // active timeout for the first flow, idle for the other
	require.Len(t, out, 2)
	for _, d := range out {
		if d.Src().String() == "10.0.0.1" {
			assert.Equal(t, EndActiveTimeout, d.EndReason)
			assert.Equal(t, want, findingOf(&d))
		}
	}
	out = out[:0]
	tb.Export(t0+200*sec, collect(&out))
	require.Len(t, out, 1)
	assert.Equal(t, EndIdleTimeout, out[0].EndReason)
	assert.Equal(t, want, findingOf(&out[0]))
	assert.Empty(t, tb.names, "the name left with the flow")

	// A new flow in the freed entry starts without a finding.
	tb.Add(&c2s, t0+300*sec)
	out = out[:0]
	tb.Flush(EndSensorStopped, collect(&out))
	require.Len(t, out, 1)
	assert.Equal(t, finding{}, findingOf(&out[0]))
}

func TestAnnotateExportEndedAndFlush(t *testing.T) {
	tb := newTable(t, nil)
	a := pkt(17, "10.0.0.1", 5000, "10.0.0.53", 53, 60, 0)
	b := pkt(6, "10.0.0.1", 5001, "10.0.0.80", 80, 60, 0)
	tb.Add(&a, t0)
	tb.Add(&b, t0)
	tb.Annotate(&a, flowmeta.AppDNS, nil)
	tb.Annotate(&b, flowmeta.AppHTTP, []byte("h.example"))
	var out []Delta
	tb.ExportEnded(t0+sec, collect(&out))
	assert.Empty(t, out, "the flows go on")
	tb.ExportEnded(t0+40*sec, collect(&out))
	require.Len(t, out, 2)
	got := map[uint16]finding{}
	for _, d := range out {
		got[d.DstPort] = findingOf(&d)
	}
	assert.Equal(t, map[uint16]finding{53: {flowmeta.AppDNS, ""}, 80: {flowmeta.AppHTTP, "h.example"}}, got)

	tb.Add(&b, t0+50*sec)
	tb.Annotate(&b, flowmeta.AppHTTP, []byte("again.example"))
	out = out[:0]
	tb.Flush(EndSensorStopped, collect(&out))
	require.Len(t, out, 1)
	assert.Equal(t, finding{flowmeta.AppHTTP, "again.example"}, findingOf(&out[0]))
	assert.Empty(t, tb.names)
}

func TestAnnotateEvicted(t *testing.T) {
	tb := newTable(t, func(c *Config) { c.MaxFlows = 1 })
	a := pkt(6, "10.0.0.1", 1, "10.0.0.2", 443, 60, 0)
	b := pkt(6, "10.0.0.3", 1, "10.0.0.2", 443, 60, 0)
	tb.Add(&a, t0)
	tb.Annotate(&a, flowmeta.AppTLS, []byte("a.example"))
	tb.Add(&b, t0+1) // evicts a
	tb.Annotate(&a, flowmeta.AppTLS, []byte("gone.example"))
	var out []Delta
	tb.Export(t0+2, collect(&out))
	require.Len(t, out, 2)
	assert.Equal(t, EndEvicted, out[0].EndReason)
	assert.Equal(t, finding{flowmeta.AppTLS, "a.example"}, findingOf(&out[0]))
	assert.Equal(t, finding{}, findingOf(&out[1]))
	assert.Empty(t, tb.names)
}

func TestICMPTypeCodeFirstPacket(t *testing.T) {
	tb := newTable(t, nil)
	frag := pkt(1, "10.0.0.1", 0, "10.0.0.2", 0, 1500, 0)
	frag.IsFragment, frag.FragOffset, frag.FragID = true, 100, 9 // no ICMP header
	echo := pkt(1, "10.0.0.1", 0, "10.0.0.2", 0, 84, 0)
	echo.ICMPType, echo.HasICMP = 8, true
	reply := pkt(1, "10.0.0.2", 0, "10.0.0.1", 0, 84, 0)
	reply.ICMPType, reply.HasICMP = 0, true
	unreach := pkt(58, "2001:db8::1", 0, "2001:db8::2", 0, 84, 0)
	unreach.ICMPType, unreach.ICMPCode, unreach.HasICMP = 1, 4, true
	udp := pkt(17, "10.0.0.1", 1, "10.0.0.2", 2, 84, 0)
	for i, p := range []decode.Packet{frag, echo, reply, unreach, udp} {
		tb.Add(&p, t0+int64(i))
	}
	var out []Delta
	tb.Flush(EndSensorStopped, collect(&out))
	got := map[uint8][3]any{}
	for _, d := range out {
		got[d.Protocol] = [3]any{d.HasICMP, d.ICMPType, d.ICMPCode}
	}
	assert.Equal(t, map[uint8][3]any{
		1:  {true, uint8(8), uint8(0)}, // the first packet with a header: the echo request
		58: {true, uint8(1), uint8(4)},
		17: {false, uint8(0), uint8(0)},
	}, got)
}

func TestAnnotateZeroAllocsAfterFirst(t *testing.T) {
	tb := newTable(t, nil)
	p := pkt(6, "10.0.0.1", 1, "10.0.0.2", 443, 60, 0)
	tb.Add(&p, t0)
	tb.Annotate(&p, flowmeta.AppTLS, []byte("a.example"))
	name := []byte("b.example")
	allocs := testing.AllocsPerRun(100, func() {
		tb.Add(&p, t0)
		tb.Annotate(&p, flowmeta.AppTLS, name) // a later finding of a named flow
	})
	assert.Zero(t, allocs)
}
