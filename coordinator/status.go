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

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Status is a broadcast's progress as `herald status ID --json` prints it
// (docs/CONTRACTS.md, "Progress and state").
type Status struct {
	ID        string    `json:"id"`
	State     State     `json:"state"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Counters are summed over every unit, split parents included: a parent
	// counts what was done before it split, its children what came after.
	Counters Counters `json:"counters"`
	// Units counts leaf units (those not split).
	Units UnitCounts `json:"units"`
	// Workers maps each member that holds a claim or wrote a checkpoint to
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

// UnitCounts counts a broadcast's leaf units.
type UnitCounts struct {
	Total int `json:"total"`
	Done  int `json:"done"`
	// Unclaimed counts open units no member holds a claim on: after a
	// member dies, its units stay unclaimed until the survivors take them
	// over, so zero again means the failover is complete.
	Unclaimed int `json:"unclaimed"`
}

// WorkerShare is one member's part in a broadcast: the units it holds
// claims on now, and the deliveries counted in units it last checkpointed.
type WorkerShare struct {
	Units     int   `json:"units"`
	Delivered int64 `json:"delivered"`
}

// Status returns the progress of broadcast id, read in one consistent
// snapshot. A broadcast that was archived (it finished, and its live keys
// gave way to its summary) answers from the summary until the retention
// ends, with the counters, units and worker shares it finished with.
func (r *Registry) Status(ctx context.Context, id string) (Status, error) {
	resp, err := r.kv.Txn(ctx).Then(
		clientv3.OpGet(r.keys.state(id)),
		clientv3.OpGet(r.keys.units(id), clientv3.WithPrefix()),
		clientv3.OpGet(r.keys.claims(id), clientv3.WithPrefix()),
		clientv3.OpGet(r.keys.archive(id)),
		clientv3.OpGet(r.keys.members(), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return Status{}, fmt.Errorf("coordinator: status %s: %w", id, err)
	}
	var all []*mvccpb.KeyValue
	for _, op := range resp.Responses[:3] {
		all = append(all, op.GetResponseRange().Kvs...)
	}
	sts, err := summarize(r.keys, all)
	if err != nil {
		return Status{}, fmt.Errorf("coordinator: status %s: %w", id, err)
	}
	if len(sts) > 0 {
		var members []memberRecord
		for _, kv := range resp.Responses[4].GetResponseRange().Kvs {
			var m memberRecord
			if json.Unmarshal(kv.Value, &m) == nil {
				members = append(members, m)
			}
		}
		sts[0].Endpoint = endpointStatus(members, id)
		return sts[0], nil
	}
	if kvs := resp.Responses[3].GetResponseRange().Kvs; len(kvs) == 1 {
		sum, err := decodeSummary(kvs[0])
		if err != nil {
			return Status{}, fmt.Errorf("coordinator: status %s: %w", id, err)
		}
		sum.ID = id // the key is the truth
		return sum.Status(), nil
	}
	return Status{}, fmt.Errorf("coordinator: status %s: %w", id, ErrNotFound)
}

// listPage is how many archive records List reads per request.
const listPage = 500

// List returns the status of every broadcast, live and archived, sorted by
// id. Each status is a consistent snapshot of its broadcast; the list as a
// whole is not one. Archived broadcasts are as many as finished within the
// retention; their records are small and read a page at a time.
func (r *Registry) List(ctx context.Context) ([]Status, error) {
	// Keys only: the arcs and specs under the prefix can be large, and
	// Status reads what it needs per broadcast.
	resp, err := r.kv.Get(ctx, r.keys.broadcasts(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("coordinator: list: %w", err)
	}
	byID := map[string]Status{}
	for _, kv := range resp.Kvs {
		kind, id, _ := r.keys.parse(string(kv.Key))
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

// summarize builds one Status per broadcast that has a state key among kvs,
// sorted by id. Spec keys are ignored.
func summarize(k keys, kvs []*mvccpb.KeyValue) ([]Status, error) {
	byID := map[string]*Status{}
	get := func(id string) *Status {
		s, ok := byID[id]
		if !ok {
			s = &Status{ID: id, Workers: map[string]WorkerShare{}}
			byID[id] = s
		}
		return s
	}
	samples := map[string][]InvalidSample{}
	hasState := map[string]bool{}
	open := map[string]map[string]bool{}    // broadcast -> open units
	claimed := map[string]map[string]bool{} // broadcast -> claimed units
	mark := func(m map[string]map[string]bool, id, unit string) {
		if m[id] == nil {
			m[id] = map[string]bool{}
		}
		m[id][unit] = true
	}
	for _, kv := range kvs {
		kind, id, name := k.parse(string(kv.Key))
		switch kind {
		case keyState:
			var st stateRecord
			if err := json.Unmarshal(kv.Value, &st); err != nil {
				return nil, fmt.Errorf("decode state of %s: %w", id, err)
			}
			s := get(id)
			s.State, s.Reason, s.CreatedAt, s.UpdatedAt = st.State, st.Reason, st.CreatedAt, st.UpdatedAt
			hasState[id] = true
		case keyUnit:
			var u unitRecord
			if err := json.Unmarshal(kv.Value, &u); err != nil {
				return nil, fmt.Errorf("decode unit %s: %w", kv.Key, err)
			}
			s := get(id)
			s.Counters = s.Counters.Add(u.Counters)
			switch u.Status {
			case unitDone:
				s.Units.Total++
				s.Units.Done++
			case unitOpen:
				s.Units.Total++
				mark(open, id, name)
			}
			for m, n := range u.Credits {
				w := s.Workers[m]
				w.Delivered += n
				s.Workers[m] = w
			}
			if u.Owner != "" {
				w := s.Workers[u.Owner]
				w.Delivered += u.Counters.Delivered - u.credited()
				s.Workers[u.Owner] = w
			}
			samples[id] = append(samples[id], u.InvalidSamples...)
		case keyClaim:
			mark(claimed, id, name)
			s := get(id)
			w := s.Workers[string(kv.Value)]
			w.Units++
			s.Workers[string(kv.Value)] = w
		}
	}
	out := make([]Status, 0, len(byID))
	for id, s := range byID {
		if !hasState[id] {
			continue // units without a state: a torn read cannot happen, but a stray key can
		}
		for u := range open[id] {
			if !claimed[id][u] {
				s.Units.Unclaimed++
			}
		}
		ss := samples[id]
		slices.SortFunc(ss, func(a, b InvalidSample) int { return cmp.Compare(a.Line, b.Line) })
		s.InvalidSamples = ss[:min(len(ss), MaxInvalidSamples)]
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b Status) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}
