//go:build !linux

package capture

import (
	"context"
	"fmt"
	"runtime"
)

// Capture is a live capture; it only exists on Linux.
type Capture struct{}

// Open returns an error wrapping ErrUnsupported: live capture needs Linux
// AF_PACKET sockets.
func Open(cfg Config) (*Capture, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("open capture on %s: %w on %s (AF_PACKET is Linux-only)", cfg.Interface, ErrUnsupported, runtime.GOOS)
}

// Preflight returns the error Open would.
func Preflight(cfg Config) error {
	_, err := Open(cfg)
	return err
}

// Run is not supported on this system.
func (c *Capture) Run(ctx context.Context, newHandler func(worker int) Handler) error {
	return fmt.Errorf("%w on %s", ErrUnsupported, runtime.GOOS)
}

// Stats is not supported on this system.
func (c *Capture) Stats() Stats { return Stats{} }

// Close is not supported on this system.
func (c *Capture) Close() error { return nil }
