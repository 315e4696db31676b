// Package names keeps the names captured DNS responses gave for addresses: for
// each address the latest few names (the question asked, then the end of its
// CNAME chain when there was one), in a table bounded in entries and in age.
//
// The table is split in shards by address, each with its own lock and its own
// share of the entry cap, ordered by observation (least recently observed
// last): a full shard evicts its least recently observed address, and an
// address last observed longer ago than the retention is aged out (queries
// never see it, the next observation or Expire frees it). Reads take a shard's
// read lock only and never reorder the table, so queries do not contend with
// each other and hold an observation back for one map lookup at most.
package names

import (
	"hash/maphash"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"netwatch.dev/common/flagconfig"
	"netwatch.dev/proto/flowmeta"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

const (
	// MaxNamesPerAddr is how many names an address keeps, latest first.
	MaxNamesPerAddr = 4
	// MaxNameLen is the longest name kept (a DNS name without its final dot).
	MaxNameLen = 253
	// DefaultMaxEntries is the default cap of addresses (see Config.MaxEntries).
	DefaultMaxEntries = 1_000_000
	// DefaultRetention is how long an address is kept after its last observation.
	DefaultRetention = 60 * time.Minute
	// BytesPerEntry bounds the heap of one address with a question name and a
	// canonical name of about 30 bytes each: 104 bytes of entry, some 40 of index,
	// 64 of names, and the slack of the growing slices and maps (measured 225 to
	// 255; TestBytesPerEntry keeps it honest). The default cap of a million
	// addresses is so at most about 280 MB, a sixth of what the store's default
	// 10 million flows take; a network's DNS answers of an hour seldom name more.
	BytesPerEntry = 280

	shardBits = 4
	nshards   = 1 << shardBits
)

// Config of a Table.
type Config struct {
	// MaxEntries caps the addresses held (each about BytesPerEntry bytes): at the
	// cap, a new address evicts the least recently observed one of its shard (a
	// sixteenth of the table, chosen by address), which is counted. At least 16.
	MaxEntries int
	// Retention: an address last observed longer ago than this is not answered and
	// is freed. The collector gives the store's retention.
	Retention time.Duration
}

// DefaultConfig is the documented default.
func DefaultConfig() Config {
	return Config{MaxEntries: DefaultMaxEntries, Retention: DefaultRetention}
}

// Check explains what is wrong with c, naming the field (a *flagconfig.FieldError).
func (c Config) Check() error {
	switch {
	case c.MaxEntries < nshards:
		return flagconfig.Fieldf("MaxEntries", "%d is below the minimum of %d", c.MaxEntries, nshards)
	case c.Retention <= 0:
		return flagconfig.Fieldf("Retention", "%v must be positive", c.Retention)
	}
	return nil
}

// Stats are the table's counters.
type Stats struct {
	// Observations are the DNS observations received (valid or not).
	Observations uint64
	// Ignored are the observations not kept: no usable address or name, or seen
	// longer ago than the retention.
	Ignored uint64
	// Entries are the addresses held now.
	Entries uint64
	// Evicted are the addresses dropped because the table was full.
	Evicted uint64
	// Expired are the addresses dropped past the retention.
	Expired uint64
}

// Table is the name table. Its methods are safe for concurrent use; a nil *Table
// knows no names.
type Table struct {
	retention int64 // nanoseconds
	now       func() time.Time
	seed      maphash.Seed
	shards    [nshards]shard

	observations, ignored, evicted, expired atomic.Uint64
}

const none = -1

type entry struct {
	addr  netip.Addr
	names [MaxNamesPerAddr]string
	last  int64 // unix nanos of the latest observation
	// prev is towards the most recently observed (head), next towards the tail.
	prev, next int32
}

type shard struct {
	mu         sync.RWMutex
	index      map[netip.Addr]int32
	ents       []entry
	head, tail int32
	max        int
}

// New returns an empty table; now is the clock (time.Now outside tests).
func New(cfg Config, now func() time.Time) *Table {
	per := max(cfg.MaxEntries/nshards, 1)
	t := &Table{retention: int64(cfg.Retention), now: now, seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i] = shard{index: map[netip.Addr]int32{}, head: none, tail: none, max: per}
	}
	return t
}

func (t *Table) shard(a netip.Addr) *shard {
	return &t.shards[maphash.Comparable(t.seed, a.As16())&(nshards-1)]
}

// Observe records what a batch of a sensor's DNS observations say. Observations
// without a usable address (4 or 16 bytes) or name, or seen longer ago than the
// retention, are counted and ignored. An observation's time is its capture time,
// unless that is in the future or missing (then now): so a replayed old
// observation ages as it would have, and a sensor's clock ahead of ours changes
// nothing.
func (t *Table) Observe(sensorID string, obs []*netwatchv1.DnsObservation) {
	if t == nil || len(obs) == 0 {
		return
	}
	now := t.now().UnixNano()
	cutoff := now - t.retention
	t.observations.Add(uint64(len(obs)))
	var ignored uint64
	for _, o := range obs {
		a, ok := addrOf(o.GetAddr())
		name := normalize(o.GetName())
		if !ok || name == "" {
			ignored++
			continue
		}
		at := now
		if s := o.GetSeen(); s != nil && s.IsValid() {
			if ns := s.AsTime().UnixNano(); ns < now {
				at = ns
			}
		}
		if at < cutoff {
			ignored++
			continue
		}
		canon := normalize(o.GetCanonical())
		if canon == name {
			canon = ""
		}
		sh := t.shard(a)
		sh.mu.Lock()
		if sh.observe(a, name, canon, at) {
			t.evicted.Add(1)
		}
		sh.mu.Unlock()
	}
	if ignored > 0 {
		t.ignored.Add(ignored)
	}
	t.Expire(time.Unix(0, now))
}

func addrOf(b []byte) (netip.Addr, bool) {
	switch len(b) {
	case 4:
		return netip.AddrFrom4([4]byte(b)), true
	case 16:
		return netip.AddrFrom16([16]byte(b)).Unmap(), true
	}
	return netip.Addr{}, false
}

// normalize is s lower-cased without a final dot, or "" if it is empty, too long
// or holds bytes no DNS name printed as text has (controls, spaces).
func normalize(s string) string {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > MaxNameLen {
		return ""
	}
	upper := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c <= ' ' || c == 0x7f:
			return ""
		case 'A' <= c && c <= 'Z':
			upper = true
		}
	}
	if upper {
		s = strings.ToLower(s)
	}
	return s
}

// observe puts name (then canon, if any) first in a's names and a at the head;
// it reports whether an address was evicted for it. Locked.
func (sh *shard) observe(a netip.Addr, name, canon string, at int64) (evicted bool) {
	i, ok := sh.index[a]
	if !ok {
		if len(sh.index) >= sh.max {
			i = sh.tail
			sh.unlink(i)
			delete(sh.index, sh.ents[i].addr)
			evicted = true
		} else {
			i = int32(len(sh.ents))
			sh.ents = append(sh.ents, entry{})
		}
		sh.ents[i] = entry{addr: a, prev: none, next: none}
		sh.index[a] = i
	} else {
		sh.unlink(i)
	}
	e := &sh.ents[i]
	e.names = merge(e.names, name, canon)
	e.last = max(e.last, at)
	if sh.tail != none && e.last < sh.ents[sh.tail].last {
		// Captured before everything held (a replay, a late batch): it is the
		// first to age out, and the first to go when the shard is full.
		sh.pushBack(i)
	} else {
		sh.pushFront(i)
	}
	return evicted
}

// merge is name, canon (if not empty) and then the names of old that are neither,
// up to MaxNamesPerAddr. Strings already held are kept (not the batch's copies).
func merge(old [MaxNamesPerAddr]string, name, canon string) [MaxNamesPerAddr]string {
	var out [MaxNamesPerAddr]string
	n := 0
	put := func(s string) {
		for _, o := range old {
			if o == s {
				s = o
				break
			}
		}
		out[n] = s
		n++
	}
	put(name)
	if canon != "" {
		put(canon)
	}
	for _, o := range old {
		if n == len(out) {
			break
		}
		if o != "" && o != name && o != canon {
			out[n] = o
			n++
		}
	}
	return out
}

func (sh *shard) unlink(i int32) {
	e := &sh.ents[i]
	if e.prev != none {
		sh.ents[e.prev].next = e.next
	} else {
		sh.head = e.next
	}
	if e.next != none {
		sh.ents[e.next].prev = e.prev
	} else {
		sh.tail = e.prev
	}
	e.prev, e.next = none, none
}

func (sh *shard) pushFront(i int32) {
	e := &sh.ents[i]
	e.prev, e.next = none, sh.head
	if sh.head != none {
		sh.ents[sh.head].prev = i
	}
	sh.head = i
	if sh.tail == none {
		sh.tail = i
	}
}

func (sh *shard) pushBack(i int32) {
	e := &sh.ents[i]
	e.prev, e.next = sh.tail, none
	if sh.tail != none {
		sh.ents[sh.tail].next = i
	}
	sh.tail = i
	if sh.head == none {
		sh.head = i
	}
}

// Expire frees the addresses last observed before now minus the retention, from
// the least recently observed of each shard on. (An address observed with a
// capture time older than the newest but not the oldest held sits nearer the
// head and is freed once the ones before it are; queries never answer it past
// its age.) Observe calls it.
func (t *Table) Expire(now time.Time) {
	if t == nil {
		return
	}
	cutoff := now.UnixNano() - t.retention
	var n uint64
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		stale := sh.tail != none && sh.ents[sh.tail].last < cutoff
		sh.mu.RUnlock()
		if !stale {
			continue
		}
		sh.mu.Lock()
		for sh.tail != none && sh.ents[sh.tail].last < cutoff {
			n++
			sh.remove(sh.tail)
		}
		sh.mu.Unlock()
	}
	if n > 0 {
		t.expired.Add(n)
	}
}

// remove frees slot i, moving the last slot into it so ents stays dense. Locked.
func (sh *shard) remove(i int32) {
	sh.unlink(i)
	delete(sh.index, sh.ents[i].addr)
	last := int32(len(sh.ents) - 1)
	if i != last {
		m := sh.ents[last]
		sh.ents[i] = m
		sh.index[m.addr] = i
		if m.prev != none {
			sh.ents[m.prev].next = i
		} else {
			sh.head = i
		}
		if m.next != none {
			sh.ents[m.next].prev = i
		} else {
			sh.tail = i
		}
	}
	sh.ents[last] = entry{}
	sh.ents = sh.ents[:last]
	if len(sh.ents) < cap(sh.ents)/4 && cap(sh.ents) > 1024 { // give a drained table's memory back
		sh.ents = append(make([]entry, 0, cap(sh.ents)/2), sh.ents...)
	}
}

// find returns a's entry if it was observed inside the retention; the caller
// holds the read lock.
func (t *Table) find(sh *shard, a netip.Addr) *entry {
	i, ok := sh.index[a]
	if !ok {
		return nil
	}
	e := &sh.ents[i]
	if e.last < t.now().UnixNano()-t.retention {
		return nil
	}
	return e
}

// Latest is the latest name observed for a (the question asked), or "".
func (t *Table) Latest(a netip.Addr) string {
	if t == nil || !a.IsValid() {
		return ""
	}
	a = a.Unmap()
	sh := t.shard(a)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if e := t.find(sh, a); e != nil {
		return e.names[0]
	}
	return ""
}

// Names are the names observed for a, latest first (nil if none).
func (t *Table) Names(a netip.Addr) []string {
	if t == nil || !a.IsValid() {
		return nil
	}
	a = a.Unmap()
	sh := t.shard(a)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	e := t.find(sh, a)
	if e == nil {
		return nil
	}
	var out []string
	for _, n := range e.names {
		if n != "" {
			out = append(out, n)
		}
	}
	return out
}

// NameMatcher returns a predicate true for the addresses one of whose names is
// suffix or ends in "." + suffix (case-insensitive; a final dot of suffix is
// ignored). The predicate looks the address up when called (one shard read lock
// and map lookup, no allocation): it does not precompute the matching set, as
// the store calls it once per distinct address of its flows, which costs no
// more than a scan of this table and holds no copy of it. An empty suffix
// matches nothing.
func (t *Table) NameMatcher(suffix string) func(netip.Addr) bool {
	suffix = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(suffix), "."))
	if t == nil || suffix == "" {
		return func(netip.Addr) bool { return false }
	}
	return func(a netip.Addr) bool {
		if !a.IsValid() {
			return false
		}
		a = a.Unmap()
		sh := t.shard(a)
		sh.mu.RLock()
		defer sh.mu.RUnlock()
		e := t.find(sh, a)
		if e == nil {
			return false
		}
		for _, n := range e.names {
			if n != "" && flowmeta.InDomain(n, suffix) {
				return true
			}
		}
		return false
	}
}

// Stats reads the counters.
func (t *Table) Stats() Stats {
	if t == nil {
		return Stats{}
	}
	var entries uint64
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		entries += uint64(len(sh.index))
		sh.mu.RUnlock()
	}
	return Stats{
		Observations: t.observations.Load(), Ignored: t.ignored.Load(), Entries: entries,
		Evicted: t.evicted.Load(), Expired: t.expired.Load(),
	}
}
