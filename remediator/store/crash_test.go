package store

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The crash tests run the store in a child process (this test binary again, in
// TestCrashChild) that accepts, repeats and closes alerts from several goroutines and says
// on stdout what the store answered; the parent kills it with SIGKILL and reopens the file.
// Every alert the child saw accepted must be in the inbox, unless the child saw its close
// committed, and then it must not be; one whose close was asked for but not answered may be
// either. The child also starts heals as the pipeline does, through the log: every heal the
// child saw started (and so would have acted) must be there with its target and its acting
// episode, with each step whose start the child saw recorded, and finished if it saw that.
const (
	crashDirEnv   = "STORE_CRASH_DIR"
	crashPointEnv = "STORE_CRASH_POINT" // name:n, the child kills itself the nth time it passes name
)

// Each point of the write path where a crash leaves a different state on disk: a group written
// to the log but not synced, synced but not answered, moved into the database but the
// transaction not committed, committed but the log not emptied, and the log just emptied.
func TestKill9AtEachPointOfTheWritePath(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills child processes")
	}
	for _, point := range []string{"log-written", "log-synced", "apply-tx", "applied", "truncated"} {
		for _, n := range []int{2, 25} {
			t.Run(fmt.Sprintf("%s:%d", point, n), func(t *testing.T) {
				crashAndCheck(t, t.TempDir(), 0, []string{fmt.Sprintf("%s=%s:%d", crashPointEnv, point, n)})
			})
		}
	}
}

func TestKill9LosesNothingAccepted(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills child processes")
	}
	for _, after := range []int{1, 40, 400} {
		t.Run(fmt.Sprintf("killed after %d acknowledgements", after), func(t *testing.T) {
			crashAndCheck(t, t.TempDir(), after, nil)
		})
	}
}

// crashAndCheck runs the child on dir, kills it once it acknowledged after alerts (or once it
// died by itself, at a crash point set in env), then checks the reopened store.
func crashAndCheck(t *testing.T, dir string, after int, env []string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(append(os.Environ(), crashDirEnv+"="+dir), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	const (
		open = iota
		closing
		closed
	)
	accepted := map[string]int{}
	heals := map[string]*startedHeal{}
	seen := 0
	lines := bufio.NewScanner(out)
	killed, crashed := false, false
	timer := time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	for lines.Scan() {
		verb, key, _ := strings.Cut(lines.Text(), " ")
		switch verb {
		case "accepted":
			accepted[key] = open
			seen++
		case "closing":
			accepted[key] = closing
		case "closed":
			accepted[key] = closed
		case "error":
			t.Errorf("child: %s", key)
		case "crash":
			crashed = true
		case "healstart":
			id, rest, _ := strings.Cut(key, "|")
			target, episode, _ := strings.Cut(rest, "|")
			heals[id] = &startedHeal{target: target, episode: episode}
		case "healstep":
			heals[key].steps++
		case "healdone":
			heals[key].done = true
		}
		if seen >= after && !killed && len(env) == 0 {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			killed = true
		}
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child not killed by SIGKILL: %v", err)
	}
	if seen == 0 && len(env) == 0 {
		t.Fatal("child acknowledged nothing")
	}
	if len(env) > 0 && !crashed {
		t.Fatalf("child never reached its crash point (%v)", env)
	}

	s, inbox := reopen(t, dir)
	in := map[string]bool{}
	for _, e := range inbox {
		if in[e.Key] {
			t.Errorf("%s twice in the inbox", e.Key)
		}
		in[e.Key] = true
	}
	lost, reborn := 0, 0
	for key, state := range accepted {
		switch {
		case state == open && !in[key]:
			lost++
			if lost < 5 {
				t.Errorf("accepted alert %s lost", key)
			}
		case state == closed && in[key]:
			reborn++
			if reborn < 5 {
				t.Errorf("alert %s in the inbox after its close was committed", key)
			}
		}
	}
	if lost+reborn > 0 {
		t.Fatalf("of %d alerts acknowledged: %d lost, %d closed ones back", len(accepted), lost, reborn)
	}
	// The reopened store goes on: a repeat of an undecided alert is still a repeat.
	for key, state := range accepted {
		if state != open {
			continue
		}
		fresh, err := s.Accept([]InboxEntry{entry(key, false)})
		if err != nil || fresh[0] {
			t.Fatalf("repeat of %s after the crash: fresh %v %v", key, fresh, err)
		}
		break
	}
	if st, err := os.Stat(dir + "/" + LogFileName); err != nil || st.Size() != 0 {
		t.Errorf("intake log after Open: %v %v, want it empty, all of it in the database", st, err)
	}
	checkHeals(t, s, heals)
	t.Logf("%d alerts acknowledged, %d in the inbox after the crash, %d heals started", len(accepted), len(in), len(heals))
}

// startedHeal is what the child said of a heal it started.
type startedHeal struct {
	target, episode string
	steps           int
	done            bool
}

// checkHeals finds every heal the child saw started in the reopened store, as far as the child
// saw it get, and a new heal's ID beyond all of them.
func checkHeals(t *testing.T, s *Store, heals map[string]*startedHeal) {
	t.Helper()
	var last uint64
	for id, want := range heals {
		n, _ := strconv.ParseUint(id, 10, 64)
		last = max(last, n)
		h, ok, err := s.Heal(id)
		if err != nil || !ok {
			t.Errorf("heal %s started before the crash: not found after it (%v)", id, err)
			continue
		}
		if h.Target != want.target || len(h.Steps) < want.steps || (want.done && h.Result != HealHealed) {
			t.Errorf("heal %s after the crash: target %q, %d steps, result %q; the child saw target %q, %d steps, done %v",
				id, h.Target, len(h.Steps), h.Result, want.target, want.steps, want.done)
		}
		if _, ok, err := s.Target(want.target); err != nil || !ok {
			t.Errorf("target %s of heal %s lost (%v)", want.target, id, err)
		}
		// A finish the child did not see answered may have been committed.
		ep, ok, err := s.Episode(want.episode)
		if h.Result == HealRunning && (err != nil || !ok || ep.State != EpisodeActing || ep.HealID != id) {
			t.Errorf("episode %s of heal %s after the crash: %+v %v %v, want acting", want.episode, id, ep, ok, err)
		}
	}
	h := &Heal{Target: "after", Result: HealRunning, Started: time.Now()}
	if err := s.NewHeal(h, Target{Name: "after"}, "after"); err != nil {
		t.Fatal(err)
	}
	if n, _ := strconv.ParseUint(h.ID, 10, 64); n <= last {
		t.Errorf("heal started after the crash got ID %s, not beyond %d", h.ID, last)
	}
}

// TestCrashChild is the child process of the crash tests; it runs until killed.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("the child process of TestKill9LosesNothingAccepted")
	}
	var mu sync.Mutex
	say := func(verb, key string) {
		mu.Lock()
		defer mu.Unlock()
		_, _ = os.Stdout.WriteString(verb + " " + key + "\n")
	}
	if at := os.Getenv(crashPointEnv); at != "" {
		name, count, _ := strings.Cut(at, ":")
		n, _ := strconv.Atoi(count)
		var hits atomic.Int32
		crashPoint = func(point string) {
			if point == name && int(hits.Add(1)) == n {
				say("crash", point)
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {}
			}
		}
	}
	maxLogBytes = 64 << 10 // empty the log often, under load too
	s, err := Open(dir, nil)
	if err != nil {
		say("error", "open: "+err.Error())
		select {}
	}
	pid := strconv.Itoa(os.Getpid())
	for g := range 2 { // heals, recorded as the pipeline does
		go func() {
			for i := 0; ; i++ {
				target, episode := fmt.Sprintf("%s-heal-%d-%d", pid, g, i%7), fmt.Sprintf("%s-heal-%d-%d", pid, g, i)
				now := time.Now()
				h := &Heal{Target: target, Result: HealRunning, Started: now, Steps: []StepRecord{}}
				if err := s.NewHeal(h, Target{Name: target, State: "recovering", Attempts: []time.Time{now}}, episode); err != nil {
					say("error", "new heal: "+err.Error())
					continue
				}
				say("healstart", h.ID+"|"+target+"|"+episode)
				h.Steps = append(h.Steps, StepRecord{Name: "flush", Action: "http", Start: now, Outcome: StepRunning})
				if err := s.UpdateHeal(h); err != nil {
					say("error", "update heal: "+err.Error())
					continue
				}
				say("healstep", h.ID)
				h.Steps[0].Outcome, h.Result, h.Ended = StepSucceeded, HealHealed, time.Now()
				if i%2 == 0 {
					if err := s.UpdateHeal(h); err != nil {
						say("error", "update heal: "+err.Error())
					}
					continue // the end is written below, at the finish, in the pipeline; here the heal stays running
				}
				if err := s.FinishHeal(h, Target{Name: target, State: "healthy"}, episode, ""); err != nil {
					say("error", "finish heal: "+err.Error())
					continue
				}
				say("healdone", h.ID)
			}
		}()
	}
	for g := range 8 {
		go func() {
			var pending []string
			for i := 0; ; i++ {
				a, b := fmt.Sprintf("%s-%d-%d-a", pid, g, i), fmt.Sprintf("%s-%d-%d-b", pid, g, i)
				fresh, err := s.Accept([]InboxEntry{entry(a, false), entry(b, false)})
				if err != nil || !fresh[0] || !fresh[1] {
					say("error", fmt.Sprintf("accept %s %s: %v %v", a, b, fresh, err))
					continue
				}
				say("accepted", a)
				say("accepted", b)
				pending = append(pending, a, b)
				if i%2 == 1 { // a repeat of what is pending: Alertmanager's repeat_interval
					fresh, err := s.Accept([]InboxEntry{entry(pending[0], false), entry(pending[len(pending)-1], false)})
					if err != nil || fresh[0] || fresh[1] {
						say("error", fmt.Sprintf("repeat %v: %v %v", pending, fresh, err))
					}
				}
				if i%3 == 2 { // a decision, as the pipeline records it
					key := pending[0]
					pending = pending[1:]
					say("closing", key)
					if i%30 == 29 { // a quiet moment, in which the log is emptied
						time.Sleep(5 * time.Millisecond)
					}
					go func() {
						if err := <-s.ApplyLater(nil, []Close{{EpisodeKey: key, InboxKey: key, State: EpisodeSuppressed, At: time.Now()}}); err == nil {
							say("closed", key)
						}
					}()
				}
			}
		}()
	}
	select {}
}
