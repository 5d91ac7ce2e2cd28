// Package sharding decides who owns which subscribers of a broadcast.
//
// A subscriber's place is the xxhash of its id, a point in the 64-bit hash
// space. A consistent-hash Ring of fleet members divides that space into
// arcs; a Unit is a set of arcs of one broadcast plus a Cursor, the position
// in the audience stream from which its remaining work resumes. Splitting a
// unit's remainder among k survivors yields k units that cover exactly the
// same arcs, and Pick tells each survivor which one is its own without a
// leader.
//
// What it provides:
//
//   - Arcs, exact set algebra on inclusive ranges of the hash space (Union,
//     Intersect, Subtract, Contains, an exact Size);
//   - Ring, immutable and weighted, with VNodesPerWeight virtual nodes per
//     unit of weight, and Owner lookups that do not allocate;
//   - Unit.Split, Unit.Carve and Pick, the ways work changes hands, each
//     covering its parent exactly;
//   - InitialPlan and JoinMoves, what a fleet starts with and what a joiner
//     takes;
//   - a canonical, versioned binary encoding of units (and text forms of
//     units and cursors) for storing them in etcd.
//
// What it does not: store units, watch membership, or read the audience.
// The package is pure: no I/O, no clocks, no goroutines. Storing units is
// the coordinator's job; streaming the audience is the worker's.
package sharding
