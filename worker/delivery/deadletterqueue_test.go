package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/devstack"
)

// outcomes records what each letter's done was told, by subscriber id.
type outcomes struct {
	mu   sync.Mutex
	errs map[string][]error
	all  sync.WaitGroup // one per letter enqueued, done when told
}

func newOutcomes() *outcomes { return &outcomes{errs: map[string][]error{}} }

// enqueue queues letter id and records its outcome.
func (o *outcomes) enqueue(t *testing.T, q *DeadLetterQueue, d DeadLetter) {
	t.Helper()
	o.all.Add(1)
	err := q.Enqueue(context.Background(), d, func(err error) {
		o.mu.Lock()
		o.errs[d.SubscriberID] = append(o.errs[d.SubscriberID], err)
		o.mu.Unlock()
		o.all.Done()
	})
	if err != nil {
		o.all.Done()
		t.Errorf("enqueue %s: %v", d.SubscriberID, err)
	}
}

// wait returns once every letter has been told, failing the test if that
// takes longer than a minute (so a lost letter cannot hang it).
func (o *outcomes) wait(t *testing.T) {
	t.Helper()
	told := make(chan struct{})
	go func() { o.all.Wait(); close(told) }()
	select {
	case <-told:
	case <-time.After(time.Minute):
		t.Fatal("some letters were never told how they ended")
	}
}

// deliveredOnce checks that every id was told nil exactly once.
func (o *outcomes) deliveredOnce(t *testing.T, ids []string) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, id := range ids {
		if errs := o.errs[id]; len(errs) != 1 || errs[0] != nil {
			t.Errorf("%s: done called with %v, want nil once", id, errs)
		}
	}
}

// readLetters reads the topic back and counts each subscriber id.
func readLetters(t *testing.T, brokers []string) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, msgs := range readAll(t, brokers, DefaultDeadLetterTopic) {
		for _, m := range msgs {
			var d DeadLetter
			if err := json.Unmarshal(m.Value, &d); err != nil {
				t.Fatalf("value %s: %v", m.Value, err)
			}
			got[d.SubscriberID]++
		}
	}
	return got
}

func letter(i int) DeadLetter {
	return DeadLetter{BroadcastID: fmt.Sprintf("b%d", i%3), SubscriberID: fmt.Sprintf("u%d", i),
		Key: fmt.Sprintf("key-%d", i), Status: 500, Reason: "gave up after 6 attempts", Attempts: 6,
		At: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
}

func newQueue(t *testing.T, w DeadLetterBatchWriter, cfg DeadLetterQueueConfig) *DeadLetterQueue {
	t.Helper()
	q, err := NewDeadLetterQueue(w, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestDeadLetterQueueWritesEachLetterOnce(t *testing.T) {
	const senders, each = 8, 50
	k := startKafka(t, DefaultDeadLetterTopic)
	w := NewDeadLetterWriter(k.Brokers(), "", nil, nil)
	defer w.Close()
	q := newQueue(t, w, DeadLetterQueueConfig{MaxBatch: 32})
	o := newOutcomes()

	var wg sync.WaitGroup
	var ids []string
	for g := range senders {
		for i := range each {
			ids = append(ids, letter(g*each+i).SubscriberID)
		}
		wg.Go(func() {
			for i := range each {
				o.enqueue(t, q, letter(g*each+i))
			}
		})
	}
	wg.Wait()
	o.wait(t)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	o.deliveredOnce(t, ids)
	got := readLetters(t, k.Brokers())
	for _, id := range ids {
		if got[id] != 1 {
			t.Errorf("%s written %d times, want once", id, got[id])
		}
	}
	if len(got) != len(ids) {
		t.Errorf("topic holds %d letters, want %d", len(got), len(ids))
	}
	if q.Pending() != 0 {
		t.Errorf("%d letters pending after all were written", q.Pending())
	}
	if err := q.Enqueue(context.Background(), letter(0), nil); !errors.Is(err, ErrDeadLetterQueueClosed) {
		t.Errorf("Enqueue after Close: %v, want ErrDeadLetterQueueClosed", err)
	}
}

// flaky fails some writes before handing them to the real writer.
type flaky struct {
	w     DeadLetterBatchWriter
	calls atomic.Int64
	// fail decides what call n (from 1) does: nil to write ds, an error to
	// fail without writing, or a DeadLetterErrors for a partial write
	// (flaky writes the letters whose entry is nil).
	fail func(n int64, ds []DeadLetter) error
}

func (f *flaky) WriteBatch(ctx context.Context, ds []DeadLetter) error {
	err := f.fail(f.calls.Add(1), ds)
	if err == nil {
		return f.w.WriteBatch(ctx, ds)
	}
	var each DeadLetterErrors
	if !errors.As(err, &each) {
		return err
	}
	var some []DeadLetter
	for i, e := range each {
		if e == nil {
			some = append(some, ds[i])
		}
	}
	if werr := f.w.WriteBatch(ctx, some); werr != nil {
		return werr
	}
	return err
}

// TestDeadLetterQueueRetriesUntilWritten: writes that fail, wholly or in
// part, are retried until every letter is in the topic, once.
func TestDeadLetterQueueRetriesUntilWritten(t *testing.T) {
	errDown := errors.New("kafka: leader not available")
	tests := []struct {
		name string
		fail func(n int64, ds []DeadLetter) error
	}{
		{"the first 4 writes fail", func(n int64, _ []DeadLetter) error {
			if n <= 4 {
				return errDown
			}
			return nil
		}},
		{"the first 4 writes take every other letter", func(n int64, ds []DeadLetter) error {
			if n > 4 || len(ds) < 2 {
				return nil
			}
			each := make(DeadLetterErrors, len(ds))
			for i := 1; i < len(ds); i += 2 {
				each[i] = errDown
			}
			return each
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := startKafka(t, DefaultDeadLetterTopic)
			w := NewDeadLetterWriter(k.Brokers(), "", nil, nil)
			defer w.Close()
			f := &flaky{w: w, fail: tt.fail}
			q := newQueue(t, f, DeadLetterQueueConfig{MaxBatch: 10, RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond})
			defer q.Close()
			o := newOutcomes()
			var ids []string
			for i := range 60 {
				o.enqueue(t, q, letter(i))
				ids = append(ids, letter(i).SubscriberID)
			}
			o.wait(t)

			o.deliveredOnce(t, ids)
			got := readLetters(t, k.Brokers())
			for _, id := range ids {
				if got[id] != 1 {
					t.Errorf("%s written %d times, want once", id, got[id])
				}
			}
			if f.calls.Load() <= 4 {
				t.Errorf("%d writes: the failing ones were not retried", f.calls.Load())
			}
		})
	}
}

// TestDeadLetterQueueRidesOutAKafkaOutage: the broker is down when the
// letters come and starts again, on the same address, a while later;
// every letter ends up in the topic.
func TestDeadLetterQueueRidesOutAKafkaOutage(t *testing.T) {
	k := startKafka(t, DefaultDeadLetterTopic)
	addr := k.Brokers()[0]
	w := NewDeadLetterWriter(k.Brokers(), "", nil, nil)
	defer w.Close()
	// Connect while it is up, as a running worker would have.
	if err := w.WriteBatch(context.Background(), []DeadLetter{letter(-1)}); err != nil {
		t.Fatal(err)
	}
	k.Close()

	f := &flaky{w: w, fail: func(int64, []DeadLetter) error { return nil }}
	q := newQueue(t, f, DeadLetterQueueConfig{WriteTimeout: 2 * time.Second, RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond})
	defer q.Close()
	o := newOutcomes()
	var ids []string
	for i := range 40 {
		o.enqueue(t, q, letter(i))
		ids = append(ids, letter(i).SubscriberID)
	}
	for f.calls.Load() < 3 {
		time.Sleep(10 * time.Millisecond) // let a few writes fail
	}
	if q.Pending() != len(ids) {
		t.Fatalf("%d letters pending while Kafka is down, want %d", q.Pending(), len(ids))
	}
	again, err := devstack.StartKafka(context.Background(), devstack.KafkaConfig{Addr: addr, Topics: []string{DefaultDeadLetterTopic}})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	o.wait(t)

	o.deliveredOnce(t, ids)
	got := readLetters(t, again.Brokers())
	for _, id := range ids {
		if got[id] < 1 {
			t.Errorf("%s lost", id)
		} else if got[id] > 1 {
			t.Logf("%s written %d times (a write that timed out after Kafka took it)", id, got[id])
		}
	}
	t.Logf("%d writes", f.calls.Load())
}

// gated holds every write until released.
type gated struct {
	w       DeadLetterBatchWriter
	entered chan struct{} // a write has started
	release chan struct{}
}

func (g *gated) WriteBatch(ctx context.Context, ds []DeadLetter) error {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	select {
	case <-g.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.w.WriteBatch(ctx, ds)
}

// TestDeadLetterQueueFullBlocksEnqueue: with Kafka stuck, the queue fills;
// then Enqueue waits for room (or its context), and gets it once writes go
// through again.
func TestDeadLetterQueueFullBlocksEnqueue(t *testing.T) {
	const capacity = 4
	k := startKafka(t, DefaultDeadLetterTopic)
	w := NewDeadLetterWriter(k.Brokers(), "", nil, nil)
	defer w.Close()
	g := &gated{w: w, entered: make(chan struct{}, 1), release: make(chan struct{})}
	q := newQueue(t, g, DeadLetterQueueConfig{Capacity: capacity, MaxBatch: 1, WriteTimeout: time.Minute})
	defer q.Close()
	o := newOutcomes()

	o.enqueue(t, q, letter(0))
	<-g.entered // letter 0 is being written, and stuck
	for i := 1; i <= capacity; i++ {
		o.enqueue(t, q, letter(i)) // room for these
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := q.Enqueue(ctx, letter(99), func(error) { t.Error("a letter refused was told") }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Enqueue on a full queue: %v, want the context's error", err)
	}

	blocked := make(chan error, 1)
	o.all.Add(1)
	go func() {
		blocked <- q.Enqueue(context.Background(), letter(5), func(error) { o.all.Done() })
	}()
	select {
	case err := <-blocked:
		t.Fatalf("Enqueue returned %v while the queue was full", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(g.release)
	if err := <-blocked; err != nil {
		t.Fatalf("Enqueue once there was room: %v", err)
	}
	o.wait(t)

	var ids []string
	for i := 0; i <= capacity; i++ {
		ids = append(ids, letter(i).SubscriberID)
	}
	o.deliveredOnce(t, ids)
	got := readLetters(t, k.Brokers())
	for _, id := range append(ids, letter(5).SubscriberID) {
		if got[id] != 1 {
			t.Errorf("%s written %d times, want once", id, got[id])
		}
	}
	if got[letter(99).SubscriberID] != 0 {
		t.Error("the letter whose Enqueue gave up was written")
	}
}

// TestDeadLetterQueueCloseReportsUnwritten: with Kafka unreachable, Close
// gives up after CloseTimeout and tells every letter it was not written.
func TestDeadLetterQueueCloseReportsUnwritten(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	w := NewDeadLetterWriter([]string{dead}, "", nil, nil)
	defer w.Close()
	q := newQueue(t, w, DeadLetterQueueConfig{WriteTimeout: 200 * time.Millisecond, RetryMin: 20 * time.Millisecond,
		RetryMax: 100 * time.Millisecond, CloseTimeout: 500 * time.Millisecond})
	o := newOutcomes()
	for i := range 5 {
		o.enqueue(t, q, letter(i))
	}

	err = q.Close()
	if err == nil || !strings.Contains(err.Error(), "5 letters not written") {
		t.Errorf("Close: %v, want it to say 5 letters were not written", err)
	}
	o.wait(t)
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := range 5 {
		id := letter(i).SubscriberID
		if errs := o.errs[id]; len(errs) != 1 || !errors.Is(errs[0], ErrDeadLetterQueueClosed) {
			t.Errorf("%s: done called with %v, want ErrDeadLetterQueueClosed once", id, errs)
		}
	}
	if err := q.Close(); err == nil {
		t.Error("a second Close forgot the letters lost")
	}
}

// TestDeadLetterQueueGivesUpOnInvalidLetters: a letter Kafka could never
// take is reported at once rather than retried for ever, and the letters
// batched with it are written.
func TestDeadLetterQueueGivesUpOnInvalidLetters(t *testing.T) {
	k := startKafka(t, DefaultDeadLetterTopic)
	w := NewDeadLetterWriter(k.Brokers(), "", nil, nil)
	defer w.Close()
	q := newQueue(t, w, DeadLetterQueueConfig{})
	defer q.Close()
	o := newOutcomes()
	huge := letter(1)
	huge.Reason = strings.Repeat("x", MaxDeadLetterBytes)
	o.enqueue(t, q, letter(0))
	o.enqueue(t, q, huge)
	o.enqueue(t, q, letter(2))
	o.wait(t)

	o.deliveredOnce(t, []string{letter(0).SubscriberID, letter(2).SubscriberID})
	o.mu.Lock()
	if errs := o.errs[huge.SubscriberID]; len(errs) != 1 || !errors.Is(errs[0], ErrDeadLetterInvalid) {
		t.Errorf("oversized letter: done called with %v, want ErrDeadLetterInvalid once", errs)
	}
	o.mu.Unlock()
	got := readLetters(t, k.Brokers())
	if got[letter(0).SubscriberID] != 1 || got[letter(2).SubscriberID] != 1 || got[huge.SubscriberID] != 0 {
		t.Errorf("topic holds %v, want u0 and u2 once", got)
	}
}

func TestDeadLetterQueueConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		cfg   DeadLetterQueueConfig
		valid bool
	}{
		{"zero value", DeadLetterQueueConfig{}, true},
		{"all set", DeadLetterQueueConfig{Capacity: 1, MaxBatch: 1, WriteTimeout: time.Second, RetryMin: time.Second, RetryMax: time.Second, CloseTimeout: time.Second}, true},
		{"Capacity negative", DeadLetterQueueConfig{Capacity: -1}, false},
		{"MaxBatch negative", DeadLetterQueueConfig{MaxBatch: -1}, false},
		{"WriteTimeout negative", DeadLetterQueueConfig{WriteTimeout: -1}, false},
		{"CloseTimeout negative", DeadLetterQueueConfig{CloseTimeout: -1}, false},
		{"RetryMin negative", DeadLetterQueueConfig{RetryMin: -1}, false},
		{"RetryMin above RetryMax", DeadLetterQueueConfig{RetryMin: time.Minute}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.valid != (err == nil) {
				t.Fatalf("Validate() = %v, want valid %v", err, tt.valid)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("%v does not wrap ErrInvalidConfig", err)
			}
		})
	}
}
