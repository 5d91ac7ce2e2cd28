package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"time"

	"github.com/herald-dev/herald/internal/faultproxy"
)

// scenario is one Herald run of the plan.
type scenario struct {
	name        string
	kind        string // one of the sc* names
	workers     int    // at the start
	final       int    // at the end, when more join (scaleout)
	subscribers int64
	slow        bool // against the slow endpoint
	batchSize   int  // the broadcast's endpoint.batch_size; 0 or 1 leaves it out
	attribute   bool // each worker through its own proxy (sigstop)
	chaos       func(context.Context, *run) error
	// cpuProfile, when set, is the length of the CPU profile taken of
	// every worker (cpuprofile.go); the workers run with --pprof.
	cpuProfile time.Duration

	// The fleet-scale scenarios' own parts (fleet*.go, rollout.go, ...).
	sinkFlags []string // an endpoint of its own, started with these flags
	etcdProxy bool     // workers reach etcd through a proxy the chaos can cut
	// standalone runs instead of a broadcast (idle), on a fresh stack.
	standalone func(context.Context, *harness, *stack, scenario) (Result, error)
	report     func(*run, *Result)   // adds figures once the broadcast ended
	judge      func(*Result, Config) // adds checks after the common ones
	// restartableKafka lets a scenario stop and restart Kafka (kafkadown).
	restartableKafka bool
	// own runs a scenario of many broadcasts in place of the one
	// broadcast run.execute follows; after adds a scenario's own figures
	// and checks to that one's result, with its fleet still running.
	own   func(context.Context, *run) (Result, error)
	after func(context.Context, *run, *Result) error
	// aud, when set, is the audience the broadcast reads in place of the
	// synthetic one of demo.SpecJSON (audiences.go).
	aud *audienceOf
}

func (s scenario) maxWorkers() int { return max(s.workers, s.final) }

// plan lists the Herald scenarios cfg selects, in the order they run.
func plan(cfg Config) []scenario {
	var out []scenario
	if cfg.has(scSteady) {
		for _, w := range cfg.Workers {
			out = append(out, scenario{name: fmt.Sprintf("steady-%d", w), kind: scSteady, workers: w, subscribers: cfg.Subscribers,
				cpuProfile: cfg.CPUProfile})
		}
	}
	out = append(out, batchPlan(cfg)...)
	chaos := func(kind string, f func(context.Context, *run) error) scenario {
		return scenario{name: kind, kind: kind, workers: cfg.ChaosWorkers, subscribers: cfg.ChaosSubscribers, chaos: f}
	}
	if cfg.has(scKill9) {
		out = append(out, chaos(scKill9, chaosKill9))
	}
	if cfg.has(scSigstop) {
		s := chaos(scSigstop, chaosSigstop)
		s.attribute = true
		out = append(out, s)
	}
	if cfg.has(scScaleout) {
		s := chaos(scScaleout, chaosScaleout)
		s.workers, s.final = 1, cfg.ChaosWorkers
		out = append(out, s)
	}
	if cfg.has(scSigterm) {
		out = append(out, chaos(scSigterm, chaosSigterm))
	}
	if cfg.has(scSlow) {
		s := chaos(scSlow, nil)
		s.slow, s.subscribers = true, cfg.SlowSubscribers
		out = append(out, s)
	}
	out = append(out, fleetPlan(cfg)...)
	out = append(out, audiencePlan(cfg)...)
	if cfg.has(scRSS) {
		for _, n := range cfg.RSSSubscribers {
			out = append(out, scenario{name: fmt.Sprintf("rss-%d", n), kind: scRSS, workers: cfg.RSSWorkers, subscribers: n})
		}
	}
	return append(out, planMonths(cfg)...)
}

// runScenario runs one Herald scenario on the harness.
func (h *harness) runScenario(ctx context.Context, sc scenario, n int) (Result, error) {
	r := &run{
		h:       h,
		sc:      sc,
		id:      fmt.Sprintf("lt-%s-%d", sc.name, time.Now().Unix()),
		sink:    h.sink,
		rng:     rand.New(rand.NewPCG(uint64(h.cfg.Seed), uint64(n))),
		client:  &http.Client{Timeout: 2 * time.Second},
		procs:   make(map[procKey]*procRecord),
		stopped: make(map[string]bool),
		running: make(chan struct{}),
	}
	defer r.client.CloseIdleConnections()
	st, err := startStack(ctx, sc.restartableKafka)
	if err != nil {
		return Result{}, err
	}
	defer st.close()
	r.st = st
	if sc.standalone != nil {
		return sc.standalone(ctx, h, st, sc)
	}
	if sc.etcdProxy {
		p, err := faultproxy.New(st.EtcdEndpoint())
		if err != nil {
			return Result{}, fmt.Errorf("loadtest: etcd proxy: %w", err)
		}
		defer p.Close()
		r.etcdProxy = p
	}
	if sc.sinkFlags != nil {
		s, err := startSink(ctx, h.binary, sc.sinkFlags, filepath.Join(h.out, "sink-"+sc.name+".log"))
		if err != nil {
			return Result{}, err
		}
		defer s.close()
		r.sink = s
	}
	if sc.slow {
		s, err := h.slowSink(ctx)
		if err != nil {
			return Result{}, err
		}
		defer s.close()
		r.sink = s
	}
	if sc.own != nil {
		return sc.own(ctx, r)
	}
	if sc.aud != nil {
		// Made before the clock starts, kept for the runs after.
		su, err := h.audienceSetup(ctx, sc)
		if err != nil {
			return Result{}, err
		}
		r.aud = &su
	}
	db0 := int64(-1)
	if sc.aud != nil && sc.aud.source == srcPostgres {
		// On this machine the database shares the cores with the fleet:
		// what it used says how much of the difference that is.
		db0 = h.audiences.dbTicks()
	}
	res, err := r.execute(ctx)
	if err == nil && sc.report != nil {
		sc.report(r, &res)
	}
	if db1 := h.audiences.dbTicks(); err == nil && db0 >= 0 && db1 >= db0 {
		s := float64(db1-db0) / clockTicks
		res.DatabaseCPUS = &s
	}
	return res, err
}
