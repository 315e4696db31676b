package store

import (
	"strings"
	"sync"
	"sync/atomic"
)

// nameTable interns the strings of one kind of flow label (server names,
// application labels) so that a record holds a small id instead of a string (records
// stay pointer-free). Id 0 is "no name". It is bounded: when max names are in use (or
// wait for the next sweep), a new name is not interned and the flow keeps what it
// had; full counts those refusals.
//
// Ids are counted by the records using them. An id whose count drops to zero stays
// in the table (a flow may take it up again) until the next sweep, which runs with
// the host table's pin held for writing, so a query that compiled a filter into a
// bitmap over the ids (under PinHosts) sees every id name the same string until it
// ends.
//
// Readers: name(id) reads without the lock. It is only called for an id a record
// holds, under that record's shard lock, so the id cannot be freed meanwhile, and
// its string was written (under mu) before the id was handed out.
type nameTable struct {
	max    int
	mu     sync.Mutex
	chunks atomic.Pointer[[]*nameChunk] // by id-1; grown copy-on-write
	refs   []uint32                     // by id-1
	ids    map[string]uint32
	n      int      // ids handed out so far
	zero   []uint32 // refs reached 0; freed by the next sweep
	free   []uint32 // swept: reusable now
	inUse  int      // ids with refs > 0
	full   atomic.Uint64
}

const nameChunkSize = 1024

type nameChunk [nameChunkSize]string

func newNameTable(max int) *nameTable {
	t := &nameTable{max: max, ids: map[string]uint32{}}
	empty := []*nameChunk{}
	t.chunks.Store(&empty)
	return t
}

// name is the string of id ("" for 0); see the type's comment for when it may be
// called.
func (t *nameTable) name(id uint32) string {
	if id == 0 {
		return ""
	}
	return (*t.chunks.Load())[(id-1)/nameChunkSize][(id-1)%nameChunkSize]
}

// intern counts one more record using s and returns its id; 0 (and a count in full)
// when the table is full.
func (t *nameTable) intern(s string) uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if id, ok := t.ids[s]; ok {
		if t.refs[id-1]++; t.refs[id-1] == 1 {
			t.inUse++
		}
		return id
	}
	if len(t.ids) >= t.max {
		t.full.Add(1)
		return 0
	}
	var id uint32
	if n := len(t.free); n > 0 {
		id = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		t.n++
		id = uint32(t.n)
		chunks := *t.chunks.Load()
		if int(id-1)/nameChunkSize == len(chunks) {
			grown := append(chunks[:len(chunks):len(chunks)], new(nameChunk))
			t.chunks.Store(&grown)
		}
		t.refs = append(t.refs, 0)
	}
	s = strings.Clone(s) // not the delta's buffer
	(*t.chunks.Load())[(id-1)/nameChunkSize][(id-1)%nameChunkSize] = s
	t.refs[id-1] = 1
	t.ids[s] = id
	t.inUse++
	return id
}

// release counts one record fewer using id (0: nothing).
func (t *nameTable) release(id uint32) {
	if id == 0 {
		return
	}
	t.mu.Lock()
	if t.refs[id-1]--; t.refs[id-1] == 0 {
		t.inUse--
		t.zero = append(t.zero, id)
	}
	t.mu.Unlock()
}

// sweep frees the ids no record uses any more. The caller holds the host table's
// pin for writing.
func (t *nameTable) sweep() {
	t.mu.Lock()
	defer t.mu.Unlock()
	chunks := *t.chunks.Load()
	for _, id := range t.zero {
		if t.refs[id-1] != 0 {
			continue // taken up again
		}
		slot := &chunks[(id-1)/nameChunkSize][(id-1)%nameChunkSize]
		if *slot == "" {
			continue // listed twice (released, taken up, released again)
		}
		delete(t.ids, *slot)
		*slot = ""
		t.free = append(t.free, id)
	}
	t.zero = t.zero[:0]
}

// matching is a bitmap over the ids (bit id) of the names keep accepts; nil when
// none does.
func (t *nameTable) matching(keep func(string) bool) []uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var bm []uint64
	for s, id := range t.ids {
		if keep(s) {
			if bm == nil {
				bm = make([]uint64, t.n/64+1)
			}
			bm[id/64] |= 1 << (id % 64)
		}
	}
	return bm
}

// stats: names in use, and names refused since New because the table was full.
func (t *nameTable) stats() (inUse int, full uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.inUse, t.full.Load()
}

func bitSet(bm []uint64, id uint32) bool {
	return int(id/64) < len(bm) && bm[id/64]&(1<<(id%64)) != 0
}
