// Package procstat reads the sensor process's own CPU time and resident memory.
package procstat

import (
	"bytes"
	"os"
	"strconv"
	"time"
)

// Sampler turns cumulative CPU time into a percentage between two samples.
type Sampler struct {
	lastCPU  time.Duration
	lastWall time.Time
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// Sample returns CPU use since the previous call, in percent of one core, and the
// resident set size in bytes. Where /proc is missing both are 0.
func (s *Sampler) Sample(now time.Time) (cpuPercent float64, rss uint64) {
	cpu := CPUTime()
	if !s.lastWall.IsZero() && now.After(s.lastWall) {
		cpuPercent = 100 * float64(cpu-s.lastCPU) / float64(now.Sub(s.lastWall))
	}
	s.lastCPU, s.lastWall = cpu, now
	return cpuPercent, RSS()
}

// CPUTime is utime+stime of this process from /proc/self/stat (fields 14 and 15,
// counted after the parenthesised command name, which may contain spaces).
func CPUTime() time.Duration {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseUint(string(f[11]), 10, 64)
	stime, _ := strconv.ParseUint(string(f[12]), 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// RSS is the resident set size from /proc/self/statm.
func RSS() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(string(f[1]), 10, 64)
	return pages * uint64(os.Getpagesize())
}
