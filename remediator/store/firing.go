package store

import (
	"encoding/json"
	"iter"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
	"unique"
)

// Firing is one alert firing on a target.
type Firing struct {
	Alertname string    `json:"alertname"`
	Severity  string    `json:"severity,omitempty"`
	Since     time.Time `json:"since"`
}

// FiringSet holds the alerts firing on a target, by episode key. The remediator may hold a
// hundred thousand of them, so an entry is small: a key as the intake builds it (verify.EpisodeKey:
// 16 hex digits of fingerprint, "@", startsAt in RFC 3339 UTC) is held as the two numbers it is
// made of, not as 50 bytes of text, its since is the key's startsAt, and the alert name and
// severity, few and repeated, are interned. Keys of any other form are held as they are.
//
// An alert (a fingerprint) has one episode at a time in Alertmanager, so the set holds one per
// fingerprint: the one delivered last. One that fires again with a later startsAt has ended its
// earlier episode, whether or not its resolved notification arrived (send_resolved off, a
// notification lost); and when Alertmanager merges the same alert from two Prometheus servers
// it keeps the earliest startsAt, so the alert's startsAt may also move back. Either way the
// notification delivered last names the episode that its resolve will name.
//
// A target usually has a few alerts firing, and a map of ten entries takes twice the memory of
// a slice of them: up to fewFiring entries are held in a slice searched in order, more in a map.
//
// The zero value is empty. Like a map, a copy shares the entries: change a set through its
// target only.
type FiringSet struct {
	// few holds the entries in the intake's form while there are at most fewFiring of them,
	// byFingerprint once there are more; never both.
	few           []firingEntry
	byFingerprint map[uint64]firingEntry
	// other holds the keys that are not in the intake's form, and any whose since is not the
	// key's startsAt.
	other map[string]Firing
}

// episodeID is an episode key in the intake's form.
type episodeID struct {
	fingerprint uint64
	startsAt    int64 // Unix nanoseconds
}

type firingAlert struct{ alertname, severity string }

type firingEntry struct {
	id    episodeID
	alert unique.Handle[firingAlert]
}

// fewFiring is the most entries held in a slice.
const fewFiring = 32

// findFingerprint is the index in few of the fingerprint's episode, or -1.
func (s FiringSet) findFingerprint(fp uint64) int {
	for i := range s.few {
		if s.few[i].id.fingerprint == fp {
			return i
		}
	}
	return -1
}

// lookup finds the episode held for the fingerprint.
func (s FiringSet) lookup(fp uint64) (firingEntry, bool) {
	if s.byFingerprint != nil {
		e, ok := s.byFingerprint[fp]
		return e, ok
	}
	if i := s.findFingerprint(fp); i >= 0 {
		return s.few[i], true
	}
	return firingEntry{}, false
}

// setID records an entry in the intake's form, in place of any other episode of its fingerprint.
func (s *FiringSet) setID(id episodeID, a unique.Handle[firingAlert]) {
	e := firingEntry{id: id, alert: a}
	if s.byFingerprint != nil {
		s.byFingerprint[id.fingerprint] = e
		return
	}
	if i := s.findFingerprint(id.fingerprint); i >= 0 {
		s.few[i] = e
		return
	}
	if len(s.few) < fewFiring {
		if len(s.few) == cap(s.few) {
			// Grown by half rather than doubled (as append would): most targets keep the few
			// alerts they have.
			few := make([]firingEntry, len(s.few), len(s.few)+len(s.few)/2+1)
			copy(few, s.few)
			s.few = few
		}
		s.few = append(s.few, e)
		return
	}
	s.byFingerprint = make(map[uint64]firingEntry, len(s.few)+1)
	for _, e := range s.few {
		s.byFingerprint[e.id.fingerprint] = e
	}
	s.byFingerprint[id.fingerprint] = e
	s.few = nil
}

// deleteID removes an entry in the intake's form, if that episode is the one held.
func (s *FiringSet) deleteID(id episodeID) {
	if s.byFingerprint != nil {
		if old, ok := s.byFingerprint[id.fingerprint]; ok && old.id == id {
			delete(s.byFingerprint, id.fingerprint)
		}
		return
	}
	if i := s.findFingerprint(id.fingerprint); i >= 0 && s.few[i].id == id {
		last := len(s.few) - 1
		s.few[i] = s.few[last]
		s.few[last] = firingEntry{}
		s.few = s.few[:last]
		if last == 0 {
			s.few = nil
		}
	}
}

// ids yields the entries in the intake's form.
func (s FiringSet) ids() iter.Seq2[episodeID, unique.Handle[firingAlert]] {
	return func(yield func(episodeID, unique.Handle[firingAlert]) bool) {
		for _, e := range s.few {
			if !yield(e.id, e.alert) {
				return
			}
		}
		for _, e := range s.byFingerprint {
			if !yield(e.id, e.alert) {
				return
			}
		}
	}
}

const fingerprintDigits = 16

// parseEpisode reads a key in the intake's form. Only a key that is exactly what key() builds
// back is taken, so the state file keeps the keys it was given.
func parseEpisode(key string) (episodeID, bool) {
	if len(key) <= fingerprintDigits+1 || key[fingerprintDigits] != '@' {
		return episodeID{}, false
	}
	var fp uint64
	for _, c := range []byte(key[:fingerprintDigits]) {
		switch {
		case '0' <= c && c <= '9':
			fp = fp<<4 | uint64(c-'0')
		case 'a' <= c && c <= 'f':
			fp = fp<<4 | uint64(c-'a'+10)
		default:
			return episodeID{}, false
		}
	}
	at, err := time.Parse(time.RFC3339Nano, key[fingerprintDigits+1:])
	if err != nil {
		return episodeID{}, false
	}
	id := episodeID{fingerprint: fp, startsAt: at.UnixNano()}
	var buf [48]byte
	if string(id.since().AppendFormat(buf[:0], time.RFC3339Nano)) != key[fingerprintDigits+1:] {
		return episodeID{}, false // not UTC, not in the shortest form, or beyond Unix nanoseconds
	}
	return id, true
}

func (id episodeID) since() time.Time { return time.Unix(0, id.startsAt).UTC() }

func (id episodeID) key() string {
	const digits = "0123456789abcdef"
	var buf [fingerprintDigits + 1 + 48]byte
	b := buf[:0]
	for shift := 4 * (fingerprintDigits - 1); shift >= 0; shift -= 4 {
		b = append(b, digits[id.fingerprint>>shift&0xf])
	}
	b = append(b, '@')
	return string(id.since().AppendFormat(b, time.RFC3339Nano))
}

// Len is the number of alerts firing.
func (s FiringSet) Len() int { return len(s.few) + len(s.byFingerprint) + len(s.other) }

// IsZero reports whether nothing fires (the state file then leaves the set out).
func (s FiringSet) IsZero() bool { return s.Len() == 0 }

// Has reports whether the episode fires.
func (s FiringSet) Has(episode string) bool {
	if id, ok := parseEpisode(episode); ok {
		if e, ok := s.lookup(id.fingerprint); ok && e.id == id {
			return true
		}
	}
	_, ok := s.other[episode]
	return ok
}

// Set records that the episode fires.
func (s *FiringSet) Set(episode string, f Firing) {
	id, ok := parseEpisode(episode)
	if ok && f.Since.Equal(id.since()) {
		s.setID(id, unique.Make(firingAlert{alertname: f.Alertname, severity: f.Severity}))
		delete(s.other, episode)
		return
	}
	if ok {
		s.deleteID(id)
	}
	if s.other == nil {
		s.other = map[string]Firing{}
	}
	s.other[episode] = f
}

// Delete records that the episode no longer fires.
func (s *FiringSet) Delete(episode string) {
	if id, ok := parseEpisode(episode); ok {
		s.deleteID(id)
	}
	delete(s.other, episode)
}

// Alerts yields the firing alerts, in no particular order.
func (s FiringSet) Alerts() iter.Seq[Firing] {
	return func(yield func(Firing) bool) {
		for id, h := range s.ids() {
			a := h.Value()
			if !yield(Firing{Alertname: a.alertname, Severity: a.severity, Since: id.since()}) {
				return
			}
		}
		for _, f := range s.other {
			if !yield(f) {
				return
			}
		}
	}
}

// All yields the firing alerts with their episode keys, in no particular order.
func (s FiringSet) All() iter.Seq2[string, Firing] {
	return func(yield func(string, Firing) bool) {
		for id, h := range s.ids() {
			a := h.Value()
			if !yield(id.key(), Firing{Alertname: a.alertname, Severity: a.severity, Since: id.since()}) {
				return
			}
		}
		for k, f := range s.other {
			if !yield(k, f) {
				return
			}
		}
	}
}

// firingRecord is a Firing in the state file: since is left out where the key holds it.
type firingRecord struct {
	Alertname string     `json:"alertname"`
	Severity  string     `json:"severity,omitempty"`
	Since     *time.Time `json:"since,omitempty"`
}

// MarshalJSON writes the set as an object from episode key to alert, keys sorted. It is
// written by hand: the pipeline re-encodes the records of the targets it changed after every
// batch of decisions, and a target may hold thousands of firing alerts.
func (s FiringSet) MarshalJSON() ([]byte, error) {
	type item struct {
		key string
		f   Firing
		id  bool // since is the key's
	}
	items := make([]item, 0, s.Len())
	for id, h := range s.ids() {
		a := h.Value()
		items = append(items, item{key: id.key(), f: Firing{Alertname: a.alertname, Severity: a.severity}, id: true})
	}
	for k, f := range s.other {
		items = append(items, item{key: k, f: f})
	}
	slices.SortFunc(items, func(a, b item) int { return strings.Compare(a.key, b.key) })
	buf := make([]byte, 0, 64*len(items)+2)
	buf = append(buf, '{')
	for i, it := range items {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendJSONString(buf, it.key)
		buf = append(buf, `:{"alertname":`...)
		buf = appendJSONString(buf, it.f.Alertname)
		if it.f.Severity != "" {
			buf = append(buf, `,"severity":`...)
			buf = appendJSONString(buf, it.f.Severity)
		}
		if !it.id {
			since, err := it.f.Since.MarshalJSON()
			if err != nil {
				return nil, err
			}
			buf = append(append(buf, `,"since":`...), since...)
		}
		buf = append(buf, '}')
	}
	return append(buf, '}'), nil
}

// appendJSONString appends s as a JSON string, escaped as encoding/json escapes it.
func appendJSONString(buf []byte, s string) []byte {
	const hex = "0123456789abcdef"
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(append(buf, s[start:i]...), `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf = append(append(buf, s[start:i]...), '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(append(buf, s[start:]...), '"')
}

// UnmarshalJSON reads what MarshalJSON writes, and the plain map of Firing older files hold.
func (s *FiringSet) UnmarshalJSON(b []byte) error {
	var m map[string]firingRecord
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*s = FiringSet{}
	for k, r := range m {
		f := Firing{Alertname: r.Alertname, Severity: r.Severity}
		if r.Since != nil {
			f.Since = *r.Since
		} else if id, ok := parseEpisode(k); ok {
			f.Since = id.since()
		}
		s.Set(k, f)
	}
	return nil
}
