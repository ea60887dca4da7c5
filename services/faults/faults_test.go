package faults

import (
	"errors"
	"net/url"
	"reflect"
	"strconv"
	"testing"
	"time"
)

func TestParseSpec(t *testing.T) {
	tests := []struct {
		spec    string
		want    []Request
		wantErr error
	}{
		{spec: "", want: nil},
		{spec: "errors:1.0", want: []Request{{"errors", url.Values{"ratio": {"1.0"}}}}},
		{spec: " cpu , latency:250 ", want: []Request{{"cpu", url.Values{}}, {"latency", url.Values{"ms": {"250"}}}}},
		{spec: "memory-leak-unflushable:8", want: []Request{{"memory-leak", url.Values{"kind": {Unflushable}, "rate_mb": {"8"}}}}},
		{spec: "memory-leak?rate_mb=2&kind=flushable", want: []Request{{"memory-leak", url.Values{"kind": {Flushable}, "rate_mb": {"2"}}}}},
		{spec: "errors:1,bogus", wantErr: ErrUnknownFault},
		{spec: "bogus?x=1", wantErr: ErrUnknownFault},
		{spec: "memory-leak?%zz", wantErr: ErrBadParameter},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			got, err := ParseSpec(tc.spec)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestStartValidation(t *testing.T) {
	in := New(1<<30, 2, nil)
	defer in.StopAll()
	tests := []struct {
		name    string
		query   string
		wantErr error
	}{
		{"errors", "ratio=0.3", nil},
		{"errors", "ratio=1.01", ErrBadParameter},
		{"errors", "ratio=0.3&x=1", ErrBadParameter},
		{"latency", "ms=0", ErrBadParameter},
		{"latency", "ms=10", nil},
		{"memory-leak", "kind=both", ErrBadParameter},
		{"cpu", "cores=-1", ErrBadParameter},
		{"partition", "seconds=1e9", ErrBadParameter},
		{"pool-leak", "", ErrUnsupported},
		{"nope", "", ErrUnknownFault},
	}
	for _, tc := range tests {
		q, _ := url.ParseQuery(tc.query)
		if _, err := in.Start(tc.name, q); !errors.Is(err, tc.wantErr) {
			t.Errorf("Start(%s?%s) = %v, want %v", tc.name, tc.query, err, tc.wantErr)
		}
	}
	if err := in.Stop("memory-leak", url.Values{"kind": {"x"}}); !errors.Is(err, ErrBadParameter) {
		t.Errorf("Stop with a bad kind: %v", err)
	}
}

// TestShouldFailRatio: the accumulator gives exactly the ratio over any window of whole periods.
func TestShouldFailRatio(t *testing.T) {
	for _, ratio := range []float64{0, 0.05, 0.25, 0.5, 0.75, 1} {
		in := New(0, 1, nil)
		if ratio > 0 {
			if _, err := in.Start("errors", url.Values{"ratio": {formatFloat(ratio)}}); err != nil {
				t.Fatal(err)
			}
		}
		failed := 0
		for range 400 {
			if in.ShouldFail() {
				failed++
			}
		}
		if want := int(ratio * 400); failed != want {
			t.Errorf("ratio %v: %d of 400 failed, want %d", ratio, failed, want)
		}
	}
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func TestPartitionEnds(t *testing.T) {
	in := New(0, 1, nil)
	in.mu.Lock()
	in.partUntil = time.Now().Add(50 * time.Millisecond)
	in.mu.Unlock()
	if in.PartitionedUntil().IsZero() {
		t.Fatal("partition not active")
	}
	time.Sleep(60 * time.Millisecond)
	if !in.PartitionedUntil().IsZero() || len(in.List()) != 0 {
		t.Error("partition still active after its end")
	}
}

func TestLeakBudget(t *testing.T) {
	in := New(3<<20, 1, nil)
	if _, err := in.Start("memory-leak", url.Values{"rate_mb": {"100"}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	in.StopAll()
	if got := in.LeakedBytes()[Flushable]; got > 3<<20 || got == 0 {
		t.Errorf("leaked %d bytes with a budget of %d", got, 3<<20)
	}
	if freed := in.FlushCache(); freed == 0 || in.LeakedBytes()[Flushable] != 0 {
		t.Errorf("flush freed %d", freed)
	}
}

// FuzzParseSpec: FAULTS comes from the environment. Whatever it holds, parsing does not panic
// and every fault it accepts is one that Start knows.
func FuzzParseSpec(f *testing.F) {
	for _, seed := range []string{"", "errors:1.0", " cpu , latency:250 ", "memory-leak-unflushable:8",
		"memory-leak?rate_mb=2&kind=flushable", "bogus?x=1", "memory-leak?%zz", ":,?:", "pool-leak:2,partition"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		reqs, err := ParseSpec(spec)
		if err != nil {
			return
		}
		for _, r := range reqs {
			if _, err := lookup(r.Name); err != nil {
				t.Errorf("ParseSpec(%q) accepted %q: %v", spec, r.Name, err)
			}
		}
	})
}
