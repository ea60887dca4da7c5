package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/selfheal/selfheal/remediator/action"
)

var (
	_ action.EvidenceCollector   = (*Actuator)(nil)
	_ action.IncarnationReporter = (*Actuator)(nil)
)

// maxLogRead bounds what is read of a log stream, whatever the tail asked for: a container or
// task that wrote one endless line must not hold the heal. Memory stays within
// action.MaxEvidenceLog whatever is read.
const maxLogRead = 8 << 20

// maxProbeOutput bounds each healthcheck output kept; Docker keeps the last five probes.
const maxProbeOutput = 512

// Evidence captures what a person looks at after a restart, kill, stop or recreate has wiped
// it: the container's state (exit code, OOM kill, restart count, start and finish times, health
// and its last probe outputs) and the last lines of its log, through the same engine address
// (and socket proxy) as the actions. A log that cannot be read leaves the state, with the reason.
func (a *Actuator) Evidence(ctx context.Context, req action.Request) (*action.Evidence, error) {
	if req.Step == nil || req.Step.Docker == nil {
		return nil, errors.New("not a docker step")
	}
	ctx, cancel := context.WithTimeout(ctx, a.Timeout)
	defer cancel()
	start := time.Now()
	t, err := a.target(ctx, req, start)
	if err != nil {
		return nil, err
	}
	ev := &action.Evidence{Captured: time.Now().UTC(), Object: t.String(), State: containerState(t.info)}
	log, err := a.lastLog(ctx, t)
	if err != nil {
		ev.State["log_error"] = a.engineError(ctx, err, "read the log of "+t.String(), start).Error()
	}
	ev.Log = log
	return ev, nil
}

// Incarnation reports the container's current run: its id, start time and restart count.
func (a *Actuator) Incarnation(ctx context.Context, req action.Request) (action.Incarnation, error) {
	if req.Step == nil || req.Step.Docker == nil {
		return action.Incarnation{}, errors.New("not a docker step")
	}
	ctx, cancel := context.WithTimeout(ctx, a.Timeout)
	defer cancel()
	t, err := a.target(ctx, req, time.Now())
	if err != nil {
		return action.Incarnation{}, err
	}
	st := t.info.State
	return action.Incarnation{
		Object:    t.String(),
		ID:        t.id,
		Started:   engineTime(st.StartedAt),
		Restarts:  t.info.RestartCount,
		Running:   st.Running,
		Finished:  engineTime(st.FinishedAt),
		ExitCode:  st.ExitCode,
		OOMKilled: st.OOMKilled,
	}, nil
}

// containerState is the inspect's State in the words of `docker inspect`, as text.
func containerState(c container.InspectResponse) map[string]string {
	st := c.State
	m := map[string]string{
		"status":        string(st.Status),
		"exit_code":     strconv.Itoa(st.ExitCode),
		"oom_killed":    strconv.FormatBool(st.OOMKilled),
		"restart_count": strconv.Itoa(c.RestartCount),
		"started_at":    st.StartedAt,
		"finished_at":   st.FinishedAt,
		"image":         c.Config.Image,
	}
	if st.Error != "" {
		m["error"] = st.Error
	}
	if p := c.HostConfig.RestartPolicy; p.Name != "" {
		m["restart_policy"] = string(p.Name)
	}
	if h := st.Health; h != nil && hasHealthcheck(c) {
		m["health"] = string(h.Status)
		m["health_failing_streak"] = strconv.Itoa(h.FailingStreak)
		var probes []string
		for _, r := range h.Log {
			out := strings.TrimSpace(r.Output)
			if len(out) > maxProbeOutput {
				out = strings.ToValidUTF8(out[:maxProbeOutput], "") + "…"
			}
			probes = append(probes, fmt.Sprintf("%s exit %d: %s", r.Start.UTC().Format(time.RFC3339), r.ExitCode, out))
		}
		if len(probes) > 0 {
			m["health_probes"] = strings.Join(probes, "\n")
		}
	}
	return m
}

// lastLog returns the container's last action.MaxEvidenceLogLines lines of output, stdout and
// stderr interleaved with the engine's timestamps, at most action.MaxEvidenceLog bytes (the end
// is kept, from a line start).
func (a *Actuator) lastLog(ctx context.Context, t *target) (string, error) {
	rc, err := a.cli.ContainerLogs(ctx, t.id, client.ContainerLogsOptions{
		ShowStdout: true,
		ShowStderr: true,
		Timestamps: true,
		Tail:       strconv.Itoa(action.MaxEvidenceLogLines),
	})
	if err != nil {
		return "", err
	}
	defer rc.Close()
	return LogTail(rc, t.info.Config.Tty)
}

// LogTail reads a log stream of the engine (a container's or a Swarm task's) and returns its
// end, the evidence a person reads: at most action.MaxEvidenceLog bytes, starting at a line when
// it had to cut, as valid UTF-8. The stream is stdout and stderr multiplexed in stdcopy's frames,
// unless the container has a terminal (tty), whose output is one raw stream. What was read before
// an error is returned with it.
func LogTail(stream io.Reader, tty bool) (string, error) {
	w := &tailWriter{max: action.MaxEvidenceLog}
	r := io.LimitReader(stream, maxLogRead)
	var err error
	if tty {
		_, err = io.Copy(w, r)
	} else {
		_, err = stdcopy.StdCopy(w, w, r)
	}
	return w.String(), err
}

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	buf []byte
	max int
	cut bool
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	if over := len(w.buf) - w.max; over > 0 {
		w.buf = append(w.buf[:0], w.buf[over:]...)
		w.cut = true
	}
	return len(p), nil
}

// String is what was kept, from the first whole line if the start was cut off.
func (w *tailWriter) String() string {
	b := w.buf
	if i := bytes.IndexByte(b, '\n'); w.cut && i >= 0 && i+1 < len(b) {
		b = b[i+1:]
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// engineTime parses the engine's RFC 3339 times; its zero ("0001-01-01T00:00:00Z") and anything
// unparsable are the zero time.
func engineTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() <= 1 {
		return time.Time{}
	}
	return t
}
