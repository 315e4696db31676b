package store

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
)

// The layout the package comment and the memory budget count on.
func TestRecordSizes(t *testing.T) {
	assert.Equal(t, uintptr(144), unsafe.Sizeof(record{}))
	assert.Equal(t, uintptr(16), unsafe.Sizeof(entry{}))
	assert.Equal(t, uintptr(12), unsafe.Sizeof(slotMeta{}))
	assert.Equal(t, uintptr(20), unsafe.Sizeof(host{}))
	// Whole pages: large allocations are rounded up to them.
	assert.Zero(t, unsafe.Sizeof([chunkSize]record{})%8192)
	assert.Zero(t, unsafe.Sizeof([hostsPerChunk]host{})%8192)
}
