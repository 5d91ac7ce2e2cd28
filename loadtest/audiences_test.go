package main

import (
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/demo"
	"github.com/herald-dev/herald/internal/devstack"
)

func TestAudienceConfig(t *testing.T) {
	tests := []struct {
		name string
		args []string
		ok   bool
	}{
		{"the set", []string{"--scenarios", "audiences"}, true},
		{"by name", []string{"--scenarios", "sources,reads"}, true},
		{"sizes", []string{"--sources-subscribers", "1000", "--reads-workers", "1,2", "--reads-reachable-every", "10"}, true},
		{"too many reads workers", []string{"--reads-workers", "1,17"}, false},
		{"one round", []string{"--sources-rounds", "1"}, true},
		{"too many rounds", []string{"--sources-rounds", "21"}, false},
		{"no sources workers", []string{"--sources-workers", "0"}, true}, // 0 is the default
		{"negative sources workers", []string{"--sources-workers", "-1"}, false},
		{"reachable every 0 means the default", []string{"--reads-reachable-every", "0"}, true},
		{"reachable every negative", []string{"--reads-reachable-every", "-3"}, false},
		{"pgkill too big", []string{"--pgkill-subscribers", "200000000"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkFlags(t, tt.args, tt.ok) })
	}

	def := Config{}.withDefaults()
	for _, s := range audienceScenarios {
		if def.has(s) {
			t.Errorf("%s runs by default", s)
		}
	}
	if def.Audiences.PGKillSubscribers != def.ChaosSubscribers {
		t.Errorf("pgkill subscribers %d, want the chaos scenarios' %d", def.Audiences.PGKillSubscribers, def.ChaosSubscribers)
	}
	cfg := Config{Scenarios: []string{"audiences"}}.withDefaults()
	var names []string
	for _, sc := range plan(cfg) {
		names = append(names, sc.name)
		if sc.aud == nil {
			t.Errorf("%s: no audience", sc.name)
		}
	}
	want := []string{"sources-synthetic-r1", "sources-postgres-r1", "sources-prepared-r1",
		"sources-synthetic-r2", "sources-postgres-r2", "sources-prepared-r2",
		"sources-synthetic-r3", "sources-postgres-r3", "sources-prepared-r3", "pgkill",
		"reads-file-1", "reads-file-4", "reads-file-16", "reads-postgres-1", "reads-postgres-4", "reads-postgres-16",
		"reads-prepared-1", "reads-prepared-4", "reads-prepared-16"}
	if !slices.Equal(names, want) {
		t.Errorf("plan %v, want %v", names, want)
	}
}

func TestExpandSets(t *testing.T) {
	got := expandSets([]string{"kill9", "audiences"})
	if want := []string{"kill9", "sources", "pgkill", "reads"}; !slices.Equal(got, want) {
		t.Errorf("expandSets = %v, want %v", got, want)
	}
	if got := expandSets([]string{"sources"}); !slices.Equal(got, []string{"sources"}) {
		t.Errorf("expandSets(sources) = %v", got)
	}
}

func TestReachableAt(t *testing.T) {
	for i := range int64(300) {
		if got, want := reachableAt(i, 100, false), i%100 == 0; got != want {
			t.Fatalf("reachableAt(%d, 100) = %v", i, got)
		}
		if !reachableAt(i, 0, true) || reachableAt(i, 0, false) {
			t.Fatalf("reachableAt(%d, 0, ...) must keep the record's own", i)
		}
	}
	s := &audienceStore{}
	for _, tc := range []struct {
		n     int64
		every int
		want  int64
	}{{2_000_000, 100, 20_000}, {201, 100, 3}, {1, 100, 1}, {10, 1, 10}} {
		got, err := s.eligible(tc.n, tc.every, nil)
		if err != nil || got != tc.want {
			t.Errorf("eligible(%d, %d) = %d, %v; want %d", tc.n, tc.every, got, err, tc.want)
		}
		var count int64
		for i := range tc.n {
			if reachableAt(i, tc.every, false) {
				count++
			}
		}
		if count != tc.want {
			t.Errorf("%d of %d reachable, eligible says %d", count, tc.n, tc.want)
		}
	}
}

// TestEachRecordMatchesSynthetic: the records written to the table and
// the files are the synthetic source's, with the same attributes the
// template uses, and the same count of reachable ones.
func TestEachRecordMatchesSynthetic(t *testing.T) {
	const n, seed = 2000, 7
	var reachable int64
	err := eachRecord(n, seed, 0, func(i int64, m map[string]any) error {
		for _, k := range append([]string{"id", "locale", "reachable"}, audienceAttributes...) {
			if _, ok := m[k]; !ok {
				t.Fatalf("record %d has no %q: %v", i, k, m)
			}
		}
		if _, err := m["points"].(json.Number).Int64(); err != nil {
			t.Fatalf("record %d: points %v", i, m["points"])
		}
		if m["reachable"] == true {
			reachable++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want, err := demo.CountEligible(n, seed)
	if err != nil {
		t.Fatal(err)
	}
	if reachable != want {
		t.Errorf("%d reachable, the synthetic source has %d eligible", reachable, want)
	}
	// The template reads name, code and plan: all among the attributes.
	spec := string(demo.SpecJSON("x", n, seed, "http://127.0.0.1:1/push", 1))
	for _, f := range []string{".name", ".code", ".plan"} {
		if !strings.Contains(spec, f) || !slices.Contains(audienceAttributes, f[1:]) {
			t.Errorf("template field %s not among the table's attributes %v", f, audienceAttributes)
		}
	}
}

func TestWithAudience(t *testing.T) {
	raw := demo.SpecJSON("b", 10, 1, "http://127.0.0.1:1/push", 4)
	same, err := withAudience(raw, nil)
	if err != nil || string(same) != string(raw) {
		t.Fatalf("nil audience changed the spec: %s, %v", same, err)
	}
	out, err := withAudience(raw, map[string]any{"source": "prepared", "path": "/x"})
	if err != nil {
		t.Fatal(err)
	}
	var sp, orig map[string]any
	if err := json.Unmarshal(out, &sp); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal(raw, &orig)
	if a := sp["audience"].(map[string]any); a["source"] != "prepared" || a["path"] != "/x" || len(a) != 2 {
		t.Errorf("audience %v", a)
	}
	for _, k := range []string{"template", "endpoint", "only_reachable", "id"} {
		a, _ := json.Marshal(sp[k])
		b, _ := json.Marshal(orig[k])
		if string(a) != string(b) {
			t.Errorf("%s changed: %s, was %s", k, a, b)
		}
	}
}

func TestJudgeSources(t *testing.T) {
	var j sourcesJudge
	run := func(src string, rate float64, round int) *Result {
		r := &Result{Source: src, MsgsPerS: rate}
		j.add(r, audienceOf{source: src, round: round, rounds: 3})
		return r
	}
	// Round 1: postgres at 0.95 of its round's synthetic, prepared at
	// 0.5; neither judged yet.
	run(srcSynthetic, 1000, 1)
	pg := run(srcPostgres, 950, 1)
	if !pg.OK() || pg.RatioToSynthetic == nil || *pg.RatioToSynthetic != 0.95 || pg.Sources != nil {
		t.Errorf("round 1 postgres: checks %v, ratio %v, figure %v", pg.Checks, pg.RatioToSynthetic, pg.Sources)
	}
	run(srcPrepared, 500, 1)
	// Rounds 2 and 3: a slow synthetic round and a fast one.
	run(srcSynthetic, 800, 2)
	run(srcPostgres, 900, 2)
	run(srcPrepared, 850, 2)
	run(srcSynthetic, 1200, 3)
	pg = run(srcPostgres, 1000, 3)
	prep := run(srcPrepared, 880, 3)
	// Medians: synthetic 1000, postgres 950, prepared 850.
	if f := pg.Sources; f == nil || f.Rounds != 3 || f.MsgsPerS != 950 || f.SyntheticMsgsPerS != 1000 || f.Ratio != 0.95 || !pg.OK() {
		t.Errorf("postgres: figure %+v, checks %v", f, pg.Checks)
	}
	if f := prep.Sources; f == nil || f.MsgsPerS != 850 || prep.OK() {
		t.Errorf("prepared at a median of 0.85 passed: figure %+v, checks %v", f, prep.Checks)
	}

	var none sourcesJudge
	orphan := &Result{Source: srcPrepared, MsgsPerS: 850}
	none.add(orphan, audienceOf{source: srcPrepared, round: 1, rounds: 1})
	if orphan.OK() {
		t.Error("no baseline passed")
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tc.xs); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.xs, got, tc.want)
		}
	}
	xs := []float64{3, 1, 2}
	median(xs)
	if !slices.Equal(xs, []float64{3, 1, 2}) {
		t.Errorf("median sorted its argument: %v", xs)
	}
}

func TestJudgeReads(t *testing.T) {
	read := func(src string, workers int, per float64) *Result {
		n := int64(1000)
		r := per * float64(n)
		return &Result{Source: src, Workers: workers, Subscribers: n, RecordsRead: &r, ReadsPerRecord: &per}
	}
	for _, tc := range []struct {
		r  *Result
		ok bool
	}{
		{read(srcPostgres, 16, 1.0), true},
		{read(srcPrepared, 16, 1.08), true},
		{read(srcPrepared, 4, 1.2), false},
		{read(srcFile, 16, 16), true}, // expected, reported
	} {
		judgeReads(tc.r, Config{})
		if tc.r.OK() != tc.ok {
			t.Errorf("%s x%.2f: ok %v, want %v (%v)", tc.r.Source, *tc.r.ReadsPerRecord, tc.r.OK(), tc.ok, tc.r.Checks)
		}
	}
	f := read(srcFile, 4, 4)
	judgeReads(f, Config{})
	if !strings.Contains(f.Note, "every worker reads it whole") {
		t.Errorf("file note %q", f.Note)
	}
	none := &Result{Source: srcPostgres}
	judgeReads(none, Config{})
	if none.OK() {
		t.Error("no figure passed")
	}
}

// TestAudiencesSmoke runs the audience scenarios end to end at a tiny
// size: a PostgreSQL cluster, the in-process S3 server, real workers. It
// checks that each measures, not what it measures: at this size the
// ratios are noise.
func TestAudiencesSmoke(t *testing.T) {
	if _, err := devstack.FindPostgresBin(); errors.Is(err, devstack.ErrNoPostgres) && os.Getenv("CI") != "true" {
		t.Skipf("%v (apt-get install postgresql to run it)", err)
	}
	bin := smokeBinary(t)
	cfg := Config{
		Scenarios: []string{setAudiences}, Binary: bin, Out: t.TempDir(),
		ChaosWorkers: 2, LeaseTTL: 2 * time.Second, MaxInFlight: 8, Timeout: 2 * time.Minute,
		Kills: 1, KillEvery: 500 * time.Millisecond,
		Audiences: AudienceConfig{SourcesSubscribers: 3000, SourcesRounds: 1, PGKillSubscribers: 60_000, ReadsSubscribers: 20_000,
			ReadsReachableEvery: 10, ReadsWorkers: []int{1, 2}},
	}
	results, table := runSmoke(t, cfg)
	if len(results) != 3+1+3*2 {
		t.Fatalf("%d results, want 10", len(results))
	}
	by := map[string]Result{}
	for _, r := range results {
		by[r.Scenario] = r
		if r.Lost != 0 || r.Delivered != r.Eligible || r.Eligible == 0 || r.State != "done" {
			t.Errorf("%s: %s, delivered %d of %d, lost %d", r.Scenario, r.State, r.Delivered, r.Eligible, r.Lost)
		}
		if r.RecordsRead == nil || *r.RecordsRead == 0 {
			t.Errorf("%s: no records read", r.Scenario)
		}
	}
	if want := int64(2000); by["reads-postgres-2"].Eligible != want {
		t.Errorf("reads: %d eligible, want one in 10 of 20,000", by["reads-postgres-2"].Eligible)
	}
	for _, s := range []string{"sources-postgres", "sources-prepared"} {
		if by[s].RatioToSynthetic == nil || by[s].Sources == nil || by[s].Eligible != by["sources-synthetic"].Eligible {
			t.Errorf("%s: ratio %v, eligible %d (synthetic %d)", s, by[s].RatioToSynthetic, by[s].Eligible, by["sources-synthetic"].Eligible)
		}
	}
	for _, s := range []string{"sources-postgres", "pgkill", "reads-postgres-1"} {
		if by[s].DatabaseCPUS == nil {
			t.Errorf("%s: the database's CPU time was not measured", s)
		}
	}
	if by["sources-prepared"].DatabaseCPUS != nil {
		t.Error("sources-prepared: a database CPU time for a prepared audience")
	}
	if r := by["reads-file-2"]; r.ReadsPerRecord == nil || *r.ReadsPerRecord < 1.5 {
		t.Errorf("two workers reading a file: %v reads per record, want about 2", r.ReadsPerRecord)
	}
	if !strings.Contains(table, "records read by the fleet") {
		t.Error("no records-read figures after the table")
	}
}

func TestParseProcTree(t *testing.T) {
	// ppid 1, utime 1234, stime 56, cutime 70, cstime 8.
	stat := []byte("4242 (postgres (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 1234 56 70 8 20 0 9 0 100 0 0\n")
	p, err := parseProcTree(stat)
	if err != nil || p != (procTree{ppid: 1, self: 1290, children: 78}) {
		t.Fatalf("parseProcTree = %+v, %v", p, err)
	}
	for _, bad := range []string{"no parenthesis", "1 (x) S 1 2 3 4 5 6 7 8 9 10 11 12"} {
		if _, err := parseProcTree([]byte(bad)); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
	if _, err := treeTicks(os.Getpid()); err != nil {
		t.Errorf("treeTicks of this process: %v", err)
	}
}

func TestArgvHas(t *testing.T) {
	for _, tc := range []struct {
		argv []string
		ok   bool
	}{
		{[]string{"/usr/lib/postgresql/17/bin/postgres", "-D", "/tmp/x", "-p", "5433"}, true},
		{[]string{"postgres", "-p", "5433"}, true},
		{[]string{"/usr/lib/postgresql/17/bin/postgres", "-p", "5434"}, false},
		{[]string{"/usr/bin/notpostgres", "-p", "5433"}, false},
		{[]string{"postgres: postgres audiences 127.0.0.1(5433) idle"}, false},
		{[]string{"postgres", "-p"}, false},
		{nil, false},
	} {
		if got := argvHas(tc.argv, "postgres", "5433"); got != tc.ok {
			t.Errorf("argvHas(%q) = %v, want %v", tc.argv, got, tc.ok)
		}
	}
}
