package flow

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// allocEntries reserves room for n entries in anonymous memory outside the Go
// heap. Pages are only backed when first touched, so reserving MaxFlows up
// front costs address space, not RAM, and the slice never has to grow (no
// copy of a large table in the packet path). MADV_HUGEPAGE asks for
// transparent huge pages: a flow lookup touches a random entry, and with 4
// KiB pages a table of 100k flows (13 MB) misses the TLB on almost every
// packet. entry holds no Go pointers, so memory the GC does not scan is fine.
func allocEntries(n int) ([]entry, func() error, error) {
	size := n * int(unsafe.Sizeof(entry{}))
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, nil, fmt.Errorf("map flow table of %d entries (%d bytes): %w", n, size, err)
	}
	// Best effort: with transparent_hugepage=never this fails or does
	// nothing, and the table still works with small pages.
	_ = unix.Madvise(mem, unix.MADV_HUGEPAGE)
	entries := unsafe.Slice((*entry)(unsafe.Pointer(&mem[0])), n)[:0]
	release := func() error {
		if err := unix.Munmap(mem); err != nil {
			return fmt.Errorf("unmap flow table: %w", err)
		}
		return nil
	}
	return entries, release, nil
}
