package app

import (
	"encoding/binary"
	"hash/crc32"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// batchFrame is a log record of a batch, framed as the durable log writes it
// (see ingest/record.go and ingest/wal.go).
func batchFrame(t *testing.T, seq uint64) []byte {
	body, err := proto.Marshal(&netwatchv1.FlowBatch{Sequence: seq, Deltas: []*netwatchv1.FlowDelta{{
		Key:        &netwatchv1.FlowKey{Protocol: 6, SrcAddr: []byte{10, 0, 0, byte(seq)}, DstAddr: []byte{10, 0, 1, 1}, SrcPort: 1, DstPort: 2},
		SrcPackets: 1, SrcBytes: 100,
	}}})
	require.NoError(t, err)
	p := []byte{1}
	p = binary.BigEndian.AppendUint64(p, 1)
	p = binary.BigEndian.AppendUint64(p, seq)
	p = binary.BigEndian.AppendUint16(p, 2)
	p = append(p, "s1"...)
	p = binary.BigEndian.AppendUint16(p, 1)
	p = append(p, "b"...)
	p = append(p, body...)
	f := binary.BigEndian.AppendUint32(nil, uint32(len(p)))
	f = binary.BigEndian.AppendUint32(f, crc32.Checksum(p, crc32.MakeTable(crc32.Castagnoli)))
	return append(f, p...)
}

// TestLogDamageIsInHealthAndMetrics: a damaged record in the durable log makes the
// health incomplete, naming the file, and shows in /metrics.
func TestLogDamageIsInHealthAndMetrics(t *testing.T) {
	dir := t.TempDir()
	var seg []byte
	var bad int
	for seq := uint64(1); seq <= 3; seq++ {
		f := batchFrame(t, seq)
		if seq == 2 {
			f[20] ^= 0xff
			bad = len(f)
		}
		seg = append(seg, f...)
	}
	name := "wal-0000000000000000.log"
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), seg, 0o640))
	c := startCollector(t, func(cfg *Config) { cfg.Ingest.DataDir = dir })

	_, body, _ := getJSON(t, "http://"+c.HTTPAddr()+"/api/v1/health", nil)
	assert.Equal(t, true, body["incomplete"])
	reasons, _ := body["reasons"].([]any)
	require.NotEmpty(t, reasons)
	assert.Equal(t, "durable log: "+name+" damaged: 1 records ("+strconv.Itoa(bad)+" bytes) lost; moved to "+filepath.Join(dir, "corrupt", name), reasons[0])

	resp, err := http.Get("http://" + c.HTTPAddr() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	m, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for _, line := range []string{
		"netwatch_collector_log_damaged_files 1\n",
		"netwatch_collector_log_lost_records 1\n",
		"netwatch_collector_log_lost_bytes " + strconv.Itoa(bad) + "\n",
		"netwatch_collector_log_missing_segments 0\n",
		"netwatch_collector_log_write_failing 0\n",
		"# TYPE netwatch_collector_log_write_failing gauge\n",
		"netwatch_collector_log_write_errors_total 0\n",
	} {
		assert.Contains(t, string(m), line)
	}
}
