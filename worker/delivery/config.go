package delivery

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"time"

	"github.com/herald-dev/herald/signature"
)

// ErrInvalidConfig is wrapped by every Config.Validate failure.
var ErrInvalidConfig = errors.New("delivery: invalid config")

// Defaults applied to zero Config fields.
const (
	DefaultMaxInFlight      = 64 // SPEC endpoint.max_in_flight default
	DefaultTimeout          = 5 * time.Second
	DefaultMaxAttempts      = 6
	DefaultBackoffMin       = 100 * time.Millisecond
	DefaultBackoffMax       = 10 * time.Second
	DefaultMaxRetryAfter    = 60 * time.Second
	DefaultMaxResponseBytes = 64 << 10
	// DefaultMaxResponseHeaderBytes bounds an answer's headers; net/http's
	// own default is 10 MiB, far more than an endpoint needs to say.
	DefaultMaxResponseHeaderBytes = 64 << 10

	// The circuit breaker's defaults (see Config.BreakerRatio). An outage
	// fails nearly every attempt; an endpoint that fails even half of them
	// at random rarely fails 16 of 20 in a row, so it keeps sending.
	DefaultBreakerRatio       = 0.8
	DefaultBreakerAttempts    = 20
	DefaultBreakerMinAttempts = 10
	DefaultBreakerWindow      = 10 * time.Second
	DefaultBreakerProbeMax    = 5 * time.Second
	DefaultBreakerMaxWait     = 5 * time.Minute
)

// Names of the limits an endpoint's answer can exceed, as passed to
// Config.OnLimit.
const (
	LimitResponseBody    = "response_body_bytes"
	LimitResponseHeaders = "response_header_bytes"
)

// maxInFlightLimit keeps a typo from opening tens of thousands of sockets.
const maxInFlightLimit = 10_000

// maxBreakerAttempts bounds the verdicts a breaker keeps and scans per
// attempt.
const maxBreakerAttempts = 1000

// Config tunes a Sender. The zero value is usable: every zero field means
// the documented default.
type Config struct {
	// MaxInFlight is how many goroutines call Send at once; the Sender's
	// own connection pool keeps that many keep-alive connections per
	// endpoint host. Zero means 64.
	MaxInFlight int
	// Pool, when set, is the connection pool the Sender sends over instead
	// of one of its own, shared with other Senders (NewPool); its bounds
	// are then the pool's, and Close leaves it open. Nil means a pool of
	// the Sender's own, sized by MaxInFlight.
	Pool *Pool
	// HTTP2 picks the HTTP versions spoken (the spec's endpoint.http2):
	// HTTP2Auto, HTTP2Off or HTTP2H2C. Empty means HTTP2Auto.
	HTTP2 string
	// Timeout bounds one attempt: connecting, sending, and reading the
	// response. Zero means 5 s.
	Timeout time.Duration
	// MaxAttempts counts the first attempt too. Attempts that fail
	// transiently while the circuit breaker is open do not count (see
	// BreakerRatio). Zero means 6.
	MaxAttempts int
	// BackoffMin and BackoffMax bound the wait before a retry that has no
	// Retry-After to follow. Zero means 100 ms and 10 s.
	BackoffMin, BackoffMax time.Duration
	// MaxRetryAfter caps how long a Retry-After can make a delivery wait
	// before its next attempt. Zero means 60 s.
	MaxRetryAfter time.Duration
	// MaxResponseBytes is how much of a response body is read (and
	// discarded) so its connection can be reused; a longer body costs the
	// connection instead. Zero means 64 KiB.
	MaxResponseBytes int64
	// MaxResponseHeaderBytes bounds the headers of an answer; an answer
	// with more fails that attempt like a broken connection. Zero means
	// 64 KiB.
	MaxResponseHeaderBytes int64
	// OnLimit, when set, is called with LimitResponseBody or
	// LimitResponseHeaders each time an answer passes that limit, so the
	// caller can count them. It must be quick and safe for concurrent use.
	OnLimit func(limit string)

	// Allow, when set, is asked before every attempt whether the URL about
	// to be dialed may be sent to; an error fails the delivery at once,
	// with nothing sent, its message as the reason. The worker checks the
	// endpoint allowlist here as well as at intake, so a spec that reached
	// etcd some other way still sends nowhere it should not. Nil means
	// every URL is allowed.
	Allow func(u *url.URL) error
	// SigningKeys, when set, sign every attempt with a Herald-Signature
	// header (package signature): one v1 entry per key, at most two, each
	// of 16 to 1024 bytes. Nil means unsigned.
	SigningKeys [][]byte
	// Authorization, when set, is sent as the Authorization header of
	// every attempt, as is: "Bearer <token>", "Basic <base64>", ... It
	// must be a valid header value. Empty means none.
	Authorization string
	// Fence, when set, is asked just before every attempt goes out whether
	// this process may still send; an error stops the delivery as Aborted
	// with nothing sent. A worker fences on its lease deadline, so an
	// attempt never starts once the lease may have expired on the server,
	// however long the delivery waited between attempts (or on the circuit
	// breaker). Nil means always.
	Fence func() error

	// BreakerRatio is the share of recent attempts that must have failed
	// transiently (5xx, 429, a timeout or connection error) for the
	// Sender's circuit breaker to open: the endpoint is taken to be down,
	// every attempt waits, one probe at a time goes out, and the first
	// answer that is not a transient failure closes it. Transient failures
	// while it is open do not count towards MaxAttempts. Zero means 0.8; a
	// negative value disables the breaker; at most 1.
	BreakerRatio float64
	// BreakerAttempts is how many of the most recent attempts are judged.
	// Zero means 20.
	BreakerAttempts int
	// BreakerMinAttempts is how many recent attempts must be there before
	// the breaker can open. Zero means 10; at most BreakerAttempts.
	BreakerMinAttempts int
	// BreakerWindow is how recent an attempt must be to be judged. Zero
	// means 10 s.
	BreakerWindow time.Duration
	// BreakerProbeMax caps the interval between probes, which doubles from
	// BackoffMin while the endpoint stays down (a Retry-After the endpoint
	// sent is followed instead, up to MaxRetryAfter). Zero means 5 s.
	BreakerProbeMax time.Duration
	// BreakerMaxWait is how long, in all, one delivery waits on the open
	// breaker before it stops waiting: from then on it is sent whatever
	// the breaker says and all its attempts count, so a broadcast cannot
	// stall for good on messages the endpoint alone keeps failing. Zero
	// means 5 min; negative means no limit.
	BreakerMaxWait time.Duration
}

// withDefaults returns cfg with zero fields replaced by defaults.
func (cfg Config) withDefaults() Config {
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.BackoffMin == 0 {
		cfg.BackoffMin = DefaultBackoffMin
	}
	if cfg.BackoffMax == 0 {
		cfg.BackoffMax = DefaultBackoffMax
	}
	if cfg.MaxRetryAfter == 0 {
		cfg.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if cfg.MaxResponseHeaderBytes == 0 {
		cfg.MaxResponseHeaderBytes = DefaultMaxResponseHeaderBytes
	}
	if cfg.BreakerRatio == 0 {
		cfg.BreakerRatio = DefaultBreakerRatio
	}
	if cfg.BreakerAttempts == 0 {
		cfg.BreakerAttempts = DefaultBreakerAttempts
	}
	if cfg.BreakerMinAttempts == 0 {
		cfg.BreakerMinAttempts = min(DefaultBreakerMinAttempts, cfg.BreakerAttempts)
	}
	if cfg.BreakerWindow == 0 {
		cfg.BreakerWindow = DefaultBreakerWindow
	}
	if cfg.BreakerProbeMax == 0 {
		cfg.BreakerProbeMax = DefaultBreakerProbeMax
	}
	if cfg.BreakerMaxWait == 0 {
		cfg.BreakerMaxWait = DefaultBreakerMaxWait
	}
	return cfg
}

// Validate reports the first field that is out of range once defaults are
// applied.
func (cfg Config) Validate() error {
	c := cfg.withDefaults()
	switch {
	case c.MaxInFlight < 0 || c.MaxInFlight > maxInFlightLimit:
		return fmt.Errorf("%w: MaxInFlight %d not in 1..%d", ErrInvalidConfig, c.MaxInFlight, maxInFlightLimit)
	case c.Timeout < 0:
		return fmt.Errorf("%w: Timeout %v is negative", ErrInvalidConfig, c.Timeout)
	case c.MaxAttempts < 0:
		return fmt.Errorf("%w: MaxAttempts %d is negative", ErrInvalidConfig, c.MaxAttempts)
	case c.BackoffMin < 0 || c.BackoffMax < 0:
		return fmt.Errorf("%w: backoff %v..%v is negative", ErrInvalidConfig, c.BackoffMin, c.BackoffMax)
	case c.BackoffMin > c.BackoffMax:
		return fmt.Errorf("%w: BackoffMin %v above BackoffMax %v", ErrInvalidConfig, c.BackoffMin, c.BackoffMax)
	case c.MaxRetryAfter < 0:
		return fmt.Errorf("%w: MaxRetryAfter %v is negative", ErrInvalidConfig, c.MaxRetryAfter)
	case c.MaxResponseBytes < 0:
		return fmt.Errorf("%w: MaxResponseBytes %d is negative", ErrInvalidConfig, c.MaxResponseBytes)
	case c.MaxResponseHeaderBytes < 0:
		return fmt.Errorf("%w: MaxResponseHeaderBytes %d is negative", ErrInvalidConfig, c.MaxResponseHeaderBytes)
	case math.IsNaN(c.BreakerRatio) || c.BreakerRatio > 1:
		return fmt.Errorf("%w: BreakerRatio %v not negative or in (0, 1]", ErrInvalidConfig, c.BreakerRatio)
	case c.BreakerAttempts < 0 || c.BreakerAttempts > maxBreakerAttempts:
		return fmt.Errorf("%w: BreakerAttempts %d not in 1..%d", ErrInvalidConfig, c.BreakerAttempts, maxBreakerAttempts)
	case c.BreakerMinAttempts < 0 || c.BreakerMinAttempts > c.BreakerAttempts:
		return fmt.Errorf("%w: BreakerMinAttempts %d not in 1..BreakerAttempts (%d)", ErrInvalidConfig, c.BreakerMinAttempts, c.BreakerAttempts)
	case c.BreakerWindow < 0:
		return fmt.Errorf("%w: BreakerWindow %v is negative", ErrInvalidConfig, c.BreakerWindow)
	case c.BreakerProbeMax < 0:
		return fmt.Errorf("%w: BreakerProbeMax %v is negative", ErrInvalidConfig, c.BreakerProbeMax)
	case c.HTTP2 != "" && c.HTTP2 != HTTP2Auto && c.HTTP2 != HTTP2Off && c.HTTP2 != HTTP2H2C:
		return fmt.Errorf("%w: HTTP2 %q not %q, %q or %q", ErrInvalidConfig, c.HTTP2, HTTP2Auto, HTTP2Off, HTTP2H2C)
	case !validHeaderValue(c.Authorization):
		// The value itself is a secret: never put it in an error.
		return fmt.Errorf("%w: Authorization is not a valid header value (control characters)", ErrInvalidConfig)
	}
	if c.SigningKeys != nil {
		if _, err := signature.NewSigner(c.SigningKeys); err != nil {
			return fmt.Errorf("%w: SigningKeys: %w", ErrInvalidConfig, err)
		}
	}
	return nil
}

// validHeaderValue reports whether v can be sent as a header value as is:
// no control characters but tab, so it cannot end the header early.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
