package bpf

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestBPFKernelAcceptsPrograms attaches every live program of the differential
// table to a socket: the kernel's checker (sk_chk_filter) takes them all.
// Any socket takes SO_ATTACH_FILTER, so this needs no privilege.
func TestBPFKernelAcceptsPrograms(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	defer unix.Close(fd)
	// The checker is on: a jump past the end is refused.
	bad := []unix.SockFilter{{Code: 0x15, Jt: 5, Jf: 0, K: 1}, {Code: 0x06, K: 0}} // jeq #1 jt +5; ret #0
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: 2, Filter: &bad[0]}); err == nil {
		t.Fatal("the kernel took a program that jumps past its end")
	}
	for _, expr := range append(append([]string{}, diffExprs...), ethernetOnly...) {
		raw, err := Assemble(expr, 0)
		if err != nil {
			t.Errorf("Assemble(%q): %v", expr, err)
			continue
		}
		prog := make([]unix.SockFilter, len(raw))
		for i, r := range raw {
			prog[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
		}
		fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
			t.Errorf("SO_ATTACH_FILTER %q (%d instructions): %v", expr, len(prog), err)
		}
	}
}
