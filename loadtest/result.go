package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/herald-dev/herald/sink"
)

// Result is one scenario's figures, printed as one JSON object.
type Result struct {
	Scenario string `json:"scenario"`
	// Sender is herald, plain-http or kafka-diy.
	Sender      string `json:"sender"`
	BroadcastID string `json:"broadcast_id"`
	// Workers is the fleet size (the largest during scaleout); for the
	// baselines, how many Herald workers' worth of concurrency they had.
	Workers     int   `json:"workers"`
	Subscribers int64 `json:"subscribers"`
	Eligible    int64 `json:"eligible"`
	// Delivered counts distinct keys the endpoint accepted, Duplicates
	// its extra deliveries of an accepted key, Failed the deliveries
	// recorded as failed, Lost the eligible subscribers neither delivered
	// nor failed.
	Delivered  int64  `json:"delivered"`
	Duplicates int64  `json:"duplicates"`
	Lost       int64  `json:"lost"`
	Failed     int64  `json:"failed"`
	State      string `json:"state"`
	// Reason is why a broadcast was rejected, if it was.
	Reason string `json:"reason,omitempty"`
	// ElapsedS runs from the trigger (or the baseline's first send) to
	// the end the sender reported; MsgsPerS is Delivered over it.
	ElapsedS       float64 `json:"elapsed_s"`
	MsgsPerS       float64 `json:"msgs_per_s"`
	FirstDeliveryS float64 `json:"first_delivery_s"`
	// RunningS is from the trigger until the broadcast was seen running
	// with every unit claimed (intake, registration, first claims); the
	// chaos schedule counts from there.
	RunningS float64 `json:"running_s,omitempty"`
	// SendP50Ms and SendP99Ms are send latencies (retries and waits
	// included) from the workers' herald_send_seconds histograms, or the
	// baseline's own with the same buckets; estimated within a bucket
	// that doubles in width.
	SendP50Ms *float64 `json:"send_p50_ms"`
	SendP99Ms *float64 `json:"send_p99_ms"`
	// FailoverS lists, per kill or stop, the time until every open unit
	// was claimed by a live worker again.
	FailoverS []float64 `json:"failover_s"`
	// WorkerPeakRSSMiB is the largest peak RSS (VmHWM) of any worker.
	WorkerPeakRSSMiB float64 `json:"worker_peak_rss_mib"`
	// EtcdWritesPerS is etcd write transactions (revisions) per second.
	EtcdWritesPerS float64        `json:"etcd_writes_per_s"`
	Endpoint       *endpointStats `json:"endpoint,omitempty"`
	Events         []*event       `json:"events,omitempty"`
	Zombie         *zombieReport  `json:"zombie,omitempty"`
	// Soak, Outage (endpointdown, kafkadown) and Concurrent are the
	// figures of the scenarios of "Running for months".
	Soak       *soakReport       `json:"soak,omitempty"`
	Outage     *serviceOutage    `json:"outage,omitempty"`
	Concurrent *concurrentReport `json:"concurrent,omitempty"`
	// RatioToPlain and RatioToDIY are MsgsPerS over the baselines'.
	RatioToPlain *float64 `json:"ratio_to_plain_http,omitempty"`
	RatioToDIY   *float64 `json:"ratio_to_kafka_diy,omitempty"`
	// RatioToBatch1 is a batched run's MsgsPerS over the same worker's
	// with batch_size 1 (the batch scenario).
	RatioToBatch1 *float64 `json:"ratio_to_batch_1,omitempty"`
	Checks        []check  `json:"checks"`
	Chart         string   `json:"chart,omitempty"`
	Note          string   `json:"note,omitempty"`

	// Fleet holds the figures of rollout, idle, retrykill and etcdout.
	Fleet *fleetReport `json:"fleet,omitempty"`

	// The audience scenarios' figures (sources, pgkill, reads): the
	// source read, the records the fleet read (the sum over its worker
	// processes of herald_records_scanned_total at the end) and per
	// audience record, and sources' msgs/s over the synthetic source's.
	Source           string         `json:"source,omitempty"`
	RecordsRead      *float64       `json:"records_read,omitempty"`
	ReadsPerRecord   *float64       `json:"reads_per_record,omitempty"`
	RatioToSynthetic *float64       `json:"ratio_to_synthetic,omitempty"`
	Sources          *sourcesFigure `json:"sources,omitempty"`
	// DatabaseCPUS is the CPU time the PostgreSQL server (postmaster and
	// backends) used from the fleet's start to the broadcast's end, for a
	// postgres audience: on one machine it shares the cores with the fleet.
	DatabaseCPUS *float64 `json:"database_cpu_s,omitempty"`

	// Series is the endpoint's first deliveries per second from the
	// trigger on: the chart's data, kept so --replot can draw it again.
	Series *series `json:"per_second,omitempty"`
}

// endpointStats is what the endpoint answered besides deliveries.
type endpointStats struct {
	Requests    int64 `json:"requests"`
	Injected429 int64 `json:"injected_429"`
	Injected5xx int64 `json:"injected_5xx"`
	BadRequests int64 `json:"bad_requests"`
	Abandoned   int64 `json:"abandoned"`
}

// check is one pass/fail verdict with what it saw.
type check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

func (r *Result) check(name string, ok bool, format string, args ...any) {
	r.Checks = append(r.Checks, check{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
}

// OK reports whether every check passed.
func (r Result) OK() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return true
}

func (r *Result) setLatency(h hist) {
	if h.count == 0 {
		return
	}
	p50, p99 := h.quantile(0.5)*1000, h.quantile(0.99)*1000
	r.SendP50Ms, r.SendP99Ms = &p50, &p99
}

// series is a per-second count starting StartS seconds after the trigger.
type series struct {
	StartS float64 `json:"start_s"`
	Counts []int64 `json:"counts"`
}

func seriesSince(ss sink.Stats, t0 time.Time) *series {
	if len(ss.PerSecond) == 0 {
		return nil
	}
	return &series{StartS: ss.SeriesStart.Sub(t0).Seconds(), Counts: ss.PerSecond}
}

// windowDuplicates gives each kill or stop the duplicates the endpoint saw
// from it until the next one, or the end.
func windowDuplicates(events []*event, final int64) {
	var open *event
	for _, e := range events {
		if !e.disruptive() {
			continue
		}
		if open != nil {
			d := e.dupBefore - open.dupBefore
			open.Duplicates = &d
		}
		open = e
	}
	if open != nil {
		d := final - open.dupBefore
		open.Duplicates = &d
	}
}

// judge adds the checks of the targets to a Herald result.
func judge(res *Result, sc scenario, cfg Config) {
	if sc.standalone == nil {
		judgeBroadcast(res, sc, cfg)
	}
	if sc.judge != nil {
		sc.judge(res, cfg)
	}
}

// judgeBroadcast adds the checks every broadcast scenario shares.
func judgeBroadcast(res *Result, sc scenario, cfg Config) {
	res.check("done", res.State == "done", "state %s %s", res.State, res.Reason)
	res.check("lost 0", res.Lost == 0, "lost %d of %d eligible", res.Lost, res.Eligible)
	switch sc.kind {
	case scSteady, scBatch, scScaleout, scSigterm, scSlow, scRSS, scSoak, scEndpointDown, scKafkaDown, scConcurrent, scSources, scReads:
		res.check("duplicates 0", res.Duplicates == 0, "duplicates %d", res.Duplicates)
	}
	limit := (cfg.LeaseTTL + 2*time.Second).Seconds()
	var disruptions int
	for _, e := range res.Events {
		switch {
		case e.disruptive():
			disruptions++
			if e.FailoverS == nil {
				res.check(fmt.Sprintf("failover after %s %s at %.1fs", e.Kind, e.Worker, e.AtS), false, "never seen")
			} else {
				res.check(fmt.Sprintf("failover after %s %s at %.1fs", e.Kind, e.Worker, e.AtS), *e.FailoverS <= limit,
					"%.2fs, limit TTL + 2s = %.0fs", *e.FailoverS, limit)
			}
			if e.Duplicates != nil && e.DuplicateBound != nil {
				res.check(fmt.Sprintf("duplicates after %s %s within the checkpoint window", e.Kind, e.Worker),
					*e.Duplicates <= *e.DuplicateBound, "%d, window %d (%d units)", *e.Duplicates, *e.DuplicateBound, e.Units)
			}
		case e.Kind == "term":
			res.check(fmt.Sprintf("graceful exit of %s", e.Worker), e.Note == "", "left in %.2fs %s", e.LeftS, e.Note)
		}
	}
	switch sc.kind {
	case scKill9:
		res.check("kills performed", disruptions == cfg.Kills, "%d of %d before the broadcast ended", disruptions, cfg.Kills)
	case scSigstop:
		res.check("stop performed", disruptions == 1, "%d", disruptions)
		if z := res.Zombie; z != nil {
			res.check("zombie sent nothing before its new lease", z.SentBeforeNewLease == 0, "%d requests", z.SentBeforeNewLease)
			res.check("zombie sent nothing it lost", z.AlsoSentByOthers == 0 && z.SentTwiceAfterWake == 0,
				"of the %d keys it sent after waking, %d were sent by others too and %d twice by itself",
				z.SentAfterWake, z.AlsoSentByOthers, z.SentTwiceAfterWake)
		}
	case scScaleout:
		joins := 0
		for _, e := range res.Events {
			if e.Kind == "join" {
				joins++
			}
		}
		res.check("joins performed", joins == sc.final-sc.workers, "%d of %d", joins, sc.final-sc.workers)
	case scSigterm:
		terms := 0
		for _, e := range res.Events {
			if e.Kind == "term" {
				terms++
			}
		}
		res.check("every worker restarted", terms == sc.workers, "%d of %d", terms, sc.workers)
	}
}

// writeTable writes the Markdown table of results.
func writeTable(w io.Writer, rs []Result) {
	fmt.Fprintln(w, "| scenario | sender | workers | subscribers | delivered | dup | lost | failed | msgs/s | vs plain | vs DIY | p50 ms | p99 ms | failover s | peak RSS MiB | etcd w/s | checks |")
	fmt.Fprintln(w, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |")
	for _, r := range rs {
		var fo []string
		for _, f := range r.FailoverS {
			fo = append(fo, fmt.Sprintf("%.2f", f))
		}
		verdict := "ok"
		if !r.OK() {
			var failed []string
			for _, c := range r.Checks {
				if !c.OK {
					failed = append(failed, c.Name+": "+c.Detail)
				}
			}
			verdict = "FAIL " + strings.Join(failed, "; ")
		}
		fmt.Fprintf(w, "| %s | %s | %d | %d | %d | %d | %d | %d | %.0f | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			r.Scenario, r.Sender, r.Workers, r.Subscribers, r.Delivered, r.Duplicates, r.Lost, r.Failed, r.MsgsPerS,
			ratio(r.RatioToPlain), ratio(r.RatioToDIY), ms(r.SendP50Ms), ms(r.SendP99Ms), strings.Join(fo, ", "),
			num(r.WorkerPeakRSSMiB, "%.0f"), num(r.EtcdWritesPerS, "%.1f"), verdict)
	}
}

func ratio(p *float64) string {
	if p == nil {
		return ""
	}
	return fmt.Sprintf("%.2f", *p)
}

func ms(p *float64) string {
	if p == nil || math.IsNaN(*p) {
		return ""
	}
	return fmt.Sprintf("%.1f", *p)
}

func num(v float64, format string) string {
	if v == 0 {
		return ""
	}
	return fmt.Sprintf(format, v)
}
