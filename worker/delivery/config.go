package delivery

import (
	"errors"
	"fmt"
	"time"
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
	}
	return nil
}
