package flow

import (
	"testing"
	"unsafe"
)

// TestEntryLayout pins the per-packet part of an entry to one cache line and
// the rest to another (see hot and cold).
func TestEntryLayout(t *testing.T) {
	if s := unsafe.Sizeof(hot{}); s != 64 {
		t.Errorf("sizeof(hot) = %d, want 64", s)
	}
	if s := unsafe.Sizeof(cold{}); s != 64 {
		t.Errorf("sizeof(cold) = %d, want 64", s)
	}
}

func TestStateBits(t *testing.T) {
	if stAIsSrc != 1<<stAIsSrcShift {
		t.Fatalf("stAIsSrc = %#x, want 1<<%d", stAIsSrc, stAIsSrcShift)
	}
	if stFin0 != 1<<stFinShift || stFin1 != 1<<(stFinShift+1) {
		t.Fatalf("stFin0, stFin1 = %#x, %#x, want 1<<%d, 1<<%d", stFin0, stFin1, stFinShift, stFinShift+1)
	}
}
