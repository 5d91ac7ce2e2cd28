package coordinator

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// A broadcast runs to completion on three members: every record sent
// exactly once, counters conserved, state done.
func TestBroadcastCompletes(t *testing.T) {
	c := newCluster(t)
	const n = 3000
	s, l := newStream(n), newLedger(n)
	var ms []*member
	for i := range 3 {
		ms = append(ms, c.start(fmt.Sprintf("w%d", i), memberOpts{}, driverConfig{stream: s, ledger: l, every: 100}))
	}
	eventually(t, 10*time.Second, "three live members", func() bool { return ms[0].coord.LiveMembers() == 3 })
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
	if st.Counters.Scanned != n || st.Counters.Delivered != n || st.Units.Total != 3 || st.Units.Done != 3 {
		t.Fatalf("status %+v", st)
	}
	for _, m := range ms {
		if got := l.sentBy(m.id); got < n/6 {
			t.Errorf("%s sent %d of %d records; the split is far from fair", m.id, got, n)
		}
	}
	t.Logf("status: %+v", st)
}
