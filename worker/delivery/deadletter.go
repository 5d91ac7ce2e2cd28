package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"
)

// DefaultDeadLetterTopic is the Kafka topic failed deliveries are written
// to, as Herald's contracts name it.
const DefaultDeadLetterTopic = "herald.deadletters"

// DeadLetter is a delivery that failed for good, as written to the
// dead-letter topic: the message value is this as JSON, the message key the
// broadcast id.
type DeadLetter struct {
	BroadcastID  string `json:"broadcast_id"`
	SubscriberID string `json:"subscriber_id"`
	Key          string `json:"idempotency_key"`
	// Status is the last HTTP status received, 0 when the last attempt got
	// no response (a timeout or connection error, which Reason names).
	Status   int       `json:"last_status"`
	Reason   string    `json:"reason"`
	Attempts int       `json:"attempts"`
	At       time.Time `json:"at"`
}

// NewDeadLetter records a Failed Result of the delivery of key to
// subscriberID in broadcastID.
func NewDeadLetter(broadcastID, subscriberID, key string, r Result, at time.Time) DeadLetter {
	return DeadLetter{
		BroadcastID: broadcastID, SubscriberID: subscriberID, Key: key,
		Status: r.Status, Reason: r.Reason, Attempts: r.Attempts, At: at,
	}
}

// deadLetterBatchTimeout is how long a write waits for others to share its
// batch. Writes are synchronous, so this is added to every dead letter's
// latency; failures are rare and should not hold a sender long.
const deadLetterBatchTimeout = 10 * time.Millisecond

// DeadLetterWriter appends dead letters to a Kafka topic. It is safe for
// concurrent use; concurrent writes share batches.
type DeadLetterWriter struct {
	w         *kafka.Writer
	transport *kafka.Transport
}

// NewDeadLetterWriter writes to topic (empty: herald.deadletters) through
// brokers. It connects on the first Write; the topic must exist. transport
// carries the connection settings (TLS, SASL: see internal/connect); nil
// means plain TCP. The writer takes transport over: Close drops its
// connections, so give each writer its own. log may be nil. The caller must
// Close it.
func NewDeadLetterWriter(brokers []string, topic string, transport *kafka.Transport, log *slog.Logger) *DeadLetterWriter {
	if topic == "" {
		topic = DefaultDeadLetterTopic
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("topic", topic)
	// An own transport, not kafka-go's shared default, so Close can drop
	// this writer's connections and two writers in one process stay apart.
	if transport == nil {
		transport = &kafka.Transport{}
	}
	if transport.ClientID == "" {
		transport.ClientID = "herald-deadletters"
	}
	return &DeadLetterWriter{
		transport: transport,
		w: &kafka.Writer{
			Addr:      kafka.TCP(brokers...),
			Topic:     topic,
			Transport: transport,
			// Keyed by broadcast id with the partitioner Java clients and
			// franz-go use, so one broadcast's letters stay in one
			// partition, in order, wherever they are produced from.
			Balancer:     kafka.Murmur2Balancer{},
			BatchTimeout: deadLetterBatchTimeout,
			// A failure counts as recorded only once every in-sync
			// replica has it: losing it later would lose the subscriber.
			RequiredAcks: kafka.RequireAll,
			Async:        false,
			Logger: kafka.LoggerFunc(func(msg string, args ...any) {
				if log.Enabled(context.Background(), slog.LevelDebug) {
					log.Debug("delivery: kafka: " + fmt.Sprintf(msg, args...))
				}
			}),
			ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
				log.Warn("delivery: kafka: " + fmt.Sprintf(msg, args...))
			}),
		},
	}
}

// Write appends d and returns once Kafka has acknowledged it, or with the
// reason it could not. When ctx ends first the letter may or may not have
// been written; the caller must treat it as not recorded.
func (w *DeadLetterWriter) Write(ctx context.Context, d DeadLetter) error {
	value, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("delivery: encode dead letter %s/%s: %w", d.BroadcastID, d.SubscriberID, err)
	}
	msg := kafka.Message{Key: []byte(d.BroadcastID), Value: value, Time: d.At}
	if err := w.w.WriteMessages(ctx, msg); err != nil {
		return fmt.Errorf("delivery: write dead letter %s/%s: %w", d.BroadcastID, d.SubscriberID, err)
	}
	return nil
}

// Close waits for writes in progress, then drops the writer's connections.
// Writes after Close fail.
func (w *DeadLetterWriter) Close() error {
	err := w.w.Close()
	w.transport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("delivery: close dead-letter writer: %w", err)
	}
	return nil
}
