package coordinator

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/herald-dev/herald/sharding"
)

// Kill one of four members mid-broadcast: its slots must be claimed by
// the survivors within TTL + 2 s, every survivor taking part, each slot
// resuming from its last checkpoint, and the broadcast must finish with
// nothing lost and duplicates only inside the dead member's last
// checkpoint windows (what it sent after them, and what they listed as
// pending).
func TestKilledMemberFailsOverToAllSurvivors(t *testing.T) {
	c := newCluster(t)
	const (
		ttl = 2 * time.Second
		n   = 40000
	)
	s, l := newStream(n), newLedger(n)
	dc := driverConfig{stream: s, ledger: l, every: 50, rate: 300, lag: 25}
	var ms []*member
	for i := range 4 {
		ms = append(ms, c.start(fmt.Sprintf("w%d", i), memberOpts{ttl: ttl}, dc))
	}
	eventually(t, 10*time.Second, "four live members", func() bool { return ms[0].coord.LiveMembers() == 4 })
	c.register("b")
	victim, survivors := ms[1], []*member{ms[0], ms[2], ms[3]}

	// Let the victim make some recorded progress first, in a slot it
	// still holds (on a starved machine a member can lose its 2 s lease,
	// and its slots, and be handed others back later).
	eventually(t, 20*time.Second, "a checkpoint by the victim in a slot it holds", func() bool {
		claims := c.claimsOf("b")
		for slot, p := range c.progress("b") {
			if p.rec.Owner == victim.id && p.rec.Cursor != "0@0" && claims[slot] == victim.id {
				return true
			}
		}
		return false
	})
	rev := c.revision()
	wctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	claims := c.admin.Watch(wctx, keys{c.prefix}.claims("b"), clientv3.WithPrefix(), clientv3.WithRev(rev+1))

	killed := time.Now()
	victim.kill()
	// The client is closed: the progress records now hold its last
	// checkpoints.
	var held []int
	for slot, holder := range c.claimsOf("b") {
		if holder == victim.id {
			held = append(held, slot)
		}
	}
	if len(held) == 0 {
		t.Fatalf("the victim held no slot (fenced %v times)", counterOf(victim.coord.m.fences))
	}
	last := map[int]Progress{}
	prog := c.progress("b")
	for _, slot := range held {
		p, err := prog[slot].rec.progress()
		if err != nil {
			t.Fatal(err)
		}
		last[slot] = p
	}

	// Wait for the survivors to claim every slot of the victim.
	claimed := map[int]string{}
	perSurvivor := map[string]int{}
	var failover time.Duration
	timeout := time.After(ttl + 15*time.Second)
	for len(claimed) < len(held) {
		select {
		case resp := <-claims:
			for _, ev := range resp.Events {
				_, _, _, slot := keys{c.prefix}.parse(string(ev.Kv.Key))
				if _, mine := last[slot]; ev.Type == clientv3.EventTypePut && mine && claimed[slot] == "" {
					claimed[slot] = string(ev.Kv.Value)
					perSurvivor[string(ev.Kv.Value)]++
					failover = time.Since(killed)
				}
			}
		case <-timeout:
			t.Fatalf("slots of the victim claimed: %v of %v", claimed, held)
		}
	}
	t.Logf("failover: the dead member's %d slots claimed by the survivors %v after the kill (lease TTL %v; per survivor %v)",
		len(held), failover.Round(time.Millisecond), ttl, perSurvivor)
	if failover > ttl+2*time.Second {
		t.Errorf("failover took %v, over TTL + 2 s = %v", failover, ttl+2*time.Second)
	}
	for _, m := range survivors {
		if perSurvivor[m.id] == 0 {
			t.Errorf("%s took no part of the dead member's work: %v", m.id, perSurvivor)
		}
	}

	// Each successor resumes exactly at the last checkpoint.
	for _, m := range survivors {
		for _, cl := range m.driver.received() {
			want, ok := last[cl.Slot()]
			if !ok || cl.token <= rev {
				continue
			}
			got := cl.Progress()
			if got.Cursor != want.Cursor || !slices.Equal(got.Pending, want.Pending) || got.Counters != want.Counters {
				t.Errorf("slot %d resumes at %+v, want the last checkpoint %+v", cl.Slot(), got, want)
			}
		}
	}

	c.waitState("b", StateDone, 60*time.Second)
	lost, dup := l.check()
	if len(lost) > 0 {
		t.Fatalf("%d records lost, first %v", len(lost), lost[:min(5, len(lost))])
	}
	nslots := slotsOf(t, c, "b")
	for _, seq := range dup {
		p, ok := last[sharding.SlotOf(s.pos[seq], nslots)]
		if !ok || (seq < p.Cursor.Seq && !slices.ContainsFunc(p.Pending, func(c sharding.Cursor) bool { return c.Seq == seq })) {
			t.Fatalf("record %d sent twice outside the dead member's last checkpoint windows", seq)
		}
	}
	bound := len(held) * (dc.every + dc.every/dc.lag + 1)
	if len(dup) > bound {
		t.Errorf("%d records re-sent; %d slots' checkpoint windows allow %d", len(dup), len(held), bound)
	}
	t.Logf("re-sent after the kill: %d records (bound %d: %d slots, checkpoint every %d)", len(dup), bound, len(held), dc.every)
	st, err := NewRegistry(c.admin, c.prefix).Status(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	if st.Counters.Scanned != n {
		t.Errorf("scanned %d, want %d", st.Counters.Scanned, n)
	}
}

// slotsOf is broadcast id's slot count, from its state.
func slotsOf(t *testing.T, c *cluster, id string) int {
	t.Helper()
	st, err := NewRegistry(c.admin, c.prefix).Status(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return st.Units.Total
}

// revision is etcd's current revision.
func (c *cluster) revision() int64 {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.admin.Get(ctx, "/")
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.Header.Revision
}
