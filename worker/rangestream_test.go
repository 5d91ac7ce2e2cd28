package worker

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/herald-dev/herald/sharding"
	"github.com/herald-dev/herald/worker/audience"
)

// listSource is a source of records at the given positions, in order, as
// a table read by position range would give them.
type listSource struct {
	pos    []uint64
	failAt uint64 // a range read fails after the record at this position (0: none)
	opened []sharding.Range
}

type listRead struct {
	s   *listSource
	r   sharding.Range
	i   int
	rec audience.Record
	err error
}

func (l *listSource) openRange(_ context.Context, r sharding.Range) rangeReader {
	l.opened = append(l.opened, r)
	return &listRead{s: l, r: r, i: -1}
}

func (lr *listRead) Next() bool {
	for lr.i++; lr.i < len(lr.s.pos); lr.i++ {
		p := lr.s.pos[lr.i]
		if p < lr.r.Lo || p > lr.r.Hi {
			continue
		}
		if lr.i > 0 && lr.s.failAt != 0 && lr.s.pos[lr.i-1] == lr.s.failAt {
			lr.err = errors.New("connection reset")
			return false
		}
		lr.rec = audience.Record{ID: fmt.Appendf(nil, "r%d", lr.i)}
		lr.rec.SetPosition(p)
		return true
	}
	return false
}

func (lr *listRead) Record() *audience.Record { return &lr.rec }
func (lr *listRead) Err() error               { return lr.err }
func (lr *listRead) Close() error             { return nil }

// read returns "id@seq/offset" of every record a stream yields.
func read(s *rangeStream) []string {
	var out []string
	for s.Next() {
		r := s.Record()
		out = append(out, fmt.Sprintf("%s@%d/%d", r.ID, r.Seq, r.Offset))
	}
	return out
}

func TestRangeStream(t *testing.T) {
	// Records at positions 10, 20, 20 (a collision), 30, 45, 60.
	src := &listSource{pos: []uint64{10, 20, 20, 30, 45, 60}}
	ranges := []sharding.Range{{Lo: 0, Hi: 25}, {Lo: 40, Hi: 70}}
	at := func(seq uint64, off int64) sharding.Cursor { return sharding.Cursor{Seq: seq, Offset: off} }

	s := openRangeStream(context.Background(), src, wholeRanges(ranges, sharding.Cursor{}), sharding.Cursor{})
	got := read(s)
	want := []string{"r0@10/0", "r1@20/0", "r2@20/1", "r4@45/0", "r5@60/0"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("read %v, want %v: only the ranges, collisions numbered", got, want)
	}
	if s.Err() != nil || s.Cursor() != rangeEnd {
		t.Fatalf("end: err %v cursor %v", s.Err(), s.Cursor())
	}

	// Resumed between the two records at 20: the second one and on.
	src.opened = nil
	s = openRangeStream(context.Background(), src, wholeRanges(ranges, at(20, 1)), at(20, 1))
	if got := read(s); fmt.Sprint(got) != fmt.Sprint([]string{"r2@20/1", "r4@45/0", "r5@60/0"}) {
		t.Fatalf("resumed at 20/1: %v", got)
	}
	if fmt.Sprint(src.opened) != fmt.Sprint([]sharding.Range{{Lo: 20, Hi: 25}, {Lo: 40, Hi: 70}}) {
		t.Fatalf("opened %v: a resumed read starts at the cursor's position", src.opened)
	}

	// Resumed past the first range: it is not opened at all.
	src.opened = nil
	s = openRangeStream(context.Background(), src, wholeRanges(ranges, at(41, 0)), at(41, 0))
	if got := read(s); fmt.Sprint(got) != fmt.Sprint([]string{"r4@45/0", "r5@60/0"}) || len(src.opened) != 1 {
		t.Fatalf("resumed at 41: %v, opened %v", got, src.opened)
	}

	// A cursor after each record resumes at the next one.
	s = openRangeStream(context.Background(), src, wholeRanges(ranges, sharding.Cursor{}), sharding.Cursor{})
	for s.Next() {
		c := s.Cursor()
		rest := read(openRangeStream(context.Background(), src, wholeRanges(ranges, c), c))
		all := read(openRangeStream(context.Background(), src, wholeRanges(ranges, sharding.Cursor{}), sharding.Cursor{}))
		i := 0
		for i < len(all) && all[i] != fmt.Sprintf("%s@%d/%d", s.Record().ID, s.Record().Seq, s.Record().Offset) {
			i++
		}
		if fmt.Sprint(rest) != fmt.Sprint(all[i+1:]) {
			t.Fatalf("after %s (cursor %v): %v, want %v", all[i], c, rest, all[i+1:])
		}
	}

	// A failing read ends the stream with its error, at the last record.
	src.failAt = 20
	s = openRangeStream(context.Background(), src, wholeRanges(ranges, sharding.Cursor{}), sharding.Cursor{})
	got = read(s)
	if s.Err() == nil || fmt.Sprint(got) != fmt.Sprint([]string{"r0@10/0", "r1@20/0"}) || s.Cursor() != at(20, 1) {
		t.Fatalf("failing read: %v, err %v, cursor %v", got, s.Err(), s.Cursor())
	}
}

// Each range of a plan is read from its own cursor: a slot that needs
// reading again from behind costs its own records only, and the others
// go on where they were.
func TestRangeStreamPlan(t *testing.T) {
	src := &listSource{pos: []uint64{10, 20, 20, 30, 45, 60}}
	at := func(seq uint64, off int64) sharding.Cursor { return sharding.Cursor{Seq: seq, Offset: off} }
	plan := []rangeFrom{
		{r: sharding.Range{Lo: 0, Hi: 25}, from: at(20, 1)},  // a late slot, from its cursor
		{r: sharding.Range{Lo: 26, Hi: 50}, from: at(45, 0)}, // passed up to 45
		{r: sharding.Range{Lo: 51, Hi: 70}, from: at(45, 0)}, // not reached yet: whole
	}
	s := openRangeStream(context.Background(), src, plan, at(20, 1))
	if got := read(s); fmt.Sprint(got) != fmt.Sprint([]string{"r2@20/1", "r4@45/0", "r5@60/0"}) {
		t.Fatalf("read %v", got)
	}
	if fmt.Sprint(src.opened) != fmt.Sprint([]sharding.Range{{Lo: 20, Hi: 25}, {Lo: 45, Hi: 50}, {Lo: 51, Hi: 70}}) {
		t.Fatalf("opened %v", src.opened)
	}
}

// rangePlan reads each active slot from where it needs it, merging a slot
// needed whole into the range before it.
func TestRangePlan(t *testing.T) {
	const n = 4
	r := func(s int) sharding.Range { return sharding.SlotRange(s, n) }
	mid := sharding.Cursor{Seq: r(1).Lo + 100, Offset: 2}
	got := rangePlan([]slotNeed{
		{slot: 0, from: sharding.Cursor{}},
		{slot: 1, from: mid},                               // partly read: not merged
		{slot: 2, from: sharding.Cursor{Seq: r(1).Lo + 7}}, // before its range: whole, merged
		// slot 3 not held
	}, n)
	want := []rangeFrom{
		{r: r(0), from: sharding.Cursor{}},
		{r: sharding.Range{Lo: r(1).Lo, Hi: r(2).Hi}, from: mid},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("plan %v, want %v", got, want)
	}
	// A slot passed already (from beyond it) takes nothing after it in:
	// the slot after it, needed whole, keeps its own start.
	beyond := sharding.Cursor{Seq: r(3).Lo + 5}
	got = rangePlan([]slotNeed{{slot: 0, from: beyond}, {slot: 1, from: sharding.Cursor{Seq: 3}}}, n)
	want = []rangeFrom{{r: r(0), from: beyond}, {r: r(1), from: sharding.Cursor{Seq: 3}}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("plan %v, want %v", got, want)
	}
}

// wholeRanges is ranges, each read from from on: one cursor for all.
func wholeRanges(ranges []sharding.Range, from sharding.Cursor) []rangeFrom {
	out := make([]rangeFrom, len(ranges))
	for i, r := range ranges {
		out[i] = rangeFrom{r: r, from: from}
	}
	return out
}
