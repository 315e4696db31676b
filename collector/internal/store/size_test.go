package store

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
)

// The layout the package comment and the memory budget count on.
func TestRecordSizes(t *testing.T) {
	assert.Equal(t, uintptr(120), unsafe.Sizeof(record{}))
	assert.Equal(t, uintptr(16), unsafe.Sizeof(entry{}))
}
