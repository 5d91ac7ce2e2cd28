package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// What the kernel and a worker's /metrics say about a worker process's
// resources: memory, open files, goroutines.

// procMemory returns a process's resident set size now (VmRSS) and its
// peak (VmHWM), in bytes.
func procMemory(pid int) (rss, peak int64, err error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("loadtest: memory of pid %d: %w", pid, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		name, rest, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		var dst *int64
		switch string(name) {
		case "VmRSS":
			dst = &rss
		case "VmHWM":
			dst = &peak
		default:
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, 0, fmt.Errorf("loadtest: unexpected line %q of pid %d", sc.Bytes(), pid)
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("loadtest: %s of pid %d: %w", name, pid, err)
		}
		*dst = kb << 10
	}
	if rss == 0 || peak == 0 {
		return 0, 0, fmt.Errorf("loadtest: no VmRSS or VmHWM for pid %d", pid)
	}
	return rss, peak, nil
}

// openFiles counts a process's open file descriptors: sockets, files,
// pipes, the epoll instance.
func openFiles(pid int) (int, error) {
	es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, fmt.Errorf("loadtest: open files of pid %d: %w", pid, err)
	}
	return len(es), nil
}

// errNoGauge reports a /metrics page without the metric asked for.
var errNoGauge = errors.New("loadtest: gauge not exported")

// scrapeGauge reads the value of an unlabelled gauge, such as
// go_goroutines, from a worker's /metrics.
func scrapeGauge(ctx context.Context, client *http.Client, addr, name string) (float64, error) {
	m, err := scrapeMetric(ctx, client, addr, name)
	if err != nil {
		return 0, err
	}
	return m.GetGauge().GetValue(), nil
}

// scrapeMetric reads the first sample of metric name from a worker's
// /metrics; errNoGauge when the page has none.
func scrapeMetric(ctx context.Context, client *http.Client, addr, name string) (*dto.Metric, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("loadtest: scrape %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("loadtest: scrape %s: %s", addr, resp.Status)
	}
	dec := expfmt.NewDecoder(resp.Body, expfmt.ResponseFormat(resp.Header))
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: %s at %s", errNoGauge, name, addr)
		} else if err != nil {
			return nil, fmt.Errorf("loadtest: scrape %s: %w", addr, err)
		}
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0], nil
		}
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
