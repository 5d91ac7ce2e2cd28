package coordinator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/herald-dev/herald/internal/devstack"
)

// writeSummaries puts n summaries of finished broadcasts straight into
// etcd, as archiving leaves them, 100 to a txn.
func (c *cluster) writeSummaries(n int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	k := keys{c.prefix}
	now := time.Now().UTC()
	var ops []clientv3.Op
	flush := func() {
		if _, err := c.admin.Txn(ctx).Then(ops...).Commit(); err != nil {
			c.t.Fatal(err)
		}
		ops = ops[:0]
	}
	for i := range n {
		id := fmt.Sprintf("old-%05d", i)
		val, err := encode(Summary{
			ID: id, State: StateDone, CreatedAt: now, StartedAt: now, FinishedAt: now, ArchivedAt: now,
			Counters: Counters{Scanned: 1_000_000, Delivered: 999_000, Failed: 1000},
			Units:    UnitCounts{Total: 3, Done: 3},
			Workers: map[string]WorkerShare{"worker-1": {Delivered: 333_000}, "worker-2": {Delivered: 333_000},
				"worker-3": {Delivered: 333_000}},
			InvalidSamples: []InvalidSample{{Line: 12, Reason: "not a JSON object"}},
			SpecSHA256:     specHash([]byte(id)),
		})
		if err != nil {
			c.t.Fatal(err)
		}
		ops = append(ops, clientv3.OpPut(k.archive(id), val))
		if len(ops) == 100 {
			flush()
		}
	}
	if len(ops) > 0 {
		flush()
	}
}

// dbInUse is the size of etcd's database in use, in bytes.
func (c *cluster) dbInUse() int64 {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.admin.Status(ctx, c.etcd.Endpoint())
	if err != nil {
		c.t.Fatal(err)
	}
	return st.DbSizeInUse
}

// gauge reads one gauge from reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// With 10,000 archived broadcasts in etcd, a member starts and resyncs
// reading only what is live: the archive is neither read nor watched, so
// the time and memory of a start do not grow with history. The figures
// are printed, not asserted; the keys read are.
func TestResyncReadsOnlyLiveBroadcasts(t *testing.T) {
	c := newCluster(t)
	const archived = 10_000
	dbBefore := c.dbInUse()
	start := time.Now()
	c.writeSummaries(archived)
	t.Logf("wrote %d summaries in %v; etcd db in use grew by %.2f MiB", archived,
		time.Since(start).Round(time.Millisecond), float64(c.dbInUse()-dbBefore)/(1<<20))
	reg := NewRegistry(c.admin, c.prefix)
	ctx := context.Background()
	later := time.Now().Add(time.Hour) // pending for the whole test: live, and nothing to run
	for _, id := range []string{"live-1", "live-2"} {
		if _, err := reg.Register(ctx, Broadcast{ID: id, Spec: []byte(`{}`), NotBefore: later}); err != nil {
			t.Fatal(err)
		}
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	metrics := prometheus.NewRegistry()
	start = time.Now()
	m := c.start("w0", memberOpts{reg: metrics}, driverConfig{stream: newStream(1), ledger: newLedger(1)})
	eventually(t, 20*time.Second, "ready", m.coord.Ready)
	took := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	read := gauge(t, metrics, "herald_coordinator_resync_keys")
	t.Logf("start and resync with %d archived and 2 live broadcasts: %v, %.0f keys read, %.2f MiB allocated, heap in use %+.2f MiB (%.2f MiB after; the embedded etcd server included)",
		archived, took.Round(time.Millisecond), read, float64(after.TotalAlloc-before.TotalAlloc)/(1<<20),
		(float64(after.HeapAlloc)-float64(before.HeapAlloc))/(1<<20), float64(after.HeapAlloc)/(1<<20))
	// Two live broadcasts of two keys (spec, state) and one member.
	if read > 5 {
		t.Errorf("the resync read %.0f keys; want the 5 that are live, not the archive", read)
	}

	start = time.Now()
	all, err := reg.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("List of %d broadcasts: %v", len(all), time.Since(start).Round(time.Millisecond))
	if len(all) != archived+2 || all[0].ID != "live-1" || all[len(all)-1].ID != "old-09999" {
		t.Errorf("list: %d broadcasts, from %s to %s", len(all), all[0].ID, all[len(all)-1].ID)
	}
	if st, err := reg.Status(ctx, "old-01234"); err != nil || st.Counters.Delivered != 999_000 || st.State != StateDone {
		t.Errorf("status of an archived broadcast: %+v %v", st, err)
	}

	m.stop()
	if got := len(m.coord.view.broadcasts); got != 2 {
		t.Errorf("the view holds %d broadcasts, want the 2 live ones", got)
	}
}

// etcd's database stays as large as what is live over a soak of finished
// broadcasts: each one's state, claims, done markers and progress are
// deleted when it is archived, its summary when the retention (2 s here)
// ends, and auto-compaction frees their space for reuse. The in-use size
// after the second half is compared with the size after the first.
// HERALD_SOAK_BROADCASTS sets how many broadcasts run (default 300; 100
// with -short or -race).
func TestEtcdSizeStaysFlat(t *testing.T) {
	total := 300
	if testing.Short() || raceEnabled {
		total = 100
	}
	if v := os.Getenv("HERALD_SOAK_BROADCASTS"); v != "" {
		var err error
		if total, err = strconv.Atoi(v); err != nil || total < 20 {
			t.Fatalf("HERALD_SOAK_BROADCASTS=%q: want a number of at least 20", v)
		}
	}
	const compaction = time.Second
	c := newClusterWith(t, devstack.EtcdConfig{AutoCompaction: compaction})
	const n = 30 // records per broadcast: the size is in the keys per slot, not the records
	s, l := newStream(n), newLedger(n)
	const retention = 2 * time.Second
	o := memberOpts{archiveAfter: 50 * time.Millisecond, retention: retention}
	var ms []*member
	for i := range 3 {
		ms = append(ms, c.start(fmt.Sprintf("w%d", i), o, driverConfig{stream: s, ledger: l, every: 10}))
	}
	eventually(t, 10*time.Second, "three live members", func() bool { return ms[0].coord.LiveMembers() == 3 })

	const wave = 10 // broadcasts in flight at once
	run := func(from, to int) {
		for i := from; i < to; i += wave {
			ids := make([]string, 0, wave)
			for j := i; j < min(i+wave, to); j++ {
				id := fmt.Sprintf("soak-%05d", j)
				c.register(id)
				ids = append(ids, id)
			}
			// Archived, and perhaps swept already: the retention is short.
			for _, id := range ids {
				eventually(t, 30*time.Second, id+" archived", func() bool { return c.liveKeys(id) == 0 })
			}
		}
	}
	// size waits until the summaries so far are deleted and the history
	// compacted, and returns the
	// database's size in use and on disk. The compaction itself ends in
	// the background, and bbolt frees a page only at a write after its
	// last reader ended (etcd counts in-use at each commit): a few writes,
	// a backend commit interval (100 ms) apart, make the figure settle.
	size := func() (inUse, onDisk int64) {
		eventually(t, retention+10*time.Second, "summaries deleted", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			resp, err := c.admin.Get(ctx, keys{c.prefix}.archives(), clientv3.WithPrefix(), clientv3.WithCountOnly())
			return err == nil && resp.Count == 0
		})
		rev := c.revision()
		eventually(t, 10*compaction, "history compacted", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_, err := c.admin.Get(ctx, "/soak-tick", clientv3.WithRev(rev-1))
			return errors.Is(err, rpctypes.ErrCompacted)
		})
		time.Sleep(500 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for range 3 {
			if _, err := c.admin.Put(ctx, "/soak-tick", time.Now().String()); err != nil {
				t.Fatal(err)
			}
			time.Sleep(150 * time.Millisecond)
		}
		st, err := c.admin.Status(ctx, c.etcd.Endpoint())
		if err != nil {
			t.Fatal(err)
		}
		return st.DbSizeInUse, st.DbSize
	}
	start := time.Now()
	run(0, total/2)
	half, halfDisk := size()
	run(total/2, total)
	end, endDisk := size()
	t.Logf("%d broadcasts of 3 units in %v; etcd db in use %.2f MiB after %d, %.2f MiB after %d (file %.2f, %.2f MiB)",
		total, time.Since(start).Round(time.Millisecond), float64(half)/(1<<20), total/2, float64(end)/(1<<20), total,
		float64(halfDisk)/(1<<20), float64(endDisk)/(1<<20))
	// A few pages of slack: the figures are a few hundred KB, counted in
	// 4 KB pages.
	if float64(end) > 1.2*float64(half)+64<<10 {
		t.Errorf("etcd's db grew from %d to %d bytes in use over the second half: finished broadcasts are not freed", half, end)
	}
}
