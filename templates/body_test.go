package templates

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestAppendBodyMatchesSpec(t *testing.T) {
	m := &Message{Locale: "en", Fields: []Field{{"body", "Your code: X7"}, {"title", "Hi Ann"}}}
	got := string(AppendBody(nil, Delivery{BroadcastID: "spring-sale-2026", SubscriberID: "u42", Key: "hk1-k", Message: m}))
	want := `{"broadcast_id":"spring-sale-2026","subscriber_id":"u42","idempotency_key":"hk1-k","locale":"en","message":{"body":"Your code: X7","title":"Hi Ann"}}`
	if got != want {
		t.Fatalf("AppendBody =\n%s\nwant\n%s", got, want)
	}
}

func TestAppendBodyEscapes(t *testing.T) {
	tests := []struct{ name, in, wantJSON, wantDecoded string }{
		{"plain", "Hi Ann", `"Hi Ann"`, "Hi Ann"},
		{"quote and backslash", `say "hi" \o/`, `"say \"hi\" \\o/"`, `say "hi" \o/`},
		{"newline tab return", "a\nb\tc\rd", `"a\nb\tc\rd"`, "a\nb\tc\rd"},
		{"other controls", "\x00\x01\x1f\b\f", `"\u0000\u0001\u001f\u0008\u000c"`, "\x00\x01\x1f\b\f"},
		{"del is fine", "\x7f", "\"\x7f\"", "\x7f"},
		{"invalid utf-8", "a\xffb\xc3", `"a\ufffdb\ufffd"`, "a\uFFFDb\uFFFD"},
		{"truncated sequence", "\xe4\xbd", `"\ufffd\ufffd"`, "\uFFFD\uFFFD"},
		{"surrogate half", "\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`, "\uFFFD\uFFFD\uFFFD"},
		{"line separators", "a\u2028b\u2029c", `"a\u2028b\u2029c"`, "a\u2028b\u2029c"},
		{"emoji", "🎉👩‍👩‍👧", `"🎉👩‍👩‍👧"`, "🎉👩‍👩‍👧"},
		{"right to left", "مرحبا \u202eabc", "\"مرحبا \u202eabc\"", "مرحبا \u202eabc"},
		{"html is not escaped", "<a&b>", `"<a&b>"`, "<a&b>"},
		{"empty", "", `""`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(appendJSONString(nil, tt.in)); got != tt.wantJSON {
				t.Errorf("appendJSONString(%q) = %s, want %s", tt.in, got, tt.wantJSON)
			}
			m := &Message{Fields: []Field{{tt.in, tt.in}}}
			body := AppendBody([]byte("prefix"), Delivery{BroadcastID: tt.in, SubscriberID: tt.in, Key: tt.in, Locale: tt.in, Message: m})
			body = body[len("prefix"):]
			if !json.Valid(body) {
				t.Fatalf("invalid JSON: %s", body)
			}
			var d struct {
				BroadcastID    string            `json:"broadcast_id"`
				SubscriberID   string            `json:"subscriber_id"`
				IdempotencyKey string            `json:"idempotency_key"`
				Locale         string            `json:"locale"`
				Message        map[string]string `json:"message"`
			}
			if err := json.Unmarshal(body, &d); err != nil {
				t.Fatal(err)
			}
			w := tt.wantDecoded
			if d.BroadcastID != w || d.SubscriberID != w || d.IdempotencyKey != w || d.Locale != w || len(d.Message) != 1 || d.Message[w] != w {
				t.Errorf("decoded %+v, want every string %q", d, w)
			}
		})
	}
}

func TestAppendBodyWithoutMessage(t *testing.T) {
	got := string(AppendBody(nil, Delivery{BroadcastID: "b", SubscriberID: "s", Key: "k", Locale: "en"}))
	if want := `{"broadcast_id":"b","subscriber_id":"s","idempotency_key":"k","locale":"en","message":{}}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	got = string(AppendBody(nil, Delivery{Message: &Message{Locale: "zh"}}))
	if !strings.Contains(got, `"locale":"zh"`) {
		t.Fatalf("locale not taken from the message: %s", got)
	}
}

func TestAppendBodyAllocations(t *testing.T) {
	m := &Message{Locale: "en", Fields: []Field{{"body", "Your code: X7"}, {"title", "Hi \"Ann\"\n"}}}
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() {
		buf = AppendBody(buf[:0], Delivery{BroadcastID: "b", SubscriberID: "u1", Key: "k", Message: m})
	}); n != 0 {
		t.Fatalf("AppendBody into a large enough buffer allocates %v times", n)
	}
}
