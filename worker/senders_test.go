package worker

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSendersBoundedBySlots hands records of many "broadcasts" to the
// senders the way readers do, each holding a send slot first: the
// goroutines delivering never outnumber the slots, every record is
// delivered once, and once the work stops the senders end by themselves.
func TestSendersBoundedBySlots(t *testing.T) {
	const slots, broadcasts, each = 8, 20, 200
	var running, peak, delivered atomic.Int64
	seen := make([]atomic.Int32, broadcasts*each)
	ss := newSendSlots(slots)
	shares := make([]*slotShare, broadcasts)
	for i := range shares {
		shares[i] = ss.join(64) // more than the worker has: the worker's bound rules
	}
	p := newSendersDoing(slots, func(j job, _ *scratch) {
		n := running.Add(1)
		for {
			old := peak.Load()
			if n <= old || peak.CompareAndSwap(old, n) {
				break
			}
		}
		time.Sleep(100 * time.Microsecond)
		seen[j.idx].Add(1)
		delivered.Add(1)
		running.Add(-1)
		shares[int(j.idx)/each].release()
	})
	var readers sync.WaitGroup
	for b := range broadcasts {
		readers.Go(func() {
			for i := range each {
				if err := shares[b].acquire(context.Background()); err != nil {
					t.Error(err)
					return
				}
				p.run(job{idx: int32(b*each + i)})
			}
		})
	}
	readers.Wait()
	waitFor(t, 5*time.Second, "every record delivered", func() bool { return delivered.Load() == broadcasts*each })
	if got := peak.Load(); got > slots {
		t.Errorf("%d records were being delivered at once; the worker has %d send slots", got, slots)
	}
	for i := range seen {
		if n := seen[i].Load(); n != 1 {
			t.Fatalf("record %d delivered %d times", i, n)
		}
	}
	p.mu.Lock()
	n := p.n
	p.mu.Unlock()
	if n > slots {
		t.Errorf("%d sender goroutines for %d slots", n, slots)
	}
	// Idle senders end after senderIdle.
	waitFor(t, senderIdle+5*time.Second, "idle senders ended", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.n == 0
	})
	p.close()
}

// TestSendersCloseWaits: close returns only after the records being
// delivered are finished.
func TestSendersCloseWaits(t *testing.T) {
	release := make(chan struct{})
	var finished atomic.Bool
	p := newSendersDoing(2, func(job, *scratch) {
		<-release
		finished.Store(true)
	})
	p.run(job{})
	closed := make(chan struct{})
	go func() {
		p.close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("close returned while a record was being delivered")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-closed
	if !finished.Load() {
		t.Error("the record being delivered did not finish")
	}
}

// TestSlotShareOwnBound: a broadcast never holds more than its own
// max_in_flight, though the worker has slots free; a slot it gives back
// while it waits comes back to it.
func TestSlotShareOwnBound(t *testing.T) {
	ss := newSendSlots(10)
	a := ss.join(2)
	ctx := context.Background()
	for range 2 {
		if err := a.acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := a.acquire(short); err == nil {
		t.Fatal("a third slot was granted to a broadcast allowed 2")
	}
	got := make(chan error, 1)
	go func() { got <- a.acquire(ctx) }()
	time.Sleep(20 * time.Millisecond)
	a.release()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting acquire was not granted the slot its broadcast gave back")
	}
	// The other broadcast still finds the worker's 8 other slots free.
	b := ss.join(0)
	for i := range 8 {
		short, cancel := context.WithTimeout(ctx, time.Second)
		err := b.acquire(short)
		cancel()
		if err != nil {
			t.Fatalf("slot %d of 8 free ones: %v", i+1, err)
		}
	}
}
