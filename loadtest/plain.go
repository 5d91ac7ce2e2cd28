package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// poster sends deliveries the way Herald's sender does on the wire (HTTP/1.1
// keep-alive connections, one per concurrent request), with no retries:
// the baselines' way of posting.
type poster struct {
	url    string
	client *http.Client
	lat    *liveHist
}

func newPoster(url string, conc int) *poster {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		Protocols:           &protocols,
		MaxIdleConnsPerHost: conc,
		MaxConnsPerHost:     conc + conc/8 + 2,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &poster{url: url, client: &http.Client{Transport: tr, Timeout: 5 * time.Second}, lat: newLiveHist()}
}

// post sends one delivery and reports whether the endpoint took it (2xx,
// or 409 for a key it had).
func (p *poster) post(ctx context.Context, d delivery) bool {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(d.body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", d.key)
	resp, err := p.client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	p.lat.observe(time.Since(start))
	return resp.StatusCode/100 == 2 || resp.StatusCode == http.StatusConflict
}

func (p *poster) close() { p.client.CloseIdleConnections() }

// runPlain is the first baseline: every eligible subscriber's body rendered
// in memory beforehand, then posted by conc goroutines as fast as the
// endpoint answers. Nothing to coordinate, nothing to survive: the ceiling
// one machine's sender can reach against this endpoint. It sends the
// demo's broadcast of subscribers.
func (h *harness) runPlain(ctx context.Context, workers, conc int, subscribers int64) (Result, error) {
	cfg := h.cfg
	id := fmt.Sprintf("lt-plain-%d", time.Now().Unix())
	eligible, err := h.eligible(subscribers)
	if err != nil {
		return Result{}, err
	}
	var renderFailed int64
	seq, seqErr, err := renderAll(id, subscribers, cfg.Seed, &renderFailed)
	if err != nil {
		return Result{}, err
	}
	h.log.Info("rendering the plain baseline's bodies", "eligible", eligible)
	ds := make([]delivery, 0, eligible)
	for d := range seq {
		ds = append(ds, d)
	}
	if err := seqErr(); err != nil {
		return Result{}, fmt.Errorf("loadtest: plain baseline: %w", err)
	}
	if err := h.sink.reset(ctx); err != nil {
		return Result{}, err
	}
	p := newPoster(h.sink.url("/push"), conc)
	defer p.close()

	failed, t0, end := postAll(ctx, conc, len(ds), func(i int) int64 {
		if p.post(ctx, ds[i]) {
			return 0
		}
		return 1
	})
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	ds = nil // the bodies can go before the next scenario
	res, err := h.baselineResult(ctx, fmt.Sprintf("baseline-plain-%d", workers), "plain-http", workers, id, eligible, failed+renderFailed, t0, end)
	if err != nil {
		return Result{}, err
	}
	res.Subscribers = subscribers
	res.setLatency(p.lat.snapshot())
	res.Note = fmt.Sprintf("%d concurrent requests from one process, bodies rendered before the clock starts, no retries", conc)
	return res, nil
}

// baselineResult reads the endpoint's counts of a baseline's broadcast.
func (h *harness) baselineResult(ctx context.Context, name, sender string, workers int, id string, eligible, failed int64, t0, end time.Time) (Result, error) {
	ss, err := h.sink.stats(ctx)
	if err != nil {
		return Result{}, err
	}
	got := ss.Broadcasts[id]
	res := Result{
		Scenario: name, Sender: sender, BroadcastID: id, Workers: workers,
		Subscribers: h.cfg.Subscribers, Eligible: eligible, Delivered: got.Delivered, Duplicates: got.Duplicates,
		Failed: failed, State: "done", ElapsedS: end.Sub(t0).Seconds(), Endpoint: endpointFigures(ss),
		FirstDeliveryS: sinceOrZero(ss.FirstDeliveryAt, t0), Series: seriesSince(ss, t0),
	}
	res.Lost = max(eligible-res.Delivered-res.Failed, 0)
	if res.ElapsedS > 0 {
		res.MsgsPerS = float64(res.Delivered) / res.ElapsedS
	}
	res.check("lost 0", res.Lost == 0, "lost %d of %d eligible", res.Lost, eligible)
	return res, nil
}

func maxInts(ns []int) int {
	m := 0
	for _, n := range ns {
		m = max(m, n)
	}
	return m
}

// postAll has conc goroutines call post for 0 to n-1, each index once, as
// fast as post returns, and returns the sum of what post returned (the
// messages it failed) and when the first and the last call started and
// ended.
func postAll(ctx context.Context, conc, n int, post func(i int) int64) (failed int64, t0, end time.Time) {
	var next, fails atomic.Int64
	var wg sync.WaitGroup
	t0 = time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				fails.Add(post(int(i)))
			}
		}()
	}
	wg.Wait()
	return fails.Load(), t0, time.Now()
}
