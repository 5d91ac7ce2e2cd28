package worker

import (
	"math/rand/v2"
	"testing"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/sharding"
)

func cur(seq uint64) sharding.Cursor { return sharding.Cursor{Seq: seq, Offset: int64(seq * 10)} }

func TestProgressCursorStopsAtOldestUnfinished(t *testing.T) {
	p := newProgress(coordinator.Progress{Cursor: cur(5)}, 8, 0)
	if got, _ := p.snapshot(); got.Cursor != cur(5) {
		t.Fatalf("fresh cursor = %v, want the claim's", got.Cursor)
	}
	a, _ := p.add(cur(5), cur(6), pending, 6, "")
	p.skip(cur(7))                            // seq 6 is not ours
	p.add(cur(7), cur(8), unreachable, 8, "") // finished at once, behind a
	b, _ := p.add(cur(8), cur(9), pending, 9, "")
	p.skip(cur(12))

	snap, _ := p.snapshot()
	if snap.Cursor != cur(5) || snap.Counters != (coordinator.Counters{}) {
		t.Fatalf("with seq 5 in flight: %+v, want cursor 5 and nothing counted", snap)
	}
	p.finish(b, failed) // out of order: still nothing before a may count
	if snap, _ = p.snapshot(); snap.Cursor != cur(5) || snap.Counters.Failed != 0 {
		t.Fatalf("after finishing the later record: %+v", snap)
	}
	p.finish(a, delivered)
	snap, moved := p.snapshot()
	want := coordinator.Counters{Scanned: 3, Delivered: 1, Failed: 1, Unreachable: 1}
	if snap.Cursor != cur(12) || snap.Counters != want || moved != 3 {
		t.Fatalf("all finished: %+v moved %d, want cursor 12, %+v, moved 3", snap, moved, want)
	}
	if p.inFlight() != 0 {
		t.Fatalf("in flight = %d", p.inFlight())
	}
}

func TestProgressWindowFullAndInvalidSamples(t *testing.T) {
	p := newProgress(coordinator.Progress{Counters: coordinator.Counters{Scanned: 10, Invalid: 1},
		InvalidSamples: []coordinator.InvalidSample{{Line: 1, Reason: "old"}}}, 2, 0)
	first, ok := p.add(cur(0), cur(1), pending, 1, "")
	if !ok {
		t.Fatal("first add refused")
	}
	second, ok := p.add(cur(1), cur(2), pending, 2, "")
	if !ok {
		t.Fatal("second add refused")
	}
	if _, ok := p.add(cur(2), cur(3), pending, 3, ""); ok {
		t.Fatal("third add accepted with a window of 2")
	}
	p.finish(first, delivered)
	select {
	case <-p.room:
	default:
		t.Fatal("no room signal after a slot freed")
	}
	p.finish(second, delivered)
	select {
	case <-p.drained:
	default:
		t.Fatal("no drained signal after the last slot finished")
	}
	for i := range uint64(10) {
		if _, ok := p.add(cur(2+i), cur(3+i), invalid, int64(3+i), "bad"); !ok {
			t.Fatalf("invalid record %d refused with nothing in flight", i)
		}
	}
	snap, _ := p.snapshot()
	if len(snap.InvalidSamples) != maxInvalidSamples || snap.InvalidSamples[0].Reason != "old" {
		t.Fatalf("samples = %+v, want %d starting with the claim's", snap.InvalidSamples, maxInvalidSamples)
	}
	if snap.Counters.Scanned != 10+12 || snap.Counters.Invalid != 11 {
		t.Fatalf("counters = %+v: the claim's counters must carry on", snap.Counters)
	}
}

// TestProgressModel finishes records in random order and checks, after every
// step, the invariant a checkpoint relies on: the cursor is the oldest
// unfinished owned record (or the read position) and the counters count
// exactly the records before it.
func TestProgressModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		window := 1 + rng.IntN(16)
		p := newProgress(coordinator.Progress{}, window, 0)
		type rec struct {
			seq  uint64
			idx  int
			out  outcome
			done bool
		}
		var owned []*rec
		var seq uint64
		for step := 0; step < 300; step++ {
			switch {
			case rng.IntN(4) == 0:
				seq++
				p.skip(cur(seq))
			case rng.IntN(2) == 0 && p.inFlight() < window:
				r := &rec{seq: seq, out: outcome(1 + rng.IntN(5))}
				immediate := rng.IntN(3) == 0
				o := pending
				if immediate {
					o, r.done = r.out, true
				}
				idx, ok := p.add(cur(seq), cur(seq+1), o, int64(seq), "x")
				if !ok {
					t.Fatalf("round %d: add refused below the window", round)
				}
				r.idx = idx
				owned = append(owned, r)
				seq++
			default:
				var open []*rec
				for _, r := range owned {
					if !r.done {
						open = append(open, r)
					}
				}
				if len(open) > 0 {
					r := open[rng.IntN(len(open))]
					r.done = true
					p.finish(r.idx, r.out)
				}
			}
			wantCursor := cur(seq)
			var want coordinator.Counters
			for _, r := range owned {
				if !r.done {
					wantCursor = cur(r.seq)
					break
				}
				want.Scanned++
				switch r.out {
				case delivered:
					want.Delivered++
				case failed:
					want.Failed++
				case unreachable:
					want.Unreachable++
				case invalid:
					want.Invalid++
				case expired:
					want.Expired++
				}
			}
			snap, _ := p.snapshot()
			if snap.Cursor != wantCursor || snap.Counters != want {
				t.Fatalf("round %d step %d: got %v %+v, want %v %+v", round, step, snap.Cursor, snap.Counters, wantCursor, want)
			}
		}
	}
}

// TestProgressSignalsDue: the checkpoint loop is woken the moment the
// configured number of records has finished, not at its next tick.
func TestProgressSignalsDue(t *testing.T) {
	p := newProgress(coordinator.Progress{}, 8, 3)
	for i := range uint64(2) {
		p.add(cur(i), cur(i+1), delivered, int64(i+1), "")
	}
	select {
	case <-p.due:
		t.Fatal("due after 2 of 3 records")
	default:
	}
	p.add(cur(2), cur(3), delivered, 3, "")
	select {
	case <-p.due:
	default:
		t.Fatal("not due after 3 records")
	}
	if n := p.finishedSince(); n != 3 {
		t.Fatalf("finishedSince = %d, want 3", n)
	}
	p.snapshot()
	if n := p.finishedSince(); n != 0 {
		t.Fatalf("finishedSince after a snapshot = %d, want 0", n)
	}
}
