package coordinator

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/herald-dev/herald/sharding"
)

// fakeEtcd answers Write's transactions: every claim holds unless its key
// is in lost, and err, when set, fails every transaction.
type fakeEtcd struct {
	lost  map[string]bool
	err   error
	txns  []fakeTxn
	token map[string]int64 // claim key -> token
}

type fakeTxn struct{ cmps, ops int }

func (f *fakeEtcd) txn(_ context.Context, _ string, cmps []clientv3.Cmp, thenOps, elseOps []clientv3.Op) (*clientv3.TxnResponse, error) {
	f.txns = append(f.txns, fakeTxn{cmps: len(cmps), ops: len(thenOps)})
	if f.err != nil {
		return nil, f.err
	}
	ok := true
	for _, c := range cmps {
		if f.lost[string(c.KeyBytes())] {
			ok = false
		}
	}
	resp := &clientv3.TxnResponse{Succeeded: ok}
	if !ok {
		for _, op := range elseOps {
			key := string(op.KeyBytes())
			rr := &etcdserverpb.RangeResponse{}
			if !f.lost[key] {
				rr.Kvs = []*mvccpb.KeyValue{{Key: []byte(key), CreateRevision: f.token[key]}}
			}
			resp.Responses = append(resp.Responses, &etcdserverpb.ResponseOp{
				Response: &etcdserverpb.ResponseOp_ResponseRange{ResponseRange: rr}})
		}
	}
	return resp, nil
}

func (f *fakeEtcd) claims(t *testing.T, n int) []*Claim {
	t.Helper()
	m, err := newMetrics(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	deps := claimDeps{member: "w1", keys: keys{prefix: "/herald"}, m: m, txn: f.txn, forget: func(*Claim) {}}
	l := &lease{ctx: context.Background()}
	f.token = map[string]int64{}
	var out []*Claim
	for s := range n {
		cl, err := newClaim(deps, l, "b", s, n, progressRecord{Cursor: "0@0"}, int64(100+s))
		if err != nil {
			t.Fatal(err)
		}
		f.token[cl.claimKey] = cl.token
		out = append(out, cl)
	}
	return out
}

// Write puts many slots' progress in as few transactions as etcd's limits
// allow, and no transaction past them.
func TestWriteBatchesWithinEtcdLimits(t *testing.T) {
	for _, tt := range []struct {
		name  string
		slots int
		end   End
		txns  int
	}{
		{"checkpoints", 150, KeepClaim, 3}, // 60 + 60 + 30
		{"finishes", 100, FinishSlot, 4},   // four operations each: 32 + 32 + 32 + 4
		{"hand-backs", 61, HandBack, 2},    // three each: 42 + 19
		{"one", 1, KeepClaim, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeEtcd{}
			var rs []Report
			for _, cl := range f.claims(t, tt.slots) {
				rs = append(rs, Report{Claim: cl, Progress: Progress{Cursor: sharding.Cursor{Seq: 10}}, End: tt.end})
			}
			for i, err := range Write(context.Background(), rs) {
				if err != nil {
					t.Fatalf("report %d: %v", i, err)
				}
			}
			if len(f.txns) != tt.txns {
				t.Fatalf("%d transactions, want %d: %+v", len(f.txns), tt.txns, f.txns)
			}
			for _, x := range f.txns {
				if x.cmps > maxReportsPerTxn || x.ops > maxTxnOps {
					t.Fatalf("a transaction of %d compares and %d operations", x.cmps, x.ops)
				}
			}
			for _, r := range rs {
				if ended := r.Claim.ctx.Err() != nil; ended != (tt.end != KeepClaim) {
					t.Fatalf("slot %d: claim ended %v after %v", r.Claim.slot, ended, tt.end)
				}
			}
		})
	}
}

// A claim found lost ends with ErrNotOwner and the others of its
// transaction are written without it; an etcd failure ends nothing and is
// reported for every slot, to be tried again.
func TestWriteLostClaimsAndFailures(t *testing.T) {
	f := &fakeEtcd{}
	cls := f.claims(t, 5)
	f.lost = map[string]bool{cls[2].claimKey: true}
	var rs []Report
	for _, cl := range cls {
		rs = append(rs, Report{Claim: cl, Progress: Progress{Cursor: sharding.Cursor{Seq: 7}}})
	}
	errs := Write(context.Background(), rs)
	for i, err := range errs {
		if (i == 2) != errors.Is(err, ErrNotOwner) || (i != 2 && err != nil) {
			t.Fatalf("report %d: %v", i, err)
		}
	}
	if len(f.txns) != 2 || f.txns[1].cmps != 4 {
		t.Fatalf("transactions %+v: want one refused, then the four others", f.txns)
	}
	if cls[2].ctx.Err() == nil || cls[0].ctx.Err() != nil {
		t.Fatal("the lost claim must end, and only it")
	}

	f.lost, f.err = nil, fmt.Errorf("etcd unreachable")
	rs = append(rs[:2], rs[3:]...)
	for i := range rs {
		rs[i].Progress.Cursor.Seq = 9
	}
	for i, err := range Write(context.Background(), rs) {
		if err == nil || errors.Is(err, ErrNotOwner) {
			t.Fatalf("report %d: %v, want the etcd error", i, err)
		}
	}
	for _, r := range rs {
		if r.Claim.ctx.Err() != nil {
			t.Fatal("an etcd failure ended a claim")
		}
	}

	// Progress a record cannot hold is refused before any transaction.
	f.err = nil
	n := len(f.txns)
	bad := []Report{
		{Claim: cls[0], Progress: Progress{Cursor: sharding.Cursor{Seq: 3}}},                                                         // backwards
		{Claim: cls[1], Progress: Progress{Cursor: sharding.Cursor{Seq: 20}, Pending: []sharding.Cursor{{Seq: 20}}}},                 // pending not behind
		{Claim: cls[3], Progress: Progress{Cursor: sharding.Cursor{Seq: 20}, Pending: []sharding.Cursor{{Seq: 5}}}, End: FinishSlot}, // finish with pending
	}
	errs = Write(context.Background(), bad)
	if !errors.Is(errs[0], ErrCursorBackwards) || !errors.Is(errs[1], ErrBadProgress) || !errors.Is(errs[2], ErrBadProgress) {
		t.Fatalf("errors %v", errs)
	}
	if len(f.txns) != n {
		t.Fatal("a refused report was sent")
	}
}
