package ingest

import (
	"bytes"
	"slices"
	"testing"
)

// FuzzScanFrames: any file scans without a panic; its good records, damaged
// stretches and tail account for every byte; and the copy of its good stretches
// (what replaces a damaged file) scans clean, with the same records.
func FuzzScanFrames(f *testing.F) {
	var log []byte
	for seq := uint64(1); seq <= 5; seq++ {
		log = append(log, (&record{kind: recBatch, seq: seq, sensorID: "s1", bootID: "b", body: marshal(batch(seq, 2))}).frame()...)
	}
	f.Add(slices.Clone(log))
	flipped := slices.Clone(log)
	flipped[len(log)/2] ^= 0x40
	f.Add(flipped)
	f.Add(append(slices.Clone(log), 0, 0, 0))
	f.Add(append(make([]byte, 64), log...))
	f.Add(append(slices.Clone(log), appendFrame(nil, []byte{recEnd})...))
	f.Fuzz(func(t *testing.T, data []byte) {
		var recs [][]byte
		res, err := scanFrames(bytes.NewReader(data), int64(len(data)), func(p []byte) error {
			recs = append(recs, slices.Clone(p))
			return nil
		})
		if err != nil {
			t.Fatalf("%x: %v", data, err)
		}
		if res.records != len(recs) || res.good > int64(len(data)) {
			t.Fatalf("%x: %d records, %d callbacks, good %d", data, res.records, len(recs), res.good)
		}
		total := int64(0)
		for _, p := range recs {
			total += frameHeader + int64(len(p))
		}
		at := int64(0)
		for _, d := range res.damaged {
			if d.Off < at || d.End <= d.Off || d.End > int64(len(data)) {
				t.Fatalf("%x: damaged stretches %v", data, res.damaged)
			}
			total += d.len()
			at = d.End
		}
		if tl := res.tail.len(); tl > 0 {
			if res.tail.End != int64(len(data)) || res.tail.Off < at {
				t.Fatalf("%x: tail %v", data, res.tail)
			}
			total += tl
		}
		if total != int64(len(data)) {
			t.Fatalf("%x: records, damage and tail cover %d of %d bytes", data, total, len(data))
		}
		var clean []byte
		for _, r := range res.keep() {
			clean = append(clean, data[r.Off:r.End]...)
		}
		var again [][]byte
		res2, err := scanFrames(bytes.NewReader(clean), int64(len(clean)), func(p []byte) error {
			again = append(again, slices.Clone(p))
			return nil
		})
		if err != nil || len(res2.damaged) > 0 || res2.tail.len() > 0 {
			t.Fatalf("%x: the good stretches do not scan clean: %+v %v", data, res2, err)
		}
		if len(again) != len(recs) {
			t.Fatalf("%x: %d records, %d in the good stretches", data, len(recs), len(again))
		}
		for i := range recs {
			if !bytes.Equal(recs[i], again[i]) {
				t.Fatalf("%x: record %d differs in the good stretches", data, i)
			}
		}
	})
}
