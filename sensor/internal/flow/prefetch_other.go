//go:build !amd64 && !arm64

package flow

// prefetch is a no-op where there is no assembly version (see prefetch_asm.go).
func prefetch(addrs *uintptr, n int) {}
