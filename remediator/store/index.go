package store

import "encoding/binary"

// inboxIndex maps the key of each accepted, undecided alert (episode and status) to its
// sequence number in the inbox bucket. The bucket is keyed by sequence so that intake appends
// to the same rightmost pages instead of writing one random page per alert; the index answers
// "is this delivery a repeat?" and "which record closes this decision?" without a page read.
// It holds only undecided alerts, is rebuilt from the bucket at Open, and is touched only by
// the committer goroutine (and Open, before it starts), so it needs no lock.
type inboxIndex struct {
	committed map[string]uint64
	// The changes of the transaction in progress, applied to committed only if it commits.
	added   map[string]uint64
	removed map[string]bool
}

func newInboxIndex() *inboxIndex {
	return &inboxIndex{committed: map[string]uint64{}, added: map[string]uint64{}, removed: map[string]bool{}}
}

func (x *inboxIndex) begin() {
	clear(x.added)
	clear(x.removed)
}

func (x *inboxIndex) end(committed bool) {
	if committed {
		for k := range x.removed {
			delete(x.committed, k)
		}
		for k, seq := range x.added {
			x.committed[k] = seq
		}
	}
	x.begin()
}

func (x *inboxIndex) lookup(key string) (uint64, bool) {
	if seq, ok := x.added[key]; ok {
		return seq, true
	}
	if x.removed[key] {
		return 0, false
	}
	seq, ok := x.committed[key]
	return seq, ok
}

func (x *inboxIndex) add(key string, seq uint64) {
	delete(x.removed, key)
	x.added[key] = seq
}

func (x *inboxIndex) remove(key string) {
	delete(x.added, key)
	x.removed[key] = true
}

// seqKey is a sequence as a bucket key: big-endian, so keys sort in the order they were issued.
func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}
