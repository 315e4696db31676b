package decode_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"netwatch.dev/common/oracle"
	"netwatch.dev/sensor/internal/decode"
	"netwatch.dev/sensor/internal/flow"
	"netwatch.dev/sensor/internal/pcapfile"
)

var fuzzTable = sync.OnceValues(func() (*flow.Table, error) {
	cfg := flow.DefaultConfig()
	cfg.MaxFlows, cfg.MaxFragments = 256, 64
	return flow.New(cfg)
})

// FuzzDecode feeds arbitrary frames to the decoder (and what it accepts to a
// flow table): no input may panic, and accepted packets must be consistent.
// Seeds: testdata/fuzz/FuzzDecode, frames from the shared captures (see
// TestWriteFuzzCorpus).
func FuzzDecode(f *testing.F) {
	f.Add(uint32(decode.LinkEthernet), []byte{})
	f.Fuzz(func(t *testing.T, link uint32, frame []byte) {
		var d decode.Decoder
		var p decode.Packet
		r := d.Decode(decode.LinkType(link), frame, &p)
		if d.Counters.Frames != 1 || d.Counters.ByResult[r] != 1 {
			t.Fatalf("counters %+v for result %v", d.Counters, r)
		}
		// The fast path (common frames) and the general one agree.
		var g decode.Packet
		if rg := d.DecodeGeneral(decode.LinkType(link), frame, &g); rg != r || g != p {
			t.Fatalf("fast path: %v %+v, general path: %v %+v", r, p, rg, g)
		}
		if !r.IsIP() {
			return
		}
		switch {
		case p.IsIPv6 && p.Length < 40:
			t.Fatalf("IPv6 length %d < 40", p.Length)
		case !p.IsIPv6 && (p.Src[10] != 0xff || p.Src[11] != 0xff):
			t.Fatalf("IPv4 source not IPv4-mapped: %x", p.Src)
		}
		if p.Protocol != 6 && p.Protocol != 17 && p.Protocol != 132 && (p.SrcPort != 0 || p.DstPort != 0) {
			t.Fatalf("protocol %d with ports %d/%d", p.Protocol, p.SrcPort, p.DstPort)
		}
		if p.FragOffset != 0 && (p.SrcPort != 0 || p.DstPort != 0 || p.HasICMP || p.PayloadLen != 0) {
			t.Fatalf("non-first fragment with ports, ICMP or payload: %+v", p)
		}
		if p.PayloadLen != 0 && (p.Protocol != 6 && p.Protocol != 17 || uint64(p.PayloadOff)+uint64(p.PayloadLen) > uint64(len(frame)) ||
			len(p.Payload(frame)) != int(p.PayloadLen)) {
			t.Fatalf("payload %d+%d of protocol %d outside the %d-byte frame", p.PayloadOff, p.PayloadLen, p.Protocol, len(frame))
		}
		if p.HasICMP != (p.Protocol == 1 || p.Protocol == 58) && p.HasICMP {
			t.Fatalf("ICMP fields for protocol %d", p.Protocol)
		}
		tb, err := fuzzTable()
		if err != nil {
			t.Fatal(err)
		}
		tb.Add(&p, 1)
	})
}

// TestWriteFuzzCorpus regenerates testdata/fuzz/FuzzDecode from the shared
// captures: per capture, the first frame of every distinct (link type,
// result, protocol, frame length class) up to 8 frames, at most 512 bytes
// each. Run with NETWATCH_WRITE_FUZZ_CORPUS=1.
func TestWriteFuzzCorpus(t *testing.T) {
	dir, paths := oracle.NewCorpus(t, "FuzzDecode")
	total := 0
	for _, path := range paths {
		n, err := corpusFrom(path, dir)
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	t.Logf("wrote %d seeds", total)
	if total > 200 {
		t.Fatalf("%d seeds, keep it at most 200", total)
	}
}

func corpusFrom(path, dir string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r, err := pcapfile.NewReader(f)
	if err != nil {
		return 0, err
	}
	seen := map[string]bool{}
	var rec pcapfile.Record
	var d decode.Decoder
	var p decode.Packet
	n := 0
	for n < 8 {
		if err := r.Next(&rec); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return n, err
		}
		res := d.Decode(rec.LinkType, rec.Data, &p)
		sig := fmt.Sprint(rec.LinkType, res, p.Protocol, p.IsFragment, p.HasVLAN, len(rec.Data)/256)
		if seen[sig] {
			continue
		}
		seen[sig] = true
		data := rec.Data[:min(len(rec.Data), 512)]
		name := fmt.Sprintf("%s-%03d", filepath.Base(path), r.Packets())
		body := fmt.Sprintf("go test fuzz v1\nuint32(%d)\n[]byte(%s)\n", uint32(rec.LinkType), strconv.Quote(string(data)))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
