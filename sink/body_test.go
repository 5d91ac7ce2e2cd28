package sink

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestBroadcastID(t *testing.T) {
	tests := []struct {
		name, body, want string
		none             bool
	}{
		{name: "spec body", body: `{"broadcast_id":"spring-sale-2026","subscriber_id":"u42"}`, want: "spring-sale-2026"},
		{name: "spaces", body: "{ \"broadcast_id\" :\n\t\"a.b_c\" }", want: "a.b_c"},
		{name: "not first", body: `{"subscriber_id":"u42","broadcast_id":"x"}`, want: "x"},
		{name: "empty value", body: `{"broadcast_id":""}`, want: ""},
		{name: "absent", body: `{"subscriber_id":"u42"}`, none: true},
		{name: "number", body: `{"broadcast_id":42}`, none: true},
		{name: "no colon", body: `{"broadcast_id" "x"}`, none: true},
		{name: "unterminated", body: `{"broadcast_id":"abc`, none: true},
		{name: "escape", body: `{"broadcast_id":"a\"b"}`, none: true},
		{name: "too long", body: `{"broadcast_id":"` + strings.Repeat("a", 129) + `"}`, none: true},
		{name: "longest", body: `{"broadcast_id":"` + strings.Repeat("a", 128) + `"}`, want: strings.Repeat("a", 128)},
		{name: "empty body", body: ``, none: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := broadcastID([]byte(tt.body))
			if tt.none {
				if got != nil {
					t.Fatalf("got %q, want none", got)
				}
				return
			}
			if got == nil || string(got) != tt.want {
				t.Fatalf("got %q (nil %v), want %q", got, got == nil, tt.want)
			}
		})
	}
}

// FuzzBroadcastID checks the shortcut against a real JSON decoder for
// bodies shaped like Herald's, whatever the other fields hold, and that
// no input makes it panic or return more than an id can be.
func FuzzBroadcastID(f *testing.F) {
	f.Add("spring-sale", "u42", "spring-sale:u42", []byte(`{"broadcast_id":"x"}`))
	f.Add("a.b_c-9", `"broadcast_id":"evil"`, "\\\"", []byte(`{"broadcast_id" : "y"`))
	f.Fuzz(func(t *testing.T, id, subscriber, key string, raw []byte) {
		if v := broadcastID(raw); len(v) > maxBroadcastID {
			t.Fatalf("returned %d bytes", len(v))
		}
		if !validID(id) {
			return
		}
		body := deliveryBody(id, subscriber, key)
		var decoded struct {
			BroadcastID string `json:"broadcast_id"`
		}
		if err := json.Unmarshal(body, &decoded); err != nil {
			t.Fatal(err)
		}
		if got := broadcastID(body); string(got) != decoded.BroadcastID {
			t.Fatalf("broadcastID(%s) = %q, decoder says %q", body, got, decoded.BroadcastID)
		}
	})
}

// validID is the trigger's rule for broadcast ids: 1 to 128 characters of
// [A-Za-z0-9._-].
func validID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

func TestValidKey(t *testing.T) {
	tests := []struct {
		key string
		ok  bool
	}{
		{"spring-sale:u42", true},
		{" ~", true},
		{"", false},
		{"tab\there", false},
		{"del\x7f", false},
		{"ä", false},
		{strings.Repeat("x", 200), true},
		{strings.Repeat("x", 201), false},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if got := validKey(tt.key); got != tt.ok {
				t.Fatalf("validKey(%q) = %v, want %v", tt.key, got, tt.ok)
			}
		})
	}
}
