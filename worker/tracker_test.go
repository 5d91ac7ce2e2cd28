package worker

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/sharding"
)

func cur(seq uint64) sharding.Cursor { return sharding.Cursor{Seq: seq, Offset: int64(seq * 10)} }

// recState is the model's truth about one record of a held slot.
type recState uint8

const (
	owed     recState = iota // not finished by anyone: must be sent
	inFlight                 // dispatched by the reader, not finished
	finished                 // finished (counted) while held here, or before the claim
)

// trackerModel drives a tracker the way the reader, the send pool and the
// coordinator do, in random order, against a model of every record, and
// checks after every step what a checkpoint relies on: a slot's progress
// lists as pending exactly its unfinished records behind its cursor, its
// counters count exactly its finished records, and no record is sent
// twice or skipped.
type trackerModel struct {
	t         *testing.T
	rng       *rand.Rand
	tr        *tracker
	n         uint64 // records in the stream
	slotOf    []int  // record -> slot
	pos       uint64 // the reader's next record
	gen       uint64 // the tracker's gen the reader last saw
	state     map[int][]recState
	start     map[int]coordinator.Counters
	done      map[int]int64 // records finished here, per slot
	flight    []flying
	sends     map[uint64]int // dispatches per record
	abandoned map[uint64]int // abandoned sends per record
	moves     int            // times the reader moved (back for a late slot or a record to send again)
}

type flying struct {
	idx  int32
	seq  uint64
	slot int
}

func newTrackerModel(t *testing.T, seed uint64, slots int, n uint64, window int) *trackerModel {
	m := &trackerModel{t: t, rng: rand.New(rand.NewPCG(seed, 1)), n: n, slotOf: make([]int, n),
		state: map[int][]recState{}, start: map[int]coordinator.Counters{}, done: map[int]int64{},
		sends: map[uint64]int{}, abandoned: map[uint64]int{}}
	m.tr = newTracker(slots, window, 0, nil)
	m.gen = m.tr.gen.Load()
	for i := range m.slotOf {
		m.slotOf[i] = m.rng.IntN(slots)
	}
	return m
}

// add claims a slot with random progress: a cursor, some records behind it
// pending, the rest behind it finished before.
func (m *trackerModel) add(slot int) {
	c := uint64(m.rng.IntN(int(m.n) + 1))
	st := make([]recState, m.n)
	p := coordinator.Progress{Cursor: cur(c), Counters: coordinator.Counters{Scanned: int64(m.rng.IntN(100))}}
	for seq := range c {
		st[seq] = finished
		if m.slotOf[seq] == slot && m.rng.IntN(8) == 0 {
			st[seq] = owed
			p.Pending = append(p.Pending, cur(seq))
		}
	}
	m.state[slot], m.start[slot], m.done[slot] = st, p.Counters, 0
	m.tr.addSlot(nil, slot, p, context.Background())
}

// read is one step of the reader. Like the reader, it publishes its
// position only now and then for records it passes (skipBatch), and
// exactly before it looks at the slots again.
func (m *trackerModel) read() {
	if g := m.tr.gen.Load(); g != m.gen {
		m.gen = g
		m.tr.skipTo(cur(m.pos))
		from, move, busy, _ := m.tr.cover()
		if !busy {
			return
		}
		if move {
			m.pos = from.Seq
			m.moves++
		}
	}
	if m.pos >= m.n {
		m.tr.atEnd(cur(m.n))
		return
	}
	seq := m.pos
	sr := m.tr.tableCopy()[m.slotOf[seq]]
	if sr != nil {
		switch m.tr.consider(sr, sharding.Cursor{Seq: seq}) {
		case waitRoom:
			return // try this record again later
		case takeRecord:
			if m.state[sr.index][seq] != owed && seq < m.n {
				m.t.Fatalf("record %d of slot %d dispatched in state %d", seq, sr.index, m.state[sr.index][seq])
			}
			m.sends[seq]++
			out := pending
			if m.rng.IntN(3) == 0 {
				out = outcome(1 + m.rng.IntN(5))
			}
			idx, ok := m.tr.take(sr, cur(seq), cur(seq+1), out, int64(seq+1), "x")
			if !ok {
				m.t.Fatal("take refused for an active slot")
			}
			if out == pending {
				m.state[sr.index][seq] = inFlight
				m.flight = append(m.flight, flying{idx: idx, seq: seq, slot: sr.index})
			} else {
				m.state[sr.index][seq] = finished
				m.done[sr.index]++
			}
		}
	}
	m.pos++
	if m.rng.IntN(8) == 0 {
		m.tr.skipTo(cur(m.pos))
	}
}

// finishOne finishes a record in flight; now and then its send is
// abandoned instead, and the record becomes pending again.
func (m *trackerModel) finishOne(abandon bool) {
	if len(m.flight) == 0 {
		return
	}
	i := m.rng.IntN(len(m.flight))
	f := m.flight[i]
	m.flight = slices.Delete(m.flight, i, i+1)
	if abandon {
		m.abandoned[f.seq]++
		m.tr.finish(f.idx, pending)
		m.state[f.slot][f.seq] = owed
		return
	}
	m.tr.finish(f.idx, delivered)
	m.state[f.slot][f.seq] = finished
	m.done[f.slot]++
}

// check compares every held slot's progress with the model.
func (m *trackerModel) check(step int) {
	m.tr.mu.Lock()
	defer m.tr.mu.Unlock()
	inflight := map[*slotRun][]sharding.Cursor{}
	for _, e := range m.tr.win {
		if e.used {
			inflight[e.slot] = append(inflight[e.slot], e.at)
		}
	}
	for _, sr := range m.tr.table {
		if sr == nil {
			continue
		}
		p := m.tr.progressLocked(sr, inflight)
		st := m.state[sr.index]
		pend := map[uint64]bool{}
		for i, c := range p.Pending {
			if c.Seq >= p.Cursor.Seq || (i > 0 && c.Seq <= p.Pending[i-1].Seq) {
				m.t.Fatalf("step %d slot %d: pending %v not ascending before cursor %v", step, sr.index, p.Pending, p.Cursor)
			}
			if m.slotOf[c.Seq] != sr.index || st[c.Seq] == finished {
				m.t.Fatalf("step %d slot %d: record %d pending but finished or not the slot's", step, sr.index, c.Seq)
			}
			pend[c.Seq] = true
		}
		for seq := range min(p.Cursor.Seq, m.n) {
			if m.slotOf[seq] == sr.index && st[seq] != finished && !pend[seq] {
				m.t.Fatalf("step %d slot %d: record %d unfinished behind cursor %d and not pending", step, sr.index, seq, p.Cursor.Seq)
			}
		}
		// A successor resumes at the cursor: nothing finished may lie
		// there or after, or it would be sent twice.
		for seq := p.Cursor.Seq; seq < m.n; seq++ {
			if m.slotOf[seq] == sr.index && st[seq] == finished {
				m.t.Fatalf("step %d slot %d: record %d finished at or after cursor %d", step, sr.index, seq, p.Cursor.Seq)
			}
		}
		// Each check stands for an acknowledged write: the next cursor may
		// not go back.
		if p.Cursor.Seq < sr.wrote.Seq {
			m.t.Fatalf("step %d slot %d: cursor %d behind the last written %d", step, sr.index, p.Cursor.Seq, sr.wrote.Seq)
		}
		sr.wrote = p.Cursor
		want := m.start[sr.index].Scanned + m.done[sr.index]
		if p.Counters.Scanned != want {
			m.t.Fatalf("step %d slot %d: scanned %d, want %d", step, sr.index, p.Counters.Scanned, want)
		}
	}
}

func TestTrackerModel(t *testing.T) {
	for seed := range uint64(60) {
		m := newTrackerModel(t, seed, 4, 300, 1+int(seed%7))
		m.add(0)
		for step := range 3000 {
			switch r := m.rng.IntN(100); {
			case r < 2:
				if s := m.rng.IntN(4); m.tr.tableCopy()[s] == nil {
					m.add(s)
				}
			case r < 55:
				m.read()
			case r < 58:
				m.finishOne(true)
			default:
				m.finishOne(false)
			}
			m.check(step)
		}
		// Quiesce: finish everything, read to the end; every slot must be
		// ready to finish, read to its end with nothing pending.
		for range 100000 {
			for len(m.flight) > 0 {
				m.finishOne(false)
			}
			m.read()
			if m.pos >= m.n && m.tr.gen.Load() == m.gen && len(m.flight) == 0 {
				m.read() // atEnd
				break
			}
		}
		m.check(-1)
		w := m.tr.collect(time.Now(), false)
		held := 0
		for _, sr := range m.tr.tableCopy() {
			if sr != nil {
				held++
			}
		}
		if len(w.reports) != held {
			t.Fatalf("seed %d: %d of %d slots ready to finish at the end", seed, len(w.reports), held)
		}
		for i, r := range w.reports {
			slot := w.slots[i].index
			if r.End != coordinator.FinishSlot || len(r.Progress.Pending) != 0 || r.Progress.Cursor.Seq != m.n {
				t.Fatalf("seed %d slot %d: final report %+v", seed, slot, r)
			}
			for seq, s := range m.state[slot] {
				if m.slotOf[seq] == slot && s != finished {
					t.Fatalf("seed %d slot %d: record %d never finished", seed, slot, seq)
				}
			}
		}
		for seq, n := range m.sends {
			if n > 1+m.abandoned[seq] {
				t.Fatalf("seed %d: record %d sent %d times, abandoned %d", seed, seq, n, m.abandoned[seq])
			}
		}
		if seed == 0 {
			t.Logf("seed 0: %d records sent, %d reader moves", len(m.sends), m.moves)
		}
	}
}

// A slot asked back stops taking records at once, keeps its cursor where
// the reader was, and is handed back once what it had in flight finished,
// with nothing pending; with a straggler past the drain time, the
// straggler is handed on as pending.
func TestTrackerHandBack(t *testing.T) {
	tr := newTracker(2, 8, 0, nil)
	a := tr.addSlot(nil, 0, coordinator.Progress{}, context.Background())
	b := tr.addSlot(nil, 1, coordinator.Progress{}, context.Background())
	tr.cover()
	ia, _ := tr.take(a, cur(0), cur(1), pending, 1, "")
	ib, _ := tr.take(b, cur(1), cur(2), pending, 2, "")
	tr.skipTo(cur(5))
	tr.handBack(a, time.Hour)
	if tr.consider(a, sharding.Cursor{Seq: 6}) != skipRecord {
		t.Fatal("a slot asked back still takes records")
	}
	tr.skipTo(cur(9))
	if w := tr.collect(time.Now(), false); len(w.reports) != 0 {
		t.Fatalf("handed back with a record in flight: %+v", w.reports)
	}
	tr.finish(ia, delivered)
	w := tr.collect(time.Now(), false)
	if len(w.reports) != 1 || w.reports[0].End != coordinator.HandBack || w.reports[0].Progress.Cursor != cur(5) ||
		len(w.reports[0].Progress.Pending) != 0 || w.reports[0].Progress.Counters.Delivered != 1 {
		t.Fatalf("hand-back %+v, want at cursor 5, nothing pending, one delivered", w.reports)
	}

	tr.handBack(b, 0)
	w = tr.collect(time.Now(), false)
	if len(w.reports) != 1 || w.reports[0].End != coordinator.HandBack || !slices.Equal(w.reports[0].Progress.Pending, []sharding.Cursor{cur(1)}) {
		t.Fatalf("hand-back past the drain time %+v, want the straggler pending", w.reports)
	}
	if b.sendCtx.Err() == nil {
		t.Fatal("the straggler's send was not cancelled")
	}
	tr.finish(ib, pending)
}

// Reading stops while a checkpoint window has finished without an
// acknowledged write, and goes on once one is.
func TestTrackerWaitsForAcknowledgedCheckpoint(t *testing.T) {
	tr := newTracker(1, 64, 3, nil)
	s := tr.addSlot(nil, 0, coordinator.Progress{}, context.Background())
	tr.cover()
	for seq := range uint64(3) {
		if tr.consider(s, sharding.Cursor{Seq: seq}) != takeRecord {
			t.Fatalf("record %d refused", seq)
		}
		tr.take(s, cur(seq), cur(seq+1), unreachable, 0, "")
		if seq == 1 {
			select {
			case <-tr.due:
			default:
				t.Fatal("no checkpoint due after half a window of records")
			}
		}
	}
	if tr.consider(s, sharding.Cursor{Seq: 3}) != waitRoom {
		t.Fatal("reading went on with a window unacknowledged")
	}
	w := tr.collect(time.Now(), true)
	tr.written(w, []error{context.DeadlineExceeded}, time.Now(), time.Minute, nil)
	if tr.consider(s, sharding.Cursor{Seq: 3}) != waitRoom {
		t.Fatal("reading went on after a failed write")
	}
	w = tr.collect(time.Now(), true)
	tr.written(w, make([]error, len(w.reports)), time.Now(), time.Minute, nil)
	if tr.consider(s, sharding.Cursor{Seq: 3}) != takeRecord {
		t.Fatal("reading still stopped after an acknowledged write")
	}
}

// TestTrackerByOffset: for a source read by position range, records are
// ordered by (Seq, Offset): two records at one position (a hash
// collision) are two records, neither skipped behind the other, and a
// slot resumed between them takes the second and, when pending, the
// first again.
func TestTrackerByOffset(t *testing.T) {
	at := func(seq uint64, off int64) sharding.Cursor { return sharding.Cursor{Seq: seq, Offset: off} }
	tr := newTracker(1, 8, 0, nil)
	tr.byOffset = true
	a := tr.addSlot(nil, 0, coordinator.Progress{Cursor: at(100, 0)}, context.Background())
	tr.cover()
	if tr.consider(a, at(100, 0)) != takeRecord {
		t.Fatal("the first record at the slot's cursor not taken")
	}
	i0, _ := tr.take(a, at(100, 0), at(100, 1), pending, 0, "")
	if tr.consider(a, at(100, 1)) != takeRecord {
		t.Fatal("a second record at the same position skipped as if behind the first")
	}
	i1, _ := tr.take(a, at(100, 1), at(100, 2), pending, 0, "")
	tr.finish(i1, delivered)
	w := tr.collect(time.Now(), true)
	if len(w.reports) != 1 || w.reports[0].Progress.Cursor != at(100, 2) || !slices.Equal(w.reports[0].Progress.Pending, []sharding.Cursor{at(100, 0)}) {
		t.Fatalf("progress %+v, want cursor 100/2 with 100/0 pending", w.reports)
	}
	tr.finish(i0, pending)

	// The slot resumes elsewhere from that progress.
	tr2 := newTracker(1, 8, 0, nil)
	tr2.byOffset = true
	b := tr2.addSlot(nil, 0, w.reports[0].Progress, context.Background())
	from, _, busy, _ := tr2.cover()
	if !busy || from != at(100, 0) {
		t.Fatalf("cover from %v (busy %v), want the pending 100/0", from, busy)
	}
	for _, c := range []struct {
		at   sharding.Cursor
		want decision
	}{{at(100, 0), takeRecord}, {at(100, 1), skipRecord}, {at(100, 2), takeRecord}, {at(101, 0), takeRecord}} {
		if got := tr2.consider(b, c.at); got != c.want {
			t.Fatalf("record %v: %v, want %v", c.at, got, c.want)
		}
	}
}
