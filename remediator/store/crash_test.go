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
// either.
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
	t.Logf("%d alerts acknowledged, %d in the inbox after the crash", len(accepted), len(in))
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
