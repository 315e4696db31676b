package pcapfile

import (
	"errors"
	"io"

	"netwatch.dev/sensor/internal/decode"
	"netwatch.dev/sensor/internal/flow"
)

// RunOptions configures Run.
type RunOptions struct {
	// ExportInterval, in packet-time nanoseconds, calls Table.Export with
	// the newest packet timestamp seen whenever that much packet time has
	// passed since the previous export. 0 never exports during the run.
	ExportInterval int64
	// Emit receives the deltas of the periodic exports (required when
	// ExportInterval > 0).
	Emit func(*flow.Delta)
}

// RunStats summarises a Run.
type RunStats struct {
	Packets   uint64 // records read
	IPPackets uint64 // records added to the flow table
	FirstTS   int64  // first record's timestamp
	LastTS    int64  // newest timestamp seen (what offline expiry uses as now)
}

// Run drives reader -> decoder -> table until the end of the file. It returns
// nil at a clean end of file, or the reader's error after everything before
// it has been added. It does not flush the table: call table.Export(stats.LastTS,
// ...) and/or table.Flush(flow.EndSensorStopped, ...) afterwards.
//
// Packets are decoded into a batch of flow.BatchSize and added with
// Table.AddBatch (same result as Add, fewer cache-miss stalls); the batch is
// flushed before every export so an export sees every earlier packet.
func Run(r *Reader, dec *decode.Decoder, t *flow.Table, opts RunOptions) (RunStats, error) {
	var (
		rec        Record
		pkts       [flow.BatchSize]decode.Packet
		tss        [flow.BatchSize]int64
		n          int
		st         RunStats
		lastExport int64
	)
	flush := func() {
		t.AddBatch(pkts[:n], tss[:n])
		n = 0
	}
	for {
		err := r.Next(&rec)
		if err != nil {
			flush()
			if errors.Is(err, io.EOF) {
				return st, nil
			}
			return st, err
		}
		if st.Packets == 0 {
			st.FirstTS, st.LastTS, lastExport = rec.Timestamp, rec.Timestamp, rec.Timestamp
		}
		st.Packets++
		st.LastTS = max(st.LastTS, rec.Timestamp)
		if dec.Decode(rec.LinkType, rec.Data, &pkts[n]).IsIP() {
			st.IPPackets++
			tss[n] = rec.Timestamp
			if n++; n == len(pkts) {
				flush()
			}
		}
		if opts.ExportInterval > 0 && st.LastTS-lastExport >= opts.ExportInterval {
			flush()
			t.Export(st.LastTS, opts.Emit)
			lastExport = st.LastTS
		}
	}
}
