package main

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

var (
	// ErrConfig reports an invalid Config.
	ErrConfig = errors.New("loadtest: invalid config")
	// errStopped is returned when the run was interrupted.
	errStopped = errors.New("loadtest: interrupted")
)

// Scenario names, in the order a full run performs them.
const (
	scSteady   = "steady"
	scBaseline = "baselines"
	scKill9    = "kill9"
	scSigstop  = "sigstop"
	scScaleout = "scaleout"
	scSigterm  = "sigterm"
	scSlow     = "slow"
	scRSS      = "rss"

	// Running for months (soak.go, outage.go, concurrent.go).
	scSoak         = "soak"
	scEndpointDown = "endpointdown"
	scKafkaDown    = "kafkadown"
	scConcurrent   = "concurrent"
)

var allScenarios = append([]string{scSteady, scBaseline, scBatch, scKill9, scSigstop, scScaleout, scSigterm, scSlow, scRSS,
	scEndpointDown, scKafkaDown, scConcurrent, scSoak, scUnbatched}, append(fleetScenarios, audienceScenarios...)...)

// longScenarios are left out of a run that names none: rss takes minutes
// at 10 million subscribers, soak tens of minutes, unbatched repeats the
// steady runs and baselines in rounds (about 8 minutes), the fleet-scale ones
// (rollout, idle, retrykill, etcdout) measure targets of their own, and
// the audience ones (sources, pgkill, reads; the set "audiences") need
// PostgreSQL installed.
var longScenarios = append([]string{scRSS, scSoak, scUnbatched}, append(fleetScenarios, audienceScenarios...)...)

// Config is one load-test run. The zero value of every field means the
// documented default.
type Config struct {
	// Scenarios to run, among steady, baselines, kill9, sigstop, scaleout,
	// sigterm, slow, rss, endpointdown, kafkadown, concurrent, soak, unbatched,
	// rollout, idle, retrykill, etcdout, sources, pgkill and reads; the
	// name audiences stands for the last three. Empty means all but the
	// long ones: rss, soak, unbatched, the fleet-scale and the audience ones.
	Scenarios []string
	// Subscribers in steady runs and the baselines. 0 means 2,000,000.
	Subscribers int64
	// Workers lists the fleet sizes of the steady runs. Empty means 1, 2, 4.
	Workers []int
	// ChaosSubscribers and ChaosWorkers size kill9, sigstop, scaleout and
	// sigterm (ChaosWorkers also slow, soak, endpointdown, kafkadown and
	// concurrent). 0 means 1,500,000 and 3: long
	// enough at this machine's rate for every kill, stop, join and restart
	// to land before the end.
	ChaosSubscribers int64
	ChaosWorkers     int
	// MaxInFlight is the broadcast's max_in_flight, per worker. 0 means 64.
	MaxInFlight int
	// LeaseTTL is every worker's lease TTL. 0 means 5 s.
	LeaseTTL time.Duration
	// Seed seeds the synthetic audience and the choice of victims.
	Seed int64

	// Kills bounds kill9's SIGKILLs (0: 3), one every KillEvery (0: 8 s,
	// the first after one interval), each victim restarted RestartAfter
	// later (0: lease TTL + 3 s, past the failover it causes). 8 s, not
	// 10: a 1.5 million broadcast now ends in about 30 s, before a third
	// kill at 30 s.
	Kills        int
	KillEvery    time.Duration
	RestartAfter time.Duration
	// StopFor is how long sigstop keeps its victim frozen. 0 means lease
	// TTL + 4 s: past the lease and past the failover target.
	StopFor time.Duration
	// StopAfter is when sigstop freezes its victim. 0 means 6 s.
	StopAfter time.Duration
	// JoinEvery is the interval between scaleout's joins, starting with
	// one worker and growing to ChaosWorkers. 0 means 8 s.
	JoinEvery time.Duration
	// RollEvery is the pause between two workers of sigterm's rolling
	// restart, the first after one pause. 0 means 6 s.
	RollEvery time.Duration
	// SlowSubscribers sizes the slow scenario, whose rate the endpoint's
	// Retry-After waits bound. 0 means 200,000.
	SlowSubscribers int64
	// BatchSubscribers sizes the batch scenario and BatchSize is its
	// batched run's endpoint.batch_size. 0 means 1,000,000 and 100: at
	// 300,000 msgs/s, the third of a second from trigger to first delivery
	// would be a fifth of a 500,000 run, against a twentieth of the
	// unbatched one.
	BatchSubscribers int64
	BatchSize        int
	// Slow is the endpoint of the slow scenario.
	SlowLatency, SlowJitter time.Duration // 0: 20 ms and 10 ms
	Slow429, Slow5xx        float64       // 0: 0.05 each
	// RSSSubscribers are the audience sizes whose worker peak RSS rss
	// compares, the last against the first. Empty means 1,000,000 and
	// 10,000,000. RSSWorkers is the fleet size there (0: 2).
	RSSSubscribers []int64
	RSSWorkers     int
	// Fleet sizes rollout, idle, retrykill and etcdout.
	Fleet FleetConfig
	// Audiences sizes sources, pgkill and reads.
	Audiences AudienceConfig
	// Unbatched sizes the unbatched scenario (unbatched.go).
	Unbatched UnbatchedConfig

	// CPUProfile, when set, starts the steady runs' workers with --pprof
	// and takes a CPU profile of that length from each, once a quarter of
	// the audience is delivered, into <Out>/<scenario>-<worker>.cpu.pprof.
	// 0 takes none.
	CPUProfile time.Duration

	// SoakBroadcasts broadcasts of SoakSubscribers each are sent back to
	// back by soak. 0 means 2,000 of 200.
	SoakBroadcasts  int
	SoakSubscribers int64
	// SoakRetention is the workers' --retention in soak (0: 2 minutes):
	// shorter than the soak, so the summaries are swept as they would be
	// over months, and what etcd holds can stay flat.
	SoakRetention time.Duration
	// OutageSubscribers sizes endpointdown and kafkadown. 0 means 300,000.
	OutageSubscribers int64
	// EndpointDownAfter after its first delivery request, endpointdown's
	// endpoint answers 503 for EndpointDownFor; all along it refuses
	// EndpointRefuse of the keys with 400. 0 means 3 s, 30 s and 0.002
	// (1 in 500).
	EndpointDownAfter, EndpointDownFor time.Duration
	EndpointRefuse                     float64
	// KafkaDownAfter after its broadcast is running, kafkadown stops Kafka
	// for KafkaDownFor; its endpoint refuses KafkaRefuse of the keys with
	// 400, so dead letters are due throughout. 0 means 3 s, 20 s and 0.05.
	KafkaDownAfter, KafkaDownFor time.Duration
	KafkaRefuse                  float64
	// ConcurrentBroadcasts of ConcurrentSubscribers each are triggered at
	// once by concurrent, on workers whose --max-in-flight is
	// ConcurrentWorkerCap. 0 means 100, 5,000 and 256.
	ConcurrentBroadcasts  int
	ConcurrentSubscribers int64
	ConcurrentWorkerCap   int

	// Timeout bounds each scenario. 0 means 20 minutes.
	Timeout time.Duration
	// Binary is a prebuilt herald; "" builds ./cmd/herald into a
	// temporary directory.
	Binary string
	// Out receives results.json, results.md, the charts and the workers'
	// logs. "" means a new temporary directory.
	Out string
}

// withDefaults fills the zero fields.
func (c Config) withDefaults() Config {
	if len(c.Scenarios) == 0 {
		c.Scenarios = slices.DeleteFunc(slices.Clone(allScenarios), func(s string) bool { return slices.Contains(longScenarios, s) })
	}
	c.Scenarios = expandSets(c.Scenarios)
	if c.Subscribers == 0 {
		c.Subscribers = 2_000_000
	}
	if len(c.Workers) == 0 {
		c.Workers = []int{1, 2, 4}
	}
	if c.ChaosSubscribers == 0 {
		c.ChaosSubscribers = 1_500_000
	}
	if c.ChaosWorkers == 0 {
		c.ChaosWorkers = 3
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 64
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = 5 * time.Second
	}
	if c.Kills == 0 {
		c.Kills = 3
	}
	if c.KillEvery == 0 {
		c.KillEvery = 8 * time.Second
	}
	if c.RestartAfter == 0 {
		c.RestartAfter = c.LeaseTTL + 3*time.Second
	}
	if c.StopFor == 0 {
		c.StopFor = c.LeaseTTL + 4*time.Second
	}
	if c.StopAfter == 0 {
		c.StopAfter = 6 * time.Second
	}
	if c.JoinEvery == 0 {
		c.JoinEvery = 8 * time.Second
	}
	if c.RollEvery == 0 {
		c.RollEvery = 6 * time.Second
	}
	if c.SlowSubscribers == 0 {
		c.SlowSubscribers = 200_000
	}
	if c.BatchSubscribers == 0 {
		c.BatchSubscribers = 1_000_000
	}
	if c.BatchSize == 0 {
		c.BatchSize = 100
	}
	if c.SlowLatency == 0 {
		c.SlowLatency = 20 * time.Millisecond
	}
	if c.SlowJitter == 0 {
		c.SlowJitter = 10 * time.Millisecond
	}
	if c.Slow429 == 0 {
		c.Slow429 = 0.05
	}
	if c.Slow5xx == 0 {
		c.Slow5xx = 0.05
	}
	if len(c.RSSSubscribers) == 0 {
		c.RSSSubscribers = []int64{1_000_000, 10_000_000}
	}
	if c.RSSWorkers == 0 {
		c.RSSWorkers = 2
	}
	if c.Timeout == 0 {
		c.Timeout = 20 * time.Minute
	}
	c.Fleet = c.Fleet.withDefaults(c.LeaseTTL)
	c.Audiences = c.Audiences.withDefaults(c.ChaosSubscribers)
	c.Unbatched = c.Unbatched.withDefaults()
	return c.monthsDefaults()
}

// Validate reports the first invalid field of c with its defaults filled.
func (c Config) Validate() error {
	c = c.withDefaults()
	for _, s := range c.Scenarios {
		if !slices.Contains(allScenarios, s) {
			return fmt.Errorf("%w: unknown scenario %q (known: %s)", ErrConfig, s, strings.Join(allScenarios, ", "))
		}
	}
	for _, w := range append(slices.Clone(c.Workers), c.ChaosWorkers, c.RSSWorkers) {
		if w < 1 || w > 16 {
			return fmt.Errorf("%w: %d workers: want 1 to 16 on one machine", ErrConfig, w)
		}
	}
	if c.ChaosWorkers < 2 {
		return fmt.Errorf("%w: chaos scenarios need at least 2 workers", ErrConfig)
	}
	for _, n := range append([]int64{c.Subscribers, c.ChaosSubscribers, c.SlowSubscribers, c.BatchSubscribers}, c.RSSSubscribers...) {
		if n < 1 || n > 100_000_000 {
			return fmt.Errorf("%w: %d subscribers: want 1 to 100,000,000", ErrConfig, n)
		}
	}
	switch {
	case c.BatchSize < 2 || c.BatchSize > 1000:
		return fmt.Errorf("%w: batch size %d: want 2 to 1000", ErrConfig, c.BatchSize)
	case c.MaxInFlight < 1 || c.MaxInFlight > 10_000:
		return fmt.Errorf("%w: max in flight %d", ErrConfig, c.MaxInFlight)
	case c.Kills < 0 || c.Kills > 20:
		return fmt.Errorf("%w: %d kills: want at most 20", ErrConfig, c.Kills)
	case c.LeaseTTL < 2*time.Second:
		return fmt.Errorf("%w: lease TTL %v below the workers' minimum of 2s", ErrConfig, c.LeaseTTL)
	case c.KillEvery < 0 || c.RestartAfter < 0 || c.StopFor < 0 || c.StopAfter < 0 || c.JoinEvery < 0 || c.RollEvery < 0:
		return fmt.Errorf("%w: negative interval", ErrConfig)
	case c.StopFor <= c.LeaseTTL:
		return fmt.Errorf("%w: stop for %v: must pass the lease TTL %v, or the victim is never a zombie", ErrConfig, c.StopFor, c.LeaseTTL)
	case c.Slow429 < 0 || c.Slow5xx < 0 || c.Slow429+c.Slow5xx > 0.5:
		return fmt.Errorf("%w: slow endpoint failure rates %v and %v", ErrConfig, c.Slow429, c.Slow5xx)
	case len(c.RSSSubscribers) < 2:
		return fmt.Errorf("%w: rss needs two audience sizes", ErrConfig)
	case c.CPUProfile < 0 || c.CPUProfile > 10*time.Minute:
		return fmt.Errorf("%w: cpu profile %v: want 0 to 10m", ErrConfig, c.CPUProfile)
	case c.Timeout <= 0 || c.Timeout > 2*time.Hour:
		return fmt.Errorf("%w: timeout %v: want up to 2h", ErrConfig, c.Timeout)
	}
	if err := c.validateMonths(); err != nil {
		return err
	}
	if err := c.Unbatched.validate(); err != nil {
		return err
	}
	if err := c.Audiences.validate(); err != nil {
		return err
	}
	return c.Fleet.validate()
}

// has reports whether scenario s is selected.
func (c Config) has(s string) bool { return slices.Contains(c.Scenarios, s) }

// registerFlags declares c's flags on fs.
func (c *Config) registerFlags(fs *flag.FlagSet) {
	fs.Func("scenarios", "comma-separated `list` among "+strings.Join(allScenarios, ",")+", or the set "+setAudiences+" ("+strings.Join(audienceScenarios, ",")+") (default all but "+strings.Join(longScenarios, ",")+")", func(v string) error {
		c.Scenarios = splitList(v)
		return nil
	})
	fs.Int64Var(&c.Subscribers, "subscribers", 2_000_000, "subscribers of the steady runs and the baselines")
	fs.Func("workers", "comma-separated fleet `sizes` of the steady runs (default 1,2,4)", func(v string) error {
		ns, err := parseInts(v)
		c.Workers = ns
		return err
	})
	fs.Int64Var(&c.ChaosSubscribers, "chaos-subscribers", 1_500_000, "subscribers of kill9, sigstop, scaleout and sigterm")
	fs.IntVar(&c.ChaosWorkers, "chaos-workers", 3, "workers of the chaos and slow scenarios")
	fs.IntVar(&c.MaxInFlight, "max-in-flight", 64, "the broadcast's max_in_flight per worker")
	fs.DurationVar(&c.LeaseTTL, "lease-ttl", 5*time.Second, "workers' lease `TTL`")
	fs.Int64Var(&c.Seed, "seed", 1, "seed of the synthetic audience and of the victims' choice")
	fs.IntVar(&c.Kills, "kills", 3, "SIGKILLs in kill9")
	fs.DurationVar(&c.KillEvery, "kill-every", 8*time.Second, "`interval` between kill9's kills")
	fs.DurationVar(&c.RestartAfter, "restart-after", 0, "restart a killed worker after this `delay` (default lease TTL + 3s)")
	fs.DurationVar(&c.StopAfter, "stop-after", 6*time.Second, "SIGSTOP sigstop's victim at this `time`")
	fs.DurationVar(&c.StopFor, "stop-for", 0, "keep sigstop's victim frozen this `long` (default lease TTL + 4s)")
	fs.DurationVar(&c.JoinEvery, "join-every", 8*time.Second, "`interval` between scaleout's joins")
	fs.DurationVar(&c.RollEvery, "roll-every", 6*time.Second, "`pause` between sigterm's restarts")
	fs.Int64Var(&c.SlowSubscribers, "slow-subscribers", 200_000, "subscribers of the slow scenario")
	fs.Int64Var(&c.BatchSubscribers, "batch-subscribers", 1_000_000, "subscribers of the batch scenario")
	fs.IntVar(&c.BatchSize, "batch-size", 100, "endpoint.batch_size of the batch scenario's batched run (2 to 1000)")
	fs.DurationVar(&c.SlowLatency, "slow-latency", 20*time.Millisecond, "latency of the slow endpoint")
	fs.DurationVar(&c.SlowJitter, "slow-jitter", 10*time.Millisecond, "jitter of the slow endpoint")
	fs.Float64Var(&c.Slow429, "slow-429", 0.05, "`fraction` of the slow endpoint's answers that are 429")
	fs.Float64Var(&c.Slow5xx, "slow-5xx", 0.05, "`fraction` of the slow endpoint's answers that are 500 or 503")
	fs.Func("rss-subscribers", "comma-separated audience `sizes` rss compares (default 1000000,10000000)", func(v string) error {
		ns, err := parseInts(v)
		c.RSSSubscribers = nil
		for _, n := range ns {
			c.RSSSubscribers = append(c.RSSSubscribers, int64(n))
		}
		return err
	})
	fs.IntVar(&c.RSSWorkers, "rss-workers", 2, "workers of the rss runs")
	fs.DurationVar(&c.CPUProfile, "cpu-profile", 0, "take a CPU profile this `long` of every steady run's workers, a quarter into the broadcast, into <out>/<scenario>-<worker>.cpu.pprof (default none)")
	c.registerMonthsFlags(fs)
	fs.DurationVar(&c.Timeout, "timeout", 20*time.Minute, "give up a scenario after this `long`")
	c.Fleet.registerFlags(fs)
	c.Audiences.registerFlags(fs)
	c.Unbatched.registerFlags(fs)
	fs.StringVar(&c.Binary, "binary", "", "prebuilt herald `binary` (default: build ./cmd/herald)")
	fs.StringVar(&c.Out, "out", "", "`directory` for results, charts and logs (default: a new temporary one)")
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func parseInts(v string) ([]int, error) {
	var out []int
	for _, s := range splitList(v) {
		n, err := strconv.Atoi(strings.ReplaceAll(s, "_", ""))
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", s)
		}
		out = append(out, n)
	}
	return out, nil
}
