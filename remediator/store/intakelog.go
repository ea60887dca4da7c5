package store

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// LogFileName is the intake log inside --storage.path, next to the database file.
const LogFileName = "intake.log"

// The intake log makes a delivery durable with one append and one fdatasync for the whole
// group of deliveries that queued meanwhile, where a bbolt commit costs two fdatasyncs and
// rewrites pages. The committer later moves the logged alerts into the inbox bucket, in the
// same transaction as whatever else it commits, and records up to which sequence it did
// (keyAppliedSeq); once everything logged is in the file, the log is emptied. At Open, the
// records beyond that sequence are moved into the file before anything else runs.
//
// A record is: payload length (4 bytes), CRC-32C of the sequence and the payload (4 bytes),
// the inbox sequence number (8 bytes), then the inbox entry as JSON, or a heal's writes (see
// logwrites.go). Reading stops at the
// first record that is incomplete or fails its checksum: the tail of a write the process did
// not live to acknowledge.
const logHeader = 16

// maxLogBytes bounds the log under a load that never leaves it fully applied (the committer
// empties it only then): past it, the log writer has everything applied before writing more.
var maxLogBytes int64 = 16 << 20

var (
	crcTable      = crc32.MakeTable(crc32.Castagnoli)
	keyAppliedSeq = []byte("intake_log_applied")
)

// crashPoint is called at the steps of the write path where a crash leaves a different state
// on disk; the crash tests set it to kill the process there. It does nothing otherwise.
var crashPoint = func(string) {}

// logRecord is one accepted alert on its way to the inbox bucket, or a record of writes (see
// logwrites.go) on its way to theirs.
type logRecord struct {
	seq    uint64
	key    string
	value  []byte        // the inbox entry as JSON, or the encoded writes
	writes []bucketWrite // decoded, for a record of writes
}

// intakeLog is the append-only file and the records in it that the committer has not yet
// moved into the database.
type intakeLog struct {
	// mu is held while a group is written and synced, and while the file is emptied.
	mu   sync.Mutex
	f    *os.File
	size int64
	last uint64 // the sequence of the last record written

	pendingMu sync.Mutex
	pending   []logRecord // synced, not yet in the database, in sequence order
	// handed is the sequence of the last record handed to the committer: a write queued after
	// it was handed is committed after the record is applied (see commitWithLog).
	handed atomic.Uint64
}

func openIntakeLog(path string) (*intakeLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open intake log: %w", err)
	}
	return &intakeLog{f: f}, nil
}

// records reads the log from the start up to its first incomplete or damaged record.
func (l *intakeLog) records() ([]logRecord, error) {
	if _, err := l.f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	r := bufio.NewReader(l.f)
	var out []logRecord
	var hdr [logHeader]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			break
		}
		n := binary.BigEndian.Uint32(hdr[0:4])
		if n == 0 || n > 64<<20 {
			break
		}
		body := make([]byte, 8+n)
		copy(body, hdr[8:16])
		if _, err := io.ReadFull(r, body[8:]); err != nil {
			break
		}
		if crc32.Checksum(body, crcTable) != binary.BigEndian.Uint32(hdr[4:8]) {
			break
		}
		out = append(out, logRecord{seq: binary.BigEndian.Uint64(body[:8]), value: body[8:]})
	}
	return out, nil
}

// appendRecord encodes one record onto buf.
func appendRecord(buf []byte, seq uint64, value []byte) []byte {
	var hdr [logHeader]byte
	binary.BigEndian.PutUint32(hdr[0:4], uint32(len(value)))
	binary.BigEndian.PutUint64(hdr[8:16], seq)
	crc := crc32.Update(crc32.Checksum(hdr[8:16], crcTable), crcTable, value)
	binary.BigEndian.PutUint32(hdr[4:8], crc)
	return append(append(buf, hdr[:]...), value...)
}

// write appends buf (whole records, the last of them seq) and syncs it. Log writer only, with
// mu held. On failure the file is cut back to where it was, so no record follows a hole.
func (l *intakeLog) write(buf []byte, last uint64) error {
	if _, err := l.f.WriteAt(buf, l.size); err != nil {
		_ = l.f.Truncate(l.size)
		return fmt.Errorf("write intake log: %w", err)
	}
	crashPoint("log-written")
	if err := fdatasync(l.f); err != nil {
		_ = l.f.Truncate(l.size)
		return fmt.Errorf("sync intake log: %w", err)
	}
	l.size += int64(len(buf))
	l.last = last
	return nil
}

// full tells whether the log is past maxLogBytes. Log writer only.
func (l *intakeLog) full() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.size > maxLogBytes
}

// logged hands synced records to the committer.
func (l *intakeLog) logged(recs []logRecord) {
	l.pendingMu.Lock()
	l.pending = append(l.pending, recs...)
	l.handed.Store(recs[len(recs)-1].seq)
	l.pendingMu.Unlock()
}

// loggedWrites copies the records of writes not yet in the database, for the readers.
func (l *intakeLog) loggedWrites() []logRecord {
	l.pendingMu.Lock()
	defer l.pendingMu.Unlock()
	var out []logRecord
	for _, r := range l.pending {
		if r.writes != nil {
			out = append(out, r)
		}
	}
	return out
}

// unapplied returns the records not yet in the database.
func (l *intakeLog) unapplied() []logRecord {
	l.pendingMu.Lock()
	defer l.pendingMu.Unlock()
	return l.pending[:len(l.pending):len(l.pending)]
}

// applied drops the first n records, now committed to the database, and empties the file if
// nothing else was logged since; when a group is being written, the file is emptied after a
// later commit instead.
func (l *intakeLog) applied(n int, through uint64) error {
	l.pendingMu.Lock()
	clear(l.pending[:n])
	l.pending = l.pending[n:]
	if len(l.pending) == 0 {
		l.pending = nil
	}
	l.pendingMu.Unlock()
	crashPoint("applied")
	if !l.mu.TryLock() {
		return nil
	}
	defer l.mu.Unlock()
	if l.last != through || l.size == 0 {
		return nil
	}
	return l.truncate()
}

// truncate empties the file, mu held. Records left behind by a crash during it are skipped
// at Open: their sequence is not beyond the applied one.
func (l *intakeLog) truncate() error {
	if err := l.f.Truncate(0); err != nil {
		return fmt.Errorf("empty intake log: %w", err)
	}
	l.size = 0
	crashPoint("truncated")
	return nil
}

func (l *intakeLog) close() error {
	if l == nil || l.f == nil {
		return nil
	}
	return l.f.Close()
}
