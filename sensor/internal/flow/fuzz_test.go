package flow

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"netwatch.dev/sensor/internal/decode"
)

// The input of FuzzTable: one config byte, then records of fuzzRecLen bytes.
// Config byte: bit 7 adds packets one at a time (Add) instead of in batches
// (AddBatch); bits 0-3 are MaxFlows-1.
//
// A record whose op byte (byte 0) is below opExport is a packet:
//
//	byte 0     op: bit 4 IPv6, bit 5 VLAN, bits 6-7 fragment kind (0 none,
//	           1 first fragment, 2 non-first with more to come, 3 last)
//	byte 1     source address (low nibble) and destination address (high
//	           nibble): 16 addresses of one family, fuzzAddr
//	byte 2     protocol: below 0x80 one of fuzzProtos, else the byte itself
//	byte 3     source port (low nibble) and destination port (high nibble):
//	           indices into fuzzPorts
//	byte 4     TCP flags (whatever the protocol: the table must cope)
//	byte 5-6   length, little endian; byte 7 bit 7 adds 0xffff0000 (so the
//	           32-bit byte counters carry)
//	byte 7-8   time step: int8(byte 8) * (byte 7 & 0x7f + 1) ms, may be < 0
//	byte 9-10  fragment id, VLAN id (12 bits)
//	byte 11    fragment offset (non-first: byte 11 + 1)
//
// Other ops: opExport (Export), opExportEnded (ExportEnded), opFlush
// (Flush(EndSensorStopped)), anything above: only the pending batch is added.
const (
	fuzzRecLen    = 12
	opExport      = 0xf0
	opExportEnded = 0xf1
	opFlush       = 0xf2
)

var (
	fuzzProtos = [...]uint8{6, 17, 1, 58, 132}
	fuzzPorts  = [16]uint16{0, 53, 80, 443, 1000, 1001, 1002, 1003, 5353, 8080, 32768, 40000, 50000, 60000, 65534, 65535}
)

// fuzzAddr returns address i (0..15) of a family in 16-byte form.
func fuzzAddr(i uint8, v6 bool) [16]byte {
	var a [16]byte
	if v6 {
		a[0], a[1], a[2], a[3] = 0x20, 0x01, 0x0d, 0xb8
	} else {
		a[10], a[11], a[12] = 0xff, 0xff, 10
	}
	a[15] = i
	return a
}

// FuzzPacket is one packet for AppendFuzzPacket (the seed corpus generator in
// package flow_test): indices as in the record layout.
type FuzzPacket struct {
	V6, VLAN           bool
	Frag               uint8 // 0..3, as in op bits 6-7
	SrcIdx, DstIdx     uint8 // 0..15
	Proto              uint8
	SrcPort, DstPort   uint8 // indices into fuzzPorts, 0..15
	Flags              uint8
	Length             uint16
	StepMS             int64 // time since the previous packet
	FragID, FragOffset uint8
}

// AppendFuzzPacket appends p as a FuzzTable record (StepMS rounded to what the
// record can hold).
func AppendFuzzPacket(b []byte, p FuzzPacket) []byte {
	op := p.Frag<<6 | b2u(p.VLAN)<<5 | b2u(p.V6)<<4
	proto := p.Proto | 0x80 // not in fuzzProtos: the record keeps bit 7 set
	for i, q := range fuzzProtos {
		if q == p.Proto {
			proto = uint8(i)
		}
	}
	scale := max(1, min(128, (abs(p.StepMS)+126)/127))
	step := int8(max(-128, min(127, p.StepMS/scale)))
	return append(b, op, p.SrcIdx&15|p.DstIdx<<4, proto, p.SrcPort&15|p.DstPort<<4, p.Flags,
		byte(p.Length), byte(p.Length>>8), byte(scale-1), byte(step), p.FragID, p.FragID, p.FragOffset)
}

// AppendFuzzOp appends a record of op (opExport etc.).
func AppendFuzzOp(b []byte, op byte) []byte {
	return append(b, op, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
}

// FuzzOpExport is opExport, for the corpus generator.
const FuzzOpExport = opExport

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// fuzzPacket decodes a packet record.
func fuzzPacket(r []byte) (p decode.Packet, step int64) {
	op := r[0]
	p.IsIPv6 = op&0x10 != 0
	p.Src, p.Dst = fuzzAddr(r[1]&15, p.IsIPv6), fuzzAddr(r[1]>>4, p.IsIPv6)
	p.Protocol = r[2]
	if r[2] < 0x80 {
		p.Protocol = fuzzProtos[int(r[2])%len(fuzzProtos)]
	}
	p.SrcPort, p.DstPort = fuzzPorts[r[3]&15], fuzzPorts[r[3]>>4]
	p.TCPFlags = r[4]
	p.Length = uint32(r[5]) | uint32(r[6])<<8
	if r[7]&0x80 != 0 {
		p.Length |= 0xffff0000
	}
	step = int64(int8(r[8])) * int64(r[7]&0x7f+1) * int64(time.Millisecond)
	if op&0x20 != 0 {
		p.HasVLAN, p.VLAN = true, uint16(r[10])<<4&0xfff|uint16(r[9])&0xf
	}
	if kind := op >> 6; kind != 0 {
		p.IsFragment, p.FragID = true, uint32(r[9])
		p.FragMore = kind != 3
		if kind >= 2 {
			p.FragOffset = uint16(r[11]) + 1
			// What the decoder does: no ports past the first fragment;
			// for IPv6 the protocol is the Fragment header's Next Header.
			p.SrcPort, p.DstPort = 0, 0
		}
	}
	return p, step
}

// FuzzTable runs the table through arbitrary sequences of packets (16
// addresses per family, ports, protocols, TCP flags, lengths up to 4 GiB,
// VLANs, first and later IP fragments, timestamps that go backwards), adding
// them one by one or in batches, with Export, ExportEnded and Flush on a small
// table that evicts. It checks after every step that the table holds at most
// MaxFlows flows, that the index finds every flow (checkIndex) and that no
// Stats counter goes down; of every delta that it is consistent (status and
// end reason, a delta that does not end the flow carries packets, TCP flags
// only those sent that way); and at the end that every packet and byte came
// out exactly once per direction (per address pair and, without fragments,
// per protocol and ports), every flow created ended exactly once and the
// counters add up.
//
// Seeds: testdata/fuzz/FuzzTable, packets of the shared captures (see
// TestWriteTableFuzzCorpus).
func FuzzTable(f *testing.F) {
	f.Add([]byte{0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	// Packets of almost 4 GiB: the 32-bit byte counters carry.
	big := []byte{0, 0x10, 0, 0x21, ack, 0xff, 0xff, 0x80, 1, 0, 0, 0}
	f.Add(append(append([]byte{0x87}, slices.Repeat(big, 3)...), AppendFuzzOp(nil, opExport)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		cfg := DefaultConfig()
		cfg.MaxFlows = int(data[0]&15) + 1
		cfg.MaxFragments = 4
		cfg.IdleTimeout = time.Second
		cfg.ActiveTimeout = 2 * time.Second
		cfg.FinLinger = 500 * time.Millisecond
		cfg.FragmentTimeout = time.Second
		tb, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer tb.Close()
		single := data[0]&0x80 != 0
		data = data[1:]

		// Directions: per address pair, and per whole key while no
		// fragment was added (attribution changes a fragment's ports).
		type dirKey struct {
			v6           bool
			proto        uint8
			src, dst     [16]byte
			sport, dport uint16
		}
		type sums struct {
			pkts, bytes uint64
			flags       uint8
		}
		want, got := map[dirKey]sums{}, map[dirKey]sums{}
		wantAddr, gotAddr := map[dirKey]sums{}, map[dirKey]sums{}
		fragments := false
		count := func(m, ma map[dirKey]sums, k dirKey, p, b uint64, fl uint8) {
			if p == 0 && b == 0 && fl == 0 {
				return
			}
			for i, mm := range []map[dirKey]sums{m, ma} {
				if i == 1 {
					k.proto, k.sport, k.dport = 0, 0, 0
				}
				s := mm[k]
				s.pkts += p
				s.bytes += b
				s.flags |= fl
				mm[k] = s
			}
		}
		var removed uint64
		emit := func(d *Delta) {
			switch {
			case d.Removed() && d.Status == StatusActive && d.EndReason != EndSensorStopped:
				t.Fatalf("delta %+v: the flow ends while active", d)
			case (d.EndReason == EndFIN || d.EndReason == EndRST) && d.Status != StatusClosed:
				t.Fatalf("delta %+v: %v but not closed", d, d.EndReason)
			case d.EndReason == EndEvicted && d.Status != StatusIdle:
				t.Fatalf("delta %+v: evicted but not idle", d)
			case !d.Removed() && d.SrcPackets+d.DstPackets == 0:
				t.Fatalf("delta %+v: no packets and the flow goes on", d)
			case d.SrcPackets == 0 && (d.SrcBytes != 0 || d.SrcTCPFlags != 0),
				d.DstPackets == 0 && (d.DstBytes != 0 || d.DstTCPFlags != 0):
				t.Fatalf("delta %+v: bytes or flags without packets", d)
			}
			if d.Removed() {
				removed++
			}
			k := dirKey{d.IsIPv6, d.Protocol, d.SrcAddr, d.DstAddr, d.SrcPort, d.DstPort}
			count(got, gotAddr, k, d.SrcPackets, d.SrcBytes, d.SrcTCPFlags)
			k = dirKey{d.IsIPv6, d.Protocol, d.DstAddr, d.SrcAddr, d.DstPort, d.SrcPort}
			count(got, gotAddr, k, d.DstPackets, d.DstBytes, d.DstTCPFlags)
		}

		var prev Stats
		check := func() {
			t.Helper()
			if err := tb.checkIndex(); err != nil {
				t.Fatal(err)
			}
			st := tb.Stats()
			if st.Flows > cfg.MaxFlows {
				t.Fatalf("%d flows in a table of at most %d", st.Flows, cfg.MaxFlows)
			}
			for _, c := range [][2]uint64{
				{prev.Created, st.Created}, {prev.Evicted, st.Evicted}, {prev.EvictedLost, st.EvictedLost},
				{prev.IdleExpired, st.IdleExpired}, {prev.Closed, st.Closed}, {prev.ActiveTimeouts, st.ActiveTimeouts},
				{prev.Flushed, st.Flushed}, {prev.Packets, st.Packets}, {prev.Bytes, st.Bytes},
				{prev.FragmentsAttributed, st.FragmentsAttributed}, {prev.FragmentsUnattributed, st.FragmentsUnattributed},
				{prev.FragmentsForgotten, st.FragmentsForgotten},
			} {
				if c[1] < c[0] {
					t.Fatalf("a counter went down: %+v, then %+v", prev, st)
				}
			}
			prev = st
		}

		ts := t0
		var batch []decode.Packet
		var tss []int64
		sync := func() {
			tb.AddBatch(batch, tss)
			batch, tss = batch[:0], tss[:0]
		}
		var wantPkts, wantBytes uint64
		for ; len(data) >= fuzzRecLen; data = data[fuzzRecLen:] {
			r := data[:fuzzRecLen]
			if op := r[0]; op >= opExport {
				sync()
				switch op {
				case opExport:
					tb.Export(ts, emit)
				case opExportEnded:
					tb.ExportEnded(ts, emit)
				case opFlush:
					tb.Flush(EndSensorStopped, emit)
				}
				check()
				continue
			}
			p, step := fuzzPacket(r)
			ts += step
			fragments = fragments || p.IsFragment
			count(want, wantAddr, dirKey{p.IsIPv6, p.Protocol, p.Src, p.Dst, p.SrcPort, p.DstPort}, 1, uint64(p.Length), p.TCPFlags)
			wantPkts++
			wantBytes += uint64(p.Length)
			if single {
				tb.Add(&p, ts)
				check()
				continue
			}
			batch, tss = append(batch, p), append(tss, ts)
			if len(batch) == BatchSize {
				sync()
				check()
			}
		}
		sync()
		check()
		tb.Flush(EndSensorStopped, emit)
		check()

		compare := func(what string, want, got map[dirKey]sums) {
			t.Helper()
			for k, w := range want {
				g := got[k]
				if g.pkts != w.pkts || g.bytes != w.bytes {
					t.Fatalf("%s %+v: got %d packets %d bytes, want %d packets %d bytes", what, k, g.pkts, g.bytes, w.pkts, w.bytes)
				}
				if g.flags&^w.flags != 0 {
					t.Fatalf("%s %+v: TCP flags %#x out, only %#x in", what, k, g.flags, w.flags)
				}
			}
			if len(got) != len(want) {
				t.Fatalf("%s: %d directions out, %d in", what, len(got), len(want))
			}
		}
		compare("address pair", wantAddr, gotAddr)
		if !fragments {
			compare("direction", want, got)
		}
		st := tb.Stats()
		switch {
		case st.Flows != 0:
			t.Fatalf("%d flows after Flush", st.Flows)
		case st.Created != st.Evicted+st.IdleExpired+st.Closed+st.Flushed:
			t.Fatalf("counters do not add up: %+v", st)
		case st.EvictedLost != 0 || removed != st.Created:
			t.Fatalf("%d flows created, %d final deltas (%d lost)", st.Created, removed, st.EvictedLost)
		case st.Packets != wantPkts || st.Bytes != wantBytes:
			t.Fatalf("Stats: %d packets %d bytes, want %d, %d", st.Packets, st.Bytes, wantPkts, wantBytes)
		}
	})
}

// checkIndex verifies the index against the entries: every entry in use is
// found by a lookup of its key, from its slot, and the index holds nothing
// else (white-box, for tests).
func (t *Table) checkIndex() error {
	inUse := 0
	for i := range t.hot {
		e := &t.hot[i]
		if !e.is(stInUse) {
			continue
		}
		inUse++
		k := key{a0: e.a0, a1: e.a1, b0: e.b0, b1: e.b1, ports: e.ports, proto: e.proto, v6: e.is(stV6)}
		if got := t.lookup(&k, t.cold[i].hash, 0); got != int32(i) {
			return fmt.Errorf("entry %d (key %+v): lookup finds %d", i, k, got)
		}
	}
	used := 0
	for _, s := range t.slots {
		if s != 0 {
			used++
		}
	}
	if used != inUse || inUse != t.Stats().Flows {
		return fmt.Errorf("%d slots used, %d entries in use, Stats.Flows %d", used, inUse, t.Stats().Flows)
	}
	return nil
}
