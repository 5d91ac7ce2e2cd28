package sharding

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
)

func TestCursorText(t *testing.T) {
	tests := []struct {
		text string
		want Cursor
		ok   bool
	}{
		{"0@0", Cursor{}, true},
		{"1234@56789", Cursor{Seq: 1234, Offset: 56789}, true},
		{"18446744073709551615@9223372036854775807", Cursor{Seq: math.MaxUint64, Offset: math.MaxInt64}, true},
		{"", Cursor{}, false},
		{"12", Cursor{}, false},
		{"12@", Cursor{}, false},
		{"@12", Cursor{}, false},
		{"1@2@3", Cursor{}, false},
		{"01@2", Cursor{}, false},
		{"1@02", Cursor{}, false},
		{"+1@2", Cursor{}, false},
		{"1@+2", Cursor{}, false},
		{"1@-2", Cursor{}, false},
		{"-1@2", Cursor{}, false},
		{" 1@2", Cursor{}, false},
		{"1@2 ", Cursor{}, false},
		{"18446744073709551616@0", Cursor{}, false},
		{"0@9223372036854775808", Cursor{}, false},
		{"0x10@0", Cursor{}, false},
		{"1_000@0", Cursor{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			c := Cursor{Seq: 99, Offset: 99}
			err := c.UnmarshalText([]byte(tt.text))
			if !tt.ok {
				if !errors.Is(err, ErrBadEncoding) || c != (Cursor{Seq: 99, Offset: 99}) {
					t.Fatalf("UnmarshalText(%q) = %v, %v; want ErrBadEncoding and no change", tt.text, c, err)
				}
				return
			}
			if err != nil || c != tt.want {
				t.Fatalf("UnmarshalText(%q) = %v, %v; want %v", tt.text, c, err, tt.want)
			}
			text, err := c.MarshalText()
			if err != nil || string(text) != tt.text || c.String() != tt.text {
				t.Fatalf("MarshalText(%v) = %q, %v", c, text, err)
			}
		})
	}
	if _, err := (Cursor{Offset: -1}).MarshalText(); !errors.Is(err, ErrInvalidUnit) {
		t.Fatalf("MarshalText of a negative offset = %v", err)
	}
}

func FuzzCursorText(f *testing.F) {
	for _, s := range []string{"0@0", "1234@56789", "18446744073709551615@9223372036854775807", "01@2", "1@-2", "+1@2", "@", "1@2@3", ""} {
		f.Add(s, uint64(7), int64(9))
	}
	f.Fuzz(func(t *testing.T, s string, seq uint64, off int64) {
		var c Cursor
		if err := c.UnmarshalText([]byte(s)); err != nil {
			if !errors.Is(err, ErrBadEncoding) {
				t.Fatalf("error %v does not wrap ErrBadEncoding", err)
			}
		} else if text, err := c.MarshalText(); err != nil || string(text) != s {
			t.Fatalf("%q decodes to %v, which encodes to %q, %v", s, c, text, err)
		}

		want := Cursor{Seq: seq, Offset: off}
		text, err := want.MarshalText()
		if off < 0 {
			if !errors.Is(err, ErrInvalidUnit) {
				t.Fatalf("MarshalText(%v) = %q, %v; want ErrInvalidUnit", want, text, err)
			}
			return
		}
		var got Cursor
		if err != nil || got.UnmarshalText(text) != nil || got != want {
			t.Fatalf("%v encodes to %q, %v, which decodes to %v", want, text, err, got)
		}
	})
}

// TestCursorInJSON checks that a cursor embeds in JSON as its text, the
// form the coordinator stores it in.
func TestCursorInJSON(t *testing.T) {
	type record struct {
		Cursor Cursor `json:"cursor"`
	}
	in := record{Cursor: Cursor{Seq: 1234, Offset: 56789}}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"cursor":"1234@56789"}`; string(data) != want {
		t.Fatalf("json = %s, want %s", data, want)
	}
	var out record
	if err := json.Unmarshal(data, &out); err != nil || out.Cursor != in.Cursor {
		t.Fatalf("json round trip = %+v, %v", out, err)
	}
	if err := json.Unmarshal([]byte(`{"cursor":"12"}`), &out); !errors.Is(err, ErrBadEncoding) {
		t.Fatalf("bad cursor in json: %v", err)
	}
}
