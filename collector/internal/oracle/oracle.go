// Package oracle loads the flow tables computed by shared/tools/flow-oracle for the
// shared test captures (common/oracle/testdata/pcaps/expected/*.jsonl) as flow deltas, so
// collector tests can query a store holding real traffic. Test support only: it
// reads files, it does not import the sensor.
package oracle

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// Dir is the expected/ directory relative to a collector package directory
// (collector/internal/X).
const Dir = "../../../common/oracle/testdata/pcaps/expected"

// Flow is one oracle flow, as loaded.
type Flow struct {
	Sensor              string // the capture's name: one sensor per capture
	Src, Dst            netip.Addr
	SrcPort, DstPort    uint16
	Protocol            uint8
	FwdPackets, FwdB    uint64
	RevPackets, RevB    uint64
	FirstSeen, LastSeen time.Time
	Status              netwatchv1.FlowStatus // assigned round robin: active, idle, closed
}

// Bytes and Packets are both directions'.
func (f *Flow) Bytes() uint64   { return f.FwdB + f.RevB }
func (f *Flow) Packets() uint64 { return f.FwdPackets + f.RevPackets }

type row struct {
	SrcIP      string  `json:"src_ip"`
	SrcPort    uint16  `json:"src_port"`
	DstIP      string  `json:"dst_ip"`
	DstPort    uint16  `json:"dst_port"`
	Protocol   uint8   `json:"protocol"`
	FwdPackets uint64  `json:"fwd_packets"`
	FwdBytes   uint64  `json:"fwd_bytes"`
	RevPackets uint64  `json:"rev_packets"`
	RevBytes   uint64  `json:"rev_bytes"`
	FirstSeen  float64 `json:"first_seen"`
	LastSeen   float64 `json:"last_seen"`
}

// Load reads every dir/*.jsonl (names sorted); a capture's flows get its name
// (without .jsonl) as sensor id. Timestamps are rounded to the microsecond (the
// oracle writes seconds with six decimals).
func Load(dir string) ([]Flow, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var out []Flow
	statuses := []netwatchv1.FlowStatus{netwatchv1.FlowStatus_FLOW_STATUS_ACTIVE, netwatchv1.FlowStatus_FLOW_STATUS_IDLE, netwatchv1.FlowStatus_FLOW_STATUS_CLOSED}
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		sensor := strings.TrimSuffix(filepath.Base(name), ".jsonl")
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			var r row
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				f.Close()
				return nil, fmt.Errorf("%s:%d: %w", name, n, err)
			}
			src, err1 := netip.ParseAddr(r.SrcIP)
			dst, err2 := netip.ParseAddr(r.DstIP)
			if err1 != nil || err2 != nil {
				f.Close()
				return nil, fmt.Errorf("%s:%d: bad address", name, n)
			}
			out = append(out, Flow{
				Sensor: sensor, Src: src, Dst: dst, SrcPort: r.SrcPort, DstPort: r.DstPort, Protocol: r.Protocol,
				FwdPackets: r.FwdPackets, FwdB: r.FwdBytes, RevPackets: r.RevPackets, RevB: r.RevBytes,
				FirstSeen: micros(r.FirstSeen), LastSeen: micros(r.LastSeen), Status: statuses[len(out)%3],
			})
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func micros(s float64) time.Time {
	return time.UnixMicro(int64(math.Round(s * 1e6))).UTC()
}

// Delta is f as one flow delta carrying all of its traffic.
func (f *Flow) Delta() *netwatchv1.FlowDelta {
	return &netwatchv1.FlowDelta{
		Key: &netwatchv1.FlowKey{Protocol: uint32(f.Protocol), SrcAddr: f.Src.AsSlice(), SrcPort: uint32(f.SrcPort),
			DstAddr: f.Dst.AsSlice(), DstPort: uint32(f.DstPort)},
		SrcPackets: f.FwdPackets, SrcBytes: f.FwdB, DstPackets: f.RevPackets, DstBytes: f.RevB,
		FirstSeen: timestamppb.New(f.FirstSeen), LastSeen: timestamppb.New(f.LastSeen), Status: f.Status,
	}
}

// BySensor groups the flows' deltas by sensor, for store.Apply.
func BySensor(flows []Flow) map[string][]*netwatchv1.FlowDelta {
	out := map[string][]*netwatchv1.FlowDelta{}
	for i := range flows {
		out[flows[i].Sensor] = append(out[flows[i].Sensor], flows[i].Delta())
	}
	return out
}
