package console

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/herald-dev/herald/spec"
)

// Defaults of Config's zero values.
const (
	DefaultInterval     = 500 * time.Millisecond
	DefaultClientBuffer = 64
	DefaultMaxClients   = 256
	// DefaultListen is where `herald console` listens: loopback only.
	DefaultListen = "127.0.0.1:8070"
	// MinTokenLength bounds how short an access token may be.
	MinTokenLength = 16
)

// Config configures a Console. The zero value is a read-only console over
// coordinator.DefaultPrefix.
type Config struct {
	// Prefix is the etcd key prefix; "" means coordinator.DefaultPrefix.
	Prefix string
	// Token, when set, enables actions for whoever presents it (at least
	// MinTokenLength bytes). "" makes the console read-only.
	Token string
	// Interval is the shortest time between two reads of one broadcast's
	// status, and the tick of rates and charts (0: DefaultInterval).
	Interval time.Duration
	// ClientBuffer is how many events may wait for one browser; a browser
	// further behind is dropped (0: DefaultClientBuffer).
	ClientBuffer int
	// MaxClients bounds the event streams open at once; more are refused
	// with 503 (0: DefaultMaxClients).
	MaxClients int
	// Hosts are the host names (without port) the console answers to
	// besides IP literals and localhost; the Host check stops a web page
	// from reaching a loopback console through DNS rebinding. "*" accepts
	// any (behind a proxy that checks it).
	Hosts []string
	// Limits are the spec limits a trigger is checked against, as the
	// fleet's.
	Limits spec.Limits
	// Secure marks the session cookie Secure: set it when browsers reach
	// the console over HTTPS (through a proxy, say).
	Secure bool
}

func (c Config) withDefaults() Config {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.ClientBuffer == 0 {
		c.ClientBuffer = DefaultClientBuffer
	}
	if c.MaxClients == 0 {
		c.MaxClients = DefaultMaxClients
	}
	return c
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Token != "" && len(c.Token) < MinTokenLength:
		return fmt.Errorf("console: the access token is %d bytes, fewer than %d", len(c.Token), MinTokenLength)
	case c.Interval < 0 || (c.Interval > 0 && c.Interval < 10*time.Millisecond):
		return fmt.Errorf("console: interval %s is below 10ms", c.Interval)
	case c.ClientBuffer < 0:
		return errors.New("console: negative client buffer")
	case c.MaxClients < 0:
		return errors.New("console: negative max clients")
	}
	return c.Limits.Validate()
}

// Producer produces a validated trigger; trigger.Produce with the
// console's Kafka settings is one. A refusal of the spec is a *spec.Error.
type Producer interface {
	Produce(ctx context.Context, raw []byte) (spec.Spec, error)
}

// ProducerFunc adapts a function to Producer.
type ProducerFunc func(ctx context.Context, raw []byte) (spec.Spec, error)

// Produce calls f.
func (f ProducerFunc) Produce(ctx context.Context, raw []byte) (spec.Spec, error) { return f(ctx, raw) }
