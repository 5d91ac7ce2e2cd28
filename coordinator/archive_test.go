package coordinator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// fakeReporter records the summaries it is given; report, when set,
// decides whether a report fails.
type fakeReporter struct {
	report func(ctx context.Context, s Summary) error

	mu  sync.Mutex
	got []Summary // the reports that succeeded
}

var _ Reporter = (*fakeReporter)(nil)

func (f *fakeReporter) Report(ctx context.Context, s Summary) error {
	if f.report != nil {
		if err := f.report(ctx, s); err != nil {
			return err
		}
	}
	f.mu.Lock()
	f.got = append(f.got, s)
	f.mu.Unlock()
	return nil
}

func (f *fakeReporter) reports() []Summary {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Summary(nil), f.got...)
}

// liveKeys counts the keys under P/broadcasts/<id>/.
func (c *cluster) liveKeys(id string) int64 {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.admin.Get(ctx, keys{c.prefix}.broadcast(id), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.Count
}

// archived returns the summary at P/archive/<id>, if there is one.
func (c *cluster) archived(id string) (Summary, bool) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.admin.Get(ctx, keys{c.prefix}.archive(id))
	if err != nil {
		c.t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return Summary{}, false
	}
	s, err := decodeSummary(resp.Kvs[0])
	if err != nil {
		c.t.Fatal(err)
	}
	return s, true
}

// waitArchived waits until broadcast id has a summary and no live key.
func (c *cluster) waitArchived(id string, limit time.Duration) Summary {
	c.t.Helper()
	var s Summary
	eventually(c.t, limit, "broadcast "+id+" archived", func() bool {
		var ok bool
		s, ok = c.archived(id)
		return ok && c.liveKeys(id) == 0
	})
	return s
}

// A finished broadcast is reported once and archived: its live keys go,
// its summary holds its final counters, and Status, List and SetState
// answer as they did before.
func TestFinishedBroadcastIsArchived(t *testing.T) {
	c := newCluster(t)
	const n = 3000
	s, l := newStream(n), newLedger(n)
	rep := &fakeReporter{}
	o := memberOpts{archiveAfter: time.Second, reporter: rep}
	var ms []*member
	for i := range 3 {
		ms = append(ms, c.start(fmt.Sprintf("w%d", i), o, driverConfig{stream: s, ledger: l, every: 100}))
	}
	eventually(t, 10*time.Second, "three live members", func() bool { return ms[0].coord.LiveMembers() == 3 })
	c.register("b1")
	c.waitState("b1", StateDone, 20*time.Second)
	reg := NewRegistry(c.admin, c.prefix)
	ctx := context.Background()
	live, err := reg.Status(ctx, "b1")
	if err != nil {
		t.Fatal(err)
	}
	if c.liveKeys("b1") == 0 {
		t.Fatal("archived before ArchiveAfter: watchers may not have seen the final state")
	}

	sum := c.waitArchived("b1", 10*time.Second)
	if sum.Counters != live.Counters || sum.Counters.Delivered != n || sum.Units != live.Units ||
		sum.State != StateDone || !sum.FinishedAt.Equal(live.UpdatedAt) || sum.StartedAt.IsZero() ||
		sum.SpecSHA256 != specHash([]byte(`{"id":"b1"}`)) {
		t.Fatalf("summary %+v\nlive status %+v", sum, live)
	}
	after, err := reg.Status(ctx, "b1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(after, live) {
		t.Fatalf("status of the archived broadcast\n%+v\nwant what it was live\n%+v", after, live)
	}
	all, err := reg.List(ctx)
	if err != nil || len(all) != 1 || !reflect.DeepEqual(all[0], live) {
		t.Fatalf("list %+v %v", all, err)
	}
	if err := reg.SetState(ctx, "b1", Cancel); !errors.Is(err, ErrBadTransition) {
		t.Fatalf("cancel an archived broadcast: %v, want ErrBadTransition", err)
	}

	got := rep.reports()
	if len(got) != 1 {
		t.Fatalf("%d reports, want 1: %+v", len(got), got)
	}
	want, _ := json.Marshal(sum)
	if b, _ := json.Marshal(got[0]); string(b) != string(want) {
		t.Fatalf("reported %s\nwant the archived summary %s", b, want)
	}
	t.Logf("summary: %s", want)

	// Once archived, the broadcast leaves every member's view and state
	// cache: a member's memory holds what is live.
	for _, m := range ms {
		m.stop()
		if len(m.coord.view.broadcasts) != 0 || len(m.coord.states) != 0 {
			t.Errorf("%s still holds %d broadcasts in its view and %d states after the archive",
				m.id, len(m.coord.view.broadcasts), len(m.coord.states))
		}
	}
}

// A broadcast whose report fails stays live, and is archived once a
// report succeeds.
func TestFailingReportKeepsTheBroadcastLive(t *testing.T) {
	c := newCluster(t)
	const n = 500
	var failing atomic.Bool
	var attempts atomic.Int32
	failing.Store(true)
	rep := &fakeReporter{report: func(context.Context, Summary) error {
		attempts.Add(1)
		if failing.Load() {
			return errTest
		}
		return nil
	}}
	c.start("w0", memberOpts{archiveAfter: 100 * time.Millisecond, reporter: rep},
		driverConfig{stream: newStream(n), ledger: newLedger(n), every: 100})
	c.register("kd")
	c.waitState("kd", StateDone, 20*time.Second)
	eventually(t, 10*time.Second, "three failed reports", func() bool { return attempts.Load() >= 3 })
	if _, ok := c.archived("kd"); ok || c.liveKeys("kd") == 0 {
		t.Fatal("archived although no report succeeded")
	}
	failing.Store(false)
	sum := c.waitArchived("kd", 20*time.Second)
	if got := rep.reports(); len(got) != 1 || got[0].Counters != sum.Counters || sum.Counters.Scanned != n {
		t.Fatalf("reports %+v, summary %+v", got, sum)
	}
	t.Logf("archived after %d report attempts", attempts.Load())
}

// While its summary is kept, an archived id is still taken: the same spec
// again is a harmless duplicate, another spec a conflict. After the
// retention the summary is gone and the id is free.
func TestArchivedIDIsTakenUntilRetentionEnds(t *testing.T) {
	c := newCluster(t)
	const n = 200
	const retention = 2 * time.Second
	c.start("w0", memberOpts{archiveAfter: 100 * time.Millisecond, retention: retention},
		driverConfig{stream: newStream(n), ledger: newLedger(n), every: 50})
	c.register("r1")
	c.waitState("r1", StateDone, 20*time.Second)
	sum := c.waitArchived("r1", 10*time.Second)

	reg := NewRegistry(c.admin, c.prefix)
	ctx := context.Background()
	same, other := []byte(`{"id":"r1"}`), []byte(`{"id":"r1","v":2}`)
	if created, err := reg.Register(ctx, Broadcast{ID: "r1", Spec: same}); created || err != nil {
		t.Fatalf("same spec again: created=%v err=%v, want a duplicate", created, err)
	}
	if err := reg.Reject(ctx, "r1", same, "x"); err != nil {
		t.Fatalf("reject with the same spec: %v, want a duplicate", err)
	}
	if _, err := reg.Register(ctx, Broadcast{ID: "r1", Spec: other}); !errors.Is(err, ErrConflict) {
		t.Fatalf("other spec: %v, want ErrConflict", err)
	}
	if err := reg.Reject(ctx, "r1", other, "x"); !errors.Is(err, ErrConflict) {
		t.Fatalf("reject with another spec: %v, want ErrConflict", err)
	}
	if c.liveKeys("r1") != 0 {
		t.Fatal("a refused register wrote live keys")
	}

	eventually(t, retention+10*time.Second, "the summary deleted", func() bool {
		_, ok := c.archived("r1")
		return !ok
	})
	gone := time.Since(sum.FinishedAt)
	t.Logf("summary deleted %v after the broadcast finished (retention %v)", gone.Round(time.Millisecond), retention)
	if gone < retention {
		t.Errorf("summary deleted %v after the finish, before the retention of %v", gone, retention)
	}
	if _, err := reg.Status(ctx, "r1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("status after the retention: %v, want ErrNotFound", err)
	}
	if created, err := reg.Register(ctx, Broadcast{ID: "r1", Spec: other}); !created || err != nil {
		t.Fatalf("register the id again after the retention: created=%v err=%v", created, err)
	}
}

// A finished broadcast whose records cannot be read back is left live, and
// does not hold up the archiving of the others.
func TestUndecodableBroadcastDoesNotBlockArchiving(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	k := keys{c.prefix}
	now := time.Now().UTC()
	state, err := encode(stateRecord{State: StateDone, CreatedAt: now, UpdatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.admin.Txn(ctx).Then(
		clientv3.OpPut(k.spec("a-bad"), "{}"), clientv3.OpPut(k.state("a-bad"), state),
		clientv3.OpPut(k.unit("a-bad", "u0"), "not JSON"),
	).Commit(); err != nil {
		t.Fatal(err)
	}
	if err := NewRegistry(c.admin, c.prefix).Reject(ctx, "b-good", []byte("{x"), "spec: invalid JSON"); err != nil {
		t.Fatal(err)
	}
	c.start("w0", memberOpts{archiveAfter: 100 * time.Millisecond}, driverConfig{stream: newStream(1), ledger: newLedger(1)})
	sum := c.waitArchived("b-good", 10*time.Second)
	if sum.State != StateRejected || sum.Reason != "spec: invalid JSON" {
		t.Fatalf("summary of the rejected broadcast: %+v", sum)
	}
	if _, ok := c.archived("a-bad"); ok || c.liveKeys("a-bad") != 3 {
		t.Fatal("the undecodable broadcast was archived or touched")
	}
}
