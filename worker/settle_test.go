package worker

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/sink"
)

// flakyKV is a worker's etcd KV that fails the first transactions of one
// kind, before they reach etcd, with the error etcd itself would give.
// Everything else goes through to the real etcd.
type flakyKV struct {
	clientv3.KV
	kind  string // "finish" or "handoff", as lastWrite tells them
	err   error
	times int32 // how many to fail
	hit   atomic.Int32
}

func (k *flakyKV) Txn(ctx context.Context) clientv3.Txn { return &flakyTxn{Txn: k.KV.Txn(ctx), kv: k} }

type flakyTxn struct {
	clientv3.Txn
	kv  *flakyKV
	ops []clientv3.Op
}

func (t *flakyTxn) If(cs ...clientv3.Cmp) clientv3.Txn {
	t.Txn = t.Txn.If(cs...)
	return t
}

func (t *flakyTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	t.ops = append(t.ops, ops...)
	t.Txn = t.Txn.Then(ops...)
	return t
}

func (t *flakyTxn) Else(ops ...clientv3.Op) clientv3.Txn {
	t.Txn = t.Txn.Else(ops...)
	return t
}

func (t *flakyTxn) Commit() (*clientv3.TxnResponse, error) {
	if lastWrite(t.ops) == t.kv.kind && t.kv.hit.Add(1) <= t.kv.times {
		return nil, t.kv.err
	}
	return t.Txn.Commit()
}

// lastWrite tells a claim's last write from its ops: a finish puts the
// slot's done marker and drops the claim; a hand-back puts the slot's
// progress and drops the claim, without a done marker. A worker writes its
// slots of a broadcast together, so one transaction may carry several.
func lastWrite(ops []clientv3.Op) string {
	var dropsClaim, progress, done bool
	for _, op := range ops {
		switch {
		case op.IsDelete() && bytes.Contains(op.KeyBytes(), []byte("/claim/")):
			dropsClaim = true
		case op.IsPut() && bytes.Contains(op.KeyBytes(), []byte("/done/")):
			done = true
		case op.IsPut() && bytes.Contains(op.KeyBytes(), []byte("/progress/")):
			progress = true
		}
	}
	switch {
	case !dropsClaim || !progress:
		return ""
	case done:
		return "finish"
	}
	return "handoff"
}

func flaky(kind string, err error, times int32) (*flakyKV, func(*clientv3.Client)) {
	k := &flakyKV{kind: kind, err: err, times: times}
	return k, func(cli *clientv3.Client) {
		k.KV = cli.KV
		cli.KV = k
	}
}

// TestLastWriteRetriedOrReleased: a slot's finish or hand-back that etcd
// fails to take (a leader election) is written again; one it refuses
// releases the claim, and the slot resumes from its last checkpoint. Either
// way the broadcast completes with nothing lost. Tried once, the failed
// write would leave the claim held under a live lease with no one working
// on it, and the broadcast would never end.
func TestLastWriteRetriedOrReleased(t *testing.T) {
	for _, tc := range []struct {
		name     string
		kind     string
		err      error
		released bool // the claims are given up, not written again
	}{
		{"finish fails once", "finish", rpctypes.ErrLeaderChanged, false},
		{"finish refused", "finish", rpctypes.ErrRequestTooLarge, true},
		{"hand-back fails once", "handoff", rpctypes.ErrLeaderChanged, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, sink.Config{Latency: 200 * time.Microsecond})
			kvs := map[string]*flakyKV{}
			start := func(id string, intake bool) *testWorker {
				k, wrap := flaky(tc.kind, tc.err, 1)
				kvs[id] = k
				return e.startWorker(id, workerOpts{intake: intake, etcd: wrap})
			}
			ws := []*testWorker{start("w1", true), start("w2", false)}
			const count = 20_000
			id := "settle"
			e.trigger(synthetic(id, e.endpoint(), count))
			if tc.kind == "handoff" {
				// A joiner makes both workers hand some of their slots back.
				waitFor(t, 60*time.Second, "a third of the broadcast", func() bool {
					return e.sink.Stats().Broadcasts[id].Delivered >= count/3
				})
				ws = append(ws, start("w3", false))
			}
			st := e.waitDone(id, 30*time.Second)
			got := e.sink.Stats().Broadcasts[id]
			if st.State != coordinator.StateDone {
				t.Fatalf("state %s, want done", st.State)
			}
			conserved(t, st)
			if lost := eligible(t, st) - got.Delivered - st.Counters.Failed; lost != 0 || st.Counters.Scanned != count {
				t.Errorf("lost %d, scanned %d of %d", lost, st.Counters.Scanned, count)
			}
			var failed int32
			var retries, released float64
			for _, w := range ws {
				failed += min(kvs[w.id].hit.Load(), 1)
				retries += counterValue(t, w, "herald_unit_final_write_retries_total")
				released += counterValue(t, w, "herald_unit_releases_total")
			}
			if failed == 0 {
				t.Fatalf("no %s write was failed: the test did not test anything", tc.kind)
			}
			// One refused transaction carries the finishes of all the
			// slots a worker finished together: each is released.
			switch {
			case tc.released && released < float64(failed):
				t.Errorf("%v claims released, want at least one for each of the %d workers whose %s etcd refused", released, failed, tc.kind)
			case !tc.released && released != 0:
				t.Errorf("%v claims released, want none: the failure was passing", released)
			case !tc.released && retries == 0:
				t.Errorf("no retry of a failed %s counted", tc.kind)
			}
			// A write tried again is exact; a released slot resumes from
			// its last checkpoint, so at most a checkpoint window and a
			// window per worker are sent again.
			switch {
			case !tc.released && got.Duplicates != 0:
				t.Errorf("duplicates %d, want 0", got.Duplicates)
			case got.Duplicates > int64(failed)*(1000+4096):
				t.Errorf("duplicates %d, above %d workers' checkpoint windows", got.Duplicates, failed)
			}
			t.Logf("%s: %d workers failed a write; retries %v, released %v; delivered %d, duplicates %d",
				tc.name, failed, retries, released, got.Delivered, got.Duplicates)
		})
	}
}
