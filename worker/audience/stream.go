package audience

import (
	"errors"
	"fmt"

	"github.com/herald-dev/herald/sharding"
)

// ErrRangeSource is returned by Open for the sources a worker reads by
// the position ranges of its slots, not as one stream.
var ErrRangeSource = errors.New("audience: a range source")

// source is one kind of audience. next fills r with the next record and
// reports false at the end; after is the cursor following r; end is the
// cursor once next has reported the end.
type source interface {
	next(r *Record) (bool, error)
	after(r *Record) sharding.Cursor
	end() sharding.Cursor
	close() error
}

// Stream yields an audience's records in order from a cursor on. It is not
// safe for concurrent use; a worker opens one per broadcast, for all the
// slots it holds.
//
//	s, err := audience.Open(spec, from, audience.Limits{})
//	...
//	defer s.Close()
//	for s.Next() {
//		r := s.Record()
//		if !held[sharding.SlotOf(r.Position(), slots)] { continue }
//		...
//	}
//	if err := s.Err(); err != nil { ... }
type Stream struct {
	src  source
	rec  Record
	cur  sharding.Cursor
	err  error
	done bool
}

// Open starts streaming spec's audience at from (the zero Cursor is the
// start). It fails if the spec is invalid, a file cannot be opened (the
// error names the path), or from cannot be a position in the stream
// (ErrCursor).
func Open(spec Spec, from sharding.Cursor, lim Limits) (*Stream, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	var (
		src source
		err error
	)
	switch spec.Source {
	case SourceFile:
		src, err = openFile(spec.Path, from, lim)
	case SourceSynthetic:
		src, err = openSynthetic(spec, from)
	case SourcePostgres, SourcePrepared:
		return nil, fmt.Errorf("%w: source %s is read by position range (packages postgres and prepared), not as one stream", ErrRangeSource, spec.Source)
	}
	if err != nil {
		return nil, err
	}
	return &Stream{src: src, cur: from}, nil
}

// Next advances to the next record and reports whether there is one. It
// returns false at the end of the audience or on a read error (see Err).
// Invalid records are returned too, with Record().Invalid set, so the slot
// that owns them can count them.
func (s *Stream) Next() bool {
	if s.done {
		return false
	}
	ok, err := s.src.next(&s.rec)
	switch {
	case err != nil:
		s.err, s.done = err, true
	case !ok:
		s.cur, s.done = s.src.end(), true
	default:
		s.cur = s.src.after(&s.rec)
	}
	return ok && err == nil
}

// Record is the current record, valid until the next call of Next.
func (s *Stream) Record() *Record { return &s.rec }

// Err is the read error that ended the stream, nil at a clean end.
func (s *Stream) Err() error { return s.err }

// Cursor is the position right after the last record Next returned (the
// cursor passed to Open before the first), so a slot that has finished
// that record can checkpoint it. Once Next has reported a clean end it is
// the end of the stream, past any trailing blank lines.
func (s *Stream) Cursor() sharding.Cursor { return s.cur }

// Close releases the stream's file. It is safe to call more than once.
func (s *Stream) Close() error {
	if s.src == nil {
		return nil
	}
	err := s.src.close()
	s.src, s.done = nil, true
	return err
}
