package procstat

import (
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestSampleSeesOwnCPUAndMemory(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	var s Sampler
	start := time.Now()
	s.Sample(start)
	for time.Since(start) < 300*time.Millisecond { // burn CPU
	}
	cpu, rss := s.Sample(time.Now())
	assert.Greater(t, cpu, 20.0, "a busy loop uses a good part of a core")
	assert.Less(t, cpu, 250.0)
	assert.Greater(t, rss, uint64(1<<20))
}
