// Package store keeps the remediator's durable state in one bbolt file: accepted alerts not yet
// decided, alert episodes (for idempotency), targets (budgets, cooldowns, pauses, suspensions),
// step success statistics and the heal history. A restart, even after kill -9, resumes from it.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// FileName is the database file inside --storage.path.
const FileName = "remediator.db"

var (
	bucketInbox    = []byte("inbox")
	bucketEpisodes = []byte("episodes")
	bucketTargets  = []byte("targets")
	bucketHeals    = []byte("heals")
	bucketStats    = []byte("step_stats")
	bucketMeta     = []byte("meta")
	allBuckets     = [][]byte{bucketInbox, bucketEpisodes, bucketTargets, bucketHeals, bucketStats, bucketMeta}

	keyGlobalPause = []byte("global_pause")
)

// Store is safe for concurrent use.
type Store struct {
	db     *bolt.DB
	logger *slog.Logger
	path   string

	queue      writeQueue
	index      *inboxIndex
	commitDone chan struct{}

	log       *intakeLog
	intake    intakeQueue
	nextSeq   uint64 // log writer only
	logDone   chan struct{}
	applyWait atomic.Bool // a write that moves the log into the database is queued
	closeOnce sync.Once
	closeErr  error
	// closing turns away the repeats answered from the index once Close began, like any write.
	closing atomic.Bool
	// healSeq is the last heal ID given: heals are started through the log, ahead of the
	// heals bucket's own sequence (see applyWrites).
	healSeq atomic.Uint64
	// commits and logSyncs count the transactions committed and the log's syncs, for the
	// tests of what needs none.
	commits, logSyncs atomic.Uint64
}

// Open opens (or creates) the database in dir. A file that cannot be opened or fails its
// consistency check is moved aside with a clear log line and an empty store is started: losing
// history is better than a remediator that refuses to run while services fail.
func Open(dir string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create storage directory: %w", err)
	}
	path := filepath.Join(dir, FileName)
	log, err := openIntakeLog(filepath.Join(dir, LogFileName))
	if err != nil {
		return nil, err
	}
	records, err := log.records()
	if err != nil {
		_ = log.close()
		return nil, fmt.Errorf("read intake log: %w", err)
	}
	index := newInboxIndex()
	db, err := openChecked(path, index, records, logger)
	if err != nil {
		aside := fmt.Sprintf("%s.corrupt-%s", path, time.Now().UTC().Format("20060102T150405Z"))
		logger.Error("state file is unreadable; moving it aside and starting with empty state",
			"path", path, "moved_to", aside, "err", err)
		if rerr := os.Rename(path, aside); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			return nil, fmt.Errorf("state file %s unreadable (%v) and cannot be moved aside: %w", path, err, rerr)
		}
		index = newInboxIndex()
		db, err = openChecked(path, index, records, logger)
		if err != nil {
			_ = log.close()
			return nil, fmt.Errorf("open fresh state file %s: %w", path, err)
		}
	}
	// Everything the log held is in the database now.
	if err := log.truncate(); err != nil {
		_ = log.close()
		_ = db.Close()
		return nil, err
	}
	s := &Store{db: db, logger: logger, path: path, index: index, log: log,
		queue: writeQueue{newQueue[*writeReq]()}, commitDone: make(chan struct{}),
		intake: intakeQueue{newQueue[*acceptReq]()}, logDone: make(chan struct{})}
	err = db.View(func(tx *bolt.Tx) error {
		s.nextSeq = tx.Bucket(bucketInbox).Sequence() + 1
		s.healSeq.Store(tx.Bucket(bucketHeals).Sequence())
		return nil
	})
	if err != nil {
		_ = log.close()
		_ = db.Close()
		return nil, err
	}
	go s.committer()
	go s.logWriter()
	return s, nil
}

func openChecked(path string, index *inboxIndex, records []logRecord, logger *slog.Logger) (db *bolt.DB, err error) {
	// bbolt may panic on some corruptions rather than return an error; turn that into an error
	// so the caller can move the file aside.
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				_ = db.Close()
			}
			db, err = nil, fmt.Errorf("corrupt database: %v", r)
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout: 5 * time.Second,
		// The freelist is rebuilt on open instead of written on every commit: cheaper commits
		// for the webhook's group commits.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		for cerr := range tx.Check() {
			return cerr
		}
		if err := loadInbox(tx, index, logger); err != nil {
			return err
		}
		if err := replayLog(tx, index, records, logger); err != nil {
			return err
		}
		return loadEpisodes(tx, index)
	})
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Close stops the log writer and the committer (after the commit in progress, if any) and closes the database.
// Writes after Close return ErrClosed. Close may be called more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		// The log writer answers what it has queued; one last commit then moves every logged
		// alert into the database (and empties the log) before the committer stops.
		s.intake.close()
		<-s.logDone
		_ = s.Flush()
		s.queue.close()
		<-s.commitDone
		s.closeErr = errors.Join(s.log.close(), s.db.Close())
	})
	return s.closeErr
}

func put(b *bolt.Bucket, key []byte, v any) error {
	buf, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, buf)
}

// encodeTargets encodes targets for putEncoded, outside the writer.
func encodeTargets(ts []Target) ([]keyValue, error) {
	out := make([]keyValue, len(ts))
	for i := range ts {
		buf, err := json.Marshal(&ts[i])
		if err != nil {
			return nil, fmt.Errorf("encode target %q: %w", ts[i].Name, err)
		}
		out[i] = keyValue{key: []byte(ts[i].Name), value: buf}
	}
	return out, nil
}

type keyValue struct{ key, value []byte }

func putEncoded(b *bolt.Bucket, kvs []keyValue) error {
	for _, kv := range kvs {
		if err := b.Put(kv.key, kv.value); err != nil {
			return err
		}
	}
	return nil
}

func get(b *bolt.Bucket, key []byte, v any) (bool, error) {
	buf := b.Get(key)
	if buf == nil {
		return false, nil
	}
	return true, json.Unmarshal(buf, v)
}

// ---- targets ----

// Target reads one target.
func (s *Store) Target(name string) (Target, bool, error) {
	var t Target
	var ok bool
	err := s.loggedView(func(tx *bolt.Tx, logged []bucketWrite) error {
		var err error
		ok, err = getLogged(tx, logged, bucketTargets, []byte(name), &t)
		return err
	})
	return t, ok, err
}

// PutTarget writes one target.
func (s *Store) PutTarget(t Target) error {
	return s.Apply([]Target{t}, nil)
}

// Targets lists all targets by name.
func (s *Store) Targets() ([]Target, error) {
	var out []Target
	err := s.loggedView(func(tx *bolt.Tx, logged []bucketWrite) error {
		return forEachLogged(tx, logged, bucketTargets, func(k, v []byte) error {
			var t Target
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("target %q: %w", k, err)
			}
			out = append(out, t)
			return nil
		})
	})
	return out, err
}

// ---- global pause ----

// GlobalPause reads the global pause.
func (s *Store) GlobalPause() (Pause, error) {
	var p Pause
	err := s.db.View(func(tx *bolt.Tx) error {
		_, err := get(tx.Bucket(bucketMeta), keyGlobalPause, &p)
		return err
	})
	return p, err
}

// PutGlobalPause writes the global pause.
func (s *Store) PutGlobalPause(p Pause) error {
	return s.update(func(tx *bolt.Tx) error { return put(tx.Bucket(bucketMeta), keyGlobalPause, p) })
}

// ---- step statistics ----

// StepStats reads all step statistics.
func (s *Store) StepStats() (map[string]StepStats, error) {
	out := map[string]StepStats{}
	err := s.loggedView(func(tx *bolt.Tx, logged []bucketWrite) error {
		return forEachLogged(tx, logged, bucketStats, func(k, v []byte) error {
			var st StepStats
			if err := json.Unmarshal(v, &st); err != nil {
				return err
			}
			out[string(k)] = st
			return nil
		})
	})
	return out, err
}

// PutStepStats writes one step's statistics and returns once they are on disk.
func (s *Store) PutStepStats(key string, st StepStats) error {
	return <-s.QueueStepStats(key, st)
}

// QueueStepStats queues one step's statistics for the intake log, which every heal's step
// records go through too: writes queued later are stored after them, and the channel receives
// the result once they are on disk.
func (s *Store) QueueStepStats(key string, st StepStats) <-chan error {
	buf, err := json.Marshal(st)
	if err != nil {
		return failed(err)
	}
	return s.logWrites([]bucketWrite{{bucket: bucketStats, key: []byte(key), value: buf}}, nil)
}

// ---- heals ----

// NewHeal stores a heal that is starting and assigns its ID, together with the target's updated
// record and the episode's new state, in one record of the intake log: after a crash either all
// of it is visible (the attempt counts) or none of it (the alert is still in the inbox and
// decided again). It returns once that record is on disk, so the heal may act.
func (s *Store) NewHeal(h *Heal, t Target, episodeKey string) error {
	return <-s.QueueNewHeal(h, t, episodeKey)
}

// QueueNewHeal is NewHeal without waiting: it assigns the ID and queues the record at once, so
// that every write queued after it is stored after it, and the channel receives the result once
// the record is on disk. A heal acts only after that.
func (s *Store) QueueNewHeal(h *Heal, t Target, episodeKey string) <-chan error {
	seq := s.healSeq.Add(1)
	h.ID = strconv.FormatUint(seq, 10)
	heal, target, err := encodeHeal(h, t)
	if err != nil {
		return failed(err)
	}
	episode, err := json.Marshal(Episode{State: EpisodeActing, HealID: h.ID, Updated: h.Started})
	if err != nil {
		return failed(err)
	}
	return s.logWrites([]bucketWrite{
		{bucket: bucketHeals, key: seqKey(seq), value: heal},
		{bucket: bucketTargets, key: []byte(t.Name), value: target},
		{bucket: bucketEpisodes, key: []byte(episodeKey), value: episode},
	}, func() { s.index.setActing(episodeKey) })
}

// encodeHeal encodes a heal and its target's record, which a heal's start and end store together.
func encodeHeal(h *Heal, t Target) (heal, target []byte, err error) {
	if heal, err = json.Marshal(h); err != nil {
		return nil, nil, err
	}
	if target, err = json.Marshal(&t); err != nil {
		return nil, nil, fmt.Errorf("encode target %q: %w", t.Name, err)
	}
	return heal, target, nil
}

// failed is the answer of a write that could not be queued.
func failed(err error) <-chan error {
	done := make(chan error, 1)
	done <- err
	return done
}

// UpdateHeal rewrites a heal (after each step starts and ends) through the intake log, and
// returns once that is on disk.
func (s *Store) UpdateHeal(h *Heal) error {
	key, err := healKey(h.ID)
	if err != nil {
		return err
	}
	buf, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return <-s.logWrites([]bucketWrite{{bucket: bucketHeals, key: key, value: buf}}, nil)
}

// FinishHeal writes the finished heal, the target, and closes the episode (removing its inbox
// entry) in one transaction, and returns once it is on disk.
func (s *Store) FinishHeal(h *Heal, t Target, episodeKey, inboxKey string) error {
	return <-s.QueueFinishHeal(h, t, episodeKey, inboxKey)
}

// QueueFinishHeal is FinishHeal without waiting: writes queued after it are committed with it or
// after it, and the channel receives the result once it is on disk.
func (s *Store) QueueFinishHeal(h *Heal, t Target, episodeKey, inboxKey string) <-chan error {
	key, err := healKey(h.ID)
	if err != nil {
		return failed(err)
	}
	heal, target, err := encodeHeal(h, t)
	if err != nil {
		return failed(err)
	}
	r := &writeReq{keys: []string{episodeKey, inboxKey}, done: make(chan error, 1), fn: func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketHeals).Put(key, heal); err != nil {
			return err
		}
		if err := tx.Bucket(bucketTargets).Put([]byte(t.Name), target); err != nil {
			return err
		}
		return s.closeEpisode(tx, episodeKey, inboxKey, Episode{State: EpisodeDone, HealID: h.ID, Updated: h.Ended})
	}}
	if err := s.enqueue(r); err != nil {
		return failed(err)
	}
	return r.done
}

// HealFilter selects heals; empty fields match all. Limit 0 means 100.
type HealFilter struct {
	Target   string
	Playbook string
	Limit    int
}

// Heals lists heals newest first.
func (s *Store) Heals(f HealFilter) ([]Heal, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	out := []Heal{}
	err := s.loggedView(func(tx *bolt.Tx, logged []bucketWrite) error {
		c := newestFirst(tx.Bucket(bucketHeals).Cursor(), loggedIn(logged, bucketHeals))
		for k, v := c.first(); k != nil && len(out) < f.Limit; k, v = c.next() {
			var h Heal
			if err := json.Unmarshal(v, &h); err != nil {
				return err
			}
			if (f.Target == "" || h.Target == f.Target) && (f.Playbook == "" || h.Playbook == f.Playbook) {
				out = append(out, h)
			}
		}
		return nil
	})
	return out, err
}

// Heal reads one heal by ID.
func (s *Store) Heal(id string) (Heal, bool, error) {
	seq, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return Heal{}, false, nil
	}
	var h Heal
	var ok bool
	err = s.loggedView(func(tx *bolt.Tx, logged []bucketWrite) error {
		ok, err = getLogged(tx, logged, bucketHeals, seqKey(seq), &h)
		return err
	})
	return h, ok, err
}

// RunningHeals lists heals that never finished: the process died during them.
func (s *Store) RunningHeals() ([]Heal, error) {
	var out []Heal
	err := s.loggedView(func(tx *bolt.Tx, logged []bucketWrite) error {
		return forEachLogged(tx, logged, bucketHeals, func(_, v []byte) error {
			var h Heal
			if err := json.Unmarshal(v, &h); err != nil {
				return err
			}
			if h.Result == HealRunning {
				out = append(out, h)
			}
			return nil
		})
	})
	return out, err
}

// Prune drops heals older than maxAge or beyond the newest maxEntries, and closed episodes
// older than maxAge, so the file stays bounded.
func (s *Store) Prune(now time.Time, maxAge time.Duration, maxEntries int) (int, error) {
	removed := 0
	// A barrier: the episodes it drops are known only inside the transaction.
	err := s.write(&writeReq{barrier: true, done: make(chan error, 1), fn: func(tx *bolt.Tx) error {
		hb := tx.Bucket(bucketHeals)
		var drop [][]byte
		c := hb.Cursor()
		n := 0
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			n++
			var h Heal
			if err := json.Unmarshal(v, &h); err != nil {
				drop = append(drop, append([]byte(nil), k...))
				continue
			}
			if h.Result == HealRunning {
				continue
			}
			if (maxEntries > 0 && n > maxEntries) || (maxAge > 0 && now.Sub(h.Started) > maxAge) {
				drop = append(drop, append([]byte(nil), k...))
			}
		}
		for _, k := range drop {
			if err := hb.Delete(k); err != nil {
				return err
			}
		}
		removed = len(drop)
		if maxAge <= 0 {
			return nil
		}
		eb := tx.Bucket(bucketEpisodes)
		var dropEp [][]byte
		if err := eb.ForEach(func(k, v []byte) error {
			var e Episode
			if json.Unmarshal(v, &e) != nil || (e.State != EpisodeActing && now.Sub(e.Updated) > maxAge) {
				if _, waiting := s.index.lookup(string(k)); !waiting {
					dropEp = append(dropEp, append([]byte(nil), k...))
				}
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range dropEp {
			if err := eb.Delete(k); err != nil {
				return err
			}
			s.index.setEpisode(string(k), episodeNone)
		}
		return nil
	}})
	return removed, err
}

// DeleteTargets forgets targets.
func (s *Store) DeleteTargets(names []string) error {
	return s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTargets)
		for _, n := range names {
			if err := b.Delete([]byte(n)); err != nil {
				return err
			}
		}
		return nil
	})
}
