package delivery

import (
	"errors"
	"fmt"
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
)

// Names of the limits an endpoint's answer can exceed, as passed to
// Config.OnLimit.
const (
	LimitResponseBody    = "response_body_bytes"
	LimitResponseHeaders = "response_header_bytes"
)

// maxInFlightLimit keeps a typo from opening tens of thousands of sockets.
const maxInFlightLimit = 10_000

// Config tunes a Sender. The zero value is usable: every zero field means
// the documented default.
type Config struct {
	// MaxInFlight is how many goroutines call Send at once; the connection
	// pool keeps that many keep-alive connections per endpoint host. Zero
	// means 64.
	MaxInFlight int
	// Timeout bounds one attempt: connecting, sending, and reading the
	// response. Zero means 5 s.
	Timeout time.Duration
	// MaxAttempts counts the first attempt too. Zero means 6.
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
	// however long the delivery waited between attempts. Nil means always.
	Fence func() error
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
