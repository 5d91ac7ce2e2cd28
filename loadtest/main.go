// Command loadtest measures Herald at fleet scale with real processes, and
// is how every performance figure in docs/PERFORMANCE.md is made.
//
// It builds the herald binary, runs an embedded etcd and Kafka-protocol
// broker in its own process, the reference endpoint (`herald sink`) as a
// separate process, and real `herald worker` processes; it triggers each
// broadcast through Kafka and measures from the endpoint's side (distinct
// deliveries, duplicates, deliveries per second), from etcd (failover,
// writes per second), from the workers' /metrics (send latency) and from
// the kernel (peak RSS). Scenarios:
//
//	steady     N subscribers, W workers, for each W of --workers
//	batch      one worker with endpoint.batch_size 1 and --batch-size,
//	           against a plain sender of pre-rendered batches
//	baselines  the same broadcast sent by a plain concurrent HTTP sender of
//	           pre-rendered bodies, and by the do-it-yourself design: the
//	           audience expanded into a Kafka topic, sent by a kafka-go
//	           consumer group
//	kill9      SIGKILL a random worker holding work every --kill-every,
//	           restart it --restart-after later
//	sigstop    SIGSTOP a worker past its lease, then SIGCONT: the zombie
//	           must send nothing for the work it lost
//	scaleout   start with one worker, add one every --join-every
//	sigterm    rolling restart of every worker
//	slow       an endpoint with latency, 429s and 5xx
//	rss        worker peak RSS at two audience sizes (not run by default)
//	unbatched  --unbatched-rounds rounds of the plain sender and steady at
//	           every --workers size, back to back: each size's median
//	           ratio judged (target 0.9; not run by default)
//
// and, for running for months:
//
//	endpointdown  the endpoint answers 503 for --endpoint-down-for during a
//	              broadcast and refuses a fixed set of keys with 400
//	kafkadown     Kafka stopped for --kafka-down-for and restarted while
//	              failed deliveries are due as dead letters
//	concurrent    --concurrent-broadcasts triggered at once; open files and
//	              goroutines per worker against its --max-in-flight
//	soak          --soak-broadcasts small broadcasts back to back: etcd's
//	              size, worker memory, a fresh worker's start (not run by
//	              default: tens of minutes)
//
// and, for fleet scale (issue 13; none runs by default):
//
//	rollout    two rounds of surge-then-stop replacement of every worker
//	           with new ids mid-broadcast: open units, throughput
//	idle       --idle-workers idle workers for --idle-for: CPU, RSS and
//	           lease losses per member
//	retrykill  kill9 and sigstop against an endpoint that refuses one
//	           subscriber in --retry-one-in once with 503 + Retry-After
//	etcdout    the workers cut off etcd (through a TCP proxy) for
//	           --outage-for mid-broadcast
//
// and, for the range audience sources (none runs by default; they need
// PostgreSQL's server installed; --scenarios audiences runs all three):
//
//	sources    --sources-workers deliver --sources-subscribers from the
//	           synthetic source, a postgres table and a prepared audience
//	           in object storage (an in-process S3 server on loopback),
//	           --sources-rounds times interleaved: msgs/s of each range
//	           source, its median over the synthetic one's (target 0.9),
//	           exact delivery, records the fleet read
//	pgkill     kill9 with the audience in a postgres table
//	reads      records the whole fleet reads for one broadcast of
//	           --reads-subscribers from file, postgres and prepared (a
//	           directory), with each fleet size of --reads-workers; one
//	           subscriber in --reads-reachable-every is reachable, so it
//	           measures reading, not delivery (target: at most 1.1 reads per
//	           record for postgres and prepared; a file is read whole by
//	           every worker)
//
// The tables and prepared audiences hold the synthetic source's records
// and attributes, so every source renders the same messages; they are made
// once, before the first scenario that reads them starts its clock, in a
// throw-away PostgreSQL cluster (internal/devstack.StartPostgres) and the
// S3 server, both stopped at the end.
//
// For each it prints one JSON object per line, then a Markdown table, and
// writes results.json, results.md and one chart per scenario (SVG and PNG)
// of delivered messages per second with kills, stops and joins marked to
// --out; --replot DIR draws a directory's charts again from its
// results.json. --cpu-profile D starts the steady runs' workers with
// --pprof and writes a CPU profile of D of each, taken once a quarter of
// the audience is delivered, to <out>/<scenario>-<worker>.cpu.pprof. Everything listens on loopback only, every kill and load is
// bounded in count and time, and every process it starts is stopped
// before it exits (or killed with it, should it die). The exit status is 1
// if any check failed.
//
// It does not belong in `go test ./...`: a full run takes tens of minutes
// and both cores. It is a module of its own, so its charting libraries
// (gonum/plot and the fonts and PDF writer it brings) stay out of Herald's:
// `go -C loadtest run . -h` from the repository root.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	cfg.registerFlags(fs)
	verbose := fs.Bool("v", false, "log every event and progress line")
	replotDir := fs.String("replot", "", "draw the charts of `directory`/results.json again, and run nothing")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *replotDir != "" {
		if err := replot(*replotDir); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	results, err := Run(ctx, cfg, stdout, log)
	if err != nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		return 1
	}
	for _, r := range results {
		if !r.OK() {
			return 1
		}
	}
	return 0
}

// Run performs cfg's scenarios and reports them to stdout and cfg.Out.
func Run(ctx context.Context, cfg Config, stdout io.Writer, log *slog.Logger) ([]Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if cfg.Out == "" {
		dir, err := os.MkdirTemp("", "herald-loadtest-")
		if err != nil {
			return nil, fmt.Errorf("loadtest: %w", err)
		}
		cfg.Out = dir
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	jsonl, err := os.Create(filepath.Join(cfg.Out, "results.json"))
	if err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	defer jsonl.Close()
	startLoad := loadAverage()
	fmt.Fprintf(stdout, "# herald load test, results in %s (load average at start: %s)\n", cfg.Out, startLoad)

	h, err := newHarness(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	defer h.close()

	var results []Result
	emit := func(r Result) error {
		if err := drawCharts(cfg.Out, &r); err != nil {
			log.Warn("chart", "scenario", r.Scenario, "err", err)
		}
		line, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("loadtest: %w", err)
		}
		fmt.Fprintf(stdout, "%s\n", line)
		fmt.Fprintf(jsonl, "%s\n", line)
		results = append(results, r)
		return nil
	}

	// The baselines run at each steady fleet size with the same number of
	// requests in flight, so each ratio compares like with like.
	plain, diy := map[int]*Result{}, map[int]*Result{}
	if cfg.has(scBaseline) {
		for _, w := range cfg.Workers {
			pr, err := h.runPlain(ctx, w, w*cfg.MaxInFlight, cfg.Subscribers)
			if err != nil {
				return results, err
			}
			plain[w] = &pr
			if err := emit(pr); err != nil {
				return results, err
			}
			dr, err := h.runDIY(ctx, w, cfg.MaxInFlight)
			if err != nil {
				return results, err
			}
			diy[w] = &dr
			if err := emit(dr); err != nil {
				return results, err
			}
		}
	}
	// The batch scenario's baseline: the same requests in flight as one
	// worker's.
	var plainBatch, batchOne *Result
	if cfg.has(scBatch) {
		pr, err := h.runPlainBatched(ctx, cfg.MaxInFlight, cfg.BatchSize)
		if err != nil {
			return results, err
		}
		plainBatch = &pr
		if err := emit(pr); err != nil {
			return results, err
		}
	}
	if cfg.has(scUnbatched) {
		if err := h.runUnbatched(ctx, emit); err != nil {
			return results, err
		}
	}
	var rss []Result
	var sources sourcesJudge
	for i, sc := range plan(cfg) {
		if ctx.Err() != nil {
			return results, errStopped
		}
		r, err := h.runScenario(ctx, sc, i)
		if err != nil {
			return results, err
		}
		judge(&r, sc, cfg)
		if sc.kind == scSteady {
			r.RatioToPlain = ratioOf(r.MsgsPerS, plain[sc.workers])
			r.RatioToDIY = ratioOf(r.MsgsPerS, diy[sc.workers])
		}
		if sc.kind == scBatch {
			if sc.batchSize <= 1 {
				batchOne = &r
			} else {
				judgeBatch(&r, batchOne, plainBatch)
			}
		}
		if sc.kind == scSources {
			sources.add(&r, *sc.aud)
		}
		if sc.kind == scRSS {
			rss = append(rss, r)
			if len(rss) > 1 {
				compareRSS(&r, rss[0])
			}
		}
		if err := emit(r); err != nil {
			return results, err
		}
	}

	var table strings.Builder
	writeTable(&table, results)
	writeFigures(&table, results)
	fmt.Fprintf(stdout, "\n%s", table.String())
	// The load at the start says whether the machine was quiet; at the
	// end it is mostly the run's own.
	md := fmt.Sprintf("Load test finished %s; load average before it: %s.\n\n%s", time.Now().UTC().Format(time.RFC3339), startLoad, table.String())
	if err := os.WriteFile(filepath.Join(cfg.Out, "results.md"), []byte(md), 0o644); err != nil {
		return results, fmt.Errorf("loadtest: %w", err)
	}
	return results, nil
}

func ratioOf(v float64, base *Result) *float64 {
	if base == nil || base.MsgsPerS == 0 {
		return nil
	}
	r := v / base.MsgsPerS
	return &r
}

// compareRSS checks the memory target: worker peak RSS at the
// larger audience no more than 20% above the smaller one's.
func compareRSS(large *Result, small Result) {
	limit := small.WorkerPeakRSSMiB * 1.2
	large.check(fmt.Sprintf("peak RSS within 20%% of %d subscribers'", small.Subscribers),
		large.WorkerPeakRSSMiB <= limit && large.WorkerPeakRSSMiB > 0,
		"%.1f MiB vs %.1f MiB (x%.2f)", large.WorkerPeakRSSMiB, small.WorkerPeakRSSMiB, large.WorkerPeakRSSMiB/max(small.WorkerPeakRSSMiB, 1e-9))
}
