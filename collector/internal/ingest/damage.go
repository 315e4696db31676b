package ingest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Damage to the durable log is never repaired silently. A damaged file (a segment
// or a snapshot with a bad record followed by good ones, or with bad bytes at its
// end that a cut-short write does not explain) is moved to <data dir>/corrupt/
// (a hard link: the bytes stay exactly as found) and replaced in the data dir by a
// copy of its good records, so the next start replays the same good records and new
// appends never go to it. Next to the moved file, "<file>.loss" describes what was
// lost. Missing segments are described by "segments-<a>-<b>.loss" alone.
//
// A loss is reported (health incomplete, metrics, a log line at start) for as long
// as its .loss file is in corrupt/ and, for a damaged file, the file is too: the
// operator acknowledges it by removing (or moving elsewhere) the damaged file or the
// .loss file. corrupt/ is read again every few seconds.

const corruptDir = "corrupt"

// lossCheckEvery is how often corrupt/ is read again for acknowledgements.
var lossCheckEvery = 3 * time.Second

// loss is one loss of acknowledged data, as its .loss file holds it.
type loss struct {
	// Kind is "damaged" (File lost Records records, Bytes bytes in Regions) or
	// "missing" (segments First..Last are not there).
	Kind     string    `json:"kind"`
	File     string    `json:"file,omitempty"`
	Records  int64     `json:"records,omitempty"`
	Bytes    int64     `json:"bytes,omitempty"`
	Regions  []region  `json:"regions,omitempty"`
	First    uint64    `json:"first,omitempty"`
	Last     uint64    `json:"last,omitempty"`
	Detected time.Time `json:"detected"`

	// moved is where the damaged file is now ("" for a missing range, or when it
	// could not be moved: see moveErr). Not stored.
	moved   string
	moveErr error
}

func (l *loss) note() string {
	if l.Kind == "missing" {
		return fmt.Sprintf("segments-%d-%d.loss", l.First, l.Last)
	}
	return l.File + ".loss"
}

// reason is the health's sentence for l.
func (l *loss) reason(dir string) string {
	if l.Kind == "missing" {
		return fmt.Sprintf("durable log: segments %d..%d missing: their batches are lost", l.First, l.Last)
	}
	s := fmt.Sprintf("durable log: %s damaged: %d records (%d bytes) lost; ", l.File, l.Records, l.Bytes)
	if l.moveErr != nil {
		return s + fmt.Sprintf("could not move it to %s: %v", filepath.Join(dir, corruptDir), l.moveErr)
	}
	return s + "moved to " + filepath.Join(dir, corruptDir, l.File)
}

// lossBook is the losses reported now.
type lossBook struct {
	dir string
	log *slog.Logger

	mu       sync.Mutex
	noted    []loss // read from corrupt/
	volatile []loss // could not be written to corrupt/: reported until the process ends
}

func (b *lossBook) list() []loss {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append(slices.Clone(b.noted), b.volatile...)
}

// LogLoss sums the losses reported now: damaged files, their records and bytes,
// and missing segments.
type LogLoss struct {
	DamagedFiles, Records, Bytes, MissingSegments uint64
}

func (b *lossBook) sum() LogLoss {
	var s LogLoss
	for _, l := range b.list() {
		if l.Kind == "missing" {
			s.MissingSegments += l.Last - l.First + 1
			continue
		}
		s.DamagedFiles++
		s.Records += uint64(l.Records)
		s.Bytes += uint64(l.Bytes)
	}
	return s
}

// record persists l in corrupt/ (or keeps it in memory if that fails).
func (b *lossBook) record(l loss) {
	if err := writeNote(b.dir, l); err != nil {
		b.log.Error("durable log: cannot record a loss in "+filepath.Join(b.dir, corruptDir)+"; it is reported until the collector stops", "err", err)
		l.moveErr = errors.Join(l.moveErr, err)
		b.keep(l)
	}
}

// keep holds l in memory only: it is reported until the process ends.
func (b *lossBook) keep(l loss) {
	b.mu.Lock()
	b.volatile = append(b.volatile, l)
	b.mu.Unlock()
}

// refresh reads corrupt/ again. A .loss file whose damaged file is gone was
// acknowledged: it is removed.
func (b *lossBook) refresh() {
	cdir := filepath.Join(b.dir, corruptDir)
	ents, err := os.ReadDir(cdir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		b.log.Warn("durable log: cannot read "+cdir, "err", err)
		return
	}
	var noted []loss
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".loss") || e.IsDir() {
			continue
		}
		p := filepath.Join(cdir, e.Name())
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		var l loss
		if err == nil {
			err = json.Unmarshal(data, &l)
		}
		if err != nil || (l.Kind != "damaged" && l.Kind != "missing") {
			b.log.Warn("durable log: unreadable loss note ignored", "file", p, "err", err)
			continue
		}
		if l.Kind == "damaged" {
			l.moved = filepath.Join(cdir, l.File)
			if _, err := os.Lstat(l.moved); errors.Is(err, fs.ErrNotExist) {
				if os.Remove(p) == nil {
					b.log.Info("durable log: loss acknowledged (the damaged file was removed from "+cdir+")", "file", l.File)
				}
				continue
			}
		}
		noted = append(noted, l)
	}
	b.mu.Lock()
	gone := b.noted
	b.noted = noted
	b.mu.Unlock()
	for _, g := range gone {
		if !slices.ContainsFunc(noted, func(l loss) bool { return l.note() == g.note() }) && g.Kind == "missing" {
			b.log.Info("durable log: loss acknowledged (its note was removed from "+cdir+")", "segments", fmt.Sprintf("%d..%d", g.First, g.Last))
		}
	}
}

// writeNote writes l's .loss file (atomically, synced) unless one of that name is
// there already (the same loss found again).
func writeNote(dir string, l loss) error {
	cdir := filepath.Join(dir, corruptDir)
	if err := os.MkdirAll(cdir, 0o750); err != nil {
		return err
	}
	p := filepath.Join(cdir, l.note())
	if _, err := os.Lstat(p); err == nil {
		return nil
	}
	data, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileSync(p, func(w io.Writer) error { _, err := w.Write(append(data, '\n')); return err }, nil); err != nil {
		return err
	}
	return syncDir(cdir)
}

// writeFileSync writes path atomically: a synced temporary file, checked by verify
// (when given) before it is renamed over path. Nothing partial stays when it fails.
func writeFileSync(path string, write func(io.Writer) error, verify func(tmp string) error) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && verify != nil {
		err = verify(tmp)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// linkAside links the damaged file path into corrupt/ (the bytes stay exactly as
// found) and returns the link. Finding the same file linked already is fine.
func linkAside(dir, path string) (string, error) {
	cdir := filepath.Join(dir, corruptDir)
	if err := os.MkdirAll(cdir, 0o750); err != nil {
		return "", err
	}
	dst := filepath.Join(cdir, filepath.Base(path))
	if fi, err := os.Lstat(dst); err == nil {
		src, serr := os.Lstat(path)
		if serr != nil || !os.SameFile(fi, src) {
			return "", fmt.Errorf("%s exists already", dst)
		}
	} else if err := os.Link(path, dst); err != nil {
		return "", err
	}
	return dst, syncDir(cdir)
}

// moveAside moves path into corrupt/ (renamed; a name taken there gets a suffix).
func moveAside(dir, path string) error {
	cdir := filepath.Join(dir, corruptDir)
	if err := os.MkdirAll(cdir, 0o750); err != nil {
		return err
	}
	dst := filepath.Join(cdir, filepath.Base(path))
	for i := 1; ; i++ {
		if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
			break
		}
		dst = filepath.Join(cdir, fmt.Sprintf("%s.%d", filepath.Base(path), i))
	}
	if err := os.Rename(path, dst); err != nil {
		return err
	}
	if err := syncDir(cdir); err != nil {
		return err
	}
	return syncDir(dir)
}

// replaceWithGood replaces path by a copy of its stretches keep (plus a snapshot's
// end record when addEnd), atomically.
func replaceWithGood(dir, path string, keep []region, addEnd bool) error {
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	err = writeFileSync(path, func(w io.Writer) error {
		for _, r := range keep {
			if _, err := io.Copy(w, io.NewSectionReader(src, r.Off, r.len())); err != nil {
				return err
			}
		}
		if addEnd {
			_, err := w.Write(appendFrame(nil, []byte{recEnd}))
			return err
		}
		return nil
	}, nil)
	if err != nil {
		return err
	}
	return syncDir(dir)
}

// watchLosses reads corrupt/ again every interval (lossCheckEvery, read by the
// caller) until stop is closed.
func (s *Service) watchLosses(stop chan struct{}, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			s.losses.refresh()
		}
	}
}

// walProblems: the durable log's write failure (unhealthy: nothing is
// acknowledged) and its unacknowledged losses (incomplete).
func (s *Service) walProblems() []Problem {
	var out []Problem
	if f := s.walHealth.fault.Load(); f != nil {
		out = append(out, Problem{Reason: writeFaultReason(s.cfg.DataDir, f.err), Unhealthy: true})
	}
	for _, l := range s.losses.list() {
		out = append(out, Problem{Reason: l.reason(s.cfg.DataDir), Incomplete: true})
	}
	return out
}

func writeFaultReason(dir string, err error) string {
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Sprintf("data dir %s: no space left on device; batches are not acknowledged until space is freed", dir)
	}
	var errno syscall.Errno
	what := err.Error()
	if errors.As(err, &errno) {
		what = errno.Error()
	}
	return fmt.Sprintf("data dir %s: write failed (%s); batches are not acknowledged until a retry succeeds", dir, what)
}

// LogLoss is the durable log's losses reported now (until acknowledged).
func (s *Service) LogLoss() LogLoss { return s.losses.sum() }

// LogWriteFailing: the durable log cannot write now (nothing is acknowledged).
func (s *Service) LogWriteFailing() bool { return s.walHealth.fault.Load() != nil }

// LogWriteErrors counts the failed writes (and retries) of the durable log.
func (s *Service) LogWriteErrors() uint64 { return s.walHealth.writeErrors.Load() }
