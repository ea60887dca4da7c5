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
// The committer goroutine is the only writer. It works on the changes of the transaction in
// progress (added, removed, episodes) without a lock, and publishes them to the committed view
// under mu once they are on disk; deliveries read the committed view under the read lock, so a
// repeat is answered without entering the writer (see Store.repeats).
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
	added    map[string]uint64
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
		added: map[string]uint64{}, removed: map[string]bool{}, episodes: map[string]episodeState{},
	}
}

func (x *inboxIndex) begin() {
	clear(x.added)
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
		for k, seq := range x.added {
			x.committed[k] = seq
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

// lookup finds an undecided entry by key, as the transaction in progress sees it. Committer only.
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

// episode is an episode's state as the transaction in progress sees it. Committer only.
func (x *inboxIndex) episode(key string) episodeState {
	if st, ok := x.episodes[key]; ok {
		return st
	}
	return x.states[key]
}

func (x *inboxIndex) setEpisode(key string, st episodeState) { x.episodes[key] = st }

// isRepeat tells whether the transaction in progress would not accept e. Committer only.
func (x *inboxIndex) isRepeat(e *InboxEntry) bool {
	if _, pending := x.lookup(e.Key); pending {
		return true
	}
	return repeatOf(x.episode(e.EpisodeKey), e.Resolved)
}

// repeatOf tells whether a delivery of an episode in state st changes nothing: a resolved
// episode never fires again, nor resolves twice; an acting one has its heal running.
func repeatOf(st episodeState, resolved bool) bool {
	return st == episodeResolved || (st == episodeActing && !resolved)
}

// repeats answers a delivery from the committed view when every alert in it is a repeat, and
// none is touched by a write still queued: then the answer is the one the writer would give,
// and the delivery needs neither the writer nor a commit. ok is false when the writer must
// decide.
func (x *inboxIndex) repeats(entries []InboxEntry) (ok bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.barriers > 0 {
		return false
	}
	for i := range entries {
		e := &entries[i]
		if e.Key == "" || e.EpisodeKey == "" || x.unsettled[e.Key] > 0 || x.unsettled[e.EpisodeKey] > 0 {
			return false
		}
		if _, pending := x.committed[e.Key]; pending {
			continue
		}
		if !repeatOf(x.states[e.EpisodeKey], e.Resolved) {
			return false
		}
	}
	return true
}

// seqKey is a sequence as a bucket key: big-endian, so keys sort in the order they were issued.
func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}
