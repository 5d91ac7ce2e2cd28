package audience

import (
	"strings"
	"testing"
)

func TestExtractID(t *testing.T) {
	long := strings.Repeat("x", MaxIDBytes)
	tests := []struct {
		name   string
		line   string
		id     string
		reason string
	}{
		{name: "plain", line: `{"id":"u1"}`, id: "u1"},
		{name: "id not first", line: `{"name":"Ann","id":"u2","locale":"en"}`, id: "u2"},
		{name: "whitespace everywhere", line: " \t{ \"a\" : 1 , \"id\"\t:\r\"u3\" }  \r", id: "u3"},
		{name: "escaped quote and backslash", line: `{"id":"a\"b\\c"}`, id: `a"b\c`},
		{name: "escapes of every kind", line: `{"id":"\/\b\f\n\r\t\u00e9"}`, id: "/\b\f\n\r\té"},
		{name: "surrogate pair", line: `{"id":"\ud83d\ude00"}`, id: "😀"},
		{name: "raw non-ASCII", line: `{"id":"李雷"}`, id: "李雷"},
		{name: "escaped key", line: `{"\u0069d":"u4"}`, id: "u4"},
		{name: "escaped key after escaped id", line: `{"id":"\u0041","\u006eame":"x"}`, id: "A"},
		{name: "nested id ignored", line: `{"meta":{"id":"inner"},"id":"outer"}`, id: "outer"},
		{name: "array with objects", line: `{"tags":[{"id":1},"]",{"x":"}"}],"id":"u5"}`, id: "u5"},
		{name: "string containing id key", line: `{"note":"\"id\":\"fake\"","id":"real"}`, id: "real"},
		{name: "value ending in backslashes", line: `{"a":"x\\\\","id":"u6"}`, id: "u6"},
		{name: "numbers and literals", line: `{"n":-1.5e+3,"t":true,"f":false,"z":null,"id":"u7"}`, id: "u7"},
		{name: "longest id", line: `{"id":"` + long + `"}`, id: long},

		{name: "empty line", line: ``, reason: ReasonNotObject},
		{name: "array", line: `[{"id":"u1"}]`, reason: ReasonNotObject},
		{name: "string", line: `"id"`, reason: ReasonNotObject},
		{name: "empty object", line: `{}`, reason: ReasonNoID},
		{name: "only nested id", line: `{"a":{"id":"x"}}`, reason: ReasonNoID},
		{name: "key Id is not id", line: `{"Id":"u1"}`, reason: ReasonNoID},
		{name: "number id", line: `{"id":42}`, reason: ReasonIDNotString},
		{name: "null id", line: `{"id":null}`, reason: ReasonIDNotString},
		{name: "object id", line: `{"id":{"v":"u1"}}`, reason: ReasonIDNotString},
		{name: "duplicate id", line: `{"id":"a","id":"b"}`, reason: ReasonDuplicateID},
		{name: "duplicate through escape", line: `{"id":"a","\u0069d":"b"}`, reason: ReasonDuplicateID},
		{name: "duplicate beats bad type", line: `{"id":1,"id":"b"}`, reason: ReasonDuplicateID},
		{name: "duplicate beats empty", line: `{"id":"","id":"b"}`, reason: ReasonDuplicateID},
		{name: "empty id", line: `{"id":""}`, reason: ReasonEmptyID},
		{name: "invalid UTF-8", line: "{\"id\":\"a\xffb\"}", reason: ReasonIDNotUTF8},
		{name: "lone high surrogate", line: `{"id":"\ud800x"}`, reason: ReasonIDNotUTF8},
		{name: "lone low surrogate", line: `{"id":"\udc00"}`, reason: ReasonIDNotUTF8},
		{name: "too long", line: `{"id":"` + long + `y"}`, reason: ReasonIDTooLong},
		{name: "unterminated object", line: `{"id":"u1"`, reason: ReasonMalformed},
		{name: "unterminated id", line: `{"id":"u1}`, reason: ReasonMalformed},
		{name: "missing colon", line: `{"id" "u1"}`, reason: ReasonMalformed},
		{name: "missing comma", line: `{"a":1 "id":"u1"}`, reason: ReasonMalformed},
		{name: "trailing comma", line: `{"id":"u1",}`, reason: ReasonMalformed},
		{name: "trailing data", line: `{"id":"u1"} x`, reason: ReasonMalformed},
		{name: "two objects", line: `{"id":"u1"}{"id":"u2"}`, reason: ReasonMalformed},
		{name: "bare key", line: `{id:"u1"}`, reason: ReasonMalformed},
		{name: "bad literal", line: `{"a":tru,"id":"u1"}`, reason: ReasonMalformed},
		{name: "control character in id", line: "{\"id\":\"a\tb\"}", reason: ReasonMalformed},
		{name: "unknown escape in id", line: `{"id":"a\qb"}`, reason: ReasonMalformed},
		{name: "short unicode escape", line: `{"id":"\u00e"}`, reason: ReasonMalformed},
		{name: "unclosed nested value", line: `{"a":[1,2,"id":"u1"}`, reason: ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, _, reason := extractID([]byte(tt.line), nil)
			if string(id) != tt.id || reason != tt.reason {
				t.Fatalf("extractID(%q) = %q, %q; want %q, %q", tt.line, id, reason, tt.id, tt.reason)
			}
			if tt.reason != "" && id != nil {
				t.Fatalf("invalid line returned a non-nil id %q", id)
			}
		})
	}
}

// The buffer returned for reuse must not change what a later call returns,
// and an unescaped id must not share memory with the line.
func TestExtractIDReusesBuffer(t *testing.T) {
	var buf []byte
	lines := []string{`{"id":"\u0041\u0042"}`, `{"id":"plain"}`, `{"id":"x\ny"}`, `{"\u0069d":"k"}`}
	want := []string{"AB", "plain", "x\ny", "k"}
	for i, line := range lines {
		var id []byte
		var reason string
		id, buf, reason = extractID([]byte(line), buf)
		if reason != "" || string(id) != want[i] {
			t.Fatalf("line %d: got %q, %q; want %q", i, id, reason, want[i])
		}
	}
}

func TestExtractIDDoesNotAllocate(t *testing.T) {
	line := []byte(`{"name":"Zoë","tags":["a","b"],"meta":{"x":[1,2]},"id":"u\u00e9-1","locale":"fr"}`)
	buf := make([]byte, 0, 64)
	allocs := testing.AllocsPerRun(100, func() {
		var reason string
		_, buf, reason = extractID(line, buf)
		if reason != "" {
			t.Fatal(reason)
		}
	})
	if allocs != 0 {
		t.Fatalf("extractID allocates %.1f times per call; want 0", allocs)
	}
}
