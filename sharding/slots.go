package sharding

import (
	"math"
	"math/bits"

	"github.com/cespare/xxhash/v2"
)

// Position is a subscriber's place in the hash space.
func Position(subscriberID string) uint64 { return xxhash.Sum64String(subscriberID) }

// Range is the inclusive interval [Lo, Hi] of the hash space; Lo <= Hi.
// Inclusive bounds let one Range cover the whole space, {0, math.MaxUint64}.
type Range struct {
	Lo, Hi uint64
}

// A broadcast's hash space is cut, when it starts, into a fixed number n of
// slots: slot s holds the positions p with hi64(p × n) == s, that is n equal
// contiguous ranges in ascending order. A slot is the unit of work: it is
// never split, carved or merged, so a broadcast has exactly n units for
// its whole life, however the fleet changes, and a slot's number is all it
// takes to name one.

// Slot count bounds, and how many slots a broadcast gets per member.
const (
	// SlotsPerMember is how many slots a broadcast starts with per live
	// member: enough that every member holds several, so a dead member's
	// remainder spreads over the survivors one slot at a time and a
	// joiner's share comes one slot from each of a few members.
	SlotsPerMember = 8
	// MinSlots and MaxSlots bound a broadcast's slot count. MaxSlots keeps
	// a member's view (one entry per slot) and a status read small; a
	// fleet of 1,024 members or more gets 8,192 slots, 8 per member or a
	// little less.
	MinSlots = 8
	MaxSlots = 8192
)

// SlotCount is the number of slots a broadcast started by a fleet of
// members live members gets: SlotsPerMember per member, within
// [MinSlots, MaxSlots]. It is a multiple of the fleet size below the cap,
// so a fleet of equal capacities starts with exactly equal shares.
func SlotCount(members int) int {
	return min(max(SlotsPerMember*members, MinSlots), MaxSlots)
}

// SlotOf is the slot, of n, that holds position pos: the high 64 bits of
// pos × n. It panics if n < 1.
func SlotOf(pos uint64, n int) int {
	if n < 1 {
		panic("sharding: SlotOf with no slots")
	}
	hi, _ := bits.Mul64(pos, uint64(n))
	return int(hi)
}

// SlotRange is the range of positions slot s of n holds. The n ranges are
// contiguous, ascending, and together cover the whole space; each holds
// floor or ceil of 2^64 / n positions.
func SlotRange(s, n int) Range {
	if n < 1 || s < 0 || s >= n {
		panic("sharding: SlotRange out of range")
	}
	hi := uint64(math.MaxUint64)
	if s+1 < n {
		hi = slotStart(s+1, n) - 1
	}
	return Range{Lo: slotStart(s, n), Hi: hi}
}

// slotStart is the least p with hi64(p × n) >= s: ceil(s × 2^64 / n).
func slotStart(s, n int) uint64 {
	q, r := bits.Div64(uint64(s), 0, uint64(n))
	if r != 0 {
		q++
	}
	return q
}
