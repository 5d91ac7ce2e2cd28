package coordinator

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
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
	// Endpoint is set while workers wait on the broadcast's endpoint (it
	// has been failing, and their sends pause and probe until it answers).
	Endpoint *EndpointStatus `json:"endpoint,omitempty"`
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
// slot's progress, and the member records (for the endpoint's state). A
// broadcast that was archived (it finished, and its live keys gave way to
// its summary) answers from the summary until the retention ends, with the
// counters, units and worker shares it finished with.
func (r *Registry) Status(ctx context.Context, id string) (Status, error) {
	ops := append(r.statusOps(id), clientv3.OpGet(r.keys.archive(id)), clientv3.OpGet(r.keys.members(), clientv3.WithPrefix()))
	resp, err := r.kv.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return Status{}, fmt.Errorf("coordinator: status %s: %w", id, err)
	}
	n := len(ops)
	if len(resp.Responses[0].GetResponseRange().Kvs) > 0 {
		st, _, err := statusOf(id, resp.Responses)
		if err != nil {
			return Status{}, fmt.Errorf("coordinator: status %s: %w", id, err)
		}
		var members []memberRecord
		for _, kv := range resp.Responses[n-1].GetResponseRange().Kvs {
			var m memberRecord
			if json.Unmarshal(kv.Value, &m) == nil {
				members = append(members, m)
			}
		}
		st.Endpoint = endpointStatus(members, id)
		return st, nil
	}
	if kvs := resp.Responses[n-2].GetResponseRange().Kvs; len(kvs) == 1 {
		sum, err := decodeSummary(kvs[0])
		if err != nil {
			return Status{}, fmt.Errorf("coordinator: status %s: %w", id, err)
		}
		sum.ID = id // the key is the truth
		return sum.Status(), nil
	}
	return Status{}, fmt.Errorf("coordinator: status %s: %w", id, ErrNotFound)
}

// statusOps are the reads a live broadcast's status is made of, for one
// transaction: its state, its claims, the count of its done markers, and
// its slots' progress.
func (r *Registry) statusOps(id string) []clientv3.Op {
	return []clientv3.Op{
		clientv3.OpGet(r.keys.state(id)),
		clientv3.OpGet(r.keys.claims(id), clientv3.WithPrefix()),
		clientv3.OpGet(r.keys.dones(id), clientv3.WithPrefix(), clientv3.WithCountOnly()),
		clientv3.OpGet(r.keys.progresses(id), clientv3.WithPrefix()),
	}
}

// statusOf sums the answers to statusOps (the first four of rs) into a
// Status, and returns the state record too. The state key must be there.
func statusOf(id string, rs []*etcdserverpb.ResponseOp) (Status, stateRecord, error) {
	r := func(i int) *etcdserverpb.RangeResponse { return rs[i].GetResponseRange() }
	var st stateRecord
	if err := json.Unmarshal(r(0).Kvs[0].Value, &st); err != nil {
		return Status{}, st, fmt.Errorf("decode state: %w", err)
	}
	s := Status{ID: id, State: st.State, Reason: st.Reason, CreatedAt: st.CreatedAt, UpdatedAt: st.UpdatedAt,
		Workers: map[string]WorkerShare{}}
	credit := func(m string, n int64) {
		w := s.Workers[m]
		w.Delivered += n
		s.Workers[m] = w
	}
	for _, kv := range r(1).Kvs {
		w := s.Workers[string(kv.Value)]
		w.Units++
		s.Workers[string(kv.Value)] = w
	}
	var samples []InvalidSample
	for _, kv := range r(3).Kvs {
		rec, err := decodeProgress(kv.Value)
		if err != nil {
			return Status{}, st, fmt.Errorf("%s: %w", kv.Key, err)
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
	s.Units.Done = int(r(2).Count)
	s.Units.Unclaimed = max(0, st.Slots-s.Units.Done-len(r(1).Kvs))
	slices.SortFunc(samples, func(a, b InvalidSample) int { return cmp.Compare(a.Line, b.Line) })
	s.InvalidSamples = samples[:min(len(samples), MaxInvalidSamples)]
	return s, st, nil
}

// listPage is how many archive records List reads per request.
const listPage = 500

// List returns the status of every broadcast, live and archived, sorted by
// id. Each status is a consistent snapshot of its broadcast; the list as a
// whole is not one. Archived broadcasts are as many as finished within the
// retention; their records are small and read a page at a time.
func (r *Registry) List(ctx context.Context) ([]Status, error) {
	// Keys only: specs can be large, and Status reads what it needs per
	// broadcast.
	resp, err := r.kv.Get(ctx, r.keys.broadcasts(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("coordinator: list: %w", err)
	}
	byID := map[string]Status{}
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
		byID[id] = st
	}
	for from := r.keys.archives(); ; {
		resp, err := r.kv.Get(ctx, from, clientv3.WithRange(r.keys.archivesEnd()), clientv3.WithLimit(listPage))
		if err != nil {
			return nil, fmt.Errorf("coordinator: list: %w", err)
		}
		for _, kv := range resp.Kvs {
			sum, err := decodeSummary(kv)
			if err != nil {
				return nil, fmt.Errorf("coordinator: list: %w", err)
			}
			sum.ID = strings.TrimPrefix(string(kv.Key), r.keys.archives())
			if _, live := byID[sum.ID]; !live {
				byID[sum.ID] = sum.Status()
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	out := slices.Collect(maps.Values(byID))
	slices.SortFunc(out, func(a, b Status) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}
