package coordinator

import (
	"context"
	"testing"
	"time"
)

// A member joining mid-broadcast takes its quota of slots from the others,
// and a member leaving gracefully hands its slots back: both exactly, with
// no record sent twice and none lost.
func TestJoinAndGracefulLeaveAreExact(t *testing.T) {
	c := newCluster(t)
	const n = 60000
	s, l := newStream(n), newLedger(n)
	// Checkpoints are rare on purpose: any duplicate would have to come from
	// a hand-over that is not exact, and a wide window makes one show. The
	// held-back records are pending at every hand-over: the next holder
	// must send them, once.
	dc := driverConfig{stream: s, ledger: l, every: 700, rate: 250, lag: 40}
	a := c.start("a", memberOpts{}, dc)
	b := c.start("b", memberOpts{}, dc)
	c.start("c", memberOpts{}, dc)
	eventually(t, 10*time.Second, "three live members", func() bool { return a.coord.LiveMembers() == 3 })
	c.register("jl")
	eventually(t, 20*time.Second, "some progress", func() bool { return l.sentBy("a") > 1500 })

	c.start("d", memberOpts{}, dc)
	// 24 slots over four members: six each, the joiner's taken two from
	// each of the others at drained hand-overs.
	eventually(t, 20*time.Second, "the joiner holding its quota", func() bool {
		per := map[string]int{}
		for _, holder := range c.claimsOf("jl") {
			per[holder]++
		}
		return per["d"] == 6 && per["a"] == 6 && per["b"] == 6 && per["c"] == 6
	})
	eventually(t, 20*time.Second, "the joiner at work", func() bool { return l.sentBy("d") > 2000 && l.sentBy("b") > 3000 })

	left := time.Now()
	b.stop()
	t.Logf("graceful leave took %v", time.Since(left).Round(time.Millisecond))
	if got := c.memberLease("b"); got != 0 {
		t.Errorf("the leaving member's record is still there (lease %x)", got)
	}

	c.waitState("jl", StateDone, 90*time.Second)
	lost, dup := l.check()
	if len(lost) > 0 || len(dup) > 0 {
		t.Fatalf("lost %d, sent twice %d records (first lost %v, first dup %v)",
			len(lost), len(dup), lost[:min(3, len(lost))], dup[:min(3, len(dup))])
	}
	st, err := NewRegistry(c.admin, c.prefix).Status(context.Background(), "jl")
	if err != nil {
		t.Fatal(err)
	}
	if st.Counters.Scanned != n || st.Counters.Delivered != n {
		t.Fatalf("counters %+v, want %d scanned and delivered", st.Counters, n)
	}
	t.Logf("sent by member: a=%d b=%d c=%d d=%d; units %+v", l.sentBy("a"), l.sentBy("b"), l.sentBy("c"),
		l.sentBy("d"), st.Units)
	if got := l.sentBy("d"); got < n/10 {
		t.Errorf("the joiner sent %d of %d records; it should take about a fair share of what was left", got, n)
	}
	if st.Units != (UnitCounts{Total: 24, Done: 24}) {
		t.Errorf("units %+v, want 24 slots, all done", st.Units)
	}
}
