//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// The test binary doubles as nwxdpgen, so the generator runs through
// `ip netns exec` exactly as a user would run it.
func TestMain(m *testing.M) {
	if os.Getenv("NWXDPGEN_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type vethPair struct {
	nsA, nsB, devA, devB string
}

// setupVeth creates namespaces A and B with a veth pair between them; t.Cleanup
// deletes both namespaces (and so the pair), also when the test fails.
func setupVeth(t *testing.T) vethPair {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, BPF_PROG_RUN live frames)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip")
	}
	id := os.Getpid() % 100000
	p := vethPair{
		nsA: fmt.Sprintf("nwxdpgen-t%d-a", id), nsB: fmt.Sprintf("nwxdpgen-t%d-b", id),
		devA: fmt.Sprintf("nwxt%da", id), devB: fmt.Sprintf("nwxt%db", id),
	}
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", p.nsA).Run()
		exec.Command("ip", "netns", "del", p.nsB).Run()
	})
	for _, args := range [][]string{
		{"netns", "add", p.nsA},
		{"netns", "add", p.nsB},
		{"link", "add", p.devA, "type", "veth", "peer", "name", p.devB},
		{"link", "set", p.devA, "netns", p.nsA},
		{"link", "set", p.devB, "netns", p.nsB},
		// no IPv6: no router/neighbour solicitations in the counters
		{"netns", "exec", p.nsA, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
		{"netns", "exec", p.nsB, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
		{"netns", "exec", p.nsA, "sysctl", "-qw", "net.ipv6.conf." + p.devA + ".disable_ipv6=1"},
		{"netns", "exec", p.nsB, "sysctl", "-qw", "net.ipv6.conf." + p.devB + ".disable_ipv6=1"},
		{"-n", p.nsA, "link", "set", p.devA, "up"},
		{"-n", p.nsB, "link", "set", p.devB, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return p
}

func (p vethPair) peerRx(t *testing.T) uint64 {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", p.nsB, "cat", "/sys/class/net/"+p.devB+"/statistics/rx_packets").Output()
	if err != nil {
		t.Fatalf("reading %s rx_packets: %v", p.devB, err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// gen runs the generator in namespace A and returns its summary fields.
func (p vethPair) gen(t *testing.T, args ...string) (map[string]string, string, error) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", p.nsA, exe,
		"-dev", p.devA, "-peer-netns", p.nsB, "-q"}, args...)...)
	cmd.Env = append(os.Environ(), "NWXDPGEN_RUN_MAIN=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	fields := map[string]string{}
	for _, f := range strings.Fields(string(out)) {
		if k, v, ok := strings.Cut(f, "="); ok {
			fields[k] = v
		}
	}
	t.Logf("nwxdpgen %s\nstdout: %sstderr: %s", strings.Join(args, " "), out, stderr.String())
	return fields, stderr.String(), err
}

func TestSendsExactCount(t *testing.T) {
	p := setupVeth(t)
	const count = 100000
	before := p.peerRx(t)
	// -peer-xdp-pass gives the peer NAPI without ethtool; -batch 64 keeps
	// the veth's 256-slot XDP ring from overflowing.
	f, _, err := p.gen(t, "-count", strconv.Itoa(count), "-peer-xdp-pass", "-batch", "64")
	if err != nil {
		t.Fatalf("nwxdpgen: %v", err)
	}
	got := p.peerRx(t) - before
	if got != count {
		t.Fatalf("peer rx_packets grew by %d, want %d", got, count)
	}
	if f["generated"] != strconv.Itoa(count) || f["sent"] != strconv.Itoa(count) || f["peer_rx"] != strconv.Itoa(count) {
		t.Fatalf("summary generated=%s sent=%s peer_rx=%s, want %d each", f["generated"], f["sent"], f["peer_rx"], count)
	}
	if f["lost_before_peer"] != "0" {
		t.Fatalf("lost_before_peer=%s", f["lost_before_peer"])
	}
}

func TestPeerWithoutNAPIFails(t *testing.T) {
	p := setupVeth(t)
	// GRO is off on a new veth and nothing is attached: no NAPI on the peer.
	_, stderr, err := p.gen(t, "-count", "1000")
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 3 {
		t.Fatalf("want exit status 3, got %v", err)
	}
	if !strings.Contains(stderr, "NAPI") {
		t.Fatalf("stderr does not explain the NAPI requirement: %q", stderr)
	}
}

func TestFlowOfMatchesTemplate(t *testing.T) {
	s := frameSpec{srcIP: []byte{10, 200, 0, 1}, dstIP: []byte{10, 201, 0, 1}, sport: 1024, dport: 9, size: 64,
		srcMAC: make([]byte, 6), dstMAC: make([]byte, 6)}
	ip, port := s.flowOf(100000 - 1)
	if ip.String() != "10.200.0.7" || port != 1024+(99999&portMask) {
		t.Fatalf("flowOf(99999) = %s:%d", ip, port)
	}
	f := s.template()
	if ipChecksum(f[14:34]) != 0 {
		t.Fatalf("template IPv4 checksum does not verify")
	}
}
