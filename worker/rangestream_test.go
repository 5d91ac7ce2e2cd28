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

	s := openRangeStream(context.Background(), src, ranges, sharding.Cursor{})
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
	s = openRangeStream(context.Background(), src, ranges, at(20, 1))
	if got := read(s); fmt.Sprint(got) != fmt.Sprint([]string{"r2@20/1", "r4@45/0", "r5@60/0"}) {
		t.Fatalf("resumed at 20/1: %v", got)
	}
	if fmt.Sprint(src.opened) != fmt.Sprint([]sharding.Range{{Lo: 20, Hi: 25}, {Lo: 40, Hi: 70}}) {
		t.Fatalf("opened %v: a resumed read starts at the cursor's position", src.opened)
	}

	// Resumed past the first range: it is not opened at all.
	src.opened = nil
	s = openRangeStream(context.Background(), src, ranges, at(41, 0))
	if got := read(s); fmt.Sprint(got) != fmt.Sprint([]string{"r4@45/0", "r5@60/0"}) || len(src.opened) != 1 {
		t.Fatalf("resumed at 41: %v, opened %v", got, src.opened)
	}

	// A cursor after each record resumes at the next one.
	s = openRangeStream(context.Background(), src, ranges, sharding.Cursor{})
	for s.Next() {
		c := s.Cursor()
		rest := read(openRangeStream(context.Background(), src, ranges, c))
		all := read(openRangeStream(context.Background(), src, ranges, sharding.Cursor{}))
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
	s = openRangeStream(context.Background(), src, ranges, sharding.Cursor{})
	got = read(s)
	if s.Err() == nil || fmt.Sprint(got) != fmt.Sprint([]string{"r0@10/0", "r1@20/0"}) || s.Cursor() != at(20, 1) {
		t.Fatalf("failing read: %v, err %v, cursor %v", got, s.Err(), s.Cursor())
	}
}
