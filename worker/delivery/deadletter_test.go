package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/herald-dev/herald/internal/devstack"
)

func startKafka(t *testing.T, topic string) *devstack.Kafka {
	t.Helper()
	k, err := devstack.StartKafka(context.Background(), devstack.KafkaConfig{Topics: []string{topic}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return k
}

// readAll reads every message of topic back through kafka-go, partition by
// partition, up to each partition's end offset at the time of the call.
func readAll(t *testing.T, brokers []string, topic string) map[int][]kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: transport}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		t.Fatalf("metadata of %s: %v %+v", topic, err, meta)
	}
	var ask []kafka.OffsetRequest
	for _, p := range meta.Topics[0].Partitions {
		ask = append(ask, kafka.LastOffsetOf(p.ID))
	}
	offsets, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: ask}})
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	got := map[int][]kafka.Message{}
	for _, po := range offsets.Topics[topic] {
		if po.Error != nil {
			t.Fatalf("end offset of %s/%d: %v", topic, po.Partition, po.Error)
		}
		if po.LastOffset == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: po.Partition, MaxWait: 100 * time.Millisecond})
		for range po.LastOffset {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				t.Fatalf("read %s/%d: %v", topic, po.Partition, err)
			}
			got[po.Partition] = append(got[po.Partition], m)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return got
}

func TestDeadLetterWriterRecordsEveryLetter(t *testing.T) {
	const topic, writers, perWriter = DefaultDeadLetterTopic, 6, 20
	k := startKafka(t, topic)
	w := NewDeadLetterWriter(k.Brokers(), "", nil, nil)
	at := time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.UTC)

	// Writer g fails subscribers g-0, g-1, ... of broadcast b<g%3>, one
	// after another, as a worker's senders would.
	sent := map[string]DeadLetter{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range perWriter {
				r := Result{Outcome: Failed, Status: 500 + i%4, Attempts: 6, Reason: fmt.Sprintf("gave up after 6 attempts: try %d", i)}
				d := NewDeadLetter(fmt.Sprintf("b%d", g%3), fmt.Sprintf("%d-%d", g, i), fmt.Sprintf("key-%d-%d", g, i), r, at.Add(time.Duration(i)*time.Second))
				if err := w.Write(context.Background(), d); err != nil {
					t.Errorf("write %s: %v", d.SubscriberID, err)
					return
				}
				mu.Lock()
				sent[d.SubscriberID] = d
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(context.Background(), DeadLetter{BroadcastID: "b0"}); err == nil {
		t.Error("Write after Close succeeded")
	}

	byPartition := readAll(t, k.Brokers(), topic)
	got := map[string]DeadLetter{}
	home := map[string]int{} // broadcast id -> partition
	for p, msgs := range byPartition {
		last := map[int]int{} // writer -> last i seen in this partition
		for _, m := range msgs {
			var d DeadLetter
			if err := json.Unmarshal(m.Value, &d); err != nil {
				t.Fatalf("value %s: %v", m.Value, err)
			}
			if string(m.Key) != d.BroadcastID {
				t.Errorf("key %q, want the broadcast id %q", m.Key, d.BroadcastID)
			}
			if q, ok := home[d.BroadcastID]; ok && q != p {
				t.Errorf("broadcast %s in partitions %d and %d", d.BroadcastID, q, p)
			}
			home[d.BroadcastID] = p
			var g, i int
			if _, err := fmt.Sscanf(d.SubscriberID, "%d-%d", &g, &i); err != nil {
				t.Fatalf("subscriber id %q: %v", d.SubscriberID, err)
			}
			if prev, ok := last[g]; ok && i <= prev {
				t.Errorf("partition %d: writer %d's letter %d after its letter %d", p, g, i, prev)
			}
			last[g] = i
			if _, dup := got[d.SubscriberID]; dup {
				t.Errorf("%s recorded twice", d.SubscriberID)
			}
			got[d.SubscriberID] = d
		}
	}
	for p, msgs := range byPartition {
		t.Logf("partition %d: %d letters", p, len(msgs))
	}
	if len(got) != writers*perWriter {
		t.Errorf("read back %d letters, want %d", len(got), writers*perWriter)
	}
	for id, want := range sent {
		d := got[id]
		if !d.At.Equal(want.At) {
			t.Errorf("%s: at %v, want %v", id, d.At, want.At)
		}
		d.At = want.At
		if d != want {
			t.Errorf("%s: read %+v, want %+v", id, d, want)
		}
	}
}

func TestDeadLetterJSON(t *testing.T) {
	d := NewDeadLetter("spring-sale-2026", "u42", testKey,
		Result{Outcome: Failed, Status: 0, Attempts: 6, Reason: "gave up after 6 attempts: connection refused"},
		time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	want := []string{"at", "attempts", "broadcast_id", "idempotency_key", "last_status", "reason", "subscriber_id"}
	if got := slices.Sorted(maps.Keys(fields)); !slices.Equal(got, want) {
		t.Errorf("fields %v, want %v", got, want)
	}
	if fields["last_status"] != float64(0) || fields["attempts"] != float64(6) || fields["at"] != "2026-11-23T10:00:00Z" {
		t.Errorf("values %s", b)
	}
}

func TestDeadLetterWriterReportsUnreachableKafka(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	w := NewDeadLetterWriter([]string{dead}, "", nil, nil)
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()

	err = w.Write(ctx, DeadLetter{BroadcastID: "b", SubscriberID: "u"})
	if err == nil {
		t.Fatal("Write to a dead broker reported success")
	}
	t.Log(err)
}
