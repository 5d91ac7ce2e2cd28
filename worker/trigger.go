package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// Trigger validates a broadcast spec locally and, only if it is valid,
// produces it to the trigger topic with the broadcast id as the key. A spec
// that fails validation is returned as a *SpecError and nothing is produced.
func Trigger(ctx context.Context, brokers []string, topic string, raw []byte, lim SpecLimits) (Spec, error) {
	spec, _, err := ParseSpec(raw, lim)
	if err != nil {
		return Spec{}, err
	}
	// An own transport, closed on return: kafka-go's default one is shared
	// by the whole process and keeps its connections open forever.
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
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
