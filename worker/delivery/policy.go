package delivery

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// verdict is what one attempt's answer means for its delivery.
type verdict int

const (
	verdictDelivered  verdict = iota + 1 // done: the endpoint has the message
	verdictPermanent                     // done: failed, and asking again cannot help
	verdictRetry                         // try again after exponential backoff
	verdictRetryAfter                    // try again when the endpoint's Retry-After says
)

// classify is Herald's delivery policy (the table in docs/CONTRACTS.md, "A
// delivery"), the one place that decides whether an attempt's answer ends
// the delivery or earns another attempt. status is the response code, 0
// when err says why there was none.
//
//	answer                                  verdict
//	2xx                                     delivered
//	409 Conflict                            delivered: the endpoint already had this key
//	429 Too Many Requests, 503 Unavailable  retry when Retry-After says, else backoff
//	any other 5xx                           retry after backoff
//	timeout, refused or broken connection   retry after backoff
//	TLS certificate rejected                failed: no retry can fix the certificate
//	1xx, 3xx, any other 4xx                 failed: redirects are not followed, a POST
//	                                        must not turn into a GET elsewhere
//
// Whether a retry actually happens also depends on the attempts left and the
// caller's context; that is the Sender's business, not the policy's.
func classify(status int, err error) verdict {
	if err != nil {
		if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
			return verdictPermanent
		}
		return verdictRetry
	}
	switch {
	case status >= 200 && status <= 299, status == http.StatusConflict:
		return verdictDelivered
	case status == http.StatusTooManyRequests, status == http.StatusServiceUnavailable:
		return verdictRetryAfter
	case status >= 500 && status <= 599:
		return verdictRetry
	default:
		return verdictPermanent
	}
}

// retryWait is how long to wait after attempt n (1 for the first) before
// the next. A Retry-After the endpoint sent with a verdictRetryAfter answer
// is followed, though never sooner than BackoffMin (so "0" or a past date
// cannot make a pool of senders spin) nor later than MaxRetryAfter;
// otherwise the wait is exponential backoff with jitter.
func retryWait(cfg Config, v verdict, retryAfter string, n int, now time.Time, randN func(int64) int64) time.Duration {
	if v == verdictRetryAfter {
		if d, ok := ParseRetryAfter(retryAfter, now); ok {
			return min(max(d, cfg.BackoffMin), cfg.MaxRetryAfter)
		}
	}
	return Backoff(cfg.BackoffMin, cfg.BackoffMax, n, randN)
}

// Backoff returns a wait drawn uniformly from [lo, min(hi, lo·2^n)]: the
// ceiling doubles with each attempt, and the draw spreads the retries of
// many senders hit by the same outage instead of sending them back in
// step. lo stays a floor so a retry never hammers the endpoint at once.
func Backoff(lo, hi time.Duration, n int, randN func(int64) int64) time.Duration {
	ceil := lo
	for i := 0; i < n && ceil < hi; i++ {
		if ceil > hi/2 {
			ceil = hi
			break
		}
		ceil *= 2
	}
	ceil = min(ceil, hi)
	if ceil <= lo {
		return lo
	}
	return lo + time.Duration(randN(int64(ceil-lo)+1))
}

// maxRetryAfterSeconds keeps a huge header from overflowing a Duration;
// anything this long is capped by MaxRetryAfter anyway.
const maxRetryAfterSeconds = 1 << 32

// ParseRetryAfter reads a Retry-After value: delta seconds ("120") or an
// HTTP date, which counts from now and means 0 once past.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(min(secs, maxRetryAfterSeconds)) * time.Second, true
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(at.Sub(now), 0), true
}

// describe names an attempt's answer for a Result's Reason: the status, or
// the transport error without the URL (which may carry credentials).
func describe(status int, err error) string {
	if err == nil {
		if text := http.StatusText(status); text != "" {
			return "status " + strconv.Itoa(status) + " " + text
		}
		return "status " + strconv.Itoa(status)
	}
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout: " + err.Error()
	}
	return err.Error()
}
