package sharding

// Arcs is a set of hash positions held as ranges sorted by Lo, not
// overlapping and not adjacent (adjacent ranges are merged). The zero value
// is the empty set.
type Arcs []Range

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
