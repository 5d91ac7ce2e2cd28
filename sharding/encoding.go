package sharding

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// Units and cursors are stored in etcd, so their encodings are part of
// Herald's stored state: version 1 below must keep decoding as long as such
// state may exist. A new layout takes a new version byte.
//
// Unit, version 1, all integers unsigned varints in their shortest form:
//
//	0x01                  version
//	len(ID), ID bytes     at most MaxUnitIDLen bytes
//	Cursor.Seq
//	Cursor.Offset         at most MaxInt64
//	number of ranges      at most MaxUnitRanges
//	per range: gap, Hi-Lo
//
// where gap is Lo for the first range and Lo-(previous Hi)-2 for the others:
// ranges of normalized Arcs are sorted and never touch, so every gap is
// non-negative and any sequence of gaps decodes to normalized Arcs. Deltas
// keep a ring member's thousands of ranges at a few bytes each.
//
// The encoding is canonical: a unit has exactly one, and decoding rejects
// anything else (overlong varints, trailing bytes), so equal units have equal
// bytes and an etcd compare on them is meaningful.

const unitVersion1 = 1

// Limits on a unit, so that decoding garbage cannot make Herald allocate
// without bound.
const (
	MaxUnitIDLen  = 1024
	MaxUnitRanges = 1 << 20
)

// Validate checks what encoding requires of u: an ID of at most
// MaxUnitIDLen bytes, normalized Arcs of at most MaxUnitRanges ranges, and a
// Cursor with a non-negative Offset.
func (u Unit) Validate() error {
	switch {
	case len(u.ID) > MaxUnitIDLen:
		return fmt.Errorf("%w: id of %d bytes, over %d", ErrInvalidUnit, len(u.ID), MaxUnitIDLen)
	case len(u.Arcs) > MaxUnitRanges:
		return fmt.Errorf("%w: %q: %d ranges, over %d", ErrInvalidUnit, u.ID, len(u.Arcs), MaxUnitRanges)
	case !u.Arcs.IsNormalized():
		return fmt.Errorf("%w: %q: arcs not normalized", ErrInvalidUnit, u.ID)
	case u.Cursor.Offset < 0:
		return fmt.Errorf("%w: %q: negative cursor offset %d", ErrInvalidUnit, u.ID, u.Cursor.Offset)
	}
	return nil
}

// AppendBinary appends the binary encoding of u to b.
func (u Unit) AppendBinary(b []byte) ([]byte, error) {
	if err := u.Validate(); err != nil {
		return b, fmt.Errorf("sharding: encode unit: %w", err)
	}
	b = append(b, unitVersion1)
	b = binary.AppendUvarint(b, uint64(len(u.ID)))
	b = append(b, u.ID...)
	b = binary.AppendUvarint(b, u.Cursor.Seq)
	b = binary.AppendUvarint(b, uint64(u.Cursor.Offset))
	b = binary.AppendUvarint(b, uint64(len(u.Arcs)))
	for i, r := range u.Arcs {
		gap := r.Lo
		if i > 0 {
			gap = r.Lo - u.Arcs[i-1].Hi - 2
		}
		b = binary.AppendUvarint(b, gap)
		b = binary.AppendUvarint(b, r.Hi-r.Lo)
	}
	return b, nil
}

// MarshalBinary returns the binary encoding of u.
func (u Unit) MarshalBinary() ([]byte, error) {
	return u.AppendBinary(make([]byte, 0, 16+len(u.ID)+8*len(u.Arcs)))
}

// UnmarshalBinary sets u from its binary encoding. On error u is unchanged.
func (u *Unit) UnmarshalBinary(data []byte) error {
	d := decoder{b: data}
	if v := d.byte(); d.err == nil && v != unitVersion1 {
		return fmt.Errorf("%w: unit: unknown version %d", ErrBadEncoding, v)
	}
	idLen := d.uvarint("id length")
	if d.err == nil && (idLen > MaxUnitIDLen || idLen > uint64(len(d.b))) {
		return fmt.Errorf("%w: unit: id length %d over limit or input", ErrBadEncoding, idLen)
	}
	id := d.bytes(int(idLen))
	var c Cursor
	c.Seq = d.uvarint("cursor seq")
	off := d.uvarint("cursor offset")
	if d.err == nil && off > math.MaxInt64 {
		return fmt.Errorf("%w: unit: cursor offset %d over MaxInt64", ErrBadEncoding, off)
	}
	c.Offset = int64(off)
	n := d.uvarint("range count")
	// Each range takes at least two bytes, so a count beyond half of what is
	// left is a lie, and refusing it before allocating keeps garbage cheap.
	if d.err == nil && (n > MaxUnitRanges || n > uint64(len(d.b))/2) {
		return fmt.Errorf("%w: unit: range count %d over limit or input", ErrBadEncoding, n)
	}
	var arcs Arcs
	if d.err == nil && n > 0 {
		arcs = make(Arcs, 0, n)
	}
	for i := uint64(0); d.err == nil && i < n; i++ {
		gap, width := d.uvarint("range gap"), d.uvarint("range width")
		if d.err != nil {
			break
		}
		lo := gap
		if i > 0 {
			prev := arcs[i-1].Hi
			if prev >= math.MaxUint64-1 || gap > math.MaxUint64-prev-2 {
				return fmt.Errorf("%w: unit: range %d starts past the top of the space", ErrBadEncoding, i)
			}
			lo = prev + 2 + gap
		}
		if width > math.MaxUint64-lo {
			return fmt.Errorf("%w: unit: range %d ends past the top of the space", ErrBadEncoding, i)
		}
		arcs = append(arcs, Range{Lo: lo, Hi: lo + width})
	}
	if d.err != nil {
		return fmt.Errorf("%w: unit: %w", ErrBadEncoding, d.err)
	}
	if len(d.b) > 0 {
		return fmt.Errorf("%w: unit: %d trailing bytes", ErrBadEncoding, len(d.b))
	}
	*u = Unit{ID: string(id), Arcs: arcs, Cursor: c}
	return nil
}

// MarshalText returns the binary encoding of u in unpadded base64url, so a
// unit embeds in JSON and etcd values as a string.
func (u Unit) MarshalText() ([]byte, error) {
	bin, err := u.MarshalBinary()
	if err != nil {
		return nil, err
	}
	enc := unitText()
	out := make([]byte, enc.EncodedLen(len(bin)))
	enc.Encode(out, bin)
	return out, nil
}

// UnmarshalText sets u from the form MarshalText writes. On error u is
// unchanged.
func (u *Unit) UnmarshalText(text []byte) error {
	enc := unitText()
	bin := make([]byte, enc.DecodedLen(len(text)))
	n, err := enc.Decode(bin, text)
	if err != nil {
		return fmt.Errorf("%w: unit text: %w", ErrBadEncoding, err)
	}
	return u.UnmarshalBinary(bin[:n])
}

// unitText is the text form's alphabet. It is strict so that, like the
// binary form, the text form of a unit is unique.
func unitText() *base64.Encoding { return base64.RawURLEncoding.Strict() }

// decoder reads the fields of a binary unit, remembering the first error so
// the caller can check once after a run of reads.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = errors.New("empty input")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	switch {
	case n == 0:
		d.err = fmt.Errorf("%s: truncated", what)
		return 0
	case n < 0:
		d.err = fmt.Errorf("%s: overflows 64 bits", what)
		return 0
	case n != uvarintLen(v):
		d.err = fmt.Errorf("%s: not in shortest form", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.err = fmt.Errorf("%d bytes wanted, %d left", n, len(d.b))
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// uvarintLen is the length of v's shortest unsigned varint.
func uvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }
