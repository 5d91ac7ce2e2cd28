package sharding

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

func FuzzUnitDecode(f *testing.F) {
	seeds := []Unit{
		{},
		{ID: "u0", Arcs: Full()},
		{ID: "u1.2", Arcs: Arcs{{5, 9}, {20, 20}, {top - 1, top}}, Cursor: Cursor{Seq: 3, Offset: 7}},
		{ID: "c", Cursor: Cursor{Seq: math.MaxUint64, Offset: math.MaxInt64}},
	}
	for _, u := range seeds {
		b, err := u.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0x80, 0x00, 0, 0, 0})
	f.Add([]byte{1, 0, 0, 0, 2, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var u Unit
		if err := u.UnmarshalBinary(data); err != nil {
			if !errors.Is(err, ErrBadEncoding) {
				t.Fatalf("error %v does not wrap ErrBadEncoding", err)
			}
			return
		}
		if err := u.Validate(); err != nil {
			t.Fatalf("decoded an invalid unit: %v", err)
		}
		// The encoding is canonical: what decodes re-encodes to the same
		// bytes, and back to the same unit.
		again, err := u.MarshalBinary()
		if err != nil || !bytes.Equal(again, data) {
			t.Fatalf("re-encoding gives %x, %v; want %x", again, err, data)
		}
		text, err := u.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Unit
		if err := back.UnmarshalText(text); err != nil || !unitsEqual(back, u) {
			t.Fatalf("text round trip = %+v, %v; want %+v", back, err, u)
		}
	})
}
