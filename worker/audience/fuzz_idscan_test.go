package audience

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzExtractID holds the id extractor to encoding/json: whenever
// encoding/json reads a line as an object with a string id, the extractor
// returns that id or one of the reasons by which it is stricter (duplicate
// keys, invalid UTF-8, empty, too long), each checked against the line. If
// encoding/json finds no string id, the extractor must not find one either.
// The extractor is lenient about values it skips, so a line encoding/json
// rejects may still yield an id; Decode catches those.
func FuzzExtractID(f *testing.F) {
	for _, seed := range []string{
		`{"id":"u1"}`,
		`{"name":"Ann","id":"u2","locale":"en","reachable":false}`,
		`{"id":"a\"b\\c\u00e9\ud83d\ude00"}`,
		`{"\u0069d":"x"}`,
		`{"id":"a","id":"b"}`,
		`{"meta":{"id":"inner","list":[1,{"a":"]"}]},"id":"outer"}`,
		`{"id":42}`,
		`{"id":""}`,
		"{\"id\":\"a\xffb\"}",
		`{"id":"\ud800"}`,
		`[1,2]`,
		` { "id" : "spaced" } `,
		`{"note":"\"id\":\"fake\"","id":"real"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		id, _, reason := extractID(line, nil)
		if (id == nil) == (reason == "") {
			t.Fatalf("extractID(%q) = %q, %q: want exactly one of id and reason", line, id, reason)
		}
		if id != nil && (len(id) > MaxIDBytes || !utf8.Valid(id)) {
			t.Fatalf("extractID(%q) returned an id breaking the rules: %q", line, id)
		}

		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil || m == nil {
			return
		}
		want, isString := m["id"].(string)
		if !isString {
			if reason == "" {
				t.Fatalf("extractID(%q) = %q, but encoding/json reads id %#v", line, id, m["id"])
			}
			return
		}
		switch reason {
		case "":
			if string(id) != want {
				t.Fatalf("extractID(%q) = %q; encoding/json reads %q", line, id, want)
			}
		case ReasonDuplicateID:
			if n := topLevelIDKeys(t, line); n < 2 {
				t.Fatalf("extractID(%q) says duplicate id, but the object has %d id keys", line, n)
			}
		case ReasonEmptyID:
			if want != "" {
				t.Fatalf("extractID(%q) says empty id; encoding/json reads %q", line, want)
			}
		case ReasonIDNotUTF8:
			// encoding/json replaced what was not UTF-8 with U+FFFD.
			if !strings.ContainsRune(want, utf8.RuneError) {
				t.Fatalf("extractID(%q) says invalid UTF-8; encoding/json reads %q", line, want)
			}
		case ReasonIDTooLong:
			if len(want) <= MaxIDBytes {
				t.Fatalf("extractID(%q) says too long; encoding/json reads %d bytes", line, len(want))
			}
		default:
			t.Fatalf("extractID(%q) = %q, but encoding/json reads id %q", line, reason, want)
		}
	})
}

// topLevelIDKeys counts the keys of the top-level object that are "id",
// using encoding/json's tokenizer as the reference.
func topLevelIDKeys(t *testing.T, line []byte) int {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(line))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	n := 0
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		if key == "id" {
			n++
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return n
}
