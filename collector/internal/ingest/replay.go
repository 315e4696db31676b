package ingest

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
)

// replayState is the progress of the replay of the data directory. Until the
// replay has ended (and the log is open), the collector is not ready and sensor
// streams are refused: the dedup marks come from the replay.
type replayState struct {
	ended       atomic.Bool
	read, total atomic.Int64 // bytes of snapshot and segments replayed / to replay
}

// replayProblems is the replay, while it lasts: "replaying the log: 43 %".
func (s *Service) replayProblems() []Problem {
	if s.replay.ended.Load() {
		return nil
	}
	return []Problem{{Reason: fmt.Sprintf("replaying the log: %d %%", s.replay.percent()), Unhealthy: true}}
}

// percent is the share of the bytes read so far, 0 to 99 while replaying.
func (r *replayState) percent() int64 {
	t := r.total.Load()
	if t <= 0 {
		return 0
	}
	return min(99, r.read.Load()*100/t)
}

// replayingMessage refuses (Unavailable) a sensor stream opened before the replay
// has ended; the sensor retries.
const replayingMessage = "replaying the log"

// replayBytes is what recoverDir will read of dir: the newest snapshot and the
// segments from its index on (an estimate: an incomplete snapshot makes recovery
// read an older one).
func replayBytes(dir string) int64 {
	size := func(name string) int64 {
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil && fi.Mode().IsRegular() {
			return fi.Size()
		}
		return 0
	}
	var total int64
	var from uint64
	if snaps, _ := listIndexes(dir, "snap-", ".snap"); len(snaps) > 0 {
		from = snaps[len(snaps)-1]
		total += size(snapName(from))
	}
	segs, _ := listIndexes(dir, "wal-", ".log")
	for _, idx := range segs {
		if idx >= from {
			total += size(segName(idx))
		}
	}
	return total
}
