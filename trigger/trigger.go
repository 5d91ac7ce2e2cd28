// Package trigger starts broadcasts: Produce checks a broadcast spec
// locally, as the fleet will, and only then writes it to the trigger topic,
// keyed by the broadcast id. It is what `herald trigger`, the demo and the
// tests use to start a broadcast.
//
// The package does not consume triggers or register broadcasts (the
// workers' intake does), and a spec it accepts may still be rejected by
// the fleet, whose allowlist, secrets and audience directory decide.
package trigger

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/herald-dev/herald/allowlist"
	"github.com/herald-dev/herald/spec"
)

// DefaultTopic is the trigger topic when none is configured, for producers
// and workers alike.
const DefaultTopic = "herald.broadcasts"

// Config says where and how Produce sends a trigger.
type Config struct {
	// Brokers are the Kafka bootstrap addresses. Required.
	Brokers []string
	// Topic is the trigger topic; "" means DefaultTopic.
	Topic string
	// Transport carries the connection settings (TLS, SASL: see
	// internal/connect). Nil means plain TCP. Produce drops its
	// connections when done, so give it a transport of its own.
	Transport *kafka.Transport
	// Limits are the spec limits checked locally, as the fleet will.
	Limits spec.Limits
	// Allow, when set, must allow the spec's endpoint, as the workers'
	// list will have to: a spec it refuses is returned as a *spec.Error
	// and not produced. Nil skips this local check; the fleet checks
	// anyway.
	Allow *allowlist.List
}

// Produce validates a broadcast spec locally and, only if it is valid,
// produces it to the trigger topic with the broadcast id as the key. A spec
// that fails validation is returned as a *spec.Error and nothing is
// produced.
func Produce(ctx context.Context, cfg Config, raw []byte) (spec.Spec, error) {
	s, _, err := spec.Parse(raw, cfg.Limits)
	if err != nil {
		return spec.Spec{}, err
	}
	// A webpush endpoint has no URL: each subscription names its push
	// service, which the workers check before every attempt.
	if cfg.Allow != nil && s.Endpoint.Kind != spec.KindWebPush {
		if err := cfg.Allow.Check(s.Endpoint.URL); err != nil {
			return spec.Spec{}, &spec.Error{ID: s.ID, Field: "endpoint.url", Msg: "not allowed: " + err.Error()}
		}
	}
	topic := cfg.Topic
	if topic == "" {
		topic = DefaultTopic
	}
	// An own transport, closed on return: kafka-go's default one is shared
	// by the whole process and keeps its connections open forever.
	tr := cfg.Transport
	if tr == nil {
		tr = &kafka.Transport{}
	}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{
		Addr:         kafka.TCP(cfg.Brokers...),
		Transport:    tr,
		Topic:        topic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 10 * time.Millisecond,
	}
	defer w.Close()
	// The spec goes as written by its author; intake parses it again.
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte(s.ID), Value: raw}); err != nil {
		return spec.Spec{}, fmt.Errorf("trigger: produce %s to %s: %w", s.ID, topic, err)
	}
	return s, nil
}

// Trigger is Produce over plain TCP without the local endpoint check.
func Trigger(ctx context.Context, brokers []string, topic string, raw []byte, lim spec.Limits) (spec.Spec, error) {
	return Produce(ctx, Config{Brokers: brokers, Topic: topic, Limits: lim}, raw)
}
