package ingest

import (
	"bufio"
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
// short is recognised and ignored. Recovery loads the newest complete snapshot and
// replays the segments from its index on, in order.
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

// appendFrame appends payload, framed, to dst.
func appendFrame(dst, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	dst = binary.BigEndian.AppendUint32(dst, crc32.Checksum(payload, castagnoli))
	return append(dst, payload...)
}

// errTorn is a record cut short or failing its checksum.
var errTorn = errors.New("torn or corrupt record")

// readFrames calls fn with the payload of every record of r. It returns the offset
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
		// The buffer grows with the payload actually read, a chunk at a time: a corrupt
		// length in a short file must not make recovery allocate up to maxRecord
		// (256 MiB) before finding the payload cut short.
		buf = buf[:0]
		for remaining := int(size); remaining > 0; {
			chunk := min(remaining, readChunk)
			buf = slices.Grow(buf, chunk)
			if _, err := io.ReadFull(br, buf[len(buf):len(buf)+chunk]); err != nil {
				return good, fmt.Errorf("%w: payload cut short", errTorn)
			}
			buf = buf[:len(buf)+chunk]
			remaining -= chunk
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

// wait blocks until the record is durable (and applied) or failed.
func (e *walEntry) wait() error { <-e.done; return e.err }

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
	err    error // sticky: after a failed write or fsync nothing more is accepted
	wake   chan struct{}
	done   chan struct{}

	// Owned by the committer goroutine.
	f        *os.File
	idx      uint64
	size     int64
	openedAt time.Time
	snapWG   sync.WaitGroup
	snapBusy atomic.Bool

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

// recover replays the directory: the newest complete snapshot through load(payload,
// true), then every later segment through load(payload, false). A torn tail is
// truncated and reported; corruption inside an older segment skips the rest of that
// segment with a warning. It never fails on bad data, only on I/O errors.
// It returns the index the next segment must use.
func recoverDir(dir string, log *slog.Logger, load func(payload []byte, fromSnapshot bool) error) (next uint64, err error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return 0, fmt.Errorf("data-dir %s: %w", dir, err)
	}
	snaps, err := listIndexes(dir, "snap-", ".snap")
	if err != nil {
		return 0, fmt.Errorf("data-dir %s: %w", dir, err)
	}
	var from uint64
	for i := len(snaps) - 1; i >= 0; i-- {
		ok, err := loadSnapshot(filepath.Join(dir, snapName(snaps[i])), log, load)
		if err != nil {
			return 0, err
		}
		if ok {
			from = snaps[i]
			break
		}
	}
	segs, err := listIndexes(dir, "wal-", ".log")
	if err != nil {
		return 0, fmt.Errorf("data-dir %s: %w", dir, err)
	}
	next = from
	for i, idx := range segs {
		if idx < from {
			continue
		}
		next = idx + 1
		path := filepath.Join(dir, segName(idx))
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return 0, fmt.Errorf("open log segment: %w", err)
		}
		good, rerr := readFrames(f, func(p []byte) error { return load(p, false) })
		switch {
		case rerr == nil:
		case errors.Is(rerr, errTorn) && i == len(segs)-1:
			log.Warn("durable log: torn tail record truncated (the collector stopped mid-write; the sensor resends what was not acknowledged)",
				"segment", path, "offset", good, "err", rerr)
			if err := f.Truncate(good); err != nil {
				log.Warn("durable log: truncate torn tail", "segment", path, "err", err)
			}
		case errors.Is(rerr, errTorn):
			log.Warn("durable log: corrupt record inside a segment; the rest of the segment is skipped",
				"segment", path, "offset", good, "err", rerr)
		default:
			f.Close()
			return 0, fmt.Errorf("replay %s: %w", path, rerr)
		}
		f.Close()
	}
	return next, nil
}

// loadSnapshot loads one snapshot; ok is false when it is incomplete or corrupt.
// Records are buffered first, so a bad snapshot leaves the state untouched.
func loadSnapshot(path string, log *slog.Logger, load func([]byte, bool) error) (ok bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("open snapshot: %w", err)
	}
	defer f.Close()
	var recs [][]byte
	complete := false
	_, rerr := readFrames(f, func(p []byte) error {
		if len(p) > 0 && p[0] == recEnd {
			complete = true
			return nil
		}
		recs = append(recs, slices.Clone(p))
		return nil
	})
	if rerr != nil || !complete {
		log.Warn("durable log: incomplete or corrupt snapshot ignored", "snapshot", path, "err", rerr)
		return false, nil
	}
	for _, p := range recs {
		if err := load(p, true); err != nil {
			return false, err
		}
	}
	return true, nil
}

// openWAL starts a new segment at index next; recoverDir must have run first.
func openWAL(cfg walConfig, next uint64, log *slog.Logger, now func() time.Time, capture captureFunc) (*wal, error) {
	w := &wal{cfg: cfg, log: log, capture: capture, now: now, wake: make(chan struct{}, 1), done: make(chan struct{})}
	if cfg.Dir == "" { // memory only: the committer just applies, in order
		return w, nil
	}
	if err := w.openSegment(next); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *wal) openSegment(idx uint64) error {
	f, err := os.OpenFile(filepath.Join(w.cfg.Dir, segName(idx)), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("open log segment: %w", err)
	}
	if err := syncDir(w.cfg.Dir); err != nil {
		f.Close()
		return err
	}
	w.f, w.idx, w.size, w.openedAt = f, idx, 0, w.now()
	return nil
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
	if w.closed || w.err != nil {
		err := w.err
		if err == nil {
			err = errors.New("durable log closed")
		}
		w.mu.Unlock()
		e.finish(err)
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

func (w *wal) commit(group []*walEntry, buf []byte) []byte {
	for _, e := range group {
		buf = append(buf, e.frame...)
	}
	err := w.errSticky()
	if err == nil && w.f != nil && len(buf) > 0 {
		start := time.Now()
		if _, err = w.f.Write(buf); err == nil {
			err = w.f.Sync()
		}
		w.syncNanos.Add(uint64(time.Since(start)))
		if err != nil {
			err = fmt.Errorf("durable log write: %w", err)
			w.log.Error("durable log: write failed; no more batches are acknowledged", "segment", w.f.Name(), "err", err)
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
		}
	}
	w.size += int64(len(buf))
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

func (w *wal) errSticky() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// maybeRotate closes the segment and snapshots when it is big or old enough.
func (w *wal) maybeRotate() {
	if w.f == nil || w.size == 0 || w.errSticky() != nil || w.snapBusy.Load() {
		return
	}
	if w.size < w.cfg.SegmentBytes && w.now().Sub(w.openedAt) < w.cfg.SnapshotEvery {
		return
	}
	if err := w.rotate(); err != nil {
		w.log.Error("durable log: rotate", "err", err)
	}
}

// rotate opens segment idx+1 and writes a snapshot of everything before it in the
// background; when the snapshot is complete the older segments and snapshots go.
func (w *wal) rotate() error {
	old := w.f
	if err := old.Close(); err != nil {
		return fmt.Errorf("close log segment: %w", err)
	}
	next := w.idx + 1
	if err := w.openSegment(next); err != nil {
		w.mu.Lock()
		w.err = err
		w.mu.Unlock()
		return err
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

func (w *wal) writeSnapshot(idx uint64, write func(io.Writer) error) error {
	final := filepath.Join(w.cfg.Dir, snapName(idx))
	tmp := final + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	err = write(bw)
	if err == nil {
		_, err = bw.Write(appendFrame(nil, []byte{recEnd}))
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err == nil {
		err = syncDir(w.cfg.Dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("snapshot %s: %w", final, err)
	}
	return nil
}

// prune deletes the segments and snapshots a complete snapshot idx supersedes.
func (w *wal) prune(idx uint64) {
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

// close commits what is queued, stops the committer and waits for a running snapshot.
func (w *wal) close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
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
