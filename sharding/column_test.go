package sharding

import (
	"math"
	"testing"
)

// The worked values of column.go's comment, which writers in other
// languages check themselves against.
func TestPositionColumn(t *testing.T) {
	for _, c := range []struct {
		id  string
		pos uint64
		col int64
	}{
		{"", 0xef46db3751d8e999, 8018337217222601113},
		{"user-1", 0xa173746b114c6be8, 2410398228773891048},
		{"a", 0xd24ec4f1a98c6e5b, 5930894301504237147},
	} {
		if got := Position(c.id); got != c.pos {
			t.Errorf("Position(%q) = %#x, want %#x", c.id, got, c.pos)
		}
		if got := PositionColumn(c.id); got != c.col {
			t.Errorf("PositionColumn(%q) = %d, want %d", c.id, got, c.col)
		}
		if got := PositionOfColumn(c.col); got != c.pos {
			t.Errorf("PositionOfColumn(%d) = %#x, want %#x", c.col, got, c.pos)
		}
	}
}

// ColumnOf keeps the order of positions, across the top bit too.
func TestColumnOfOrder(t *testing.T) {
	ps := []uint64{0, 1, 1<<63 - 1, 1 << 63, 1<<63 + 1, math.MaxUint64 - 1, math.MaxUint64}
	for i := 1; i < len(ps); i++ {
		if !(ColumnOf(ps[i-1]) < ColumnOf(ps[i])) {
			t.Errorf("ColumnOf(%#x) = %d not below ColumnOf(%#x) = %d", ps[i-1], ColumnOf(ps[i-1]), ps[i], ColumnOf(ps[i]))
		}
		if PositionOfColumn(ColumnOf(ps[i])) != ps[i] {
			t.Errorf("round trip of %#x", ps[i])
		}
	}
	if ColumnOf(0) != math.MinInt64 || ColumnOf(math.MaxUint64) != math.MaxInt64 {
		t.Errorf("ends: %d %d", ColumnOf(0), ColumnOf(math.MaxUint64))
	}
}
