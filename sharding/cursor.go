package sharding

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Cursor is a position in a broadcast's audience stream. Every record before
// it has been finished by the unit that holds it; work resumes at the
// cursor. Cursors are ordered by Seq, then Offset (Compare).
//
// In a stream read from its start (file, synthetic) Seq is the record's
// index and Offset its byte offset, if any. In a stream read by position
// range (postgres, prepared) Seq is the record's hash position and Offset
// its place among the records of that position (almost always 0), so the
// cursor of one slot means the same place in any worker's stream.
type Cursor struct {
	// Seq is the index, from 0, of the next record to read, or its
	// position in a stream read by position range.
	Seq uint64
	// Offset is the byte offset of that record in a seekable source, so a
	// resume need not re-read the stream from its start; 0 when the source
	// has no byte offsets (synthetic audiences). In a stream read by
	// position range, the record's place among those of its position.
	Offset int64
}

// Compare orders c and d by Seq, then Offset: -1, 0 or +1. Within one
// stream a greater Seq is always a later record; the Offset only tells
// records apart at one Seq in a stream read by position range.
func (c Cursor) Compare(d Cursor) int {
	switch {
	case c.Seq < d.Seq:
		return -1
	case c.Seq > d.Seq:
		return 1
	case c.Offset < d.Offset:
		return -1
	case c.Offset > d.Offset:
		return 1
	}
	return 0
}

// A cursor is stored in etcd as text, in each slot's checkpoint, so its
// text form is part of Herald's stored state. It is canonical: a cursor has
// exactly one text, and parsing refuses every other, so equal cursors have
// equal text.

// Cursor text errors.
var (
	// ErrBadEncoding is returned, wrapped with what was wrong, for text
	// that is not the form Cursor.MarshalText writes.
	ErrBadEncoding = errors.New("sharding: bad encoding")
	// ErrInvalidUnit is returned for a Cursor that cannot be encoded
	// because it breaks a rule that parsing enforces: a negative Offset.
	// Its name is the earlier model's, when units had an encoding too.
	ErrInvalidUnit = errors.New("sharding: invalid unit")
)

// MarshalText returns c as seq@offset in decimal, e.g. "1234@56789".
func (c Cursor) MarshalText() ([]byte, error) {
	if c.Offset < 0 {
		return nil, fmt.Errorf("%w: cursor: negative offset %d", ErrInvalidUnit, c.Offset)
	}
	return c.appendText(nil), nil
}

// String returns the cursor as seq@offset, the form MarshalText writes.
func (c Cursor) String() string { return string(c.appendText(nil)) }

func (c Cursor) appendText(b []byte) []byte {
	b = strconv.AppendUint(b, c.Seq, 10)
	b = append(b, '@')
	return strconv.AppendInt(b, c.Offset, 10)
}

// UnmarshalText sets c from seq@offset. Only the form MarshalText writes is
// accepted: no signs, spaces or leading zeros. On error c is unchanged.
func (c *Cursor) UnmarshalText(text []byte) error {
	s := string(text)
	seqText, offText, found := strings.Cut(s, "@")
	if !found {
		return fmt.Errorf("%w: cursor %q: want seq@offset", ErrBadEncoding, s)
	}
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: cursor %q: seq: %w", ErrBadEncoding, s, err)
	}
	off, err := strconv.ParseInt(offText, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: cursor %q: offset: %w", ErrBadEncoding, s, err)
	}
	if off < 0 {
		return fmt.Errorf("%w: cursor %q: negative offset", ErrBadEncoding, s)
	}
	parsed := Cursor{Seq: seq, Offset: off}
	// ParseUint and ParseInt accept leading zeros and a plus sign; one
	// cursor must have one text, so anything but the canonical form is
	// refused.
	if string(parsed.appendText(nil)) != s {
		return fmt.Errorf("%w: cursor %q: not in canonical form", ErrBadEncoding, s)
	}
	*c = parsed
	return nil
}
