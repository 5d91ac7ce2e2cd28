package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
)

// runDIY is the second baseline, the design users build instead of Herald:
// an expander job renders every eligible subscriber's message into a Kafka
// topic, and a consumer group (kafka-go, `consumers` members with
// `inFlight` concurrent sends each) posts them and commits the offsets.
// The clock runs from the expander's start to the last delivery, as a
// user waits from the trigger to the end. It has no checkpoint window of
// its own: a member that dies, or a rebalance, re-sends everything since
// the last commit.
func (h *harness) runDIY(ctx context.Context, consumers, inFlight int) (Result, error) {
	cfg := h.cfg
	id := fmt.Sprintf("lt-diy-%d", time.Now().Unix())
	eligible, err := h.eligible(cfg.Subscribers)
	if err != nil {
		return Result{}, err
	}
	if err := h.sink.reset(ctx); err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	st, err := startStack(ctx, false)
	if err != nil {
		return Result{}, err
	}
	defer st.close()
	brokers := st.KafkaBrokers()
	topic, partitions := diyTopic(id), diyPartitions(consumers)
	if err := createTopic(ctx, brokers, topic, partitions); err != nil {
		return Result{}, err
	}
	consumeCtx, stopConsumers := context.WithCancel(ctx)
	defer stopConsumers()

	p := newPoster(h.sink.url("/push"), consumers*inFlight)
	defer p.close()
	var failed, renderFailed atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.diyConsumer(consumeCtx, brokers, topic, i, inFlight, p, &failed)
		}()
	}
	expandErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		var rf int64
		err := h.expand(ctx, brokers, id, topic, &rf)
		renderFailed.Store(rf)
		expandErr <- err
	}()

	// Done when the endpoint has every eligible subscriber, or the
	// consumers gave up on the rest.
	var end time.Time
	var expErr error
	expanded := false
	for end.IsZero() {
		select {
		case <-ctx.Done():
			stopConsumers()
			wg.Wait()
			return Result{}, fmt.Errorf("loadtest: kafka baseline did not finish: %w", ctx.Err())
		case expErr = <-expandErr:
			if expErr != nil {
				stopConsumers()
				wg.Wait()
				return Result{}, expErr
			}
			expanded = true
		case <-time.After(250 * time.Millisecond):
		}
		ss, err := h.sink.stats(ctx)
		if err != nil {
			continue
		}
		if got := ss.Broadcasts[id]; expanded && got.Delivered+failed.Load()+renderFailed.Load() >= eligible {
			end = ss.LastDeliveryAt
		}
	}
	stopConsumers()
	wg.Wait()
	res, err := h.baselineResult(ctx, fmt.Sprintf("baseline-kafka-diy-%d", consumers), "kafka-diy", consumers, id, eligible, failed.Load()+renderFailed.Load(), t0, end)
	if err != nil {
		return Result{}, err
	}
	res.setLatency(p.lat.snapshot())
	res.Note = fmt.Sprintf("expander into %d partitions, kafka-go group of %d members x %d concurrent sends, commit every 1s, no retries", partitions, consumers, inFlight)
	return res, nil
}

// expand writes every eligible subscriber's rendered delivery to the topic,
// keyed by idempotency key, in batches of a thousand.
func (h *harness) expand(ctx context.Context, brokers []string, id, topic string, renderFailed *int64) error {
	seq, seqErr, err := renderAll(id, h.cfg.Subscribers, h.cfg.Seed, renderFailed)
	if err != nil {
		return err
	}
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{
		Addr: kafka.TCP(brokers...), Topic: topic, Transport: tr,
		Balancer: &kafka.Hash{}, BatchSize: 1000, BatchBytes: 4 << 20, BatchTimeout: 5 * time.Millisecond,
		RequiredAcks: kafka.RequireOne,
	}
	defer w.Close()
	batch := make([]kafka.Message, 0, 1000)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := w.WriteMessages(ctx, batch...); err != nil {
			return fmt.Errorf("loadtest: expand into %s: %w", topic, err)
		}
		batch = batch[:0]
		return nil
	}
	for d := range seq {
		batch = append(batch, kafka.Message{Key: []byte(d.key), Value: d.body})
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := seqErr(); err != nil {
		return fmt.Errorf("loadtest: expand: %w", err)
	}
	return flush()
}

// diyConsumer is one member of the baseline's group (named after the
// topic): a fetch loop feeding inFlight senders, each committing what it
// sent.
func (h *harness) diyConsumer(ctx context.Context, brokers []string, topic string, n, inFlight int, p *poster, failed *atomic.Int64) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: brokers, GroupID: topic, Topic: topic,
		MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 200 * time.Millisecond,
		CommitInterval: time.Second, StartOffset: kafka.FirstOffset,
	})
	defer r.Close()
	msgs := make(chan kafka.Message, inFlight)
	var senders sync.WaitGroup
	for range inFlight {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for m := range msgs {
				if !p.post(ctx, delivery{key: string(m.Key), body: m.Value}) && ctx.Err() == nil {
					failed.Add(1)
				}
				_ = r.CommitMessages(ctx, m) // queued; flushed every CommitInterval
			}
		}()
	}
	defer senders.Wait()
	defer close(msgs)
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				h.log.Warn("kafka baseline consumer", "member", n, "err", err)
			}
			return
		}
		select {
		case msgs <- m:
		case <-ctx.Done():
			return
		}
	}
}

// diyTopic is where the DIY baseline of a broadcast expands its audience:
// a topic per run, with two partitions per consumer so every member of
// the group has work.
func diyTopic(id string) string { return "loadtest.diy." + id }

func diyPartitions(consumers int) int { return max(8, 2*consumers) }

// createTopic creates the baseline's topic. The stack, and the topic with
// it, go when the baseline ends.
func createTopic(ctx context.Context, brokers []string, topic string, partitions int) error {
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: tr}
	resp, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}},
	})
	if err == nil {
		err = resp.Errors[topic]
	}
	if err != nil {
		return fmt.Errorf("loadtest: create topic %s: %w", topic, err)
	}
	return nil
}
