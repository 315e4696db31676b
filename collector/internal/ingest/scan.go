package ingest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"sync/atomic"
)

// region is a stretch [Off, End) of a file.
type region struct {
	Off int64 `json:"offset"`
	End int64 `json:"end"`
}

func (r region) len() int64 { return r.End - r.Off }

// scanResult is what scanFrames found in a file.
type scanResult struct {
	// records is the number of good records; good the offset past the last one.
	records int
	good    int64
	// damaged are bad stretches each followed by a good record: corruption. A bad
	// stretch is skipped by resynchronising on the next offset where a header and
	// its checksum hold.
	damaged []region
	// tail is the bad stretch at the end of the file, with no good record after it
	// (empty when the file ends cleanly); torn says it is what a write cut short
	// leaves: a record whose header or payload runs past the end, or zeros.
	tail region
	torn bool
	// ended: the last good record is a snapshot's end record.
	ended bool
}

// lost is the bytes and records (one per bad stretch: at least that many) that
// the damage costs; a torn tail counts only when countTorn.
func (s *scanResult) lost(countTorn bool) (records, bytes int64) {
	for _, r := range s.damaged {
		records, bytes = records+1, bytes+r.len()
	}
	if s.tail.len() > 0 && (countTorn || !s.torn) {
		records, bytes = records+1, bytes+s.tail.len()
	}
	return records, bytes
}

// keep is the good stretches of the file: all but the damage and the tail.
func (s *scanResult) keep() []region {
	var out []region
	at := int64(0)
	for _, d := range s.damaged {
		if d.Off > at {
			out = append(out, region{at, d.Off})
		}
		at = d.End
	}
	if s.good > at {
		out = append(out, region{at, s.good})
	}
	return out
}

// errSkipRecord, from scanFrames' fn, says a good record cannot be used (it does
// not decode): it counts as damage.
var errSkipRecord = errors.New("record cannot be used")

// resyncHashed counts the payload bytes resynchronisation checksummed (tests bound
// it: resynchronising is about linear in the file's size).
var resyncHashed atomic.Int64

const (
	resyncWindow = 1 << 20
	// recordHeadMax is the most of a payload plausible looks at.
	recordHeadMax = 1 + 8 + 8 + 2 + 256 + 2 + 256
)

// plausible is a cheap test of a candidate record before its checksum is computed
// while resynchronising: a known kind, the length that kind needs, and id lengths
// (at most 256 bytes each, as a hello allows) that fit. head is the start of the
// payload of length size (all of it, or at least recordHeadMax bytes).
func plausible(head []byte, size uint32) bool {
	if len(head) == 0 {
		return false
	}
	switch head[0] {
	case recEnd:
		return size == 1
	case recBatch, recFlow, recMark, recFlowBuckets:
	default:
		return false
	}
	if size < 1+8+8+2+2 || len(head) < 19 {
		return false
	}
	n1 := int(binary.BigEndian.Uint16(head[17:]))
	if n1 > 256 || 19+n1+2 > int(size) {
		return false
	}
	if len(head) < 19+n1+2 {
		return true
	}
	n2 := int(binary.BigEndian.Uint16(head[19+n1:]))
	return n2 <= 256 && 21+n1+n2 <= int(size)
}

// scanFrames calls fn with the payload of every good record of the file r of
// length size, in order, skipping damage (see scanResult). fn's error stops the
// scan and is returned; a read error too. It never allocates per a length field
// beyond what the file holds, and a corrupt length costs a resynchronisation about
// linear in the file's size.
func scanFrames(r io.ReaderAt, size int64, fn func(payload []byte) error) (scanResult, error) {
	var res scanResult
	var buf []byte
	var hdr [frameHeader]byte
	off := int64(0)
	br := bufio.NewReaderSize(io.NewSectionReader(r, 0, size), int(min(max(size, 16), 1<<20)))
	var win []byte // resync's window, allocated once
	for off < size {
		bad := false
		cutShort := false
		var n uint32
		if size-off < frameHeader {
			bad, cutShort = true, true
		} else if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return res, err
		} else {
			n = binary.BigEndian.Uint32(hdr[:4])
			switch {
			case n == 0 || n > maxRecord:
				bad = true
			case int64(n) > size-off-frameHeader:
				bad, cutShort = true, true
			}
		}
		if !bad {
			var err error
			if buf, err = readPayload(br, buf, int(n)); err != nil {
				return res, err
			}
			bad = crc32.Checksum(buf, castagnoli) != binary.BigEndian.Uint32(hdr[4:])
		}
		if !bad {
			if err := fn(buf); errors.Is(err, errSkipRecord) {
				// Whole and checksummed, but unusable: lost like a damaged one.
				end := off + frameHeader + int64(n)
				if k := len(res.damaged); k > 0 && res.damaged[k-1].End == off {
					res.damaged[k-1].End = end
				} else {
					res.damaged = append(res.damaged, region{off, end})
				}
				off = end
				continue
			} else if err != nil {
				return res, err
			}
			res.records++
			off += frameHeader + int64(n)
			res.good = off
			res.ended = len(buf) == 1 && buf[0] == recEnd
			continue
		}
		next, err := resync(r, off+1, size, &win)
		if err != nil {
			return res, err
		}
		if next < 0 {
			res.tail = region{off, size}
			res.torn = cutShort
			if !res.torn {
				zero, err := allZero(r, off, size)
				if err != nil {
					return res, err
				}
				res.torn = zero
			}
			return res, nil
		}
		res.damaged = append(res.damaged, region{off, next})
		off = next
		br.Reset(io.NewSectionReader(r, off, size-off))
	}
	return res, nil
}

// resync returns the first offset at or after from where a plausible record's
// header and checksum hold, or -1.
func resync(r io.ReaderAt, from, size int64, winp *[]byte) (int64, error) {
	if *winp == nil {
		*winp = make([]byte, min(int64(resyncWindow+frameHeader+recordHeadMax), max(size-from, 0)))
	}
	win := *winp
	var scratch []byte
	for base := from; base+frameHeader < size; base += resyncWindow {
		n, err := r.ReadAt(win[:min(int64(len(win)), size-base)], base)
		if err != nil && err != io.EOF {
			return 0, err
		}
		w := win[:n]
		for i := 0; i < resyncWindow && i+frameHeader < len(w); i++ {
			l := binary.BigEndian.Uint32(w[i:])
			at := base + int64(i)
			if l == 0 || l > maxRecord || int64(l) > size-at-frameHeader {
				continue
			}
			head := w[i+frameHeader : min(len(w), i+frameHeader+int(l))]
			if !plausible(head, l) {
				continue
			}
			want := binary.BigEndian.Uint32(w[i+4:])
			resyncHashed.Add(int64(l))
			var sum uint32
			if len(head) == int(l) {
				sum = crc32.Checksum(head, castagnoli)
			} else {
				if scratch == nil {
					scratch = make([]byte, min(readChunk, int(l)))
				}
				sum, err = crcAt(r, at+frameHeader, int64(l), scratch)
				if err != nil {
					return 0, err
				}
			}
			if sum == want {
				return at, nil
			}
		}
	}
	return -1, nil
}

func crcAt(r io.ReaderAt, off, n int64, scratch []byte) (uint32, error) {
	var sum uint32
	for n > 0 {
		k := min(n, int64(len(scratch)))
		if _, err := r.ReadAt(scratch[:k], off); err != nil {
			return 0, err
		}
		sum = crc32.Update(sum, castagnoli, scratch[:k])
		off, n = off+k, n-k
	}
	return sum, nil
}

func allZero(r io.ReaderAt, off, end int64) (bool, error) {
	buf := make([]byte, min(end-off, 1<<20))
	for off < end {
		k := min(end-off, int64(len(buf)))
		if _, err := r.ReadAt(buf[:k], off); err != nil {
			return false, err
		}
		for _, c := range buf[:k] {
			if c != 0 {
				return false, nil
			}
		}
		off += k
	}
	return true, nil
}
