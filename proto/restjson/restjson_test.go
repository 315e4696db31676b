package restjson_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	netwatchv1 "netwatch.dev/proto/netwatch/v1"
	"netwatch.dev/proto/restjson"
)

func TestNetworkFlowUsesSeedNames(t *testing.T) {
	first := time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC)
	f := &netwatchv1.NetworkFlow{
		FlowKey: "k1", SrcIp: "192.168.1.10", DstIp: "2001:db8::1", SrcPort: 51000, DstPort: 443,
		Protocol: 6, ProtocolName: "tcp", Bytes: 1<<63 + 1, Packets: 3,
		FirstSeen: timestamppb.New(first), LastSeen: timestamppb.New(first.Add(1500 * time.Millisecond)),
		Duration: 1500, Status: netwatchv1.FlowStatus_FLOW_STATUS_ACTIVE,
		EndReason: netwatchv1.EndReason_END_REASON_IDLE_TIMEOUT, SrcTcpFlags: "S<A>",
	}
	out := restjson.Marshal(f)
	assert.Contains(t, string(out), `"bytes":9223372036854775809`, "64-bit counters are numbers, exact")
	assert.Contains(t, string(out), `"srcTcpFlags":"S\u003cA\u003e"`, "HTML-safe escaping")

	var got map[string]any
	require.NoError(t, json.Unmarshal(out, &got), "%s", out)
	for _, k := range []string{"flowKey", "srcIP", "dstIP", "srcPort", "dstPort", "protocol", "protocolName",
		"bytes", "packets", "firstSeen", "lastSeen", "duration", "status", "srcPackets", "srcBytes",
		"dstPackets", "dstBytes", "endReason", "sensorId", "vlanId"} {
		assert.Contains(t, got, k)
	}
	assert.Equal(t, "active", got["status"])
	assert.Equal(t, "idle-timeout", got["endReason"])
	assert.Equal(t, "2026-11-25T10:00:00.123456Z", got["firstSeen"])
	assert.Equal(t, float64(0), got["srcPackets"], "zero values are written")
}

func TestSnakeCaseWhereTheSeedSaysSo(t *testing.T) {
	out := restjson.Marshal(&netwatchv1.ListFlowsResponse{Pagination: &netwatchv1.Pagination{TotalCount: 7, HasMore: true, Limit: 100}})
	assert.JSONEq(t, `{"flows":[],"pagination":{"total_count":7,"has_more":true,"limit":100,"offset":0}}`, string(out))

	h := restjson.Marshal(&netwatchv1.GetHealthResponse{Status: "healthy", CaptureActive: true,
		InterfaceStatus: netwatchv1.InterfaceStatus_INTERFACE_STATUS_UP})
	var got map[string]any
	require.NoError(t, json.Unmarshal(h, &got))
	assert.Equal(t, true, got["capture_active"])
	assert.Equal(t, "up", got["interface_status"])
	assert.Nil(t, got["timestamp"], "unset timestamp is null")
}

func TestEnumNamesRoundTrip(t *testing.T) {
	ed := netwatchv1.EndReason(0).Descriptor()
	for i := 1; i < ed.Values().Len(); i++ {
		n := ed.Values().Get(i).Number()
		s := restjson.EnumString(ed, n)
		back, ok := restjson.EnumValue(ed, s)
		require.True(t, ok, s)
		assert.Equal(t, n, back)
	}
	assert.Equal(t, "sensor-stopped", restjson.EnumString(ed, 6))
	_, ok := restjson.EnumValue(ed, "unspecified")
	assert.False(t, ok, "UNSPECIFIED is not a valid choice")
	_, ok = restjson.EnumValue(ed, "bogus")
	assert.False(t, ok)
}

func TestInvalidUTF8AndControlCharacters(t *testing.T) {
	out := restjson.Marshal(&netwatchv1.ErrorDetail{Message: "bad\xff\x01\n", Details: map[string]string{"b": "2", "a": "1"}})
	require.True(t, json.Valid(out), "%s", out)
	assert.Contains(t, string(out), `"message":"bad\ufffd\u0001\n"`)
	assert.Contains(t, string(out), `"details":{"a":"1","b":"2"}`, "map keys sorted")
}
