package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/herald-dev/herald/coordinator"
)

// DefaultReportTopic is the Kafka topic the summary of every finished
// broadcast is produced to, as Herald's contracts name it.
const DefaultReportTopic = "herald.reports"

// ReportWriter produces the summaries of finished broadcasts to a Kafka
// topic, keyed by broadcast id, the value the summary as JSON
// (docs/CONTRACTS.md). It is the coordinator's Reporter: a broadcast's
// keys leave etcd only once its report was acknowledged, so its history
// outlives etcd's retention. It is safe for concurrent use.
type ReportWriter struct {
	w         *kafka.Writer
	transport *kafka.Transport
}

var _ coordinator.Reporter = (*ReportWriter)(nil)

// NewReportWriter writes to topic (empty: herald.reports) through brokers.
// It connects on the first Report; the topic must exist. transport carries
// the connection settings (TLS, SASL: see internal/connect); nil means
// plain TCP. The writer takes transport over: Close drops its
// connections, so give it one of its own. log may be nil. The caller must
// Close it.
func NewReportWriter(brokers []string, topic string, transport *kafka.Transport, log *slog.Logger) *ReportWriter {
	if topic == "" {
		topic = DefaultReportTopic
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("topic", topic)
	if transport == nil {
		transport = &kafka.Transport{}
	}
	if transport.ClientID == "" {
		transport.ClientID = "herald-reports"
	}
	return &ReportWriter{
		transport: transport,
		w: &kafka.Writer{
			Addr:      kafka.TCP(brokers...),
			Topic:     topic,
			Transport: transport,
			// Keyed by broadcast id with the partitioner Java clients use,
			// so a report produced twice lands in the same partition and
			// a compacted topic keeps one per broadcast.
			Balancer:     kafka.Murmur2Balancer{},
			BatchTimeout: 10 * time.Millisecond,
			// The broadcast's keys are deleted once this returns: the
			// report must be on every in-sync replica by then.
			RequiredAcks: kafka.RequireAll,
			Logger: kafka.LoggerFunc(func(msg string, args ...any) {
				if log.Enabled(context.Background(), slog.LevelDebug) {
					log.Debug("worker: kafka: " + fmt.Sprintf(msg, args...))
				}
			}),
			ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
				log.Warn("worker: kafka: " + fmt.Sprintf(msg, args...))
			}),
		},
	}
}

// Report produces s and returns once Kafka has acknowledged it, or with
// the reason it could not. When ctx ends first the report may or may not
// have been written; the coordinator then reports again later.
func (w *ReportWriter) Report(ctx context.Context, s coordinator.Summary) error {
	value, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("worker: encode report %s: %w", s.ID, err)
	}
	if err := w.w.WriteMessages(ctx, kafka.Message{Key: []byte(s.ID), Value: value}); err != nil {
		return fmt.Errorf("worker: produce report %s: %w", s.ID, err)
	}
	return nil
}

// Close waits for reports in progress, then drops the writer's
// connections. Reports after Close fail.
func (w *ReportWriter) Close() error {
	err := w.w.Close()
	w.transport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("worker: close report writer: %w", err)
	}
	return nil
}
