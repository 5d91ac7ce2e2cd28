package coordinator

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// A broadcast runs to completion on three members: every record sent
// exactly once, counters conserved, state done.
func TestBroadcastCompletes(t *testing.T) {
	c := newCluster(t)
	const n = 3000
	s, l := newStream(n), newLedger(n)
	reg := prometheus.NewRegistry()
	var ms []*member
	for i := range 3 {
		o := memberOpts{}
		if i == 0 {
			o.reg = reg
		}
		ms = append(ms, c.start(fmt.Sprintf("w%d", i), o, driverConfig{stream: s, ledger: l, every: 100}))
	}
	// Every member's view must hold all three before the start: each
	// computes its share of the slots from its own view.
	eventually(t, 10*time.Second, "three live members, seen by each", func() bool {
		for _, m := range ms {
			if m.coord.LiveMembers() != 3 || !m.coord.Ready() {
				return false
			}
		}
		return true
	})
	c.register("b1")
	c.waitState("b1", StateDone, 20*time.Second)

	lost, dup := l.check()
	if len(lost) > 0 || len(dup) > 0 {
		t.Fatalf("lost %d, duplicated %d records", len(lost), len(dup))
	}
	st, err := NewRegistry(c.admin, c.prefix).Status(context.Background(), "b1")
	if err != nil {
		t.Fatal(err)
	}
	if st.Counters.Scanned != n || st.Counters.Delivered != n || st.Units != (UnitCounts{Total: 24, Done: 24}) {
		t.Fatalf("status %+v", st)
	}
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				got[mf.GetName()] = m.Counter.GetValue()
			case m.Gauge != nil:
				got[mf.GetName()] = m.Gauge.GetValue()
			case m.Histogram != nil:
				got[mf.GetName()] += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	// 24 slots for three members: eight each, claimed in one transaction.
	if got["herald_coordinator_claims_total"] != 8 || got["herald_coordinator_checkpoint_writes_total"] < 3 ||
		got["herald_coordinator_units_held"] != 0 || got["herald_coordinator_etcd_txn_seconds"] < 3 ||
		got["herald_coordinator_lease_deadline_slack_seconds"] <= 0 {
		t.Errorf("metrics: %v", got)
	}
	for _, m := range ms {
		if got := l.sentBy(m.id); got < n/6 {
			t.Errorf("%s sent %d of %d records; the split is far from fair", m.id, got, n)
		}
	}
	t.Logf("status: %+v", st)
}

// Pause, resume and cancel reach every member within a second; cancel ends
// every claim; a resume of a broadcast that never started goes back to
// pending, and it starts once its not_before has passed.
func TestStateChangesReachMembersWithinASecond(t *testing.T) {
	c := newCluster(t)
	const n = 400000 // long enough to outlast the test
	s, l := newStream(n), newLedger(n)
	dc := driverConfig{stream: s, ledger: l, every: 500, rate: 500}
	var ms []*member
	for i := range 3 {
		ms = append(ms, c.start(fmt.Sprintf("w%d", i), memberOpts{}, dc))
	}
	eventually(t, 10*time.Second, "three live members", func() bool { return ms[0].coord.LiveMembers() == 3 })
	reg := NewRegistry(c.admin, c.prefix)
	ctx := context.Background()

	notBefore := time.Now().Add(1500 * time.Millisecond)
	if _, err := reg.Register(ctx, Broadcast{ID: "pr", Spec: []byte("{}"), NotBefore: notBefore}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		action Action
		want   State
	}{
		{Pause, StatePaused},
		{Resume, StatePending}, // it never started: back to waiting for not_before
	}
	for _, st := range steps {
		c.setStateAndWait(t, ms, reg, st.action, st.want)
	}
	c.waitState("pr", StateRunning, 10*time.Second)
	if time.Now().Before(notBefore) {
		t.Fatal("started before not_before")
	}
	eventually(t, 10*time.Second, "every member working", func() bool {
		for _, m := range ms {
			if len(m.driver.received()) == 0 {
				return false
			}
		}
		return true
	})
	for _, st := range []struct {
		action Action
		want   State
	}{{Pause, StatePaused}, {Resume, StateRunning}, {Cancel, StateCancelled}} {
		c.setStateAndWait(t, ms, reg, st.action, st.want)
	}
	for _, m := range ms {
		for _, cl := range m.driver.received() {
			select {
			case <-cl.Context().Done():
			case <-time.After(time.Second):
				t.Fatalf("%s: claim on slot %d still live a second after cancel", m.id, cl.Slot())
			}
		}
	}
	if err := reg.SetState(ctx, "pr", Resume); !errors.Is(err, ErrBadTransition) {
		t.Fatalf("resume after cancel: %v, want ErrBadTransition", err)
	}
	eventually(t, 10*time.Second, "claims released", func() bool {
		st, err := reg.Status(ctx, "pr")
		if err != nil {
			return false
		}
		for _, w := range st.Workers {
			if w.Units != 0 {
				return false
			}
		}
		return true
	})
}

// setStateAndWait applies a and waits for every member to see want; it
// fails the test if any took a second or more.
func (c *cluster) setStateAndWait(t *testing.T, ms []*member, reg *Registry, a Action, want State) {
	t.Helper()
	start := time.Now()
	if err := reg.SetState(context.Background(), "pr", a); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	var slowest time.Duration
	for _, m := range ms {
		for {
			st, changed := m.coord.BroadcastState("pr")
			if st == want {
				break
			}
			select {
			case <-changed:
			case <-time.After(5 * time.Second):
				t.Fatalf("%s: %s still sees %s after %s", a, m.id, st, a)
			}
		}
		slowest = max(slowest, time.Since(start))
	}
	t.Logf("%s seen by all %d members after %v", a, len(ms), slowest.Round(time.Millisecond))
	if slowest >= time.Second {
		t.Errorf("%s took %v to reach every member; the contract is under a second", a, slowest)
	}
}

// A broadcast in which records were counted expired ends in state expired.
func TestExpiredRecordsEndInExpired(t *testing.T) {
	c := newCluster(t)
	const n = 2000
	s, l := newStream(n), newLedger(n)
	c.start("w0", memberOpts{}, driverConfig{stream: s, ledger: l, every: 100, expire: true})
	c.register("ex")
	c.waitState("ex", StateExpired, 20*time.Second)
	st, err := NewRegistry(c.admin, c.prefix).Status(context.Background(), "ex")
	if err != nil {
		t.Fatal(err)
	}
	if st.Counters.Expired != n || st.Counters.Scanned != n {
		t.Fatalf("counters %+v", st.Counters)
	}
}
