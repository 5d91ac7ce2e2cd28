package sharding

// Positions are unsigned 64-bit numbers; SQL databases have signed 64-bit
// integers only (bigint). A table that carries positions for range reads
// stores them shifted by 2^63 — the top bit flipped, read as signed — so
// that the order of the column is the order of positions: position 0 is
// the least bigint, -2^63, and math.MaxUint64 the greatest, 2^63-1. A
// position range [lo, hi] is then the column range
// [ColumnOf(lo), ColumnOf(hi)], which one B-tree index scan reads.
//
// Writers outside Go compute the same value: the xxHash64 (XXH64) of the
// id's UTF-8 bytes with seed 0, as an unsigned 64-bit number, with its top
// bit flipped (x XOR 0x8000000000000000), stored as a two's-complement
// signed 64-bit integer. For example the id "user-1" has position
// 0xa173746b114c6be8 and column value 2410398228773891048; the empty
// string, XXH64's published test value 0xef46db3751d8e999, has column
// value 8018337217222601113.

const flip = 1 << 63

// ColumnOf is position p as stored in a bigint column: p with its top bit
// flipped, as int64. It preserves order: p < q exactly when
// ColumnOf(p) < ColumnOf(q).
func ColumnOf(p uint64) int64 { return int64(p ^ flip) }

// PositionOfColumn is the inverse of ColumnOf.
func PositionOfColumn(c int64) uint64 { return uint64(c) ^ flip }

// PositionColumn is the value a subscriber's row carries in its position
// column: ColumnOf(Position(subscriberID)). Go programs that insert
// subscribers call it to fill the column.
func PositionColumn(subscriberID string) int64 { return ColumnOf(Position(subscriberID)) }
