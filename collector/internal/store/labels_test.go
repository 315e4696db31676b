package store

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// cidOf is a well-formed Community ID for i.
func cidOf(i int) string {
	h := sha1.Sum([]byte(fmt.Sprint(i)))
	return "1:" + base64.StdEncoding.EncodeToString(h[:])
}

func labelled(d dl, cid, name, app string) *netwatchv1.FlowDelta {
	x := d.delta()
	x.CommunityId, x.ServerName, x.Application = cid, name, app
	return x
}

func TestFlowLabelsKeepTheLatestNonEmptyValue(t *testing.T) {
	s := New(DefaultConfig())
	f := dl{src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 443, first: t0, srcPk: 1, srcB: 60}
	g := dl{src: "10.0.0.3", dst: "10.0.0.2", sport: 40001, dport: 443, first: t0, srcPk: 1, srcB: 60}
	s.Apply("s1", []*netwatchv1.FlowDelta{labelled(f, cidOf(1), "www.example.com", "tls"), labelled(g, "", "", "https")}, t0)
	s.Apply("s1", []*netwatchv1.FlowDelta{labelled(f, "", "", "")}, t0.Add(time.Second)) // empty: kept
	got := all(s)
	require.Len(t, got, 2)
	assert.Equal(t, [3]string{cidOf(1), "www.example.com", "tls"}, [3]string{got[0].CommunityID, got[0].ServerName, got[0].Application})
	assert.Equal(t, [3]string{"", "", "https"}, [3]string{got[1].CommunityID, got[1].ServerName, got[1].Application})

	s.Apply("s1", []*netwatchv1.FlowDelta{labelled(f, cidOf(2), "api.example.com", "http")}, t0.Add(2*time.Second))
	got = all(s)
	assert.Equal(t, [3]string{cidOf(2), "api.example.com", "http"}, [3]string{got[0].CommunityID, got[0].ServerName, got[0].Application})
	st := s.Stats()
	assert.Equal(t, 1, st.ServerNames, "www.example.com is no flow's any more")
	assert.Equal(t, 2, st.Applications)

	// Copies from Get, Query, Select and Recent carry them too.
	page, _ := s.Query(Filter{Protocol: -1, Port: -1, Src: netip.MustParsePrefix("10.0.0.1/32")}, Order{}, 0, 10)
	require.Len(t, page, 1)
	assert.Equal(t, "api.example.com", page[0].ServerName)
	s.Recent(0, func(fl Flow) {
		if fl.SrcPort == 40000 {
			assert.Equal(t, cidOf(2), fl.CommunityID)
		}
	})

	// A snapshot's flow (Restore) brings them back; a malformed community id in it
	// (snapshots are not checked again) is none.
	r := New(DefaultConfig())
	for _, fl := range all(s) {
		d := dl{src: fl.Src.String(), dst: fl.Dst.String(), sport: uint32(fl.SrcPort), dport: uint32(fl.DstPort), first: time.Unix(0, fl.FirstSeen)}
		r.Restore(fl.SensorID, labelled(d, fl.CommunityID, fl.ServerName, fl.Application), time.Unix(0, fl.ReceivedAt), nil)
	}
	bad := labelled(dl{src: "10.9.9.9", dst: "10.0.0.2", first: t0}, "1:not-base64!", strings.Repeat("a", 254), "tls")
	r.Restore("s1", bad, t0, nil)
	rg := all(r)
	require.Len(t, rg, 3)
	for i := range got {
		assert.Equal(t, [3]string{got[i].CommunityID, got[i].ServerName, got[i].Application}, [3]string{rg[i].CommunityID, rg[i].ServerName, rg[i].Application})
	}
	assert.Equal(t, [3]string{"", "", "tls"}, [3]string{rg[2].CommunityID, rg[2].ServerName, rg[2].Application})

	// Once the flows are gone, so are their names (after the sweep of Expire).
	s.Expire(t0.Add(2 * time.Hour))
	st = s.Stats()
	assert.Zero(t, st.ServerNames)
	assert.Zero(t, st.Applications)
	assert.Empty(t, s.names.ids, "swept")
}

func TestServerNamesAreBounded(t *testing.T) {
	s := New(configWith(func(c *Config) { c.MaxServerNames = 2 }))
	flow := func(i int) dl {
		return dl{src: fmt.Sprintf("10.0.0.%d", i), dst: "10.0.1.1", sport: 1, dport: 443, first: t0, srcPk: 1, srcB: 60}
	}
	for i := range 3 {
		s.Apply("s1", []*netwatchv1.FlowDelta{labelled(flow(i), "", fmt.Sprintf("n%d.example", i), "tls")}, t0)
	}
	got := all(s)
	require.Len(t, got, 3)
	var names []string
	for _, f := range got {
		names = append(names, f.ServerName)
	}
	slices.Sort(names)
	assert.Equal(t, []string{"", "n0.example", "n1.example"}, names, "the third name does not fit")
	st := s.Stats()
	assert.Equal(t, uint64(1), st.NamesRefused)
	assert.Equal(t, 2, st.ServerNames)
	// A name already held is not refused.
	s.Apply("s1", []*netwatchv1.FlowDelta{labelled(flow(2), "", "n0.example", "")}, t0)
	assert.Equal(t, uint64(1), s.Stats().NamesRefused)

	// Room again once the flows holding them are gone and the ids swept.
	s.Expire(t0.Add(2 * time.Hour))
	s.Apply("s1", []*netwatchv1.FlowDelta{labelled(flow(7), "", "n7.example", "")}, t0.Add(2*time.Hour))
	assert.Equal(t, "n7.example", all(s)[0].ServerName)
	assert.Equal(t, uint64(1), s.Stats().NamesRefused)
}

// labelStore holds flows between 40 hosts with community ids, server names and
// applications from small sets, so that every filter selects some and not all.
func labelStore(t *testing.T) (*Store, []Flow) {
	s := New(DefaultConfig())
	rng := rand.New(rand.NewPCG(7, 7))
	names := []string{"", "example.com", "www.example.com", "a.b.example.com", "badexample.com", "example.org"}
	apps := []string{"", "tls", "http", "dns"}
	var deltas []*netwatchv1.FlowDelta
	for i := range 400 {
		d := dl{src: fmt.Sprintf("10.0.0.%d", rng.IntN(20)), dst: fmt.Sprintf("10.0.1.%d", rng.IntN(20)),
			sport: uint32(1024 + i), dport: 443, first: t0.Add(time.Duration(i) * time.Second), srcPk: 1, srcB: 60}
		if i%7 == 0 {
			d.src = "2001:db8::1"
			d.dst = fmt.Sprintf("2001:db8::%d", 2+rng.IntN(5))
		}
		cid := ""
		if i%5 != 0 {
			cid = cidOf(i % 50)
		}
		deltas = append(deltas, labelled(d, cid, names[rng.IntN(len(names))], apps[rng.IntN(len(apps))]))
	}
	s.Apply("s1", deltas, t0.Add(10*time.Minute))
	fl := all(s)
	require.Len(t, fl, 400)
	return s, fl
}

func TestFilterByLabelsAndHosts(t *testing.T) {
	s, flows := labelStore(t)
	in := func(p string) func(netip.Addr) bool {
		pre := netip.MustParsePrefix(p)
		return pre.Contains
	}
	is := func(a string) func(netip.Addr) bool {
		x := netip.MustParseAddr(a)
		return func(b netip.Addr) bool { return b == x }
	}
	either := func(p func(netip.Addr) bool) func(Flow) bool {
		return func(f Flow) bool { return p(f.Src) || p(f.Dst) }
	}
	for _, tc := range []struct {
		name string
		f    Filter
		want func(Flow) bool
	}{
		{"community id exact", Filter{CommunityID: cidOf(3)}, func(f Flow) bool { return f.CommunityID == cidOf(3) }},
		{"community id no flow has", Filter{CommunityID: cidOf(999)}, func(Flow) bool { return false }},
		{"community id malformed", Filter{CommunityID: "1:xyz"}, func(Flow) bool { return false }},
		{"application exact", Filter{Application: "tls"}, func(f Flow) bool { return f.Application == "tls" }},
		{"application is not a prefix", Filter{Application: "tl"}, func(Flow) bool { return false }},
		{"server name exact or label suffix", Filter{ServerName: "example.com"}, func(f Flow) bool {
			return f.ServerName == "example.com" || strings.HasSuffix(f.ServerName, ".example.com")
		}},
		{"server name deeper suffix", Filter{ServerName: "b.example.com"}, func(f Flow) bool { return f.ServerName == "a.b.example.com" }},
		{"server name upper case", Filter{ServerName: "WWW.Example.com"}, func(f Flow) bool { return f.ServerName == "www.example.com" }},
		{"server name not on a label boundary", Filter{ServerName: "ample.com"}, func(Flow) bool { return false }},
		{"one host predicate, either end", Filter{Hosts: []func(netip.Addr) bool{is("10.0.0.3")}}, either(is("10.0.0.3"))},
		{"host predicate matching a destination", Filter{Hosts: []func(netip.Addr) bool{in("10.0.1.0/29")}}, either(in("10.0.1.0/29"))},
		{"two host predicates, each at one end", Filter{Hosts: []func(netip.Addr) bool{in("10.0.0.0/28"), in("10.0.1.0/28")}},
			func(f Flow) bool { return either(in("10.0.0.0/28"))(f) && either(in("10.0.1.0/28"))(f) }},
		{"two host predicates on IPv6", Filter{Hosts: []func(netip.Addr) bool{is("2001:db8::1"), is("2001:db8::3")}},
			func(f Flow) bool {
				return f.Src == netip.MustParseAddr("2001:db8::1") && f.Dst == netip.MustParseAddr("2001:db8::3")
			}},
		{"host predicate matching none", Filter{Hosts: []func(netip.Addr) bool{func(netip.Addr) bool { return false }}}, func(Flow) bool { return false }},
		{"all together", Filter{Application: "http", ServerName: "example.com", Hosts: []func(netip.Addr) bool{in("10.0.0.0/24")}},
			func(f Flow) bool {
				return f.Application == "http" && (f.ServerName == "example.com" || strings.HasSuffix(f.ServerName, ".example.com")) && either(in("10.0.0.0/24"))(f)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			f.Protocol, f.Port = -1, -1
			var want []string
			for _, fl := range flows {
				if tc.want(fl) {
					want = append(want, fl.ID())
				}
			}
			slices.Sort(want)
			ids := func(fs []Flow) []string {
				var out []string
				for _, fl := range fs {
					out = append(out, fl.ID())
				}
				slices.Sort(out)
				return out
			}
			page, total := s.Query(f, Order{By: ByFirstSeen}, 0, 1000)
			assert.Equal(t, want, ids(page), "Query")
			assert.Equal(t, len(want), total, "Query total")
			assert.Equal(t, len(want), s.count(f), "count")
			var sel []Flow
			s.Select(f, func(fl Flow) { sel = append(sel, fl) })
			assert.Equal(t, want, ids(sel), "Select")
			var streamed []Flow
			require.NoError(t, s.Stream(f, Order{}, 7, func(c []Flow) error { streamed = append(streamed, c...); return nil }))
			assert.Equal(t, want, ids(streamed), "Stream")
			var recent []Flow
			s.RecentMatching(0, []Filter{{Protocol: -1, Port: -1}, f}, func(fl Flow, hits []bool) {
				if hits[1] {
					recent = append(recent, fl)
				}
			})
			assert.Equal(t, want, ids(recent), "RecentMatching")
		})
	}
}

// A host predicate runs once per distinct address, not per flow, and the pin it
// holds is given back.
func TestHostPredicatesRunOncePerAddress(t *testing.T) {
	s, flows := labelStore(t)
	calls := map[netip.Addr]int{}
	f := Filter{Protocol: -1, Port: -1, Hosts: []func(netip.Addr) bool{func(a netip.Addr) bool { calls[a]++; return true }}}
	_, total := s.Query(f, Order{}, 0, 10)
	assert.Equal(t, len(flows), total)
	assert.Equal(t, s.Hosts(), len(calls), "every address once")
	for a, n := range calls {
		assert.Equal(t, 1, n, a.String())
	}
	assert.True(t, s.hosts.pin.TryLock(), "unpinned")
	s.hosts.pin.Unlock()
	require.Error(t, s.Stream(f, Order{}, 1, func([]Flow) error { return errors.New("stop") }))
	assert.True(t, s.hosts.pin.TryLock(), "unpinned after a Stream that stopped")
	s.hosts.pin.Unlock()
}

// TestConcurrentLabelsAndHostFilters: names taken up, replaced, released and swept
// while queries compile bitmaps over them and the host view reads (run with -race).
func TestConcurrentLabelsAndHostFilters(t *testing.T) {
	s := New(configWith(func(c *Config) { c.MaxFlows = 2000; c.Retention = time.Minute; c.MaxServerNames = 50 }))
	host := netip.MustParseAddr("10.255.0.1")
	whileIngesting(s, func(w, i int) (string, dl) {
		return fmt.Sprintf("s%d", w), dl{src: fmt.Sprintf("10.%d.%d.%d", w, i>>8&255, i&255), dst: "10.255.0.1", sport: uint32(i % 7), dport: 443,
			first: t0, last: t0.Add(time.Duration(i%120) * time.Second), srcPk: 1, srcB: 100,
			name: fmt.Sprintf("h%d.example.com", i%97), app: []string{"tls", "http", ""}[i%3]}
	}, func(i int) {
		f := Filter{Protocol: -1, Port: -1, ServerName: "example.com", Application: "tls",
			Hosts: []func(netip.Addr) bool{func(a netip.Addr) bool { return a == host }}}
		page, total := s.Query(f, Order{ByBytes, true}, 0, 50)
		require.LessOrEqual(t, len(page), total)
		for _, fl := range page {
			require.Equal(t, "tls", fl.Application)
			require.True(t, strings.HasSuffix(fl.ServerName, ".example.com"), fl.ServerName)
		}
		s.HostWindow(host, t0, t0.Add(5*time.Minute), func(hf HostFlow) { require.NotZero(t, hf.Bytes) })
		s.HostSeries(host, t0, t0.Add(5*time.Minute))
		s.Expire(t0.Add(time.Duration(i) * time.Millisecond))
	})
	st := s.Stats()
	assert.LessOrEqual(t, st.ServerNames, 50)
	assert.NotZero(t, st.NamesRefused)
}
