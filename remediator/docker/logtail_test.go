package docker

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/moby/moby/api/pkg/stdcopy"

	"github.com/selfheal/selfheal/remediator/action"
)

func TestTailWriter(t *testing.T) {
	for _, tc := range []struct {
		writes []string
		want   string
	}{
		// Cut inside the first line: the kept part starts at the next whole line.
		{[]string{"first line\n", "second\n", "end\xff"}, "end\uFFFD"},
		// Nothing cut: all of it, even without a newline.
		{[]string{"short\n", "ok"}, "short\nok"},
		// Cut with no newline left to start from: the bytes as they are.
		{[]string{"0123456789"}, "23456789"},
	} {
		w := &tailWriter{max: 8}
		for _, s := range tc.writes {
			if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
				t.Fatalf("Write(%q) = %d, %v", s, n, err)
			}
		}
		if got := w.String(); got != tc.want {
			t.Errorf("%q: kept %q, want %q", tc.writes, got, tc.want)
		}
	}
}

func TestLogTailReadsBothStreamKinds(t *testing.T) {
	// The engine's frames: stream, three zero bytes, the payload's length big-endian, the payload.
	var muxed bytes.Buffer
	for _, f := range []struct {
		stream stdcopy.StdType
		line   string
	}{{stdcopy.Stdout, "out 1\n"}, {stdcopy.Stderr, "err 2\n"}} {
		muxed.Write(binary.BigEndian.AppendUint32([]byte{byte(f.stream), 0, 0, 0}, uint32(len(f.line))))
		muxed.WriteString(f.line)
	}
	got, err := LogTail(&muxed, false)
	if err != nil || got != "out 1\nerr 2\n" {
		t.Errorf("multiplexed: %q, %v; want both streams in order", got, err)
	}

	long := strings.Repeat("x", 100) + "\n"
	raw := strings.Repeat(long, 2*action.MaxEvidenceLog/len(long))
	got, err = LogTail(strings.NewReader(raw+"last\n"), true)
	if err != nil || len(got) > action.MaxEvidenceLog || !strings.HasPrefix(got, long) || !strings.HasSuffix(got, long+"last\n") {
		t.Errorf("terminal stream: %d bytes, %v; want whole lines up to the last, within %d bytes", len(got), err, action.MaxEvidenceLog)
	}
}
