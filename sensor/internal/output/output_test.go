package output

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"netwatch.dev/proto/flowmeta"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
	"netwatch.dev/proto/restjson"
	"netwatch.dev/sensor/internal/flow"
	"netwatch.dev/sensor/internal/inspect"
)

func randomRecord(r *rand.Rand) *record {
	var d flow.Delta
	d.Protocol = uint8(r.IntN(256))
	d.IsIPv6 = r.IntN(2) == 0
	if d.IsIPv6 {
		for i := range d.SrcAddr {
			d.SrcAddr[i], d.DstAddr[i] = byte(r.IntN(256)), byte(r.IntN(256))
		}
	} else {
		s, t := netip.AddrFrom4([4]byte{10, byte(r.IntN(256)), 0, 1}).As16(), netip.AddrFrom4([4]byte{192, 168, byte(r.IntN(256)), 2}).As16()
		d.SrcAddr, d.DstAddr = s, t
	}
	d.SrcPort, d.DstPort, d.VLAN = uint16(r.IntN(65536)), uint16(r.IntN(65536)), uint16(r.IntN(4096))
	d.FirstSeen = r.Int64N(4e18)
	d.LastSeen = d.FirstSeen + r.Int64N(1e12)
	d.Status = flow.Status(r.IntN(3))
	d.EndReason = flow.EndReason(r.IntN(7))
	return &record{d: d, srcPkts: r.Uint64(), srcBytes: r.Uint64(), dstPkts: r.Uint64N(1e6), dstBytes: r.Uint64N(1e9),
		srcFlags: uint8(r.IntN(256)), dstFlags: uint8(r.IntN(256))}
}

// networkFlow is the record as the REST API's NetworkFlow message, field by field.
func networkFlow(sensorID string, r *record) *netwatchv1.NetworkFlow {
	d := &r.d
	src, dst := d.Src(), d.Dst()
	return &netwatchv1.NetworkFlow{
		FlowKey:      flowmeta.ID(sensorID, d.Protocol, src, d.SrcPort, dst, d.DstPort, d.FirstSeen),
		SrcIp:        src.String(),
		DstIp:        dst.String(),
		SrcPort:      uint32(d.SrcPort),
		DstPort:      uint32(d.DstPort),
		Protocol:     uint32(d.Protocol),
		ProtocolName: flowmeta.ProtocolName(d.Protocol),
		Bytes:        r.srcBytes + r.dstBytes,
		Packets:      r.srcPkts + r.dstPkts,
		FirstSeen:    timestamppb.New(time.Unix(0, d.FirstSeen)),
		LastSeen:     timestamppb.New(time.Unix(0, d.LastSeen)),
		Duration:     (d.LastSeen - d.FirstSeen) / int64(time.Millisecond),
		Status:       Status(d.Status),
		SrcPackets:   r.srcPkts,
		SrcBytes:     r.srcBytes,
		DstPackets:   r.dstPkts,
		DstBytes:     r.dstBytes,
		EndReason:    EndReason(d.EndReason),
		SensorId:     sensorID,
		VlanId:       uint32(d.VLAN),
		SrcTcpFlags:  flowmeta.TCPFlags(r.srcFlags),
		DstTcpFlags:  flowmeta.TCPFlags(r.dstFlags),
	}
}

// TestLineIsTheRecordsNetworkFlow: a --output jsonl line is the REST JSON of the
// record's NetworkFlow, byte for byte (restjson's tests hold its flow encoder to the
// reflective encoding).
func TestLineIsTheRecordsNetworkFlow(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for i := 0; i < 2000; i++ {
		rec := randomRecord(r)
		id := []string{"sensor-1", `we"ird<id>`, "ünï\x01"}[i%3]
		var buf bytes.Buffer
		seed := uint16(r.IntN(3)) * 0x7fff
		j := NewJSONL(&buf, id, seed)
		d := rec.d
		d.SrcPackets, d.SrcBytes, d.DstPackets, d.DstBytes, d.SrcTCPFlags, d.DstTCPFlags = rec.srcPkts, rec.srcBytes, rec.dstPkts, rec.dstBytes, rec.srcFlags, rec.dstFlags
		if d.EndReason == flow.EndNone {
			d.EndReason = flow.EndEvicted
			rec.d.EndReason = d.EndReason
		}
		require.NoError(t, j.Add(&d))
		require.NoError(t, j.Flush())
		nf := networkFlow(id, rec)
		nf.CommunityId = flowmeta.CommunityID(seed, d.Protocol, d.Src(), d.Dst(), d.SrcPort, d.DstPort, d.ICMPType, d.ICMPCode, d.HasICMP)
		nf.Application = flowmeta.PortApp(d.Protocol, d.SrcPort, d.DstPort).String()
		require.Equal(t, string(restjson.Marshal(nf))+"\n", buf.String())
	}
}

func TestJSONLWritesARecordWhenItEnds(t *testing.T) {
	var buf bytes.Buffer
	j := NewJSONL(&buf, "s1", 0)
	d := randomRecord(rand.New(rand.NewPCG(1, 1))).d
	d.EndReason, d.SrcPackets, d.SrcBytes, d.DstPackets, d.DstBytes = flow.EndNone, 2, 100, 1, 60
	require.NoError(t, j.Add(&d))
	assert.Equal(t, 1, j.Open())
	d.EndReason, d.SrcPackets, d.SrcBytes, d.DstPackets, d.DstBytes = flow.EndIdleTimeout, 1, 40, 0, 0
	require.NoError(t, j.Add(&d))
	require.NoError(t, j.Flush())
	assert.Equal(t, 0, j.Open())
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 1)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &got))
	assert.Equal(t, float64(3), got["srcPackets"])
	assert.Equal(t, float64(140), got["srcBytes"])
	assert.Equal(t, float64(200), got["bytes"])
	assert.Equal(t, "idle-timeout", got["endReason"])
}

// identityDelta is a TCP flow with a payload label and a server name.
func identityDelta() flow.Delta {
	var d flow.Delta
	d.Protocol = 6
	d.SrcAddr = netip.MustParseAddr("192.168.1.10").As16()
	d.DstAddr = netip.MustParseAddr("93.184.216.34").As16()
	d.SrcPort, d.DstPort = 51000, 8443
	d.FirstSeen, d.LastSeen = 1_764_000_000_000_000_000, 1_764_000_001_000_000_000
	d.SrcPackets, d.SrcBytes = 3, 300
	d.Status, d.EndReason = flow.StatusClosed, flow.EndFIN
	d.App, d.ServerName = flowmeta.AppHTTP, "www.example.com:8443"
	return d
}

// jsonKeys returns the keys of one JSON object in order, failing on a duplicate.
func jsonKeys(t *testing.T, line string) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	tok, err := dec.Token()
	require.NoError(t, err)
	require.Equal(t, json.Delim('{'), tok)
	var keys []string
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		require.NoError(t, err)
		k := tok.(string)
		require.False(t, seen[k], "key %q twice in %s", k, line)
		seen[k] = true
		keys = append(keys, k)
		var v json.RawMessage
		require.NoError(t, dec.Decode(&v))
	}
	return keys
}

// TestJSONLIdentityFields: a line carries communityId (with the configured seed),
// serverName and application after the NetworkFlow view's fields, once each; the
// label falls back to the port's service; a label or name seen in an earlier delta
// of the record stays.
func TestJSONLIdentityFields(t *testing.T) {
	d := identityDelta()
	var buf bytes.Buffer
	j := NewJSONL(&buf, "s1", 9)
	open := d
	open.EndReason = flow.EndNone
	require.NoError(t, j.Add(&open))
	last := d
	last.App, last.ServerName = flowmeta.AppNone, "" // not repeated in the last delta
	require.NoError(t, j.Add(&last))
	other := identityDelta()
	other.App, other.ServerName, other.FirstSeen = flowmeta.AppNone, "", d.FirstSeen+1 // port fallback
	require.NoError(t, j.Add(&other))
	require.NoError(t, j.Flush())
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 2)

	keys := jsonKeys(t, lines[0])
	viewKeys := jsonKeys(t, string(restjson.AppendFlow(nil, &restjson.Flow{})))
	require.Equal(t, viewKeys, keys, "a line has the REST flow view's keys, once each")

	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &got))
	wantID := flowmeta.CommunityID(9, 6, d.Src(), d.Dst(), 51000, 8443, 0, 0, false)
	assert.Equal(t, wantID, got["communityId"])
	assert.NotEqual(t, flowmeta.CommunityID(0, 6, d.Src(), d.Dst(), 51000, 8443, 0, 0, false), wantID)
	assert.Equal(t, "www.example.com:8443", got["serverName"])
	assert.Equal(t, "http", got["application"])

	require.NoError(t, json.Unmarshal([]byte(lines[1]), &got))
	assert.Equal(t, "", got["serverName"])
	assert.Equal(t, "tls", got["application"]) // 8443
}

func TestFlowDeltaIdentity(t *testing.T) {
	d := identityDelta()
	m := FlowDelta(&d, 0)
	assert.Equal(t, flowmeta.CommunityID(0, 6, d.Src(), d.Dst(), 51000, 8443, 0, 0, false), m.GetCommunityId())
	assert.Equal(t, "www.example.com:8443", m.GetServerName())
	assert.Equal(t, "http", m.GetApplication())
	assert.Len(t, m.GetKey().GetSrcAddr(), 4)

	// ICMP: the type and code, not the ports, go into the ID; the seed matters.
	var e flow.Delta
	e.Protocol, e.IsIPv6 = 58, true
	e.SrcAddr = netip.MustParseAddr("fe80::200:86ff:fe05:80da").As16()
	e.DstAddr = netip.MustParseAddr("fe80::260:97ff:fe07:69ea").As16()
	e.ICMPType, e.HasICMP = 135, true
	m = FlowDelta(&e, 0)
	assert.Equal(t, "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=", m.GetCommunityId()) // the spec's baseline
	assert.Equal(t, "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY=", FlowDelta(&e, 1).GetCommunityId())
	assert.Equal(t, "", m.GetApplication())
	e.HasICMP = false
	assert.Equal(t, "", FlowDelta(&e, 0).GetCommunityId())

	// A port label when the payload showed none.
	d.App = flowmeta.AppNone
	d.Protocol, d.DstPort = 17, 53
	assert.Equal(t, "dns", FlowDelta(&d, 0).GetApplication())
}

// TestServerNameOutsideTheContractIsLeftOut: a name the collector would refuse
// the batch for (too long, upper case, a quote) is sent and written as "".
func TestServerNameOutsideTheContractIsLeftOut(t *testing.T) {
	d := identityDelta()
	for name, want := range map[string]string{
		"a-b_c.example:443":      "a-b_c.example:443",
		strings.Repeat("a", 253): strings.Repeat("a", 253),
		strings.Repeat("a", 254): "",
		"Example.com":            "",
		`exa"mple.com`:           "",
		"caf\u00e9.example":      "",
		"":                       "",
	} {
		d.ServerName = name
		assert.Equal(t, want, FlowDelta(&d, 0).GetServerName(), "%q", name)
		var buf bytes.Buffer
		j := NewJSONL(&buf, "s1", 0)
		require.NoError(t, j.Add(&d))
		require.NoError(t, j.Flush())
		var got map[string]any
		require.NoError(t, json.Unmarshal(buf.Bytes(), &got))
		assert.Equal(t, want, got["serverName"], "%q", name)
	}
}

func TestDNSObservation(t *testing.T) {
	a := inspect.DNSAnswer{Name: "www.example.com", Canonical: "edge.example.net",
		Addr: netip.MustParseAddr("::ffff:192.0.2.7"), TTL: 300, Seen: 1_764_000_000_123_000_000}
	m := DNSObservation(&a)
	require.NotNil(t, m)
	assert.Equal(t, "www.example.com", m.GetName())
	assert.Equal(t, "edge.example.net", m.GetCanonical())
	assert.Equal(t, []byte{192, 0, 2, 7}, m.GetAddr())
	assert.Equal(t, uint32(300), m.GetTtl())
	assert.Equal(t, a.Seen, m.GetSeen().AsTime().UnixNano())
	a.Addr = netip.MustParseAddr("2001:db8::1")
	assert.Len(t, DNSObservation(&a).GetAddr(), 16)
	a.Addr = netip.Addr{}
	assert.Nil(t, DNSObservation(&a))
}
