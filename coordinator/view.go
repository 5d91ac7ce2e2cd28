package coordinator

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/herald-dev/herald/sharding"
)

// view is a member's in-memory copy of everything under the prefix,
// rebuilt from one Get and kept current by one watch from the Get's
// revision on. It is owned by Run's goroutine. Because the watch delivers
// whole revisions in order, the view is always the store as of some
// revision, rev; decisions made on it are still proven by a txn compare,
// since the store may have moved on.
type view struct {
	keys       keys
	rev        int64
	members    map[string]memberView
	broadcasts map[string]*broadcastView
}

type memberView struct {
	rec   memberRecord
	lease int64
}

// broadcastView is what the view holds of one broadcast. Specs are not
// kept: the coordinator never needs them.
type broadcastView struct {
	id       string
	hasState bool
	state    stateRecord
	stateRev int64 // mod revision of the state key
	// finishedAt is when this view first saw the state terminal: the
	// archive waits Config.ArchiveAfter from then.
	finishedAt time.Time
	units      map[string]*unitView
	arcs       map[string]sharding.Unit // immutable, as created
	claims     map[string]claimView
}

// join fills in unit name's decoded form from its record and its arcs. The
// two keys are always written in one txn, so once a watch response is
// applied both are there; until then the unit carries an error and is left
// alone.
func (b *broadcastView) join(name string) {
	u, ok := b.units[name]
	if !ok || u.undecodable {
		return
	}
	a, ok := b.arcs[name]
	if !ok {
		u.err = fmt.Errorf("coordinator: unit %s/%s has no arcs yet", b.id, name)
		return
	}
	cur, err := u.rec.cursor()
	if err != nil {
		u.err = err
		return
	}
	a.Cursor = cur
	u.unit, u.err = a, nil
}

type unitView struct {
	key    string
	rec    unitRecord
	modRev int64
	unit   sharding.Unit // from the arcs key, Cursor = the last checkpoint
	err    error         // why the unit cannot be used, if it cannot

	undecodable bool // the record is not JSON; rec is zero
}

type claimView struct {
	member    string
	createRev int64 // the fencing token of whoever holds it
}

func newView(k keys, rev int64) *view {
	return &view{keys: k, rev: rev, members: map[string]memberView{}, broadcasts: map[string]*broadcastView{}}
}

func (v *view) broadcast(id string) *broadcastView {
	b, ok := v.broadcasts[id]
	if !ok {
		b = &broadcastView{id: id, units: map[string]*unitView{}, arcs: map[string]sharding.Unit{},
			claims: map[string]claimView{}}
		v.broadcasts[id] = b
	}
	return b
}

// apply folds one key's new value (or deletion) into the view. It returns
// the broadcast id whose state changed, if one did (a broadcast whose last
// key was deleted, being archived, counts), and an error for a value that
// could not be decoded; such a key is kept out of decisions rather than
// stopping the member.
func (v *view) apply(kv *mvccpb.KeyValue, deleted bool) (stateChanged string, err error) {
	v.rev = max(v.rev, kv.ModRevision)
	kind, id, name := v.keys.parse(string(kv.Key))
	if kind == keyMember {
		if deleted {
			delete(v.members, name)
			return "", nil
		}
		var rec memberRecord
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			delete(v.members, name)
			return "", fmt.Errorf("coordinator: decode member %s: %w", name, err)
		}
		rec.ID = name // the key is the truth
		v.members[name] = memberView{rec: rec, lease: kv.Lease}
		return "", nil
	}
	if deleted {
		return v.remove(kind, id, name), nil
	}
	switch kind {
	case keyState:
		b := v.broadcast(id)
		var st stateRecord
		if err := json.Unmarshal(kv.Value, &st); err != nil {
			b.hasState = false
			return id, fmt.Errorf("coordinator: decode state of %s: %w", id, err)
		}
		if st.State.Terminal() && !(b.hasState && b.state.State.Terminal()) {
			b.finishedAt = time.Now()
		}
		b.hasState, b.state, b.stateRev = true, st, kv.ModRevision
		return id, nil
	case keyUnit:
		b := v.broadcast(id)
		u := &unitView{key: string(kv.Key), modRev: kv.ModRevision}
		b.units[name] = u
		if err := json.Unmarshal(kv.Value, &u.rec); err != nil {
			u.rec, u.undecodable = unitRecord{}, true
			u.err = fmt.Errorf("coordinator: decode unit %s: %w", kv.Key, err)
			return "", u.err
		}
		b.join(name)
	case keyArcs:
		b := v.broadcast(id)
		a, err := decodeArcs(kv.Value)
		if err != nil {
			return "", fmt.Errorf("coordinator: %s: %w", kv.Key, err)
		}
		b.arcs[name] = a
		b.join(name)
	case keyClaim:
		b := v.broadcast(id)
		b.claims[name] = claimView{member: string(kv.Value), createRev: kv.CreateRevision}
	}
	return "", nil
}

// remove folds the deletion of one broadcast key into the view. A
// broadcast left with nothing (its keys were deleted when it was archived)
// leaves the view, and its id is returned as changed; so is the id whose
// state key went.
func (v *view) remove(kind keyKind, id, name string) (stateChanged string) {
	b, ok := v.broadcasts[id]
	if !ok {
		return ""
	}
	switch kind {
	case keyState:
		b.hasState = false
		stateChanged = id
	case keyUnit:
		delete(b.units, name)
	case keyArcs:
		delete(b.arcs, name)
	case keyClaim:
		delete(b.claims, name)
	}
	if !b.hasState && len(b.units) == 0 && len(b.arcs) == 0 && len(b.claims) == 0 {
		delete(v.broadcasts, id)
		stateChanged = id
	}
	return stateChanged
}

// live returns the members that are alive and not leaving, sorted by id,
// with their capacities as ring weights.
func (v *view) live() []sharding.Member {
	out := make([]sharding.Member, 0, len(v.members))
	for id, m := range v.members {
		if m.rec.Leaving {
			continue
		}
		w := m.rec.Capacity
		if w == 0 {
			w = 1
		}
		// A peer with an out-of-range capacity must not make the ring
		// unbuildable for everyone.
		w = min(max(w, sharding.MinWeight), sharding.MaxWeight)
		out = append(out, sharding.Member{ID: id, Weight: w})
	}
	slices.SortFunc(out, func(a, b sharding.Member) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// active reports whether member is alive and not leaving.
func (v *view) active(member string) bool {
	m, ok := v.members[member]
	return ok && !m.rec.Leaving
}

// sorted returns the broadcasts in id order, so every member walks them
// alike.
func (v *view) sorted() []*broadcastView {
	out := make([]*broadcastView, 0, len(v.broadcasts))
	for _, b := range v.broadcasts {
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b *broadcastView) int { return cmp.Compare(a.id, b.id) })
	return out
}

// sortedUnits returns b's units in id order.
func (b *broadcastView) sortedUnits() []*unitView {
	out := make([]*unitView, 0, len(b.units))
	for _, u := range b.units {
		out = append(out, u)
	}
	slices.SortFunc(out, func(x, y *unitView) int { return cmp.Compare(x.key, y.key) })
	return out
}
