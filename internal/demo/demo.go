// Package demo is `herald demo`: the whole pipeline on one machine. It
// starts an embedded etcd and Kafka-protocol broker, a reference endpoint
// and real `herald worker` processes, triggers a broadcast of synthetic
// subscribers through Kafka, shows its progress, can kill a worker with
// SIGKILL to show the failover, and checks at the end, from the endpoint's
// side, that nothing was lost.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/herald-dev/herald/console"
	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/internal/devstack"
	"github.com/herald-dev/herald/internal/fleet"
	"github.com/herald-dev/herald/internal/statusview"
	"github.com/herald-dev/herald/sharding"
	"github.com/herald-dev/herald/spec"
	"github.com/herald-dev/herald/trigger"
	"github.com/herald-dev/herald/worker/audience"
)

// Config is what `herald demo` takes.
type Config struct {
	Workers     int           // 0: 3
	Subscribers int64         // 0: 200,000
	KillAfter   time.Duration // 0: no kill
	LeaseTTL    time.Duration // 0: 5s
	MaxInFlight int           // per worker; 0: 64
	// EndpointLatency slows every answer of the endpoint, to watch a longer
	// broadcast (and a failover) on a small audience.
	EndpointLatency time.Duration
	Seed            int64
	// Channel is where the broadcast goes: "webhook" ("" too: the
	// reference sink), or "apns", "fcm" or "webpush": a fake of that
	// provider, checking what the real one checks, and an audience of
	// Subscribers devices written to a file.
	Channel string
	Timeout time.Duration // 0: 10 minutes
	// Binary is the herald executable the workers run; "" means this one.
	Binary string
	// Progress receives the live progress and the summary; nil discards it.
	Progress io.Writer
	// Live redraws one progress line in place (a terminal); otherwise a
	// line is printed every few seconds.
	Live bool
	Log  *slog.Logger
	// ConsoleListen is where the web console listens while the demo runs
	// (its URL is printed); "" runs none.
	ConsoleListen string
	// ConsoleToken enables the console's actions; "" leaves it read-only.
	ConsoleToken string
}

// Summary is the last line of `herald demo --json`.
type Summary struct {
	BroadcastID string   `json:"broadcast_id"`
	Subscribers int64    `json:"subscribers"`
	Eligible    int64    `json:"eligible"`
	Delivered   int64    `json:"delivered"`
	Duplicates  int64    `json:"duplicates"`
	Lost        int64    `json:"lost"`
	Failed      int64    `json:"failed"`
	ElapsedS    float64  `json:"elapsed_s"`
	MsgsPerS    float64  `json:"msgs_per_s"`
	FailoverS   *float64 `json:"failover_s"`
	// Beyond the contract: what the run looked like.
	State      coordinator.State    `json:"state"`
	Workers    int                  `json:"workers"`
	KilledID   string               `json:"killed_worker,omitempty"`
	LogDir     string               `json:"log_dir,omitempty"`
	HeraldSeen coordinator.Counters `json:"herald_counters"`
}

// OK reports whether the broadcast finished with nothing lost.
func (s Summary) OK() bool { return s.State == coordinator.StateDone && s.Lost == 0 }

func (c *Config) defaults() {
	if c.Workers == 0 {
		c.Workers = 3
	}
	if c.Subscribers == 0 {
		c.Subscribers = 200_000
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = 5 * time.Second
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 64
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Minute
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// Run runs the demo to the broadcast's end and tears everything down.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	cfg.defaults()
	if cfg.Workers < 1 || cfg.Subscribers < 1 {
		return Summary{}, errors.New("demo: need at least one worker and one subscriber")
	}
	if cfg.KillAfter > 0 && cfg.Workers < 2 {
		return Summary{}, errors.New("demo: --kill-after needs at least two workers")
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	out := cfg.Progress

	stack, err := devstack.Start(ctx, devstack.Config{})
	if err != nil {
		return Summary{}, err
	}
	defer stack.Close()

	logDir, err := os.MkdirTemp("", "herald-demo-")
	if err != nil {
		return Summary{}, fmt.Errorf("demo: log dir: %w", err)
	}
	tg, err := newTarget(ctx, cfg, logDir)
	if err != nil {
		return Summary{}, err
	}
	defer tg.close()
	endpoint := tg.url
	fl, err := fleet.New(fleet.Config{
		Binary: cfg.Binary, Etcd: stack.EtcdEndpoint(), Kafka: stack.KafkaBrokers()[0], LogDir: logDir,
		Args: append([]string{"--lease-ttl", cfg.LeaseTTL.String(),
			// Summaries of finished broadcasts go to the stack's topic.
			"--report-topic", devstack.ReportsTopic}, tg.workerArgs...),
	})
	if err != nil {
		return Summary{}, err
	}
	defer fl.Close(15 * time.Second)
	fmt.Fprintf(out, "etcd %s  kafka %s  endpoint %s\nstarting %d workers (logs in %s)\n",
		stack.EtcdEndpoint(), stack.KafkaBrokers()[0], endpoint, cfg.Workers, logDir)
	if err := startWorkers(ctx, fl, cfg.Workers); err != nil {
		return Summary{}, err
	}

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{stack.EtcdEndpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return Summary{}, fmt.Errorf("demo: etcd client: %w", err)
	}
	defer cli.Close()
	reg := coordinator.NewRegistry(cli, coordinator.DefaultPrefix)
	if cfg.ConsoleListen != "" {
		stopConsole, err := startConsole(ctx, cfg, cli, stack.KafkaBrokers(), out)
		if err != nil {
			return Summary{}, err
		}
		defer stopConsole()
	}

	id := "demo-" + strconv.FormatInt(time.Now().Unix(), 10)
	raw := SpecJSON(id, cfg.Subscribers, cfg.Seed, endpoint, cfg.MaxInFlight)
	if tg.endpoint != nil {
		raw = channelSpecJSON(id, tg, cfg.MaxInFlight)
	}
	start := time.Now()
	if _, err := trigger.Trigger(ctx, stack.KafkaBrokers(), devstack.BroadcastsTopic, raw, spec.Limits{}); err != nil {
		return Summary{}, err
	}
	fmt.Fprintf(out, "triggered broadcast %s to %s subscribers through Kafka\n", id, statusview.Count(cfg.Subscribers))

	w := watcher{cfg: cfg, reg: reg, fleet: fl, id: id, out: out, start: start}
	st, err := w.run(ctx)
	if err != nil {
		return Summary{}, err
	}
	elapsed := time.Since(start)

	eligible := tg.eligible
	if eligible < 0 {
		if eligible, err = CountEligible(cfg.Subscribers, cfg.Seed); err != nil {
			return Summary{}, err
		}
	}
	delivered, duplicates := tg.received(id)
	sum := Summary{
		BroadcastID: id, Subscribers: cfg.Subscribers, Eligible: eligible,
		Delivered: delivered, Duplicates: duplicates, Failed: st.Counters.Failed,
		ElapsedS: elapsed.Seconds(), FailoverS: w.failover,
		State: st.State, Workers: cfg.Workers, KilledID: w.killed, LogDir: logDir, HeraldSeen: st.Counters,
	}
	sum.Lost = max(eligible-sum.Delivered-sum.Failed, 0)
	if elapsed > 0 {
		sum.MsgsPerS = float64(sum.Delivered) / elapsed.Seconds()
	}
	printSummary(out, sum, st)
	return sum, nil
}

func startWorkers(ctx context.Context, fl *fleet.Fleet, n int) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = fl.Start(ctx, fmt.Sprintf("worker-%d", i+1))
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// SpecJSON is the demo's broadcast, which the load tests send too:
// synthetic subscribers, only the reachable ones, greeted in their own
// language.
func SpecJSON(id string, subscribers, seed int64, endpoint string, maxInFlight int) []byte {
	spec := map[string]any{
		"id":             id,
		"audience":       map[string]any{"source": "synthetic", "count": subscribers, "seed": seed},
		"only_reachable": true,
		"template": map[string]any{
			"default_locale": "en",
			"locales": map[string]any{
				"en": map[string]string{"title": "Hi {{.name}}", "body": "Your code: {{.code}} ({{.plan}} plan)"},
				"zh": map[string]string{"title": "{{.name}}，你好", "body": "优惠码：{{.code}}"},
				"es": map[string]string{"title": "Hola {{.name}}", "body": "Tu código: {{.code}}"},
				"fr": map[string]string{"title": "Bonjour {{.name}}", "body": "Votre code : {{.code}}"},
			},
		},
		"endpoint": map[string]any{"url": endpoint, "max_in_flight": maxInFlight, "timeout_ms": 5000, "max_attempts": 6},
	}
	raw, _ := json.Marshal(spec) // maps of strings and numbers always marshal
	return raw
}

// CountEligible counts, without asking any worker, the subscribers of
// SpecJSON's broadcast that must be reached: the valid and reachable ones.
// "lost" is measured against this count, so it does not trust Herald's.
func CountEligible(subscribers, seed int64) (int64, error) {
	s, err := audience.Open(audience.Spec{Source: audience.SourceSynthetic, Count: subscribers, Seed: seed},
		sharding.Cursor{}, audience.Limits{})
	if err != nil {
		return 0, fmt.Errorf("demo: count eligible: %w", err)
	}
	defer s.Close()
	var n int64
	for s.Next() {
		if s.Record().Invalid == "" && s.Record().Reachable() {
			n++
		}
	}
	return n, s.Err()
}

func printSummary(w io.Writer, s Summary, st coordinator.Status) {
	fmt.Fprintf(w, "\nbroadcast %s: %s\n", s.BroadcastID, s.State)
	statusview.Workers(w, st)
	fmt.Fprintf(w, "subscribers %s, eligible %s (reachable)\n", statusview.Count(s.Subscribers), statusview.Count(s.Eligible))
	fmt.Fprintf(w, "delivered %s distinct at the endpoint, duplicates %s, failed %s, lost %s\n",
		statusview.Count(s.Delivered), statusview.Count(s.Duplicates), statusview.Count(s.Failed), statusview.Count(s.Lost))
	fmt.Fprintf(w, "%.1f s, %s messages/s", s.ElapsedS, statusview.Count(int64(s.MsgsPerS)))
	if s.FailoverS != nil {
		fmt.Fprintf(w, ", %s killed, its work claimed by the survivors %.2f s later", s.KilledID, *s.FailoverS)
	}
	fmt.Fprintln(w)
}

// startConsole serves the web console over the demo's etcd and Kafka until
// the returned stop is called, and prints its URL.
func startConsole(ctx context.Context, cfg Config, cli *clientv3.Client, brokers []string, out io.Writer) (stop func(), err error) {
	produce := console.ProducerFunc(func(ctx context.Context, raw []byte) (spec.Spec, error) {
		return trigger.Trigger(ctx, brokers, devstack.BroadcastsTopic, raw, spec.Limits{})
	})
	con, err := console.New(console.Config{Token: cfg.ConsoleToken}, cli, produce, cfg.Log.With("component", "console"))
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.ConsoleListen)
	if err != nil {
		return nil, fmt.Errorf("demo: console listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := con.Serve(ctx, ln); err != nil {
			cfg.Log.Warn("demo: console", "err", err)
		}
	}()
	fmt.Fprintf(out, "console http://%s/", ln.Addr())
	if cfg.ConsoleToken != "" {
		fmt.Fprintf(out, "  (sign in with %s to pause, resume or cancel)", cfg.ConsoleToken)
	}
	fmt.Fprintln(out)
	return func() { cancel(); <-done }, nil
}
