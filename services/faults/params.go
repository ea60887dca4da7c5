package faults

import (
	"fmt"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Request is one fault to start.
type Request struct {
	Name   string
	Params url.Values
}

// ParseSpec parses FAULTS: a comma-separated list of name[:value] or name?query, where value
// is the fault's parameter (memory-leak:8 is 8 MB/s, cpu:1 is one core, errors:0.75,
// latency:500 in ms, pool-leak:2 per second, partition:300 seconds) and a fault's other kinds
// are names of their own (memory-leak-unflushable:8 is the leak a flush cannot free).
func ParseSpec(spec string) ([]Request, error) {
	var out []Request
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if name, query, ok := strings.Cut(item, "?"); ok {
			v, err := url.ParseQuery(query)
			if err != nil {
				return nil, fmt.Errorf("%w: fault %q: %v", ErrBadParameter, item, err)
			}
			if _, err := lookup(name); err != nil {
				return nil, err
			}
			out = append(out, Request{Name: name, Params: v})
			continue
		}
		name, value, hasValue := strings.Cut(item, ":")
		f, kind, err := lookupSpec(name)
		if err != nil {
			return nil, err
		}
		r := Request{Name: f.name, Params: url.Values{}}
		if !f.plain(kind) {
			r.Params.Set("kind", kind)
		}
		if hasValue {
			r.Params.Set(f.param.name, value)
		}
		out = append(out, r)
	}
	return out, nil
}

// paramReader validates query parameters, remembering the first problem and which parameters
// were consumed, so that a misspelt parameter is an error instead of being silently ignored.
type paramReader struct {
	v    url.Values
	used map[string]bool
	err  error
}

func (p *paramReader) use(name string) (string, bool) {
	if p.used == nil {
		p.used = map[string]bool{}
	}
	p.used[name] = true
	vals, ok := p.v[name]
	if !ok {
		return "", false
	}
	if len(vals) != 1 && p.err == nil {
		p.err = fmt.Errorf("%w: %s given %d times", ErrBadParameter, name, len(vals))
	}
	return vals[0], true
}

// number reads par, or its default when it is not given.
func (p *paramReader) number(par param) float64 {
	s, ok := p.use(par.name)
	if !ok {
		return par.def
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f < par.min || f > par.max {
		if p.err == nil {
			p.err = fmt.Errorf("%w: %s=%q must be a number from %g to %g", ErrBadParameter, par.name, s, par.min, par.max)
		}
		return par.def
	}
	return f
}

func (p *paramReader) oneOf(name, def string, allowed ...string) string {
	s, ok := p.use(name)
	if !ok {
		return def
	}
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	if p.err == nil {
		p.err = fmt.Errorf("%w: %s=%q must be one of %s", ErrBadParameter, name, s, strings.Join(allowed, ", "))
	}
	return def
}

func (p *paramReader) done() error {
	if p.err != nil {
		return p.err
	}
	var extra []string
	for k := range p.v {
		if !p.used[k] {
			extra = append(extra, k)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return fmt.Errorf("%w: unknown parameter(s) %s", ErrBadParameter, strings.Join(extra, ", "))
	}
	return nil
}
