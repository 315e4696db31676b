//go:build !linux

package flow

// allocEntries reserves room for n entries. Outside Linux these are ordinary
// slices, allocated up front (see arena_linux.go for why they never grow).
func allocEntries(n int) ([]hot, []cold, func() error, error) {
	return make([]hot, 0, n), make([]cold, 0, n), func() error { return nil }, nil
}
