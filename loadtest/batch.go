package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// scBatch measures batched delivery (endpoint.batch_size): one worker
// sending BatchSubscribers with batch_size 1 and with BatchSize, and a
// plain sender posting the same messages, pre-rendered, in batches of
// BatchSize with the same number of requests in flight. Targets: the
// batched worker at least 5 times the unbatched one, and at least 0.9 of
// the plain batched sender.
const scBatch = "batch"

// batchPlan lists the two Herald runs of the batch scenario.
func batchPlan(cfg Config) []scenario {
	if !cfg.has(scBatch) {
		return nil
	}
	one := scenario{name: "batch-1", kind: scBatch, workers: 1, subscribers: cfg.BatchSubscribers, batchSize: 1, cpuProfile: cfg.CPUProfile}
	many := one
	many.name, many.batchSize = fmt.Sprintf("batch-%d", cfg.BatchSize), cfg.BatchSize
	return []scenario{one, many}
}

// withBatch sets endpoint.batch_size in a spec's JSON; 1 leaves it out.
func withBatch(raw []byte, size int) ([]byte, error) {
	if size <= 1 {
		return raw, nil
	}
	var sp map[string]any
	if err := json.Unmarshal(raw, &sp); err != nil {
		return nil, fmt.Errorf("loadtest: batch spec: %w", err)
	}
	sp["endpoint"].(map[string]any)["batch_size"] = size
	return json.Marshal(sp)
}

// runPlainBatched is the batch scenario's baseline: every eligible
// subscriber's body rendered beforehand, gathered into JSON arrays of
// size, and posted by conc goroutines as fast as the endpoint answers. A
// batch counts as taken when the endpoint answers 200; the answer's body is
// read but not parsed.
func (h *harness) runPlainBatched(ctx context.Context, conc, size int) (Result, error) {
	cfg := h.cfg
	id := fmt.Sprintf("lt-plainbatch-%d", time.Now().Unix())
	eligible, err := h.eligible(cfg.BatchSubscribers)
	if err != nil {
		return Result{}, err
	}
	var renderFailed int64
	seq, seqErr, err := renderAll(id, cfg.BatchSubscribers, cfg.Seed, &renderFailed)
	if err != nil {
		return Result{}, err
	}
	h.log.Info("rendering the plain batched baseline's bodies", "eligible", eligible, "batch", size)
	type batch struct {
		body  []byte
		items int64
	}
	var (
		batches []batch
		cur     bytes.Buffer
		n       int64
	)
	cut := func() {
		if n == 0 {
			return
		}
		cur.WriteByte(']')
		batches = append(batches, batch{body: bytes.Clone(cur.Bytes()), items: n})
		cur.Reset()
		n = 0
	}
	for d := range seq {
		if n == 0 {
			cur.WriteByte('[')
		} else {
			cur.WriteByte(',')
		}
		cur.Write(d.body)
		if n++; n == int64(size) {
			cut()
		}
	}
	cut()
	if err := seqErr(); err != nil {
		return Result{}, fmt.Errorf("loadtest: plain batched baseline: %w", err)
	}
	if err := h.sink.reset(ctx); err != nil {
		return Result{}, err
	}
	p := newPoster(h.sink.url("/push"), conc)
	defer p.close()
	failed, t0, end := postAll(ctx, conc, len(batches), func(i int) int64 {
		if p.postBatch(ctx, batches[i].body, batches[i].items) {
			return 0
		}
		return batches[i].items
	})
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	batches = nil
	res, err := h.baselineResult(ctx, fmt.Sprintf("baseline-plain-batch-%d", size), "plain-http", 1, id, eligible, failed+renderFailed, t0, end)
	if err != nil {
		return Result{}, err
	}
	res.Subscribers = cfg.BatchSubscribers
	res.setLatency(p.lat.snapshot())
	res.Note = fmt.Sprintf("batches of %d, %d concurrent requests from one process, bodies rendered and batched before the clock starts, no retries", size, conc)
	return res, nil
}

// postBatch sends one batch and reports whether the endpoint took it.
func (p *poster) postBatch(ctx context.Context, body []byte, items int64) bool {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Herald-Batch-Size", strconv.FormatInt(items, 10))
	resp, err := p.client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	p.lat.observe(time.Since(start))
	return resp.StatusCode == http.StatusOK
}

// judgeBatch adds the batch scenario's targets to the batched run, given
// the unbatched run and the plain batched baseline.
func judgeBatch(r *Result, one, plain *Result) {
	if one != nil && one.MsgsPerS > 0 {
		x := r.MsgsPerS / one.MsgsPerS
		r.RatioToBatch1 = &x
		r.check("at least 5x batch_size 1", x >= 5, "%.0f msgs/s against %.0f: x%.2f", r.MsgsPerS, one.MsgsPerS, x)
	}
	if plain != nil && plain.MsgsPerS > 0 {
		x := r.MsgsPerS / plain.MsgsPerS
		r.RatioToPlain = &x
		r.check("at least 0.9 of the plain batched sender", x >= 0.9, "%.0f msgs/s against %.0f: x%.2f", r.MsgsPerS, plain.MsgsPerS, x)
	}
}
