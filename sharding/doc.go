// Package sharding decides who owns which subscribers of a broadcast.
//
// A subscriber's place is the xxhash of its id, a point in the 64-bit hash
// space. When a broadcast starts, its space is cut into a fixed number of
// slots (SlotCount): slot s of n holds the positions p with
// hi64(p × n) == s, n equal contiguous ranges. A slot is the unit of work:
// it is never split or merged, so a broadcast has n units for its whole
// life. Assign says which member should hold each open slot: every member
// computes it from the same view and gets the same answer, without a
// leader; quotas follow capacities within one slot, and a join or a death
// moves the fewest slots it can.
//
// What it provides:
//
//   - Position, SlotCount, SlotOf and SlotRange: where a subscriber is and
//     which slot holds it;
//   - ColumnOf and PositionColumn: a position as an order-preserving
//     signed 64-bit value, for the bigint column of a SQL audience;
//   - Assign and AssignIndexed: the target holder of every open slot,
//     sticky and proportional to capacity;
//   - Cursor, a position in the audience stream, with its canonical text
//     form, which checkpoints store.
//
// What it does not: store claims, watch membership, or read the audience.
// The package is pure: no I/O, no clocks, no goroutines. Storing claims and
// progress is the coordinator's job; streaming the audience is the
// worker's.
package sharding
