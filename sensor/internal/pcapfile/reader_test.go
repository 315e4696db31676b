package pcapfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/common/difftest"
	"netwatch.dev/sensor/internal/decode"
	"netwatch.dev/sensor/internal/synth"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(pcapDir, name))
	require.NoError(t, err)
	return b
}

// readAll returns copies of every record and the error that ended the read
// (nil at a clean EOF).
func readAll(t testing.TB, data []byte) ([]Record, error) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	var out []Record
	for {
		var rec Record
		if err := r.Next(&rec); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, err
		}
		rec.Data = bytes.Clone(rec.Data)
		out = append(out, rec)
	}
}

func TestClassicMicro(t *testing.T) {
	recs, err := readAll(t, readFile(t, "arkime-dot1ad.pcap"))
	require.NoError(t, err)
	require.Len(t, recs, 2)
	assert.Equal(t, decode.LinkEthernet, recs[0].LinkType)
	assert.Equal(t, recs[0].WireLen, len(recs[0].Data))
	assert.Zero(t, recs[0].Timestamp%1000, "µs file: whole microseconds")
}

func TestClassicNano(t *testing.T) {
	recs, err := readAll(t, readFile(t, "tcpdump-tcp-handshake-nano.pcap"))
	require.NoError(t, err)
	require.Len(t, recs, 3)
	assert.Equal(t, decode.LinkLinuxSLL, recs[0].LinkType)
	nonMicro := false
	for _, r := range recs {
		nonMicro = nonMicro || r.Timestamp%1000 != 0
	}
	assert.True(t, nonMicro, "ns file keeps sub-microsecond digits")
}

// swapClassic rewrites a little-endian classic pcap in big-endian order.
func swapClassic(t *testing.T, le []byte) []byte {
	t.Helper()
	be := bytes.Clone(le)
	sw := func(off, n int) {
		switch n {
		case 2:
			binary.BigEndian.PutUint16(be[off:], binary.LittleEndian.Uint16(le[off:]))
		case 4:
			binary.BigEndian.PutUint32(be[off:], binary.LittleEndian.Uint32(le[off:]))
		}
	}
	sw(0, 4)
	sw(4, 2)
	sw(6, 2)
	for _, o := range []int{8, 12, 16, 20} {
		sw(o, 4)
	}
	for off := 24; off < len(le); {
		caplen := int(binary.LittleEndian.Uint32(le[off+8:]))
		for i := range 4 {
			sw(off+4*i, 4)
		}
		off += 16 + caplen
	}
	return be
}

func TestClassicBigEndian(t *testing.T) {
	le := readFile(t, "zeek-linux_dlt_sll2.pcap")
	want, err := readAll(t, le)
	require.NoError(t, err)
	got, err := readAll(t, swapClassic(t, le))
	require.NoError(t, err)
	difftest.Equal(t, want, got)
	assert.Equal(t, decode.LinkLinuxSLL2, got[0].LinkType)
}

func TestPcapNGInterfaces(t *testing.T) {
	recs, err := readAll(t, readFile(t, "pcapplusplus-many_interfaces-1.pcapng"))
	require.NoError(t, err)
	require.Len(t, recs, 64)
	links := map[decode.LinkType]int{}
	for _, r := range recs {
		links[r.LinkType]++
	}
	assert.Greater(t, links[decode.LinkNull], 0, "packets on the BSD loopback interface")
	assert.Greater(t, links[decode.LinkEthernet], 0)
}

func TestTruncatedFileSaysWhere(t *testing.T) {
	for _, name := range []string{"pcapplusplus-one_http_stream_fin.pcap", "pcapplusplus-many_interfaces-1.pcapng"} {
		full := readFile(t, name)
		all, err := readAll(t, full)
		require.NoError(t, err)
		// Cut in the middle of the 5th packet.
		var off int
		if name[len(name)-1] == 'g' {
			off = ngPacketOffset(t, full, 4) + 20
		} else {
			off = 24
			for range 4 {
				off += 16 + int(binary.LittleEndian.Uint32(full[off+8:]))
			}
			off += 20
		}
		got, err := readAll(t, full[:off])
		require.Error(t, err, name)
		if d := difftest.Diff(all[:4], got); d != "" {
			t.Errorf("%s: everything before the cut is delivered (-want +got):\n%s", name, d)
		}
		assert.Contains(t, err.Error(), "packet 5 at byte offset")
		assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
	}
}

// ngPacketOffset returns the file offset of the block of packet i (0-based).
func ngPacketOffset(t *testing.T, data []byte, i int) int {
	r, err := NewReader(bytes.NewReader(data))
	require.NoError(t, err)
	var rec Record
	for range i {
		require.NoError(t, r.Next(&rec))
	}
	// Skip non-packet blocks between packets: the next packet block starts
	// where the next Next begins reading a block of type EPB/SPB/OPB.
	off := int(r.Offset())
	for {
		bt := binary.LittleEndian.Uint32(data[off:])
		if bt == ngEPB || bt == ngSPB || bt == ngOPB {
			return off
		}
		off += int(binary.LittleEndian.Uint32(data[off+4:]))
	}
}

func TestCorruptRecordLength(t *testing.T) {
	full := readFile(t, "arkime-dot1ad.pcap")
	bad := bytes.Clone(full)
	second := 24 + 16 + int(binary.LittleEndian.Uint32(full[24+8:]))
	binary.LittleEndian.PutUint32(bad[second+8:], 0x7fffffff)
	got, err := readAll(t, bad)
	require.Error(t, err)
	assert.Len(t, got, 1)
	assert.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), fmt.Sprintf("packet 2 at byte offset %d", second))
}

func TestSmallBufferSameRecords(t *testing.T) {
	for _, name := range []string{"pcapplusplus-sll.pcap", "ndpi-alexa-app.pcapng"} {
		data := readFile(t, name)
		want, err := readAll(t, data)
		require.NoError(t, err)
		r, err := NewReaderSize(iotestOneByte{bytes.NewReader(data)}, 100)
		require.NoError(t, err)
		var got []Record
		var rec Record
		for range want {
			require.NoError(t, r.Next(&rec), "%s packet %d", name, len(got)+1)
			rec.Data = bytes.Clone(rec.Data)
			got = append(got, rec)
		}
		difftest.Equal(t, want, got)
		require.ErrorIs(t, r.Next(&rec), io.EOF)
	}
}

// iotestOneByte reads at most 7 bytes at a time, to exercise short reads.
type iotestOneByte struct{ r io.Reader }

func (o iotestOneByte) Read(p []byte) (int, error) { return o.r.Read(p[:min(len(p), 7)]) }

func TestBadMagic(t *testing.T) {
	_, err := NewReader(bytes.NewReader([]byte("not a capture at all")))
	assert.ErrorIs(t, err, ErrCorrupt)
	assert.EqualError(t, err, "not a pcap or pcapng file (magic 0x6e6f7420)", `"not " in file order`)
	_, err = NewReader(bytes.NewReader(nil))
	assert.ErrorIs(t, err, ErrCorrupt)
	assert.EqualError(t, err, "not a pcap or pcapng file (0 bytes, shorter than any capture header)")
	_, err = NewReader(bytes.NewReader([]byte{0xd4, 0xc3}))
	assert.EqualError(t, err, "not a pcap or pcapng file (2 bytes, shorter than any capture header)")
}

func TestNextZeroAllocs(t *testing.T) {
	s, err := synth.Generate(synth.Config{Frames: 1000, Flows: 10, Seed: 1})
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, synth.WritePcap(&buf, s, 3))
	data := buf.Bytes()
	r, err := NewReader(bytes.NewReader(data))
	require.NoError(t, err)
	var rec Record
	allocs := testing.AllocsPerRun(2000, func() {
		if err := r.Next(&rec); err != nil {
			t.Fatal(err)
		}
	})
	assert.Zero(t, allocs)
}
