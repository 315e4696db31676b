// Package oracle reads the expected flows that shared/tools/flow-oracle (an
// independent, tshark-based implementation) computed for the test captures in
// testdata/pcaps, and compares Netwatch's flows with them. Tests only.
package oracle

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

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
		if err1 != nil || err2 != nil || o.Packets != o.FwdPackets+o.RevPackets {
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
