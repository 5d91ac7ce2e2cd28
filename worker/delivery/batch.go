package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	neturl "net/url"
	"strconv"
	"time"

	"github.com/herald-dev/herald/internal/sleep"
	"github.com/herald-dev/herald/signature"
)

// A batch is several deliveries in one request: a JSON array of the
// bodies Send would POST one by one, answered with a result for each item
// (docs/CONTRACTS.md, "A batch of deliveries"). Each item keeps its own
// idempotency key, attempts and outcome: an item the endpoint takes is
// finished, an item it refuses for good fails, and the items it asks to
// have again go out again, in a smaller batch, as Send would retry them.

// Item is one delivery of a batch: its idempotency key and its JSON
// object, the body Send would POST for it alone.
type Item struct {
	Key  string
	Body []byte
}

// MaxBatchBytes is the most body a batch request carries. A batch whose
// items add up to more goes out as several requests, each under the limit
// (an item larger than the limit goes alone).
const MaxBatchBytes = 1 << 20

// maxBatchItems bounds a batch request, whatever the caller passes: the
// largest endpoint.batch_size.
const maxBatchItems = 1000

// batchAnswerBytesPerItem is what a batch answer may add to
// MaxResponseBytes for each item it answers for.
const batchAnswerBytesPerItem = 512

// batchAnswer is the body of a 2xx answer to a batch: one result per item,
// in the request's order.
type batchAnswer struct {
	Results []itemAnswer `json:"results"`
}

type itemAnswer struct {
	Key    string `json:"idempotency_key"`
	Status int    `json:"status"`
	// RetryAfter is in seconds; it is followed for a 429 or 503 item as a
	// Retry-After header is for a whole answer.
	RetryAfter *float64 `json:"retry_after,omitempty"`
	Error      string   `json:"error,omitempty"`
}

// errBatchAnswer marks a 2xx answer to a batch that does not say what
// became of each item; the items are sent again, as after a 5xx.
var errBatchAnswer = errors.New("delivery: batch answer")

// batchItem is the state of one item while its batch is sent.
type batchItem struct {
	spent   int     // attempts counted towards MaxAttempts
	verdict verdict // of the last attempt that included it
	status  int
	reason  string        // the last answer, described
	wait    time.Duration // before the item may go again
	done    bool
}

// SendBatch delivers items, each under its own idempotency key, in
// requests of up to len(items) deliveries and MaxBatchBytes of body, and
// writes each item's Result to results[i] (len(results) must be at least
// len(items)). It retries every item that is not finished, in smaller
// requests as items finish, until each is delivered, has failed, or ctx
// ends; live, when not nil, is asked before every request whether item i
// may still be sent, and an item it refuses is Aborted. The fence, the
// allow-list and the circuit breaker apply to every request as they do to
// Send's attempts.
//
// As with Send, do not reuse the items' memory for other messages.
func (s *Sender) SendBatch(ctx context.Context, url string, items []Item, live func(i int) bool, results []Result) {
	start := time.Now()
	results = results[:len(items)]
	for lo := 0; lo < len(items); {
		hi, size := lo, 2 // the brackets
		for hi < len(items) && hi-lo < maxBatchItems {
			n := len(items[hi].Body) + 1
			if hi > lo && size+n > MaxBatchBytes {
				break
			}
			size += n
			hi++
		}
		s.sendBatch(ctx, url, items[lo:hi], lo, live, results[lo:hi])
		lo = hi
	}
	for i := range results {
		results[i].Latency = time.Since(start)
		s.metrics.result(results[i])
	}
}

// sendBatch sends one request's worth of items (at most MaxBatchBytes of
// them) until each is finished; base is the index of items[0] for live.
func (s *Sender) sendBatch(ctx context.Context, url string, items []Item, base int, live func(int) bool, results []Result) {
	state := make([]batchItem, len(items))
	for i := range results {
		results[i] = Result{}
	}
	finish := func(i int, out Outcome, reason string) {
		state[i].done = true
		results[i].Outcome, results[i].Reason = out, reason
	}
	for i, it := range items {
		if !validKey(it.Key) {
			finish(i, Failed, "not sent: idempotency key must be 1 to 200 printable ASCII characters")
		}
	}
	if u, err := neturl.Parse(url); err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		reason := "not sent: endpoint url must be http or https"
		if err != nil {
			reason = "not sent: " + describe(0, err)
		}
		for i := range items {
			if !state[i].done {
				finish(i, Failed, reason)
			}
		}
		return
	}
	c := s.getCall()
	defer s.putCall(c)
	open := make([]int, 0, len(items))
	var body []byte
	for attempt := 1; ; attempt++ {
		open = open[:0]
		for i := range items {
			switch {
			case state[i].done:
			case ctx.Err() != nil:
				finish(i, Aborted, "not sent: "+context.Cause(ctx).Error())
			case live != nil && !live(base+i):
				finish(i, Aborted, "not sent: its work ended")
			default:
				open = append(open, i)
			}
		}
		if len(open) == 0 {
			return
		}
		if err := c.admit(ctx); err != nil {
			for _, i := range open {
				finish(i, Aborted, "not sent: "+c.stopped)
			}
			return
		}
		// A fresh body for every request: net/http may still be writing the
		// last one.
		body = appendBatch(make([]byte, 0, batchSize(items, open)), items, open)
		status, retryAfter, answer, err := s.postBatch(ctx, c, url, body, len(open))
		switch {
		case errors.Is(err, ErrFenced):
			c.unprobe()
			for _, i := range open {
				finish(i, Aborted, err.Error())
			}
			return
		case errors.Is(err, ErrNotAllowed):
			c.unprobe()
			for _, i := range open {
				finish(i, Failed, "not sent: "+describe(0, err))
			}
			return
		}
		c.verdict = classify(status, err)
		items2xx := c.verdict == verdictDelivered && status != http.StatusConflict
		var perItem []itemAnswer
		if items2xx {
			if perItem, err = readAnswer(status, answer, items, open); err != nil {
				// Taken, but not answered for: the items go again, and an
				// endpoint that never answers properly fails them in the end.
				c.verdict = verdictRetry
			}
		}
		whole := describe(status, err)
		if err == nil && !items2xx && len(answer) > 0 {
			if quote := printable(answer[:min(len(answer), snippetBytes)]); quote != "" {
				whole += ": " + quote
			}
		}
		breakerOpen := c.report(ctx, err, retryAfter)
		outage := breakerOpen && c.patient()
		// A whole request failed as an outage begins: as in Send, the
		// items' attempts do not count (breaker.onset).
		onset := !outage && perItem == nil && (c.verdict == verdictRetry || c.verdict == verdictRetryAfter) && s.breaker.onset()
		now := s.now()
		var wait time.Duration
		retrying := 0
		for k, i := range open {
			st := &state[i]
			results[i].Attempts++
			results[i].Status = status
			st.verdict, st.status, st.reason = c.verdict, status, whole
			itemWait := time.Duration(-1)
			if perItem != nil {
				a := perItem[k]
				st.verdict, st.status, results[i].Status = classify(a.Status, nil), a.Status, a.Status
				st.reason = describe(a.Status, nil)
				if a.Error != "" {
					st.reason += ": " + printable([]byte(a.Error[:min(len(a.Error), snippetBytes)]))
				}
				if a.RetryAfter != nil && st.verdict == verdictRetryAfter {
					itemWait = time.Duration(min(max(*a.RetryAfter, 0), float64(maxRetryAfterSeconds)) * float64(time.Second))
				}
			}
			switch st.verdict {
			case verdictDelivered:
				finish(i, Delivered, "")
				continue
			case verdictPermanent:
				finish(i, Failed, st.reason)
				continue
			}
			// Items the endpoint asked for again count an attempt each; a
			// whole request lost while the endpoint is down does not (as
			// for Send).
			if (!outage && !onset) || perItem != nil {
				st.spent++
			}
			if st.spent >= s.cfg.MaxAttempts {
				finish(i, Failed, fmt.Sprintf("gave up after %d attempts: %s", results[i].Attempts, st.reason))
				continue
			}
			retrying++
			if itemWait >= 0 {
				itemWait = min(max(itemWait, s.cfg.BackoffMin), s.cfg.MaxRetryAfter)
			} else {
				itemWait = retryWait(s.cfg, st.verdict, retryAfter, attempt, now, s.randN)
			}
			wait = max(wait, itemWait)
		}
		s.metrics.attempt(status)
		if retrying == 0 {
			continue // nothing open: the next round returns
		}
		if ctx.Err() != nil {
			continue // the next round aborts what is open
		}
		if outage && perItem == nil {
			wait = 0 // admit holds the retry until the breaker lets it go
		} else if deadline, ok := ctx.Deadline(); ok && now.Add(wait).After(deadline) {
			for _, i := range open {
				if !state[i].done {
					finish(i, Aborted, fmt.Sprintf("next attempt due in %v, after the context deadline", wait))
				}
			}
			return
		}
		s.metrics.retry()
		if s.log.Enabled(ctx, slog.LevelDebug) {
			s.log.Debug("delivery: retrying part of a batch", "items", retrying, "of", len(open), "answer", whole, "wait", wait)
		}
		if !sleep.For(ctx, s.sleepFor(wait)) {
			continue
		}
	}
}

// postBatch makes one request of a batch and reads its answer: the status
// (0 when there was none), the Retry-After header, and the body, up to
// MaxResponseBytes plus batchAnswerBytesPerItem for each item.
func (s *Sender) postBatch(ctx context.Context, c *call, url string, body []byte, n int) (int, string, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", nil, err // sendBatch checked the URL
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(BatchHeader, strconv.Itoa(n))
	if s.cfg.Authorization != "" {
		req.Header.Set("Authorization", s.cfg.Authorization)
	}
	if c.signer != nil {
		c.sig = c.signer.AppendHeader(c.sig[:0], s.now(), body)
		req.Header.Set(signature.Header, string(c.sig))
	}
	resp, err := s.rt.RoundTrip(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	status, retryAfter := resp.StatusCode, resp.Header.Get("Retry-After")
	ok := status >= 200 && status <= 299
	limit := s.cfg.MaxResponseBytes + int64(n)*batchAnswerBytesPerItem
	// Into the call's buffer: the answer is read before the next request.
	buf := bytes.NewBuffer(c.answerBuf[:0])
	_, err = buf.ReadFrom(io.LimitReader(resp.Body, limit+1))
	answer := buf.Bytes()
	c.answerBuf = answer
	switch {
	case int64(len(answer)) > limit:
		s.limit(LimitResponseBody)
		if ok {
			return status, retryAfter, nil, fmt.Errorf("%w: over %d bytes", errBatchAnswer, limit)
		}
		answer = answer[:limit]
	case err != nil && ok:
		return status, retryAfter, nil, fmt.Errorf("%w: reading it: %w", errBatchAnswer, err)
	}
	return status, retryAfter, answer, nil
}

// BatchHeader carries the number of deliveries in a batch request.
const BatchHeader = "Herald-Batch-Size"

// readAnswer reads a 2xx answer to the items open (indexes into items)
// and returns a result for each, in their order. An empty body means the
// endpoint took every item, each with the answer's status.
func readAnswer(status int, answer []byte, items []Item, open []int) ([]itemAnswer, error) {
	if len(bytes.TrimSpace(answer)) == 0 {
		all := make([]itemAnswer, len(open))
		for k, i := range open {
			all[k] = itemAnswer{Key: items[i].Key, Status: status}
		}
		return all, nil
	}
	if all, ok := scanAnswer(answer, items, open); ok {
		return all, nil
	}
	return jsonAnswer(answer, items, open)
}

// jsonAnswer is readAnswer for a non-empty answer, with encoding/json:
// for any answer scanAnswer does not take.
func jsonAnswer(answer []byte, items []Item, open []int) ([]itemAnswer, error) {
	var a batchAnswer
	if err := json.Unmarshal(answer, &a); err != nil {
		return nil, fmt.Errorf("%w: not a results object: %w", errBatchAnswer, err)
	}
	if len(a.Results) != len(open) {
		return nil, fmt.Errorf("%w: %d results for %d deliveries", errBatchAnswer, len(a.Results), len(open))
	}
	for k, i := range open {
		r := a.Results[k]
		if r.Key != items[i].Key {
			return nil, fmt.Errorf("%w: result %d is for key %q, want %q", errBatchAnswer, k, printable([]byte(r.Key[:min(len(r.Key), maxKeyLen)])), items[i].Key)
		}
		if r.Status < 100 || r.Status > 599 {
			return nil, fmt.Errorf("%w: result %d has status %d", errBatchAnswer, k, r.Status)
		}
	}
	return a.Results, nil
}

// batchSize is the length of the array of the open items.
func batchSize(items []Item, open []int) int {
	n := 2
	for _, i := range open {
		n += len(items[i].Body) + 1
	}
	return n
}

// appendBatch appends the JSON array of the open items' bodies to b.
func appendBatch(b []byte, items []Item, open []int) []byte {
	b = append(b, '[')
	for k, i := range open {
		if k > 0 {
			b = append(b, ',')
		}
		b = append(b, items[i].Body...)
	}
	return append(b, ']')
}
