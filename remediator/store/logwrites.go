package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// A heal's start and its step records go through the intake log too, not through a bbolt
// commit of their own: a heal must be on disk before it acts, and one fdatasync shared with
// the deliveries is what that costs, where a bbolt commit costs two and waits its turn behind
// the committer. Such a record holds whole-value writes to buckets (the heal, the target, the
// episode), written atomically under the record's checksum; the committer moves them into the
// database with the logged alerts, and Open replays them like those. Until then the readers of
// heals, targets and episodes see them from the log (see loggedValue).
//
// An inbox entry is JSON and starts with '{'; a record of writes starts with recordWrites, then
// per write: the bucket's name (1-byte length), the key and the value (4-byte lengths each).
const recordWrites = 0x01

// bucketWrite replaces one key's value in one bucket.
type bucketWrite struct {
	bucket, key, value []byte
}

// loggable are the buckets whose writes may go through the log: their records are whole
// values that a later write replaces, never read back inside a transaction to compute another.
var loggable = [][]byte{bucketHeals, bucketTargets, bucketEpisodes, bucketStats}

func encodeWrites(ws []bucketWrite) []byte {
	n := 1
	for _, w := range ws {
		n += 1 + len(w.bucket) + 8 + len(w.key) + len(w.value)
	}
	buf := make([]byte, 0, n)
	buf = append(buf, recordWrites)
	for _, w := range ws {
		buf = append(buf, byte(len(w.bucket)))
		buf = append(buf, w.bucket...)
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(w.key)))
		buf = append(buf, w.key...)
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(w.value)))
		buf = append(buf, w.value...)
	}
	return buf
}

var errBadWrites = errors.New("malformed record of writes")

// decodeWrites reads a record of writes; the slices point into b.
func decodeWrites(b []byte) ([]bucketWrite, error) {
	if len(b) == 0 || b[0] != recordWrites {
		return nil, errBadWrites
	}
	b = b[1:]
	var out []bucketWrite
	for len(b) > 0 {
		n := int(b[0])
		if len(b) < 1+n+4 {
			return nil, errBadWrites
		}
		bucket := b[1 : 1+n]
		if !slices.ContainsFunc(loggable, func(l []byte) bool { return bytes.Equal(l, bucket) }) {
			return nil, fmt.Errorf("%w: bucket %q", errBadWrites, bucket)
		}
		b = b[1+n:]
		var key, value []byte
		for _, field := range []*[]byte{&key, &value} {
			if len(b) < 4 {
				return nil, errBadWrites
			}
			l := binary.BigEndian.Uint32(b)
			if uint64(len(b)-4) < uint64(l) {
				return nil, errBadWrites
			}
			*field, b = b[4:4+l], b[4+l:]
		}
		out = append(out, bucketWrite{bucket: bucket, key: key, value: value})
	}
	return out, nil
}

// applyWrites puts a record's writes into their buckets; a heal's ID, assigned in memory, moves
// the heals bucket's sequence along so that the IDs stay unique across a restart.
func applyWrites(tx *bolt.Tx, ws []bucketWrite) error {
	for _, w := range ws {
		b := tx.Bucket(w.bucket)
		if err := b.Put(w.key, w.value); err != nil {
			return err
		}
		if bytes.Equal(w.bucket, bucketHeals) && len(w.key) == 8 {
			if seq := binary.BigEndian.Uint64(w.key); b.Sequence() < seq {
				if err := b.SetSequence(seq); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// logWrites queues ws for the intake log; done receives the result once they are on disk, and
// synced, if not nil, runs before that, once they are. Writes queued later are logged after.
func (s *Store) logWrites(ws []bucketWrite, synced func()) <-chan error {
	r := &acceptReq{writes: ws, encoded: [][]byte{encodeWrites(ws)}, synced: synced, done: make(chan error, 1)}
	if s.closing.Load() {
		r.done <- ErrClosed
	} else if err := s.intake.push(r); err != nil {
		r.done <- err
	}
	return r.done
}

// loggedView runs fn in a read transaction with the values that the log holds and the
// transaction does not see yet: the records synced beyond the applied sequence it reads.
// The log's records are taken before the transaction begins, so that a record applied
// meanwhile is in the transaction instead.
func (s *Store) loggedView(fn func(tx *bolt.Tx, logged []bucketWrite) error) error {
	recs := s.log.loggedWrites()
	return s.db.View(func(tx *bolt.Tx) error {
		var applied uint64
		if v := tx.Bucket(bucketMeta).Get(keyAppliedSeq); len(v) == 8 {
			applied = binary.BigEndian.Uint64(v)
		}
		var ws []bucketWrite
		for _, r := range recs {
			if r.seq > applied {
				ws = append(ws, r.writes...)
			}
		}
		return fn(tx, ws)
	})
}

// lastLogged is the newest logged value of key in bucket.
func lastLogged(logged []bucketWrite, bucket, key []byte) ([]byte, bool) {
	for i := len(logged) - 1; i >= 0; i-- {
		if bytes.Equal(logged[i].bucket, bucket) && bytes.Equal(logged[i].key, key) {
			return logged[i].value, true
		}
	}
	return nil, false
}

// getLogged reads key from bucket as the log and then the database have it.
func getLogged(tx *bolt.Tx, logged []bucketWrite, bucket, key []byte, v any) (bool, error) {
	if buf, ok := lastLogged(logged, bucket, key); ok {
		return true, json.Unmarshal(buf, v)
	}
	return get(tx.Bucket(bucket), key, v)
}

// loggedIn are the newest logged values of a bucket's keys.
func loggedIn(logged []bucketWrite, bucket []byte) map[string][]byte {
	out := map[string][]byte{}
	for _, w := range logged {
		if bytes.Equal(w.bucket, bucket) {
			out[string(w.key)] = w.value
		}
	}
	return out
}

// healKey is a heal's ID as its key in the heals bucket.
func healKey(id string) ([]byte, error) {
	seq, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("heal id %q: %w", id, err)
	}
	return seqKey(seq), nil
}

// forEachLogged calls fn for each key of bucket in key order, with the value the log holds
// for it if any, and then for the logged keys the database does not have yet.
func forEachLogged(tx *bolt.Tx, logged []bucketWrite, bucket []byte, fn func(k, v []byte) error) error {
	newer := loggedIn(logged, bucket)
	err := tx.Bucket(bucket).ForEach(func(k, v []byte) error {
		if lv, ok := newer[string(k)]; ok {
			v = lv
			delete(newer, string(k))
		}
		return fn(k, v)
	})
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(newer))
	for k := range newer {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := fn([]byte(k), newer[k]); err != nil {
			return err
		}
	}
	return nil
}

// newestCursor walks a bucket from its last key back, with the logged values in their places.
type newestCursor struct {
	c      *bolt.Cursor
	logged map[string][]byte
	keys   []string // the logged keys, descending, not yet passed
	k, v   []byte   // the database's current key and value
}

func newestFirst(c *bolt.Cursor, logged map[string][]byte) *newestCursor {
	keys := make([]string, 0, len(logged))
	for k := range logged {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	slices.Reverse(keys)
	return &newestCursor{c: c, logged: logged, keys: keys}
}

func (n *newestCursor) first() ([]byte, []byte) {
	n.k, n.v = n.c.Last()
	return n.pick()
}

func (n *newestCursor) next() ([]byte, []byte) { return n.pick() }

// pick returns the greater of the database's current key and the next logged one, the logged
// value winning a tie, and moves past it.
func (n *newestCursor) pick() ([]byte, []byte) {
	if len(n.keys) > 0 {
		lk := n.keys[0]
		switch {
		case n.k == nil || lk > string(n.k):
			n.keys = n.keys[1:]
			return []byte(lk), n.logged[lk]
		case lk == string(n.k):
			n.keys = n.keys[1:]
			n.k, n.v = n.c.Prev()
			return []byte(lk), n.logged[lk]
		}
	}
	k, v := n.k, n.v
	if k != nil {
		n.k, n.v = n.c.Prev()
	}
	return k, v
}
