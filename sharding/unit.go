package sharding

import "github.com/cespare/xxhash/v2"

// Position is a subscriber's place in the hash space.
func Position(subscriberID string) uint64 { return xxhash.Sum64String(subscriberID) }

// Range is the inclusive interval [Lo, Hi] of the hash space; Lo <= Hi.
// Inclusive bounds let one Range cover the whole space, {0, math.MaxUint64}.
type Range struct {
	Lo, Hi uint64
}

// Arcs is a set of hash positions held as ranges sorted by Lo, not
// overlapping and not adjacent (adjacent ranges are merged). The zero value
// is the empty set.
type Arcs []Range

// Cursor is a position in a broadcast's audience stream. Every record before
// it (Seq lower than the cursor's) has been finished by the unit that holds
// it; work resumes at the cursor. Cursors are ordered by Seq.
type Cursor struct {
	// Seq is the index, from 0, of the next record to read.
	Seq uint64
	// Offset is the byte offset of that record in a seekable source, so a
	// resume need not re-read the stream from its start; 0 when the source
	// has no byte offsets (synthetic audiences).
	Offset int64
}

// Unit is a piece of one broadcast's work: the subscribers whose positions
// lie in Arcs, from Cursor on.
type Unit struct {
	// ID is unique within its broadcast. Units made by splitting carry the
	// parent's ID plus a suffix, so every worker that computes the same
	// split names the children alike.
	ID     string
	Arcs   Arcs
	Cursor Cursor
}

// Empty reports whether u holds no position, as a carved child can.
func (u Unit) Empty() bool { return len(u.Arcs) == 0 }
