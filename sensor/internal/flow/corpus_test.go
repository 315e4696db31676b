package flow_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"netwatch.dev/common/oracle"
	"netwatch.dev/sensor/internal/decode"
	"netwatch.dev/sensor/internal/flow"
	"netwatch.dev/sensor/internal/pcapfile"
)

// TestWriteTableFuzzCorpus regenerates testdata/fuzz/FuzzTable from the
// shared captures: per capture, its first 64 IP packets as FuzzTable records
// (addresses, ports and protocols mapped onto the fuzz key space in order of
// appearance, real flags, lengths, fragments and time steps) with an Export
// after every second of capture time, in batches; for captures with
// fragments, also added one by one. Run with NETWATCH_WRITE_FUZZ_CORPUS=1.
func TestWriteTableFuzzCorpus(t *testing.T) {
	dir, paths := oracle.NewCorpus(t, "FuzzTable")
	n := 0
	for _, path := range paths {
		recs, frags, err := tableSeed(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			continue
		}
		configs := []byte{7} // MaxFlows 8, batches
		if frags {
			configs = append(configs, 0x80|3) // MaxFlows 4, one by one
		}
		for _, c := range configs {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(append([]byte{c}, recs...))))
			name := fmt.Sprintf("%s-%02x", filepath.Base(path), c)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	t.Logf("wrote %d seeds", n)
}

func tableSeed(path string) (recs []byte, frags bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	r, err := pcapfile.NewReader(f)
	if err != nil {
		return nil, false, err
	}
	addrs, ports := map[[17]byte]uint8{}, map[uint16]uint8{}
	index := func(a [16]byte, v6 bool) uint8 {
		k := [17]byte(append(a[:], b2b(v6)))
		if i, ok := addrs[k]; ok {
			return i
		}
		i := uint8(len(addrs) % 16)
		addrs[k] = i
		return i
	}
	port := func(p uint16) uint8 {
		if i, ok := ports[p]; ok {
			return i
		}
		i := uint8(len(ports) % 16)
		ports[p] = i
		return i
	}
	var rec pcapfile.Record
	var d decode.Decoder
	var p decode.Packet
	var last, lastExport int64
	for n := 0; n < 64; {
		if err := r.Next(&rec); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, false, err
		}
		if !d.Decode(rec.LinkType, rec.Data, &p).IsIP() {
			continue
		}
		if n == 0 {
			last, lastExport = rec.Timestamp, rec.Timestamp
		}
		if rec.Timestamp-lastExport >= 1e9 {
			recs = flow.AppendFuzzOp(recs, flow.FuzzOpExport)
			lastExport = rec.Timestamp
		}
		fp := flow.FuzzPacket{
			V6: p.IsIPv6, VLAN: p.HasVLAN,
			SrcIdx: index(p.Src, p.IsIPv6), DstIdx: index(p.Dst, p.IsIPv6),
			Proto: p.Protocol, SrcPort: port(p.SrcPort), DstPort: port(p.DstPort),
			Flags: p.TCPFlags, Length: uint16(min(p.Length, 0xffff)),
			StepMS: (rec.Timestamp - last) / 1e6,
			FragID: uint8(p.FragID), FragOffset: uint8(max(p.FragOffset, 1) - 1),
		}
		if p.IsFragment {
			frags = true
			switch {
			case p.FragOffset == 0:
				fp.Frag = 1
			case p.FragMore:
				fp.Frag = 2
			default:
				fp.Frag = 3
			}
		}
		recs = flow.AppendFuzzPacket(recs, fp)
		last = rec.Timestamp
		n++
	}
	return recs, frags, nil
}

func b2b(b bool) byte {
	if b {
		return 1
	}
	return 0
}
