//go:build unix

package main

import (
	"log/slog"
	"syscall"
)

// raiseFileLimit raises the soft limit of open files (RLIMIT_NOFILE) to the hard
// one: every connection is a file descriptor, and the per-address caps of the
// listeners are sized for a process that may use what the system allows it. (The
// Go runtime does so too at start since Go 1.19; this makes it explicit, and says
// the figure.)
func raiseFileLimit(log *slog.Logger) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("cannot read the open file limit", "err", err)
		return
	}
	was := lim.Cur
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			log.Warn("cannot raise the open file limit to the hard limit", "soft", was, "hard", lim.Max, "err", err)
			return
		}
	}
	log.Debug("open file limit", "soft", lim.Cur, "hard", lim.Max, "was", was)
}
