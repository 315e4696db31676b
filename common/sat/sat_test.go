package sat

import (
	"math"
	"testing"
)

func TestAdd(t *testing.T) {
	for _, tc := range []struct {
		name       string
		a, b, want uint64
	}{
		{"small", 2, 3, 5},
		{"zero", 0, 0, 0},
		{"to the top exactly", math.MaxUint64 - 1, 1, math.MaxUint64},
		{"past the top", math.MaxUint64 - 1, 2, math.MaxUint64},
		{"both huge", math.MaxUint64, math.MaxUint64, math.MaxUint64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Add(tc.a, tc.b); got != tc.want {
				t.Fatalf("Add(%d, %d) = %d, want %d", tc.a, tc.b, got, tc.want)
			}
		})
	}
}
