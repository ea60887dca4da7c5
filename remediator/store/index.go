package store

import (
	"encoding/binary"
	"sync"
)

// inboxIndex is the in-memory view of what decides whether a delivery is new: the key of each
// accepted, undecided alert (episode and status) with its sequence number in the inbox bucket,
// and the state of each episode that is acting or resolved. It is rebuilt from the file at Open.
//
// The inbox bucket is keyed by sequence so that intake appends to the same rightmost pages
// instead of writing one random page per alert; the index answers "is this delivery a
// repeat?" and "which record closes this decision?" without a page read.
//
// Two goroutines change it, each publishing under mu only what is on disk. The log writer adds
// the alerts it logged (publish). The committer works on the changes of the transaction in
// progress (removed, episodes) on the side, and publishes them when it commits (end).
// Deliveries read under the read lock, so a repeat is answered without a writer (repeats).
type inboxIndex struct {
	mu        sync.RWMutex
	committed map[string]uint64
	states    map[string]episodeState
	// unsettled counts, per inbox or episode key, the queued writes that change it and are not
	// yet on disk; barriers counts queued writes whose keys are not known in advance (Prune).
	// While either covers a delivery, its answer depends on those writes and it queues behind
	// them like a new alert.
	unsettled map[string]int
	barriers  int

	// The changes of the transaction in progress, applied to the committed view only if it
	// commits. Committer only.
	removed  map[string]bool
	episodes map[string]episodeState
}

// episodeState is what the index remembers of an episode: only the two ends that change what
// a later delivery gets.
type episodeState uint8

const (
	episodeNone episodeState = iota
	episodeActing
	episodeResolved
)

func stateOf(s string) episodeState {
	switch s {
	case EpisodeActing:
		return episodeActing
	case EpisodeResolved:
		return episodeResolved
	}
	return episodeNone
}

func newInboxIndex() *inboxIndex {
	return &inboxIndex{
		committed: map[string]uint64{}, states: map[string]episodeState{}, unsettled: map[string]int{},
		removed: map[string]bool{}, episodes: map[string]episodeState{},
	}
}

func (x *inboxIndex) begin() {
	clear(x.removed)
	clear(x.episodes)
}

// end publishes the transaction's changes if it committed, and settles the writes it held:
// in one step under the lock, so no reader sees a write settled before its changes show.
func (x *inboxIndex) end(committed bool, group []*writeReq) {
	x.mu.Lock()
	if committed {
		for k := range x.removed {
			delete(x.committed, k)
		}
		for k, st := range x.episodes {
			if st == episodeNone {
				delete(x.states, k)
			} else {
				x.states[k] = st
			}
		}
	}
	for _, r := range group {
		x.settleLocked(r)
	}
	x.mu.Unlock()
	x.begin()
}

// unsettle marks the keys of a write about to be queued.
func (x *inboxIndex) unsettle(r *writeReq) {
	if len(r.keys) == 0 && !r.barrier {
		return
	}
	x.mu.Lock()
	for _, k := range r.keys {
		x.unsettled[k]++
	}
	if r.barrier {
		x.barriers++
	}
	x.mu.Unlock()
}

func (x *inboxIndex) settle(r *writeReq) {
	x.mu.Lock()
	x.settleLocked(r)
	x.mu.Unlock()
}

func (x *inboxIndex) settleLocked(r *writeReq) {
	for _, k := range r.keys {
		if x.unsettled[k]--; x.unsettled[k] <= 0 {
			delete(x.unsettled, k)
		}
	}
	if r.barrier {
		x.barriers--
	}
	r.keys, r.barrier = nil, false // settled once, even if the request is retried alone
}

// publish adds the alerts the log writer has on disk.
func (x *inboxIndex) publish(added map[string]uint64) {
	x.mu.Lock()
	for k, seq := range added {
		x.committed[k] = seq
	}
	x.mu.Unlock()
}

// lookup finds an undecided entry by key, as the transaction in progress sees it. Committer only.
func (x *inboxIndex) lookup(key string) (uint64, bool) {
	if x.removed[key] {
		return 0, false
	}
	x.mu.RLock()
	seq, ok := x.committed[key]
	x.mu.RUnlock()
	return seq, ok
}

func (x *inboxIndex) remove(key string) { x.removed[key] = true }

// setActing publishes that a heal of the episode started, once its record is on disk.
func (x *inboxIndex) setActing(key string) {
	x.mu.Lock()
	x.states[key] = episodeActing
	x.mu.Unlock()
}

func (x *inboxIndex) setEpisode(key string, st episodeState) { x.episodes[key] = st }

// repeatLocked tells whether e changes nothing, by what is on disk; mu held.
func (x *inboxIndex) repeatLocked(e *InboxEntry) bool {
	if _, pending := x.committed[e.Key]; pending {
		return true
	}
	return repeatOf(x.states[e.EpisodeKey], e.Resolved)
}

// repeatOf tells whether a delivery of an episode in state st changes nothing: a resolved
// episode never fires again, nor resolves twice; an acting one has its heal running.
func repeatOf(st episodeState, resolved bool) bool {
	return st == episodeResolved || (st == episodeActing && !resolved)
}

// repeats tells whether every alert of a delivery is a repeat by what is on disk, and none is
// touched by a write still queued: then that is the answer the writers would give, and the
// delivery needs no write.
func (x *inboxIndex) repeats(entries []InboxEntry) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.touchesLocked(entries) {
		return false
	}
	for i := range entries {
		if !x.repeatLocked(&entries[i]) {
			return false
		}
	}
	return true
}

// touches tells whether a queued write of the committer changes one of the entries' alerts or
// episodes, or may (Prune).
func (x *inboxIndex) touches(entries []InboxEntry) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.touchesLocked(entries)
}

func (x *inboxIndex) touchesLocked(entries []InboxEntry) bool {
	if x.barriers > 0 {
		return true
	}
	if len(x.unsettled) == 0 {
		return false
	}
	for i := range entries {
		if x.unsettled[entries[i].Key] > 0 || x.unsettled[entries[i].EpisodeKey] > 0 {
			return true
		}
	}
	return false
}

// seqKey is a sequence as a bucket key: big-endian, so keys sort in the order they were issued.
func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}
