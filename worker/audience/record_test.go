package audience

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/herald-dev/herald/sharding"
	"github.com/herald-dev/herald/templates"
)

func firstRecord(t *testing.T, line string) *Record {
	t.Helper()
	s := mustOpen(t, fileSpec(writeFile(t, "\n"+line+"\n")), sharding.Cursor{}, Limits{})
	if !s.Next() {
		t.Fatalf("no record: %v", s.Err())
	}
	return s.Record()
}

func TestDecodeFileRecord(t *testing.T) {
	tests := []struct {
		name      string
		line      string
		want      map[string]any
		locale    string
		reachable bool
		invalid   string // prefix of the reason, "" when valid
	}{
		{
			name:      "all fields",
			line:      `{"id":"u1","name":"Zoë","locale":"fr","reachable":false,"tags":["a"],"ok":null}`,
			want:      map[string]any{"id": "u1", "name": "Zoë", "locale": "fr", "reachable": false, "tags": []any{"a"}, "ok": nil},
			locale:    "fr",
			reachable: false,
		},
		{
			name:      "defaults",
			line:      `{"id":"u2"}`,
			want:      map[string]any{"id": "u2"},
			reachable: true,
		},
		{
			name:      "escaped id",
			line:      `{"id":"\u00e9t\u00e9","reachable":true}`,
			want:      map[string]any{"id": "été", "reachable": true},
			reachable: true,
		},
		{
			// Numbers stay as written (json.Number), as package templates
			// expects: 20 digits survive and 1.50 keeps its zero.
			name:      "numbers",
			line:      `{"id":"u6","big":12345678901234567890,"price":1.50,"n":[-3e2]}`,
			want:      map[string]any{"id": "u6", "big": json.Number("12345678901234567890"), "price": json.Number("1.50"), "n": []any{json.Number("-3e2")}},
			reachable: true,
		},
		{name: "locale not a string", line: `{"id":"u3","locale":5}`, invalid: ReasonLocaleNotString},
		{name: "reachable not a bool", line: `{"id":"u4","reachable":"no"}`, invalid: ReasonReachableNotBool},
		{name: "reachable null", line: `{"id":"u4","reachable":null}`, invalid: ReasonReachableNotBool},
		// The id extractor only counts brackets in values it skips; the
		// full parse is what finds this line broken.
		{name: "malformed inside a skipped value", line: `{"id":"u5","a":[1,}}`, invalid: reasonBadJSONPrefix},
		{name: "invalid before decode", line: `{"id":""}`, invalid: ReasonEmptyID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := firstRecord(t, tt.line)
			m := map[string]any{"stale": 1}
			err := r.Decode(m)
			if tt.invalid != "" {
				if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(r.Invalid, tt.invalid) {
					t.Fatalf("Decode = %v, Invalid %q; want ErrInvalid and a reason starting %q", err, r.Invalid, tt.invalid)
				}
				if !strings.Contains(err.Error(), "line 2") {
					t.Fatalf("error %q does not name the line", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !equalJSONValues(m, tt.want) {
				t.Fatalf("Decode = %#v, want %#v", m, tt.want)
			}
			if Locale(m) != tt.locale || Reachable(m) != tt.reachable {
				t.Fatalf("Locale(m), Reachable(m) = %q, %v; want %q, %v", Locale(m), Reachable(m), tt.locale, tt.reachable)
			}
			if r.Locale() != tt.locale || r.Reachable() != tt.reachable {
				t.Fatalf("Locale, Reachable = %q, %v; want %q, %v", r.Locale(), r.Reachable(), tt.locale, tt.reachable)
			}
			attrs, err := r.Attributes()
			if err != nil || !equalJSONValues(attrs, tt.want) {
				t.Fatalf("Attributes = %v, %v", attrs, err)
			}
		})
	}
}

func equalJSONValues(a, b any) bool {
	switch a := a.(type) {
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, v := range a {
			if w, ok := b[k]; !ok || !equalJSONValues(v, w) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !equalJSONValues(a[i], b[i]) {
				return false
			}
		}
		return true
	}
	return a == b
}

// Decode must hand templates exactly what templates.ParseRecord would
// build from the same line, so a template renders alike whoever parsed.
func TestDecodeMatchesTemplatesParseRecord(t *testing.T) {
	for _, line := range []string{
		`{"id":"u1","name":"Zoë","points":12345678901234567890,"price":1.50,"tags":["a",{"b":null}],"reachable":true}`,
		`{"id":"u2","locale":"zh-TW","nested":{"deep":{"n":-0.0e-1}},"empty":{},"list":[]}`,
		` {"id":"\u00e9\ud83d\ude00","s":"line\nbreak \"quoted\""} `,
	} {
		t.Run(line, func(t *testing.T) {
			want, err := templates.ParseRecord([]byte(line))
			if err != nil {
				t.Fatal(err)
			}
			got, err := firstRecord(t, line).Attributes()
			if err != nil {
				t.Fatal(err)
			}
			if !equalJSONValues(map[string]any(got), map[string]any(want)) {
				t.Fatalf("Decode = %#v\ntemplates.ParseRecord = %#v", got, want)
			}
		})
	}
}
