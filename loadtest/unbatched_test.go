package main

import (
	"flag"
	"io"
	"testing"
)

func TestUnbatchedConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		ok   bool
	}{
		{"defaults", []string{"--scenarios", "unbatched"}, true},
		{"one round", []string{"--scenarios", "unbatched", "--unbatched-rounds", "1"}, true},
		{"no rounds", []string{"--scenarios", "unbatched", "--unbatched-rounds", "-1"}, false},
		{"too many rounds", []string{"--scenarios", "unbatched", "--unbatched-rounds", "21"}, false},
		{"no subscribers", []string{"--scenarios", "unbatched", "--unbatched-subscribers", "-5"}, false},
	} {
		var cfg Config
		fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		cfg.registerFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if err := cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
	var def Config
	if def = def.withDefaults(); def.has(scUnbatched) {
		t.Error("unbatched runs by default; it repeats the steady runs in rounds")
	}
	if u := def.Unbatched; u.Rounds != 3 || u.Subscribers != 1_000_000 {
		t.Errorf("defaults %+v, want 3 rounds of 1,000,000", u)
	}
}

func TestJudgeUnbatched(t *testing.T) {
	for _, tc := range []struct {
		ratios []float64
		ok     bool
	}{
		{[]float64{0.74, 0.99, 0.95}, true}, // one round below: the median holds
		{[]float64{0.87, 0.85, 1.2}, false}, // the median below
		{[]float64{0.9}, true},              // exactly the target
		{nil, false},                        // no ratio at all
	} {
		var r Result
		judgeUnbatched(&r, tc.ratios)
		if len(r.Checks) != 1 || r.Checks[0].OK != tc.ok {
			t.Errorf("ratios %v: checks %+v, want one, ok %v", tc.ratios, r.Checks, tc.ok)
		}
	}
}
