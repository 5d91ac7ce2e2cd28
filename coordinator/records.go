package coordinator

import (
	"encoding/json"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/herald-dev/herald/sharding"
)

// State is a broadcast's state, named as `herald status` shows it
// (docs/CONTRACTS.md, "Progress and state").
type State string

// The states of a broadcast. Pending waits for its start time; running and
// paused have units; the last four are terminal.
const (
	StatePending   State = "pending"
	StateRunning   State = "running"
	StatePaused    State = "paused"
	StateCancelled State = "cancelled"
	StateDone      State = "done"
	StateExpired   State = "expired"
	StateRejected  State = "rejected"
)

// Terminal reports whether no further transition can leave s.
func (s State) Terminal() bool {
	switch s {
	case StateCancelled, StateDone, StateExpired, StateRejected:
		return true
	}
	return false
}

// Counters count what happened to the records of a unit, or of a whole
// broadcast when summed. In a finished broadcast Scanned equals the sum of
// the other five.
type Counters struct {
	Scanned     int64 `json:"scanned"`
	Unreachable int64 `json:"unreachable"`
	Invalid     int64 `json:"invalid"`
	Delivered   int64 `json:"delivered"`
	Failed      int64 `json:"failed"`
	Expired     int64 `json:"expired"`
}

// Add returns the field-wise sum of c and d.
func (c Counters) Add(d Counters) Counters {
	return Counters{
		Scanned:     c.Scanned + d.Scanned,
		Unreachable: c.Unreachable + d.Unreachable,
		Invalid:     c.Invalid + d.Invalid,
		Delivered:   c.Delivered + d.Delivered,
		Failed:      c.Failed + d.Failed,
		Expired:     c.Expired + d.Expired,
	}
}

// InvalidSample is one audience line that could not be used, with why.
type InvalidSample struct {
	Line   int64  `json:"line"`
	Reason string `json:"reason"`
}

// MaxInvalidSamples is how many invalid lines a unit record keeps.
const MaxInvalidSamples = 5

// Progress is how far a unit has got: every record before Cursor is
// finished and counted in Counters, which are cumulative for the unit.
type Progress struct {
	Cursor         sharding.Cursor
	Counters       Counters
	InvalidSamples []InvalidSample
}

// memberRecord is the value at P/members/<id>, bound to the member's lease.
type memberRecord struct {
	ID       string    `json:"id"`
	Address  string    `json:"address"`
	Capacity float64   `json:"capacity"`
	Version  string    `json:"version"`
	Started  time.Time `json:"started"`
	Leaving  bool      `json:"leaving"`
	// Waiting lists the broadcasts whose endpoint this member's sends
	// wait on (its delivery circuit breaker is open), with since when.
	Waiting map[string]time.Time `json:"waiting,omitempty"`
}

// stateRecord is the value at P/broadcasts/<id>/state.
type stateRecord struct {
	State     State     `json:"state"`
	Reason    string    `json:"reason,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// StartedAt is when the broadcast went from pending to running; zero
	// until it starts.
	StartedAt time.Time `json:"started_at,omitzero"`
	NotBefore time.Time `json:"not_before,omitzero"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// unitStatus is where a unit is in its life: open until done, or split
// when its remainder was divided among children.
type unitStatus string

const (
	unitOpen  unitStatus = "open"
	unitDone  unitStatus = "done"
	unitSplit unitStatus = "split"
)

// unitRecord is the value at P/broadcasts/<id>/units/<unit>: everything
// about a unit that changes. What never changes, its arcs, is at
// P/broadcasts/<id>/arcs/<unit>, written once in the txn that creates the
// unit, so a checkpoint rewrites a few hundred bytes rather than a ring
// member's thousands of ranges.
type unitRecord struct {
	ID string `json:"id"`
	// Share is the unit's fraction of the hash space.
	Share float64 `json:"share"`
	// Cursor is the last checkpoint, in sharding's "seq@offset" text.
	Cursor string     `json:"cursor"`
	Status unitStatus `json:"status"`
	// Assignee is the member that should claim the unit; empty when it was
	// released and waits for a survivor to split it.
	Assignee string `json:"assignee"`
	// Owner is the member that wrote the last checkpoint.
	Owner string `json:"owner,omitempty"`
	// Credits are the deliveries, among Counters.Delivered, made by earlier
	// owners of the unit (a unit released on a graceful leave and claimed
	// whole by a survivor changes hands); the owner made the rest.
	Credits        map[string]int64 `json:"credits,omitempty"`
	Counters       Counters         `json:"counters"`
	InvalidSamples []InvalidSample  `json:"invalid_samples,omitempty"`
	Children       []string         `json:"children,omitempty"`
	UpdatedAt      time.Time        `json:"updated_at"`
}

// newUnitOps returns the puts that create unit u of broadcast b, open and
// assigned to assignee, and how many bytes they carry.
func newUnitOps(k keys, b string, u sharding.Unit, assignee string, now time.Time) ([]clientv3.Op, int, error) {
	text, err := u.MarshalText()
	if err != nil {
		return nil, 0, fmt.Errorf("coordinator: encode unit %s: %w", u.ID, err)
	}
	cur, err := u.Cursor.MarshalText()
	if err != nil {
		return nil, 0, fmt.Errorf("coordinator: encode cursor of %s: %w", u.ID, err)
	}
	val, err := encode(unitRecord{
		ID: u.ID, Share: u.Arcs.Share(), Cursor: string(cur),
		Status: unitOpen, Assignee: assignee, UpdatedAt: now,
	})
	if err != nil {
		return nil, 0, err
	}
	arcsKey, unitKey := k.arcs(b, u.ID), k.unit(b, u.ID)
	ops := []clientv3.Op{clientv3.OpPut(arcsKey, string(text)), clientv3.OpPut(unitKey, val)}
	return ops, len(arcsKey) + len(text) + len(unitKey) + len(val), nil
}

// decodeArcs returns the unit an arcs value describes; its Cursor is where
// the unit started.
func decodeArcs(text []byte) (sharding.Unit, error) {
	var u sharding.Unit
	if err := u.UnmarshalText(text); err != nil {
		return sharding.Unit{}, fmt.Errorf("coordinator: decode unit: %w", err)
	}
	return u, nil
}

// cursor returns the record's last checkpoint.
func (r unitRecord) cursor() (sharding.Cursor, error) {
	var c sharding.Cursor
	if err := c.UnmarshalText([]byte(r.Cursor)); err != nil {
		return c, fmt.Errorf("coordinator: decode cursor %q: %w", r.Cursor, err)
	}
	return c, nil
}

// progress returns what the record holds as a Progress.
func (r unitRecord) progress() (Progress, error) {
	c, err := r.cursor()
	if err != nil {
		return Progress{}, err
	}
	return Progress{Cursor: c, Counters: r.Counters, InvalidSamples: append([]InvalidSample(nil), r.InvalidSamples...)}, nil
}

// withProgress returns r advanced to p, written by owner at now.
func (r unitRecord) withProgress(p Progress, owner string, now time.Time) (unitRecord, error) {
	cur, err := p.Cursor.MarshalText()
	if err != nil {
		return r, fmt.Errorf("coordinator: encode cursor: %w", err)
	}
	r.Cursor = string(cur)
	if r.Owner != "" && r.Owner != owner {
		// The unit changed hands: what it had delivered so far, beyond
		// what earlier owners were credited, was the previous owner's.
		credits := make(map[string]int64, len(r.Credits)+1)
		for m, n := range r.Credits {
			credits[m] = n
		}
		credits[r.Owner] += r.Counters.Delivered - r.credited()
		r.Credits = credits
	}
	r.Counters = p.Counters
	r.InvalidSamples = p.InvalidSamples
	if len(r.InvalidSamples) > MaxInvalidSamples {
		r.InvalidSamples = r.InvalidSamples[:MaxInvalidSamples]
	}
	r.Owner = owner
	r.UpdatedAt = now
	return r, nil
}

// credited is the sum of the deliveries credited to earlier owners.
func (r unitRecord) credited() int64 {
	var n int64
	for _, c := range r.Credits {
		n += c
	}
	return n
}

// encode returns v as JSON. The records are plain structs, so this cannot
// fail in practice; the error is kept for honesty.
func encode(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("coordinator: encode record: %w", err)
	}
	return string(b), nil
}
