package pcapfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"netwatch.dev/common/difftest"
	"netwatch.dev/common/oracle"
)

// errAtPattern is how every error of Next past the header starts (errAt).
var errAtPattern = regexp.MustCompile(`^packet [0-9]+ at byte offset [0-9]+: read `)

// FuzzReader reads arbitrary bytes as a capture, with a 128-byte buffer fed 7
// bytes at a time (compaction and growth) and with the default buffer from one
// read: no input may panic or loop; the reader is either refused with a
// corrupt-capture or truncation error or gives packets and then io.EOF or
// such an error, saying which packet and where; both readers give the same
// packets and the same error; every packet fits in the input and in the
// format's limits (a classic record's captured length, a pcapng block) and
// comes from a declared interface; the offset only goes forward; the buffer never
// grows past twice the input, whatever the lengths in it claim.
//
// Seeds: testdata/fuzz/FuzzReader, heads of the shared captures (see
// TestWriteReaderFuzzCorpus).
func FuzzReader(f *testing.F) {
	f.Add([]byte{0xd4, 0xc3, 0xb2, 0xa1})
	f.Fuzz(func(t *testing.T, data []byte) {
		small, smallErr := fuzzRead(t, data, iotestOneByte{bytes.NewReader(data)}, 128)
		big, bigErr := fuzzRead(t, data, bytes.NewReader(data), defaultBufSz)
		if d := difftest.Diff(big, small); d != "" {
			t.Fatalf("a 128-byte buffer read in 7-byte pieces gives other packets than one read (-one +small):\n%s", d)
		}
		if fmt.Sprint(smallErr) != fmt.Sprint(bigErr) {
			t.Fatalf("errors differ: %v with a 128-byte buffer, %v with the default one", smallErr, bigErr)
		}
	})
}

// fuzzRead reads every packet (copies) and returns them with the error that
// ended the read (nil at io.EOF), reading src (data) with a buffer of size
// bytes and checking FuzzReader's invariants on the way.
func fuzzRead(t *testing.T, data []byte, src io.Reader, size int) ([]Record, error) {
	t.Helper()
	r, err := NewReaderSize(src, size)
	if err != nil {
		var nc *NotCaptureError
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("NewReader: %v: neither corrupt nor truncated", err)
		}
		if errors.As(err, &nc) && len(data) >= 4 && nc.Len != 4 {
			t.Fatalf("NewReader: %v from %d bytes", err, len(data))
		}
		if r != nil {
			t.Fatalf("NewReader: a reader and an error")
		}
		return nil, err
	}
	var out []Record
	var rec Record
	for {
		off := r.Offset()
		err := r.Next(&rec)
		switch {
		case r.Offset() < off || r.Offset() > int64(len(data)):
			t.Fatalf("offset %d after %d, in %d bytes", r.Offset(), off, len(data))
		case len(r.buf) > max(size, 2*len(data)):
			t.Fatalf("buffer of %d bytes for %d bytes of input", len(r.buf), len(data))
		}
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("Next: %v: neither corrupt nor truncated", err)
			}
			if !errAtPattern.MatchString(err.Error()) {
				t.Fatalf("Next: %q does not say where", err)
			}
			return out, err
		}
		if len(out) >= len(data)/16 {
			t.Fatalf("%d packets from %d bytes (a record takes at least 16)", len(out)+1, len(data))
		}
		n := len(rec.Data)
		switch {
		case n > len(data):
			t.Fatalf("packet of %d bytes from %d bytes of input", n, len(data))
		case r.Format() == FormatPcap && n > maxCaplen:
			t.Fatalf("classic record of %d bytes, limit %d", n, maxCaplen)
		case r.Format() == FormatPcapNG && n > maxBlockLen:
			t.Fatalf("pcapng packet of %d bytes, limit %d", n, maxBlockLen)
		case r.Format() == FormatPcapNG && (rec.Interface < 0 || rec.Interface >= len(r.ifaces)):
			t.Fatalf("packet on interface %d of %d", rec.Interface, len(r.ifaces))
		case r.Format() == FormatPcap && rec.Interface != 0:
			t.Fatalf("classic packet on interface %d", rec.Interface)
		case cap(rec.Data) != n:
			t.Fatalf("Data has capacity %d beyond its %d bytes", cap(rec.Data), n)
		}
		rec.Data = bytes.Clone(rec.Data)
		out = append(out, rec)
	}
}

// TestWriteReaderFuzzCorpus regenerates testdata/fuzz/FuzzReader from the
// shared captures: of each, the head up to the end of its third packet (at
// most 2 KiB) and the head cut in the middle of its second packet (of
// its only packet, for a capture of one). Run with
// NETWATCH_WRITE_FUZZ_CORPUS=1.
func TestWriteReaderFuzzCorpus(t *testing.T) {
	dir, names := oracle.NewCorpus(t, "FuzzReader")
	for _, path := range names {
		name := filepath.Base(path)
		data := readFile(t, name)
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(name, err)
		}
		var rec Record
		var ends []int64 // file offset after packets 1, 2, 3
		for range 3 {
			if err := r.Next(&rec); err != nil {
				break
			}
			ends = append(ends, r.Offset())
		}
		if len(ends) < 2 { // a single packet: cut in its middle
			ends = []int64{ends[0] / 2, ends[0]}
		}
		heads := map[string][]byte{
			"head":  data[:min(ends[len(ends)-1], 2048)],
			"cut-2": data[:(ends[0]+ends[1])/2],
		}
		for kind, head := range heads {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(head)))
			if err := os.WriteFile(filepath.Join(dir, name+"-"+kind), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
