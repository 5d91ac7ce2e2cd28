package coordinator

import (
	"context"
	"testing"
	"time"

	"github.com/herald-dev/herald/sharding"
)

// benchMember runs a coordinator alone on an embedded etcd, registers a
// broadcast "bench" and returns the coordinator and a stop function that
// hands back whatever it still holds and waits for Run. extra, when set, is
// called first on stop (to hand back claims the benchmark holds).
func benchMember(b *testing.B) (*Coordinator, func(extra func())) {
	c := newCluster(b)
	cli := c.client(c.etcd.Endpoint())
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
	return co, func(extra func()) {
		cancel()
		if extra != nil {
			extra()
		}
		for cl := range co.Claims() {
			_ = cl.Handoff(context.Background(), cl.Progress())
		}
		<-done
		cli.Close()
	}
}

// BenchmarkCheckpoint measures one checkpoint transaction of one slot
// against the embedded etcd, and BenchmarkCheckpointBatch one of eight
// slots: what a worker pays per broadcast per checkpoint interval.
func BenchmarkCheckpoint(b *testing.B) {
	co, stop := benchMember(b)
	defer stop(nil)
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
	co, stop := benchMember(b)
	var reports []Report
	for len(reports) < 8 {
		select {
		case cl := <-co.Claims():
			reports = append(reports, Report{Claim: cl, Progress: cl.Progress()})
		case <-time.After(10 * time.Second):
			b.Fatal("no claim")
		}
	}
	defer stop(func() {
		for i := range reports {
			reports[i].End = HandBack
		}
		Write(context.Background(), reports)
	})
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
