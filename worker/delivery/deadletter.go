package delivery

import (
	"context"
	"encoding/json"
	"errors"
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
	// InvalidToken, when set, is the device token the provider declared
	// dead: WithInvalidTokens writes it to the invalid-token topic too. It
	// is not part of the letter's JSON.
	InvalidToken *InvalidToken `json:"-"`
}

// NewDeadLetter records a Failed Result of the delivery of key to
// subscriberID in broadcastID.
func NewDeadLetter(broadcastID, subscriberID, key string, r Result, at time.Time) DeadLetter {
	return DeadLetter{
		BroadcastID: broadcastID, SubscriberID: subscriberID, Key: key,
		Status: r.Status, Reason: r.Reason, Attempts: r.Attempts, At: at,
	}
}

// ErrDeadLetterInvalid marks a letter that can never be written: it cannot
// be encoded, or it is larger than MaxDeadLetterBytes. Retrying it is
// pointless.
var ErrDeadLetterInvalid = errors.New("delivery: dead letter cannot be written")

// MaxDeadLetterBytes bounds one encoded letter in WriteBatch, far below
// Kafka's default 1 MiB message limit, so one odd letter cannot make the
// broker refuse the batch it shares with others. A letter is a few hundred
// bytes.
const MaxDeadLetterBytes = 64 << 10

// DeadLetterErrors is WriteBatch's error when it can tell the letters of a
// batch apart: one entry per letter, in order, nil for each letter Kafka
// acknowledged.
type DeadLetterErrors []error

func (e DeadLetterErrors) Error() string {
	var n int
	var first error
	for _, err := range e {
		if err != nil {
			n++
			if first == nil {
				first = err
			}
		}
	}
	return fmt.Sprintf("delivery: %d of %d dead letters not written: %v", n, len(e), first)
}

// deadLetterBatchTimeout is how long a write waits for others to share its
// batch. Writes are synchronous, so this is added to every dead letter's
// latency; failures are rare and should not hold a sender long.
const deadLetterBatchTimeout = 10 * time.Millisecond

// deadLetterAttemptTimeout bounds one produce request of WriteBatch,
// below DeadLetterQueueConfig's default WriteTimeout, so a batch write
// normally ends with Kafka's answer rather than its caller's deadline.
const deadLetterAttemptTimeout = 5 * time.Second

// DeadLetterWriter appends dead letters to a Kafka topic. It is safe for
// concurrent use; concurrent writes share batches.
type DeadLetterWriter struct {
	w *kafka.Writer // Write's: kafka-go retries failed produce requests
	// batch is WriteBatch's: one produce request per batch, no retry of
	// its own. kafka-go goes on retrying a batch after its WriteMessages
	// call has returned on ctx, and a caller that retries too (the
	// DeadLetterQueue) would then write its letters several times over.
	batch     *kafka.Writer
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
	batch := newTopicWriter(brokers, topic, transport, log)
	batch.MaxAttempts = 1
	batch.WriteTimeout = deadLetterAttemptTimeout
	batch.BatchSize = DefaultDeadLetterMaxBatch
	return &DeadLetterWriter{
		transport: transport,
		w:         newTopicWriter(brokers, topic, transport, log),
		batch:     batch,
	}
}

// newTopicWriter is a synchronous kafka-go writer of dead letters to topic.
func newTopicWriter(brokers []string, topic string, transport *kafka.Transport, log *slog.Logger) *kafka.Writer {
	return &kafka.Writer{
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
	}
}

// Write appends d and returns once Kafka has acknowledged it, or with the
// reason it could not. When ctx ends first the letter may or may not have
// been written; the caller must treat it as not recorded.
func (w *DeadLetterWriter) Write(ctx context.Context, d DeadLetter) error {
	msg, err := encodeDeadLetter(d)
	if err != nil {
		return err
	}
	if err := w.w.WriteMessages(ctx, msg); err != nil {
		return fmt.Errorf("delivery: write dead letter %s/%s: %w", d.BroadcastID, d.SubscriberID, err)
	}
	return nil
}

// WriteBatch appends ds, in order, and returns nil once Kafka has
// acknowledged every one. Otherwise it returns a DeadLetterErrors saying
// which letters were written and why the others were not (a letter past
// MaxDeadLetterBytes, or that cannot be encoded, is never sent and its
// error wraps ErrDeadLetterInvalid), or, when nothing was written, one
// error for all. Each partition's letters go in one produce request, tried
// once (within 5 s): retrying is the caller's, as DeadLetterQueue does. As
// with Write, a letter whose write ended with ctx may or may not have been
// written. It does not keep ds.
func (w *DeadLetterWriter) WriteBatch(ctx context.Context, ds []DeadLetter) error {
	var errs DeadLetterErrors // made on the first error
	fail := func(i int, err error) {
		if errs == nil {
			errs = make(DeadLetterErrors, len(ds))
		}
		errs[i] = err
	}
	msgs := make([]kafka.Message, 0, len(ds))
	sent := make([]int, 0, len(ds)) // msgs[j] is ds[sent[j]]
	for i, d := range ds {
		msg, err := encodeDeadLetter(d)
		if err == nil && len(msg.Key)+len(msg.Value) > MaxDeadLetterBytes {
			err = fmt.Errorf("%w: %s/%s is %d bytes, over %d", ErrDeadLetterInvalid,
				d.BroadcastID, d.SubscriberID, len(msg.Key)+len(msg.Value), MaxDeadLetterBytes)
		}
		if err != nil {
			fail(i, err)
			continue
		}
		msgs = append(msgs, msg)
		sent = append(sent, i)
	}
	if len(msgs) > 0 {
		err := w.batch.WriteMessages(ctx, msgs...)
		var each kafka.WriteErrors
		switch {
		case err == nil:
		case errors.As(err, &each) && len(each) == len(msgs):
			for j, e := range each {
				if e != nil {
					fail(sent[j], fmt.Errorf("delivery: write dead letter %s/%s: %w", ds[sent[j]].BroadcastID, ds[sent[j]].SubscriberID, e))
				}
			}
		case errs == nil:
			return fmt.Errorf("delivery: write %d dead letters: %w", len(ds), err)
		default:
			for _, i := range sent {
				fail(i, fmt.Errorf("delivery: write dead letter %s/%s: %w", ds[i].BroadcastID, ds[i].SubscriberID, err))
			}
		}
	}
	if errs != nil {
		return errs
	}
	return nil
}

// encodeDeadLetter makes d the message the topic holds.
func encodeDeadLetter(d DeadLetter) (kafka.Message, error) {
	value, err := json.Marshal(d)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("%w: encode %s/%s: %w", ErrDeadLetterInvalid, d.BroadcastID, d.SubscriberID, err)
	}
	return kafka.Message{Key: []byte(d.BroadcastID), Value: value, Time: d.At}, nil
}

// Close waits for writes in progress, then drops the writer's connections.
// Writes after Close fail.
func (w *DeadLetterWriter) Close() error {
	err := errors.Join(w.w.Close(), w.batch.Close())
	w.transport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("delivery: close dead-letter writer: %w", err)
	}
	return nil
}
