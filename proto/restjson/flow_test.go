package restjson

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// oddSensorIDs need escaping in JSON, quoting or defusing in CSV, or both.
var oddSensorIDs = []string{
	"sensor-1", "", `we"ird<id>&`, "ünï\x01\x7f", "bad\xff\xfeutf8", "line\nbreak\r\t", "\u2028\u2029",
	"=1+2", "-5", "@x", " lead", ",comma", `\.`, "\u00a0nbsp", "'quote",
}

func randomAddr(r *rand.Rand) netip.Addr {
	var a [16]byte
	for i := range a {
		a[i] = byte(r.IntN(256))
	}
	switch r.IntN(8) {
	case 0:
		return netip.AddrFrom16(a) // IPv6
	case 1:
		return netip.AddrFrom16(a).WithZone([]string{"eth0", `e"t<h>`, "\x01"}[r.IntN(3)])
	case 2:
		return netip.AddrFrom16(netip.AddrFrom4([4]byte(a[:4])).As16()) // IPv4-mapped IPv6
	case 3:
		return netip.Addr{} // invalid: spelled "invalid IP"
	case 4:
		return netip.IPv6Unspecified()
	}
	return netip.AddrFrom4([4]byte(a[:4]))
}

func randomTime(r *rand.Rand) int64 {
	switch r.IntN(6) {
	case 0:
		return 0
	case 1:
		return math.MaxInt64
	case 2:
		return math.MinInt64 + r.Int64N(1e9)
	case 3:
		return -r.Int64N(4e18)
	case 4:
		return r.Int64N(4e18) / 1e9 * 1e9 // whole seconds
	}
	return 1_764_000_000_000_000_000 + r.Int64N(1e15)
}

func randomCount(r *rand.Rand) uint64 {
	switch r.IntN(4) {
	case 0:
		return 0
	case 1:
		return math.MaxUint64 - r.Uint64N(3)
	}
	return r.Uint64N(1 << uint(r.IntN(64)))
}

func randomFlow(r *rand.Rand) Flow {
	f := Flow{
		SensorID: oddSensorIDs[r.IntN(len(oddSensorIDs))],
		Protocol: uint8(r.IntN(256)),
		Src:      randomAddr(r), Dst: randomAddr(r),
		SrcPort: uint16(r.IntN(65536)), DstPort: uint16(r.IntN(65536)), VLAN: uint16(r.IntN(65536)),
		FirstSeen: randomTime(r), LastSeen: randomTime(r),
		SrcPackets: randomCount(r), SrcBytes: randomCount(r), DstPackets: randomCount(r), DstBytes: randomCount(r),
		SrcTCPFlags: uint8(r.IntN(256)), DstTCPFlags: uint8(r.IntN(256)),
		Status:    netwatchv1.FlowStatus(r.IntN(6) - 1), // unknown numbers too
		EndReason: netwatchv1.EndReason(r.IntN(10) - 1),
	}
	if r.IntN(2) == 0 {
		f.LastSeen = f.FirstSeen + r.Int64N(1e12)
		f.Status, f.EndReason = netwatchv1.FlowStatus(r.IntN(4)), netwatchv1.EndReason(r.IntN(7))
	}
	if r.IntN(10) == 0 {
		f.Status, f.EndReason = netwatchv1.FlowStatus(1000+r.IntN(1000)), netwatchv1.EndReason(-1000-r.IntN(1000))
	}
	if r.IntN(3) > 0 { // identity and enrichment: names from the wire and DNS, so odd text too
		text := func() string {
			if r.IntN(2) == 0 {
				return []string{"", "www.example.com", "tls", "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "US", "CLOUDFLARENET"}[r.IntN(6)]
			}
			return oddSensorIDs[r.IntN(len(oddSensorIDs))]
		}
		asn := func() uint32 { return []uint32{0, 13335, math.MaxUint32, r.Uint32()}[r.IntN(4)] }
		f.CommunityID, f.ServerName, f.Application = text(), text(), text()
		f.SrcName, f.DstName, f.SrcASName, f.DstASName = text(), text(), text(), text()
		f.SrcCountry, f.DstCountry, f.SrcASN, f.DstASN = text(), text(), asn(), asn()
	}
	return f
}

// checkFlow holds every encoding of f to the reflective encoder's output for
// f.Proto(): AppendFlow, Marshal (which dispatches to it), FlowFromProto and the CSV row.
func checkFlow(t *testing.T, f Flow) {
	t.Helper()
	m := f.Proto()
	generic := string(appendFields(nil, m.ProtoReflect()))
	require.Equal(t, generic, string(AppendFlow(nil, &f)), "%+v", f)
	require.Equal(t, generic, string(Marshal(m)), "%+v", f)
	require.True(t, json.Valid([]byte(generic)), generic)

	back, ok := FlowFromProto(m)
	if f.Src.IsValid() && f.Dst.IsValid() {
		require.True(t, ok, "%+v", f)
		require.Equal(t, f, back)
	} else {
		require.False(t, ok, "an invalid address has no spelling to parse back")
	}

	require.Equal(t, reflectiveCSV(t, m), string(AppendFlowCSV([]byte(nil), &f)), "%+v", f)
}

// TestFlowEncodersAreTheReflectiveEncoding: on many varied flows, with odd values
// (zero, negative and extreme times, IPv6 with and without zones, invalid
// addresses, maximum counters whose sums wrap, unknown enum numbers, sensor ids
// that need escaping), the flow encoders write exactly what the reflective encoder
// (and, for CSV, the reflective csv.Writer download) writes for the message.
func TestFlowEncodersAreTheReflectiveEncoding(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for range 20000 {
		checkFlow(t, randomFlow(r))
	}
	checkFlow(t, Flow{}) // all zero
}

// TestMarshalOfOtherNetworkFlowsIsFieldByField: a NetworkFlow that Proto did not
// build (a derived field disagrees, an address is not in netip's spelling, a
// timestamp is unset or out of range) is not taken for a Flow, and Marshal writes it
// field by field, exactly as before.
func TestMarshalOfOtherNetworkFlowsIsFieldByField(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	breaks := []func(m *netwatchv1.NetworkFlow){
		func(m *netwatchv1.NetworkFlow) { m.FlowKey = "k1" },
		func(m *netwatchv1.NetworkFlow) { m.FlowKey += "0" },
		func(m *netwatchv1.NetworkFlow) { m.SrcIp = "010.0.0.1" },
		func(m *netwatchv1.NetworkFlow) { m.DstIp = "::FFFF:10.0.0.1" },
		func(m *netwatchv1.NetworkFlow) { m.SrcIp = "=cmd|calc" },
		func(m *netwatchv1.NetworkFlow) { m.SrcPort = 70000 },
		func(m *netwatchv1.NetworkFlow) { m.DstPort = 1 << 16 },
		func(m *netwatchv1.NetworkFlow) { m.Protocol = 256 },
		func(m *netwatchv1.NetworkFlow) { m.VlanId = 65536 },
		func(m *netwatchv1.NetworkFlow) { m.ProtocolName = "TCP" },
		func(m *netwatchv1.NetworkFlow) { m.Bytes++ },
		func(m *netwatchv1.NetworkFlow) { m.Packets-- },
		func(m *netwatchv1.NetworkFlow) { m.Duration++ },
		func(m *netwatchv1.NetworkFlow) { m.FirstSeen = nil },
		func(m *netwatchv1.NetworkFlow) { m.LastSeen = nil },
		func(m *netwatchv1.NetworkFlow) { m.FirstSeen.Nanos = -1 },
		func(m *netwatchv1.NetworkFlow) { m.LastSeen.Nanos = 1e9 },
		func(m *netwatchv1.NetworkFlow) { m.LastSeen.Seconds = math.MaxInt64 },
		func(m *netwatchv1.NetworkFlow) { m.FirstSeen.Seconds = -1 << 40 },
		func(m *netwatchv1.NetworkFlow) { m.SrcTcpFlags = "SA" },
		func(m *netwatchv1.NetworkFlow) { m.DstTcpFlags = "<x>" },
	}
	for i := range 4000 {
		f := randomFlow(r)
		f.Src, f.Dst = netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("2001:db8::1")
		m := f.Proto()
		breaks[i%len(breaks)](m)
		_, ok := FlowFromProto(m)
		require.False(t, ok, "break %d: %v", i%len(breaks), m)
		require.Equal(t, string(appendFields(nil, m.ProtoReflect())), string(Marshal(m)))
	}
}

// TestFlowsInsideOtherMessages: the flows of a ListFlowsResponse and of the top
// talkers are written by the flow encoder, the rest of the message field by field.
func TestFlowsInsideOtherMessages(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	resp := &netwatchv1.ListFlowsResponse{Pagination: &netwatchv1.Pagination{TotalCount: 3, Limit: 3}}
	var want []string
	for range 3 {
		f := randomFlow(r)
		resp.Flows = append(resp.Flows, f.Proto())
		want = append(want, string(AppendFlow(nil, &f)))
	}
	assert.Equal(t, `{"flows":[`+strings.Join(want, ",")+`],"pagination":{"total_count":3,"has_more":false,"limit":3,"offset":0}}`,
		string(Marshal(resp)))
	assert.Equal(t, string(appendFields(nil, resp.ProtoReflect())), string(Marshal(resp)))
}

// TestFlowCSV: the header row is the JSON names of NetworkFlow, and a hostile sensor
// id is defused and quoted.
func TestFlowCSV(t *testing.T) {
	var names []string
	fields := (&netwatchv1.NetworkFlow{}).ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		names = append(names, fields.Get(i).JSONName())
	}
	assert.Equal(t, strings.Join(names, ",")+"\n", string(AppendFlowCSVHeader(nil)))
	// The identity and enrichment columns come last, in this order (tools read
	// columns by name, older ones stay where they were).
	assert.Equal(t, []string{"communityId", "serverName", "application", "srcName", "dstName", "srcAsn", "srcAsName",
		"srcCountry", "dstAsn", "dstAsName", "dstCountry"}, names[len(names)-11:])
	assert.Equal(t, "dstTcpFlags", names[len(names)-12])

	f := Flow{SensorID: "=HYPERLINK(\"http://x\",\"y\")", Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("::1"),
		FirstSeen: 1e9, LastSeen: 2e9 + 5e6, Protocol: 6, SrcPort: 1, DstPort: 2, SrcTCPFlags: 0x12,
		Status: netwatchv1.FlowStatus_FLOW_STATUS_ACTIVE, CommunityID: "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
		ServerName: "=evil.example", Application: "tls", SrcName: "laptop.lan", DstName: "a,b.example",
		SrcASN: 0, DstASN: 4294967295, DstASName: "CLOUDFLARENET", SrcCountry: "", DstCountry: "US"}
	rows, err := csv.NewReader(bytes.NewReader(AppendFlowCSV(AppendFlowCSVHeader(nil), &f))).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 2)
	row := map[string]string{}
	for i, name := range rows[0] {
		row[name] = rows[1][i]
	}
	assert.Equal(t, "'"+f.SensorID, row["sensorId"])
	assert.Equal(t, "1970-01-01T00:00:01Z", row["firstSeen"])
	assert.Equal(t, "1005", row["duration"])
	assert.Equal(t, "active", row["status"])
	assert.Equal(t, "", row["endReason"])
	assert.Equal(t, "AS", row["srcTcpFlags"])
	assert.Equal(t, f.ID(), row["flowKey"])
	assert.Equal(t, map[string]string{
		"communityId": f.CommunityID, "serverName": "'=evil.example", "application": "tls", "srcName": "laptop.lan",
		"dstName": "a,b.example", "srcAsn": "0", "srcAsName": "", "srcCountry": "", "dstAsn": "4294967295",
		"dstAsName": "CLOUDFLARENET", "dstCountry": "US",
	}, map[string]string{
		"communityId": row["communityId"], "serverName": row["serverName"], "application": row["application"],
		"srcName": row["srcName"], "dstName": row["dstName"], "srcAsn": row["srcAsn"], "srcAsName": row["srcAsName"],
		"srcCountry": row["srcCountry"], "dstAsn": row["dstAsn"], "dstAsName": row["dstAsName"], "dstCountry": row["dstCountry"],
	})
}

// TestCSVCell: a cell beginning with = + - @, a tab or a carriage return that is not
// a number is sent with a leading apostrophe; numbers, negative ones included, and
// ordinary values are sent as they are; the csv quoting comes after.
func TestCSVCell(t *testing.T) {
	for in, want := range map[string]string{
		"=1+2": "'=1+2", "@SUM(1)": "'@SUM(1)", "+x": "'+x", "-x": "'-x", "\tx": "'\tx", "\rx": "'\rx",
		"-5": "-5", "+5": "+5", "-5.25": "-5.25", "1e5": "1e5", "::1": "::1", "x=1": "x=1", "": "",
		"-1e+": "'-1e+", "-.": "'-.", "-1e5.5": "'-1e5.5", "-": "'-", "+": "'+", "-Inf": "'-Inf",
		"+NaN": "'+NaN", "-0x10": "'-0x10", "-1e": "'-1e", "-1.2.3": "'-1.2.3", "-.5": "-.5", "+3E-2": "+3E-2",
		"-5.": "-5.", "-2e+-3": "-2e+-3", "=HYPERLINK(\"http://x\")": "'=HYPERLINK(\"http://x\")", "a,b": "a,b",
	} {
		cell := csvCell([]byte("x,"+in), 2)
		require.Equal(t, "x,", string(cell[:2]))
		rec, err := csv.NewReader(bytes.NewReader(cell)).Read()
		require.NoError(t, err, "%q", in)
		assert.Equal(t, []string{"x", want}, rec, "%q", in)
		var sb strings.Builder
		w := csv.NewWriter(&sb)
		require.NoError(t, w.Write([]string{"x", want}))
		w.Flush()
		assert.Equal(t, sb.String(), string(cell)+"\n", "the bytes of a csv.Writer: %q", in)
	}
}

// FuzzFlowEncoding holds the flow encoders to the reflective ones on any flow.
func FuzzFlowEncoding(f *testing.F) {
	f.Add("sensor-1", uint8(6), []byte{10, 0, 0, 1}, []byte{0x20, 1, 0xd, 0xb8, 15: 1}, "", uint16(51000), uint16(443), uint16(0),
		int64(1_764_000_000_123_456_789), int64(1_764_000_001_000_000_000), uint64(3), uint64(180), uint64(2), uint64(1500),
		uint8(0x1b), uint8(0x12), int32(1), int32(2), "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "www.example.com", uint32(13335))
	f.Add(`=we"ird<id>`+"\xff", uint8(255), []byte{}, []byte{1, 2, 3}, "eth\"0", uint16(0), uint16(65535), uint16(4095),
		int64(math.MinInt64), int64(math.MaxInt64), uint64(math.MaxUint64), uint64(math.MaxUint64), uint64(1), uint64(1),
		uint8(0xff), uint8(0), int32(-7), int32(99), "=cmd|' /C calc'!A0", "a,b\n\"c\"\xff", uint32(math.MaxUint32))
	f.Fuzz(func(t *testing.T, sensor string, protocol uint8, src, dst []byte, zone string, srcPort, dstPort, vlan uint16,
		first, last int64, sp, sb, dp, db uint64, sf, df uint8, status, reason int32, id, name string, asn uint32) {
		addr := func(b []byte) netip.Addr {
			a, _ := netip.AddrFromSlice(b) // other lengths: the invalid address
			if a.Is6() {
				a = a.WithZone(zone)
			}
			return a
		}
		checkFlow(t, Flow{SensorID: sensor, Protocol: protocol, Src: addr(src), Dst: addr(dst), SrcPort: srcPort, DstPort: dstPort,
			VLAN: vlan, FirstSeen: first, LastSeen: last, SrcPackets: sp, SrcBytes: sb, DstPackets: dp, DstBytes: db,
			SrcTCPFlags: sf, DstTCPFlags: df, Status: netwatchv1.FlowStatus(status), EndReason: netwatchv1.EndReason(reason),
			CommunityID: id, ServerName: name, Application: zone, SrcName: name, DstName: sensor,
			SrcASN: asn, SrcASName: id, SrcCountry: zone, DstASN: ^asn, DstASName: name, DstCountry: id})
	})
}

var numberRE = regexp.MustCompile(`^[+-]?(\d+\.?\d*|\.\d+)([eE]\+?-?\d+)?$`)

// reflectiveCSV is the row the CSV download wrote for m before the flow encoder:
// each field as protoreflect gives it (strings raw, enums as EnumString, timestamps
// in RFC 3339), a formula defused, through a csv.Writer.
func reflectiveCSV(t *testing.T, m proto.Message) string {
	t.Helper()
	msg := m.ProtoReflect()
	fields := msg.Descriptor().Fields()
	row := make([]string, fields.Len())
	for i := range fields.Len() {
		fd := fields.Get(i)
		v := msg.Get(fd)
		var s string
		switch fd.Kind() {
		case protoreflect.StringKind:
			s = v.String()
		case protoreflect.Uint32Kind, protoreflect.Uint64Kind:
			s = strconv.FormatUint(v.Uint(), 10)
		case protoreflect.Int64Kind:
			s = strconv.FormatInt(v.Int(), 10)
		case protoreflect.EnumKind:
			s = EnumString(fd.Enum(), v.Enum())
		case protoreflect.MessageKind:
			if msg.Has(fd) {
				s = v.Message().Interface().(*timestamppb.Timestamp).AsTime().UTC().Format(time.RFC3339Nano)
			}
		default:
			t.Fatalf("NetworkFlow has a %v field %s the CSV oracle does not spell", fd.Kind(), fd.Name())
		}
		if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) && !numberRE.MatchString(s) {
			s = "'" + s
		}
		row[i] = s
	}
	var sb strings.Builder
	w := csv.NewWriter(&sb)
	require.NoError(t, w.Write(row))
	w.Flush()
	return sb.String()
}

// TestMarshalOfAFlowAllocatesNothing: Marshal hands a NetworkFlow that Proto built to
// the flow encoder, which allocates nothing beyond the output buffer (the field by
// field encoder allocates for every enum and timestamp).
func TestMarshalOfAFlowAllocatesNothing(t *testing.T) {
	f := Flow{SensorID: "s1", Protocol: 6, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("2001:db8::1"),
		SrcPort: 51000, DstPort: 443, FirstSeen: 1_764_000_000_123_456_789, LastSeen: 1_764_000_001_000_000_000,
		SrcPackets: 3, SrcBytes: 180, SrcTCPFlags: 0x12, Status: netwatchv1.FlowStatus_FLOW_STATUS_CLOSED,
		EndReason: netwatchv1.EndReason_END_REASON_FIN, CommunityID: "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
		ServerName: "www.example.com", Application: "tls", SrcName: "laptop.lan", DstName: "www.example.com",
		DstASN: 13335, DstASName: "CLOUDFLARENET", DstCountry: "US"}
	m := f.Proto()
	buf := make([]byte, 0, 4096)
	assert.Zero(t, testing.AllocsPerRun(100, func() { buf = Append(buf[:0], m) }))
	assert.Zero(t, testing.AllocsPerRun(100, func() { buf = AppendFlow(buf[:0], &f) }))
	assert.Zero(t, testing.AllocsPerRun(100, func() { buf = AppendFlowCSV(buf[:0], &f) }))
}
