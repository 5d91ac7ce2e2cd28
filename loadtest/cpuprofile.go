package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// profileCPU waits until a quarter of the eligible audience is delivered,
// well into the steady state, then takes a CPU profile of r.sc.cpuProfile
// from every worker at once, each into <out>/<scenario>-<worker>.cpu.pprof.
// Failures are logged: a profile is an aid, not a figure the run checks.
func (r *run) profileCPU(ctx context.Context, eligible int64) {
	for {
		r.mu.Lock()
		st := r.status
		r.mu.Unlock()
		if st.State.Terminal() {
			r.h.log.Warn("cpu profile: none, the broadcast ended first", "scenario", r.sc.name, "state", st.State)
			return
		}
		if st.Counters.Delivered >= eligible/4 {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	d := r.sc.cpuProfile
	client := &http.Client{Timeout: d + 30*time.Second}
	defer client.CloseIdleConnections()
	from := time.Since(r.t0)
	var wg sync.WaitGroup
	for _, p := range r.fleet.Procs() {
		wg.Go(func() {
			path := filepath.Join(r.h.out, fmt.Sprintf("%s-%s.cpu.pprof", r.sc.name, p.ID))
			if err := fetchProfile(ctx, client, p.HTTPAddr, d, path); err != nil {
				r.h.log.Error("cpu profile", "scenario", r.sc.name, "worker", p.ID, "err", err)
				return
			}
			r.h.log.Info("cpu profile", "scenario", r.sc.name, "worker", p.ID, "path", path,
				"from_s", fmt.Sprintf("%.1f", from.Seconds()), "seconds", d.Seconds())
		})
	}
	wg.Wait()
	r.mu.Lock()
	st := r.status
	r.mu.Unlock()
	if st.State.Terminal() {
		r.h.log.Warn("cpu profile: the broadcast ended before the profile did; it includes idle time",
			"scenario", r.sc.name, "state", st.State)
	}
}

// fetchProfile writes the CPU profile of d the worker at addr serves.
func fetchProfile(ctx context.Context, client *http.Client, addr string, d time.Duration, path string) error {
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, max(int(d.Seconds()), 1))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s: %s", url, resp.Status, body)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
