package coordinator

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/herald-dev/herald/sharding"
)

// State is a broadcast's state, named as `herald status` shows it
// (docs/CONTRACTS.md, "Progress and state").
type State string

// The states of a broadcast. Pending waits for its start time; running and
// paused have slots; the last four are terminal.
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

// Counters count what happened to the records of a slot, or of a whole
// broadcast when summed. In a finished broadcast Scanned equals the sum of
// the other five.
type Counters struct {
	Scanned     int64 `json:"scanned"`
	Unreachable int64 `json:"unreachable"`
	Invalid     int64 `json:"invalid"`
	Delivered   int64 `json:"delivered"`
	Failed      int64 `json:"failed"`
	Expired     int64 `json:"expired"`
	// InvalidTokens counts the failures (a part of Failed) whose device
	// token or push subscription the provider declared dead; left out of
	// the JSON when 0, as for every webhook broadcast.
	InvalidTokens int64 `json:"invalid_tokens,omitempty"`
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

		InvalidTokens: c.InvalidTokens + d.InvalidTokens,
	}
}

// InvalidSample is one audience line that could not be used, with why.
type InvalidSample struct {
	Line   int64  `json:"line"`
	Reason string `json:"reason"`
}

// MaxInvalidSamples is how many invalid lines a slot's progress keeps.
const MaxInvalidSamples = 5

// MaxPending is how many unfinished records one slot's progress may list
// behind its cursor. It bounds the size of a checkpoint, and so of the
// transaction that carries a worker's checkpoints.
const MaxPending = 4096

// Progress is how far a slot has got. Every record of the slot before
// Cursor is finished and counted in Counters, except those in Pending:
// records read and dispatched but not finished when the progress was
// taken (a send waiting on a Retry-After, say), which whoever resumes the
// slot sends again. So one slow record no longer holds the cursor back:
// a successor re-sends it and what lies after the cursor, nothing else.
// Counters are cumulative for the slot.
type Progress struct {
	Cursor sharding.Cursor
	// Pending are the unfinished records before Cursor, ascending
	// (sharding.Cursor.Compare); at most MaxPending.
	Pending        []sharding.Cursor
	Counters       Counters
	InvalidSamples []InvalidSample
}

// ResumeAt is where reading must start to miss nothing: the first pending
// record, or the cursor.
func (p Progress) ResumeAt() sharding.Cursor {
	if len(p.Pending) > 0 && p.Pending[0].Compare(p.Cursor) < 0 {
		return p.Pending[0]
	}
	return p.Cursor
}

// check reports progress a slot's record cannot hold.
func (p Progress) check() error {
	if len(p.Pending) > MaxPending {
		return fmt.Errorf("%w: %d pending records, more than %d", ErrBadProgress, len(p.Pending), MaxPending)
	}
	for i, c := range p.Pending {
		if c.Compare(p.Cursor) >= 0 || (i > 0 && c.Compare(p.Pending[i-1]) <= 0) {
			return fmt.Errorf("%w: pending record %s not before the cursor %s and ascending", ErrBadProgress, c, p.Cursor)
		}
	}
	return nil
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
	// Slots is how many slots the broadcast's hash space is cut into,
	// fixed by the start; 0 until then.
	Slots int `json:"slots,omitempty"`
}

// progressRecord is the value at P/progress/<id>/<slot>: everything about
// a slot's work so far. No key means nothing done yet: cursor 0, no
// counts. It is written only under the slot's claim (the transaction
// proves the claim first), and for the last time together with the slot's
// done marker.
type progressRecord struct {
	// Cursor is the last checkpoint, in sharding's "seq@offset" text.
	Cursor string `json:"cursor"`
	// Pending are the unfinished records behind the cursor, in the same
	// text, ascending.
	Pending []string `json:"pending,omitempty"`
	Done    bool     `json:"done,omitempty"`
	// Released is set by a hand-back: the owner let go of the slot at an
	// exact cursor. A slot claimed from a record without it (and with an
	// owner) is a take-over from a member that died or lost its lease.
	Released bool `json:"released,omitempty"`
	// Owner is the member that wrote the record, under the claim whose
	// fencing token is Token.
	Owner string `json:"owner,omitempty"`
	Token int64  `json:"token,omitempty"`
	// Credits are the deliveries, among Counters.Delivered, made by earlier
	// owners of the slot; the owner made the rest.
	Credits        map[string]int64 `json:"credits,omitempty"`
	Counters       Counters         `json:"counters"`
	InvalidSamples []InvalidSample  `json:"invalid_samples,omitempty"`
	UpdatedAt      time.Time        `json:"updated_at,omitzero"`
}

// decodeProgress reads a progress value; an empty one is the zero
// progress of a slot nobody has worked on.
func decodeProgress(v []byte) (progressRecord, error) {
	rec := progressRecord{Cursor: "0@0"}
	if len(v) == 0 {
		return rec, nil
	}
	if err := json.Unmarshal(v, &rec); err != nil {
		return rec, fmt.Errorf("coordinator: decode progress: %w", err)
	}
	return rec, nil
}

// cursor returns the record's last checkpoint.
func (r progressRecord) cursor() (sharding.Cursor, error) {
	var c sharding.Cursor
	if err := c.UnmarshalText([]byte(r.Cursor)); err != nil {
		return c, fmt.Errorf("coordinator: decode cursor %q: %w", r.Cursor, err)
	}
	return c, nil
}

// progress returns what the record holds as a Progress.
func (r progressRecord) progress() (Progress, error) {
	c, err := r.cursor()
	if err != nil {
		return Progress{}, err
	}
	p := Progress{Cursor: c, Counters: r.Counters, InvalidSamples: slices.Clone(r.InvalidSamples)}
	for _, t := range r.Pending {
		var pc sharding.Cursor
		if err := pc.UnmarshalText([]byte(t)); err != nil {
			return Progress{}, fmt.Errorf("coordinator: decode pending cursor %q: %w", t, err)
		}
		p.Pending = append(p.Pending, pc)
	}
	return p, nil
}

// withProgress returns r advanced to p, written by owner under the claim
// with fencing token token, at now.
func (r progressRecord) withProgress(p Progress, owner string, token int64, now time.Time) (progressRecord, error) {
	cur, err := p.Cursor.MarshalText()
	if err != nil {
		return r, fmt.Errorf("coordinator: encode cursor: %w", err)
	}
	r.Cursor = string(cur)
	r.Pending = make([]string, 0, len(p.Pending))
	for _, c := range p.Pending {
		r.Pending = append(r.Pending, c.String())
	}
	if r.Owner != "" && r.Owner != owner {
		// The slot changed hands: what it had delivered so far, beyond
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
	r.Owner, r.Token, r.UpdatedAt = owner, token, now
	return r, nil
}

// credited is the sum of the deliveries credited to earlier owners.
func (r progressRecord) credited() int64 {
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
