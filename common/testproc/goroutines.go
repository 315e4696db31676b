package testproc

import (
	"runtime"
	"strings"
)

// Goroutines are the stacks of this process's goroutines that are running fn (a
// function as a stack trace names it, e.g.
// "netwatch.dev/sensor/internal/export.(*Exporter).run"): what a test checks to
// see that a component it stopped left nothing running.
func Goroutines(fn string) []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var found []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "\n"+fn+"(") {
			found = append(found, g)
		}
	}
	return found
}
