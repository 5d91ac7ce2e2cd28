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

// view is a member's in-memory copy of what it watches (docs/ETCD.md): the
// broadcasts' states and the members, its own assignment notes, and, for
// the broadcasts it leads, their claims and done markers. It is rebuilt
// from one read of them all (one revision) and kept current by one watch
// of each from that revision on. It is owned by Run's goroutine. Each
// watch delivers whole revisions in order; decisions made on the view are
// still proven by a txn compare, since the store may have moved on.
//
// A led broadcast's slots are held in arrays indexed by slot number, and a
// claim's holder as an index into names, so the view costs 13 bytes a
// slot whatever the fleet.
type view struct {
	keys       keys
	rev        int64
	members    map[string]memberView
	membersGen uint64 // counts changes of the live members or their capacities
	broadcasts map[string]*broadcastView

	// self is this member's id; notes are its assignment notes, one per
	// claim it holds; mine are the new ones, for adopt to take up (Run's
	// goroutine drains it).
	self  string
	notes map[slotRef]noteView
	mine  []adoption
	// slotsWatched says the claims and done markers of every broadcast are
	// in the view (this member leads one): only then are the slot arrays
	// filled in.
	slotsWatched bool

	// names interns every member id seen in a claim or a member key.
	names   []string
	nameIdx map[string]int32

	// liveMembers are the members alive and not leaving, by id, kept
	// sorted as member keys change (a join or leave costs a binary search
	// and a copy, not a sort: a member sees every other member's join).
	liveMembers []sharding.Member
	// For the assignment, rebuilt on demand once membership changed:
	// capacities in liveMembers' order, and name index -> index in
	// liveMembers (or -1).
	indexGen    uint64
	liveWeights []float64
	liveOf      []int32
}

type memberView struct {
	rec   memberRecord
	lease int64
}

// slotRef names one slot of one broadcast.
type slotRef struct {
	broadcast string
	slot      int
}

// noteView is one of this member's assignment notes: the token and lease
// of the claim it goes with, and whether the leader asked for the slot
// back.
type noteView struct {
	token, lease int64
	back         bool
}

// broadcastView is what the view holds of one broadcast. Specs are not
// kept: the coordinator never needs them, and progress is not watched.
type broadcastView struct {
	id       string
	hasState bool
	state    stateRecord
	stateRev int64 // mod revision of the state key
	gen      uint64
	// finishedAt is when the state became terminal (finishedAt below): the
	// archive waits Config.ArchiveAfter from then.
	finishedAt time.Time

	// slots is the broadcast's slot count (0 until it starts). The arrays
	// below have that length while the broadcast runs or is paused, and
	// are dropped once it is over; they are filled in only while the view
	// watches slots (slotsWatched).
	slots     int
	holder    []int32 // name index of the claim's holder, or -1
	token     []int64 // the claim key's create revision: the holder's fencing token
	done      []bool
	doneCount int
	// asked is, per slot, the token of the claim the leader asked back
	// (0: not asked), so it asks once.
	asked []int64
}

func newView(k keys, rev int64, self string) *view {
	v := &view{keys: k, rev: rev, self: self, members: map[string]memberView{}, broadcasts: map[string]*broadcastView{},
		nameIdx: map[string]int32{}, membersGen: 1, notes: map[slotRef]noteView{}}
	v.intern(self)
	return v
}

// intern returns the index of member id in names, adding it if new.
func (v *view) intern(id string) int32 {
	if i, ok := v.nameIdx[id]; ok {
		return i
	}
	i := int32(len(v.names))
	v.names = append(v.names, id)
	v.nameIdx[id] = i
	return i
}

func (v *view) broadcast(id string) *broadcastView {
	b, ok := v.broadcasts[id]
	if !ok {
		b = &broadcastView{id: id}
		v.broadcasts[id] = b
	}
	return b
}

// apply folds one key's new value (or deletion) into the view. It returns
// the broadcast id whose state changed, if one did (a broadcast whose state
// key was deleted, being archived, leaves the view and counts), and an
// error for a value that could not be decoded; such a key is kept out of
// decisions rather than stopping the member.
func (v *view) apply(kv *mvccpb.KeyValue, deleted bool) (stateChanged string, err error) {
	v.rev = max(v.rev, kv.ModRevision)
	kind, id, name, slot := v.keys.parse(string(kv.Key))
	switch kind {
	case keyMember:
		if deleted {
			delete(v.members, name)
			v.setLive(name, 0, false)
			return "", nil
		}
		var rec memberRecord
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			delete(v.members, name)
			v.setLive(name, 0, false)
			return "", fmt.Errorf("coordinator: decode member %s: %w", name, err)
		}
		rec.ID = name // the key is the truth
		v.intern(name)
		v.members[name] = memberView{rec: rec, lease: kv.Lease}
		v.setLive(name, rec.Capacity, !rec.Leaving)
	case keyState:
		if deleted {
			// Its keys are deleted together when it is archived, the
			// state last: the broadcast leaves the view.
			if _, ok := v.broadcasts[id]; !ok {
				return "", nil
			}
			delete(v.broadcasts, id)
			return id, nil
		}
		b := v.broadcast(id)
		b.gen++
		var st stateRecord
		if err := json.Unmarshal(kv.Value, &st); err != nil {
			b.hasState = false
			return id, fmt.Errorf("coordinator: decode state of %s: %w", id, err)
		}
		if st.State.Terminal() && !(b.hasState && b.state.State.Terminal()) {
			b.finishedAt = finishedAt(st, time.Now())
		}
		b.hasState, b.state, b.stateRev = true, st, kv.ModRevision
		if b.slots == 0 && st.Slots > 0 && st.Slots <= sharding.MaxSlots && !st.State.Terminal() {
			b.slots = st.Slots
			b.holder = make([]int32, st.Slots)
			for i := range b.holder {
				b.holder[i] = -1
			}
			b.token = make([]int64, st.Slots)
			b.done = make([]bool, st.Slots)
			b.asked = make([]int64, st.Slots)
		}
		return id, nil
	case keyClaim:
		b, ok := v.broadcasts[id]
		if !ok || slot >= len(b.holder) {
			return "", nil // not started as far as the view knows, or over
		}
		b.gen++
		if deleted {
			b.holder[slot], b.token[slot] = -1, 0
			return "", nil
		}
		b.holder[slot], b.token[slot] = v.intern(string(kv.Value)), kv.CreateRevision
	case keyNote:
		if name != v.self {
			return "", nil
		}
		ref := slotRef{id, slot}
		if deleted {
			delete(v.notes, ref)
			return "", nil
		}
		old, had := v.notes[ref]
		v.notes[ref] = noteView{token: kv.CreateRevision, lease: kv.Lease, back: string(kv.Value) == noteBack}
		if !had || old.token != kv.CreateRevision {
			v.mine = append(v.mine, adoption{broadcast: id, slot: slot, token: kv.CreateRevision, lease: kv.Lease})
		}
	case keyDone:
		b, ok := v.broadcasts[id]
		if !ok || slot >= len(b.done) || b.done[slot] == !deleted {
			return "", nil
		}
		b.gen++
		b.done[slot] = !deleted
		if deleted {
			b.doneCount--
		} else {
			b.doneCount++
		}
	}
	return "", nil
}

// over drops the slot arrays of a broadcast that is over: nothing more
// happens to its slots, so the view stays bounded by the broadcasts in
// flight.
func (b *broadcastView) over() {
	b.holder, b.token, b.done, b.asked = nil, nil, nil, nil
}

// setLive puts member id in the live list with capacity w, or takes it
// out. Membership changes (membersGen) only when the live list does: a
// member record rewritten for another reason (the endpoints it waits on)
// changes no one's assignment.
func (v *view) setLive(id string, w float64, live bool) {
	i, found := slices.BinarySearchFunc(v.liveMembers, id, func(m sharding.Member, id string) int { return cmp.Compare(m.ID, id) })
	if !live {
		if found {
			v.liveMembers = slices.Delete(v.liveMembers, i, i+1)
			v.membersGen++
		}
		return
	}
	if w == 0 {
		w = 1
	}
	// A peer with an out-of-range capacity must not upset everyone's
	// arithmetic.
	w = min(max(w, sharding.MinWeight), sharding.MaxWeight)
	switch {
	case !found:
		v.liveMembers = slices.Insert(v.liveMembers, i, sharding.Member{ID: id, Weight: w})
	case v.liveMembers[i].Weight != w:
		v.liveMembers[i].Weight = w
	default:
		return
	}
	v.membersGen++
}

// live returns the members that are alive and not leaving, sorted by id.
// The caller must not modify it.
func (v *view) live() []sharding.Member { return v.liveMembers }

// liveIndex returns the live members' capacities in id order, and for each
// name index the member's place among them (or -1), as the assignment
// takes them. The result is cached until membership changes; the caller
// must not modify it.
func (v *view) liveIndex() (weights []float64, liveOf []int32) {
	if v.indexGen == v.membersGen && len(v.liveOf) == len(v.names) {
		return v.liveWeights, v.liveOf
	}
	weights = make([]float64, len(v.liveMembers))
	liveOf = make([]int32, len(v.names))
	for i := range liveOf {
		liveOf[i] = -1
	}
	for i, m := range v.liveMembers {
		weights[i] = m.Weight
		liveOf[v.nameIdx[m.ID]] = int32(i)
	}
	v.indexGen, v.liveWeights, v.liveOf = v.membersGen, weights, liveOf
	return weights, liveOf
}

// active reports whether member is alive and not leaving.
func (v *view) active(member string) bool {
	m, ok := v.members[member]
	return ok && !m.rec.Leaving
}

// finishedAt is when a terminal state was written, by the clock of the
// member that wrote it, or now if that lies ahead of this member's clock
// (or is missing). It is read from the record, not taken from when this
// view saw it: a resync rebuilds the view, and a time it restarted would
// put off every archive again at each resync, for ever in a fleet that
// resyncs more often than Config.ArchiveAfter.
func finishedAt(st stateRecord, now time.Time) time.Time {
	if st.UpdatedAt.IsZero() || st.UpdatedAt.After(now) {
		return now
	}
	return st.UpdatedAt
}
