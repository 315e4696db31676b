package query

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"netwatch.dev/collector/internal/enrich"
	"netwatch.dev/collector/internal/store"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

const (
	defaultTopLimit    = 10
	defaultTopDuration = 5 * time.Minute
	// MaxTopTalkers is the largest limit of a top-talkers answer.
	MaxTopTalkers = 50
	// MinWindow and MaxWindow bound the duration of top-talkers and protocols.
	MinWindow = time.Minute
	MaxWindow = store.MaxWindow
	// TopFlowsPerHost is how many of a talker's largest flows (by bytes inside the
	// window) come with it for drill-down.
	TopFlowsPerHost = 5
)

// ListTopTalkers is GET /api/v1/top-talkers: hosts ranked by the bytes they sent and
// received inside the window ending now (packet time, from the store's buckets, not
// the flows' lifetime totals).
//
// A flow counts for both of its hosts, so percentage_of_total is a host's share of
// all the bytes transferred in the window: the percentages of two hosts talking only
// to each other are both 100. Each talker carries up to TopFlowsPerHost of its flows,
// largest in the window first, as the stored records (their bytes are lifetime totals).
// A host's display_name is the latest name a captured DNS response gave for it, else
// its address.
//
// by=asn and by=country rank the autonomous systems ("AS13335", display_name the
// AS organization, else the identifier) or the countries ("US", display_name the
// same code) of the hosts instead, from the GeoIP databases: a flow counts once for
// each distinct AS or country of its two ends, and hosts without one (private
// addresses, no database) count for "unknown".
func (s *Service) ListTopTalkers(_ context.Context, req *netwatchv1.ListTopTalkersRequest) (*netwatchv1.ListTopTalkersResponse, error) {
	limit := defaultTopLimit
	if v := req.GetLimit(); v != "" {
		var err error
		if limit, err = parseInt("limit", v, 1, MaxTopTalkers); err != nil {
			return nil, err
		}
	}
	window, err := parseWindow("duration", req.GetDuration(), defaultTopDuration, MinWindow, MaxWindow)
	if err != nil {
		return nil, err
	}
	var side Side
	switch v := req.GetBy(); v {
	case "", "any":
	case "src":
		side = SideSrc
	case "dst":
		side = SideDst
	case "asn":
		side = ByASN
	case "country":
		side = ByCountry
	default:
		return nil, paramError("by", "%q is not one of src, dst, any, asn, country", v)
	}
	return s.TopTalkers(limit, window, side), nil
}

// TopTalkers is the answer of ListTopTalkers for parameters already checked: limit
// in [1, 50], window in [1m, 60m] (see ListTopTalkers). Answers are shared through
// the cache (CacheTopTalkers) with the REST and gRPC callers asking the same.
func (s *Service) TopTalkers(limit int, window time.Duration, side Side) *netwatchv1.ListTopTalkersResponse {
	now := s.now()
	if s.topCache != nil {
		return s.topCache.get(topKey{limit, window, side}, now, func() *netwatchv1.ListTopTalkersResponse {
			return s.topTalkers(now, limit, window, side)
		})
	}
	return s.topTalkers(now, limit, window, side)
}

func (s *Service) topTalkers(now time.Time, limit int, window time.Duration, side Side) *netwatchv1.ListTopTalkersResponse {
	var talkers []Talker
	enricher := s.Enricher()
	if side == ByASN || side == ByCountry {
		talkers = rankGroups(s.store, enricher, now.Add(-window), now, limit, side)
	} else {
		talkers = rankTalkers(s.store, now.Add(-window), now, limit, side)
		for i := range talkers {
			t := &talkers[i]
			t.Identifier = t.Host.String()
			t.DisplayName = t.Identifier
			if enricher != nil {
				if n := enricher.Lookup(t.Host).Name; n != "" {
					t.DisplayName = n
				}
			}
		}
	}
	resp := &netwatchv1.ListTopTalkersResponse{
		TopTalkers:  make([]*netwatchv1.TopTalker, 0, len(talkers)),
		TimeWindow:  formatDuration(window),
		GeneratedAt: timestamppb.New(now),
	}
	for i := range talkers {
		t := &talkers[i]
		tt := &netwatchv1.TopTalker{
			Identifier: t.Identifier, DisplayName: t.DisplayName,
			TotalBytes: t.Bytes, TotalPackets: t.Packets, FlowCount: t.Flows,
			Rank: uint32(i + 1), PercentageOfTotal: t.Percentage,
			Flows: make([]*netwatchv1.NetworkFlow, 0, len(t.Top)),
		}
		for j := range t.Top {
			tt.Flows = append(tt.Flows, s.NetworkFlow(&t.Top[j]))
		}
		resp.TopTalkers = append(resp.TopTalkers, tt)
	}
	return resp
}

// CacheTopTalkers keeps each top-talkers answer (per limit, window and side) for ttl.
// A ranking scans the whole store — tens to hundreds of milliseconds at a million
// flows — while dashboards and tools ask for the same few windows every second and
// the data moves at the sensors' export interval anyway. Concurrent requests for the
// same answer wait for one computation instead of each scanning the store. Zero
// (the default of New) computes every answer.
func (s *Service) CacheTopTalkers(ttl time.Duration) {
	if ttl > 0 {
		s.topCache = &topCache{ttl: ttl, entries: map[topKey]*topEntry{}}
	}
}

// maxTopCacheEntries bounds the cache whatever windows clients ask for.
const maxTopCacheEntries = 64

type topKey struct {
	limit  int
	window time.Duration
	side   Side
}

type topCache struct {
	ttl     time.Duration
	mu      sync.Mutex
	entries map[topKey]*topEntry
}

type topEntry struct {
	mu   sync.Mutex
	at   time.Time
	resp *netwatchv1.ListTopTalkersResponse
}

// get returns a copy of the cached answer for k if it was computed less than ttl
// before now, else computes it (once, however many callers wait).
func (c *topCache) get(k topKey, now time.Time, compute func() *netwatchv1.ListTopTalkersResponse) *netwatchv1.ListTopTalkersResponse {
	c.mu.Lock()
	e := c.entries[k]
	if e == nil {
		if len(c.entries) >= maxTopCacheEntries { // odd windows ("137s"): start over
			clear(c.entries)
		}
		e = &topEntry{}
		c.entries[k] = e
	}
	c.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if age := now.Sub(e.at); e.resp == nil || age < 0 || age >= c.ttl {
		e.resp, e.at = compute(), now
	}
	return proto.CloneOf(e.resp)
}

// Talker is one host's (or AS's, or country's) traffic inside a window.
type Talker struct {
	Host netip.Addr // a host's address (zero for an AS or a country)
	// Identifier is the address, "AS<number>", the country code or "unknown";
	// DisplayName the host's DNS name, the AS organization, or the identifier.
	Identifier, DisplayName string
	Bytes, Packets          uint64
	// sent and received inside the window
	Flows      uint32 // flows with traffic inside the window
	Percentage float64
	Top        []store.Flow // largest flows inside the window first
}

// hostSum accumulates one host. Its largest flows live apart in a hostTop, touched
// only when a flow enters them, so the hot loop walks small records.
type hostSum struct {
	bytes, packets uint64
	floor          uint64 // bytes of the smallest of a full top
	flows          uint32
	ntop           uint32
}

type hostTop [TopFlowsPerHost]sized

type sized struct {
	bytes uint64
	ref   store.FlowRef
}

func (h *hostSum) add(w *store.WindowFlow, top *hostTop) {
	h.bytes += w.Bytes
	h.packets += w.Packets
	h.flows++
	if h.ntop == TopFlowsPerHost && w.Bytes <= h.floor {
		return
	}
	i := int(h.ntop)
	for i > 0 && top[i-1].bytes < w.Bytes {
		i--
	}
	if i == len(top) {
		return
	}
	copy(top[i+1:], top[i:])
	top[i] = sized{w.Bytes, w.Ref}
	h.ntop = min(h.ntop+1, TopFlowsPerHost)
	h.floor = top[h.ntop-1].bytes
}

// Side is which end of a flow a host is counted for, or what hosts are grouped by.
type Side uint8

// Sides.
const (
	SideAny   Side = iota // both ends
	SideSrc               // the initiator only
	SideDst               // the responder only
	ByASN                 // the autonomous systems of both ends
	ByCountry             // the countries of both ends
)

// rankTalkers ranks the hosts of the flows that transferred something inside
// [from, to] by bytes (ties: packets, then address) and returns the first limit. A
// flow counts for its initiator, its responder or both, as side says; the
// percentages are shares of all the bytes in the window either way.
//
// Hosts are the store's interned ids, so a flow costs two array updates, not two
// hash lookups of its addresses; the ids stay pinned until the talkers are resolved.
func rankTalkers(st *store.Store, from, to time.Time, limit int, side Side) []Talker {
	unpin := st.PinHosts()
	defer unpin()
	var (
		at    = make([]int32, st.HostIDs()) // host id -> 1 + its index in sums
		ids   []store.HostID
		sums  []hostSum
		tops  []hostTop
		total uint64
	)
	add := func(id store.HostID, w *store.WindowFlow) {
		if int(id) >= len(at) { // a host interned during the window
			at = append(at, make([]int32, int(id)+1-len(at))...)
		}
		i := at[id] - 1
		if i < 0 {
			i = int32(len(sums))
			at[id] = i + 1
			ids = append(ids, id)
			sums = append(sums, hostSum{})
			tops = append(tops, hostTop{})
		}
		sums[i].add(w, &tops[i])
	}
	st.Window(from, to, func(w store.WindowFlow) {
		total += w.Bytes
		if side != SideDst {
			add(w.SrcHost, &w)
		}
		if side == SideDst || (side == SideAny && w.DstHost != w.SrcHost) {
			add(w.DstHost, &w)
		}
	})
	order := make([]int32, len(sums))
	for i := range order {
		order[i] = int32(i)
	}
	addrs := map[int32]netip.Addr{} // resolved on ties only
	addr := func(i int32) netip.Addr {
		a, ok := addrs[i]
		if !ok {
			a = st.HostAddr(ids[i])
			addrs[i] = a
		}
		return a
	}
	slices.SortFunc(order, func(i, j int32) int {
		a, b := &sums[i], &sums[j]
		switch {
		case a.bytes != b.bytes:
			return cmpDesc(a.bytes, b.bytes)
		case a.packets != b.packets:
			return cmpDesc(a.packets, b.packets)
		}
		return addr(i).Compare(addr(j))
	})
	order = order[:min(limit, len(order))]
	out := make([]Talker, 0, len(order))
	for _, i := range order {
		h := &sums[i]
		t := Talker{Host: addr(i), Bytes: h.bytes, Packets: h.packets, Flows: h.flows}
		if total > 0 {
			t.Percentage = float64(h.bytes) * 100 / float64(total)
		}
		for _, f := range tops[i][:h.ntop] {
			if fl, ok := st.Get(f.ref); ok {
				t.Top = append(t.Top, fl)
			}
		}
		out = append(out, t)
	}
	return out
}

// unknownGroup is the AS or country of the hosts that have none.
const unknownGroup = "unknown"

// rankGroups ranks the autonomous systems (by ByASN) or countries (ByCountry) of
// the hosts of the flows that transferred something inside [from, to], as
// rankTalkers ranks hosts (ties: identifier order). A flow counts once for each
// distinct group of its two ends; percentages are shares of all the bytes in the
// window. Each host id is looked up once (e may be nil: every host is unknown),
// while the store's shard is read: a lookup is a walk of the GeoIP search tree and
// a cache read.
func rankGroups(st *store.Store, e enrich.Enricher, from, to time.Time, limit int, by Side) []Talker {
	unpin := st.PinHosts()
	defer unpin()
	var (
		groupOf = make([]int32, st.HostIDs()) // host id -> 1 + its group's index
		index   = map[string]int32{}
		keys    []string
		names   []string
		sums    []hostSum
		tops    []hostTop
		total   uint64
	)
	group := func(id store.HostID) int32 {
		if int(id) >= len(groupOf) {
			groupOf = append(groupOf, make([]int32, int(id)+1-len(groupOf))...)
		}
		if g := groupOf[id]; g > 0 {
			return g - 1
		}
		key, name := unknownGroup, unknownGroup
		if e != nil {
			h := e.Lookup(st.HostAddr(id))
			switch {
			case by == ByASN && h.ASN != 0:
				key = "AS" + strconv.FormatUint(uint64(h.ASN), 10)
				name = cmp.Or(h.ASName, key)
			case by == ByCountry && h.Country != "":
				key, name = h.Country, h.Country
			}
		}
		g, ok := index[key]
		if !ok {
			g = int32(len(keys))
			index[key] = g
			keys, names = append(keys, key), append(names, name)
			sums, tops = append(sums, hostSum{}), append(tops, hostTop{})
		}
		groupOf[id] = g + 1
		return g
	}
	st.Window(from, to, func(w store.WindowFlow) {
		total += w.Bytes
		gs, gd := group(w.SrcHost), group(w.DstHost)
		sums[gs].add(&w, &tops[gs])
		if gd != gs {
			sums[gd].add(&w, &tops[gd])
		}
	})
	order := make([]int32, len(sums))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(i, j int32) int {
		a, b := &sums[i], &sums[j]
		switch {
		case a.bytes != b.bytes:
			return cmpDesc(a.bytes, b.bytes)
		case a.packets != b.packets:
			return cmpDesc(a.packets, b.packets)
		}
		return strings.Compare(keys[i], keys[j])
	})
	order = order[:min(limit, len(order))]
	out := make([]Talker, 0, len(order))
	for _, i := range order {
		h := &sums[i]
		t := Talker{Identifier: keys[i], DisplayName: names[i], Bytes: h.bytes, Packets: h.packets, Flows: h.flows}
		if total > 0 {
			t.Percentage = float64(h.bytes) * 100 / float64(total)
		}
		for _, f := range tops[i][:h.ntop] {
			if fl, ok := st.Get(f.ref); ok {
				t.Top = append(t.Top, fl)
			}
		}
		out = append(out, t)
	}
	return out
}

func cmpDesc(a, b uint64) int {
	if a > b {
		return -1
	}
	return 1
}

// parseWindow reads a duration parameter ("5m", "90s", "1h"); empty is def.
func parseWindow(param, v string, def, lo, hi time.Duration) (time.Duration, error) {
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, paramError(param, "%q is not a duration such as 5m", v)
	}
	if d < lo || d > hi {
		return 0, paramError(param, "%s is outside [%s, %s]", v, formatDuration(lo), formatDuration(hi))
	}
	return d, nil
}

// formatDuration spells a duration the way the API's parameters do: 1h, 15m, 5s.
func formatDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return d.String()
}
