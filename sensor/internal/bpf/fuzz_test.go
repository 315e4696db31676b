package bpf

import (
	"errors"
	"strings"
	"testing"

	xbpf "golang.org/x/net/bpf"

	"netwatch.dev/sensor/internal/decode"
)

// FuzzCompile: any expression either compiles or is refused with an error
// (never a panic); a compiled program assembles for the kernel, and the
// capture-file programs pass x/net/bpf's validation and run on any frame
// without error.
func FuzzCompile(f *testing.F) {
	for _, e := range append(append([]string{"", "tcp and and", "((udp)", "tcp[13:4] & (1|2|4) >= 0x10", "vlan vlan vlan and port 1"}, diffExprs...), ethernetOnly...) {
		f.Add(e, []byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0, 0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6})
	}
	links := []decode.LinkType{decode.LinkEthernet, decode.LinkLinuxSLL, decode.LinkLinuxSLL2, decode.LinkRaw, decode.LinkIPv4, decode.LinkIPv6, decode.LinkNull, decode.LinkLoop}
	f.Fuzz(func(t *testing.T, expr string, frame []byte) {
		if len(expr) > 4096 {
			return
		}
		prog, err := Compile(expr, 0)
		if err == nil {
			if _, err := xbpf.Assemble(prog); err != nil {
				t.Fatalf("Compile(%q) does not assemble: %v", expr, err)
			}
			run(t, expr, prog, frame, !strings.Contains(expr, "vlan"))
		} else if !errors.Is(err, ErrSyntax) && !strings.Contains(err.Error(), "too complex") {
			t.Fatalf("Compile(%q): unexpected kind of error %v", expr, err)
		}
		for _, lt := range links {
			prog, err := CompileFor(expr, 0, lt)
			if err != nil {
				if !errors.Is(err, ErrSyntax) && !strings.Contains(err.Error(), "too complex") {
					t.Fatalf("CompileFor(%q, %d): unexpected kind of error %v", expr, lt, err)
				}
				continue
			}
			run(t, expr, prog, frame, true)
		}
	})
}

// run checks prog in the VM on frame and its prefixes. mustVM: the program
// uses no kernel-only extension, so NewVM must take it.
func run(t *testing.T, expr string, prog []xbpf.Instruction, frame []byte, mustVM bool) {
	vm, err := xbpf.NewVM(prog)
	if err != nil {
		if mustVM {
			t.Fatalf("NewVM(%q): %v", expr, err)
		}
		return
	}
	for _, n := range []int{0, len(frame) / 2, len(frame)} {
		v, err := vm.Run(frame[:n])
		if err != nil {
			t.Fatalf("%q on % x: %v", expr, frame[:n], err)
		}
		if v != 0 && v != MaxSnaplen {
			t.Fatalf("%q on % x returned %d, want 0 or MaxSnaplen", expr, frame[:n], v)
		}
	}
}
