package names

import (
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTable(t *testing.T, cfg Config) (*Table, *clock) {
	t.Helper()
	require.NoError(t, cfg.Check())
	c := &clock{t: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}
	return New(cfg, c.now), c
}

func obs(name, addr, canon string) *netwatchv1.DnsObservation {
	a := netip.MustParseAddr(addr)
	return &netwatchv1.DnsObservation{Name: name, Addr: a.AsSlice(), Canonical: canon, Ttl: 60}
}

var (
	a1 = netip.MustParseAddr("192.0.2.1")
	a2 = netip.MustParseAddr("2001:db8::2")
)

// consistent checks the shards' lists and indexes agree.
func consistent(t *testing.T, tb *Table) {
	t.Helper()
	for s := range tb.shards {
		sh := &tb.shards[s]
		n, prev := 0, int32(none)
		for i := sh.head; i != none; i = sh.ents[i].next {
			require.Equal(t, prev, sh.ents[i].prev, "shard %d", s)
			j, ok := sh.index[sh.ents[i].addr]
			require.True(t, ok)
			require.Equal(t, i, j)
			prev = i
			n++
			require.LessOrEqual(t, n, len(sh.ents))
		}
		require.Equal(t, prev, sh.tail)
		require.Equal(t, len(sh.index), n)
		require.Equal(t, len(sh.ents), n)
	}
}

func TestNamesLatestFirstWithTheCanonical(t *testing.T) {
	tb, _ := newTable(t, DefaultConfig())
	tb.Observe("s1", []*netwatchv1.DnsObservation{obs("www.example.com", "192.0.2.1", "www.example.com.cdn.example.net")})
	assert.Equal(t, []string{"www.example.com", "www.example.com.cdn.example.net"}, tb.Names(a1))
	assert.Equal(t, "www.example.com", tb.Latest(a1))

	tb.Observe("s1", []*netwatchv1.DnsObservation{obs("API.Example.ORG.", "192.0.2.1", "")})
	assert.Equal(t, []string{"api.example.org", "www.example.com", "www.example.com.cdn.example.net"}, tb.Names(a1))
	// Observed again: back to the front, not repeated.
	tb.Observe("s1", []*netwatchv1.DnsObservation{obs("www.example.com", "192.0.2.1", "www.example.com")})
	assert.Equal(t, []string{"www.example.com", "api.example.org", "www.example.com.cdn.example.net"}, tb.Names(a1))
	for i := range 6 {
		tb.Observe("s1", []*netwatchv1.DnsObservation{obs(fmt.Sprintf("n%d.example", i), "192.0.2.1", "")})
	}
	assert.Equal(t, []string{"n5.example", "n4.example", "n3.example", "n2.example"}, tb.Names(a1))

	assert.Empty(t, tb.Names(a2))
	assert.Empty(t, tb.Latest(a2))
	assert.Empty(t, tb.Latest(netip.Addr{}))
	// A v4-mapped IPv6 address is the IPv4 address, both ways.
	tb.Observe("s1", []*netwatchv1.DnsObservation{{Name: "mapped.example", Addr: netip.MustParseAddr("::ffff:192.0.2.7").AsSlice()}})
	assert.Equal(t, "mapped.example", tb.Latest(netip.MustParseAddr("192.0.2.7")))
	assert.Equal(t, "mapped.example", tb.Latest(netip.MustParseAddr("::ffff:192.0.2.7")))
	consistent(t, tb)
}

func TestNamesIgnoresUnusableObservations(t *testing.T) {
	tb, c := newTable(t, DefaultConfig())
	long := make([]byte, MaxNameLen+1)
	for i := range long {
		long[i] = 'a'
	}
	tb.Observe("s1", []*netwatchv1.DnsObservation{
		{Name: "x.example", Addr: []byte{1, 2, 3}}, // 3-byte address
		{Name: "", Addr: a1.AsSlice()},             // no name
		{Name: ".", Addr: a1.AsSlice()},            // root only
		{Name: "a b.example", Addr: a1.AsSlice()},  // space
		{Name: string(long), Addr: a1.AsSlice()},   // too long
		{Name: "old.example", Addr: a1.AsSlice(), Seen: timestamppb.New(c.now().Add(-61 * time.Minute))}, // past retention
		{Name: "ok.example", Addr: a2.AsSlice(), Canonical: "bad\x00canon"},                              // kept, without the bad canonical
	})
	st := tb.Stats()
	assert.Equal(t, Stats{Observations: 7, Ignored: 6, Entries: 1}, st)
	assert.Empty(t, tb.Names(a1))
	assert.Equal(t, []string{"ok.example"}, tb.Names(a2))
	var nilTable *Table
	nilTable.Observe("s1", []*netwatchv1.DnsObservation{obs("a.example", "192.0.2.1", "")})
	assert.Empty(t, nilTable.Names(a1))
	assert.False(t, nilTable.NameMatcher("example")(a1))
	assert.Equal(t, Stats{}, nilTable.Stats())
}

func TestNameMatcherIsExactOrLabelSuffix(t *testing.T) {
	tb, _ := newTable(t, DefaultConfig())
	tb.Observe("s1", []*netwatchv1.DnsObservation{
		obs("www.example.com", "192.0.2.1", "edge.cdn.example.net"),
		obs("badexample.com", "192.0.2.2", ""),
		obs("example.com", "192.0.2.3", ""),
		obs("other.org", "2001:db8::2", ""),
	})
	ip := netip.MustParseAddr
	cases := []struct {
		suffix string
		want   []string
	}{
		{"example.com", []string{"192.0.2.1", "192.0.2.3"}},
		{"EXAMPLE.com.", []string{"192.0.2.1", "192.0.2.3"}},
		{"www.example.com", []string{"192.0.2.1"}},
		{"cdn.example.net", []string{"192.0.2.1"}}, // by the canonical name
		{"com", []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"}},
		{"ample.com", nil},
		{"org", []string{"2001:db8::2"}},
		{"", nil},
	}
	all := []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "2001:db8::2", "192.0.2.9"}
	for _, tc := range cases {
		m := tb.NameMatcher(tc.suffix)
		var got []string
		for _, a := range all {
			if m(ip(a)) {
				got = append(got, a)
			}
		}
		assert.Equal(t, tc.want, got, "suffix %q", tc.suffix)
	}
	assert.False(t, tb.NameMatcher("example.com")(netip.Addr{}))
}

func TestNamesAgeOutAfterTheRetention(t *testing.T) {
	tb, c := newTable(t, Config{MaxEntries: 1000, Retention: time.Hour})
	tb.Observe("s1", []*netwatchv1.DnsObservation{obs("a.example", "192.0.2.1", ""), obs("b.example", "2001:db8::2", "")})
	c.add(30 * time.Minute)
	tb.Observe("s1", []*netwatchv1.DnsObservation{obs("b.example", "2001:db8::2", "")}) // refreshed
	// Captured 50 minutes ago (a replay): ages from then.
	tb.Observe("s1", []*netwatchv1.DnsObservation{{Name: "c.example", Addr: []byte{198, 51, 100, 1}, Seen: timestamppb.New(c.now().Add(-50 * time.Minute))}})
	// A capture time in the future counts as now.
	tb.Observe("s1", []*netwatchv1.DnsObservation{{Name: "d.example", Addr: []byte{198, 51, 100, 2}, Seen: timestamppb.New(c.now().Add(24 * time.Hour))}})
	c.add(11 * time.Minute)
	// a is 41 min old, c 61: c is gone for queries before anything is freed.
	assert.Equal(t, "a.example", tb.Latest(a1))
	assert.Empty(t, tb.Latest(netip.MustParseAddr("198.51.100.1")))
	assert.False(t, tb.NameMatcher("c.example")(netip.MustParseAddr("198.51.100.1")))
	c.add(20 * time.Minute) // a: 61 min
	assert.Empty(t, tb.Latest(a1))
	assert.False(t, tb.NameMatcher("example")(a1))
	assert.Equal(t, "b.example", tb.Latest(a2))
	assert.Equal(t, "d.example", tb.Latest(netip.MustParseAddr("198.51.100.2")))
	tb.Expire(c.now())
	st := tb.Stats()
	assert.Equal(t, uint64(2), st.Entries, "b and d remain")
	assert.Equal(t, uint64(2), st.Expired)
	consistent(t, tb)
	c.add(time.Hour)
	tb.Observe("s2", nil)
	tb.Expire(c.now())
	assert.Equal(t, uint64(0), tb.Stats().Entries)
	consistent(t, tb)
}

// sameShard returns n addresses of one shard of tb.
func sameShard(tb *Table, n int) []netip.Addr {
	want := tb.shard(netip.AddrFrom4([4]byte{10, 0, 0, 0}))
	var out []netip.Addr
	for i := 0; len(out) < n; i++ {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if tb.shard(a) == want {
			out = append(out, a)
		}
	}
	return out
}

func TestNamesEvictTheLeastRecentlyObservedWhenFull(t *testing.T) {
	tb, _ := newTable(t, Config{MaxEntries: 2 * nshards, Retention: time.Hour})
	as := sameShard(tb, 3)
	o := func(a netip.Addr, name string) {
		tb.Observe("s1", []*netwatchv1.DnsObservation{{Name: name, Addr: a.AsSlice()}})
	}
	o(as[0], "zero.example")
	o(as[1], "one.example")
	o(as[0], "zero.example") // observed again: now the most recent
	o(as[2], "two.example")  // the shard holds 2: one goes
	assert.Equal(t, "zero.example", tb.Latest(as[0]))
	assert.Empty(t, tb.Latest(as[1]))
	assert.Equal(t, "two.example", tb.Latest(as[2]))
	assert.Equal(t, uint64(1), tb.Stats().Evicted)
	consistent(t, tb)

	// The whole table never holds more than its cap.
	for i := range 1000 {
		o(netip.AddrFrom4([4]byte{172, 16, byte(i >> 8), byte(i)}), "many.example")
	}
	st := tb.Stats()
	assert.LessOrEqual(t, st.Entries, uint64(2*nshards))
	assert.Equal(t, uint64(1003), st.Entries+st.Evicted+st.Expired)
	consistent(t, tb)
}

func TestNamesConcurrentObserveAndRead(t *testing.T) {
	tb, c := newTable(t, Config{MaxEntries: 512, Retention: time.Minute})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				tb.Observe("s", []*netwatchv1.DnsObservation{{Name: fmt.Sprintf("h%d.example", i%50), Addr: []byte{10, byte(w), byte(i >> 8), byte(i)}}})
				if i%500 == 0 {
					c.add(20 * time.Second)
				}
			}
		}()
	}
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := tb.NameMatcher("example")
			for i := range 4000 {
				a := netip.AddrFrom4([4]byte{10, byte(i % 2), byte(i >> 8), byte(i)})
				m(a)
				tb.Names(a)
				tb.Latest(a)
			}
		}()
	}
	wg.Wait()
	consistent(t, tb)
	assert.LessOrEqual(t, tb.Stats().Entries, uint64(512))
}

// TestBytesPerEntry: the heap a full table holds per address (a question and a
// canonical name of 30 bytes each, as batches decode them) stays within
// BytesPerEntry, the figure the --dns-names-max documentation gives.
func TestBytesPerEntry(t *testing.T) {
	const n = 1 << 17
	batch := make([]*netwatchv1.DnsObservation, 0, 1024)
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	tb, _ := newTable(t, Config{MaxEntries: n, Retention: time.Hour})
	for i := range n {
		batch = append(batch, &netwatchv1.DnsObservation{
			Name: fmt.Sprintf("host%011d.example.com", i), Canonical: fmt.Sprintf("edge%011d.cdn.example", i),
			Addr: []byte{10, byte(i >> 16), byte(i >> 8), byte(i)},
		})
		if len(batch) == cap(batch) {
			tb.Observe("s1", batch)
			batch = batch[:0]
		}
	}
	tb.Observe("s1", batch)
	batch = nil
	after := heap()
	require.Equal(t, uint64(n), tb.Stats().Entries+tb.Stats().Evicted)
	per := float64(after-before) / float64(tb.Stats().Entries)
	t.Logf("%.0f bytes per entry (%d entries)", per, tb.Stats().Entries)
	assert.LessOrEqual(t, per, float64(BytesPerEntry))
	runtime.KeepAlive(tb)
}

// An address observed with a capture time older than all its shard holds (a
// replay, a late batch) ages out in time although others were observed before it.
func TestAnOldObservationAgesOutFirst(t *testing.T) {
	tb, c := newTable(t, Config{MaxEntries: 1000, Retention: time.Hour})
	as := sameShard(tb, 3)
	tb.Observe("s1", []*netwatchv1.DnsObservation{obs("x.example", as[0].String(), ""), obs("y.example", as[1].String(), "")})
	tb.Observe("s1", []*netwatchv1.DnsObservation{{Name: "old.example", Addr: as[2].AsSlice(), Seen: timestamppb.New(c.now().Add(-50 * time.Minute))}})
	c.add(11 * time.Minute)
	tb.Expire(c.now())
	st := tb.Stats()
	assert.Equal(t, uint64(1), st.Expired, "old.example is freed")
	assert.Equal(t, uint64(2), st.Entries)
	assert.Equal(t, "x.example", tb.Latest(as[0]))
	consistent(t, tb)
}
