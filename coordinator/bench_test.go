package coordinator

import (
	"context"
	"testing"
	"time"

	"github.com/herald-dev/herald/sharding"
)

// BenchmarkCheckpoint measures one checkpoint transaction of one slot
// against the embedded etcd, and BenchmarkCheckpointBatch one of eight
// slots: what a worker pays per broadcast per checkpoint interval.
func BenchmarkCheckpoint(b *testing.B) {
	c := newCluster(b)
	cli := c.client(c.etcd.Endpoint())
	defer cli.Close()
	co, err := New(Config{MemberID: "bench"}, cli, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = co.Run(ctx)
	}()
	defer func() {
		cancel()
		for cl := range co.Claims() {
			_ = cl.Handoff(context.Background(), cl.Progress())
		}
		<-done
	}()
	c.register("bench")
	var cl *Claim
	select {
	case cl = <-co.Claims():
	case <-time.After(10 * time.Second):
		b.Fatal("no claim")
	}
	p := cl.Progress()
	b.ResetTimer()
	for i := range b.N {
		p.Cursor = sharding.Cursor{Seq: uint64(i + 1)}
		p.Counters.Scanned++
		if err := cl.Checkpoint(context.Background(), p); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checkpoints/s")
	if err := cl.Handoff(context.Background(), p); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkCheckpointBatch(b *testing.B) {
	c := newCluster(b)
	cli := c.client(c.etcd.Endpoint())
	defer cli.Close()
	co, err := New(Config{MemberID: "bench"}, cli, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = co.Run(ctx)
	}()
	c.register("bench")
	var reports []Report
	for len(reports) < 8 {
		select {
		case cl := <-co.Claims():
			reports = append(reports, Report{Claim: cl, Progress: cl.Progress()})
		case <-time.After(10 * time.Second):
			b.Fatal("no claim")
		}
	}
	defer func() {
		cancel()
		for i := range reports {
			reports[i].End = HandBack
		}
		Write(context.Background(), reports)
		for cl := range co.Claims() {
			_ = cl.Handoff(context.Background(), cl.Progress())
		}
		<-done
	}()
	b.ResetTimer()
	for i := range b.N {
		for j := range reports {
			reports[j].Progress.Cursor = sharding.Cursor{Seq: uint64(i + 1)}
			reports[j].Progress.Counters.Scanned++
		}
		for _, err := range Write(context.Background(), reports) {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "txns/s")
}
