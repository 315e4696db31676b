package ingest

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The durable log is a directory of segments "wal-<index>.log" and snapshots
// "snap-<index>.snap". Both are sequences of framed records:
//
//	uint32 big-endian payload length | uint32 big-endian CRC32C of payload | payload
//
// A snapshot "snap-N" holds the whole state (flows and dedup marks) produced by every
// segment with an index below N, and ends with a recEnd record so a snapshot cut
// short is recognised. Recovery loads the newest snapshot and replays the segments
// from its index on, in order; a damaged record costs that record only, and is
// reported (see recoverDir and damage.go).
//
// Appends are group-committed: one committer goroutine takes every record queued
// since its previous fsync, writes them with one write and one fsync, then applies
// them to memory in order and releases their waiters. A stream acknowledges a batch
// only after its record's waiter is released, so an acknowledged batch is on disk.

const (
	frameHeader = 8
	// maxRecord bounds one record; a larger length in a header means corruption.
	maxRecord = 256 << 20
	// readChunk is how much of a record's payload recovery reads (and allocates) at once.
	readChunk = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// appendFrame appends payload, framed, to dst. Payloads are never empty (an all-zero
// header is not a record).
func appendFrame(dst, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	dst = binary.BigEndian.AppendUint32(dst, crc32.Checksum(payload, castagnoli))
	return append(dst, payload...)
}

// errTorn is a record cut short or failing its checksum.
var errTorn = errors.New("torn or corrupt record")

// readPayload reads the n bytes of a record's payload into buf (reused). The buffer
// grows with the payload actually read, a chunk at a time: a corrupt length in a
// short file must not make recovery allocate up to maxRecord (256 MiB) before
// finding the payload cut short.
func readPayload(r io.Reader, buf []byte, n int) ([]byte, error) {
	buf = buf[:0]
	for remaining := n; remaining > 0; {
		chunk := min(remaining, readChunk)
		buf = slices.Grow(buf, chunk)
		if _, err := io.ReadFull(r, buf[len(buf):len(buf)+chunk]); err != nil {
			return buf, err
		}
		buf = buf[:len(buf)+chunk]
		remaining -= chunk
	}
	return buf, nil
}

// readFrames calls fn with the payload of every record of r (a stream; recovery
// uses scanFrames, which also resynchronises past damage). It returns the offset
// just past the last good record and errTorn (wrapped) when the data ends in a
// partial or corrupt record; a clean end of data returns a nil error.
func readFrames(r io.Reader, fn func(payload []byte) error) (good int64, err error) {
	br := bufio.NewReaderSize(r, 1<<20)
	var hdr [frameHeader]byte
	var buf []byte
	for {
		n, err := io.ReadFull(br, hdr[:])
		if err == io.EOF {
			return good, nil
		}
		if err != nil {
			return good, fmt.Errorf("%w: header cut short after %d bytes", errTorn, n)
		}
		size := binary.BigEndian.Uint32(hdr[:4])
		if size > maxRecord {
			return good, fmt.Errorf("%w: length %d", errTorn, size)
		}
		if buf, err = readPayload(br, buf, int(size)); err != nil {
			return good, fmt.Errorf("%w: payload cut short", errTorn)
		}
		if crc32.Checksum(buf, castagnoli) != binary.BigEndian.Uint32(hdr[4:]) {
			return good, fmt.Errorf("%w: checksum mismatch", errTorn)
		}
		if err := fn(buf); err != nil {
			return good, err
		}
		good += frameHeader + int64(size)
	}
}

// walConfig configures the log.
type walConfig struct {
	Dir string
	// SegmentBytes: a segment is closed (and a snapshot taken) once it is larger.
	SegmentBytes int64
	// SnapshotEvery: a snapshot is also taken when the current segment is this old
	// and not empty, so the log stays bounded by the retention window when traffic is low.
	SnapshotEvery time.Duration
	// Health receives write failures; nil: not reported.
	Health *walHealth
}

// segmentFile is what the log needs of its open segment (an *os.File; tests wrap
// it to fail writes).
type segmentFile interface {
	io.Writer
	io.Seeker
	Sync() error
	Truncate(size int64) error
	Close() error
	Name() string
}

// wrapSegment, when set (tests), wraps every segment the log opens.
var wrapSegment func(segmentFile) segmentFile

// retryEvery is how often a failed write is retried.
var retryEvery = time.Second

// writeFault is the log's current write failure: batches are not acknowledged
// until a retry succeeds.
type writeFault struct {
	err   error
	since time.Time
}

// walHealth is what the health and the metrics read of the log.
type walHealth struct {
	fault       atomic.Pointer[writeFault]
	writeErrors atomic.Uint64
}

// walEntry is one queued record.
type walEntry struct {
	frame   []byte
	apply   func() // runs after the record is durable, in log order
	release func() // runs once the entry is done, applied or failed
	done    chan struct{}
	err     error
}

// finish marks e done with err.
func (e *walEntry) finish(err error) {
	e.err = err
	close(e.done)
	if e.release != nil {
		e.release()
	}
}

// wait blocks until the record is durable (and applied) or failed (its error), or
// until ctx ends (ctx.Err(), which no log error equals).
func (e *walEntry) wait(ctx context.Context) error {
	select {
	case <-e.done:
		return e.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// capture copies the state to snapshot; it runs on the committer goroutine, between
// groups, so the state it sees is exactly that of the records committed so far. It
// returns a function that writes the copy (run in the background).
type captureFunc func() func(w io.Writer) error

// wal is the durable log.
type wal struct {
	cfg     walConfig
	log     *slog.Logger
	capture captureFunc
	now     func() time.Time

	mu     sync.Mutex
	queue  []*walEntry
	closed bool
	wake   chan struct{}
	done   chan struct{}
	stop   chan struct{} // closed by close: a failing write is not retried any more

	// Owned by the committer goroutine.
	f        segmentFile
	idx      uint64
	size     int64 // durable: everything before it is written and synced
	dirty    bool  // a failed write may have left bytes past size
	openedAt time.Time
	snapWG   sync.WaitGroup
	snapBusy atomic.Bool
	rotFail  bool // the last rotation failed (logged once)

	// Stats.
	groups, records, maxGroup, syncNanos atomic.Uint64
}

func segName(idx uint64) string  { return fmt.Sprintf("wal-%016d.log", idx) }
func snapName(idx uint64) string { return fmt.Sprintf("snap-%016d.snap", idx) }

// listIndexes returns the indexes of files named prefix<index>suffix in dir, sorted.
func listIndexes(dir, prefix, suffix string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, prefix) || !strings.HasSuffix(n, suffix) {
			continue
		}
		i, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(n, prefix), suffix), 10, 64)
		if err == nil {
			out = append(out, i)
		}
	}
	slices.Sort(out)
	return out, nil
}

// recoverDir replays the directory: a snapshot through load(payload, true), then
// every later segment through load(payload, false). The snapshot is the newest, or
// an older sound one when the newest is damaged and every segment from the older on
// is still there (nothing is lost then).
//
// Nothing acknowledged disappears without a word: a record cut short at the very
// end of the last segment is a torn write (never acknowledged) and is truncated; any
// other bad record costs that record only: the scan resynchronises on the next good
// one, the damaged file is moved to corrupt/ and replaced by its good records, and
// the loss is recorded in book. So is a segment missing after the snapshot. It never
// fails on bad data, only on I/O errors (and load's). It returns the index the next
// segment must use: above every segment there is, so new appends never go to a file
// that was replayed.
func recoverDir(dir string, log *slog.Logger, book *lossBook, now time.Time, load func(payload []byte, fromSnapshot bool) error) (next uint64, err error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return 0, fmt.Errorf("data-dir %s: %w", dir, err)
	}
	removeTemporaries(dir, log)
	snaps, err := listIndexes(dir, "snap-", ".snap")
	if err != nil {
		return 0, fmt.Errorf("data-dir %s: %w", dir, err)
	}
	segs, err := listIndexes(dir, "wal-", ".log")
	if err != nil {
		return 0, fmt.Errorf("data-dir %s: %w", dir, err)
	}
	var from uint64
	if len(snaps) > 0 {
		chosen := len(snaps) - 1
		if len(snaps) > 1 {
			for i := len(snaps) - 1; i >= 0; i-- {
				ok, err := snapshotSound(filepath.Join(dir, snapName(snaps[i])))
				if err != nil {
					return 0, err
				}
				if ok && (i == len(snaps)-1 || segmentsFrom(segs, snaps[i], snaps[len(snaps)-1])) {
					chosen = i
					break
				}
			}
		}
		for _, idx := range snaps[chosen+1:] {
			// Damaged, and what it holds is in the older snapshot and the segments.
			path := filepath.Join(dir, snapName(idx))
			log.Warn("durable log: damaged snapshot set aside; the previous snapshot and the segments after it hold the same, nothing is lost",
				"snapshot", path, "to", filepath.Join(dir, corruptDir))
			if err := moveAside(dir, path); err != nil {
				log.Warn("durable log: cannot set the damaged snapshot aside", "snapshot", path, "err", err)
			}
		}
		from = snaps[chosen]
		if err := replayFile(dir, snapName(from), true, false, log, book, now, load); err != nil {
			return 0, err
		}
	}
	missing := func(first, last uint64) {
		log.Error("durable log: segments missing; the batches they held are lost", "dir", dir, "first", first, "last", last)
		book.record(loss{Kind: "missing", First: first, Last: last, Detected: now})
	}
	next = from
	expect := from
	for i, idx := range segs {
		if idx < from {
			continue
		}
		if idx > expect {
			missing(expect, idx-1)
		}
		expect, next = idx+1, idx+1
		if err := replayFile(dir, segName(idx), false, i == len(segs)-1, log, book, now, load); err != nil {
			return 0, err
		}
	}
	if len(snaps) > 0 && expect == from { // segment N is opened before snapshot N is written: it is gone
		missing(from, from)
	}
	return next, nil
}

// segmentsFrom: segs holds every index in [a, b).
func segmentsFrom(segs []uint64, a, b uint64) bool {
	for i := a; i < b; i++ {
		if _, ok := slices.BinarySearch(segs, i); !ok {
			return false
		}
	}
	return true
}

// removeTemporaries removes what a crash mid-snapshot or mid-rewrite leaves: *.tmp.
func removeTemporaries(dir string, log *slog.Logger) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if n := e.Name(); strings.HasSuffix(n, ".tmp") && !e.IsDir() && (strings.HasPrefix(n, "snap-") || strings.HasPrefix(n, "wal-")) {
			if err := os.Remove(filepath.Join(dir, n)); err == nil {
				log.Info("durable log: unfinished temporary file removed (the collector stopped while writing it)", "file", filepath.Join(dir, n))
			}
		}
	}
}

// snapshotSound: every record of the snapshot is good and it ends with its end record.
func snapshotSound(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("open snapshot: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	res, err := scanFrames(f, fi.Size(), func([]byte) error { return nil })
	if err != nil {
		return false, fmt.Errorf("read snapshot %s: %w", path, err)
	}
	return len(res.damaged) == 0 && res.tail.len() == 0 && res.ended, nil
}

// replayFile loads the good records of one segment or snapshot and deals with
// its damage (see recoverDir).
func replayFile(dir, name string, snapshot, last bool, log *slog.Logger, book *lossBook, now time.Time, load func([]byte, bool) error) error {
	path := filepath.Join(dir, name)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("replay %s: %w", path, err)
	}
	fn := func(p []byte) error {
		if snapshot && len(p) == 1 && p[0] == recEnd {
			return nil
		}
		return load(p, snapshot)
	}
	if !fi.Mode().IsRegular() {
		// Not a file (a pipe): read as a stream, up to the first bad record; nothing
		// can be resynchronised, truncated nor moved.
		good, err := readFrames(f, func(p []byte) error {
			if err := fn(p); !errors.Is(err, errSkipRecord) {
				return err
			}
			return nil
		})
		if errors.Is(err, errTorn) {
			log.Warn("durable log: not a regular file; read up to its first bad record", "file", path, "offset", good, "err", err)
			return nil
		}
		if err != nil {
			return fmt.Errorf("replay %s: %w", path, err)
		}
		return nil
	}
	res, err := scanFrames(f, fi.Size(), fn)
	if err != nil {
		return fmt.Errorf("replay %s: %w", path, err)
	}
	tornTail := !snapshot && last && res.torn
	records, bytes := res.lost(!tornTail)
	missingEnd := snapshot && !res.ended
	if records == 0 && !missingEnd {
		if res.tail.len() > 0 {
			log.Warn("durable log: torn tail record truncated (the collector stopped mid-write; the sensor resends what was not acknowledged)",
				"segment", path, "offset", res.good, "bytes", res.tail.len())
			if err := os.Truncate(path, res.good); err != nil {
				log.Warn("durable log: truncate torn tail", "segment", path, "err", err)
			}
		}
		return nil
	}
	if missingEnd && records == 0 {
		records = 1 // cut short between records: at least one is gone
	}
	regions := slices.Clone(res.damaged)
	if res.tail.len() > 0 && !tornTail {
		regions = append(regions, res.tail)
	}
	l := loss{Kind: "damaged", File: name, Records: records, Bytes: bytes, Regions: regions, Detected: now}
	log.Error("durable log: damaged file; the records in its bad stretches are lost, the others are kept",
		"file", path, "records_lost", records, "bytes_lost", bytes, "records_kept", res.records, "moved_to", filepath.Join(dir, corruptDir, name))
	f.Close()
	l.moved, l.moveErr = linkAside(dir, path)
	if l.moveErr != nil {
		// Left in place (the next start finds the same damage), reported until then.
		book.keep(l)
		log.Error("durable log: cannot move the damaged file aside; it stays as found", "file", path, "err", l.moveErr)
		return nil
	}
	book.record(l)
	if err := replaceWithGood(dir, path, res.keep(), missingEnd); err != nil {
		log.Error("durable log: cannot rewrite the good records of the damaged file; it stays as found", "file", path, "err", err)
	}
	return nil
}

// openWAL starts a new segment at index next; recoverDir must have run first.
func openWAL(cfg walConfig, next uint64, log *slog.Logger, now func() time.Time, capture captureFunc) (*wal, error) {
	if cfg.Health == nil {
		cfg.Health = &walHealth{}
	}
	w := &wal{cfg: cfg, log: log, capture: capture, now: now, wake: make(chan struct{}, 1), done: make(chan struct{}), stop: make(chan struct{})}
	if cfg.Dir == "" { // memory only: the committer just applies, in order
		return w, nil
	}
	f, err := w.createSegment(next)
	if err != nil {
		return nil, err
	}
	w.f, w.idx, w.size, w.openedAt = f, next, 0, w.now()
	return w, nil
}

func (w *wal) createSegment(idx uint64) (segmentFile, error) {
	f, err := os.OpenFile(filepath.Join(w.cfg.Dir, segName(idx)), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open log segment: %w", err)
	}
	if err := syncDir(w.cfg.Dir); err != nil {
		f.Close()
		return nil, err
	}
	if wrapSegment != nil {
		return wrapSegment(f), nil
	}
	return f, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync data-dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync data-dir: %w", err)
	}
	return nil
}

// append queues a framed record; apply runs once it is durable.
func (w *wal) append(frame []byte, apply, release func()) *walEntry {
	e := &walEntry{frame: frame, apply: apply, release: release, done: make(chan struct{})}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		e.finish(errors.New("durable log closed"))
		return e
	}
	w.queue = append(w.queue, e)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return e
}

// run is the committer goroutine; it returns after close, once the queue is empty.
func (w *wal) run() {
	defer close(w.done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var buf []byte
	for {
		select {
		case <-w.wake:
		case <-tick.C:
			w.maybeRotate()
			continue
		}
		w.mu.Lock()
		group := w.queue
		w.queue = nil
		closed := w.closed
		w.mu.Unlock()
		if len(group) > 0 {
			buf = w.commit(group, buf[:0])
			w.maybeRotate()
		}
		if closed {
			w.mu.Lock()
			empty := len(w.queue) == 0
			w.mu.Unlock()
			if empty {
				return
			}
			select { // drain what was queued before close
			case w.wake <- struct{}{}:
			default:
			}
		}
	}
}

// commit writes and syncs a group, then applies and releases it. A failed write
// (a full disk, an I/O error) is retried every retryEvery, the segment cut back to
// its durable size first, until it succeeds or the log is closed: meanwhile nothing
// is applied nor acknowledged (the sensors keep their batches), later appends wait
// in the queue (bounded by the pending budget), and the health says why.
func (w *wal) commit(group []*walEntry, buf []byte) []byte {
	for _, e := range group {
		buf = append(buf, e.frame...)
	}
	var err error
	if w.f != nil && len(buf) > 0 {
		start := time.Now()
		for {
			if err = w.writeGroup(buf); err == nil {
				break
			}
			w.cfg.Health.writeErrors.Add(1)
			if old := w.cfg.Health.fault.Load(); old == nil || old.err.Error() != err.Error() {
				w.log.Error("durable log: write failed; batches are not acknowledged until a retry succeeds (retried every "+retryEvery.String()+")",
					"segment", w.f.Name(), "err", err)
				since := w.now()
				if old != nil {
					since = old.since
				}
				w.cfg.Health.fault.Store(&writeFault{err: err, since: since})
			}
			select {
			case <-time.After(retryEvery):
				continue
			case <-w.stop:
			}
			break
		}
		w.syncNanos.Add(uint64(time.Since(start)))
		if f := w.cfg.Health.fault.Load(); err == nil && f != nil {
			w.log.Info("durable log: writing again; batches are acknowledged again", "segment", w.f.Name(),
				"failed_for", w.now().Sub(f.since).Round(time.Second))
			w.cfg.Health.fault.Store(nil)
		}
	}
	if err == nil {
		w.size += int64(len(buf))
	}
	w.groups.Add(1)
	w.records.Add(uint64(len(group)))
	for n := uint64(len(group)); ; {
		m := w.maxGroup.Load()
		if n <= m || w.maxGroup.CompareAndSwap(m, n) {
			break
		}
	}
	for _, e := range group {
		if err == nil && e.apply != nil {
			e.apply()
		}
		e.finish(err)
	}
	return buf
}

// writeGroup appends buf at the durable end of the segment and syncs it. After a
// failure the segment is first cut back to its durable size (a partial write must
// not stay mid-segment, where it would read as damage) and the offset reset.
func (w *wal) writeGroup(buf []byte) error {
	if w.dirty {
		if err := w.f.Truncate(w.size); err != nil {
			return fmt.Errorf("durable log: cut %s back to %d bytes: %w", w.f.Name(), w.size, err)
		}
		if _, err := w.f.Seek(w.size, io.SeekStart); err != nil {
			return fmt.Errorf("durable log: seek %s: %w", w.f.Name(), err)
		}
		w.dirty = false
	}
	w.dirty = true
	if _, err := w.f.Write(buf); err != nil {
		return fmt.Errorf("durable log write: %w", err)
	}
	if err := w.f.Sync(); err != nil {
		// What the kernel did not write is not known after a failed fsync: the
		// group is written again.
		return fmt.Errorf("durable log sync: %w", err)
	}
	w.dirty = false
	return nil
}

// maybeRotate closes the segment and snapshots when it is big or old enough.
func (w *wal) maybeRotate() {
	if w.f == nil || w.size == 0 || w.cfg.Health.fault.Load() != nil || w.snapBusy.Load() {
		return
	}
	if w.size < w.cfg.SegmentBytes && w.now().Sub(w.openedAt) < w.cfg.SnapshotEvery {
		return
	}
	if err := w.rotate(); err != nil {
		if !w.rotFail {
			w.log.Error("durable log: rotate failed; the current segment goes on (retried every second)", "err", err)
		}
		w.rotFail = true
		return
	}
	w.rotFail = false
}

// rotate opens segment idx+1 and writes a snapshot of everything before it in the
// background; once the snapshot is written, read back and verified, the older
// segments and snapshots go. When the new segment cannot be opened the current one
// goes on.
func (w *wal) rotate() error {
	next := w.idx + 1
	nf, err := w.createSegment(next)
	if err != nil {
		return err
	}
	old := w.f
	w.f, w.idx, w.size, w.dirty, w.openedAt = nf, next, 0, false, w.now()
	if err := old.Close(); err != nil {
		w.log.Warn("durable log: close old segment", "segment", old.Name(), "err", err)
	}
	write := w.capture()
	w.snapBusy.Store(true)
	w.snapWG.Add(1)
	go func() {
		defer w.snapWG.Done()
		defer w.snapBusy.Store(false)
		if err := w.writeSnapshot(next, write); err != nil {
			w.log.Error("durable log: snapshot failed; older segments are kept", "err", err)
			return
		}
		w.prune(next)
	}()
	return nil
}

// writeSnapshot writes snapshot idx to a temporary file, syncs it, reads it back
// and verifies every record, and only then renames it into place. On any failure
// (a full disk included) nothing of it stays.
func (w *wal) writeSnapshot(idx uint64, write func(io.Writer) error) error {
	final := filepath.Join(w.cfg.Dir, snapName(idx))
	err := writeFileSync(final, func(f io.Writer) error {
		bw := bufio.NewWriterSize(f, 1<<20)
		if err := write(bw); err != nil {
			return err
		}
		if _, err := bw.Write(appendFrame(nil, []byte{recEnd})); err != nil {
			return err
		}
		return bw.Flush()
	}, func(tmp string) error {
		if ok, err := snapshotSound(tmp); err != nil || ok {
			return err
		}
		return errors.New("read back, it does not verify")
	})
	if err == nil {
		err = syncDir(w.cfg.Dir)
	}
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", final, err)
	}
	return nil
}

// prune deletes the segments and snapshots that the verified snapshot idx covers:
// those below idx, and only if snapshot idx is there.
func (w *wal) prune(idx uint64) {
	if _, err := os.Stat(filepath.Join(w.cfg.Dir, snapName(idx))); err != nil {
		w.log.Error("durable log: not pruning: the snapshot that covers the old segments is gone", "err", err)
		return
	}
	segs, _ := listIndexes(w.cfg.Dir, "wal-", ".log")
	for _, i := range segs {
		if i < idx {
			os.Remove(filepath.Join(w.cfg.Dir, segName(i)))
		}
	}
	snaps, _ := listIndexes(w.cfg.Dir, "snap-", ".snap")
	for _, i := range snaps {
		if i < idx {
			os.Remove(filepath.Join(w.cfg.Dir, snapName(i)))
		}
	}
}

// close commits what is queued, stops the committer and waits for a running
// snapshot. A write failing at that moment is not retried: its batches fail.
func (w *wal) close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	close(w.stop)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	<-w.done
	w.snapWG.Wait()
	if w.f == nil {
		return nil
	}
	if w.dirty { // a failed group's bytes: never acknowledged, cut off
		if err := w.f.Truncate(w.size); err != nil {
			w.log.Warn("durable log: cut failed write off at close", "segment", w.f.Name(), "err", err)
		}
	}
	return w.f.Close()
}

// WALStats describes group commit.
type WALStats struct {
	// Groups is the number of fsyncs, Records the records they carried.
	Groups, Records uint64
	// MaxGroup is the most records one fsync carried.
	MaxGroup uint64
	// SyncTime is the total time spent writing and syncing.
	SyncTime time.Duration
}

func (w *wal) stats() WALStats {
	return WALStats{Groups: w.groups.Load(), Records: w.records.Load(), MaxGroup: w.maxGroup.Load(), SyncTime: time.Duration(w.syncNanos.Load())}
}
