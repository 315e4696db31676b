//go:build linux

package testnet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"netwatch.dev/common/syncbuf"
	"netwatch.dev/sensor/internal/pcapfile"
)

// GoInNS runs fn in a new goroutine on an OS thread switched into the test
// namespace, for code that runs until the test stops it (a whole sensor) and
// opens its sockets on the calling goroutine. The thread is never switched
// back: it ends with the goroutine. The channel gets nil when fn returns, or
// the error that kept it from running.
func (n *Net) GoInNS(fn func()) <-chan error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		target, err := os.Open("/var/run/netns/" + n.NS)
		if err != nil {
			errc <- err
			return
		}
		err = unix.Setns(int(target.Fd()), unix.CLONE_NEWNET)
		target.Close()
		if err != nil {
			errc <- fmt.Errorf("setns %s: %w", n.NS, err)
			return
		}
		fn()
		errc <- nil
	}()
	return errc
}

// RequireTcpdump fails the test (it does not skip: CI runs as root and must
// have it) when tcpdump is not installed.
func RequireTcpdump(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Fatalf("this test compares the capture with tcpdump, which is not installed: apt-get install tcpdump (.ci/deps.sh installs it as root): %v", err)
	}
}

// Tcpdump is a running tcpdump writing what it captures to a pcap in memory.
type Tcpdump struct {
	cmd    *exec.Cmd
	out    syncbuf.Buffer // the pcap on tcpdump's stdout
	errOut syncbuf.Buffer
	exited chan struct{}
	err    error // set when exited is closed
}

// StartTcpdump runs tcpdump -i iface on the packets matching filter, in the
// test namespace if inNS, else in the root namespace, with -p (no
// promiscuous mode) unless promisc. It returns once tcpdump says it is
// listening; the test's end stops it.
func (n *Net) StartTcpdump(t testing.TB, inNS bool, iface string, promisc bool, filter string) *Tcpdump {
	t.Helper()
	RequireTcpdump(t)
	// -U with -w -: every packet is written out as it is captured.
	// --immediate-mode: libpcap hands packets over at once, not per block;
	// it then uses TPACKET_V2, whose ring slots are sized by the snaplen:
	// -s 256 (the tests count packets, not bytes) makes room for thousands
	// of packets in the default 2 MiB buffer rather than 7.
	args := []string{"tcpdump", "-n", "-U", "--immediate-mode", "-s", "256", "-w", "-", "-i", iface}
	if !promisc {
		args = append(args, "-p")
	}
	args = append(args, filter)
	if inNS {
		args = append([]string{"ip", "netns", "exec", n.NS}, args...)
	}
	d := &Tcpdump{cmd: exec.Command(args[0], args[1:]...), exited: make(chan struct{})}
	d.cmd.Stdout, d.cmd.Stderr = &d.out, &d.errOut
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", strings.Join(args, " "), err)
	}
	go func() { d.err = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		_ = d.cmd.Process.Signal(syscall.SIGINT)
		<-d.exited
	})
	deadline := time.After(5 * time.Second)
	for !strings.Contains(d.errOut.String(), "listening on") {
		select {
		case <-d.exited:
			t.Fatalf("%s exited (%v) before listening: %s", strings.Join(args, " "), d.err, d.errOut.String())
		case <-deadline:
			t.Fatalf("%s not listening after 5 s: %s", strings.Join(args, " "), d.errOut.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return d
}

// count parses the pcap written so far; a record still being written ends
// the count.
func (d *Tcpdump) count() (int, error) {
	r, err := pcapfile.NewReader(bytes.NewReader(d.out.Bytes()))
	if err != nil {
		return 0, err
	}
	var rec pcapfile.Record
	for {
		if err := r.Next(&rec); err != nil {
			if errors.Is(err, io.EOF) {
				return r.Packets(), nil
			}
			return r.Packets(), err
		}
	}
}

// Stop waits until tcpdump has written at least atLeast packets (5 s at most),
// gives late ones, if any, 100 ms to arrive, stops it and returns how many
// packets it captured.
func (d *Tcpdump) Stop(t testing.TB, atLeast int) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if k, _ := d.count(); k >= atLeast || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	_ = d.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-d.exited:
	case <-time.After(5 * time.Second):
		t.Fatalf("tcpdump did not stop on SIGINT: %s", d.errOut.String())
	}
	k, err := d.count()
	if err != nil {
		t.Fatalf("read tcpdump's pcap: %v (stderr: %s)", err, d.errOut.String())
	}
	t.Logf("tcpdump: %d packets; %s", k, strings.Join(strings.Fields(d.errOut.String()), " "))
	return k
}
