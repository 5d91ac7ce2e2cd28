package worker

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/internal/devstack"
)

// A report is on the topic, keyed by broadcast id, once Report returns;
// a topic that does not exist is an error, so the coordinator keeps the
// broadcast live and reports again later.
func TestReportWriterProducesSummaries(t *testing.T) {
	ctx := context.Background()
	k, err := devstack.StartKafka(ctx, devstack.KafkaConfig{Topics: []string{DefaultReportTopic}, Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	want := coordinator.Summary{
		ID: "spring-sale", State: coordinator.StateDone, CreatedAt: at, StartedAt: at.Add(time.Second),
		FinishedAt: at.Add(time.Minute), ArchivedAt: at.Add(2 * time.Minute),
		Counters:   coordinator.Counters{Scanned: 10, Delivered: 9, Failed: 1},
		Units:      coordinator.UnitCounts{Total: 2, Done: 2},
		Workers:    map[string]coordinator.WorkerShare{"w1": {Delivered: 9}},
		SpecSHA256: "ab",
	}

	w := NewReportWriter(k.Brokers(), "", nil, nil)
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := w.Report(rctx, want); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: k.Brokers(), Topic: DefaultReportTopic, Partition: 0,
		MaxWait: 100 * time.Millisecond, ReadLagInterval: -1})
	defer r.Close()
	m, err := r.ReadMessage(rctx)
	if err != nil {
		t.Fatal(err)
	}
	var got coordinator.Summary
	if err := json.Unmarshal(m.Value, &got); err != nil {
		t.Fatalf("report is not a summary: %s", m.Value)
	}
	if string(m.Key) != want.ID || !reflect.DeepEqual(got, want) {
		t.Fatalf("report %s = %s\nwant %+v", m.Key, m.Value, want)
	}

	missing := NewReportWriter(k.Brokers(), "no.such.topic", nil, nil)
	defer missing.Close()
	mctx, mcancel := context.WithTimeout(ctx, time.Second)
	defer mcancel()
	if err := missing.Report(mctx, want); err == nil {
		t.Fatal("a report to a topic that does not exist succeeded")
	}
}
