package syncbuf

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestConcurrentWritesAndReads: writers and readers at once (run with -race),
// every write whole in the result.
func TestConcurrentWritesAndReads(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 100 {
				fmt.Fprintf(&b, "w%d-%03d\n", w, i)
				_ = b.String()
				_ = b.Len()
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 4*100*len("w0-000\n"), b.Len())
	assert.Equal(t, b.String(), string(b.Bytes()))
	for w := range 4 {
		assert.Equal(t, 100, strings.Count(b.String(), fmt.Sprintf("w%d-", w)))
	}
	got := b.Bytes()
	got[0] = 'x'
	assert.Equal(t, byte('w'), b.String()[0], "Bytes is a copy")
}
