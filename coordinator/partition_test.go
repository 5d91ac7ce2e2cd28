package coordinator

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/herald-dev/herald/sharding"
)

// A member behind a proxy is cut off from etcd. It must stop at its local
// deadline, before the server can expire its lease and hand its work to
// others; its work is taken over; once the network is back it must write
// no stale checkpoint, join again with a new lease, and work only on fresh
// claims.
func TestPartitionedMemberIsFencedAndRejoinsFresh(t *testing.T) {
	c := newCluster(t)
	const (
		ttl = 2 * time.Second
		n   = 60000
	)
	s, l := newStream(n), newLedger(n)
	dc := driverConfig{stream: s, ledger: l, every: 50, rate: 250, lag: 25}
	c.start("a", memberOpts{ttl: ttl}, dc)
	c.start("b", memberOpts{ttl: ttl}, dc)
	p := c.start("p", memberOpts{ttl: ttl, proxied: true}, dc)
	eventually(t, 10*time.Second, "three live members", func() bool { return p.coord.LiveMembers() == 3 })
	c.register("bc")

	var old *Claim
	eventually(t, 20*time.Second, "a checkpoint by the member to cut off", func() bool {
		got := p.driver.received()
		if len(got) == 0 {
			return false
		}
		old = got[0]
		return c.progress("bc")[old.Slot()].rec.Cursor != "0@0"
	})
	k := keys{c.prefix}
	oldLease := c.memberLease("p")
	cutRev := c.revision()
	wctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := c.admin.Watch(wctx, k.root(), clientv3.WithPrefix(), clientv3.WithRev(cutRev+1))

	deadline := p.coord.Deadline()
	cut := time.Now()
	p.proxy.Blackhole()

	select {
	case <-old.Context().Done():
	case <-time.After(ttl + 10*time.Second):
		t.Fatal("the cut-off member's claim never ended")
	}
	stopped := time.Now()
	// Cut off, it can write nothing more: these are its last checkpoints.
	lastAt := c.progress("bc")
	if cause := context.Cause(old.Context()); !errors.Is(cause, errDeadlinePassed) && !errors.Is(cause, errSessionEnded) {
		t.Fatalf("claim ended because %v, want the lease deadline", cause)
	}
	t.Logf("cut-off member stopped %v after the cut (local deadline was %v after it; TTL %v)",
		stopped.Sub(cut).Round(time.Millisecond), deadline.Sub(cut).Round(time.Millisecond), ttl)

	// Its claims disappear when the server expires the lease, and the
	// survivors take its slots over.
	var cutHeld []int
	for _, cl := range p.driver.received() {
		if cl.token <= cutRev {
			cutHeld = append(cutHeld, cl.Slot())
		}
	}
	var expired time.Time
	takers := map[string]bool{}
	taken := map[int]bool{}
	limit := time.After(ttl + 15*time.Second)
	for expired.IsZero() || len(taken) < len(cutHeld) || len(takers) < 2 {
		select {
		case resp := <-events:
			for _, ev := range resp.Events {
				kind, _, _, slot := k.parse(string(ev.Kv.Key))
				if !slices.Contains(cutHeld, slot) {
					continue
				}
				switch {
				case kind == keyClaim && ev.Type == clientv3.EventTypeDelete && slot == old.Slot() && expired.IsZero():
					expired = time.Now()
				case kind == keyClaim && ev.Type == clientv3.EventTypePut && string(ev.Kv.Value) != "p":
					takers[string(ev.Kv.Value)] = true
					taken[slot] = true
				case kind == keyProgress && ev.Type == clientv3.EventTypePut:
					rec, err := decodeProgress(ev.Kv.Value)
					if err != nil {
						t.Fatal(err)
					}
					if rec.Owner == "p" && !taken[slot] {
						t.Fatalf("the cut-off member wrote a checkpoint after the cut: %+v", rec)
					}
				}
			}
		case <-limit:
			t.Fatalf("no take-over: claim expired at %v, takers %v, %d of %d slots taken", expired, takers, len(taken), len(cutHeld))
		}
	}
	if !stopped.Before(expired) {
		t.Fatalf("the member stopped %v after the server expired its claim", stopped.Sub(expired))
	}
	t.Logf("the server expired the claim %v after the cut, %v after the member had stopped; its %d slots taken over by %v",
		expired.Sub(cut).Round(time.Millisecond), expired.Sub(stopped).Round(time.Millisecond), len(cutHeld), takers)

	before := c.progress("bc")[old.Slot()]
	restoreRev := c.revision()
	p.proxy.Restore()

	// The old claim writes nothing: refused locally, and the etcd record is
	// untouched.
	ctx, cancelW := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelW()
	stale := old.Progress()
	stale.Cursor = sharding.Cursor{Seq: uint64(n)}
	if err := old.Checkpoint(ctx, stale); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("stale checkpoint: %v, want ErrNotOwner", err)
	}
	if err := old.Finish(ctx, stale); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("stale finish: %v, want ErrNotOwner", err)
	}
	if after := c.progress("bc")[old.Slot()]; after.modRev != before.modRev {
		t.Fatalf("the old slot's progress changed after the restore: %+v", after.rec)
	}

	// It joins again under a new lease and gets fresh claims only.
	eventually(t, 20*time.Second, "the member back under a new lease", func() bool {
		id := c.memberLease("p")
		return id != 0 && id != oldLease
	})
	eventually(t, 20*time.Second, "a fresh claim for the member", func() bool {
		for _, cl := range p.driver.received() {
			if cl.token > restoreRev {
				return true
			}
		}
		return false
	})
	for _, cl := range p.driver.received() {
		if cl.token <= cutRev && !slices.Contains(cutHeld, cl.Slot()) {
			t.Errorf("claim on slot %d with token %d from before the cut handed out again", cl.Slot(), cl.token)
		}
	}
	t.Logf("rejoined under lease %x (was %x)", c.memberLease("p"), oldLease)

	c.waitState("bc", StateDone, 60*time.Second)
	lost, dup := l.check()
	if len(lost) > 0 {
		t.Fatalf("%d records lost", len(lost))
	}
	for _, seq := range dup {
		slot := sharding.SlotOf(s.pos[seq], old.Slots())
		if !slices.Contains(cutHeld, slot) {
			t.Fatalf("record %d sent twice, in slot %d the cut-off member never held", seq, slot)
		}
		var last Progress // no record: nothing recorded yet
		if at, ok := lastAt[slot]; ok {
			var err error
			if last, err = at.rec.progress(); err != nil {
				t.Fatal(err)
			}
		}
		if seq < last.Cursor.Seq && !slices.ContainsFunc(last.Pending, func(c sharding.Cursor) bool { return c.Seq == seq }) {
			t.Fatalf("record %d sent twice, behind slot %d's last checkpoint %v and not pending in it", seq, slot, last.Cursor)
		}
	}
	t.Logf("re-sent: %d records (checkpoint every %d)", len(dup), dc.every)
}

// memberLease is the lease id member id's record is bound to, or 0.
func (c *cluster) memberLease(id string) int64 {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.admin.Get(ctx, keys{c.prefix}.member(id))
	if err != nil {
		c.t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return 0
	}
	return resp.Kvs[0].Lease
}

// A member whose etcd stops answering for twice its lease TTL (as a
// SIGSTOP of the etcd process looks to it) loses its lease, as it must,
// and joins again once etcd answers; the new lease must then hold. A
// grant sent during the outage and answered after it is renewed at once:
// counted from its send time, it would be nearly over on arrival.
func TestRejoinAfterOutageKeepsItsNewLease(t *testing.T) {
	c := newCluster(t)
	const ttl = 2 * time.Second
	m := c.start("p", memberOpts{ttl: ttl, proxied: true}, driverConfig{stream: newStream(1), ledger: newLedger(1)})
	eventually(t, 10*time.Second, "joined", m.coord.Ready)
	old := c.memberLease("p")
	m.proxy.Freeze()
	time.Sleep(2 * ttl)
	m.proxy.Thaw()
	eventually(t, 20*time.Second, "a new lease", func() bool {
		id := c.memberLease("p")
		return id != 0 && id != old && m.coord.Ready()
	})
	fences := counterOf(m.coord.m.fences)
	fresh := c.memberLease("p")
	t.Logf("lease %x lost after the outage (%v fences), rejoined under %x", old, fences, fresh)
	// Three TTLs: a lease that was to lapse would have.
	deadline := time.Now().Add(3 * ttl)
	for time.Now().Before(deadline) {
		if got := counterOf(m.coord.m.fences); got != fences {
			t.Fatalf("the new lease was lost too: %v fences, was %v", got, fences)
		}
		if !m.coord.Ready() {
			t.Fatalf("not ready %v after rejoining", time.Until(deadline))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := c.memberLease("p"); got != fresh {
		t.Fatalf("member record under lease %x, want the new lease %x", got, fresh)
	}
}
