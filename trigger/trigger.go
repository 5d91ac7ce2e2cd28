package worker

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/segmentio/kafka-go"
)

// TriggerConfig says where and how Produce sends a trigger.
type TriggerConfig struct {
	// Brokers are the Kafka bootstrap addresses. Required.
	Brokers []string
	// Topic is the trigger topic; "" means herald.broadcasts.
	Topic string
	// Transport carries the connection settings (TLS, SASL: see
	// internal/connect). Nil means plain TCP. Produce drops its
	// connections when done, so give it a transport of its own.
	Transport *kafka.Transport
	// Limits are the spec limits checked locally, as the fleet will.
	Limits SpecLimits
	// Allow, when set, must allow the spec's endpoint, as the workers'
	// list will have to: a spec it refuses is returned as a *SpecError and
	// not produced. Nil skips this local check; the fleet checks anyway.
	Allow *Allowlist
}

// Produce validates a broadcast spec locally and, only if it is valid,
// produces it to the trigger topic with the broadcast id as the key. A spec
// that fails validation is returned as a *SpecError and nothing is
// produced.
func Produce(ctx context.Context, cfg TriggerConfig, raw []byte) (Spec, error) {
	spec, _, err := ParseSpec(raw, cfg.Limits)
	if err != nil {
		return Spec{}, err
	}
	if cfg.Allow != nil {
		u, _ := url.Parse(spec.Endpoint.URL) // ParseSpec has parsed it
		if !cfg.Allow.Allows(u) {
			return Spec{}, &SpecError{ID: spec.ID, Field: "endpoint.url", Msg: "not allowed: " + cfg.Allow.why(u)}
		}
	}
	topic := cfg.Topic
	if topic == "" {
		topic = "herald.broadcasts"
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
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte(spec.ID), Value: raw}); err != nil {
		return Spec{}, fmt.Errorf("worker: produce trigger %s to %s: %w", spec.ID, topic, err)
	}
	return spec, nil
}

// Trigger is Produce over plain TCP without the local endpoint check.
func Trigger(ctx context.Context, brokers []string, topic string, raw []byte, lim SpecLimits) (Spec, error) {
	return Produce(ctx, TriggerConfig{Brokers: brokers, Topic: topic, Limits: lim}, raw)
}
