package pcapfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/sensor/internal/bpf"
	"netwatch.dev/sensor/internal/synth"
)

// next is Next followed by the filter, as the offline command reads.
func next(r *Reader, f *Filter, rec *Record) error {
	for {
		if err := r.Next(rec); err != nil {
			return err
		}
		ok, err := f.Match(rec)
		if err != nil {
			return fmt.Errorf("packet %d: %w", r.Packets(), err)
		}
		if ok {
			return nil
		}
	}
}

// digests reads data through a reader with filter expr ("" for none) and
// returns a digest of each record delivered, and the filter.
func digests(t *testing.T, data []byte, expr string) ([][32]byte, *Filter) {
	t.Helper()
	f, err := NewFilter(expr)
	require.NoError(t, err)
	r, err := NewReader(bytes.NewReader(data))
	require.NoError(t, err)
	var out [][32]byte
	for {
		var rec Record
		err := next(r, f, &rec)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		var ts [8]byte
		binary.BigEndian.PutUint64(ts[:], uint64(rec.Timestamp))
		out = append(out, sha256.Sum256(append(ts[:], rec.Data...)))
	}
	assert.Equal(t, uint64(r.Packets()), uint64(len(out))+f.Dropped(), "Packets counts every record read")
	return out, f
}

// TestFilterMatchesTcpdumpOnCaptures: on real captures of every link type the
// compiler targets, the records the filter passes are exactly those tcpdump
// -r FILE -w OUT EXPR keeps (libpcap's compiler and its filter).
func TestFilterMatchesTcpdumpOnCaptures(t *testing.T) {
	tcpdump, err := exec.LookPath("tcpdump")
	if err != nil {
		if os.Getenv("CI") == "true" || os.Geteuid() == 0 {
			t.Fatalf("tcpdump is not installed (.ci/deps.sh installs it): %v", err)
		}
		t.Skip("tcpdump is not installed (not root, not CI): this test compares with libpcap's filter")
	}
	files := []string{
		"pcapplusplus-example2.pcap",            // Ethernet, with ARP, CDP, VLAN
		"zeek-vlan-collisions.pcap",             // 802.1Q
		"arkime-dot1ad.pcap",                    // 802.1ad
		"pcapplusplus-sll.pcap",                 // Linux cooked v1
		"zeek-linux_dlt_sll2.pcap",              // Linux cooked v2
		"pcapplusplus-raw_ip.pcap",              // raw IP
		"zeek-ipv6-fragmented-dns.pcap",         // IPv6 fragments
		"flowtest-ipv4-udp-fragmented.pcap",     // IPv4 fragments
		"pcapplusplus-one_http_stream_fin.pcap", // TCP flags
		"ndpi-alexa-app.pcapng",                 // pcapng
	}
	exprs := []string{
		"tcp port 443", "udp", "not tcp", "ip6", "arp", "icmp or icmp6", "host 10.0.0.1", "net 192.168.0.0/16",
		"portrange 1-1024", "tcp[tcpflags] & (tcp-syn|tcp-fin) != 0", "proto 17 and not port 53", "ip[6:2] & 0x3fff != 0",
		"vlan", "vlan and udp", "vlan and tcp", "vlan 10 or vlan 20", "ether host ff:ff:ff:ff:ff:ff",
	}
	dir := t.TempDir()
	total := 0
	for _, name := range files {
		data := readFile(t, name)
		for _, expr := range exprs {
			out := filepath.Join(dir, "out.pcap")
			cmd := exec.Command(tcpdump, "-r", filepath.Join(pcapDir, name), "-w", out, expr)
			msg, err := cmd.CombinedOutput()
			var want [][32]byte
			switch {
			case err == nil:
				wantData, err := os.ReadFile(out)
				require.NoError(t, err)
				want, _ = digests(t, wantData, "")
			case bytes.Contains(msg, []byte("expression rejects all packets")):
			default: // libpcap refuses the expression on this link type: so must we
				f, err := NewFilter(expr)
				require.NoError(t, err)
				r, err := NewReader(bytes.NewReader(data))
				require.NoError(t, err)
				var rec Record
				assert.Error(t, next(r, f, &rec), "%s with %q: libpcap refuses it (%s), we do not", name, expr, msg)
				t.Logf("%-40s %-45q refused, as libpcap: %s", name, expr, bytes.TrimSpace(msg))
				continue
			}
			got, f := digests(t, data, expr)
			assert.Equal(t, want, got, "%s with %q: %d records kept by tcpdump, %d by us", name, expr, len(want), len(got))
			t.Logf("%-40s %-45q kept %d, dropped %d", name, expr, len(got), f.Dropped())
			total += len(got)
		}
	}
	assert.Greater(t, total, 1000)
}

// TestFilterRefuses: a filter that cannot apply to a record's link type is an
// error naming the filter and the reason.
func TestFilterRefuses(t *testing.T) {
	_, err := NewFilter("tcp and and")
	assert.ErrorIs(t, err, bpf.ErrSyntax)
	f, err := NewFilter("  ")
	assert.NoError(t, err)
	assert.Nil(t, f, "an empty expression is no filter")
	assert.Zero(t, f.Dropped())

	for _, tc := range []struct{ name, expr, msg string }{
		{"pcapplusplus-sll.pcap", "vlan", `packet 1: filter "vlan": "vlan" needs an Ethernet link, not Linux cooked (SLL)`},
		{"pcapplusplus-raw_ip.pcap", "ether src 02:00:00:00:00:01", `packet 1: filter "ether src 02:00:00:00:00:01": "ether" needs an Ethernet link, not raw IP`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := NewFilter(tc.expr)
			require.NoError(t, err)
			r, err := NewReader(bytes.NewReader(readFile(t, tc.name)))
			require.NoError(t, err)
			var rec Record
			err = next(r, f, &rec)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
	// A link type the compiler has no layout for (here 802.11 radiotap, 127).
	data := bytes.Clone(readFile(t, "tcpdump-tcp-handshake-nano.pcap"))
	binary.LittleEndian.PutUint32(data[20:], 127)
	f, err = NewFilter("tcp")
	require.NoError(t, err)
	r, err := NewReader(bytes.NewReader(data))
	require.NoError(t, err)
	var rec Record
	err = next(r, f, &rec)
	assert.ErrorIs(t, err, bpf.ErrLinkType)
	assert.Contains(t, err.Error(), "packet 1:")
}

// TestFilterZeroAllocs: reading through a filter allocates nothing per
// record (the VM is compiled once per link type and reused).
func TestFilterZeroAllocs(t *testing.T) {
	s, err := synth.Generate(synth.Config{Frames: 1000, Flows: 10, Seed: 1})
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, synth.WritePcap(&buf, s, 10))
	f, err := NewFilter("(tcp or udp) and not port 1 and net 0.0.0.0/0")
	require.NoError(t, err)
	r, err := NewReader(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	var rec Record
	allocs := testing.AllocsPerRun(2000, func() {
		if err := next(r, f, &rec); err != nil {
			t.Fatal(err)
		}
	})
	assert.Zero(t, allocs)
	assert.Greater(t, r.Packets(), 2000)
}

// BenchmarkFilter is the cost of the filter on one record.
func BenchmarkFilter(b *testing.B) {
	s, err := synth.Generate(synth.Config{Frames: 1, Flows: 1, Seed: 1})
	require.NoError(b, err)
	var buf bytes.Buffer
	require.NoError(b, synth.WritePcap(&buf, s, 1))
	r, err := NewReader(bytes.NewReader(buf.Bytes()))
	require.NoError(b, err)
	var rec Record
	require.NoError(b, r.Next(&rec))
	f, err := NewFilter("tcp port 443 or udp portrange 1000-2000 or host 10.0.0.1")
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Match(&rec); err != nil {
			b.Fatal(err)
		}
	}
}
