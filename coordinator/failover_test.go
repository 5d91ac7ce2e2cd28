package coordinator

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/herald-dev/herald/sharding"
)

// Kill one of four members mid-broadcast: its remainder must be claimed by
// all three survivors within TTL + 2 s, from its last checkpoint, and the
// broadcast must finish with nothing lost and duplicates only inside the
// dead member's last checkpoint window.
func TestKilledMemberFailsOverToAllSurvivors(t *testing.T) {
	c := newCluster(t)
	const (
		ttl = 2 * time.Second
		n   = 40000
	)
	s, l := newStream(n), newLedger(n)
	dc := driverConfig{stream: s, ledger: l, every: 200, rate: 2500}
	var ms []*member
	for i := range 4 {
		ms = append(ms, c.start(fmt.Sprintf("w%d", i), memberOpts{ttl: ttl}, dc))
	}
	eventually(t, 10*time.Second, "four live members", func() bool { return ms[0].coord.LiveMembers() == 4 })
	c.register("b")
	victim, survivors := ms[1], []*member{ms[0], ms[2], ms[3]}

	// Let the victim make some recorded progress first.
	var victimUnit string
	eventually(t, 20*time.Second, "a checkpoint by the victim", func() bool {
		for name, u := range c.units("b") {
			if u.rec.Assignee == victim.id && u.rec.Status == unitOpen && u.rec.Cursor != "0@0" {
				victimUnit = name
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
	// The client is closed: the record now holds the last checkpoint.
	last := c.units("b")[victimUnit]
	lastCursor, err := last.rec.cursor()
	if err != nil {
		t.Fatal(err)
	}

	// Wait for every survivor to claim a child of the victim's unit.
	claimers := map[string]time.Duration{}
	timeout := time.After(ttl + 15*time.Second)
	for len(claimers) < len(survivors) {
		select {
		case resp := <-claims:
			for _, ev := range resp.Events {
				_, _, name := keys{c.prefix}.parse(string(ev.Kv.Key))
				if ev.Type == clientv3.EventTypePut && strings.HasPrefix(name, victimUnit+".") {
					if _, seen := claimers[string(ev.Kv.Value)]; !seen {
						claimers[string(ev.Kv.Value)] = time.Since(killed)
					}
				}
			}
		case <-timeout:
			t.Fatalf("survivors that claimed part of %s: %v; want all of them", victimUnit, claimers)
		}
	}
	var failover time.Duration
	for _, m := range survivors {
		d, ok := claimers[m.id]
		if !ok {
			t.Fatalf("%s took no part of the dead member's work: %v", m.id, claimers)
		}
		failover = max(failover, d)
	}
	t.Logf("failover: dead member's remainder claimed by all %d survivors %v after the kill (lease TTL %v; per survivor %v)",
		len(survivors), failover.Round(time.Millisecond), ttl, claimers)
	if failover > ttl+2*time.Second {
		t.Errorf("failover took %v, over TTL + 2 s = %v", failover, ttl+2*time.Second)
	}

	// The children resume exactly at the last checkpoint and cover the
	// parent's arcs.
	units := c.units("b")
	parent := units[victimUnit]
	if parent.rec.Status != unitSplit || len(parent.rec.Children) != len(survivors) {
		t.Fatalf("dead member's unit: %+v", parent.rec)
	}
	pu := c.unitArcs("b", victimUnit)
	var cover sharding.Arcs
	for _, id := range parent.rec.Children {
		child := c.unitArcs("b", id)
		if child.Cursor != lastCursor {
			t.Errorf("child %s starts at %v, want the last checkpoint %v", id, child.Cursor, lastCursor)
		}
		cover = cover.Union(child.Arcs)
	}
	if !cover.Equal(pu.Arcs) {
		t.Errorf("children do not cover the parent's arcs exactly")
	}

	c.waitState("b", StateDone, 60*time.Second)
	lost, dup := l.check()
	if len(lost) > 0 {
		t.Fatalf("%d records lost, first %v", len(lost), lost[:min(5, len(lost))])
	}
	for _, seq := range dup {
		if !pu.Arcs.Contains(s.pos[seq]) || seq < lastCursor.Seq {
			t.Fatalf("record %d sent twice outside the dead member's last checkpoint window (from %d)", seq, lastCursor.Seq)
		}
	}
	if len(dup) > dc.every {
		t.Errorf("%d records re-sent; the checkpoint window is %d records", len(dup), dc.every)
	}
	t.Logf("re-sent after the kill: %d records (checkpoint every %d)", len(dup), dc.every)
	st, err := NewRegistry(c.admin, c.prefix).Status(context.Background(), "b")
	if err != nil {
		t.Fatal(err)
	}
	if st.Counters.Scanned != n {
		t.Errorf("scanned %d, want %d", st.Counters.Scanned, n)
	}
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

// unitArcs reads the arcs key of a unit: its arcs and the cursor it was
// created at.
func (c *cluster) unitArcs(b, unit string) sharding.Unit {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.admin.Get(ctx, keys{c.prefix}.arcs(b, unit))
	if err != nil || len(resp.Kvs) != 1 {
		c.t.Fatalf("arcs of %s/%s: %v %v", b, unit, resp, err)
	}
	u, err := decodeArcs(resp.Kvs[0].Value)
	if err != nil {
		c.t.Fatal(err)
	}
	return u
}
