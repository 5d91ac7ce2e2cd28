package coordinator

import (
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// TestArchiveDueSurvivesResync: a finished broadcast falls due for its
// archive ArchiveAfter after its state was written, however often the
// member rebuilds its view meanwhile. A resync is a fresh view applying
// the same state key; the time it was applied must not restart the wait,
// or a member that resyncs more often than ArchiveAfter (a leader of
// short broadcasts resyncs each time it starts or stops leading one)
// archives nothing, ever.
func TestArchiveDueSurvivesResync(t *testing.T) {
	k := keys{prefix: DefaultPrefix}
	c := &Coordinator{cfg: Config{ArchiveAfter: 10 * time.Second, LeaseTTL: 5 * time.Second}}
	now := time.Now()
	stateKV := func(updated time.Time) *mvccpb.KeyValue {
		val, err := encode(stateRecord{State: StateDone, CreatedAt: updated.Add(-time.Minute), UpdatedAt: updated, Slots: 8})
		if err != nil {
			t.Fatal(err)
		}
		return &mvccpb.KeyValue{Key: []byte(k.state("b1")), Value: []byte(val), ModRevision: 7}
	}
	resync := func(kv *mvccpb.KeyValue) *broadcastView {
		v := newView(k, 7, "m1")
		if _, err := v.apply(kv, false); err != nil {
			t.Fatal(err)
		}
		return v.broadcasts["b1"]
	}

	// Finished a minute ago, seen for the first time now (this view is
	// new): due now.
	b := resync(stateKV(now.Add(-time.Minute)))
	if j, due := c.archiveDue(b, time.Now()); !due.IsZero() || j.id != "b1" {
		t.Errorf("a broadcast finished a minute ago, in a fresh view: due %v, want now", due)
	}
	// Finished 5 s ago: due 5 s from now, not ArchiveAfter from now.
	b = resync(stateKV(now.Add(-5 * time.Second)))
	if _, due := c.archiveDue(b, now); due.IsZero() || due.After(now.Add(5*time.Second+time.Millisecond)) {
		t.Errorf("finished 5 s ago: due at %v from now, want 5s", due.Sub(now))
	}
	// A time ahead of this member's clock counts from now.
	b = resync(stateKV(now.Add(time.Hour)))
	if _, due := c.archiveDue(b, now); due.Before(now.Add(c.cfg.ArchiveAfter)) || due.After(time.Now().Add(c.cfg.ArchiveAfter)) {
		t.Errorf("finished by a clock an hour ahead: due in %v, want %v", due.Sub(now), c.cfg.ArchiveAfter)
	}
}
