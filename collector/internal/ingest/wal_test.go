package ingest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/collector/internal/store"
)

// frameOffsets is the offset of every record of a log or snapshot file.
func frameOffsets(t *testing.T, data []byte) []int64 {
	t.Helper()
	var offs []int64
	var at int64
	_, err := readFrames(bytes.NewReader(data), func(p []byte) error {
		offs = append(offs, at)
		at += frameHeader + int64(len(p))
		return nil
	})
	require.NoError(t, err)
	return offs
}

// sendAcked sends batches from..to of per flows each and waits for every ack.
func sendAcked(t *testing.T, s *sensorStream, from, to uint64, per int) {
	t.Helper()
	for seq := from; seq <= to; seq++ {
		s.send(batch(seq, per))
		require.Equal(t, seq, s.ack())
	}
}

// flowSet is the source address (as flow index) of every stored flow.
func flowSet(c *collector) map[int]bool {
	out := map[int]bool{}
	c.store.Scan(func(*store.Flow) bool { return true }, func(f store.Flow) {
		b := f.Src.As4()
		out[int(b[2])<<8|int(b[3])] = true
	})
	return out
}

func problems(c *collector) []string {
	var out []string
	for _, p := range c.svc.Problems() {
		out = append(out, fmt.Sprintf("%s unhealthy=%v incomplete=%v", p.Reason, p.Unhealthy, p.Incomplete))
	}
	return out
}

// TestDamagedRecordMidSegmentCostsThatRecordOnly: one bad record in the middle of
// the last segment (a flipped payload byte, or a length field gone wrong either
// way) loses that record only: the 999 other acknowledged batches come back, the
// damaged file is in corrupt/ as found, the loss is reported until the operator
// removes it, and new batches go to a new segment.
func TestDamagedRecordMidSegmentCostsThatRecordOnly(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt func(rec []byte)
	}{
		{"payload byte", func(rec []byte) { rec[frameHeader+40] ^= 0x10 }},
		{"length too large", func(rec []byte) { binary.BigEndian.PutUint32(rec, 0x00ffffff) }},
		{"length within the file", func(rec []byte) { binary.BigEndian.PutUint32(rec, binary.BigEndian.Uint32(rec)+300) }},
		{"length zero", func(rec []byte) { binary.BigEndian.PutUint32(rec, 0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := lossCheckEvery
			lossCheckEvery = 20 * time.Millisecond
			t.Cleanup(func() { lossCheckEvery = old })
			dir := t.TempDir()
			c := startCollector(t, dir, nil)
			s, _, err := dial(t, c.addr, "s1", "boot-a")
			require.NoError(t, err)
			sendAcked(t, s, 1, 1000, 1)
			c.crash()

			seg := filepath.Join(dir, segName(0))
			data, err := os.ReadFile(seg)
			require.NoError(t, err)
			offs := frameOffsets(t, data)
			require.Len(t, offs, 1000)
			rec := data[offs[500]:offs[501]]
			tc.corrupt(rec)
			require.NoError(t, os.WriteFile(seg, data, 0o640))

			c2 := startCollector(t, dir, nil)
			flows := flowSet(c2)
			assert.Len(t, flows, 999, "one batch (of one flow) lost, not the rest of the segment")
			assert.False(t, flows[500], "the damaged record is the one lost")
			reason := fmt.Sprintf("durable log: %s damaged: 1 records (%d bytes) lost; moved to %s unhealthy=false incomplete=true",
				segName(0), len(rec), filepath.Join(dir, "corrupt", segName(0)))
			assert.Equal(t, []string{reason}, problems(c2))
			assert.Equal(t, LogLoss{DamagedFiles: 1, Records: 1, Bytes: uint64(len(rec))}, c2.svc.LogLoss())
			moved, err := os.ReadFile(filepath.Join(dir, "corrupt", segName(0)))
			require.NoError(t, err)
			assert.Equal(t, data, moved, "the damaged file is kept as found")
			assert.FileExists(t, filepath.Join(dir, "corrupt", segName(0)+".loss"))

			// New batches go to a new segment, after the replayed one.
			s2, w, err := dial(t, c2.addr, "s1", "boot-a")
			require.NoError(t, err)
			assert.Equal(t, uint64(1000), w.GetAppliedThrough())
			sendAcked(t, s2, 1001, 1010, 1)
			segs, err := listIndexes(dir, "wal-", ".log")
			require.NoError(t, err)
			assert.Equal(t, []uint64{0, 1}, segs)
			c2.crash()

			// The report outlasts a restart, and nothing is lost twice.
			c3 := startCollector(t, dir, nil)
			assert.Len(t, flowSet(c3), 1009)
			assert.Equal(t, []string{reason}, problems(c3))
			// The operator acknowledges by removing the damaged file from corrupt/.
			require.NoError(t, os.Remove(filepath.Join(dir, "corrupt", segName(0))))
			require.Eventually(t, func() bool { return len(c3.svc.Problems()) == 0 }, 10*time.Second, 10*time.Millisecond)
			assert.NoFileExists(t, filepath.Join(dir, "corrupt", segName(0)+".loss"))
			assert.Equal(t, LogLoss{}, c3.svc.LogLoss())
		})
	}
}

// TestDamagedSnapshotRecordCostsThatRecordOnly: a flipped byte in the middle of the
// snapshot loses that flow only (not the whole snapshot), and is reported.
func TestDamagedSnapshotRecordCostsThatRecordOnly(t *testing.T) {
	dir := t.TempDir()
	small := func(cfg *Config) { cfg.SegmentBytes = 64 << 10 }
	c := startCollector(t, dir, small)
	s, _, err := dial(t, c.addr, "s1", "boot-a")
	require.NoError(t, err)
	sendAcked(t, s, 1, 300, 4)
	require.Eventually(t, func() bool {
		snaps, _ := listIndexes(dir, "snap-", ".snap")
		segs, _ := listIndexes(dir, "wal-", ".log")
		return len(snaps) == 1 && len(segs) == 1 && segs[0] == snaps[0]
	}, 10*time.Second, 10*time.Millisecond, "a snapshot, and the segments it covers pruned")
	before := flowSet(c)
	c.crash()

	snaps, _ := listIndexes(dir, "snap-", ".snap")
	name := snapName(snaps[0])
	path := filepath.Join(dir, name)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	offs := frameOffsets(t, data)
	mid := offs[len(offs)/2]
	size := offs[len(offs)/2+1] - mid
	data[mid+frameHeader+30] ^= 0x01
	require.NoError(t, os.WriteFile(path, data, 0o640))

	c2 := startCollector(t, dir, small)
	after := flowSet(c2)
	assert.Len(t, after, len(before)-1, "one flow lost, not the snapshot")
	reason := fmt.Sprintf("durable log: %s damaged: 1 records (%d bytes) lost; moved to %s unhealthy=false incomplete=true",
		name, size, filepath.Join(dir, "corrupt", name))
	assert.Equal(t, []string{reason}, problems(c2))
	moved, err := os.ReadFile(filepath.Join(dir, "corrupt", name))
	require.NoError(t, err)
	assert.Equal(t, data, moved)
	ok, err := snapshotSound(path)
	require.NoError(t, err)
	assert.True(t, ok, "the snapshot in the data dir is its good records, complete")
	_, w, err := dial(t, c2.addr, "s1", "boot-a")
	require.NoError(t, err)
	assert.Equal(t, uint64(300), w.GetAppliedThrough(), "the dedup marks survive")
	c2.crash()
	c3 := startCollector(t, dir, small)
	assert.Equal(t, after, flowSet(c3))
	assert.Equal(t, []string{reason}, problems(c3), "reported until acknowledged")
}

// TestDamagedNewestSnapshotFallsBackToThePrevious: when the newest snapshot is
// damaged and the previous one and every segment after it are still there (the
// collector stopped before pruning), they are used instead: nothing is lost.
func TestDamagedNewestSnapshotFallsBackToThePrevious(t *testing.T) {
	dir := t.TempDir()
	small := func(cfg *Config) { cfg.SegmentBytes = 16 << 10 }
	c := startCollector(t, dir, small)
	s, _, err := dial(t, c.addr, "s1", "boot-a")
	require.NoError(t, err)
	sendAcked(t, s, 1, 100, 4)
	require.Eventually(t, func() bool {
		snaps, _ := listIndexes(dir, "snap-", ".snap")
		return len(snaps) == 1 && !c.svc.wal.snapBusy.Load()
	}, 10*time.Second, 10*time.Millisecond)
	// From now on snapshots cannot be written (a directory is in the way of each
	// temporary file): the segments stay.
	snaps, _ := listIndexes(dir, "snap-", ".snap")
	for i := snaps[0] + 1; i < snaps[0]+64; i++ {
		require.NoError(t, os.Mkdir(filepath.Join(dir, snapName(i)+".tmp"), 0o750))
	}
	sendAcked(t, s, 101, 300, 4)
	before := flowSet(c)
	c.crash()
	segs, _ := listIndexes(dir, "wal-", ".log")
	require.Greater(t, len(segs), 3)
	// A newer snapshot, damaged, as if the collector had stopped before verifying
	// it and pruning.
	data, err := os.ReadFile(filepath.Join(dir, snapName(snaps[0])))
	require.NoError(t, err)
	data[len(data)/2] ^= 0x01
	newer := snapName(segs[len(segs)-2])
	require.NoError(t, os.WriteFile(filepath.Join(dir, newer), data, 0o640))

	c2 := startCollector(t, dir, small)
	assert.Equal(t, before, flowSet(c2), "nothing lost")
	assert.Empty(t, problems(c2))
	assert.FileExists(t, filepath.Join(dir, "corrupt", newer), "the damaged snapshot is set aside, not deleted")
	assert.NoFileExists(t, filepath.Join(dir, newer))
}

// TestMissingSegmentIsReported: a deleted segment after the snapshot is reported
// as lost (which ones), with a metric, until its note is removed.
func TestMissingSegmentIsReported(t *testing.T) {
	old := lossCheckEvery
	lossCheckEvery = 20 * time.Millisecond
	t.Cleanup(func() { lossCheckEvery = old })
	dir := t.TempDir()
	// Snapshots cannot be written (a directory is in the way of each temporary
	// file), so every segment stays.
	for i := range 64 {
		require.NoError(t, os.Mkdir(filepath.Join(dir, snapName(uint64(i))+".tmp"), 0o750))
	}
	small := func(cfg *Config) { cfg.SegmentBytes = 4 << 10 }
	c := startCollector(t, dir, small)
	s, _, err := dial(t, c.addr, "s1", "boot-a")
	require.NoError(t, err)
	sendAcked(t, s, 1, 100, 4)
	c.crash()
	segs, err := listIndexes(dir, "wal-", ".log")
	require.NoError(t, err)
	require.Greater(t, len(segs), 5)
	require.NoError(t, os.Remove(filepath.Join(dir, segName(2))))
	require.NoError(t, os.Remove(filepath.Join(dir, segName(3))))

	c2 := startCollector(t, dir, small)
	assert.Equal(t, []string{"durable log: segments 2..3 missing: their batches are lost unhealthy=false incomplete=true"}, problems(c2))
	assert.Equal(t, LogLoss{MissingSegments: 2}, c2.svc.LogLoss())
	f, _, _ := c2.totals()
	assert.Less(t, f, 400)
	c2.crash()
	c3 := startCollector(t, dir, small)
	assert.Len(t, problems(c3), 1, "still reported after a restart")
	require.NoError(t, os.Remove(filepath.Join(dir, "corrupt", "segments-2-3.loss")))
	require.Eventually(t, func() bool { return len(c3.svc.Problems()) == 0 }, 10*time.Second, 10*time.Millisecond)
}

// TestUnfinishedTemporaryFilesAreRemovedAtStart: a crash mid-snapshot leaves a
// *.snap.tmp; the next start removes it.
func TestUnfinishedTemporaryFilesAreRemovedAtStart(t *testing.T) {
	dir := t.TempDir()
	tmp := filepath.Join(dir, snapName(7)+".tmp")
	require.NoError(t, os.WriteFile(tmp, []byte("half a snapshot"), 0o640))
	startCollector(t, dir, nil)
	assert.NoFileExists(t, tmp)
}

// TestPruneKeepsWhatNoSnapshotCovers: prune deletes nothing when the snapshot
// that would cover the older files is not there.
func TestPruneKeepsWhatNoSnapshotCovers(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{segName(0), segName(1), snapName(0)} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), nil, 0o640))
	}
	w := &wal{cfg: walConfig{Dir: dir}, log: slog.New(slog.DiscardHandler)}
	w.prune(1)
	segs, _ := listIndexes(dir, "wal-", ".log")
	snaps, _ := listIndexes(dir, "snap-", ".snap")
	assert.Equal(t, []uint64{0, 1}, segs)
	assert.Equal(t, []uint64{0}, snaps)
}

// TestResyncIsBoundedByTheFile: a megabyte of garbage in the middle of a log, and
// corrupt lengths, cost a resynchronisation that checksums about the file's size,
// not its square, and allocates about the read buffers.
func TestResyncIsBoundedByTheFile(t *testing.T) {
	var data []byte
	for seq := uint64(1); seq <= 2000; seq++ {
		data = append(data, (&record{kind: recBatch, seq: seq, sensorID: "s1", bootID: "b", body: marshal(batch(seq, 3))}).frame()...)
	}
	good := len(data)
	rng := rand.New(rand.NewPCG(1, 2))
	garbage := make([]byte, 1<<20)
	for i := range garbage {
		garbage[i] = byte(rng.IntN(256))
	}
	for i := 0; i+9 <= len(garbage); i += 97 { // headers with small lengths and a known kind
		binary.BigEndian.PutUint32(garbage[i:], uint32(rng.IntN(1<<16)))
		garbage[i+8] = recBatch
	}
	data = append(data[:good/2:good/2], append(garbage, data[good/2:]...)...)
	resyncHashed.Store(0)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var n int
	res, err := scanFrames(bytes.NewReader(data), int64(len(data)), func([]byte) error { n++; return nil })
	runtime.ReadMemStats(&after)
	require.NoError(t, err)
	assert.Len(t, res.damaged, 1)
	assert.GreaterOrEqual(t, n, 1998)
	assert.LessOrEqual(t, resyncHashed.Load(), int64(2*len(data)), "checksummed while resynchronising")
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(16<<20), "allocated")

	// A length of 200 MiB at the start of a short file.
	short := slices.Clone(data[:4096])
	binary.BigEndian.PutUint32(short, 200<<20)
	runtime.ReadMemStats(&before)
	res, err = scanFrames(bytes.NewReader(short), int64(len(short)), func([]byte) error { return nil })
	runtime.ReadMemStats(&after)
	require.NoError(t, err)
	assert.NotEmpty(t, res.damaged)
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(16<<20), "allocated")
}
