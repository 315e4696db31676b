package store

// probeDelete empties index[i], a slot of an open-addressing table with linear
// probing and a power-of-two size, and moves the later entries of its run back into
// the hole (backward-shift deletion: no tombstones). The zero E is an empty slot;
// hash gives an entry's hash, whose low bits are its home position.
func probeDelete[E comparable](index []E, i uint64, hash func(E) uint64) {
	var empty E
	mask := uint64(len(index) - 1)
	for j := i; ; {
		j = (j + 1) & mask
		e := index[j]
		if e == empty {
			break
		}
		home := hash(e) & mask
		// e may move to the hole at i unless its home lies cyclically in (i, j].
		if (i < j && (home <= i || home > j)) || (i > j && home <= i && home > j) {
			index[i] = e
			i = j
		}
	}
	index[i] = empty
}
