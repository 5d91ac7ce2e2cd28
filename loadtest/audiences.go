package main

import (
	"flag"
	"fmt"
	"slices"
	"strings"
)

// The audience-source scenarios (the `audiences` set; none runs by
// default): what the range sources, postgres and prepared, cost a fleet
// against the synthetic source and the file source.
//
//	sources  SourcesWorkers deliver the same audience of SourcesSubscribers
//	         from the synthetic source, a postgres table and a prepared
//	         audience in object storage, in SourcesRounds interleaved
//	         rounds: msgs/s, the ratio of each range source's median to
//	         the synthetic one's, and the records the fleet read
//	pgkill   kill9 with the audience in a postgres table
//	reads    the records the fleet reads for one broadcast of
//	         ReadsSubscribers, from file, postgres and prepared, at each
//	         fleet size of ReadsWorkers; only one subscriber in
//	         ReadsReachableEvery is reachable, so it measures reading, not
//	         delivery
const (
	scSources = "sources"
	scPGKill  = "pgkill"
	scReads   = "reads"

	// setAudiences names the three in --scenarios.
	setAudiences = "audiences"
)

var audienceScenarios = []string{scSources, scPGKill, scReads}

// The sources an audience scenario reads.
const (
	srcSynthetic = "synthetic"
	srcFile      = "file"
	srcPostgres  = "postgres"
	srcPrepared  = "prepared"
)

// The targets.
const (
	sourcesMinRatio = 0.9 // a range source's msgs/s over the synthetic's
	rangeMaxReads   = 1.1 // records a fleet reads per audience record
)

// AudienceConfig sizes the audience-source scenarios. The zero value of
// every field means the documented default.
type AudienceConfig struct {
	// SourcesSubscribers (0: 300,000) delivered by SourcesWorkers (0: 2)
	// from each source.
	SourcesSubscribers int64
	SourcesWorkers     int
	// SourcesRounds (0: 3) is how many times the three run, one after
	// the other: a broadcast of 300,000 lasts seconds, so one run's rate
	// moves with whatever else the machine does, and the judge takes each
	// source's median.
	SourcesRounds int
	// PGKillSubscribers is pgkill's table (0: the chaos scenarios' size,
	// so it compares with kill9).
	PGKillSubscribers int64
	// ReadsSubscribers (0: 2,000,000) is reads' audience, one in
	// ReadsReachableEvery (0: 100) of them reachable; ReadsWorkers its
	// fleet sizes (empty: 1, 4, 16).
	ReadsSubscribers    int64
	ReadsReachableEvery int
	ReadsWorkers        []int
}

func (c AudienceConfig) withDefaults(chaosSubscribers int64) AudienceConfig {
	if c.SourcesSubscribers == 0 {
		c.SourcesSubscribers = 300_000
	}
	if c.SourcesWorkers == 0 {
		c.SourcesWorkers = 2
	}
	if c.SourcesRounds == 0 {
		c.SourcesRounds = 3
	}
	if c.PGKillSubscribers == 0 {
		c.PGKillSubscribers = chaosSubscribers
	}
	if c.ReadsSubscribers == 0 {
		c.ReadsSubscribers = 2_000_000
	}
	if c.ReadsReachableEvery == 0 {
		c.ReadsReachableEvery = 100
	}
	if len(c.ReadsWorkers) == 0 {
		c.ReadsWorkers = []int{1, 4, 16}
	}
	return c
}

func (c AudienceConfig) validate() error {
	for _, n := range []int64{c.SourcesSubscribers, c.PGKillSubscribers, c.ReadsSubscribers} {
		if n < 1 || n > 100_000_000 {
			return fmt.Errorf("%w: %d subscribers: want 1 to 100,000,000", ErrConfig, n)
		}
	}
	for _, w := range append([]int{c.SourcesWorkers}, c.ReadsWorkers...) {
		if w < 1 || w > 16 {
			return fmt.Errorf("%w: %d workers: want 1 to 16 on one machine", ErrConfig, w)
		}
	}
	if c.SourcesRounds < 1 || c.SourcesRounds > 20 {
		return fmt.Errorf("%w: %d sources rounds: want 1 to 20", ErrConfig, c.SourcesRounds)
	}
	if c.ReadsReachableEvery < 1 {
		return fmt.Errorf("%w: reads reachable every %d: want at least 1", ErrConfig, c.ReadsReachableEvery)
	}
	return nil
}

func (c *AudienceConfig) registerFlags(fs *flag.FlagSet) {
	fs.Int64Var(&c.SourcesSubscribers, "sources-subscribers", 300_000, "subscribers sources delivers from each source")
	fs.IntVar(&c.SourcesWorkers, "sources-workers", 2, "workers of sources")
	fs.IntVar(&c.SourcesRounds, "sources-rounds", 3, "`rounds` of sources: each runs the three sources once; the judge takes each source's median")
	fs.Int64Var(&c.PGKillSubscribers, "pgkill-subscribers", 0, "subscribers in pgkill's table (default --chaos-subscribers)")
	fs.Int64Var(&c.ReadsSubscribers, "reads-subscribers", 2_000_000, "subscribers of reads' audience")
	fs.IntVar(&c.ReadsReachableEvery, "reads-reachable-every", 100, "one subscriber in `n` of reads' audience is reachable, the rest not")
	fs.Func("reads-workers", "comma-separated fleet `sizes` of reads (default 1,4,16)", func(v string) error {
		ns, err := parseInts(v)
		c.ReadsWorkers = ns
		return err
	})
}

// expandSets replaces the name of a set of scenarios with its members.
func expandSets(names []string) []string {
	var out []string
	for _, n := range names {
		if n == setAudiences {
			out = append(out, audienceScenarios...)
			continue
		}
		out = append(out, n)
	}
	return slices.Compact(out)
}

// audienceOf is what an audience scenario reads: a source, and for reads
// the share of reachable subscribers.
type audienceOf struct {
	source string
	// reachEvery, when above 0, makes only every reachEvery-th record
	// reachable; 0 keeps the synthetic audience's reachability.
	reachEvery int
	// round of rounds, for sources.
	round, rounds int
}

// audiencePlan lists the audience scenarios cfg selects, in the order
// they run: sources' synthetic baseline first.
func audiencePlan(cfg Config) []scenario {
	ac := cfg.Audiences
	var out []scenario
	if cfg.has(scSources) {
		for round := 1; round <= ac.SourcesRounds; round++ {
			for _, src := range []string{srcSynthetic, srcPostgres, srcPrepared} {
				name := scSources + "-" + src
				if ac.SourcesRounds > 1 {
					name += fmt.Sprintf("-r%d", round)
				}
				out = append(out, scenario{name: name, kind: scSources, workers: ac.SourcesWorkers, subscribers: ac.SourcesSubscribers,
					aud: &audienceOf{source: src, round: round, rounds: ac.SourcesRounds}, report: reportReads})
			}
		}
	}
	if cfg.has(scPGKill) {
		out = append(out, scenario{name: scPGKill, kind: scKill9, workers: cfg.ChaosWorkers, subscribers: ac.PGKillSubscribers,
			chaos: chaosKill9, aud: &audienceOf{source: srcPostgres}, report: reportReads})
	}
	if cfg.has(scReads) {
		for _, src := range []string{srcFile, srcPostgres, srcPrepared} {
			for _, w := range ac.ReadsWorkers {
				out = append(out, scenario{name: fmt.Sprintf("%s-%s-%d", scReads, src, w), kind: scReads, workers: w,
					subscribers: ac.ReadsSubscribers, aud: &audienceOf{source: src, reachEvery: ac.ReadsReachableEvery},
					report: reportReads, judge: judgeReads})
			}
		}
	}
	return out
}

// reportReads adds the records the fleet read, the sum of every worker
// process's last herald_records_scanned_total, and per audience record.
func reportReads(r *run, res *Result) {
	var sum float64
	r.mu.Lock()
	for _, p := range r.procs {
		sum += p.last().scanned
	}
	r.mu.Unlock()
	res.Source = r.sc.aud.source
	res.RecordsRead = &sum
	if res.Subscribers > 0 {
		per := sum / float64(res.Subscribers)
		res.ReadsPerRecord = &per
	}
	if r.sc.kind == scReads {
		res.Note = fmt.Sprintf("only 1 in %d subscribers reachable (only_reachable): it measures reading, not delivery", r.sc.aud.reachEvery)
	}
}

// judgeReads checks a range source's reads: about one pass of the
// audience, however many workers. A file is read whole by every worker,
// which the note says.
func judgeReads(res *Result, _ Config) {
	if res.ReadsPerRecord == nil {
		res.check("records read", false, "no worker's metrics were scraped")
		return
	}
	per := *res.ReadsPerRecord
	if res.Source == srcFile {
		res.Note += fmt.Sprintf("; file: every worker reads it whole, %.2f reads per record for %d workers", per, res.Workers)
		return
	}
	res.check(fmt.Sprintf("reads per record at most %.1f", rangeMaxReads), per <= rangeMaxReads,
		"%.0f records read for %d: %.3f per record with %d workers", *res.RecordsRead, res.Subscribers, per, res.Workers)
}

// sourcesJudge compares the sources runs as they come: each with its
// round's synthetic run, and at each source's last round the median of its
// rates with the synthetic source's median, which is judged.
type sourcesJudge struct {
	rates     map[string][]float64 // msgs/s by source, in round order
	synthetic *Result              // the latest synthetic run
}

func (j *sourcesJudge) add(r *Result, a audienceOf) {
	if j.rates == nil {
		j.rates = map[string][]float64{}
	}
	j.rates[r.Source] = append(j.rates[r.Source], r.MsgsPerS)
	if r.Source == srcSynthetic {
		j.synthetic = r
		return
	}
	if j.synthetic == nil || j.synthetic.MsgsPerS == 0 {
		r.check("synthetic baseline", false, "no synthetic run to compare with")
		return
	}
	x := r.MsgsPerS / j.synthetic.MsgsPerS
	r.RatioToSynthetic = &x
	if a.round < a.rounds {
		return
	}
	fig := &sourcesFigure{Rounds: len(j.rates[r.Source]), MsgsPerS: median(j.rates[r.Source]),
		SyntheticMsgsPerS: median(j.rates[srcSynthetic])}
	if fig.SyntheticMsgsPerS > 0 {
		fig.Ratio = fig.MsgsPerS / fig.SyntheticMsgsPerS
	}
	r.Sources = fig
	r.check(fmt.Sprintf("median of %d rounds at least %.1f of the synthetic source's", fig.Rounds, sourcesMinRatio), fig.Ratio >= sourcesMinRatio,
		"%.0f msgs/s against %.0f: x%.2f", fig.MsgsPerS, fig.SyntheticMsgsPerS, fig.Ratio)
}

// sourcesFigure is a range source's median rate over the rounds of
// sources, and the synthetic source's.
type sourcesFigure struct {
	Rounds            int     `json:"rounds"`
	MsgsPerS          float64 `json:"median_msgs_per_s"`
	SyntheticMsgsPerS float64 `json:"synthetic_median_msgs_per_s"`
	Ratio             float64 `json:"ratio_to_synthetic"`
}

// median of xs; 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// audienceLines are the figures of an audience scenario after the table.
func (r Result) audienceLines() []string {
	var parts []string
	parts = append(parts, "source "+r.Source)
	if r.RecordsRead != nil {
		parts = append(parts, fmt.Sprintf("records read by the fleet %.0f (%.3f per audience record, %d workers)", *r.RecordsRead, *r.ReadsPerRecord, r.Workers))
	}
	if r.RatioToSynthetic != nil {
		parts = append(parts, fmt.Sprintf("%.0f msgs/s, x%.2f of this round's synthetic source", r.MsgsPerS, *r.RatioToSynthetic))
	}
	if f := r.Sources; f != nil {
		parts = append(parts, fmt.Sprintf("median of %d rounds %.0f msgs/s against the synthetic source's %.0f: x%.2f", f.Rounds, f.MsgsPerS, f.SyntheticMsgsPerS, f.Ratio))
	}
	if r.DatabaseCPUS != nil && r.ElapsedS > 0 {
		parts = append(parts, fmt.Sprintf("PostgreSQL used %.1f CPU-s (%.2f cores over the %.1f s broadcast)", *r.DatabaseCPUS, *r.DatabaseCPUS/r.ElapsedS, r.ElapsedS))
	}
	if r.Note != "" {
		parts = append(parts, r.Note)
	}
	return []string{strings.Join(parts, "; ")}
}
