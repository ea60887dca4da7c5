// Command loadtest measures the remediator's webhook intake against a bare decoding handler,
// its decision latency, and its memory with many active alerts; it prints a table and writes
// the benchmarks document. Run from the repository root after `make build`.
package main

import (
	"fmt"
	"os"
	"runtime/pprof"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/selfheal/selfheal/remediator/loadtest"
)

func main() {
	app := kingpin.New("loadtest", "Benchmarks the remediator against a bare handler, in one run.")
	var (
		out           = app.Flag("out", "Markdown file to write the results to (empty: print only).").Default("docs/benchmarks.md").String()
		binary        = app.Flag("remediator.binary", "Remediator binary for the memory benchmark.").Default("bin/remediator").String()
		notifications = app.Flag("notifications", "Notifications per intake measurement.").Default("10000").Int()
		senders       = app.Flag("senders", "Concurrent senders for the intake measurements.").Default("1", "16", "64").Ints()
		repeatSenders = app.Flag("repeat.senders", "Concurrent senders for the repeat measurements (none: skip).").Default("16").Ints()
		samples       = app.Flag("decision.samples", "Alerts timed for decision latency.").Default("300").Int()
		alerts        = app.Flag("memory.alerts", "Active alerts for the memory benchmark (0: skip).").Default("100000").Int()
		targets       = app.Flag("memory.targets", "Targets the active alerts are spread over.").Default("10000").Int()
		memLimits     = app.Flag("memory.gomemlimit", "GOMEMLIMIT values to run the memory benchmark with (\"\": not set); repeatable.").Default("", "100MiB").Strings()
		large         = app.Flag("memory.large", "A larger memory run, alerts:targets, GOMEMLIMIT not set (empty: skip).").Default("1000000:100000").String()
		cpuProfile    = app.Flag("cpuprofile", "Write a CPU profile of the intake measurements here.").String()
	)
	app.HelpFlag.Short('h')
	kingpin.MustParse(app.Parse(os.Args[1:]))
	if err := run(*out, *binary, *notifications, *senders, *repeatSenders, *samples, *alerts, *targets, *memLimits, *large, *cpuProfile); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

func run(out, binary string, notifications int, senders, repeatSenders []int, samples, alerts, targets int, memLimits []string, large, cpuProfile string) error {
	rep := &loadtest.Report{When: time.Now(), Machine: loadtest.ThisMachine()}
	tmp, err := os.MkdirTemp("", "remediator-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dir := func(name string) string {
		d := tmp + "/" + name
		_ = os.MkdirAll(d, 0o750)
		return d
	}

	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
	}
	for _, s := range senders {
		fmt.Fprintf(os.Stderr, "intake, %d senders, %d notifications ...\n", s, notifications)
		runs, err := loadtest.MeasureIntake(dir(fmt.Sprint("intake-", s)), s, notifications)
		if err != nil {
			return err
		}
		rep.Intake = append(rep.Intake, runs)
	}
	for _, s := range repeatSenders {
		fmt.Fprintf(os.Stderr, "repeats, %d senders, %d notifications ...\n", s, notifications)
		bare, rem, err := loadtest.MeasureRepeat(dir(fmt.Sprint("repeat-", s)), s, notifications)
		if err != nil {
			return err
		}
		rep.Repeat = append(rep.Repeat, [2]loadtest.IntakeRun{bare, rem})
	}
	if cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	for _, bg := range []int{0, 8} {
		if samples <= 0 {
			break
		}
		fmt.Fprintf(os.Stderr, "decision latency, %d background senders ...\n", bg)
		d, err := loadtest.MeasureDecision(dir(fmt.Sprint("decision-", bg)), samples, bg)
		if err != nil {
			return err
		}
		rep.Decision = append(rep.Decision, d)
	}
	for i, limit := range memLimits {
		if alerts <= 0 {
			break
		}
		fmt.Fprintf(os.Stderr, "memory, %d alerts on %d targets, %s, GOMEMLIMIT=%q ...\n", alerts, targets, binary, limit)
		m, err := loadtest.MeasureMemory(binary, dir(fmt.Sprint("memory-", i)), alerts, targets, limit)
		if err != nil {
			return err
		}
		rep.Memory = append(rep.Memory, m)
	}
	if large != "" {
		var la, lt int
		if _, err := fmt.Sscanf(large, "%d:%d", &la, &lt); err != nil || la <= 0 || lt <= 0 {
			return fmt.Errorf("--memory.large %q: want alerts:targets, e.g. 1000000:100000", large)
		}
		fmt.Fprintf(os.Stderr, "memory, %d alerts on %d targets, %s, GOMEMLIMIT not set ...\n", la, lt, binary)
		m, err := loadtest.MeasureMemory(binary, dir("memory-large"), la, lt, "")
		if err != nil {
			return err
		}
		rep.Memory = append(rep.Memory, m)
	}
	rep.Table(os.Stdout)
	if out == "" {
		return nil
	}
	return rep.WriteDoc(out)
}
