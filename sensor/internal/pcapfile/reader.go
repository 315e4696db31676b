// Package pcapfile reads classic libpcap files (microsecond and nanosecond
// magic, either byte order) and pcapng files (any number of interfaces and
// sections, per-interface link type and timestamp resolution) without
// allocating per packet.
package pcapfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"

	"netwatch.dev/sensor/internal/decode"
)

// Record is one captured packet. Data aliases the Reader's buffer and is valid
// only until the next call to Next.
type Record struct {
	LinkType  decode.LinkType
	Data      []byte // captured bytes (may be shorter than WireLen: snaplen)
	WireLen   int    // length of the packet on the wire
	Timestamp int64  // unix nanoseconds
	Interface int    // pcapng interface id; 0 for classic pcap
}

// Format is the container format of a file.
type Format uint8

const (
	FormatPcap   Format = iota + 1 // classic libpcap
	FormatPcapNG                   // pcapng
)

const (
	magicMicro   = 0xa1b2c3d4 // classic pcap, microsecond timestamps
	magicNano    = 0xa1b23c4d // classic pcap, nanosecond timestamps
	ngSHB        = 0x0a0d0d0a // pcapng Section Header Block (palindromic)
	ngByteOrder  = 0x1a2b3c4d // pcapng byte-order magic
	ngIDB        = 0x00000001
	ngOPB        = 0x00000002 // obsolete Packet Block
	ngSPB        = 0x00000003
	ngEPB        = 0x00000006
	maxCaplen    = 1 << 20  // a classic record larger than this is corruption
	maxBlockLen  = 64 << 20 // likewise for a pcapng block
	defaultBufSz = 1 << 20
)

// ErrCorrupt is wrapped by every error about the file's contents (as opposed
// to I/O errors from the underlying reader).
var ErrCorrupt = errors.New("corrupt capture")

// NotCaptureError is NewReader's error for a source that does not start with
// the magic number of pcap or pcapng. It wraps ErrCorrupt.
type NotCaptureError struct {
	Magic uint32 // the first 4 bytes, in file order (when Len >= 4)
	Len   int    // bytes read, when fewer than 4
}

func (e *NotCaptureError) Error() string {
	if e.Len < 4 {
		return fmt.Sprintf("not a pcap or pcapng file (%d bytes, shorter than any capture header)", e.Len)
	}
	return fmt.Sprintf("not a pcap or pcapng file (magic 0x%08x)", e.Magic)
}

func (e *NotCaptureError) Unwrap() error { return ErrCorrupt }

type iface struct {
	link    decode.LinkType
	snaplen uint32
	unitsPS uint64 // timestamp units per second (if_tsresol), default 10^6
	offset  int64  // if_tsoffset in seconds
}

// Reader reads packets from a capture. Create it with NewReader.
type Reader struct {
	src   io.Reader
	buf   []byte
	r, w  int   // buf[r:w] is buffered and unread
	off   int64 // file offset of buf[r]
	rdErr error // sticky error from src (io.EOF at the end)

	format Format
	order  binary.ByteOrder
	n      int // packets delivered so far

	// classic pcap
	nano bool
	link decode.LinkType

	// pcapng: interfaces of the current section
	ifaces []iface
	lastTS int64
}

// NewReader detects the format from the first bytes of src and reads the file
// header. It buffers 1 MiB at a time and only ever reads src forward (no seek,
// no mmap), so src may be a pipe (--read -).
func NewReader(src io.Reader) (*Reader, error) {
	return NewReaderSize(src, defaultBufSz)
}

// NewReaderSize is NewReader with a buffer of size bytes (at least 64). A
// record or block larger than the buffer still works: the buffer grows.
func NewReaderSize(src io.Reader, size int) (*Reader, error) {
	r := &Reader{src: src, buf: make([]byte, max(size, 64)), ifaces: make([]iface, 0, 16)}
	if err := r.need(4); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, &NotCaptureError{Len: r.w - r.r}
		}
		return nil, fmt.Errorf("read capture header: %w", err)
	}
	le := binary.LittleEndian.Uint32(r.buf[r.r:])
	switch {
	case le == ngSHB:
		r.format = FormatPcapNG
		if err := r.readSHB(); err != nil {
			return nil, err
		}
		return r, nil
	case le == magicMicro || le == magicNano:
		r.order = binary.LittleEndian
	case binary.BigEndian.Uint32(r.buf[r.r:]) == magicMicro || binary.BigEndian.Uint32(r.buf[r.r:]) == magicNano:
		r.order = binary.BigEndian
	default:
		return nil, &NotCaptureError{Magic: binary.BigEndian.Uint32(r.buf[r.r:]), Len: 4}
	}
	r.format = FormatPcap
	// struct pcap_file_header: magic(4) major(2) minor(2) thiszone(4)
	// sigfigs(4) snaplen(4) linktype(4).
	if err := r.need(24); err != nil {
		return nil, fmt.Errorf("read pcap file header: %w", r.shortErr(err))
	}
	h := r.buf[r.r : r.r+24]
	r.nano = r.order.Uint32(h) == magicNano
	// The upper bits of the link type field hold an FCS length and flags
	// (pcap-linktype(7)); only the low 16 bits are the link type.
	r.link = decode.LinkType(r.order.Uint32(h[20:]) & 0xffff)
	r.consume(24)
	return r, nil
}

// Format returns the container format.
func (r *Reader) Format() Format { return r.format }

// Packets returns the number of packets delivered so far.
func (r *Reader) Packets() int { return r.n }

// Offset returns the file offset of the next unread byte.
func (r *Reader) Offset() int64 { return r.off }

// Next reads the next packet into rec. It returns io.EOF at a clean end of
// file; any other error says which packet and byte offset it broke at, after
// every packet before it has been delivered.
func (r *Reader) Next(rec *Record) error {
	if r.format == FormatPcap {
		return r.nextClassic(rec)
	}
	return r.nextNG(rec)
}

func (r *Reader) nextClassic(rec *Record) error {
	start := r.off
	// struct pcap_sf_pkthdr: ts_sec(4) ts_usec_or_nsec(4) caplen(4) len(4).
	if err := r.need(16); err != nil {
		if err == io.EOF {
			return io.EOF
		}
		return r.errAt(start, "record header", r.shortErr(err))
	}
	h := r.buf[r.r : r.r+16]
	sec := int64(r.order.Uint32(h))
	frac := int64(r.order.Uint32(h[4:]))
	caplen := r.order.Uint32(h[8:])
	wire := r.order.Uint32(h[12:])
	if caplen > maxCaplen {
		return r.errAt(start, "record header", fmt.Errorf("captured length %d exceeds %d: %w", caplen, maxCaplen, ErrCorrupt))
	}
	if err := r.need(16 + int(caplen)); err != nil {
		return r.errAt(start, fmt.Sprintf("packet data (%d bytes)", caplen), r.shortErr(err))
	}
	if !r.nano {
		frac *= 1000
	}
	rec.LinkType = r.link
	rec.Data = r.buf[r.r+16 : r.r+16+int(caplen) : r.r+16+int(caplen)]
	rec.WireLen = int(wire)
	rec.Timestamp = sec*1e9 + frac
	rec.Interface = 0
	r.consume(16 + int(caplen))
	r.n++
	return nil
}

func (r *Reader) nextNG(rec *Record) error {
	for {
		start := r.off
		if err := r.need(8); err != nil {
			if err == io.EOF {
				return io.EOF
			}
			return r.errAt(start, "block header", r.shortErr(err))
		}
		btype := r.order.Uint32(r.buf[r.r:])
		if btype == ngSHB {
			// A new section may switch byte order and resets the
			// interface list.
			if err := r.readSHB(); err != nil {
				return err
			}
			continue
		}
		blen := r.order.Uint32(r.buf[r.r+4:])
		if blen < 12 || blen%4 != 0 || blen > maxBlockLen {
			return r.errAt(start, fmt.Sprintf("block type 0x%x", btype), fmt.Errorf("bad block length %d: %w", blen, ErrCorrupt))
		}
		if err := r.need(int(blen)); err != nil {
			return r.errAt(start, fmt.Sprintf("block type 0x%x (%d bytes)", btype, blen), r.shortErr(err))
		}
		blk := r.buf[r.r : r.r+int(blen)]
		if r.order.Uint32(blk[blen-4:]) != blen {
			return r.errAt(start, fmt.Sprintf("block type 0x%x", btype), fmt.Errorf("trailing block length %d != %d: %w", r.order.Uint32(blk[blen-4:]), blen, ErrCorrupt))
		}
		body := blk[8 : blen-4]
		var err error
		ok := false
		switch btype {
		case ngIDB:
			err = r.readIDB(body)
		case ngEPB:
			ok, err = r.readEPB(body, rec)
		case ngSPB:
			ok, err = r.readSPB(body, rec)
		case ngOPB:
			ok, err = r.readOPB(body, rec)
		}
		if err != nil {
			return r.errAt(start, fmt.Sprintf("block type 0x%x", btype), err)
		}
		r.consume(int(blen))
		if ok {
			r.n++
			return nil
		}
	}
}

// readSHB reads a Section Header Block at the current position.
func (r *Reader) readSHB() error {
	start := r.off
	if err := r.need(12); err != nil {
		return r.errAt(start, "section header", r.shortErr(err))
	}
	switch bom := r.buf[r.r+8 : r.r+12]; {
	case binary.LittleEndian.Uint32(bom) == ngByteOrder:
		r.order = binary.LittleEndian
	case binary.BigEndian.Uint32(bom) == ngByteOrder:
		r.order = binary.BigEndian
	default:
		return r.errAt(start, "section header", fmt.Errorf("bad byte-order magic: %w", ErrCorrupt))
	}
	blen := r.order.Uint32(r.buf[r.r+4:])
	if blen < 28 || blen%4 != 0 || blen > maxBlockLen {
		return r.errAt(start, "section header", fmt.Errorf("bad block length %d: %w", blen, ErrCorrupt))
	}
	if err := r.need(int(blen)); err != nil {
		return r.errAt(start, "section header", r.shortErr(err))
	}
	r.ifaces = r.ifaces[:0]
	r.consume(int(blen))
	return nil
}

func (r *Reader) readIDB(b []byte) error {
	// linktype(2) reserved(2) snaplen(4) options.
	if len(b) < 8 {
		return fmt.Errorf("interface description too short: %w", ErrCorrupt)
	}
	ifc := iface{
		link:    decode.LinkType(r.order.Uint16(b)),
		snaplen: r.order.Uint32(b[4:]),
		unitsPS: 1e6,
	}
	opts := b[8:]
	for len(opts) >= 4 {
		code, olen := r.order.Uint16(opts), int(r.order.Uint16(opts[2:]))
		if code == 0 { // opt_endofopt
			break
		}
		if 4+olen > len(opts) {
			return fmt.Errorf("interface option %d overruns block: %w", code, ErrCorrupt)
		}
		v := opts[4 : 4+olen]
		switch {
		case code == 9 && olen >= 1: // if_tsresol
			// MSB clear: 10^-n seconds; set: 2^-n seconds.
			n := uint(v[0] & 0x7f)
			if v[0]&0x80 == 0 {
				if n > 19 {
					return fmt.Errorf("if_tsresol 10^-%d out of range: %w", n, ErrCorrupt)
				}
				ifc.unitsPS = 1
				for range n {
					ifc.unitsPS *= 10
				}
			} else {
				if n > 63 {
					return fmt.Errorf("if_tsresol 2^-%d out of range: %w", n, ErrCorrupt)
				}
				ifc.unitsPS = 1 << n
			}
		case code == 14 && olen >= 8: // if_tsoffset, seconds
			ifc.offset = int64(r.order.Uint64(v))
		}
		opts = opts[4+(olen+3)&^3:]
	}
	if len(r.ifaces) == cap(r.ifaces) && len(r.ifaces) >= 1<<16 {
		return fmt.Errorf("more than %d interfaces: %w", 1<<16, ErrCorrupt)
	}
	r.ifaces = append(r.ifaces, ifc)
	return nil
}

func (r *Reader) iface(id uint32) (*iface, error) {
	if int(id) >= len(r.ifaces) || id > 1<<16 {
		return nil, fmt.Errorf("packet on undeclared interface %d (%d declared): %w", id, len(r.ifaces), ErrCorrupt)
	}
	return &r.ifaces[id], nil
}

// ts converts a pcapng timestamp in the interface's units to unix nanoseconds.
func (ifc *iface) ts(units uint64) int64 {
	sec, frac := units/ifc.unitsPS, units%ifc.unitsPS
	hi, lo := bits.Mul64(frac, 1e9)
	ns, _ := bits.Div64(hi, lo, ifc.unitsPS) // frac < unitsPS, so no overflow
	return (int64(sec)+ifc.offset)*1e9 + int64(ns)
}

func (r *Reader) readEPB(b []byte, rec *Record) (bool, error) {
	// interface(4) ts high(4) ts low(4) caplen(4) origlen(4) data options.
	if len(b) < 20 {
		return false, fmt.Errorf("enhanced packet block too short: %w", ErrCorrupt)
	}
	return r.readPacket(b, rec, r.order.Uint32(b))
}

func (r *Reader) readOPB(b []byte, rec *Record) (bool, error) {
	// interface(2) drops(2) ts high(4) ts low(4) caplen(4) len(4) data.
	if len(b) < 20 {
		return false, fmt.Errorf("packet block too short: %w", ErrCorrupt)
	}
	return r.readPacket(b, rec, uint32(r.order.Uint16(b)))
}

// readPacket reads what the Enhanced and the obsolete Packet Block share after the
// interface id: timestamp high and low words, captured and original length at
// offsets 4 to 20, then the data. b holds at least 20 bytes.
func (r *Reader) readPacket(b []byte, rec *Record, id uint32) (bool, error) {
	ifc, err := r.iface(id)
	if err != nil {
		return false, err
	}
	caplen := r.order.Uint32(b[12:])
	if uint64(caplen) > uint64(len(b)-20) {
		return false, fmt.Errorf("captured length %d overruns block: %w", caplen, ErrCorrupt)
	}
	units := uint64(r.order.Uint32(b[4:]))<<32 | uint64(r.order.Uint32(b[8:]))
	r.fill(rec, ifc, int(id), b[20:20+caplen], int(r.order.Uint32(b[16:])), ifc.ts(units))
	return true, nil
}

func (r *Reader) readSPB(b []byte, rec *Record) (bool, error) {
	// origlen(4) data: interface 0, no timestamp, captured length =
	// min(origlen, snaplen, what the block holds).
	if len(b) < 4 {
		return false, fmt.Errorf("simple packet block too short: %w", ErrCorrupt)
	}
	ifc, err := r.iface(0)
	if err != nil {
		return false, err
	}
	wire := r.order.Uint32(b)
	n := uint64(len(b) - 4)
	n = min(n, uint64(wire))
	if ifc.snaplen != 0 {
		n = min(n, uint64(ifc.snaplen))
	}
	// No timestamp in an SPB: keep the previous packet's, so time does not
	// jump back to 1970 for the flow table.
	r.fill(rec, ifc, 0, b[4:4+n], int(wire), r.lastTS)
	return true, nil
}

func (r *Reader) fill(rec *Record, ifc *iface, id int, data []byte, wire int, ts int64) {
	rec.LinkType = ifc.link
	rec.Data = data[:len(data):len(data)]
	rec.WireLen = wire
	rec.Timestamp = ts
	rec.Interface = id
	r.lastTS = ts
}

// errAt wraps err with the packet number (1-based: the packet that could not
// be read) and the byte offset of its record or block.
func (r *Reader) errAt(offset int64, what string, err error) error {
	return fmt.Errorf("packet %d at byte offset %d: read %s: %w", r.n+1, offset, what, err)
}

func (r *Reader) shortErr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("file truncated: %w", io.ErrUnexpectedEOF)
	}
	return err
}

func (r *Reader) consume(n int) {
	r.r += n
	r.off += int64(n)
}

// need makes sure n bytes are buffered at buf[r:]. It returns io.EOF when the
// source is exhausted and nothing is buffered, io.ErrUnexpectedEOF when some
// but not n bytes are, or the source's error. The buffer grows (allocating)
// only for blocks larger than it, which real captures rarely have, and only
// as their bytes actually arrive: a corrupt length does not allocate up front.
func (r *Reader) need(n int) error {
	if r.w-r.r >= n {
		return nil
	}
	if r.r > 0 && r.r+n > len(r.buf) {
		r.w = copy(r.buf, r.buf[r.r:r.w])
		r.r = 0
	}
	for empty := 0; r.w-r.r < n; {
		if r.rdErr != nil {
			if r.w == r.r && r.rdErr == io.EOF {
				return io.EOF
			}
			if r.rdErr == io.EOF {
				return io.ErrUnexpectedEOF
			}
			return r.rdErr
		}
		if r.w == len(r.buf) { // full, and r.r == 0: n > len(buf)
			nb := make([]byte, min(n, 2*len(r.buf)))
			r.w = copy(nb, r.buf[r.r:r.w])
			r.r = 0
			r.buf = nb
		}
		m, err := r.src.Read(r.buf[r.w:])
		r.w += m
		switch {
		case err != nil:
			r.rdErr = err
		case m > 0:
			empty = 0
		default:
			// io.Reader allows (0, nil) now and then; a reader that
			// keeps doing it is broken (bufio gives up after 100 too).
			if empty++; empty >= 100 {
				r.rdErr = io.ErrNoProgress
			}
		}
	}
	return nil
}
