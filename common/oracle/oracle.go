// Package oracle reads the expected flows that flow-oracle (an independent,
// tshark-based implementation written for these tests; testdata/pcaps/README.md
// states its flow semantics) computed for the test captures in
// testdata/pcaps (and testdata/derived), and compares Netwatch's flows with them.
// It is the one reader of expected/*.jsonl and *.summary.json: the sensor's tests
// compare with Flow (Load, Fold, Compare), the collector's put the same flows in a
// store as flow deltas (LoadStored, Stored.Delta, BySensor). Tests only.
package oracle

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// testdata is the directory of the captures, found from this file's own location
// (so callers in any package, at any depth, name the same files).
var testdata = func() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	return filepath.Join(filepath.Dir(file), "testdata")
}()

func mustDir(sub string) string {
	dir := filepath.Join(testdata, sub)
	if st, err := os.Stat(dir); testdata == "" || !filepath.IsAbs(testdata) || err != nil || !st.IsDir() {
		// Tests only: a test binary built with -trimpath, or moved away from the
		// source tree, cannot find the captures.
		panic(fmt.Sprintf("oracle: the test captures are not at %q (this package's source directory; built with -trimpath?)", dir))
	}
	return dir
}

// Dir is the absolute path of the test captures, testdata/pcaps (with expected/).
func Dir() string { return mustDir("pcaps") }

// DerivedDir is the absolute path of the captures cut from Dir's for particular
// tests, testdata/derived (with their own expected/).
func DerivedDir() string { return mustDir("derived") }

// Path is the absolute path of the capture file name in Dir.
func Path(name string) string { return filepath.Join(Dir(), name) }

// Flow is one flow in comparable form: the oracle's fields, with times in integer
// microseconds since the epoch (the oracle truncates, it does not round).
type Flow struct {
	Proto                   uint8
	Src                     string
	SrcPort                 uint16
	Dst                     string
	DstPort                 uint16
	FwdPackets, FwdBytes    uint64 // sent by the initiator (Src)
	RevPackets, RevBytes    uint64
	FirstSeenUS, LastSeenUS int64
}

// SrcAddr and DstAddr are Src and Dst parsed (the zero Addr if they are not
// addresses: Load checks that the expected flows' are).
func (f Flow) SrcAddr() netip.Addr { a, _ := netip.ParseAddr(f.Src); return a }
func (f Flow) DstAddr() netip.Addr { a, _ := netip.ParseAddr(f.Dst); return a }

// FirstSeen and LastSeen are the flow's times, UTC.
func (f Flow) FirstSeen() time.Time { return time.UnixMicro(f.FirstSeenUS).UTC() }
func (f Flow) LastSeen() time.Time  { return time.UnixMicro(f.LastSeenUS).UTC() }

// Key names the flow with its orientation.
func (f Flow) Key() string {
	return fmt.Sprintf("%d %s:%d -> %s:%d", f.Proto, f.Src, f.SrcPort, f.Dst, f.DstPort)
}

// pairKey names the flow without orientation.
func pairKey(proto uint8, a string, ap uint16, b string, bp uint16) string {
	x, y := fmt.Sprintf("%s:%d", a, ap), fmt.Sprintf("%s:%d", b, bp)
	if y < x {
		x, y = y, x
	}
	return fmt.Sprintf("%d %s %s", proto, x, y)
}

// Summary is expected/NAME.summary.json.
type Summary struct {
	Frames                uint64 `json:"frames"`
	IPPackets             uint64 `json:"ip_packets"`
	IPBytes               uint64 `json:"ip_bytes"`
	Flows                 int    `json:"flows"`
	NonIPFrames           uint64 `json:"non_ip_frames"`
	MalformedIPFrames     uint64 `json:"malformed_ip_frames"`
	FragmentsAttributed   uint64 `json:"fragments_attributed"`
	FragmentsUnattributed uint64 `json:"fragments_unattributed"`
}

// line is one line of expected/NAME.jsonl.
type line struct {
	SrcIP      string      `json:"src_ip"`
	SrcPort    uint16      `json:"src_port"`
	DstIP      string      `json:"dst_ip"`
	DstPort    uint16      `json:"dst_port"`
	Protocol   uint8       `json:"protocol"`
	Packets    uint64      `json:"packets"`
	FwdPackets uint64      `json:"fwd_packets"`
	FwdBytes   uint64      `json:"fwd_bytes"`
	RevPackets uint64      `json:"rev_packets"`
	RevBytes   uint64      `json:"rev_bytes"`
	FirstSeen  json.Number `json:"first_seen"`
	LastSeen   json.Number `json:"last_seen"`
}

// Captures lists the capture files in dir, sorted.
func Captures(dir string) ([]string, error) {
	var names []string
	for _, pat := range []string{"*.pcap", "*.pcapng"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return nil, err
		}
		names = append(names, m...)
	}
	slices.Sort(names)
	return names, nil
}

// Name is a capture's name without directory and extension, as used in expected/.
func Name(path string) string {
	return strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), ".pcapng"), ".pcap")
}

// Load reads dir/expected/NAME.jsonl and NAME.summary.json.
func Load(dir, name string) ([]Flow, Summary, error) {
	var sum Summary
	f, err := os.Open(filepath.Join(dir, "expected", name+".jsonl"))
	if err != nil {
		return nil, sum, err
	}
	defer f.Close()
	var flows []Flow
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.UseNumber()
		var o line
		if err := dec.Decode(&o); err != nil {
			return nil, sum, fmt.Errorf("%s.jsonl: %w", name, err)
		}
		first, err1 := micros(o.FirstSeen)
		last, err2 := micros(o.LastSeen)
		_, err3 := netip.ParseAddr(o.SrcIP)
		_, err4 := netip.ParseAddr(o.DstIP)
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil || o.Packets != o.FwdPackets+o.RevPackets {
			return nil, sum, fmt.Errorf("%s.jsonl: bad line %s", name, sc.Text())
		}
		flows = append(flows, Flow{
			Proto: o.Protocol, Src: o.SrcIP, SrcPort: o.SrcPort, Dst: o.DstIP, DstPort: o.DstPort,
			FwdPackets: o.FwdPackets, FwdBytes: o.FwdBytes, RevPackets: o.RevPackets, RevBytes: o.RevBytes,
			FirstSeenUS: first, LastSeenUS: last,
		})
	}
	if err := sc.Err(); err != nil {
		return nil, sum, err
	}
	b, err := os.ReadFile(filepath.Join(dir, "expected", name+".summary.json"))
	if err != nil {
		return nil, sum, err
	}
	return flows, sum, json.Unmarshal(b, &sum)
}

// Stored is the collector tests' view of an expected flow: one the store holds,
// with the capture's name as its sensor id and a status (LoadStored assigns them
// round robin: active, idle, closed, so filters on status find some of each).
type Stored struct {
	Sensor               string
	Src, Dst             netip.Addr
	SrcPort, DstPort     uint16
	Protocol             uint8
	FwdPackets, FwdBytes uint64 // sent by the initiator (Src)
	RevPackets, RevBytes uint64
	FirstSeen, LastSeen  time.Time // UTC, whole microseconds
	Status               netwatchv1.FlowStatus
}

// Stored is f as the collector holds it for sensor, with status.
func (f Flow) Stored(sensor string, status netwatchv1.FlowStatus) Stored {
	return Stored{
		Sensor: sensor, Src: f.SrcAddr(), Dst: f.DstAddr(), SrcPort: f.SrcPort, DstPort: f.DstPort, Protocol: f.Proto,
		FwdPackets: f.FwdPackets, FwdBytes: f.FwdBytes, RevPackets: f.RevPackets, RevBytes: f.RevBytes,
		FirstSeen: f.FirstSeen(), LastSeen: f.LastSeen(), Status: status,
	}
}

// LoadStored loads the expected flows of every capture in Dir (by name, sorted),
// each capture's with its name as sensor id, statuses assigned round robin over
// all of them.
func LoadStored() ([]Stored, error) {
	dir := Dir()
	names, err := filepath.Glob(filepath.Join(dir, "expected", "*.jsonl"))
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	statuses := []netwatchv1.FlowStatus{netwatchv1.FlowStatus_FLOW_STATUS_ACTIVE, netwatchv1.FlowStatus_FLOW_STATUS_IDLE, netwatchv1.FlowStatus_FLOW_STATUS_CLOSED}
	var out []Stored
	for _, path := range names {
		name := strings.TrimSuffix(filepath.Base(path), ".jsonl")
		flows, _, err := Load(dir, name)
		if err != nil {
			return nil, err
		}
		for _, f := range flows {
			out = append(out, f.Stored(name, statuses[len(out)%len(statuses)]))
		}
	}
	return out, nil
}

// Bytes and Packets are both directions'.
func (s *Stored) Bytes() uint64   { return s.FwdBytes + s.RevBytes }
func (s *Stored) Packets() uint64 { return s.FwdPackets + s.RevPackets }

// Delta is s as one flow delta carrying all of its traffic.
func (s *Stored) Delta() *netwatchv1.FlowDelta {
	return &netwatchv1.FlowDelta{
		Key: &netwatchv1.FlowKey{Protocol: uint32(s.Protocol), SrcAddr: s.Src.AsSlice(), SrcPort: uint32(s.SrcPort),
			DstAddr: s.Dst.AsSlice(), DstPort: uint32(s.DstPort)},
		SrcPackets: s.FwdPackets, SrcBytes: s.FwdBytes, DstPackets: s.RevPackets, DstBytes: s.RevBytes,
		FirstSeen: timestamppb.New(s.FirstSeen), LastSeen: timestamppb.New(s.LastSeen), Status: s.Status,
	}
}

// BySensor groups the flows' deltas by sensor, for store.Apply.
func BySensor(flows []Stored) map[string][]*netwatchv1.FlowDelta {
	out := map[string][]*netwatchv1.FlowDelta{}
	for i := range flows {
		out[flows[i].Sensor] = append(out[flows[i].Sensor], flows[i].Delta())
	}
	return out
}

// micros parses the oracle's decimal seconds exactly.
func micros(n json.Number) (int64, error) {
	sec, frac, _ := strings.Cut(n.String(), ".")
	frac = (frac + "000000")[:6]
	return strconv.ParseInt(sec+frac, 10, 64)
}

// Record is one flow record as Netwatch reports it (a JSON line, a stored flow):
// src is the initiator of that record.
type Record struct {
	Proto                uint8
	Src                  string
	SrcPort              uint16
	Dst                  string
	DstPort              uint16
	SrcPackets, SrcBytes uint64
	DstPackets, DstBytes uint64
	FirstSeen, LastSeen  int64 // unix nanoseconds
}

// Fold sums records into flows keyed like want: a flow split into several records
// (idle or active timeout, FIN and reuse) adds up, each record's counters turned to
// the expected flow's orientation. first_seen comes from the earliest record and
// last_seen from the latest-starting one. Records of flows that want lacks keep their
// own orientation (and Compare reports them).
func Fold(want []Flow, records []Record) []Flow {
	index := map[string]int{}
	out := make([]Flow, 0, len(want))
	starts := make([]int64, 0, len(want)) // FirstSeen of the latest-starting record
	for _, w := range want {
		index[pairKey(w.Proto, w.Src, w.SrcPort, w.Dst, w.DstPort)] = len(out)
		out = append(out, Flow{Proto: w.Proto, Src: w.Src, SrcPort: w.SrcPort, Dst: w.Dst, DstPort: w.DstPort, FirstSeenUS: -1})
		starts = append(starts, 0)
	}
	for _, r := range records {
		k := pairKey(r.Proto, r.Src, r.SrcPort, r.Dst, r.DstPort)
		i, ok := index[k]
		if !ok {
			i = len(out)
			index[k] = i
			out = append(out, Flow{Proto: r.Proto, Src: r.Src, SrcPort: r.SrcPort, Dst: r.Dst, DstPort: r.DstPort, FirstSeenUS: -1})
			starts = append(starts, 0)
		}
		f := &out[i]
		if r.Src == f.Src && r.SrcPort == f.SrcPort {
			f.FwdPackets += r.SrcPackets
			f.FwdBytes += r.SrcBytes
			f.RevPackets += r.DstPackets
			f.RevBytes += r.DstBytes
		} else {
			f.FwdPackets += r.DstPackets
			f.FwdBytes += r.DstBytes
			f.RevPackets += r.SrcPackets
			f.RevBytes += r.SrcBytes
		}
		if f.FirstSeenUS < 0 || r.FirstSeen/1000 < f.FirstSeenUS {
			f.FirstSeenUS = r.FirstSeen / 1000 // non-negative: truncation = floor
		}
		if f.LastSeenUS == 0 || r.FirstSeen >= starts[i] {
			starts[i], f.LastSeenUS = r.FirstSeen, r.LastSeen/1000
		}
	}
	return out
}

// Compare returns an error naming the first flow of got that differs from want
// (in want's order), or the first unexpected one; nil when they are equal.
func Compare(want, got []Flow) error {
	byKey := make(map[string]Flow, len(got))
	for _, g := range got {
		byKey[g.Key()] = g
	}
	seen := make(map[string]bool, len(want))
	for _, w := range want {
		g, ok := byKey[w.Key()]
		if !ok || g.FwdPackets+g.RevPackets == 0 {
			return fmt.Errorf("expected flow %s is missing (%d flows received)", w.Key(), len(got))
		}
		if g != w {
			return fmt.Errorf("first differing flow %s\n expected %+v\n      got %+v", w.Key(), w, g)
		}
		seen[w.Key()] = true
	}
	for _, g := range got {
		if !seen[g.Key()] && g.FwdPackets+g.RevPackets > 0 {
			return fmt.Errorf("unexpected flow %+v (%d flows received, %d expected)", g, len(got), len(want))
		}
	}
	return nil
}
