package ingest

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"netwatch.dev/collector/internal/store"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// testCID is a well-formed Community ID v1 (the spec's example for TCP
// 128.232.110.120:34855 -> 66.35.250.204:80, seed 0).
const testCID = "1:LQU9qZlK+B5F3KDmev6m5PMibrg="

func obs(name, canonical string, addr []byte, seen time.Time) *netwatchv1.DnsObservation {
	o := &netwatchv1.DnsObservation{Name: name, Canonical: canonical, Addr: addr, Ttl: 300}
	if !seen.IsZero() {
		o.Seen = timestamppb.New(seen)
	}
	return o
}

func TestValidDNSDropsEachBadObservation(t *testing.T) {
	v4, v6 := []byte{192, 0, 2, 1}, netip.MustParseAddr("2001:db8::1").AsSlice()
	at := validateNow.Add(-time.Minute)
	good := []*netwatchv1.DnsObservation{
		obs("example.com", "", v4, at),
		obs("www.example.com", "edge-1.cdn_x.example.net", v6, at),
		obs(strings.Repeat(strings.Repeat("a", 63)+".", 3)+strings.Repeat("b", 61), "", v4, at), // 253 bytes
		obs("localhost", "", v4, validateNow.Add(24*time.Hour)),
		obs("old.example", "", v4, time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC)),
	}
	require.Len(t, good[2].Name, 253)
	for _, tc := range []struct {
		name string
		o    *netwatchv1.DnsObservation
	}{
		{"empty name", obs("", "", v4, at)},
		{"upper case", obs("Example.com", "", v4, at)},
		{"final dot", obs("example.com.", "", v4, at)},
		{"empty label", obs("a..example.com", "", v4, at)},
		{"leading dot", obs(".example.com", "", v4, at)},
		{"label of 64 bytes", obs(strings.Repeat("a", 64)+".com", "", v4, at)},
		{"name of 254 bytes", obs(strings.Repeat(strings.Repeat("a", 63)+".", 3)+strings.Repeat("b", 62), "", v4, at)},
		{"a space", obs("exa mple.com", "", v4, at)},
		{"a colon", obs("example.com:443", "", v4, at)},
		{"bad canonical", obs("example.com", "Edge.example.net", v4, at)},
		{"3-byte address", obs("example.com", "", []byte{1, 2, 3}, at)},
		{"no address", obs("example.com", "", nil, at)},
		{"no seen", obs("example.com", "", v4, time.Time{})},
		{"seen before 1990", obs("example.com", "", v4, time.Date(1989, 1, 1, 0, 0, 0, 0, time.UTC))},
		{"seen a day ahead", obs("example.com", "", v4, validateNow.Add(25*time.Hour))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Insert(slices.Clone(good), 2, tc.o)
			valid, invalid := ValidDNS(in, validateNow)
			assert.Equal(t, 1, invalid)
			assert.Equal(t, good, valid)
			assert.Len(t, in, len(good)+1, "the batch's list is not changed")
			assert.Same(t, tc.o, in[2])
		})
	}
	valid, invalid := ValidDNS(good, validateNow)
	assert.Zero(t, invalid)
	assert.Equal(t, good, valid)
}

// dnsSink records what Config.DNS is given.
type dnsSink struct {
	mu  sync.Mutex
	got map[string][]string // sensor -> "name addr"
}

func (d *dnsSink) hook(sensorID string, obs []*netwatchv1.DnsObservation) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.got == nil {
		d.got = map[string][]string{}
	}
	for _, o := range obs {
		a, _ := netip.AddrFromSlice(o.GetAddr())
		d.got[sensorID] = append(d.got[sensorID], o.GetName()+" "+a.String())
	}
}

func (d *dnsSink) seen() map[string][]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string][]string{}
	for k, v := range d.got {
		out[k] = slices.Clone(v)
	}
	return out
}

func labels(f store.Flow) string { return f.CommunityID + " " + f.ServerName + " " + f.Application }

func TestDNSObservationsAndFlowLabelsSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	var live dnsSink
	c := startCollector(t, dir, func(cfg *Config) { cfg.DNS = live.hook })
	s, _, err := dial(t, c.addr, "s1", "boot-a")
	require.NoError(t, err)
	now := time.Now()
	b := batch(1, 3)
	b.Deltas[0].CommunityId, b.Deltas[0].ServerName, b.Deltas[0].Application = testCID, "www.example.com", "tls"
	b.Deltas[1].Application = "dns"
	b.Dns = []*netwatchv1.DnsObservation{
		obs("www.example.com", "", []byte{192, 0, 2, 1}, now),
		obs("BAD.example.com", "", []byte{192, 0, 2, 2}, now), // dropped
		obs("www.example.com", "", []byte{192, 0, 2, 3}, now),
		obs("no-seen.example.com", "", []byte{192, 0, 2, 4}, time.Time{}), // dropped
	}
	s.send(b)
	require.Equal(t, uint64(1), s.ack())
	s.send(batch(2, 1)) // no observations: the hook is not called with none
	require.Equal(t, uint64(2), s.ack())

	want := map[string][]string{"s1": {"www.example.com 192.0.2.1", "www.example.com 192.0.2.3"}}
	assert.Equal(t, want, live.seen())
	assert.Equal(t, uint64(2), c.svc.DNSObservationsInvalid())
	assert.Equal(t, uint64(2), c.svc.SensorDNSObservationsInvalid("s1"))
	assert.Zero(t, c.svc.SensorDNSObservationsInvalid("s2"))
	var before []string
	c.store.Scan(func(*store.Flow) bool { return true }, func(f store.Flow) { before = append(before, labels(f)) })
	slices.Sort(before)
	assert.Equal(t, []string{"  ", "  dns", testCID + " www.example.com tls"}, before)

	// A restart replays the log: the hook is given the observations again, and the
	// flows have their labels.
	c.crash()
	var replayed dnsSink
	c2 := startCollector(t, dir, func(cfg *Config) { cfg.DNS = replayed.hook })
	assert.Equal(t, want, replayed.seen())
	assert.Equal(t, uint64(2), c2.svc.DNSObservationsInvalid(), "counted again by the replay")
	var after []string
	c2.store.Scan(func(*store.Flow) bool { return true }, func(f store.Flow) { after = append(after, labels(f)) })
	slices.Sort(after)
	assert.Equal(t, before, after)
}

func TestSnapshotsKeepFlowLabels(t *testing.T) {
	dir := t.TempDir()
	small := func(cfg *Config) { cfg.SegmentBytes = 4 << 10 }
	c := startCollector(t, dir, small)
	s, _, err := dial(t, c.addr, "s1", "boot-a")
	require.NoError(t, err)
	for seq := uint64(1); seq <= 100; seq++ {
		b := batch(seq, 4)
		for i, d := range b.Deltas {
			if i != 3 {
				d.CommunityId, d.ServerName, d.Application = testCID, fmt.Sprintf("n%d.example", seq%7), "tls"
			}
		}
		s.send(b)
		require.Equal(t, seq, s.ack())
	}
	require.Eventually(t, func() bool {
		snaps, _ := listIndexes(dir, "snap-", ".snap")
		return len(snaps) == 1
	}, 5*time.Second, 10*time.Millisecond)
	flows := func(c *collector) map[string]string {
		m := map[string]string{}
		c.store.Scan(func(*store.Flow) bool { return true }, func(f store.Flow) { m[f.ID()] = labels(f) })
		return m
	}
	m1 := flows(c)
	require.Len(t, m1, 400)
	c.crash()
	c2 := startCollector(t, dir, small)
	assert.Equal(t, m1, flows(c2))
}

func TestFlowBucketsRecordCarriesLabels(t *testing.T) {
	f := store.Flow{Key: store.Key{SensorID: "s1", Protocol: 6, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"),
		SrcPort: 1, DstPort: 2, FirstSeen: validateNow.UnixNano()}, LastSeen: validateNow.UnixNano(),
		CommunityID: testCID, ServerName: "www.example.com", Application: "tls"}
	d, _, err := parseFlowBuckets(flowBucketsBody(nil, &f, nil))
	require.NoError(t, err)
	assert.Equal(t, [3]string{testCID, "www.example.com", "tls"}, [3]string{d.GetCommunityId(), d.GetServerName(), d.GetApplication()})
	// A snapshot from before the labels (no fields 13-15) still loads: none.
	f.CommunityID, f.ServerName, f.Application = "", "", ""
	body := flowBucketsBody(nil, &f, nil)
	d, _, err = parseFlowBuckets(body)
	require.NoError(t, err)
	assert.True(t, proto.Equal(flowDelta(&f), d))
	assert.Empty(t, d.GetCommunityId()+d.GetServerName()+d.GetApplication())
}
