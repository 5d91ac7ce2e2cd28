package audience

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

var flatSeeds = []string{
	`{"id":"u1","name":"Zoë","locale":"fr","code":"A1","points":1200,"reachable":true}`,
	`{"id":"u2","n":-0.5e+3,"x":null,"f":false,"id":"dup"}`,
	` { "id" : "u3" , "a" : 0 } `,
	`{}`,
	`{"id":"esc\"aped"}`,
	`{"id":"u4","nested":{"a":1}}`,
	`{"id":"u5","list":[1,2]}`,
	`{"id":"u6","bad":01}`,
	`{"id":"u7","bad":1.}`,
	`{"id":"u8","t":truex}`,
	`{"id":"u9",}`,
	`{"id":"u10"} x`,
	"{\"id\":\"\xff\"}",
	`{"id":"u11","big":123456789012345678901234567890}`,
	`[1]`,
	``,
}

// TestDecodeFlat: the flat records Herald's audiences hold take the fast
// path; the others are left to encoding/json.
func TestDecodeFlat(t *testing.T) {
	for i, s := range flatSeeds {
		m := map[string]any{}
		got := decodeFlat([]byte(s), m)
		want := i < 4 || i == 13
		if got != want {
			t.Errorf("%q: fast path %v, want %v", s, got, want)
		}
	}
}

// FuzzDecodeFlat holds the fast path to encoding/json: whatever it
// decodes, encoding/json decodes to the same map.
func FuzzDecodeFlat(f *testing.F) {
	for _, s := range flatSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fast := map[string]any{}
		if !decodeFlat(data, fast) {
			return
		}
		slow := map[string]any{}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if err := dec.Decode(&slow); err != nil {
			t.Fatalf("%q: fast path took it, encoding/json refuses it: %v", data, err)
		}
		if skipWS(data, int(dec.InputOffset())) != len(data) {
			t.Fatalf("%q: fast path took data after the object", data)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q: fast path %v, encoding/json %v", data, fast, slow)
		}
	})
}
