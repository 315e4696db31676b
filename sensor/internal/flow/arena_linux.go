package flow

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// allocEntries reserves room for n entries (hot and cold parts) in anonymous
// memory outside the Go heap. Pages are only backed when first touched, so
// reserving MaxFlows up front costs address space, not RAM, and the slices
// never have to grow (no copy of a large table in the packet path).
// MADV_HUGEPAGE asks for transparent huge pages: a flow lookup touches a
// random entry, and with 4 KiB pages a table of 100k flows misses the TLB on
// almost every packet. hot and cold hold no Go pointers, so memory the GC
// does not scan is fine.
func allocEntries(n int) ([]hot, []cold, func() error, error) {
	hotSize := n * int(unsafe.Sizeof(hot{}))
	size := hotSize + n*int(unsafe.Sizeof(cold{}))
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("map flow table of %d entries (%d bytes): %w", n, size, err)
	}
	// Best effort: with transparent_hugepage=never this fails or does
	// nothing, and the table still works with small pages.
	_ = unix.Madvise(mem, unix.MADV_HUGEPAGE)
	h := unsafe.Slice((*hot)(unsafe.Pointer(&mem[0])), n)[:0]
	c := unsafe.Slice((*cold)(unsafe.Pointer(&mem[hotSize])), n)[:0]
	release := func() error {
		if err := unix.Munmap(mem); err != nil {
			return fmt.Errorf("unmap flow table: %w", err)
		}
		return nil
	}
	return h, c, release, nil
}
