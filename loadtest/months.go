package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"
)

// The scenarios of "Running for months": many broadcasts one after the
// other (soak), the endpoint down (endpointdown), Kafka down (kafkadown)
// and many broadcasts at once (concurrent). This file holds their
// configuration and their place in the plan; each has a file of its own.

func (c Config) monthsDefaults() Config {
	if c.SoakBroadcasts == 0 {
		c.SoakBroadcasts = 2000
	}
	if c.SoakSubscribers == 0 {
		c.SoakSubscribers = 200
	}
	if c.SoakRetention == 0 {
		c.SoakRetention = 2 * time.Minute
	}
	if c.OutageSubscribers == 0 {
		c.OutageSubscribers = 300_000
	}
	if c.EndpointDownAfter == 0 {
		c.EndpointDownAfter = 3 * time.Second
	}
	if c.EndpointDownFor == 0 {
		c.EndpointDownFor = 30 * time.Second
	}
	if c.EndpointRefuse == 0 {
		c.EndpointRefuse = 0.002
	}
	if c.KafkaDownAfter == 0 {
		c.KafkaDownAfter = 3 * time.Second
	}
	if c.KafkaDownFor == 0 {
		c.KafkaDownFor = 20 * time.Second
	}
	if c.KafkaRefuse == 0 {
		c.KafkaRefuse = 0.05
	}
	if c.ConcurrentBroadcasts == 0 {
		c.ConcurrentBroadcasts = 100
	}
	if c.ConcurrentSubscribers == 0 {
		c.ConcurrentSubscribers = 5000
	}
	if c.ConcurrentWorkerCap == 0 {
		c.ConcurrentWorkerCap = 256
	}
	return c
}

func (c Config) validateMonths() error {
	for _, n := range []int64{c.SoakSubscribers, c.OutageSubscribers, c.ConcurrentSubscribers} {
		if n < 1 || n > 100_000_000 {
			return fmt.Errorf("%w: %d subscribers: want 1 to 100,000,000", ErrConfig, n)
		}
	}
	switch {
	case c.SoakRetention < time.Second:
		return fmt.Errorf("%w: soak retention %v: want at least 1s", ErrConfig, c.SoakRetention)
	case c.SoakBroadcasts < 4 || c.SoakBroadcasts > 100_000:
		return fmt.Errorf("%w: %d soak broadcasts: want 4 to 100,000", ErrConfig, c.SoakBroadcasts)
	case c.ConcurrentBroadcasts < 1 || c.ConcurrentBroadcasts > 1000:
		return fmt.Errorf("%w: %d concurrent broadcasts: want 1 to 1000", ErrConfig, c.ConcurrentBroadcasts)
	case c.ConcurrentWorkerCap < 1 || c.ConcurrentWorkerCap > 100_000:
		return fmt.Errorf("%w: worker cap %d", ErrConfig, c.ConcurrentWorkerCap)
	case c.EndpointDownAfter < 0 || c.EndpointDownFor < 0 || c.KafkaDownAfter < 0 || c.KafkaDownFor < 0:
		return fmt.Errorf("%w: negative outage time", ErrConfig)
	case !(c.EndpointRefuse > 0 && c.EndpointRefuse <= 0.5) || !(c.KafkaRefuse > 0 && c.KafkaRefuse <= 0.5):
		return fmt.Errorf("%w: refused fractions %v and %v: want above 0, at most 0.5", ErrConfig, c.EndpointRefuse, c.KafkaRefuse)
	}
	return nil
}

func (c *Config) registerMonthsFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.SoakBroadcasts, "soak-broadcasts", 2000, "broadcasts soak sends back to back")
	fs.Int64Var(&c.SoakSubscribers, "soak-subscribers", 200, "subscribers of each of soak's broadcasts")
	fs.DurationVar(&c.SoakRetention, "soak-retention", 2*time.Minute, "the workers' --retention in soak: how long finished broadcasts' summaries stay in etcd")
	fs.Int64Var(&c.OutageSubscribers, "outage-subscribers", 300_000, "subscribers of endpointdown and kafkadown")
	fs.DurationVar(&c.EndpointDownAfter, "endpoint-down-after", 3*time.Second, "endpointdown's endpoint goes down this `long` after its first delivery request")
	fs.DurationVar(&c.EndpointDownFor, "endpoint-down-for", 30*time.Second, "and answers 503 for this `long`")
	fs.Float64Var(&c.EndpointRefuse, "endpoint-refuse", 0.002, "`fraction` of keys endpointdown's endpoint refuses with 400 throughout")
	fs.DurationVar(&c.KafkaDownAfter, "kafka-down-after", 3*time.Second, "kafkadown stops Kafka this `long` after its broadcast is running")
	fs.DurationVar(&c.KafkaDownFor, "kafka-down-for", 20*time.Second, "for this `long`, then starts it again on the same address")
	fs.Float64Var(&c.KafkaRefuse, "kafka-refuse", 0.05, "`fraction` of keys kafkadown's endpoint refuses with 400, each a dead letter")
	fs.IntVar(&c.ConcurrentBroadcasts, "concurrent-broadcasts", 100, "broadcasts concurrent triggers at once")
	fs.Int64Var(&c.ConcurrentSubscribers, "concurrent-subscribers", 5000, "subscribers of each of concurrent's broadcasts")
	fs.IntVar(&c.ConcurrentWorkerCap, "concurrent-worker-cap", 256, "the workers' --max-in-flight in concurrent, which bounds what it checks")
}

// planMonths lists the scenarios of this file cfg selects, in the order
// they run: the short ones first, soak last.
func planMonths(cfg Config) []scenario {
	var out []scenario
	w := cfg.ChaosWorkers
	if cfg.has(scEndpointDown) {
		out = append(out, scenario{name: scEndpointDown, kind: scEndpointDown, workers: w, subscribers: cfg.OutageSubscribers,
			sinkFlags: endpointDownSink(cfg), after: endpointDownAfter})
	}
	if cfg.has(scKafkaDown) {
		out = append(out, scenario{name: scKafkaDown, kind: scKafkaDown, workers: w, subscribers: cfg.OutageSubscribers,
			sinkFlags: refusingSink(cfg.KafkaRefuse), restartableKafka: true, chaos: chaosKafkaDown, after: kafkaDownAfter})
	}
	if cfg.has(scConcurrent) {
		out = append(out, scenario{name: scConcurrent, kind: scConcurrent, workers: w,
			subscribers: cfg.ConcurrentSubscribers * int64(cfg.ConcurrentBroadcasts), own: runConcurrent})
	}
	if cfg.has(scSoak) {
		out = append(out, scenario{name: scSoak, kind: scSoak, workers: w,
			subscribers: cfg.SoakSubscribers * int64(cfg.SoakBroadcasts), own: runSoak})
	}
	return out
}

// writeFigures writes, after the table, the figures of the scenarios
// whose results the table has no columns for.
func writeFigures(w io.Writer, rs []Result) {
	first := true
	for _, r := range rs {
		var lines []string
		switch {
		case r.Soak != nil:
			lines = r.Soak.lines()
		case r.Outage != nil:
			lines = r.Outage.lines()
		case r.Concurrent != nil:
			lines = r.Concurrent.lines()
		case r.Source != "":
			lines = r.audienceLines()
		default:
			continue
		}
		if first {
			fmt.Fprintln(w)
			first = false
		}
		fmt.Fprintf(w, "%s:\n", r.Scenario)
		for _, l := range lines {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
}

// errNotAll reports a multi-broadcast scenario that could not trigger or
// follow all its broadcasts.
var errNotAll = errors.New("loadtest: not every broadcast could be followed")
