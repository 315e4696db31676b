//go:build unix

package ingest

import (
	"os"
	"path/filepath"
	"syscall"

	"netwatch.dev/common/flagconfig"
)

// lockDir takes an exclusive flock on dir/LOCK so two collectors never write one
// data directory. The kernel drops the lock when the process dies, even by SIGKILL.
func lockDir(dir string) (release func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, flagconfig.Fieldf("DataDir", "lock %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, flagconfig.Fieldf("DataDir", "%s is in use by another collector: %w", dir, err)
	}
	return func() { f.Close() }, nil
}
