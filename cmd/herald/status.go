package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/internal/statusview"
	"github.com/herald-dev/herald/spec"
	"github.com/herald-dev/herald/worker/audience"
	"github.com/herald-dev/herald/worker/audience/prepared"
)

func statusCommand() command {
	return command{
		name:    "status",
		summary: "Show a broadcast's progress, or a table of all broadcasts.",
		usage:   "herald status [ID] [--watch] [--json]",
		example: "herald status\nherald status spring-sale --watch\nherald status spring-sale --json",
		details: `With an id, prints the broadcast's state, counters, units and each worker's
share; --json prints the status object of the contracts (docs/CONTRACTS.md).
--watch keeps updating: a progress bar with the rate and ETA (the bar needs
the audience size: known for synthetic audiences, counted for a file the
machine can read), until the broadcast ends or you press Ctrl-C. With
--watch --json, one status object per line per interval.`,
		cluster: true,
		setup: func(fs *flag.FlagSet, c *common) runFunc {
			watch := fs.Bool("watch", false, "keep updating until the broadcast ends")
			asJSON := fs.Bool("json", false, "print JSON")
			every := fs.Duration("interval", time.Second, "`time` between updates with --watch")
			return func(ctx context.Context, args []string) error {
				if len(args) > 1 {
					return fmt.Errorf("%w: at most one broadcast id", errUsage)
				}
				reg, done, err := registry(c)
				if err != nil {
					return err
				}
				defer done()
				if len(args) == 0 {
					return listStatus(ctx, c.stdout, reg, *asJSON)
				}
				s := statusPrinter{reg: reg, id: args[0], out: c.stdout, json: *asJSON, live: isTerminal(c.stdout)}
				if *watch {
					return s.watch(ctx, *every)
				}
				return s.once(ctx)
			}
		},
	}
}

func listStatus(ctx context.Context, w io.Writer, reg *coordinator.Registry, asJSON bool) error {
	all, err := reg.List(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(w).Encode(all)
	}
	if len(all) == 0 {
		fmt.Fprintln(w, "no broadcasts")
		return nil
	}
	statusview.Table(w, all)
	return nil
}

type statusPrinter struct {
	reg   *coordinator.Registry
	id    string
	out   io.Writer
	json  bool
	live  bool
	meter statusview.Meter
	drawn int // lines of the last live block, redrawn in place
}

// once prints one status. The rate needs two samples, so a running
// broadcast is sampled twice, half a second apart.
func (s *statusPrinter) once(ctx context.Context) error {
	st, err := s.sample(ctx)
	if err != nil {
		return err
	}
	if st.State == coordinator.StateRunning {
		time.Sleep(500 * time.Millisecond)
		if st, err = s.sample(ctx); err != nil {
			return err
		}
	}
	if s.json {
		return json.NewEncoder(s.out).Encode(st)
	}
	s.meter.Total = audienceSize(ctx, s.reg, s.id)
	fmt.Fprintln(s.out, s.meter.Line(st, 30))
	s.details(s.out, st)
	return nil
}

func (s *statusPrinter) watch(ctx context.Context, every time.Duration) error {
	if !s.json {
		s.meter.Total = audienceSize(ctx, s.reg, s.id)
	}
	for {
		st, err := s.sample(ctx)
		if err != nil {
			return err
		}
		switch {
		case s.json:
			if err := json.NewEncoder(s.out).Encode(st); err != nil {
				return err
			}
		case s.live:
			s.redraw(st)
		default:
			fmt.Fprintln(s.out, s.meter.Line(st, 30))
		}
		if st.State.Terminal() {
			if !s.json && !s.live {
				s.details(s.out, st)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(every):
		}
	}
}

func (s *statusPrinter) sample(ctx context.Context) (coordinator.Status, error) {
	st, err := s.reg.Status(ctx, s.id)
	if err != nil {
		return st, err
	}
	st.RatePerSec = s.meter.Observe(st, time.Now())
	return st, nil
}

// redraw replaces the previous block of lines on a terminal.
func (s *statusPrinter) redraw(st coordinator.Status) {
	var b strings.Builder
	fmt.Fprintln(&b, s.meter.Line(st, 30))
	s.details(&b, st)
	if s.drawn > 0 {
		fmt.Fprintf(s.out, "\033[%dF\033[J", s.drawn)
	}
	fmt.Fprint(s.out, b.String())
	s.drawn = strings.Count(b.String(), "\n")
}

func (s *statusPrinter) details(w io.Writer, st coordinator.Status) {
	c := st.Counters
	fmt.Fprintf(w, "  scanned %s: delivered %s, failed %s, unreachable %s, invalid %s, expired %s\n",
		statusview.Count(c.Scanned), statusview.Count(c.Delivered), statusview.Count(c.Failed),
		statusview.Count(c.Unreachable), statusview.Count(c.Invalid), statusview.Count(c.Expired))
	fmt.Fprintf(w, "  units %d done of %d\n", st.Units.Done, st.Units.Total)
	statusview.Workers(w, st)
	for _, inv := range st.InvalidSamples {
		fmt.Fprintf(w, "  invalid line %d: %s\n", inv.Line, inv.Reason)
	}
	if st.Reason != "" {
		fmt.Fprintf(w, "  reason: %s\n", st.Reason)
	}
}

// audienceSize is the number of records of the broadcast's audience, or 0
// when it cannot be known here cheaply.
func audienceSize(ctx context.Context, reg *coordinator.Registry, id string) int64 {
	raw, err := reg.Spec(ctx, id)
	if err != nil {
		return 0
	}
	s, _, err := spec.Parse(raw, spec.Limits{})
	if err != nil {
		return 0
	}
	switch s.Audience.Source {
	case audience.SourceSynthetic:
		return s.Audience.Count
	case audience.SourceFile:
		return countLines(s.Audience.Path)
	case audience.SourcePrepared:
		// A prepared audience's index has its count; in object storage it
		// would take the workers' secret to read, so only a directory.
		if loc, err := audience.ParseLocation(s.Audience.Path); err == nil && loc.Bucket == "" {
			if p, err := prepared.Open(ctx, prepared.DirStore{Dir: loc.Dir}, audience.Limits{}); err == nil {
				return p.Records()
			}
		}
	}
	// A postgres table's count would take a query with the workers' secret.
	return 0
}

// countLines counts a local audience file's lines (records), when it is
// readable and not too large to count in a moment.
func countLines(path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Size() > 1<<30 {
		return 0
	}
	buf := make([]byte, 1<<20)
	var n int64
	for {
		k, err := f.Read(buf)
		for _, b := range buf[:k] {
			if b == '\n' {
				n++
			}
		}
		if err != nil {
			return n
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func stateCommand(action coordinator.Action, summary, details string) command {
	name := string(action)
	return command{
		name:    name,
		summary: summary,
		usage:   "herald " + name + " ID",
		example: "herald " + name + " spring-sale",
		details: details,
		cluster: true,
		setup: func(fs *flag.FlagSet, c *common) runFunc {
			return func(ctx context.Context, args []string) error {
				if len(args) != 1 {
					return fmt.Errorf("%w: want one broadcast id", errUsage)
				}
				reg, done, err := registry(c)
				if err != nil {
					return err
				}
				defer done()
				if err := reg.SetState(ctx, args[0], action); err != nil {
					return err
				}
				st, err := reg.Status(ctx, args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(c.stdout, "%s is now %s\n", args[0], st.State)
				return nil
			}
		},
	}
}
