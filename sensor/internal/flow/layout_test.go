package flow

import (
	"testing"
	"unsafe"
)

// TestEntryLayout pins the entry to two cache lines, with the lookup fields
// in the first and the per-packet counters in the second (see entry).
func TestEntryLayout(t *testing.T) {
	if s := unsafe.Sizeof(entry{}); s != 128 {
		t.Errorf("sizeof(entry) = %d, want 128", s)
	}
	if o := unsafe.Offsetof(entry{}.pkts); o != 64 {
		t.Errorf("offsetof(entry.pkts) = %d, want 64", o)
	}
}

func TestStateBits(t *testing.T) {
	if stAIsSrc != 1<<stAIsSrcShift {
		t.Fatalf("stAIsSrc = %#x, want 1<<%d", stAIsSrc, stAIsSrcShift)
	}
}
