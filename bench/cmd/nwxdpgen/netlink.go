//go:build linux

package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rtnl is a NETLINK_ROUTE socket bound to one network namespace (the one it
// was created in), so the peer's counters can be read from the generator's
// namespace even when the peer lives elsewhere.
type rtnl struct {
	fd  int
	seq uint32
}

// nsFile resolves a -peer-netns value: a bare name is looked up under
// /run/netns (what `ip netns add` creates).
func nsFile(ns string) string {
	if !strings.Contains(ns, "/") {
		return filepath.Join("/run/netns", ns)
	}
	return ns
}

// inNetns runs fn on a thread switched into the network namespace at nsPath
// ("" = our own). Sockets and BPF links fn creates stay bound to that namespace.
func inNetns(nsPath string, fn func() error) error {
	if nsPath == "" {
		return fn()
	}
	target, err := os.Open(nsFile(nsPath))
	if err != nil {
		return fmt.Errorf("peer namespace: %w", err)
	}
	defer target.Close()

	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", nsPath, err)
	}
	ferr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// This thread is stuck in the wrong namespace: leave it locked so
		// the runtime discards it when the goroutine ends.
		return fmt.Errorf("setns back: %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// openRtnl opens the socket in the namespace at nsPath ("" = our own).
func openRtnl(nsPath string) (*rtnl, error) {
	var fd int
	err := inNetns(nsPath, func() (err error) {
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	return &rtnl{fd: fd}, nil
}

func (r *rtnl) Close() { unix.Close(r.fd) }

type linkInfo struct {
	Name     string
	Index    int
	Link     int  // IFLA_LINK: for a veth, the peer's ifindex
	HasNSID  bool // IFLA_LINK_NETNSID present: the peer is in another namespace
	Stats    linkStats
	Kind     string
	HasStats bool
}

type linkStats struct {
	RxPackets, TxPackets, RxBytes, TxBytes, RxErrors, TxErrors, RxDropped, TxDropped uint64
}

// getLink asks for one link by name (or by index when name is "").
func (r *rtnl) getLink(name string, index int) (*linkInfo, error) {
	r.seq++
	var req []byte
	hdr := unix.NlMsghdr{Type: unix.RTM_GETLINK, Flags: unix.NLM_F_REQUEST, Seq: r.seq}
	ifi := unix.IfInfomsg{Family: unix.AF_UNSPEC, Index: int32(index)}
	body := (*[unix.SizeofIfInfomsg]byte)(unsafe.Pointer(&ifi))[:]
	req = append(req, make([]byte, unix.SizeofNlMsghdr)...)
	req = append(req, body...)
	if name != "" {
		req = appendAttr(req, unix.IFLA_IFNAME, append([]byte(name), 0))
	}
	hdr.Len = uint32(len(req))
	copy(req, (*[unix.SizeofNlMsghdr]byte)(unsafe.Pointer(&hdr))[:])
	if err := unix.Sendto(r.fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("netlink send: %w", err)
	}
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(r.fd, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("netlink recv: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("netlink parse: %w", err)
		}
		for i := range msgs {
			m := &msgs[i]
			if m.Header.Seq != r.seq {
				continue
			}
			switch m.Header.Type {
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if e := int32(binary.NativeEndian.Uint32(m.Data)); e != 0 {
						what := name
						if what == "" {
							what = fmt.Sprintf("ifindex %d", index)
						}
						return nil, fmt.Errorf("link %s: %w", what, syscall.Errno(-e))
					}
				}
				return nil, fmt.Errorf("netlink: empty answer")
			case unix.RTM_NEWLINK:
				return parseLink(m)
			}
		}
	}
}

func appendAttr(b []byte, typ uint16, val []byte) []byte {
	l := unix.SizeofRtAttr + len(val)
	var h [unix.SizeofRtAttr]byte
	binary.NativeEndian.PutUint16(h[0:], uint16(l))
	binary.NativeEndian.PutUint16(h[2:], typ)
	b = append(b, h[:]...)
	b = append(b, val...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func parseLink(m *syscall.NetlinkMessage) (*linkInfo, error) {
	if len(m.Data) < unix.SizeofIfInfomsg {
		return nil, fmt.Errorf("netlink: short RTM_NEWLINK")
	}
	li := &linkInfo{Index: int(int32(binary.NativeEndian.Uint32(m.Data[4:8])))}
	attrs, err := syscall.ParseNetlinkRouteAttr(m)
	if err != nil {
		return nil, fmt.Errorf("netlink attrs: %w", err)
	}
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.IFLA_IFNAME:
			li.Name = strings.TrimRight(string(a.Value), "\x00")
		case unix.IFLA_LINK:
			if len(a.Value) >= 4 {
				li.Link = int(binary.NativeEndian.Uint32(a.Value))
			}
		case unix.IFLA_LINK_NETNSID:
			li.HasNSID = true
		case unix.IFLA_STATS64:
			if len(a.Value) >= 64 {
				v := func(i int) uint64 { return binary.NativeEndian.Uint64(a.Value[8*i:]) }
				li.Stats = linkStats{v(0), v(1), v(2), v(3), v(4), v(5), v(6), v(7)}
				li.HasStats = true
			}
		case unix.IFLA_LINKINFO:
			for _, n := range nested(a.Value) {
				if n.typ == unix.IFLA_INFO_KIND {
					li.Kind = strings.TrimRight(string(n.val), "\x00")
				}
			}
		}
	}
	return li, nil
}

type rawAttr struct {
	typ uint16
	val []byte
}

func nested(b []byte) []rawAttr {
	var out []rawAttr
	for len(b) >= unix.SizeofRtAttr {
		l := int(binary.NativeEndian.Uint16(b[0:]))
		t := binary.NativeEndian.Uint16(b[2:]) & 0x3fff
		if l < unix.SizeofRtAttr || l > len(b) {
			break
		}
		out = append(out, rawAttr{t, b[unix.SizeofRtAttr:l]})
		l = (l + 3) &^ 3
		if l > len(b) {
			break
		}
		b = b[l:]
	}
	return out
}
