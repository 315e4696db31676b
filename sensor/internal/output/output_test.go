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
		j := NewJSONL(&buf, id)
		d := rec.d
		d.SrcPackets, d.SrcBytes, d.DstPackets, d.DstBytes, d.SrcTCPFlags, d.DstTCPFlags = rec.srcPkts, rec.srcBytes, rec.dstPkts, rec.dstBytes, rec.srcFlags, rec.dstFlags
		if d.EndReason == flow.EndNone {
			d.EndReason = flow.EndEvicted
			rec.d.EndReason = d.EndReason
		}
		require.NoError(t, j.Add(&d))
		require.NoError(t, j.Flush())
		require.Equal(t, string(restjson.Marshal(networkFlow(id, rec)))+"\n", buf.String())
	}
}

func TestJSONLWritesARecordWhenItEnds(t *testing.T) {
	var buf bytes.Buffer
	j := NewJSONL(&buf, "s1")
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
