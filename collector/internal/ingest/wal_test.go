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
	"sync/atomic"
	"syscall"
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

// ackReader reads s's acks into a channel (closed when the stream ends).
func ackReader(s *sensorStream) chan uint64 {
	acks := make(chan uint64, 1000)
	go func() {
		defer close(acks)
		for {
			resp, err := s.stream.Recv()
			if err != nil {
				return
			}
			acks <- resp.GetAck().GetSequence()
		}
	}()
	return acks
}

func requireAck(t *testing.T, acks chan uint64, seq uint64) {
	t.Helper()
	select {
	case got, ok := <-acks:
		require.True(t, ok, "stream ended before the ack of %d", seq)
		require.Equal(t, seq, got)
	case <-time.After(30 * time.Second):
		t.Fatalf("no ack of batch %d within 30 s", seq)
	}
}

// requireCleanLog: every file of the log reads without damage or torn tail.
func requireCleanLog(t *testing.T, dir string) {
	t.Helper()
	segs, err := listIndexes(dir, "wal-", ".log")
	require.NoError(t, err)
	for _, idx := range segs {
		f, err := os.Open(filepath.Join(dir, segName(idx)))
		require.NoError(t, err)
		fi, err := f.Stat()
		require.NoError(t, err)
		res, err := scanFrames(f, fi.Size(), func([]byte) error { return nil })
		f.Close()
		require.NoError(t, err)
		assert.Empty(t, res.damaged, "segment %d", idx)
		assert.Zero(t, res.tail.len(), "segment %d ends in %d bad bytes", idx, res.tail.len())
	}
}

// TestFullDiskHoldsAcksAndResumesWhenSpaceIsFreed: on a data dir that fills up
// (a real 2 MiB tmpfs), batches are not acknowledged nor applied, the health says
// so (unhealthy, not ready), a snapshot attempted meanwhile leaves nothing behind;
// once space is freed the same stream's batches are acknowledged within seconds,
// without a restart, and every flow is there exactly once, also after a restart.
func TestFullDiskHoldsAcksAndResumesWhenSpaceIsFreed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a 2 MiB tmpfs as the data dir needs root")
	}
	old := retryEvery
	retryEvery = 200 * time.Millisecond
	t.Cleanup(func() { retryEvery = old })
	dir := filepath.Join(t.TempDir(), "data")
	require.NoError(t, os.Mkdir(dir, 0o750))
	require.NoError(t, syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=2m"))
	t.Cleanup(func() { require.NoError(t, syscall.Unmount(dir, 0)) })

	c := startCollector(t, dir, nil)
	s, _, err := dial(t, c.addr, "s1", "boot-a")
	require.NoError(t, err)
	const per = 40
	sendAcked(t, s, 1, 20, per)
	acks := ackReader(s)

	// Fill the file system.
	filler, err := os.Create(filepath.Join(dir, "filler"))
	require.NoError(t, err)
	chunk := make([]byte, 64<<10)
	for {
		if _, err = filler.Write(chunk); err != nil {
			break
		}
	}
	require.ErrorIs(t, err, syscall.ENOSPC)
	require.NoError(t, filler.Close())

	for seq := uint64(21); seq <= 25; seq++ {
		s.send(batch(seq, per))
	}
	reason := "data dir " + dir + ": no space left on device; batches are not acknowledged until space is freed"
	require.Eventually(t, func() bool {
		p := c.svc.Problems()
		return len(p) == 1 && p[0].Reason == reason && p[0].Unhealthy
	}, 10*time.Second, 10*time.Millisecond, "health: %v", problems(c))
	require.EqualError(t, c.svc.Ready(), reason)
	assert.True(t, c.svc.LogWriteFailing())
	assert.Empty(t, acks, "nothing acknowledged while the disk is full")
	requireTotals(t, c, 20, per, "nothing applied while the disk is full")

	// A snapshot attempted now fails and leaves no partial file.
	require.ErrorIs(t, c.svc.wal.writeSnapshot(999, c.svc.capture()), syscall.ENOSPC)
	tmps, _ := filepath.Glob(filepath.Join(dir, "*.tmp"))
	assert.Empty(t, tmps)
	assert.NoFileExists(t, filepath.Join(dir, snapName(999)))

	require.NoError(t, os.Remove(filepath.Join(dir, "filler")))
	for seq := uint64(21); seq <= 25; seq++ {
		requireAck(t, acks, seq)
	}
	assert.Empty(t, problems(c))
	assert.NoError(t, c.svc.Ready())
	assert.Positive(t, c.svc.LogWriteErrors())
	for seq := uint64(26); seq <= 30; seq++ {
		s.send(batch(seq, per))
		requireAck(t, acks, seq)
	}
	requireTotals(t, c, 30, per, "after space came back")
	c.crash()
	requireCleanLog(t, dir)
	c2 := startCollector(t, dir, nil)
	requireTotals(t, c2, 30, per, "replayed: nothing lost, nothing doubled")
	assert.Empty(t, problems(c2))
}

// failingSegment fails every write while fail is set, after writing half of it
// (a partial write, as a failing disk may leave).
type failingSegment struct {
	segmentFile
	fail *atomic.Bool
}

func (f failingSegment) Write(p []byte) (int, error) {
	if f.fail.Load() {
		n, _ := f.segmentFile.Write(p[:len(p)/2])
		return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.EIO}
	}
	return f.segmentFile.Write(p)
}

// TestWriteErrorHoldsAcksAndRetries: an I/O error takes the same path as a full
// disk (held, retried, nothing lost nor doubled, no garbage left mid-segment), with
// its own reason.
func TestWriteErrorHoldsAcksAndRetries(t *testing.T) {
	old := retryEvery
	retryEvery = 50 * time.Millisecond
	var fail atomic.Bool
	wrapSegment = func(f segmentFile) segmentFile { return failingSegment{f, &fail} }
	t.Cleanup(func() { retryEvery, wrapSegment = old, nil })
	dir := t.TempDir()
	c := startCollector(t, dir, nil)
	s, _, err := dial(t, c.addr, "s1", "boot-a")
	require.NoError(t, err)
	sendAcked(t, s, 1, 5, 10)
	acks := ackReader(s)
	fail.Store(true)
	for seq := uint64(6); seq <= 8; seq++ {
		s.send(batch(seq, 10))
	}
	reason := "data dir " + dir + ": write failed (input/output error); batches are not acknowledged until a retry succeeds"
	require.Eventually(t, func() bool {
		p := c.svc.Problems()
		return len(p) == 1 && p[0].Reason == reason && p[0].Unhealthy && c.svc.LogWriteErrors() >= 3
	}, 10*time.Second, 10*time.Millisecond, "health: %v", problems(c))
	assert.Empty(t, acks)
	requireTotals(t, c, 5, 10, "nothing applied while writes fail")
	fail.Store(false)
	for seq := uint64(6); seq <= 8; seq++ {
		requireAck(t, acks, seq)
	}
	assert.Empty(t, problems(c))
	requireTotals(t, c, 8, 10, "after writes succeed again")
	c.crash()
	requireCleanLog(t, dir)
	c2 := startCollector(t, dir, nil)
	requireTotals(t, c2, 8, 10, "replayed")
	assert.Empty(t, problems(c2))
}

// TestStopWhileWritesFail: stopping while the log cannot write does not hang; the
// held batches were never acknowledged.
func TestStopWhileWritesFail(t *testing.T) {
	var fail atomic.Bool
	wrapSegment = func(f segmentFile) segmentFile { return failingSegment{f, &fail} }
	t.Cleanup(func() { wrapSegment = nil })
	dir := t.TempDir()
	c := startCollector(t, dir, nil)
	s, _, err := dial(t, c.addr, "s1", "boot-a")
	require.NoError(t, err)
	sendAcked(t, s, 1, 3, 10)
	acks := ackReader(s)
	fail.Store(true)
	s.send(batch(4, 10))
	require.Eventually(t, c.svc.LogWriteFailing, 10*time.Second, 10*time.Millisecond)
	c.stop()
	for range acks {
		t.Fatal("a batch was acknowledged")
	}
	fail.Store(false)
	requireCleanLog(t, dir)
	c2 := startCollector(t, dir, nil)
	requireTotals(t, c2, 3, 10, "the held batch is not in the log")
}

// TestUndecodableRecordIsReported: a record whose checksum holds but whose batch
// does not decode is lost like a damaged one, and reported.
func TestUndecodableRecordIsReported(t *testing.T) {
	dir := t.TempDir()
	c := startCollector(t, dir, nil)
	s, _, err := dial(t, c.addr, "s1", "boot-a")
	require.NoError(t, err)
	sendAcked(t, s, 1, 10, 1)
	c.crash()
	seg := filepath.Join(dir, segName(0))
	data, err := os.ReadFile(seg)
	require.NoError(t, err)
	offs := frameOffsets(t, data)
	bogus := (&record{kind: recBatch, seq: 99, sensorID: "s1", bootID: "boot-a", body: []byte{0xff, 0xff, 0xff}}).frame()
	data = append(data[:offs[5]:offs[5]], append(bogus, data[offs[5]:]...)...)
	require.NoError(t, os.WriteFile(seg, data, 0o640))

	c2 := startCollector(t, dir, nil)
	assert.Len(t, flowSet(c2), 10)
	assert.Equal(t, []string{fmt.Sprintf("durable log: %s damaged: 1 records (%d bytes) lost; moved to %s unhealthy=false incomplete=true",
		segName(0), len(bogus), filepath.Join(dir, "corrupt", segName(0)))}, problems(c2))
	c2.crash()
	requireCleanLog(t, dir)
}
