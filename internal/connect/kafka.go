package connect

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
)

// SASL mechanisms, as --kafka-sasl names them.
const (
	SASLNone        = "none"
	SASLPlain       = "plain"
	SASLSCRAMSHA256 = "scram-sha-256"
	SASLSCRAMSHA512 = "scram-sha-512"
)

// Kafka is how to reach the Kafka brokers.
type Kafka struct {
	// TLS turns TLS on. Naming any TLS file turns it on too.
	TLS   bool
	Files TLSFiles
	// SASL is the mechanism: none (or ""), plain, scram-sha-256 or
	// scram-sha-512. PLAIN sends the password as is: use it over TLS.
	SASL           string
	User, Password string
	// DialTimeout bounds connecting, TLS and SASL included. Zero means
	// 10 s.
	DialTimeout time.Duration
}

// Validate reports settings that cannot work together.
func (k Kafka) Validate() error {
	switch k.SASL {
	case "", SASLNone:
		if k.User != "" || k.Password != "" {
			return fmt.Errorf("%w: Kafka user or password given without a SASL mechanism (--kafka-sasl)", ErrConfig)
		}
	case SASLPlain, SASLSCRAMSHA256, SASLSCRAMSHA512:
		if k.User == "" || k.Password == "" {
			return fmt.Errorf("%w: Kafka SASL %s needs a user and a password", ErrConfig, k.SASL)
		}
	default:
		return fmt.Errorf("%w: Kafka SASL mechanism %q is not none, plain, scram-sha-256 or scram-sha-512", ErrConfig, k.SASL)
	}
	return k.Files.Validate()
}

// UsesTLS reports whether connections are encrypted.
func (k Kafka) UsesTLS() bool { return k.TLS || k.Files.Any() }

func (k Kafka) parts() (*tls.Config, sasl.Mechanism, error) {
	if err := k.Validate(); err != nil {
		return nil, nil, err
	}
	var tc *tls.Config
	if k.UsesTLS() {
		var err error
		if tc, err = k.Files.Config(); err != nil {
			return nil, nil, err
		}
	}
	var mech sasl.Mechanism
	switch k.SASL {
	case SASLPlain:
		mech = plain.Mechanism{Username: k.User, Password: k.Password}
	case SASLSCRAMSHA256:
		mech = &scram{name: "SCRAM-SHA-256", hash: sha256.New, user: k.User, password: k.Password}
	case SASLSCRAMSHA512:
		mech = &scram{name: "SCRAM-SHA-512", hash: sha512.New, user: k.User, password: k.Password}
	}
	return tc, mech, nil
}

func (k Kafka) dialTimeout() time.Duration {
	if k.DialTimeout == 0 {
		return 10 * time.Second
	}
	return k.DialTimeout
}

// Transport returns a new kafka-go transport for writers and clients. Each
// call makes a new one, so each owner can close its connections.
func (k Kafka) Transport() (*kafka.Transport, error) {
	tc, mech, err := k.parts()
	if err != nil {
		return nil, err
	}
	return &kafka.Transport{TLS: tc, SASL: mech, DialTimeout: k.dialTimeout()}, nil
}

// Dialer returns a new kafka-go dialer for readers (consumer groups).
func (k Kafka) Dialer() (*kafka.Dialer, error) {
	tc, mech, err := k.parts()
	if err != nil {
		return nil, err
	}
	return &kafka.Dialer{
		Timeout:       k.dialTimeout(),
		DualStack:     true,
		TLS:           tc,
		SASLMechanism: mech,
	}, nil
}
