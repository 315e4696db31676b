//go:build amd64 || arm64

package flow

// prefetch asks the CPU to bring the cache line holding each of the n
// addresses at addrs into the cache, without waiting for them. Unlike a load,
// a prefetch retires at once and never faults, so a stale or dangling address
// is harmless: the lookups that follow are what read the memory.
//
//go:noescape
func prefetch(addrs *uintptr, n int)
