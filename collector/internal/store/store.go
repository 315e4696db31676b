// Package store holds the collector's flows: every flow record updated within the
// retention window, built by applying the sensors' deltas in place.
//
// Layout, chosen for millions of flows (see BenchmarkHeapPerFlow for the measured cost):
//   - the store is split into shards by a hash of the flow key, each with its own
//     lock, so a query scanning one shard holds up ingest of that shard only;
//   - a shard keeps fixed-size records (no pointers, 144 bytes: 16-byte addresses, an
//     interned sensor id, the totals, the LRU links, a bucket hint, the Community
//     ID's 20 raw bytes and interned server name and application ids) in chunks, an
//     open-addressing index of 8-byte entries, and a free list threaded through the
//     free records;
//   - records are linked in order of the collector's receive time (oldest first), so
//     expiry and the --max-flows eviction pop the head instead of scanning;
//   - what each delta transferred is also added to a per-bucket (default per-minute)
//     entry of its flow, keyed by the packets' own time, so a window question counts
//     only what was transferred inside the window;
//   - every address of a stored flow is interned once in a host table (HostID), and
//     each slot keeps its generation and its two host ids in a 12-byte slotMeta
//     apart from the records: a window question over the hosts (top talkers) walks
//     the bucket entries and these, never a record, and sums into arrays by host id.
package store

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"netwatch.dev/common/flagconfig"
	"netwatch.dev/common/sat"
	"netwatch.dev/proto/flowmeta"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// Config of the store. Zero values are not defaults: start from DefaultConfig
// (Check rejects a zero field, naming it).
type Config struct {
	// Retention is how long a flow stays after the collector last received an update
	// for it. Default 60 minutes; at least one minute.
	Retention time.Duration
	// MaxFlows bounds the stored flows; above it the flows idle the longest (oldest
	// receive time) are evicted and counted in Stats.Evicted. Default 10,000,000.
	MaxFlows int
	// BucketWidth is the time resolution of window questions (top talkers): what a
	// flow transferred is kept per bucket of this width, by packet time. Default one
	// minute; from one second to one minute, a whole number of seconds dividing a
	// minute.
	BucketWidth time.Duration
	// MaxSensorIDs bounds the distinct sensor ids the store numbers in its life (a
	// uint16 each; ids are not reused while the process runs). Default and most
	// 65,536.
	MaxSensorIDs int
	// MaxServerNames bounds the distinct server names (TLS SNI, HTTP Host) the
	// stored flows hold; a flow whose name does not fit keeps the one it had (or
	// none), counted in Stats.NamesRefused. Default 262,144 (at most some 100 MB of
	// 253-byte names; typically a tenth of it).
	MaxServerNames int
}

// Defaults.
const (
	DefaultRetention      = 60 * time.Minute
	DefaultMaxFlows       = 10_000_000
	DefaultBucketWidth    = time.Minute
	DefaultMaxSensorIDs   = math.MaxUint16 + 1
	DefaultMaxServerNames = 1 << 18
	// MaxApplications bounds the distinct application labels (flowmeta.App labels:
	// a few dozen), as MaxServerNames does server names.
	MaxApplications = 1<<(32-labelNameBits) - 1
	// MaxWindow is the longest window question the buckets answer, whatever the
	// retention: buckets are kept for max(Retention, MaxWindow) of packet time.
	MaxWindow = 60 * time.Minute
)

// DefaultConfig is the documented default.
func DefaultConfig() Config {
	return Config{Retention: DefaultRetention, MaxFlows: DefaultMaxFlows, BucketWidth: DefaultBucketWidth, MaxSensorIDs: DefaultMaxSensorIDs, MaxServerNames: DefaultMaxServerNames}
}

// Check explains what is wrong with c, naming the field (a *flagconfig.FieldError).
func (c Config) Check() error {
	switch {
	case c.Retention < time.Minute:
		return flagconfig.Fieldf("Retention", "%v is shorter than one minute", c.Retention)
	case c.MaxFlows < 1 || c.MaxFlows > math.MaxUint32/2:
		return flagconfig.Fieldf("MaxFlows", "%d is outside [1, %d]", c.MaxFlows, math.MaxUint32/2)
	case c.BucketWidth < time.Second || c.BucketWidth > time.Minute || time.Minute%c.BucketWidth != 0 || c.BucketWidth%time.Second != 0:
		return flagconfig.Fieldf("BucketWidth", "%v is not a whole number of seconds dividing one minute", c.BucketWidth)
	case c.MaxSensorIDs < 1 || c.MaxSensorIDs > DefaultMaxSensorIDs:
		return flagconfig.Fieldf("MaxSensorIDs", "%d is outside [1, %d]", c.MaxSensorIDs, DefaultMaxSensorIDs)
	case c.MaxServerNames < 1 || c.MaxServerNames > labelNameMask:
		return flagconfig.Fieldf("MaxServerNames", "%d is outside [1, %d]", c.MaxServerNames, labelNameMask)
	}
	return nil
}

// Key identifies one flow record: the sensor, the oriented 5-tuple and the flow's
// first packet time (a 5-tuple that is reused after its flow ended is a new record).
type Key struct {
	SensorID  string
	Protocol  uint8
	Src, Dst  netip.Addr
	SrcPort   uint16
	DstPort   uint16
	FirstSeen int64 // unix nanos
}

// Flow is one stored flow record with its totals: a copy, safe to keep.
type Flow struct {
	Key
	VLAN                     uint16
	SrcPackets, SrcBytes     uint64
	DstPackets, DstBytes     uint64
	LastSeen                 int64 // unix nanos
	SrcTCPFlags, DstTCPFlags uint8
	Status                   netwatchv1.FlowStatus
	EndReason                netwatchv1.EndReason
	// ReceivedAt is when the collector last applied a delta to this flow (unix nanos):
	// retention counts from here, not from the packets' own time.
	ReceivedAt int64
	// CommunityID, ServerName and Application are the flow's FlowDelta fields
	// (the latest non-empty value received); "" when none.
	CommunityID string
	ServerName  string
	Application string
}

// ID is the flow's stable identifier (the API's flow_key), computed on demand.
func (f *Flow) ID() string {
	return flowmeta.ID(f.SensorID, f.Protocol, f.Src, f.SrcPort, f.Dst, f.DstPort, f.FirstSeen)
}

// Stats are the store's counters.
type Stats struct {
	Flows int // stored now
	// Evicted counts flows dropped because MaxFlows was reached, Expired those dropped
	// by Expire; both since New.
	Evicted, Expired uint64
	// Rejected counts deltas whose key is unusable (bad address length, protocol or
	// port out of range), or from a sensor beyond the 65,535th.
	Rejected uint64
	// Deltas, Packets and Bytes are everything applied since New (packets and bytes of
	// both directions); a recorder reading them every second gets the ingest rate.
	Deltas, Packets, Bytes uint64
	// BucketEntries is the number of (flow, bucket) traffic entries held.
	BucketEntries int
	// Hosts is the number of distinct addresses of the stored flows (the host table).
	Hosts int
	// ServerNames and Applications are the distinct server names and application
	// labels the stored flows hold; NamesRefused counts the times a flow's name or
	// label could not be stored because its table was full (MaxServerNames,
	// MaxApplications): the flow kept the one it had, or none.
	ServerNames, Applications int
	NamesRefused              uint64
}

// numShards is a power of two; the top bits of a key's hash pick its shard.
const (
	shardBits = 4
	numShards = 1 << shardBits
)

// Store is safe for concurrent use.
type Store struct {
	cfg     Config
	width   int64 // bucket width, ns
	shards  [numShards]shard
	sensors sensorTable
	hosts   hostTable
	names   *nameTable // server names
	apps    *nameTable // application labels

	flows    atomic.Int64
	evictMu  sync.Mutex // one evictor at a time, so concurrent Applys do not over-evict
	evicted  atomic.Uint64
	expired  atomic.Uint64
	rejected atomic.Uint64
	deltas   atomic.Uint64
	packets  atomic.Uint64
	bytes    atomic.Uint64
}

// New builds an empty store. Call cfg.Check first: New panics on a config Check
// refuses.
func New(cfg Config) *Store {
	if err := cfg.Check(); err != nil {
		panic("store.New: " + err.Error())
	}
	s := &Store{cfg: cfg, width: int64(cfg.BucketWidth), names: newNameTable(cfg.MaxServerNames), apps: newNameTable(MaxApplications)}
	s.sensors.max = cfg.MaxSensorIDs
	for i := range s.shards {
		s.shards[i].init(uint8(i), &s.hosts, s.names, s.apps)
	}
	return s
}

// Config is the store's configuration.
func (s *Store) Config() Config { return s.cfg }

// Apply adds one sensor's deltas, received at now.
func (s *Store) Apply(sensorID string, deltas []*netwatchv1.FlowDelta, now time.Time) {
	if len(deltas) == 0 {
		return
	}
	sensor, ok := s.sensors.intern(sensorID)
	if !ok {
		s.rejected.Add(uint64(len(deltas)))
		return
	}
	nowNs := now.UnixNano()
	kept := s.keptBuckets(nowNs)
	var added int64
	var pk, by, rejected uint64
	for _, d := range deltas {
		k, h, u, ok := s.decode(sensor, d, nowNs, kept)
		if !ok {
			rejected++
			continue
		}
		sh := &s.shards[h>>(64-shardBits)]
		sh.mu.Lock()
		if _, created := sh.apply(&k, h, &u, false); created {
			added++
		}
		sh.mu.Unlock()
		pk = sat.Add(pk, sat.Add(u.srcPackets, u.dstPackets))
		by = sat.Add(by, sat.Add(u.srcBytes, u.dstBytes))
	}
	s.account(uint64(len(deltas))-rejected, pk, by, rejected, added, s.cfg.MaxFlows)
}

// decode turns a delta received at nowNs into the flow's key, its hash and the
// update to apply. The update's bucket is that of the delta's last packet when it
// is one the store keeps (kept, from keptBuckets(nowNs)).
func (s *Store) decode(sensor uint16, d *netwatchv1.FlowDelta, nowNs int64, kept bucketRange) (compactKey, uint64, update, bool) {
	k, ok := compactKeyOf(sensor, d)
	if !ok {
		return k, 0, update{}, false
	}
	u := update{
		srcPackets: d.GetSrcPackets(), srcBytes: d.GetSrcBytes(),
		dstPackets: d.GetDstPackets(), dstBytes: d.GetDstBytes(),
		vlan: uint16(d.GetVlanId()), srcFlags: uint8(d.GetSrcTcpFlags()), dstFlags: uint8(d.GetDstTcpFlags()),
		status: d.GetStatus(), end: d.GetEndReason(), received: nowNs,
		lastSeen: k.firstSeen, bucket: noBucket,
	}
	if ls := d.GetLastSeen(); ls != nil {
		u.lastSeen = ls.AsTime().UnixNano()
	}
	if c := d.GetCommunityId(); c != "" {
		u.cid, _ = parseCommunityID(c)
	}
	// Ingest checks the bounds; a restored snapshot is not checked again, so the
	// store keeps its own (an unusable value is none).
	if n := d.GetServerName(); len(n) <= maxServerNameBytes {
		u.serverName = n
	}
	if a := d.GetApplication(); len(a) <= maxApplicationBytes {
		u.app = a
	}
	if b := s.bucketOf(u.lastSeen); kept.has(b) {
		u.bucket = b
	}
	return k, k.hash(), u, true
}

// The longest server name and application label the store keeps (FlowDelta's bounds).
const (
	maxServerNameBytes  = 253
	maxApplicationBytes = 32
)

// bucketRange is the buckets [lo, hi] the store keeps for data received at one time.
type bucketRange struct{ lo, hi uint32 }

func (r bucketRange) has(b uint32) bool { return b >= r.lo && b <= r.hi }

// keptBuckets is the range of buckets kept for data received at nowNs: buckets older
// than what a window question can reach (a replayed old capture) or further ahead than
// that (a sensor clock far off) are not.
func (s *Store) keptBuckets(nowNs int64) bucketRange {
	keep := int64(max(s.cfg.Retention, MaxWindow))
	return bucketRange{s.bucketOf(nowNs - keep), s.bucketOf(nowNs + keep)}
}

// account adds applied deltas to the counters and evicts above limit flows
// (MaxFlows; a restore lets the store run an eighth over it, see Restore).
func (s *Store) account(deltas, pk, by, rejected uint64, added int64, limit int) {
	s.deltas.Add(deltas)
	satAddAtomic(&s.packets, pk)
	satAddAtomic(&s.bytes, by)
	if rejected > 0 {
		s.rejected.Add(rejected)
	}
	if s.flows.Add(added) > int64(limit) {
		s.evict()
	}
}

// BucketTraffic is what a flow transferred inside one bucket (both directions), by
// packet time; Start is the bucket's start (unix nanos). Snapshots carry it so that a
// restart keeps window questions exact.
type BucketTraffic struct {
	Start          int64
	Packets, Bytes uint64
}

// ScanBuckets is Scan, with what each flow transferred per bucket, oldest bucket
// first. fn runs under the shard's read lock: it must not call the store, and the
// slice is only valid during the call.
func (s *Store) ScanBuckets(match func(*Flow) bool, fn func(Flow, []BucketTraffic)) {
	var per [][]BucketTraffic // by slot
	var nums []uint32
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		if cap(per) < int(sh.nslots) {
			per = make([][]BucketTraffic, sh.nslots)
		}
		per = per[:sh.nslots]
		for j := range per {
			per[j] = per[j][:0]
		}
		nums = nums[:0]
		for b := range sh.buckets {
			nums = append(nums, b)
		}
		slices.Sort(nums)
		for _, b := range nums {
			bk := sh.buckets[b]
			for pos := range bk.entries {
				e := &bk.entries[pos]
				if !sh.live(e) {
					continue
				}
				l := per[e.slot]
				if n := len(l); n > 0 && l[n-1].Start == int64(b)*s.width {
					l[n-1].Packets = sat.Add(l[n-1].Packets, uint64(e.packets)) // a bucket's second entry
					l[n-1].Bytes = sat.Add(l[n-1].Bytes, e.bytes())
					continue
				}
				per[e.slot] = append(l, BucketTraffic{Start: int64(b) * s.width, Packets: uint64(e.packets), Bytes: e.bytes()})
			}
		}
		for slot := sh.head; slot != nilSlot; {
			r := sh.rec(slot)
			f := sh.flow(r, &s.sensors)
			if match(&f) {
				fn(f, per[slot])
			}
			slot = r.next
		}
		sh.mu.RUnlock()
	}
}

// Restore adds a flow from a snapshot: d holds its totals, received is when the
// collector last updated it, and buckets what it transferred per bucket (Apply would
// put all of it in the bucket of its last packet). Buckets the store would not keep
// for data received at received are left out, as Apply leaves them out.
//
// Flows may come in any order: restoring n flows takes O(n log n) whatever the
// order. Above MaxFlows, Restore lets the store grow by an eighth before it evicts
// (in one go), so that evicting sorts each shard's list once per eighth, not once
// per flow; the next Apply or Expire brings the store back to MaxFlows.
func (s *Store) Restore(sensorID string, d *netwatchv1.FlowDelta, received time.Time, buckets []BucketTraffic) {
	sensor, ok := s.sensors.intern(sensorID)
	if !ok {
		s.rejected.Add(1)
		return
	}
	nowNs := received.UnixNano()
	kept := s.keptBuckets(nowNs)
	k, h, u, ok := s.decode(sensor, d, nowNs, kept)
	if !ok {
		s.account(0, 0, 0, 1, 0, s.cfg.MaxFlows)
		return
	}
	u.bucket = noBucket
	sh := &s.shards[h>>(64-shardBits)]
	sh.mu.Lock()
	slot, added := sh.apply(&k, h, &u, true)
	r := sh.rec(slot)
	for _, bt := range buckets {
		if b := s.bucketOf(bt.Start); kept.has(b) && (bt.Packets > 0 || bt.Bytes > 0) {
			sh.addToBucket(slot, r, b, bt.Packets, bt.Bytes)
		}
	}
	sh.mu.Unlock()
	s.account(1, sat.Add(u.srcPackets, u.dstPackets), sat.Add(u.srcBytes, u.dstBytes), 0, b2i(added), s.cfg.MaxFlows+s.cfg.MaxFlows/8)
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// evict drops the flows idle the longest until the store is back at MaxFlows. Each
// shard's oldest receive time is published atomically, so picking the globally
// oldest flow takes one shard lock at a time.
func (s *Store) evict() {
	s.evictMu.Lock()
	defer s.evictMu.Unlock()
	for s.flows.Load() > int64(s.cfg.MaxFlows) {
		oldest := -1
		var at int64 = math.MaxInt64
		for i := range s.shards {
			if h := s.shards[i].headReceived.Load(); h < at {
				oldest, at = i, h
			}
		}
		if oldest < 0 {
			return
		}
		sh := &s.shards[oldest]
		sh.mu.Lock()
		sh.sortList()
		removed := sh.head != nilSlot
		if removed {
			sh.remove(sh.head)
		}
		sh.mu.Unlock()
		if removed {
			s.flows.Add(-1)
			s.evicted.Add(1)
		}
	}
}

// Expire drops flows whose last update was received before now minus the retention,
// and buckets too old for any window question. It returns the flows dropped.
func (s *Store) Expire(now time.Time) (removed int) {
	nowNs := now.UnixNano()
	cutoff := nowNs - int64(s.cfg.Retention)
	minBucket := s.bucketOf(nowNs - int64(max(s.cfg.Retention, MaxWindow)))
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.sortList()
		n := 0
		for sh.head != nilSlot && sh.rec(sh.head).received < cutoff {
			sh.remove(sh.head)
			n++
		}
		sh.pruneBuckets(minBucket)
		sh.mu.Unlock()
		removed += n
	}
	s.hosts.sweep(s.names, s.apps)
	if s.flows.Add(int64(-removed)) > int64(s.cfg.MaxFlows) {
		s.evict() // after a Restore beyond MaxFlows
	}
	s.expired.Add(uint64(removed))
	return removed
}

// Len is the number of stored flows.
func (s *Store) Len() int { return int(s.flows.Load()) }

// Stats reads the counters.
func (s *Store) Stats() Stats {
	st := Stats{
		Flows: s.Len(), Evicted: s.evicted.Load(), Expired: s.expired.Load(), Rejected: s.rejected.Load(),
		Deltas: s.deltas.Load(), Packets: s.packets.Load(), Bytes: s.bytes.Load(),
	}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		st.BucketEntries += sh.bucketEntries
		sh.mu.RUnlock()
	}
	st.Hosts = s.Hosts()
	var f1, f2 uint64
	st.ServerNames, f1 = s.names.stats()
	st.Applications, f2 = s.apps.stats()
	st.NamesRefused = sat.Add(f1, f2)
	return st
}

// bucketOf is the bucket number of a packet time (unix nanos); times before 1970 are
// bucket 0, which is never kept.
func (s *Store) bucketOf(ns int64) uint32 {
	if ns < 0 {
		return 0
	}
	b := ns / s.width
	if b > math.MaxUint32-1 {
		return math.MaxUint32 - 1
	}
	return uint32(b)
}

// AdmitSensor numbers sensorID in the store ahead of its first batch, so that a
// sensor the store could not hold is refused before any of its batches is
// acknowledged (ingest calls it before it welcomes a stream). The error says why.
func (s *Store) AdmitSensor(sensorID string) error {
	if _, ok := s.sensors.intern(sensorID); !ok {
		return fmt.Errorf("the store has numbered its maximum of %d distinct sensor ids since the collector started (ids are not reused until a restart)", s.cfg.MaxSensorIDs)
	}
	return nil
}

// sensorTable interns sensor ids as uint16. Readers use the published snapshot
// without locking; ids are never reused.
type sensorTable struct {
	max   int // ids at most (Config.MaxSensorIDs)
	mu    sync.Mutex
	ids   map[string]uint16
	names atomic.Pointer[[]string]
}

func (t *sensorTable) intern(name string) (uint16, bool) {
	if names := t.names.Load(); names != nil {
		// Fast path: the last few sensors are the usual ones; a short linear look is
		// cheaper than the lock when there are few sensors.
		if n := *names; len(n) <= 8 {
			for i, v := range n {
				if v == name {
					return uint16(i), true
				}
			}
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if id, ok := t.ids[name]; ok {
		return id, true
	}
	var names []string
	if p := t.names.Load(); p != nil {
		names = *p
	}
	if len(names) >= t.max {
		return 0, false
	}
	if t.ids == nil {
		t.ids = map[string]uint16{}
	}
	id := uint16(len(names))
	t.ids[name] = id
	grown := append(names[:len(names):len(names)], name)
	t.names.Store(&grown)
	return id, true
}

// lookup finds an interned id without adding it.
func (t *sensorTable) lookup(name string) (uint16, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	id, ok := t.ids[name]
	return id, ok
}

// name of an interned id.
func (t *sensorTable) name(id uint16) string {
	return (*t.names.Load())[id]
}
