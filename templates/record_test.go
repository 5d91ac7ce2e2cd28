package templates

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestParseRecord(t *testing.T) {
	tests := []struct {
		name, line string
		wantErr    error
		// wantAnyErr is for malformed JSON, whose error is encoding/json's.
		wantAnyErr bool
	}{
		{name: "object", line: `{"id":"u1","n":12345678901234567890,"f":2.50,"o":{"x":[1]}}`},
		{name: "surrounding space", line: " \t{\"id\":\"u1\"}\r\n"},
		{name: "array", line: `[1,2]`, wantErr: ErrNotObject},
		{name: "null", line: `null`, wantErr: ErrNotObject},
		{name: "string", line: `"u1"`, wantErr: ErrNotObject},
		{name: "empty", line: ``, wantErr: ErrNotObject},
		{name: "two objects", line: `{"id":"a"}{"id":"b"}`, wantErr: ErrNotObject},
		{name: "trailing garbage", line: `{"id":"a"} x`, wantErr: ErrNotObject},
		{name: "broken", line: `{"id":`, wantAnyErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, err := ParseRecord([]byte(tt.line))
			switch {
			case tt.wantAnyErr:
				if err == nil {
					t.Fatalf("ParseRecord = %v, want an error", rec)
				}
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseRecord = %v, %v; want %v", rec, err, tt.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case rec["id"] != "u1":
				t.Fatalf("id = %v", rec["id"])
			}
		})
	}
	rec, err := ParseRecord([]byte(`{"n":12345678901234567890,"f":2.50,"o":{"x":[1]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if rec["n"] != json.Number("12345678901234567890") || rec["f"] != json.Number("2.50") {
		t.Errorf("numbers are not kept as written: %#v", rec)
	}
	if inner := rec["o"].(map[string]any)["x"].([]any)[0]; inner != json.Number("1") {
		t.Errorf("nested number is %#v", inner)
	}
}
