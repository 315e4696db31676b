package pipeline

import (
	"context"
	"io"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/proto/flowmeta"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
	"netwatch.dev/sensor/internal/flow"
	"netwatch.dev/sensor/internal/inspect"
	"netwatch.dev/sensor/internal/testcollector"
)

// readToCollector reads a shared capture through the pipeline to a recording
// collector, with Community ID seed 7, and returns what the collector was sent.
func readToCollector(t *testing.T, name string) []*netwatchv1.FlowBatch {
	t.Helper()
	c := testcollector.StartRecorder(t, true)
	cfg := readConfig(t, name)
	cfg.Export.Collector, cfg.CommunityIDSeed = c.Addr, 7
	p, err := New(cfg, discard, io.Discard)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, p.Run(ctx)) // returns once every batch is acknowledged
	batches := c.Batches()
	require.NotEmpty(t, batches)
	return batches
}

// TestCollectorGetsFlowIdentity: the deltas a collector gets carry the flow's
// Community ID (with the configured seed, computed from the delta's own key) and
// an application label (the port's, as nothing inspects this capture's payload
// before the inspector lands; DNS either way), and the stats carry the inspection
// counters, dns_observations_dropped among them.
func TestCollectorGetsFlowIdentity(t *testing.T) {
	batches := readToCollector(t, "pcapplusplus-DnsPackets.pcap")
	var deltas, dnsFlows int
	for _, b := range batches {
		names := map[string]bool{}
		for _, c := range b.GetStats().GetInspect() {
			names[c.GetName()] = true
		}
		assert.True(t, names["dns_observations_dropped"], "SensorStats.inspect: %v", b.GetStats().GetInspect())
		for _, d := range b.GetDeltas() {
			deltas++
			k := d.GetKey()
			src, _ := netip.AddrFromSlice(k.GetSrcAddr())
			dst, _ := netip.AddrFromSlice(k.GetDstAddr())
			if k.GetProtocol() != 6 && k.GetProtocol() != 17 {
				continue
			}
			want := flowmeta.CommunityID(7, uint8(k.GetProtocol()), src, dst, uint16(k.GetSrcPort()), uint16(k.GetDstPort()), 0, 0, false)
			require.Equal(t, want, d.GetCommunityId(), "%v", k)
			require.NotEqual(t, flowmeta.CommunityID(0, uint8(k.GetProtocol()), src, dst, uint16(k.GetSrcPort()), uint16(k.GetDstPort()), 0, 0, false), d.GetCommunityId())
			if k.GetDstPort() == 53 || k.GetSrcPort() == 53 {
				dnsFlows++
				assert.Equal(t, "dns", d.GetApplication(), "%v", k)
			}
		}
	}
	assert.Greater(t, deltas, 100)
	assert.Greater(t, dnsFlows, 100)
}

// TestCollectorGetsDNSObservations: the DNS answers of a capture reach the
// collector in FlowBatch.dns. It needs the inspector's body (on main at 21079ec
// it collects nothing and this test skips saying so).
func TestCollectorGetsDNSObservations(t *testing.T) {
	if reflect.TypeFor[inspect.Inspector]().NumField() == 0 {
		t.Skip("inspect.Inspector is still the empty seam: it collects no DNS answers to transport")
	}
	batches := readToCollector(t, "pcapplusplus-DnsPackets.pcap")
	got := map[string]map[netip.Addr]bool{}
	n := 0
	for _, b := range batches {
		require.LessOrEqual(t, len(b.GetDns()), MaxDNSPerBatch)
		for _, o := range b.GetDns() {
			n++
			a, ok := netip.AddrFromSlice(o.GetAddr())
			require.True(t, ok, "addr %x", o.GetAddr())
			require.NotNil(t, o.GetSeen())
			if got[o.GetName()] == nil {
				got[o.GetName()] = map[netip.Addr]bool{}
			}
			got[o.GetName()][a] = true
		}
	}
	require.NotZero(t, n, "no DNS observations sent")
	// 19:15:30 www.google.com A 173.194.112.19 ...; 19:15:31 www.cplusplus.com A 184.172.109.16
	assert.True(t, got["www.google.com"][netip.MustParseAddr("173.194.112.19")], "%v", got["www.google.com"])
	assert.True(t, got["www.cplusplus.com"][netip.MustParseAddr("184.172.109.16")], "%v", got["www.cplusplus.com"])
}

// submitted is one Submit of the writer to the collector link.
type submitted struct {
	deltas []*netwatchv1.FlowDelta
	dns    []*netwatchv1.DnsObservation
	stats  *netwatchv1.SensorStats
}

// linkRecorder stands in for the exporter (the collector link) behind the writer:
// TestCollectorGetsDNSObservations covers the real one once the inspector fills
// batches; this checks the writer's side with answers the test makes.
type linkRecorder struct{ got []submitted }

func (r *linkRecorder) Submit(deltas []*netwatchv1.FlowDelta, dns []*netwatchv1.DnsObservation, stats *netwatchv1.SensorStats) {
	r.got = append(r.got, submitted{deltas, dns, stats})
}

func counterMap(cs []*netwatchv1.CounterValue) map[string]uint64 {
	m := map[string]uint64{}
	for _, c := range cs {
		m[c.GetName()] = c.GetValue()
	}
	return m
}

// TestDNSAnswersGoWithTheNextBatch: a shard's DNS answers go to the collector
// with its next batch, at most MaxDNSPerBatch of them, the rest counted as
// dns_observations_dropped; the shards' inspection counters are summed by name.
func TestDNSAnswersGoWithTheNextBatch(t *testing.T) {
	o := newOutputs(2, "eth0")
	rec := &linkRecorder{}
	o.exporter = rec
	seen := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC).UnixNano()

	b := o.buffer()
	for i := range MaxDNSPerBatch + 5 {
		a := inspect.DNSAnswer{Name: "host.example.org", Addr: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), TTL: uint32(i), Seen: seen}
		if i == 1 {
			a.Name, a.Canonical, a.Addr = "www.example.org", "cdn.example.net", netip.MustParseAddr("2001:db8::5")
		}
		b.addDNS(&a)
	}
	o.insp[0] = []inspect.Counter{{Name: "dns_malformed", Value: 2}, {Name: "tls_malformed", Value: 1}}
	o.insp[1] = []inspect.Counter{{Name: "dns_malformed", Value: 3}}
	o.write(b)
	b.reset()

	require.Len(t, rec.got, 1)
	dns := rec.got[0].dns
	require.Equal(t, MaxDNSPerBatch, len(dns))
	assert.Equal(t, "host.example.org", dns[0].GetName())
	assert.Equal(t, []byte{10, 0, 0, 0}, dns[0].GetAddr())
	assert.Equal(t, seen, dns[0].GetSeen().AsTime().UnixNano())
	assert.Equal(t, "www.example.org", dns[1].GetName())
	assert.Equal(t, "cdn.example.net", dns[1].GetCanonical())
	assert.Equal(t, netip.MustParseAddr("2001:db8::5").AsSlice(), dns[1].GetAddr())
	assert.Equal(t, uint32(MaxDNSPerBatch-1), dns[MaxDNSPerBatch-1].GetTtl())
	assert.Equal(t, map[string]uint64{"dns_observations_dropped": 5, "dns_malformed": 5, "tls_malformed": 1},
		counterMap(rec.got[0].stats.GetInspect()))

	// The buffer comes back empty; the next batch has only its own answers, and
	// the dropped count stays (it is cumulative).
	assert.Empty(t, b.dns)
	assert.Zero(t, b.dnsDropped)
	b.addDNS(&inspect.DNSAnswer{Name: "a.example", Addr: netip.MustParseAddr("192.0.2.1"), Seen: seen})
	b.addDNS(&inspect.DNSAnswer{Name: "bad.example", Seen: seen}) // no address: not sent
	o.write(b)
	require.Len(t, rec.got, 2)
	require.Len(t, rec.got[1].dns, 1)
	assert.Equal(t, "a.example", rec.got[1].dns[0].GetName())
	assert.Equal(t, uint64(5), counterMap(rec.got[1].stats.GetInspect())["dns_observations_dropped"])
}

// TestWriterComputesCommunityIDWithTheSeed: the writer fills the deltas'
// community_id with the pipeline's seed.
func TestWriterComputesCommunityIDWithTheSeed(t *testing.T) {
	o := newOutputs(1, "eth0")
	rec := &linkRecorder{}
	o.exporter, o.seed = rec, 1
	b := o.buffer()
	b.deltas = append(b.deltas, identityDeltaForTest())
	o.write(b)
	require.Len(t, rec.got, 1)
	require.Len(t, rec.got[0].deltas, 1)
	// The spec's baseline (seed 1): TCP 1.2.3.4:1122 → 5.6.7.8:3344.
	assert.Equal(t, "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk=", rec.got[0].deltas[0].GetCommunityId())
}

func identityDeltaForTest() flow.Delta {
	var d flow.Delta
	d.Protocol = 6
	d.SrcAddr, d.DstAddr = netip.MustParseAddr("::ffff:1.2.3.4").As16(), netip.MustParseAddr("::ffff:5.6.7.8").As16()
	d.SrcPort, d.DstPort = 1122, 3344
	d.FirstSeen, d.LastSeen = 1, 2
	return d
}
