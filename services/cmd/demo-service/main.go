// Command demo-service runs one demo service (user-service, order-service, payment-service:
// the same program under different names) or, as `demo-service loadgen`, the load generator.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/alecthomas/kingpin/v2"
	"github.com/alecthomas/units"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"

	"github.com/selfheal/selfheal/internal/probe"
	"github.com/selfheal/selfheal/services/demo"
	"github.com/selfheal/selfheal/services/loadgen"
)

func main() {
	app := kingpin.New("demo-service", "A demo service whose failures are real, and its load generator.")
	app.UsageTemplate(kingpin.LongHelpTemplate)
	logCfg := &promslog.Config{}
	promslogflag.AddFlags(app, logCfg)

	serve := app.Command("serve", "Run a demo service (the default command).").Default()
	var cfg demo.Config
	var memLimit units.Base2Bytes
	serve.Flag("service.name", "Name of this service (user-service, order-service, payment-service).").
		Envar("SERVICE_NAME").Default("demo-service").StringVar(&cfg.Service)
	serve.Flag("web.listen-address", "Address to listen on.").
		Envar("LISTEN_ADDR").Default(":8080").StringVar(&cfg.ListenAddress)
	serve.Flag("dependencies", "Services called on each request: comma list of host:port, or name=host1:port|host2:port for several instances of one dependency.").
		Envar("DEPENDENCIES").Default("").StringVar(&cfg.Dependencies)
	serve.Flag("database.url", "PostgreSQL URL; orders are stored there when set.").
		Envar("DATABASE_URL").Default("").StringVar(&cfg.DatabaseURL)
	serve.Flag("faults", "Faults active from start, comma list of name[:value], e.g. errors:1.0,cpu:1,memory-leak-unflushable:8.").
		Envar("FAULTS").Default("").StringVar(&cfg.Faults)
	serve.Flag("memory.limit", "Memory limit reported when no cgroup limits the process.").
		Envar("MEMORY_LIMIT").Default("512MiB").BytesVar(&memLimit)
	serve.Flag("cpu.limit", "CPU cores reported (and burnt at most) when no cgroup limits the process.").
		Envar("CPU_LIMIT").Default(fmt.Sprint(runtime.NumCPU())).Float64Var(&cfg.CPULimit)
	serve.Flag("database.max-connections", "Size of the connection pool.").
		Envar("DATABASE_MAX_CONNECTIONS").Default("10").Int32Var(&cfg.DBMaxConns)
	serve.Flag("database.acquire-timeout", "How long a request waits for a pooled connection before it fails.").
		Envar("DATABASE_ACQUIRE_TIMEOUT").Default("1s").DurationVar(&cfg.DBAcquireTimeout)
	serve.Flag("dependency.timeout", "Timeout of one attempt at one endpoint of a dependency.").
		Envar("DEPENDENCY_TIMEOUT").Default("400ms").DurationVar(&cfg.DependencyTimeout)
	serve.Flag("dependency.breaker-open-timeout", "How long an open circuit breaker waits before letting a probe through.").
		Envar("DEPENDENCY_BREAKER_OPEN_TIMEOUT").Default("5s").DurationVar(&cfg.BreakerOpenTimeout)
	serve.Flag("cgroup.root", "Root under which /proc and /sys/fs/cgroup are read (for tests).").
		Hidden().Default("/").StringVar(&cfg.CgroupRoot)

	lg := app.Command("loadgen", "Send steady traffic to demo services.")
	var lcfg loadgen.Config
	lg.Flag("target", "URL to send GET requests to; repeat for several (LOADGEN_TARGETS: comma list).").
		Envar("LOADGEN_TARGETS").Default("http://user-service:8080/").StringsVar(&lcfg.Targets)
	lg.Flag("rate", "Requests per second, per target.").
		Envar("LOADGEN_RATE").Default("10").Float64Var(&lcfg.Rate)
	lg.Flag("concurrency", "Requests in flight per target at most; ticks beyond it are skipped and counted.").
		Envar("LOADGEN_CONCURRENCY").Default("20").IntVar(&lcfg.Concurrency)
	lg.Flag("timeout", "Timeout of one request.").
		Envar("LOADGEN_TIMEOUT").Default("5s").DurationVar(&lcfg.Timeout)
	lg.Flag("web.listen-address", "Address to serve the load generator's /metrics on.").
		Envar("LOADGEN_LISTEN_ADDR").Default(":8089").StringVar(&lcfg.ListenAddress)

	hc := app.Command("healthcheck", "Exit 0 when a URL answers 2xx (the container healthcheck; the image has no curl).")
	hcURL := hc.Flag("url", "URL to check.").Default("http://127.0.0.1:8080/healthz").String()
	hcTimeout := hc.Flag("timeout", "How long to wait for the answer.").Default("2s").Duration()

	app.Version(version.Print("demo-service"))
	app.HelpFlag.Short('h')
	cmd := kingpin.MustParse(app.Parse(os.Args[1:]))
	logger := promslog.New(logCfg)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var err error
	switch cmd {
	case serve.FullCommand():
		cfg.MemoryLimit = int64(memLimit)
		err = demo.Run(ctx, cfg, logger.With("service", cfg.Service), reg, reg)
	case hc.FullCommand():
		if err := probe.Check(ctx, *hcURL, *hcTimeout); err != nil {
			fmt.Fprintln(os.Stderr, "unhealthy:", err)
			os.Exit(1)
		}
		return
	case lg.FullCommand():
		lcfg.Targets = loadgen.SplitTargets(lcfg.Targets)
		err = loadgen.Run(ctx, lcfg, logger, reg, reg)
	}
	if err != nil {
		logger.Error("exiting", "err", err)
		os.Exit(1)
	}
}
