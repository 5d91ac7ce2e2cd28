package worker

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/sharding"
)

// outcome is how one owned record ended.
type outcome uint8

const (
	pending outcome = iota
	delivered
	failed
	unreachable
	invalid
	expired
	// tokenGone is failed, the provider having declared the subscriber's
	// device token dead: counted in Failed and in InvalidTokens.
	tokenGone
)

// slotState is where a held slot is in its life on this worker.
type slotState uint8

const (
	slotActive  slotState = iota // its records are read and sent
	slotHanding                  // asked back: nothing more is sent; waiting for what is in flight
	slotWriting                  // its final progress (finish or hand-back) is being written
	slotRemoved                  // gone from the tracker
)

// slotRun is one slot this worker holds a claim on. Its fields after the
// first block are guarded by the tracker's lock.
type slotRun struct {
	cl    *coordinator.Claim
	index int
	// sendCtx ends the slot's sends: when the claim ends, or when a
	// hand-back gives up waiting for stragglers.
	sendCtx    context.Context
	cancelSend context.CancelFunc
	removed    chan struct{} // closed once the slot leaves the tracker

	state slotState
	// next: every record of the slot before next has been dispatched or
	// was finished before, except those in resend. Once the reader covers
	// the slot, its position (the tracker's read) applies too: the slot's
	// cursor is max(next, read).
	next     sharding.Cursor
	covered  bool
	resend   map[sharding.Cursor]sharding.Cursor // pending records of the claim, not sent again yet: by tracker.key, to the cursor
	inflight int                                 // dispatched, not finished
	frozen   sharding.Cursor                     // the cursor when the slot was asked back
	drainBy  time.Time
	readDone bool // the reader went past the end of the stream holding the slot

	counters coordinator.Counters
	samples  []coordinator.InvalidSample
	// failing is when the slot's last write (finish or hand-back) first
	// failed for want of an answer; zero while it has not.
	failing time.Time
	// What the last acknowledged write recorded, to skip a slot that has
	// not moved.
	wrote     sharding.Cursor
	wroteCnt  coordinator.Counters
	wroteLen  int
	wroteOnce bool
}

// entry is one record read and dispatched but not finished: a place in
// the broadcast's window.
type entry struct {
	slot *slotRun
	at   sharding.Cursor
	used bool
}

// tracker keeps, for one broadcast on this worker, every slot held and
// every record in flight, and makes the slots' progress from them: a
// slot's cursor is the reader's position (or where the slot was asked
// back), and its pending records are those of its records still in
// flight, and those its claim listed that were not sent again yet.
// Counters count exactly the finished records, so a successor resuming
// at the cursor, and sending the pending records, neither skips a record
// nor counts one twice.
//
// The reader, the send pool, the checkpointer and the slots' watchers use
// it; every field after mu is guarded by mu.
type tracker struct {
	slots int // the broadcast's slot count
	every uint64
	// byOffset orders cursors by Seq, then Offset: for a source read by
	// position range, whose records' Seq is their position and Offset
	// their place among records of the same position (a hash collision).
	// File and synthetic sources order by Seq alone, each Seq being one
	// record.
	byOffset bool
	// removed is called, with mu held, when a slot leaves; empty says
	// whether it was the last. It must not block or take mu.
	removed func(empty bool)
	gen     atomic.Uint64 // bumped when slots are added or need re-reading
	room    chan struct{} // capacity 1: an entry was freed, or a write acknowledged
	due     chan struct{} // capacity 1: a checkpoint (or a final write) is due

	mu       sync.Mutex
	table    []*slotRun // by slot number; nil when not held
	held     int
	read     sharding.Cursor // the reader's position
	win      []entry
	free     []int32
	used     int
	finished uint64 // records finished, ever
	acked    uint64 // finished as of the last acknowledged write
}

// cmp orders two cursors of the broadcast's stream (see byOffset).
func (t *tracker) cmp(a, b sharding.Cursor) int {
	if c := cmp.Compare(a.Seq, b.Seq); c != 0 || !t.byOffset {
		return c
	}
	return cmp.Compare(a.Offset, b.Offset)
}

// key is the identity of the record at c in resend: its Seq alone where
// one Seq is one record (Offset then carries a byte offset, which a
// resumed stream may or may not know), the whole cursor for a source read
// by position range.
func (t *tracker) key(c sharding.Cursor) sharding.Cursor {
	if t.byOffset {
		return c
	}
	return sharding.Cursor{Seq: c.Seq}
}

func newTracker(slots, window int, every uint64, removed func(empty bool)) *tracker {
	t := &tracker{
		slots: slots, every: every, removed: removed,
		room: make(chan struct{}, 1), due: make(chan struct{}, 1),
		table: make([]*slotRun, slots),
		win:   make([]entry, window),
		free:  make([]int32, window),
	}
	for i := range t.free {
		t.free[i] = int32(window - 1 - i)
	}
	return t
}

// add starts tracking a claimed slot from the claim's progress.
func (t *tracker) add(cl *coordinator.Claim) *slotRun {
	return t.addSlot(cl, cl.Slot(), cl.Progress(), cl.Context())
}

// addSlot is add for slot index, resuming at p, whose sends end with ctx;
// cl may be nil in tests that write nothing.
func (t *tracker) addSlot(cl *coordinator.Claim, index int, p coordinator.Progress, ctx context.Context) *slotRun {
	sr := &slotRun{cl: cl, index: index, next: p.Cursor, counters: p.Counters, samples: p.InvalidSamples,
		removed: make(chan struct{}), wrote: p.Cursor, wroteCnt: p.Counters, wroteLen: len(p.Pending)}
	sr.sendCtx, sr.cancelSend = context.WithCancel(ctx)
	if len(p.Pending) > 0 {
		sr.resend = make(map[sharding.Cursor]sharding.Cursor, len(p.Pending))
		for _, c := range p.Pending {
			sr.resend[t.key(c)] = c
		}
	}
	t.mu.Lock()
	if old := t.table[sr.index]; old != nil {
		t.removeLocked(old) // a stale run of the same slot: its claim is over
	}
	t.table[sr.index] = sr
	t.held++
	t.mu.Unlock()
	t.gen.Add(1)
	return sr
}

// cover is the reader looking at the slots again (some were added, or a
// record needs sending again): from now on every active slot is covered
// by the reader. It returns where the reader must be: the earliest record
// any active slot needs (its cursor, or a record to send again). If that
// is not the read position, move is set and the read position becomes
// from: back, for a slot behind the reader, which then re-reads part of
// the stream while the other slots skip what they passed (each slot's
// next moves up to where the reader was); or forward, past records no
// slot needs. busy is false when no active slot needs the stream at all.
// table is a copy of the held slots by number, for the reader to look
// records up without the lock until the next change; the caller must
// have published its exact position first (skipTo).
func (t *tracker) cover() (from sharding.Cursor, move, busy bool, table []*slotRun) {
	t.mu.Lock()
	defer t.mu.Unlock()
	first := true
	for _, sr := range t.table {
		if sr == nil || sr.state != slotActive {
			continue
		}
		need := t.needLocked(sr)
		if first || t.cmp(need, from) < 0 {
			from, first = need, false
		}
		if !sr.readDone || len(sr.resend) > 0 {
			busy = true
		}
	}
	if busy && t.cmp(from, t.read) != 0 {
		for _, sr := range t.table {
			if sr != nil && sr.covered && t.cmp(sr.next, t.read) < 0 {
				sr.next = t.read
			}
		}
		t.read, move = from, true
	}
	for _, sr := range t.table {
		if sr != nil && sr.state == slotActive {
			sr.covered = true
		}
	}
	return t.read, move, busy, slices.Clone(t.table)
}

// needLocked is the earliest record sr needs: its cursor (the read
// position once the reader covers it), or a record to send again.
func (t *tracker) needLocked(sr *slotRun) sharding.Cursor {
	need := sr.next
	if sr.covered && t.cmp(t.read, need) > 0 {
		need = t.read
	}
	for _, c := range sr.resend {
		if t.cmp(c, need) < 0 {
			need = c
		}
	}
	return need
}

// slotNeed is where a held slot's records start to matter.
type slotNeed struct {
	slot int
	from sharding.Cursor
}

// needs is, for every active slot held, in slot order, the earliest
// record it needs (needLocked). A reader of a source read by position
// range reads each slot's range from there on, so a slot that arrives
// behind the read position costs the reading of its own records, not of
// every slot's records from there again.
func (t *tracker) needs() []slotNeed {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]slotNeed, 0, t.held)
	for i, sr := range t.table {
		if sr != nil && sr.state == slotActive {
			out = append(out, slotNeed{slot: i, from: t.needLocked(sr)})
		}
	}
	return out
}

// position is the reader's position.
func (t *tracker) position() sharding.Cursor {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.read
}

// tableCopy returns the held slots by number, for the reader to look records
// up without the lock; it takes a fresh copy whenever gen moves.
func (t *tracker) tableCopy() []*slotRun {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.table)
}

// skipTo moves the read position past records no held slot takes.
func (t *tracker) skipTo(c sharding.Cursor) {
	t.mu.Lock()
	if t.cmp(c, t.read) > 0 {
		t.read = c
	}
	t.mu.Unlock()
}

// decision is what the reader does with a record of a held slot.
type decision uint8

const (
	skipRecord decision = iota // not this slot's to send now
	takeRecord                 // dispatch it (or settle it at once)
	waitRoom                   // no room: the window is full, the slot's pending list is full, or a window has finished unacknowledged
)

// consider says what to do with the record at at of slot sr.
func (t *tracker) consider(sr *slotRun, at sharding.Cursor) decision {
	t.mu.Lock()
	defer t.mu.Unlock()
	if sr.state != slotActive {
		return skipRecord
	}
	again := false
	if t.cmp(at, sr.next) < 0 {
		if _, again = sr.resend[t.key(at)]; !again {
			return skipRecord
		}
	}
	// A record sent again moves from resend to in flight: the slot's
	// pending list does not grow, so only new records wait for room in it.
	if t.used == len(t.win) || (!again && sr.inflight+len(sr.resend) >= coordinator.MaxPending) ||
		(t.every > 0 && t.finished-t.acked >= t.every) {
		return waitRoom
	}
	return takeRecord
}

// take records the record at at (whose successor is next) as dispatched
// for sr, or, for an outcome other than pending, as finished at once, and
// moves the read position past it. It returns the record's place in the
// window, or ok=false if the slot stopped taking records meanwhile. The
// caller made sure there is room (consider), and is the only one who
// takes.
func (t *tracker) take(sr *slotRun, at, next sharding.Cursor, out outcome, line int64, why string) (idx int32, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if sr.state != slotActive {
		return 0, false
	}
	delete(sr.resend, t.key(at))
	if t.cmp(next, t.read) > 0 {
		t.read = next
	}
	if out != pending {
		t.countLocked(sr, out, line, why)
		return -1, true
	}
	idx = t.free[len(t.free)-1]
	t.free = t.free[:len(t.free)-1]
	t.win[idx] = entry{slot: sr, at: at, used: true}
	t.used++
	sr.inflight++
	return idx, true
}

// finish marks the record at idx done with out. A record whose send was
// abandoned (pending: its slot's claim ended, or a hand-back gave up on
// it) is not counted: it stays pending for whoever holds the slot next.
func (t *tracker) finish(idx int32, out outcome) {
	t.mu.Lock()
	e := t.win[idx]
	t.win[idx] = entry{}
	t.free = append(t.free, idx)
	t.used--
	sr := e.slot
	sr.inflight--
	switch {
	case sr.state == slotRemoved:
	case out == pending:
		if sr.resend == nil {
			sr.resend = map[sharding.Cursor]sharding.Cursor{}
		}
		sr.resend[t.key(e.at)] = e.at
		if sr.state == slotActive {
			t.gen.Add(1) // the reader goes back for it
		}
	default:
		t.countLocked(sr, out, 0, "")
	}
	drained := sr.inflight == 0 && sr.state == slotHanding
	t.mu.Unlock()
	signal(t.room)
	if drained {
		signal(t.due)
	}
}

func (t *tracker) countLocked(sr *slotRun, out outcome, line int64, why string) {
	c := &sr.counters
	c.Scanned++
	switch out {
	case delivered:
		c.Delivered++
	case failed:
		c.Failed++
	case unreachable:
		c.Unreachable++
	case invalid:
		c.Invalid++
		if len(sr.samples) < coordinator.MaxInvalidSamples {
			sr.samples = append(sr.samples, coordinator.InvalidSample{Line: line, Reason: why})
		}
	case expired:
		c.Expired++
	case tokenGone:
		c.Failed++
		c.InvalidTokens++
	}
	t.finished++
	// Due at half a window, so the write is acknowledged before reading
	// has to stop at a whole one.
	if t.every > 0 && t.finished-t.acked >= (t.every+1)/2 {
		signal(t.due)
	}
}

// atEnd records that the reader reached the end of the stream at end:
// every covered slot with nothing left to send again is read to its end.
func (t *tracker) atEnd(end sharding.Cursor) {
	t.mu.Lock()
	if t.cmp(end, t.read) > 0 {
		t.read = end
	}
	for _, sr := range t.table {
		if sr != nil && sr.covered && len(sr.resend) == 0 && t.cmp(sr.next, t.read) <= 0 {
			sr.readDone = true
		}
	}
	t.mu.Unlock()
	signal(t.due)
}

// handBack stops sending sr's records: its cursor is frozen where the
// reader is, and the checkpointer hands it back once what is in flight
// has finished, or at drainBy, abandoning what has not.
func (t *tracker) handBack(sr *slotRun, drain time.Duration) {
	t.mu.Lock()
	if sr.state == slotActive {
		sr.state, sr.frozen, sr.drainBy = slotHanding, t.cursorLocked(sr), time.Now().Add(drain)
		// The reader looks at the slots again: a range source's reader
		// stops reading the slot's range.
		t.gen.Add(1)
	}
	t.mu.Unlock()
	signal(t.due)
	signal(t.room) // a reader waiting to send one of its records looks again
}

// drop forgets a slot whose claim ended: nothing of it is sent any more.
func (t *tracker) drop(sr *slotRun) {
	sr.cancelSend()
	t.mu.Lock()
	t.removeLocked(sr)
	t.mu.Unlock()
	signal(t.room)
}

func (t *tracker) removeLocked(sr *slotRun) {
	if sr.state == slotRemoved {
		return
	}
	sr.state = slotRemoved
	if t.table[sr.index] == sr {
		t.table[sr.index] = nil
		t.held--
	}
	close(sr.removed)
	t.gen.Add(1) // as for a hand-back
	if t.removed != nil {
		t.removed(t.held == 0)
	}
}

// empty reports whether no slot is held.
func (t *tracker) empty() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.held == 0
}

func (t *tracker) cursorLocked(sr *slotRun) sharding.Cursor {
	switch {
	case sr.state == slotHanding || sr.state == slotWriting:
		return sr.frozen
	case sr.covered && t.cmp(t.read, sr.next) > 0:
		return t.read
	}
	return sr.next
}

// progressLocked is sr's progress now: its cursor, its records in flight
// and those left to send again as pending, and its counters.
func (t *tracker) progressLocked(sr *slotRun, inflight map[*slotRun][]sharding.Cursor) coordinator.Progress {
	p := coordinator.Progress{Cursor: t.cursorLocked(sr), Counters: sr.counters,
		InvalidSamples: slices.Clone(sr.samples)}
	p.Pending = append(p.Pending, inflight[sr]...)
	for _, c := range sr.resend {
		p.Pending = append(p.Pending, c)
	}
	slices.SortFunc(p.Pending, t.cmp)
	return p
}

// write is what one checkpoint writes: the reports, and the count of
// finished records they cover.
type write struct {
	reports  []coordinator.Report
	slots    []*slotRun
	finished uint64
}

// collect gathers what is due: the final write of every slot that is read
// to its end with nothing in flight or pending (finish), of every slot
// asked back that has drained or whose drain time is up (hand-back, the
// stragglers abandoned), and, when force is set (a window finished, or
// the interval passed), a checkpoint of every other slot that moved.
func (t *tracker) collect(now time.Time, force bool) write {
	t.mu.Lock()
	defer t.mu.Unlock()
	var w write
	w.finished = t.finished
	var inflight map[*slotRun][]sharding.Cursor
	for _, e := range t.win {
		if e.used && e.slot.state != slotRemoved {
			if inflight == nil {
				inflight = map[*slotRun][]sharding.Cursor{}
			}
			inflight[e.slot] = append(inflight[e.slot], e.at)
		}
	}
	for _, sr := range t.table {
		if sr == nil {
			continue
		}
		end := coordinator.KeepClaim
		switch {
		case sr.state == slotHanding && (sr.inflight == 0 || !now.Before(sr.drainBy)):
			if sr.inflight > 0 {
				sr.cancelSend() // what is still in flight is left pending, for the next holder
			}
			end = coordinator.HandBack
		case sr.state == slotActive && sr.readDone && sr.inflight == 0 && len(sr.resend) == 0:
			sr.frozen = t.cursorLocked(sr)
			end = coordinator.FinishSlot
		case sr.state != slotActive || !force:
			continue
		}
		p := t.progressLocked(sr, inflight)
		if end == coordinator.KeepClaim && sr.wroteOnce && p.Cursor == sr.wrote && p.Counters == sr.wroteCnt && len(p.Pending) == sr.wroteLen {
			continue // nothing moved since the last write
		}
		if end != coordinator.KeepClaim {
			sr.state = slotWriting
		}
		w.reports = append(w.reports, coordinator.Report{Claim: sr.cl, Progress: p, End: end})
		w.slots = append(w.slots, sr)
	}
	return w
}

// unacked is how many records finished since the last acknowledged write.
func (t *tracker) unacked() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.finished - t.acked
}

// written takes the results of a write: slots written for the last time
// leave; slots whose claim is lost, or whose write was refused, are
// dropped (lost says why: the caller releases a claim it still holds);
// slots whose write did not complete are tried again at the next
// checkpoint, but a last write (finish, hand-back) that has failed for
// giveUp is given up as refused, so no claim outlives its slot here. Once
// every report of a write is recorded (or there was nothing to write), the
// records it covers count as acknowledged.
func (t *tracker) written(w write, errs []error, now time.Time, giveUp time.Duration, lost func(*slotRun, error)) {
	type loss struct {
		sr  *slotRun
		err error
	}
	var gone []loss
	t.mu.Lock()
	ok := true
	for i, sr := range w.slots {
		r := w.reports[i]
		err := errs[i]
		if err != nil && coordinator.IsTransient(err) && r.End != coordinator.KeepClaim {
			if sr.failing.IsZero() {
				sr.failing = now
			}
			if now.Sub(sr.failing) >= giveUp {
				err = fmt.Errorf("worker: last write of slot %d failing for %v: %w", sr.index, now.Sub(sr.failing).Round(time.Second), err)
				gone = append(gone, loss{sr, err})
				continue
			}
		}
		switch {
		case err == nil:
			sr.wrote, sr.wroteCnt, sr.wroteLen, sr.wroteOnce = r.Progress.Cursor, r.Progress.Counters, len(r.Progress.Pending), true
			if r.End != coordinator.KeepClaim {
				t.removeLocked(sr)
			}
		case coordinator.IsTransient(err):
			ok = false
			if sr.state == slotWriting {
				if r.End == coordinator.HandBack {
					sr.state = slotHanding
				} else {
					sr.state = slotActive
				}
			}
		default:
			gone = append(gone, loss{sr, err})
		}
	}
	if ok && w.finished > t.acked {
		t.acked = w.finished
	}
	t.mu.Unlock()
	signal(t.room)
	for _, g := range gone {
		lost(g.sr, g.err)
		t.drop(g.sr)
	}
}

// signal wakes a waiter on a one-slot channel without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
