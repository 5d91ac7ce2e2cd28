package sink

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/herald-dev/herald/signature"
)

// ErrConfig reports an invalid Config.
var ErrConfig = errors.New("sink: invalid config")

// DefaultMaxBody is the largest delivery body read when Config.MaxBody is
// zero.
const DefaultMaxBody = 1 << 20

// DefaultMaxHeaderBytes bounds a request's line and headers when
// Config.MaxHeaderBytes is zero.
const DefaultMaxHeaderBytes = 16 << 10

// Config configures a Sink. The zero value accepts every delivery at once.
type Config struct {
	// Latency delays every delivery answer. Zero means none.
	Latency time.Duration
	// Jitter adds a uniformly random extra delay in [0, Jitter) to
	// Latency. Zero means none.
	Jitter time.Duration
	// Rate429 is the fraction of deliveries answered 429 Too Many
	// Requests, in [0, 1].
	Rate429 float64
	// Rate5xx is the fraction of deliveries answered 500 or 503 (evenly
	// split), in [0, 1]. Rate429 + Rate5xx must not exceed 1.
	Rate5xx float64
	// RetryAfter is announced in the Retry-After header of injected 429
	// and 503 answers, in whole seconds rounded up. Zero means 1 second.
	RetryAfter time.Duration
	// Retry refuses a fixed share of keys with 503 and Retry-After a
	// given number of times, chosen by key rather than at random. Zero
	// refuses none.
	Retry RetryKeys
	// Seed seeds the random choice of injected failures and jitter, so a
	// run with the same request order injects the same failures.
	Seed uint64
	// OutageFor makes the endpoint go down for a window: from OutageAfter
	// after the first delivery request of the counting period (the start
	// or the last reset) and for OutageFor, every delivery request is
	// answered OutageStatus at once, with Retry-After for 429 and 503.
	// Zero OutageFor means no outage.
	OutageAfter, OutageFor time.Duration
	// OutageStatus is the answer during the outage: 429 or a 5xx. Zero
	// means 503 Service Unavailable.
	OutageStatus int
	// Refuse400 is the fraction of idempotency keys, in [0, 1], refused
	// with 400 Bad Request every time they are posted: subscribers the
	// endpoint deems bad, which no retry can help. The keys are chosen by
	// their hash (Refuses), so every sink with the same fraction refuses
	// the same ones and a test can tell in advance which they are.
	Refuse400 float64
	// Strict rejects (400) and counts bodies that are not valid JSON and
	// keys that are not printable ASCII of at most 200 characters.
	Strict bool
	// MaxBody is the largest body accepted, in bytes. Zero means
	// DefaultMaxBody (1 MiB).
	MaxBody int64
	// MaxHeaderBytes bounds the request line and headers Run's server
	// reads; net/http answers 431 beyond it. Zero means
	// DefaultMaxHeaderBytes (16 KiB).
	MaxHeaderBytes int
	// VerifyKeys, when set, makes the sink check every delivery's
	// Herald-Signature with these keys (two while rotating) and refuse a
	// missing, malformed, stale or forged one with 401. Each key is at
	// least 16 bytes.
	VerifyKeys [][]byte
	// VerifyTolerance is how far a signature's time may be from the
	// sink's clock. Zero means signature.DefaultTolerance (5 minutes).
	VerifyTolerance time.Duration
	// Logger receives the server's errors. Nil means no logs.
	Logger *slog.Logger
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.Latency < 0:
		return fmt.Errorf("%w: negative latency %v", ErrConfig, c.Latency)
	case c.Jitter < 0:
		return fmt.Errorf("%w: negative jitter %v", ErrConfig, c.Jitter)
	case !(c.Rate429 >= 0 && c.Rate429 <= 1): // also refuses NaN
		return fmt.Errorf("%w: 429 rate %v outside [0, 1]", ErrConfig, c.Rate429)
	case !(c.Rate5xx >= 0 && c.Rate5xx <= 1):
		return fmt.Errorf("%w: 5xx rate %v outside [0, 1]", ErrConfig, c.Rate5xx)
	case c.Rate429+c.Rate5xx > 1:
		return fmt.Errorf("%w: 429 rate %v plus 5xx rate %v exceed 1", ErrConfig, c.Rate429, c.Rate5xx)
	case c.RetryAfter < 0:
		return fmt.Errorf("%w: negative retry-after %v", ErrConfig, c.RetryAfter)
	case c.MaxBody < 0:
		return fmt.Errorf("%w: negative max body %d", ErrConfig, c.MaxBody)
	case c.MaxHeaderBytes < 0:
		return fmt.Errorf("%w: negative max header bytes %d", ErrConfig, c.MaxHeaderBytes)
	case c.OutageAfter < 0 || c.OutageFor < 0:
		return fmt.Errorf("%w: negative outage time %v or length %v", ErrConfig, c.OutageAfter, c.OutageFor)
	case c.OutageStatus != 0 && c.OutageStatus != 429 && (c.OutageStatus < 500 || c.OutageStatus > 599):
		return fmt.Errorf("%w: outage status %d: want 429 or 5xx", ErrConfig, c.OutageStatus)
	case !(c.Refuse400 >= 0 && c.Refuse400 <= 1):
		return fmt.Errorf("%w: refused fraction %v outside [0, 1]", ErrConfig, c.Refuse400)
	case c.VerifyTolerance < 0:
		return fmt.Errorf("%w: negative signature tolerance %v", ErrConfig, c.VerifyTolerance)
	case c.VerifyKeys != nil && len(c.VerifyKeys) == 0:
		return fmt.Errorf("%w: verify keys given but empty", ErrConfig)
	}
	if err := c.Retry.validate(); err != nil {
		return err
	}
	for i, k := range c.VerifyKeys {
		if len(k) < signature.MinKeyBytes {
			return fmt.Errorf("%w: verify key %d is %d bytes, want at least %d", ErrConfig, i+1, len(k), signature.MinKeyBytes)
		}
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.RetryAfter == 0 {
		c.RetryAfter = time.Second
	}
	if c.Retry.Times == 0 {
		c.Retry.Times = 1
	}
	if c.MaxBody == 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.OutageStatus == 0 {
		c.OutageStatus = 503
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// retryAfterSeconds is RetryAfter as the header wants it.
func (c Config) retryAfterSeconds() int64 {
	return int64((c.RetryAfter + time.Second - 1) / time.Second)
}
