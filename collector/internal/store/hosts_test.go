package store

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// checkHosts: every flow a window reports names its own two addresses through its
// host ids, and the table counts exactly the distinct addresses of the stored flows.
func checkHosts(t *testing.T, s *Store, from, to time.Time) {
	t.Helper()
	want := map[netip.Addr]bool{}
	for _, f := range all(s) {
		want[f.Src.Unmap()], want[f.Dst.Unmap()] = true, true
	}
	require.Equal(t, len(want), s.Hosts(), "distinct addresses of the stored flows")
	seen := 0
	s.Window(from, to, func(w WindowFlow) {
		seen++
		f, ok := s.Get(w.Ref)
		require.True(t, ok)
		require.Equal(t, f.Src.Unmap(), s.HostAddr(w.SrcHost), "src of %v", f.Key)
		require.Equal(t, f.Dst.Unmap(), s.HostAddr(w.DstHost), "dst of %v", f.Key)
		require.Less(t, int(max(w.SrcHost, w.DstHost)), s.HostIDs())
	})
	require.NotZero(t, seen)
}

// TestHostIDsFollowTheFlows churns flows over a small pool of addresses (shared
// hosts, flows from a host to itself, IPv4 and IPv6) through eviction and expiry,
// and checks after every round that the ids name the right addresses and the counts
// are exact; once every flow is gone no host is left, and freed ids are reused.
func TestHostIDsFollowTheFlows(t *testing.T) {
	s := New(configWith(func(c *Config) { c.MaxFlows = 500; c.Retention = time.Minute }))
	rng := rand.New(rand.NewPCG(5, 6))
	addr := func() string {
		i := rng.IntN(300)
		if i%3 == 0 {
			return fmt.Sprintf("2001:db8::%x", i)
		}
		return fmt.Sprintf("10.0.%d.%d", i>>8, i&255)
	}
	now := t0
	for round := range 40 {
		var deltas []*netwatchv1.FlowDelta
		for range 100 {
			src, dst := addr(), addr()
			if rng.IntN(20) == 0 {
				dst = src
			}
			deltas = append(deltas, dl{src: src, dst: dst, sport: uint32(rng.IntN(4)), dport: 80,
				first: now.Add(-time.Duration(rng.IntN(30)) * time.Second), last: now, srcPk: 1, srcB: 100}.delta())
		}
		s.Apply("s1", deltas, now)
		checkHosts(t, s, now.Add(-2*time.Minute), now)
		if round%3 == 2 {
			s.Expire(now.Add(40 * time.Second)) // drops the flows not updated in the last 20 s
			checkHosts(t, s, now.Add(-2*time.Minute), now)
		}
		now = now.Add(10 * time.Second)
	}
	assert.NotZero(t, s.Stats().Evicted)
	assert.NotZero(t, s.Stats().Expired)

	s.Expire(now.Add(time.Hour))
	require.Zero(t, s.Len())
	assert.Zero(t, s.Hosts(), "no flow, no host")
	ids := s.HostIDs()
	var deltas []*netwatchv1.FlowDelta
	for i := range 100 {
		deltas = append(deltas, dl{src: fmt.Sprintf("192.168.0.%d", i), dst: "192.168.1.1", sport: 1, dport: 2, first: now, srcPk: 1, srcB: 1}.delta())
	}
	s.Apply("s1", deltas, now)
	checkHosts(t, s, now.Add(-time.Minute), now)
	assert.Equal(t, ids, s.HostIDs(), "new hosts take the freed ids")
}

// TestPinnedHostIDsAreNotReused: while a query holds PinHosts, an id whose flows are
// all gone keeps naming its address even if new hosts arrive; after the unpin the
// next sweep frees it for them.
func TestPinnedHostIDsAreNotReused(t *testing.T) {
	s := New(configWith(func(c *Config) { c.Retention = time.Minute }))
	s.Apply("s1", []*netwatchv1.FlowDelta{dl{src: "10.0.0.1", dst: "10.0.0.2", sport: 1, dport: 2, first: t0, srcPk: 1, srcB: 1}.delta()}, t0)
	var old WindowFlow
	unpin := s.PinHosts()
	s.Window(t0.Add(-time.Minute), t0, func(w WindowFlow) { old = w })

	s.Expire(t0.Add(time.Hour)) // the flow goes; the sweep cannot run
	require.Zero(t, s.Len())
	later := t0.Add(time.Hour)
	s.Apply("s1", []*netwatchv1.FlowDelta{dl{src: "10.9.9.1", dst: "10.9.9.2", sport: 1, dport: 2, first: later, srcPk: 1, srcB: 1}.delta()}, later)
	assert.Equal(t, "10.0.0.1", s.HostAddr(old.SrcHost).String())
	assert.Equal(t, "10.0.0.2", s.HostAddr(old.DstHost).String())
	assert.Equal(t, 4, s.HostIDs())
	unpin()

	s.Expire(later) // keeps the new flow, sweeps the old hosts
	later = later.Add(time.Second)
	s.Apply("s1", []*netwatchv1.FlowDelta{dl{src: "10.8.8.1", dst: "10.8.8.2", sport: 1, dport: 2, first: later, srcPk: 1, srcB: 1}.delta()}, later)
	assert.Equal(t, 4, s.HostIDs(), "the old ids were reused")
	assert.Equal(t, 4, s.Hosts())
	checkHosts(t, s, later.Add(-time.Minute), later)
}

// TestHostIDsUnderConcurrency runs ingest with eviction, expiry and pinned host
// resolution at once (for the race detector), then checks the table is exact.
func TestHostIDsUnderConcurrency(t *testing.T) {
	s := New(configWith(func(c *Config) { c.MaxFlows = 2000; c.Retention = time.Minute }))
	whileIngesting(s, func(w, i int) (string, dl) {
		return "s1", dl{src: fmt.Sprintf("10.%d.%d.%d", w, i>>8&7, i&255), dst: fmt.Sprintf("10.255.0.%d", i%5), sport: uint32(i % 11), dport: 80,
			first: t0, last: t0.Add(time.Duration(i%60) * time.Second), srcPk: 1, srcB: 100}
	}, func(i int) {
		unpin := s.PinHosts()
		s.Window(t0, t0.Add(5*time.Minute), func(w WindowFlow) {
			a, b := s.HostAddr(w.SrcHost), s.HostAddr(w.DstHost)
			require.True(t, a.Is4() && b.Is4(), "%v %v", a, b)
		})
		unpin()
		s.Expire(t0.Add(time.Duration(i) * time.Millisecond))
	})
	s.Expire(t0)
	checkHosts(t, s, t0, t0.Add(5*time.Minute))
}
