package sharding

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

// TestUnitEncodingGolden pins version 1 byte for byte: units stored in etcd
// by one release must decode in the next.
func TestUnitEncodingGolden(t *testing.T) {
	u := Unit{ID: "u1", Arcs: Arcs{{5, 9}, {20, 20}}, Cursor: Cursor{Seq: 3, Offset: 7}}
	want := []byte{
		1,           // version
		2, 'u', '1', // id
		3, 7, // cursor
		2,    // ranges
		5, 4, // [5, 9]: gap from 0, width
		9, 0, // [20, 20]: gap 20-9-2, width
	}
	got, err := u.MarshalBinary()
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("MarshalBinary = %v, %v; want %v", got, err, want)
	}
	text, err := u.MarshalText()
	if err != nil || string(text) != "AQJ1MQMHAgUECQA" {
		t.Fatalf("MarshalText = %q, %v", text, err)
	}
	var back Unit
	if err := back.UnmarshalText(text); err != nil || !unitsEqual(back, u) {
		t.Fatalf("UnmarshalText = %+v, %v", back, err)
	}
}

func unitsEqual(a, b Unit) bool {
	return a.ID == b.ID && a.Cursor == b.Cursor && a.Arcs.Equal(b.Arcs)
}

func TestUnitRoundTrip(t *testing.T) {
	ring := mustRing(t, memberList(workerIDs(20)...))
	tests := []struct {
		name string
		unit Unit
	}{
		{"zero", Unit{}},
		{"full", Unit{ID: "u0", Arcs: Full()}},
		{"edges", Unit{ID: "u0.1", Arcs: Arcs{{0, 0}, {2, 2}, {top, top}}}},
		{"last two apart", Unit{ID: "x", Arcs: Arcs{{top - 2, top - 2}, {top, top}}}},
		{"largest cursor", Unit{ID: "c", Cursor: Cursor{Seq: math.MaxUint64, Offset: math.MaxInt64}}},
		{"longest id", Unit{ID: strings.Repeat("z", MaxUnitIDLen), Arcs: Arcs{{1, 1}}}},
		{"ring member", Unit{ID: "u3.0.2", Arcs: ring.Arcs("worker-3"), Cursor: Cursor{Seq: 1e9, Offset: 1 << 40}}},
		{"unicode id", Unit{ID: "单元-1", Arcs: Arcs{{10, 20}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin, err := tt.unit.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var u Unit
			if err := u.UnmarshalBinary(bin); err != nil || !unitsEqual(u, tt.unit) {
				t.Fatalf("UnmarshalBinary = %+v, %v", u, err)
			}
			text, err := tt.unit.MarshalText()
			if err != nil {
				t.Fatal(err)
			}
			u = Unit{}
			if err := u.UnmarshalText(text); err != nil || !unitsEqual(u, tt.unit) {
				t.Fatalf("UnmarshalText = %+v, %v", u, err)
			}
			appended, err := tt.unit.AppendBinary([]byte("prefix"))
			if err != nil || !bytes.Equal(appended, append([]byte("prefix"), bin...)) {
				t.Fatalf("AppendBinary = %q, %v", appended, err)
			}
		})
	}
	bin, _ := Unit{ID: "u3", Arcs: ring.Arcs("worker-3")}.MarshalBinary()
	t.Logf("a member's unit in a 20-member ring: %d ranges in %d bytes", len(ring.Arcs("worker-3")), len(bin))
}

func TestUnitDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"unknown version", []byte{2, 0, 0, 0, 0}},
		{"version only", []byte{1}},
		{"truncated id", []byte{1, 5, 'a', 'b'}},
		{"id too long", append([]byte{1, 0x81, 0x08}, make([]byte, 1025+4)...)},
		{"overlong varint", []byte{1, 0x80, 0x00, 0, 0, 0}},
		{"varint over 64 bits", []byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0}},
		{"offset over MaxInt64", []byte{1, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0}},
		{"range count over input", []byte{1, 0, 0, 0, 3, 1, 1}},
		{"range count over limit", append([]byte{1, 0, 0, 0, 0x81, 0x80, 0x40}, make([]byte, 4<<20)...)},
		{"truncated range", []byte{1, 0, 0, 0, 1, 5, 0x80}},
		{"range past the top", []byte{1, 0, 0, 0, 1, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"gap past the top", []byte{1, 0, 0, 0, 2, 0, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1, 0}},
		{"no room after the top", []byte{1, 0, 0, 0, 2, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0}},
		{"trailing bytes", []byte{1, 0, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := Unit{ID: "before"}
			err := u.UnmarshalBinary(tt.in)
			if !errors.Is(err, ErrBadEncoding) {
				t.Fatalf("UnmarshalBinary(%x) = %v, want ErrBadEncoding", tt.in[:min(len(tt.in), 16)], err)
			}
			if u.ID != "before" {
				t.Fatal("a failed decode changed the unit")
			}
		})
	}
	for _, text := range []string{"AQJ1MQMHAgUECQA=", "AQJ1MQMHAgUECQB", "not base64!", "AQJ1MQMHAgUECQA+"} {
		var u Unit
		if err := u.UnmarshalText([]byte(text)); !errors.Is(err, ErrBadEncoding) {
			t.Errorf("UnmarshalText(%q) = %v, want ErrBadEncoding", text, err)
		}
	}
}

func TestUnitEncodeErrors(t *testing.T) {
	tests := []struct {
		name string
		unit Unit
	}{
		{"id too long", Unit{ID: strings.Repeat("z", MaxUnitIDLen+1)}},
		{"unsorted arcs", Unit{ID: "u", Arcs: Arcs{{10, 20}, {1, 2}}}},
		{"overlapping arcs", Unit{ID: "u", Arcs: Arcs{{1, 10}, {5, 20}}}},
		{"adjacent arcs", Unit{ID: "u", Arcs: Arcs{{1, 10}, {11, 20}}}},
		{"reversed range", Unit{ID: "u", Arcs: Arcs{{10, 1}}}},
		{"negative offset", Unit{ID: "u", Cursor: Cursor{Offset: -1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.unit.Validate(); !errors.Is(err, ErrInvalidUnit) {
				t.Fatalf("Validate = %v, want ErrInvalidUnit", err)
			}
			if _, err := tt.unit.MarshalBinary(); !errors.Is(err, ErrInvalidUnit) {
				t.Fatalf("MarshalBinary = %v, want ErrInvalidUnit", err)
			}
			if _, err := tt.unit.MarshalText(); !errors.Is(err, ErrInvalidUnit) {
				t.Fatalf("MarshalText = %v, want ErrInvalidUnit", err)
			}
		})
	}
}

// TestEncodingInJSON checks that units and cursors embed in JSON as
// strings, which is how the coordinator stores them.
func TestEncodingInJSON(t *testing.T) {
	type record struct {
		Unit   Unit   `json:"unit"`
		Cursor Cursor `json:"cursor"`
	}
	in := record{Unit: Unit{ID: "u1", Arcs: Arcs{{5, 9}, {20, 20}}, Cursor: Cursor{Seq: 3, Offset: 7}}, Cursor: Cursor{Seq: 1234, Offset: 56789}}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"unit":"AQJ1MQMHAgUECQA","cursor":"1234@56789"}`; string(data) != want {
		t.Fatalf("json = %s, want %s", data, want)
	}
	var out record
	if err := json.Unmarshal(data, &out); err != nil || !unitsEqual(out.Unit, in.Unit) || out.Cursor != in.Cursor {
		t.Fatalf("json round trip = %+v, %v", out, err)
	}
	if err := json.Unmarshal([]byte(`{"cursor":"12"}`), &out); !errors.Is(err, ErrBadEncoding) {
		t.Fatalf("bad cursor in json: %v", err)
	}
}
