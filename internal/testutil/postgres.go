package testutil

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// StartPostgres starts a throwaway PostgreSQL cluster on a free 127.0.0.1 port for the test and
// returns its URL (user postgres, database postgres, no password). The cluster is stopped and
// deleted when the test ends. As root, the server runs as the postgres user (it refuses to run
// as root) through runuser. Durability is switched off: these clusters live for seconds.
func StartPostgres(t testing.TB) string {
	t.Helper()
	return StartPostgresAt(t, 0)
}

// StartPostgresAt is StartPostgres on a given port (0: a free one), for tests that point a
// program at the database before it exists.
func StartPostgresAt(t testing.TB, port int) string {
	t.Helper()
	initdb := LookPath(t, "initdb")
	postgres := filepath.Join(filepath.Dir(initdb), "postgres")
	if _, err := os.Stat(postgres); err != nil {
		Require(t, false, "postgres server binary next to "+initdb)
	}
	dir, err := os.MkdirTemp("", "selfheal-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var asUser []string
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			Require(t, false, "a postgres user to run PostgreSQL as (running as root)")
		}
		runuser, err := exec.LookPath("runuser")
		if err != nil {
			Require(t, false, "runuser to run PostgreSQL as the postgres user")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		asUser = []string{runuser, "-u", "postgres", "--"}
	}
	data := filepath.Join(dir, "data")
	run := func(args ...string) *exec.Cmd {
		args = append(asUser, args...)
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = dir
		return cmd
	}
	if out, err := run(initdb, "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	if port == 0 {
		port = FreePort(t)
	}
	logPath := filepath.Join(dir, "postgres.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := run(postgres, "-D", data, "-k", dir, "-h", "127.0.0.1", "-p", strconv.Itoa(port),
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=100")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start postgres: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// runuser may stand between us and the postmaster; signal the postmaster itself.
		if b, err := os.ReadFile(filepath.Join(data, "postmaster.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])); err == nil {
				_ = syscall.Kill(pid, syscall.SIGQUIT) // immediate shutdown: nothing to keep
			}
		}
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	url := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, url)
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return url
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logPath)
			t.Fatalf("postgres exited at start:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("postgres not ready after 30s: %v\n%s", err, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
