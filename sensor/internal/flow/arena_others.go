//go:build !linux

package flow

// allocEntries reserves room for n entries. Outside Linux this is an ordinary
// slice, allocated up front (see arena_linux.go for why it never grows).
func allocEntries(n int) ([]entry, func() error, error) {
	return make([]entry, 0, n), func() error { return nil }, nil
}
