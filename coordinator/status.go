package coordinator

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Status is a broadcast's progress as `herald status ID --json` prints it
// (docs/CONTRACTS.md, "Progress and state").
type Status struct {
	ID        string    `json:"id"`
	State     State     `json:"state"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Counters are summed over every slot's progress.
	Counters Counters `json:"counters"`
	// Units counts the broadcast's slots, its units of work.
	Units UnitCounts `json:"units"`
	// Workers maps each member that holds a claim or made deliveries to
	// its share.
	Workers map[string]WorkerShare `json:"workers"`
	// RatePerSec is left 0 here: a rate needs two samples, which is the
	// caller's to take.
	RatePerSec float64 `json:"rate_per_s"`
	Reason     string  `json:"reason"`
	// InvalidSamples are the first few invalid audience lines, by line.
	InvalidSamples []InvalidSample `json:"invalid_samples,omitempty"`
}

// UnitCounts counts a broadcast's units: its slots, fixed when it starts
// (all zero before).
type UnitCounts struct {
	Total int `json:"total"`
	Done  int `json:"done"`
	// Unclaimed counts slots neither done nor held by a member: after a
	// member dies, its slots stay unclaimed until the survivors take them
	// over, so zero again means the failover is complete.
	Unclaimed int `json:"unclaimed"`
}

// WorkerShare is one member's part in a broadcast: the slots it holds
// claims on now, and the deliveries it made (counted in the slots'
// progress, including slots it has since handed on).
type WorkerShare struct {
	Units     int   `json:"units"`
	Delivered int64 `json:"delivered"`
}

// Status returns the progress of broadcast id, read in one consistent
// snapshot: the state, the claims, the count of done slots and every
// slot's progress.
func (r *Registry) Status(ctx context.Context, id string) (Status, error) {
	resp, err := r.kv.Txn(ctx).Then(
		clientv3.OpGet(r.keys.state(id)),
		clientv3.OpGet(r.keys.claims(id), clientv3.WithPrefix()),
		clientv3.OpGet(r.keys.dones(id), clientv3.WithPrefix(), clientv3.WithCountOnly()),
		clientv3.OpGet(r.keys.progresses(id), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return Status{}, fmt.Errorf("coordinator: status %s: %w", id, err)
	}
	rs := func(i int) *etcdserverpb.RangeResponse { return resp.Responses[i].GetResponseRange() }
	if len(rs(0).Kvs) == 0 {
		return Status{}, fmt.Errorf("coordinator: status %s: %w", id, ErrNotFound)
	}
	var st stateRecord
	if err := json.Unmarshal(rs(0).Kvs[0].Value, &st); err != nil {
		return Status{}, fmt.Errorf("coordinator: status %s: decode state: %w", id, err)
	}
	s := Status{ID: id, State: st.State, Reason: st.Reason, CreatedAt: st.CreatedAt, UpdatedAt: st.UpdatedAt,
		Workers: map[string]WorkerShare{}}
	credit := func(m string, n int64) {
		w := s.Workers[m]
		w.Delivered += n
		s.Workers[m] = w
	}
	for _, kv := range rs(1).Kvs {
		w := s.Workers[string(kv.Value)]
		w.Units++
		s.Workers[string(kv.Value)] = w
	}
	var samples []InvalidSample
	for _, kv := range rs(3).Kvs {
		rec, err := decodeProgress(kv.Value)
		if err != nil {
			return Status{}, fmt.Errorf("coordinator: status %s: %s: %w", id, kv.Key, err)
		}
		s.Counters = s.Counters.Add(rec.Counters)
		for m, n := range rec.Credits {
			credit(m, n)
		}
		if rec.Owner != "" {
			credit(rec.Owner, rec.Counters.Delivered-rec.credited())
		}
		samples = append(samples, rec.InvalidSamples...)
	}
	s.Units.Total = st.Slots
	s.Units.Done = int(rs(2).Count)
	s.Units.Unclaimed = max(0, st.Slots-s.Units.Done-len(rs(1).Kvs))
	slices.SortFunc(samples, func(a, b InvalidSample) int { return cmp.Compare(a.Line, b.Line) })
	s.InvalidSamples = samples[:min(len(samples), MaxInvalidSamples)]
	return s, nil
}

// List returns the status of every broadcast, sorted by id. Each status is
// a consistent snapshot of its broadcast; the list as a whole is not one.
func (r *Registry) List(ctx context.Context) ([]Status, error) {
	// Keys only: specs can be large, and Status reads what it needs per
	// broadcast.
	resp, err := r.kv.Get(ctx, r.keys.broadcasts(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("coordinator: list: %w", err)
	}
	var out []Status
	for _, kv := range resp.Kvs {
		kind, id, _, _ := r.keys.parse(string(kv.Key))
		if kind != keyState {
			continue
		}
		st, err := r.Status(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue // deleted since
		}
		if err != nil {
			return nil, fmt.Errorf("coordinator: list: %w", err)
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b Status) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}
