package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/herald-dev/herald/internal/sleep"
	"github.com/herald-dev/herald/signature"
)

// errRetryPastDeadline stops a delivery whose next attempt would fall after
// its context's deadline; waiting for it would only end in Aborted later.
var errRetryPastDeadline = errors.New("delivery: next attempt would be past the context deadline")

// snippetBytes is how much of a refusing response's body a Reason quotes.
const snippetBytes = 160

// call is the state of one Send or SendBatch through its attempts. Calls
// are pooled by the Sender and reused.
type call struct {
	s  *Sender
	id uint64 // tells the breaker's marks of different deliveries apart

	attempts int           // requests started
	spent    int           // attempts counted towards MaxAttempts
	probe    bool          // the attempt under way is the breaker's probe
	waited   time.Duration // time spent waiting on the open breaker, in all
	verdict  verdict
	status   int
	err      error         // the last attempt's transport error
	stopped  string        // why the context stopped the delivery, if it did
	wait     time.Duration // the wait checkRetry chose before the next attempt

	drain   io.LimitedReader
	buf     [snippetBytes]byte
	snippet []byte // the start of the last refusing response's body, in buf

	answerBuf []byte            // a batch answer's bytes, read anew into it for every request
	body      []byte            // the message, for signing
	signer    *signature.Signer // nil when unsigned; kept with the pooled call
	sig       []byte            // the last signature header value
}

// maxKeptAnswer is the most answer buffer a pooled call keeps: the answer
// to a batch of 100 is about 7 KiB.
const maxKeptAnswer = 64 << 10

func (s *Sender) getCall() *call {
	if c, ok := s.calls.Get().(*call); ok {
		c.id = s.callSeq.Add(1)
		return c
	}
	c := &call{s: s, id: s.callSeq.Add(1)}
	if s.cfg.SigningKeys != nil {
		// Validate checked the keys.
		c.signer, _ = signature.NewSigner(s.cfg.SigningKeys)
	}
	return c
}

func (s *Sender) putCall(c *call) {
	c.unprobe()
	c.spent, c.waited = 0, 0
	c.attempts, c.verdict, c.status, c.err, c.stopped, c.wait = 0, 0, 0, nil, "", 0
	c.snippet, c.body = nil, nil
	if cap(c.answerBuf) > maxKeptAnswer {
		c.answerBuf = nil
	}
	s.calls.Put(c)
}

// do makes a delivery's attempts, req the first, until checkRetry stops
// them, waiting between them as it chose and on the circuit breaker
// (admit). Every attempt is a request of its own with the same headers and
// body: net/http may still be reading the previous one. It returns the
// error that ended the attempts: the last attempt's transport error, or
// why checkRetry or the context stopped them; nil when the last attempt
// was answered.
func (c *call) do(ctx context.Context, req *http.Request) error {
	for {
		if c.signer != nil {
			c.sign(req)
		}
		resp, err := c.s.rt.RoundTrip(req)
		retry, cerr := c.checkRetry(ctx, resp, err)
		if resp != nil {
			// checkRetry has read what it wanted of the body.
			resp.Body.Close()
		}
		if cerr != nil {
			err = cerr
		}
		if !retry {
			return err
		}
		if !sleep.For(ctx, c.wait) {
			return ctx.Err()
		}
		if err := c.admit(ctx); err != nil {
			return err
		}
		req = req.Clone(ctx)
		req.Body, _ = req.GetBody()
	}
}

// sign signs the body with the attempt's own time, so a delivery retried
// for minutes is not refused as stale.
func (c *call) sign(req *http.Request) {
	c.sig = c.signer.AppendHeader(c.sig[:0], c.s.now(), c.body)
	req.Header[signature.Header] = []string{string(c.sig)}
}

// admit holds the attempt about to start while the circuit breaker is
// open, until it may go (as the probe, or because the breaker closed) or
// the delivery has waited BreakerMaxWait in all. It is called before
// every attempt; Fence and
// Allow are checked after it, in the transport, right before the request
// goes out. An error means ctx ended: nothing more may be sent.
func (c *call) admit(ctx context.Context) error {
	b := c.s.breaker
	if !b.isOpen() {
		return nil
	}
	limit := time.Duration(-1)
	if maxWait := c.s.cfg.BreakerMaxWait; maxWait >= 0 {
		if limit = maxWait - c.waited; limit <= 0 {
			return nil
		}
	}
	start := time.Now()
	probe, err := b.wait(ctx, limit)
	c.waited += time.Since(start)
	if err != nil {
		c.stopped = "context ended while waiting for the endpoint to recover: " + context.Cause(ctx).Error()
		return err
	}
	c.probe = probe
	return nil
}

// patient reports whether the delivery may still wait on the breaker.
func (c *call) patient() bool {
	return c.s.cfg.BreakerMaxWait < 0 || c.waited < c.s.cfg.BreakerMaxWait
}

// unprobe gives the breaker's probe slot back if the attempt holding it
// was never sent.
func (c *call) unprobe() {
	if c.probe {
		c.probe = false
		c.s.breaker.abandon()
	}
}

// report tells the breaker the attempt's verdict and returns whether the
// breaker is open afterwards. An attempt that ctx cut short says nothing
// about the endpoint.
func (c *call) report(ctx context.Context, err error, retryAfter string) (open bool) {
	if err != nil && ctx.Err() != nil {
		c.unprobe()
		return c.s.breaker.isOpen()
	}
	wait := time.Duration(-1)
	if c.verdict == verdictRetryAfter {
		if d, ok := ParseRetryAfter(retryAfter, c.s.now()); ok {
			wait = d
		}
	}
	probe := c.probe
	c.probe = false
	return c.s.breaker.record(probe, c.verdict, wait, c.id)
}

// checkRetry runs after every attempt: it
// counts the attempt, reads the response body so the connection goes back
// to the pool before any wait, applies classify, and for a retry chooses
// the wait and checks that the context allows it. A transient failure
// while the circuit breaker is open is the outage's, not the message's: it
// does not count towards MaxAttempts, and the breaker, not backoff, paces
// the retry.
func (c *call) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if errors.Is(err, ErrFenced) {
		// Nothing went out: not an attempt, and no further one may start.
		c.unprobe()
		c.stopped = err.Error()
		return false, err
	}
	if errors.Is(err, ErrNotAllowed) {
		// Nothing went out, and no retry can make the URL allowed.
		c.unprobe()
		c.verdict, c.status, c.err = verdictPermanent, 0, err
		return false, nil
	}
	c.attempts++
	c.status, c.err = 0, err
	if resp != nil {
		c.status = resp.StatusCode
		c.consume(resp)
	} else if err != nil && strings.Contains(err.Error(), "response headers exceeded") {
		// net/http's refusal of an answer past MaxResponseHeaderBytes has
		// no error value of its own; its text is checked by a test.
		c.s.limit(LimitResponseHeaders)
	}
	c.s.metrics.attempt(c.status)
	c.verdict = classify(c.status, err)
	var retryAfter string
	if resp != nil {
		retryAfter = resp.Header.Get("Retry-After")
	}
	open := c.report(ctx, err, retryAfter)
	if c.verdict == verdictDelivered || c.verdict == verdictPermanent {
		return false, nil
	}
	if ctx.Err() != nil {
		// The worker lost this work (its claim, or its lease deadline):
		// no further attempt may go out.
		c.stopped = "context ended: " + context.Cause(ctx).Error()
		return false, ctx.Err()
	}
	outage := open && c.patient()
	if !outage && !c.s.breaker.onset() {
		c.spent++
	}
	if c.spent >= c.s.cfg.MaxAttempts {
		return false, nil
	}
	if outage {
		c.wait = 0 // admit holds the retry until the breaker lets it go
		c.s.metrics.retry()
		if c.s.log.Enabled(ctx, slog.LevelDebug) {
			c.s.log.Debug("delivery: endpoint down; retry waits for it", "attempt", c.attempts, "answer", describe(c.status, err))
		}
		return true, nil
	}
	now := c.s.now()
	wait := retryWait(c.s.cfg, c.verdict, retryAfter, c.attempts, now, c.s.randN)
	if deadline, ok := ctx.Deadline(); ok && now.Add(wait).After(deadline) {
		c.stopped = fmt.Sprintf("next attempt due in %v, after the context deadline", wait)
		return false, errRetryPastDeadline
	}
	c.wait = c.s.sleepFor(wait)
	c.s.metrics.retry()
	if c.s.log.Enabled(ctx, slog.LevelDebug) {
		c.s.log.Debug("delivery: retrying", "attempt", c.attempts, "answer", describe(c.status, err), "wait", wait)
	}
	return true, nil
}

// consume reads up to MaxResponseBytes of a response body, keeping the
// start of a non-2xx one for the Reason. Reading to the end is what lets
// net/http reuse the connection; a longer body costs the connection
// instead, when the body is closed, and is counted as a limit passed.
func (c *call) consume(resp *http.Response) {
	limit := c.s.cfg.MaxResponseBytes
	c.snippet = nil
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		n, _ := io.ReadFull(resp.Body, c.buf[:min(int64(len(c.buf)), limit)])
		c.snippet = c.buf[:n]
		limit -= int64(n)
	}
	// One byte past the limit tells a body of exactly the limit from a
	// longer one.
	c.drain = io.LimitedReader{R: resp.Body, N: limit + 1}
	_, _ = io.Copy(io.Discard, &c.drain)
	c.drain.R = nil
	if c.drain.N == 0 {
		c.s.limit(LimitResponseBody)
	}
}

// result turns the finished call into a Result. err is what do
// returned.
func (c *call) result(ctx context.Context, err error) Result {
	r := Result{Status: c.status, Attempts: c.attempts}
	switch {
	case c.verdict == verdictDelivered:
		r.Outcome = Delivered
	case c.verdict == verdictPermanent && c.attempts == 0:
		r.Outcome, r.Reason = Failed, "not sent: "+c.answer()
	case c.verdict == verdictPermanent:
		r.Outcome, r.Reason = Failed, c.answer()
	case c.stopped != "":
		r.Outcome, r.Reason = Aborted, c.stopped
	case ctx.Err() != nil:
		// Do returned from its wait between attempts.
		r.Outcome = Aborted
		r.Reason = "context ended while waiting to retry: " + context.Cause(ctx).Error()
	case c.attempts == 0:
		r.Outcome, r.Reason = Failed, "not sent: "+describe(0, err)
	default:
		r.Outcome = Failed
		r.Reason = fmt.Sprintf("gave up after %d attempts: %s", c.attempts, c.answer())
	}
	return r
}

// answer describes the last attempt's answer, quoting the start of a
// refusing response's body when it has one.
func (c *call) answer() string {
	d := describe(c.status, c.err)
	if quote := printable(c.snippet); quote != "" {
		d += ": " + quote
	}
	return d
}

// printable makes an endpoint's bytes safe to put in a one-line reason.
func printable(b []byte) string {
	s := strings.ToValidUTF8(string(b), "?")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}
