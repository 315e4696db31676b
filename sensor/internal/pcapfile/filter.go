package pcapfile

import (
	"fmt"
	"strings"

	xbpf "golang.org/x/net/bpf"

	"netwatch.dev/sensor/internal/bpf"
	"netwatch.dev/sensor/internal/decode"
)

// Filter is a capture filter (tcpdump syntax, see package internal/bpf) for
// the records of a capture file: the live capture's compiler, targeting each
// record's link type, run in x/net/bpf's VM. It does not allocate per record.
type Filter struct {
	expr    string
	vms     map[decode.LinkType]*xbpf.VM // compiled per link type, on first use
	link    decode.LinkType              // vm's link type
	vm      *xbpf.VM
	dropped uint64
}

// NewFilter checks expr and returns its filter. An empty expression returns
// a nil *Filter, which is no filter.
func NewFilter(expr string) (*Filter, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, nil
	}
	f := &Filter{expr: expr, vms: map[decode.LinkType]*xbpf.VM{}}
	// Ethernet takes every primitive: a syntax error shows before the file is read.
	if _, err := f.forLink(decode.LinkEthernet); err != nil {
		return nil, err
	}
	return f, nil
}

// Dropped returns how many records the filter has rejected (0 for nil).
func (f *Filter) Dropped() uint64 {
	if f == nil {
		return 0
	}
	return f.dropped
}

func (f *Filter) forLink(lt decode.LinkType) (*xbpf.VM, error) {
	if vm, ok := f.vms[lt]; ok {
		return vm, nil
	}
	prog, err := bpf.CompileFor(f.expr, 0, lt)
	if err != nil {
		return nil, err
	}
	vm, err := xbpf.NewVM(prog)
	if err != nil {
		return nil, fmt.Errorf("filter %q on link type %d: %w", f.expr, lt, err)
	}
	f.vms[lt] = vm
	return vm, nil
}

// Match reports whether rec passes, counting the records it rejects. A nil
// *Filter passes everything. The error says why the filter cannot apply to
// rec's link type.
func (f *Filter) Match(rec *Record) (bool, error) {
	if f == nil {
		return true, nil
	}
	if f.vm == nil || rec.LinkType != f.link {
		vm, err := f.forLink(rec.LinkType)
		if err != nil {
			return false, err
		}
		f.vm, f.link = vm, rec.LinkType
	}
	n, err := f.vm.Run(rec.Data)
	if err != nil {
		return false, fmt.Errorf("filter %q: %w", f.expr, err)
	}
	if n == 0 {
		f.dropped++
		return false, nil
	}
	return true, nil
}
