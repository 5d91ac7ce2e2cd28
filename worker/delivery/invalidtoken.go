package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/segmentio/kafka-go"
)

// DefaultInvalidTokenTopic is the Kafka topic device tokens and Web Push
// subscriptions a provider declared dead are written to, so users can
// clean their own database.
const DefaultInvalidTokenTopic = "herald.invalid-tokens"

// InvalidToken is a device token (or Web Push subscription endpoint) a
// provider declared dead for good, as written to the invalid-token topic:
// the message value is this as JSON, the message key the subscriber id.
type InvalidToken struct {
	Broadcast    string `json:"broadcast"`
	SubscriberID string `json:"-"`
	// Provider is the endpoint kind that declared it: apns, fcm or
	// webpush.
	Provider string `json:"provider"`
	Token    string `json:"token"`
	// Reason is the provider's own word for it: Unregistered,
	// BadDeviceToken, UNREGISTERED, 410 Gone, ...
	Reason string `json:"reason"`
}

// InvalidTokenBatchWriter writes invalid tokens in batches, nil once Kafka
// has acknowledged every one. It must not keep ts. *InvalidTokenWriter is
// one.
type InvalidTokenBatchWriter interface {
	WriteTokens(ctx context.Context, ts []InvalidToken) error
}

// InvalidTokenWriter appends invalid tokens to a Kafka topic, keyed by
// subscriber id (one subscriber's records stay in one partition, in
// order). Like DeadLetterWriter.WriteBatch, each write is one produce
// request, tried once: retrying is its caller's.
type InvalidTokenWriter struct {
	w         *kafka.Writer
	transport *kafka.Transport
}

// NewInvalidTokenWriter writes to topic (empty: herald.invalid-tokens)
// through brokers; transport as for NewDeadLetterWriter (nil: plain TCP;
// the writer takes it over). The caller must Close it.
func NewInvalidTokenWriter(brokers []string, topic string, transport *kafka.Transport, log *slog.Logger) *InvalidTokenWriter {
	if topic == "" {
		topic = DefaultInvalidTokenTopic
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if transport == nil {
		transport = &kafka.Transport{}
	}
	if transport.ClientID == "" {
		transport.ClientID = "herald-invalid-tokens"
	}
	w := newTopicWriter(brokers, topic, transport, log.With("topic", topic))
	w.MaxAttempts = 1
	w.WriteTimeout = deadLetterAttemptTimeout
	w.BatchSize = DefaultDeadLetterMaxBatch
	return &InvalidTokenWriter{w: w, transport: transport}
}

// WriteTokens appends ts and returns once Kafka has acknowledged them all.
func (w *InvalidTokenWriter) WriteTokens(ctx context.Context, ts []InvalidToken) error {
	msgs := make([]kafka.Message, 0, len(ts))
	for _, t := range ts {
		v, err := json.Marshal(t)
		if err != nil {
			return fmt.Errorf("%w: encode invalid token of %s/%s: %w", ErrDeadLetterInvalid, t.Broadcast, t.SubscriberID, err)
		}
		msgs = append(msgs, kafka.Message{Key: []byte(t.SubscriberID), Value: v})
	}
	if err := w.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("delivery: write %d invalid tokens: %w", len(ts), err)
	}
	return nil
}

// Close waits for writes in progress, then drops the writer's connections.
func (w *InvalidTokenWriter) Close() error {
	err := w.w.Close()
	w.transport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("delivery: close invalid-token writer: %w", err)
	}
	return nil
}

// WithInvalidTokens returns a DeadLetterBatchWriter that writes every
// letter to dead and, for each letter carrying an InvalidToken that dead
// took, the token to tokens. A letter counts as written only once both
// topics have what it carries, so a DeadLetterQueue in front of it calls
// a failed record's done only then, and retries the letter (both writes:
// at least once on each topic) until they have. One queue, one goroutine
// and one retry policy serve both feedbacks.
func WithInvalidTokens(dead DeadLetterBatchWriter, tokens InvalidTokenBatchWriter) DeadLetterBatchWriter {
	return &feedbackWriter{dead: dead, tokens: tokens}
}

type feedbackWriter struct {
	dead   DeadLetterBatchWriter
	tokens InvalidTokenBatchWriter
}

func (f *feedbackWriter) WriteBatch(ctx context.Context, ds []DeadLetter) error {
	err := f.dead.WriteBatch(ctx, ds)
	var each DeadLetterErrors
	apart := errors.As(err, &each) && len(each) == len(ds)
	if err != nil && !apart {
		return err // nothing was written
	}
	var ts []InvalidToken
	var at []int // ts[j] is ds[at[j]]'s
	for i, d := range ds {
		if d.InvalidToken != nil && (!apart || each[i] == nil) {
			ts = append(ts, *d.InvalidToken)
			at = append(at, i)
		}
	}
	if len(ts) == 0 {
		return err
	}
	terr := f.tokens.WriteTokens(ctx, ts)
	if terr == nil {
		return err
	}
	if !apart {
		each = make(DeadLetterErrors, len(ds))
	}
	for _, i := range at {
		each[i] = terr
	}
	return each
}
