package worker

import (
	"context"
	"math"

	"github.com/herald-dev/herald/sharding"
	"github.com/herald-dev/herald/worker/audience"
)

// Sources read by position range (postgres, prepared) give a worker only
// the records of the slots it holds. The broadcast's reader still reads
// one stream for all its slots, in position order: the ranges of the
// slots it holds, one after the other. A record's Seq in that stream is
// its position and its Offset its place among the records of the same
// position (a hash collision: almost always 0), so cursors order records
// exactly (tracker.byOffset) and a slot resumes at a cursor without any
// key of the source's own.

// rangeReader is one range's read of a source.
type rangeReader interface {
	Next() bool
	Record() *audience.Record
	Err() error
	Close() error
}

// rangeSource opens range reads of one audience (inclusive ranges).
type rangeSource interface {
	openRange(ctx context.Context, r sharding.Range) rangeReader
}

// rangeEnd is the cursor past every record of a range stream.
var rangeEnd = sharding.Cursor{Seq: math.MaxUint64, Offset: math.MaxInt64}

// rangeFrom is one range of a stream and the cursor its reading starts
// at: the range's first record when from is before it, or from.
type rangeFrom struct {
	r    sharding.Range
	from sharding.Cursor
}

// rangeStream reads ranges (sorted, disjoint), each from its own cursor
// on, as one stream of records in position order. It has the methods of
// audience.Stream the reader uses.
type rangeStream struct {
	ctx    context.Context
	src    rangeSource
	ranges []rangeFrom

	i       int         // the range being read
	cur     rangeReader // its read, nil between ranges
	last    uint64      // the position of the last record read
	tie     int64       // its place among the records of that position
	started bool
	at      sharding.Cursor // right after the last record returned
	err     error
	done    bool
}

// openRangeStream starts reading ranges; Cursor is at until the first
// record.
func openRangeStream(ctx context.Context, src rangeSource, ranges []rangeFrom, at sharding.Cursor) *rangeStream {
	return &rangeStream{ctx: ctx, src: src, ranges: ranges, at: at}
}

// Next advances to the next record and reports whether there is one.
func (s *rangeStream) Next() bool {
	for !s.done {
		if s.cur == nil {
			if s.i == len(s.ranges) {
				s.done, s.at = true, rangeEnd
				return false
			}
			rf := s.ranges[s.i]
			if rf.r.Hi < rf.from.Seq {
				s.i++
				continue
			}
			r := rf.r
			r.Lo = max(r.Lo, rf.from.Seq)
			s.cur = s.src.openRange(s.ctx, r)
		}
		if !s.cur.Next() {
			s.err = s.cur.Err()
			if cerr := s.cur.Close(); s.err == nil {
				s.err = cerr
			}
			s.cur = nil
			if s.err != nil {
				s.done = true
				return false
			}
			s.i++
			continue
		}
		rec := s.cur.Record()
		p := rec.Position()
		if s.started && p == s.last {
			s.tie++
		} else {
			s.last, s.tie, s.started = p, 0, true
		}
		if from := s.ranges[s.i].from; p == from.Seq && s.tie < from.Offset {
			continue // finished before the cursor: a record of the same position
		}
		rec.Seq, rec.Offset = p, s.tie
		s.at = sharding.Cursor{Seq: p, Offset: s.tie + 1}
		return true
	}
	return false
}

// Record is the current record, valid until the next call of Next.
func (s *rangeStream) Record() *audience.Record { return s.cur.Record() }

// Cursor is the place right after the last record Next returned (from
// before the first), rangeEnd once Next has reported a clean end.
func (s *rangeStream) Cursor() sharding.Cursor { return s.at }

// Err is the error that ended the stream, nil at a clean end.
func (s *rangeStream) Err() error { return s.err }

// Close ends the read of the current range.
func (s *rangeStream) Close() error {
	s.done = true
	if s.cur == nil {
		return nil
	}
	err := s.cur.Close()
	s.cur = nil
	return err
}
