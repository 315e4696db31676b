// Package sat is saturating arithmetic for counters that come from peers: a sum
// that would wrap stays at the largest value instead, so a hostile or broken
// sensor can make a total wrong only upwards, never small again.
package sat

import "math"

// Add is a + b, or math.MaxUint64 when that overflows.
func Add(a, b uint64) uint64 {
	if c := a + b; c >= a {
		return c
	}
	return math.MaxUint64
}
