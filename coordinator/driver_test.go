package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/time/rate"

	"github.com/herald-dev/herald/sharding"
)

// The test driver stands in for the worker's pure logic, so the
// coordinator can be tested against real etcd without the worker: it
// takes claims, walks a synthetic stream, "sends" the records of its slot
// into a ledger, checkpoints, hands off and finishes. It walks one stream
// per slot, which the worker does not; what it tests is the coordinator's
// side of the protocol.

// stream is a synthetic audience: record seq i sits at xxhash("s"+i).
type stream struct{ pos []uint64 }

func newStream(n int) *stream {
	s := &stream{pos: make([]uint64, n)}
	for i := range s.pos {
		s.pos[i] = xxhash.Sum64String("s" + strconv.Itoa(i))
	}
	return s
}

// ledger counts every send of every record, by member.
type ledger struct {
	mu    sync.Mutex
	sends []int32
	by    map[string]int
}

func newLedger(n int) *ledger { return &ledger{sends: make([]int32, n), by: map[string]int{}} }

func (l *ledger) send(seq uint64, member string) {
	l.mu.Lock()
	l.sends[seq]++
	l.by[member]++
	l.mu.Unlock()
}

// check returns the records never sent and those sent more than once.
func (l *ledger) check() (lost, dup []uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, n := range l.sends {
		switch {
		case n == 0:
			lost = append(lost, uint64(i))
		case n > 1:
			dup = append(dup, uint64(i))
		}
	}
	return lost, dup
}

func (l *ledger) sentBy(member string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.by[member]
}

type driverConfig struct {
	stream *stream
	ledger *ledger
	// every checkpoints after this many records sent; 0 turns it off.
	every int
	// interval checkpoints at least this often while records are sent;
	// 0 turns it off.
	interval time.Duration
	// rate is records sent per second per unit; 0 is unlimited.
	rate float64
	// expire counts records as expired instead of sending them.
	expire bool
	// lag holds back every lag-th record of a slot, as a send waiting on a
	// Retry-After does: it is reported as pending behind the cursor and
	// sent only once the next checkpoint is written. 0 holds nothing.
	lag int
	// release, if set, is asked at the end of each claim's stream; true
	// gives the claim up with Release instead of finishing it.
	release func(*Claim) bool
}

type driver struct {
	coord  *Coordinator
	cfg    driverConfig
	killed chan struct{}
	once   sync.Once
	wg     sync.WaitGroup

	mu     sync.Mutex
	claims []*Claim
	ends   map[*Claim]string
	// events get the claims as they arrive and end, for tests that watch.
	events chan driverEvent
}

type driverEvent struct {
	cl  *Claim
	end string // "" when the claim arrived
	at  time.Time
}

func newDriver(c *Coordinator, cfg driverConfig) *driver {
	return &driver{coord: c, cfg: cfg, killed: make(chan struct{}), ends: map[*Claim]string{},
		events: make(chan driverEvent, 1024)}
}

func (d *driver) kill() { d.once.Do(func() { close(d.killed) }) }

// run works every claim until the Claims channel closes.
func (d *driver) run() {
	for cl := range d.coord.Claims() {
		d.mu.Lock()
		d.claims = append(d.claims, cl)
		d.mu.Unlock()
		d.note(driverEvent{cl: cl, at: time.Now()})
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			end := d.work(cl)
			d.mu.Lock()
			d.ends[cl] = end
			d.mu.Unlock()
			d.note(driverEvent{cl: cl, end: end, at: time.Now()})
		}()
	}
	d.wg.Wait()
}

func (d *driver) note(ev driverEvent) {
	select {
	case d.events <- ev:
	default:
	}
}

func (d *driver) received() []*Claim {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*Claim(nil), d.claims...)
}

// work streams one claim and says how it ended.
func (d *driver) work(cl *Claim) string {
	p := cl.Progress()
	ctx := cl.Context()
	var lim *rate.Limiter
	if d.cfg.rate > 0 {
		lim = rate.NewLimiter(rate.Limit(d.cfg.rate), 10)
	}
	write := func(f func(context.Context, Progress) error) error {
		wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return f(wctx, p)
	}
	resend := map[uint64]bool{}
	for _, c := range p.Pending {
		resend[c.Seq] = true
	}
	member := d.coord.MemberID()
	// send records one record as finished: the ledger, the counters, and
	// the pending list it leaves if it was there.
	send := func(seq uint64) bool {
		if lim != nil && lim.Wait(ctx) != nil {
			return false
		}
		// The fencing rule: nothing is sent past the local deadline.
		if ctx.Err() != nil || !time.Now().Before(d.coord.Deadline()) {
			return false
		}
		select {
		case <-d.killed:
			return false
		default:
		}
		d.cfg.ledger.send(seq, member)
		p.Counters.Scanned++
		if d.cfg.expire {
			p.Counters.Expired++
		} else {
			p.Counters.Delivered++
		}
		p.Pending = slices.DeleteFunc(p.Pending, func(c sharding.Cursor) bool { return c.Seq == seq })
		return true
	}
	// flush sends the records held back, once a checkpoint listed them.
	flush := func(held []uint64) bool {
		for _, seq := range held {
			if !send(seq) {
				return false
			}
		}
		return true
	}
	var held []uint64
	ended := func() string {
		select {
		case <-d.killed:
			return "killed"
		default:
		}
		if ctx.Err() != nil {
			return "lost"
		}
		return "lost"
	}
	since, last, owned := 0, time.Now(), 0
	pos := d.cfg.stream.pos
	for seq := p.ResumeAt().Seq; seq < uint64(len(pos)); seq++ {
		select {
		case <-d.killed:
			return "killed"
		case <-ctx.Done():
			return "lost"
		case <-cl.HandoffRequested():
			// What was held back is still pending in p: the next holder
			// sends it, and nothing is sent twice.
			if err := write(cl.Handoff); err != nil {
				return "handoff failed: " + err.Error()
			}
			return "handoff"
		default:
		}
		mine := sharding.SlotOf(pos[seq], cl.Slots()) == cl.Slot()
		switch {
		case seq < p.Cursor.Seq:
			// Behind the checkpoint: only what it listed as pending.
			if mine && resend[seq] {
				if !send(seq) {
					return ended()
				}
				since++
			}
			continue
		case mine:
			owned++
			if d.cfg.lag > 0 && owned%d.cfg.lag == 0 {
				held = append(held, seq)
				p.Pending = append(p.Pending, sharding.Cursor{Seq: seq})
			} else {
				if !send(seq) {
					return ended()
				}
				since++
			}
		}
		p.Cursor = sharding.Cursor{Seq: seq + 1}
		if (d.cfg.every > 0 && since >= d.cfg.every) || (d.cfg.interval > 0 && since > 0 && time.Since(last) >= d.cfg.interval) {
			if err := write(cl.Checkpoint); err != nil {
				if errors.Is(err, ErrNotOwner) {
					return "not owner"
				}
				continue
			}
			since, last = 0, time.Now()
			if !flush(held) {
				return ended()
			}
			held = held[:0]
		}
	}
	if !flush(held) {
		return ended()
	}
	if d.cfg.release != nil && d.cfg.release(cl) {
		if err := write(func(ctx context.Context, _ Progress) error { return cl.Release(ctx) }); err != nil {
			return "release failed: " + err.Error()
		}
		return "release"
	}
	if err := write(cl.Finish); err != nil {
		return "finish failed: " + err.Error()
	}
	return "finish"
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
