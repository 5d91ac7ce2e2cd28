package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/herald-dev/herald/internal/demo"
)

// harness is what every scenario of a run shares: the herald binary and
// the endpoint process.
type harness struct {
	cfg    Config
	log    *slog.Logger
	out    string
	binary string
	tmp    string // holds the built binary; removed on close

	sink *sinkProc
	// workerArgs are the flags every worker gets.
	workerArgs []string

	mu         sync.Mutex
	eligibleBy map[int64]int64 // by audience size; the seed is the run's

	// audiences serves the audience scenarios' tables and prepared
	// audiences, started by the first that needs it.
	audiences *audienceStore
}

// newHarness builds herald and starts the endpoint.
func newHarness(ctx context.Context, cfg Config, log *slog.Logger) (_ *harness, err error) {
	h := &harness{cfg: cfg, log: log, out: cfg.Out, binary: cfg.Binary, eligibleBy: make(map[int64]int64)}
	defer func() {
		if err != nil {
			h.close()
		}
	}()
	if h.binary == "" {
		if h.tmp, err = os.MkdirTemp("", "herald-loadtest-bin-"); err != nil {
			return nil, fmt.Errorf("loadtest: %w", err)
		}
		h.binary = filepath.Join(h.tmp, "herald")
		log.Info("building herald", "to", h.binary)
		if err := buildHerald(ctx, h.binary); err != nil {
			return nil, err
		}
	}
	h.workerArgs = []string{"--lease-ttl", cfg.LeaseTTL.String()}
	if allow, err := supportsFlag(h.binary, "worker", "--allow-endpoint"); err != nil {
		return nil, err
	} else if allow {
		// Workers deny every endpoint unless told; these are the only two
		// a load test posts to, both on loopback in the end.
		h.workerArgs = append(h.workerArgs, "--allow-endpoint", "http://127.0.0.1:*,http://"+proxyHost+":*")
	}
	if h.sink, err = startSink(ctx, h.binary, nil, filepath.Join(h.out, "sink.log")); err != nil {
		return nil, err
	}
	log.Info("sink up", "addr", h.sink.addr)
	return h, nil
}

// buildHerald builds cmd/herald to path in Herald's own module, whose
// go.sum covers its dependencies (this module's lists only what the load
// test imports).
func buildHerald(ctx context.Context, path string) error {
	dir, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/herald-dev/herald").Output()
	if err != nil {
		return fmt.Errorf("loadtest: find herald's module: %w", err)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", path, "./cmd/herald")
	cmd.Dir = strings.TrimSpace(string(dir))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("loadtest: go build: %w\n%s", err, out)
	}
	return nil
}

// supportsFlag reports whether `herald <command> --help` lists flag, so the
// harness works with binaries from before and after a flag existed.
func supportsFlag(binary, command, flag string) (bool, error) {
	out, err := exec.Command(binary, command, "--help").CombinedOutput()
	if err != nil && len(out) == 0 {
		return false, fmt.Errorf("loadtest: %s %s --help: %w", binary, command, err)
	}
	return bytes.Contains(out, []byte(flag+" ")), nil
}

func (h *harness) close() {
	if h.audiences != nil {
		h.audiences.close()
	}
	if h.sink != nil {
		h.sink.close()
	}
	if h.tmp != "" {
		os.RemoveAll(h.tmp)
	}
}

// eligible counts the eligible subscribers of an audience of n, once.
func (h *harness) eligible(n int64) (int64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e, ok := h.eligibleBy[n]; ok {
		return e, nil
	}
	e, err := demo.CountEligible(n, h.cfg.Seed)
	if err != nil {
		return 0, err
	}
	h.eligibleBy[n] = e
	return e, nil
}

// audienceSetup makes, or finds made, the audience sc reads.
func (h *harness) audienceSetup(ctx context.Context, sc scenario) (audienceSetup, error) {
	if h.audiences == nil {
		a, err := newAudienceStore(h.cfg.Seed, h.log)
		if err != nil {
			return audienceSetup{}, err
		}
		h.audiences = a
	}
	return h.audiences.get(ctx, *sc.aud, sc.subscribers, h.eligible)
}

// slowSink starts the endpoint of the slow scenario: latency, 429s and 5xx.
func (h *harness) slowSink(ctx context.Context) (*sinkProc, error) {
	c := h.cfg
	flags := []string{
		"--latency", c.SlowLatency.String(), "--jitter", c.SlowJitter.String(),
		"--rate-429", fmt.Sprint(c.Slow429), "--rate-5xx", fmt.Sprint(c.Slow5xx),
		"--retry-after", "1s", "--seed", fmt.Sprint(c.Seed),
	}
	return startSink(ctx, h.binary, flags, filepath.Join(h.out, "sink-slow.log"))
}

// loadAverage is the 1, 5 and 15-minute load averages, for the record:
// figures taken on a busy machine are not comparable.
func loadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(raw))
	return strings.Join(f[:min(3, len(f))], " ")
}
