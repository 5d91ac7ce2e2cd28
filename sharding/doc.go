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
// The package is pure: no I/O, no clocks, no goroutines. Storing units is
// the coordinator's job; streaming the audience is the worker's.
package sharding
