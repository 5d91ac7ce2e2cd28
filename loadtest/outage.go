package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/internal/devstack"
	"github.com/herald-dev/herald/internal/sleep"
	"github.com/herald-dev/herald/sharding"
	"github.com/herald-dev/herald/sink"
	"github.com/herald-dev/herald/templates"
	"github.com/herald-dev/herald/worker/audience"
)

// endpointdown and kafkadown: one broadcast through an outage of what it
// depends on besides etcd. In both the endpoint refuses a fixed set of
// subscribers with 400 (sink --refuse-400, chosen by the idempotency
// key's hash), so the harness knows, from the audience alone, exactly
// which deliveries must fail: no more (an outage must not fail a message
// the endpoint would have taken) and no fewer.

// serviceOutage is the figures of endpointdown and kafkadown.
type serviceOutage struct {
	// What went down: "endpoint" or "kafka".
	What string `json:"what"`
	// DownAtS and UpAtS are since the trigger; BroadcastEndS is when the
	// broadcast was seen done.
	DownAtS       float64 `json:"down_at_s"`
	UpAtS         float64 `json:"up_at_s"`
	BroadcastEndS float64 `json:"broadcast_end_s"`
	// RequestsDuringOutage are the delivery requests the endpoint
	// answered 503 while it was down: the probes of the workers' circuit
	// breakers, and the attempts that opened them.
	RequestsDuringOutage int64 `json:"requests_during_outage,omitempty"`
	// DeliveredDuringOutage counts first deliveries in the whole seconds
	// of the endpoint's per-second series inside the outage.
	DeliveredDuringOutage int64 `json:"delivered_during_outage"`
	// RefusedEligible is how many eligible subscribers the endpoint
	// refuses, counted by the harness from the audience: what must fail.
	// RefusedRequests are the 400s the endpoint answered the broadcast.
	RefuseFraction  float64 `json:"refuse_fraction"`
	RefusedEligible int64   `json:"refused_eligible"`
	RefusedRequests int64   `json:"refused_requests"`
	// DeadLetters are the broadcast's messages on herald.deadletters after
	// the outage, DeadLetterKeys their distinct idempotency keys.
	DeadLetters    *int64 `json:"dead_letters,omitempty"`
	DeadLetterKeys *int64 `json:"dead_letter_keys,omitempty"`
	// After is a broadcast triggered once Kafka was back.
	After *afterBroadcast `json:"after,omitempty"`
}

// afterBroadcast is the small broadcast kafkadown triggers at the end.
type afterBroadcast struct {
	ID         string  `json:"id"`
	State      string  `json:"state"`
	Eligible   int64   `json:"eligible"`
	Delivered  int64   `json:"delivered"`
	Failed     int64   `json:"failed"`
	Duplicates int64   `json:"duplicates"`
	S          float64 `json:"s"` // from its trigger to its end
}

// endpointDownSink is endpointdown's endpoint: down for a window from a
// few seconds into the broadcast, refusing its bad subscribers all along.
func endpointDownSink(cfg Config) []string {
	return append(refusingSink(cfg.EndpointRefuse),
		"--outage-after", cfg.EndpointDownAfter.String(), "--outage-for", cfg.EndpointDownFor.String(),
		"--outage-status", "503", "--retry-after", "1s")
}

// refusingSink is an endpoint refusing fraction of the keys with 400.
func refusingSink(fraction float64) []string {
	return []string{"--refuse-400", fmt.Sprint(fraction)}
}

// endpointDownAfter checks endpointdown: the outage happened while the
// broadcast ran, and what failed is exactly what the endpoint refuses.
func endpointDownAfter(ctx context.Context, r *run, res *Result) error {
	cfg := r.h.cfg
	ss, err := r.sink.stats(ctx)
	if err != nil {
		return err
	}
	rep, err := r.outageReport(res, "endpoint", cfg.EndpointRefuse)
	if err != nil {
		return err
	}
	rep.RefusedRequests = ss.Broadcasts[r.id].Refused
	rep.RequestsDuringOutage = ss.Outage
	if !ss.OutageFrom.IsZero() {
		r.outageEvents(res, rep, "endpoint", ss.OutageFrom, ss.OutageUntil)
	}
	res.check("endpoint down during the broadcast", ss.Outage > 0 && !ss.OutageUntil.IsZero() && rep.UpAtS < rep.BroadcastEndS,
		"down %.1fs to %.1fs after the trigger, broadcast done at %.1fs; %d requests answered 503",
		rep.DownAtS, rep.UpAtS, rep.BroadcastEndS, ss.Outage)
	res.check("failed exactly the refused", res.Failed == rep.RefusedEligible,
		"failed %d, eligible subscribers the endpoint refuses %d (it answered %d requests 400)",
		res.Failed, rep.RefusedEligible, rep.RefusedRequests)
	return nil
}

// chaosKafkaDown stops Kafka KafkaDownAfter into the broadcast and starts
// it again on the same address KafkaDownFor later, or at once should the
// broadcast end first.
func chaosKafkaDown(ctx context.Context, r *run) error {
	cfg := r.h.cfg
	if err := r.sleepUntil(ctx, cfg.KafkaDownAfter); err != nil {
		return nil // the broadcast ended first; the check says so
	}
	r.st.StopKafka()
	r.addEvent(&event{at: time.Now(), Kind: "down", Worker: "kafka"})
	sleep.For(ctx, cfg.KafkaDownFor)
	if err := r.st.RestartKafka(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	r.addEvent(&event{at: time.Now(), Kind: "up", Worker: "kafka"})
	return nil
}

// kafkaDownAfter checks kafkadown: every failure is exactly a refused
// subscriber, each has its dead letter on the topic once, and the trigger
// topic still works.
func kafkaDownAfter(ctx context.Context, r *run, res *Result) error {
	cfg := r.h.cfg
	ss, err := r.sink.stats(ctx)
	if err != nil {
		return err
	}
	rep, err := r.outageReport(res, "kafka", cfg.KafkaRefuse)
	if err != nil {
		return err
	}
	rep.RefusedRequests = ss.Broadcasts[r.id].Refused
	var down, up *event
	for _, e := range res.Events {
		switch {
		case e.Kind == "down" && e.Worker == "kafka":
			down = e
		case e.Kind == "up" && e.Worker == "kafka":
			up = e
		}
	}
	if down != nil && up != nil {
		r.outageEvents(res, rep, "", down.at, up.at)
	}
	res.check("kafka down mid-broadcast", down != nil && up != nil && rep.UpAtS < rep.BroadcastEndS,
		"stopped %.1fs to %.1fs after the trigger, broadcast done at %.1fs", rep.DownAtS, rep.UpAtS, rep.BroadcastEndS)
	res.check("failed exactly the refused", res.Failed == rep.RefusedEligible,
		"failed %d, eligible subscribers the endpoint refuses %d (it answered %d requests 400)",
		res.Failed, rep.RefusedEligible, rep.RefusedRequests)

	letters, keys, err := readDeadLetters(ctx, r.st.KafkaBrokers(), r.id)
	if err != nil {
		return err
	}
	rep.DeadLetters, rep.DeadLetterKeys = &letters, &keys
	res.check("a dead letter for every failure", keys == res.Failed,
		"%d distinct keys on %s for %d failed", keys, devstack.DeadLettersTopic, res.Failed)
	res.check("no dead letter twice", letters == keys, "%d letters for %d keys (no worker crashed)", letters, keys)

	// The trigger topic after the outage: a small broadcast must be taken
	// and sent as any other.
	after, err := r.broadcastAfter(ctx, 1000)
	if err != nil {
		return err
	}
	rep.After = after
	res.check("trigger topic works after", after.State == string(coordinator.StateDone) &&
		after.Delivered+after.Failed == after.Eligible && after.Duplicates == 0,
		"%s %s in %.1fs: delivered %d + failed %d of %d eligible, duplicates %d",
		after.ID, after.State, after.S, after.Delivered, after.Failed, after.Eligible, after.Duplicates)
	return nil
}

// outageReport starts the report of r's broadcast, which ended in res,
// with what the endpoint refuses of it.
func (r *run) outageReport(res *Result, what string, fraction float64) (*serviceOutage, error) {
	n, err := refusedEligible(r.sc.subscribers, r.h.cfg.Seed, r.id, fraction)
	if err != nil {
		return nil, err
	}
	rep := &serviceOutage{What: what, BroadcastEndS: res.ElapsedS, RefuseFraction: fraction, RefusedEligible: n}
	res.Outage = rep
	return rep, nil
}

// outageEvents records the outage from `from` to `until`: in the report,
// and, unless kind is "" (the chaos recorded them), as events for the
// chart.
func (r *run) outageEvents(res *Result, rep *serviceOutage, kind string, from, until time.Time) {
	rep.DownAtS, rep.UpAtS = from.Sub(r.t0).Seconds(), until.Sub(r.t0).Seconds()
	if kind != "" {
		res.Events = append(res.Events,
			&event{at: from, AtS: rep.DownAtS, Kind: "down", Worker: kind},
			&event{at: until, AtS: rep.UpAtS, Kind: "up", Worker: kind})
	}
	if s := res.Series; s != nil {
		for i, c := range s.Counts {
			if at := s.StartS + float64(i); at >= rep.DownAtS && at+1 <= rep.UpAtS {
				rep.DeliveredDuringOutage += c
			}
		}
	}
}

// broadcastAfter triggers a small broadcast and follows it to its end,
// for at most a minute.
func (r *run) broadcastAfter(ctx context.Context, n int64) (*afterBroadcast, error) {
	eligible, err := r.h.eligible(n)
	if err != nil {
		return nil, err
	}
	a := &afterBroadcast{ID: r.id + "-after", Eligible: eligible, State: "not finished within a minute"}
	actx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	t := time.Now()
	err = r.triggerDemo(actx, a.ID, n)
	var st coordinator.Status
	if err == nil {
		st, err = r.waitEnd(actx, a.ID, 50*time.Millisecond)
	}
	a.S = time.Since(t).Seconds()
	switch {
	case ctx.Err() != nil:
		return nil, errStopped
	case err != nil:
		r.h.log.Warn("broadcast after the outage", "id", a.ID, "err", err)
		return a, nil
	}
	ss, err := r.sink.stats(ctx)
	if err != nil {
		return nil, err
	}
	got := ss.Broadcasts[a.ID]
	a.State, a.Delivered, a.Failed, a.Duplicates = string(st.State), got.Delivered, st.Counters.Failed, got.Duplicates
	return a, nil
}

// refusedEligible counts the eligible subscribers of the demo broadcast
// id whose idempotency key an endpoint refusing fraction refuses: the
// deliveries that must fail.
func refusedEligible(subscribers, seed int64, id string, fraction float64) (int64, error) {
	s, err := audience.Open(audience.Spec{Source: audience.SourceSynthetic, Count: subscribers, Seed: seed},
		sharding.Cursor{}, audience.Limits{})
	if err != nil {
		return 0, fmt.Errorf("loadtest: refused subscribers: %w", err)
	}
	defer s.Close()
	var n int64
	var key []byte
	for s.Next() {
		rec := s.Record()
		if rec.Invalid != "" || !rec.Reachable() {
			continue
		}
		key = templates.AppendKey(key[:0], id, string(rec.ID))
		if sink.Refuses(string(key), fraction) {
			n++
		}
	}
	return n, s.Err()
}

// readDeadLetters reads the whole dead-letter topic and counts broadcast
// id's letters and their distinct idempotency keys.
func readDeadLetters(ctx context.Context, brokers []string, id string) (letters, keys int64, err error) {
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: tr, Timeout: 10 * time.Second}
	topic := devstack.DeadLettersTopic
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return 0, 0, fmt.Errorf("loadtest: dead letters: %w", err)
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil {
		return 0, 0, fmt.Errorf("loadtest: dead letters: no topic %s: %v", topic, md.Topics)
	}
	seen := map[string]bool{}
	for _, p := range md.Topics[0].Partitions {
		_, err := readPartition(ctx, cl, topic, p.ID, func(value []byte) error {
			var d struct {
				BroadcastID string `json:"broadcast_id"`
				Key         string `json:"idempotency_key"`
			}
			if err := json.Unmarshal(value, &d); err != nil {
				return fmt.Errorf("loadtest: dead letter %q: %w", value, err)
			}
			if d.BroadcastID == id {
				letters++
				seen[d.Key] = true
			}
			return nil
		})
		if err != nil {
			return 0, 0, err
		}
	}
	return letters, int64(len(seen)), nil
}

// errPartitionStuck reports a partition whose fetches stop short of its
// high watermark.
var errPartitionStuck = errors.New("loadtest: fetch returns nothing below the high watermark")

// readPartition hands every message value of a partition, from its first
// offset to its high watermark when read, to each, and returns how many
// there were.
func readPartition(ctx context.Context, cl *kafka.Client, topic string, partition int, each func([]byte) error) (int64, error) {
	var n int64
	offset := kafka.FirstOffset
	for {
		resp, err := cl.Fetch(ctx, &kafka.FetchRequest{Topic: topic, Partition: partition, Offset: offset,
			MinBytes: 1, MaxBytes: 8 << 20, MaxWait: 100 * time.Millisecond})
		if err == nil {
			err = resp.Error
		}
		if err != nil {
			return n, fmt.Errorf("loadtest: read %s/%d at %d: %w", topic, partition, offset, err)
		}
		got := 0
		for {
			rec, err := resp.Records.ReadRecord()
			if errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return n, fmt.Errorf("loadtest: read %s/%d: %w", topic, partition, err)
			}
			if offset >= 0 && rec.Offset < offset {
				continue // a batch may start before the offset asked for
			}
			value, err := io.ReadAll(rec.Value)
			if err != nil {
				return n, fmt.Errorf("loadtest: read %s/%d: %w", topic, partition, err)
			}
			if err := each(value); err != nil {
				return n, err
			}
			n++
			got++
			offset = rec.Offset + 1
		}
		switch {
		case offset >= resp.HighWatermark || (offset < 0 && resp.HighWatermark == 0):
			return n, nil
		case got == 0:
			return n, fmt.Errorf("%w: %s/%d at %d of %d", errPartitionStuck, topic, partition, offset, resp.HighWatermark)
		}
	}
}

// lines are the report as writeFigures prints it.
func (rep *serviceOutage) lines() []string {
	out := []string{fmt.Sprintf("%s down %.1fs to %.1fs after the trigger (%.1fs), broadcast done at %.1fs; %d delivered in the whole seconds inside the outage",
		rep.What, rep.DownAtS, rep.UpAtS, rep.UpAtS-rep.DownAtS, rep.BroadcastEndS, rep.DeliveredDuringOutage)}
	if rep.What == "endpoint" {
		out = append(out, fmt.Sprintf("requests the endpoint received while down (answered 503): %d", rep.RequestsDuringOutage))
	}
	out = append(out, fmt.Sprintf("endpoint refuses %.2f%% of keys: %d eligible subscribers, %d requests answered 400",
		100*rep.RefuseFraction, rep.RefusedEligible, rep.RefusedRequests))
	if rep.DeadLetters != nil {
		out = append(out, fmt.Sprintf("dead letters on the topic: %d, distinct keys %d", *rep.DeadLetters, *rep.DeadLetterKeys))
	}
	if a := rep.After; a != nil {
		out = append(out, fmt.Sprintf("after: %s %s in %.1fs, delivered %d + failed %d of %d eligible, duplicates %d",
			a.ID, a.State, a.S, a.Delivered, a.Failed, a.Eligible, a.Duplicates))
	}
	return out
}
