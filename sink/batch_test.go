package sink

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// batchBody is a JSON array of deliveries of broadcast b, keyed by keys.
func batchBody(b string, keys ...string) []byte {
	var buf bytes.Buffer
	buf.WriteString("[")
	for i, k := range keys {
		if i > 0 {
			buf.WriteString(",\n ")
		}
		buf.Write(deliveryBody(b, "u-"+k, k))
	}
	buf.WriteString("]")
	return buf.Bytes()
}

type answer struct {
	Results []struct {
		Key        string   `json:"idempotency_key"`
		Status     int      `json:"status"`
		RetryAfter *float64 `json:"retry_after"`
		Error      string   `json:"error"`
	} `json:"results"`
}

// postBatch posts body and decodes the per-item answer of a 200.
func postBatch(t *testing.T, s *Sink, body []byte) (int, answer) {
	t.Helper()
	w := post(s, "", body)
	var a answer
	if w.Code == http.StatusOK {
		if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
			t.Fatalf("answer is not JSON: %v: %s", err, w.Body.String())
		}
	}
	return w.Code, a
}

func statuses(a answer) string {
	var b strings.Builder
	for i, r := range a.Results {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%d", r.Key, r.Status)
	}
	return b.String()
}

func TestBatchCountsEachItem(t *testing.T) {
	s := newSink(t, Config{Strict: true})
	code, a := postBatch(t, s, batchBody("b1", "k1", "k2", "k3"))
	if code != 200 || statuses(a) != "k1:200 k2:200 k3:200" {
		t.Fatalf("%d %s", code, statuses(a))
	}
	// k2 again (a duplicate) and k4 new, with the item of another
	// broadcast between them.
	body := bytes.Join([][]byte{deliveryBody("b1", "u-k2", "k2"), deliveryBody("b2", "u-x1", "x1"), deliveryBody("b1", "u-k4", "k4")}, []byte(","))
	body = append(append([]byte("["), body...), ']')
	code, a = postBatch(t, s, body)
	if code != 200 || statuses(a) != "k2:409 x1:200 k4:200" {
		t.Fatalf("%d %s", code, statuses(a))
	}
	st := s.Stats()
	if st.Requests != 6 || st.Batches != 2 || st.Delivered != 5 || st.Duplicates != 1 {
		t.Fatalf("stats %+v, want 6 deliveries in 2 batches, 5 delivered, 1 duplicate", st)
	}
	if b1, b2 := st.Broadcasts["b1"], st.Broadcasts["b2"]; b1.Delivered != 4 || b1.Duplicates != 1 || b1.Requests != 5 || b2.Delivered != 1 {
		t.Fatalf("per broadcast %+v", st.Broadcasts)
	}
}

func TestBatchPerItemFaults(t *testing.T) {
	// Every key retries once (OneIn 1) and a third of keys are refused.
	s := newSink(t, Config{Retry: RetryKeys{OneIn: 1, Times: 1}, Refuse400: 0.34, RetryAfter: 2 * time.Second})
	keys := []string{"a", "b", "c", "d", "e", "f"}
	code, a := postBatch(t, s, batchBody("b", keys...))
	if code != 200 || len(a.Results) != len(keys) {
		t.Fatalf("%d %+v", code, a)
	}
	for i, r := range a.Results {
		if r.Key != keys[i] || r.Status != 503 || r.RetryAfter == nil || *r.RetryAfter != 2 {
			t.Fatalf("item %d: %+v, want 503 with retry_after 2", i, r)
		}
	}
	_, a = postBatch(t, s, batchBody("b", keys...))
	refused := 0
	for i, r := range a.Results {
		want := 200
		if Refuses(keys[i], 0.34) {
			want, refused = 400, refused+1
			if !strings.Contains(r.Error, "refuses this key") {
				t.Fatalf("item %d: %+v, want the refusal's reason", i, r)
			}
		}
		if r.Status != want {
			t.Fatalf("item %d: %+v, want %d", i, r, want)
		}
	}
	st := s.Stats()
	if st.Requests != 12 || st.Injected503 != 6 || st.Refused != int64(refused) || st.Delivered != int64(6-refused) {
		t.Fatalf("stats %+v", st)
	}
	if sum := st.Delivered + st.Duplicates + st.Injected503 + st.Refused; sum != st.Requests {
		t.Fatalf("counts add up to %d, not %d", sum, st.Requests)
	}
}

func TestBatchWholeAnswers(t *testing.T) {
	t.Run("outage answers the whole batch and counts each item", func(t *testing.T) {
		s := newSink(t, Config{OutageFor: time.Hour})
		w := post(s, "", batchBody("b", "k1", "k2"))
		if w.Code != 503 || w.Header().Get("Retry-After") == "" {
			t.Fatalf("%d %v", w.Code, w.Header())
		}
		if st := s.Stats(); st.Outage != 2 || st.Requests != 2 || st.Delivered != 0 {
			t.Fatalf("stats %+v", st)
		}
	})
	for name, body := range map[string]string{
		"not objects":      `[1, 2]`,
		"unclosed":         `[{"idempotency_key":"k"}`,
		"trailing data":    `[{"idempotency_key":"k"}] x`,
		"string unclosed":  `[{"idempotency_key":"k}]`,
		"missing comma":    `[{"idempotency_key":"k"} {"idempotency_key":"j"}]`,
		"too many":         "[" + strings.Repeat(`{"idempotency_key":"k"},`, maxBatchItems) + `{"idempotency_key":"k"}]`,
		"nested brackets ": `[{"idempotency_key":"k","m":{"a":[1,{"b":"]}"}]}}]`,
	} {
		t.Run(name, func(t *testing.T) {
			s := newSink(t, Config{})
			w := post(s, "", []byte(body))
			if name == "nested brackets " {
				// Valid: the bracket inside a string does not end anything.
				if w.Code != 200 || s.Stats().Delivered != 1 {
					t.Fatalf("%d %s %+v", w.Code, w.Body, s.Stats())
				}
				return
			}
			if w.Code != 400 || !strings.Contains(w.Body.String(), "batch:") {
				t.Fatalf("%d %s", w.Code, w.Body)
			}
			if st := s.Stats(); st.BadRequests != 1 || st.Requests != 1 || st.Delivered != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
	t.Run("an item without a key is refused alone", func(t *testing.T) {
		s := newSink(t, Config{})
		code, a := postBatch(t, s, []byte(`[{"idempotency_key":"k1"},{"subscriber_id":"u2"},{"idempotency_key":"k\"3"}]`))
		if code != 200 || statuses(a) != "k1:200 :400 :400" {
			t.Fatalf("%d %s", code, statuses(a))
		}
		if st := s.Stats(); st.BadRequests != 2 || st.Delivered != 1 || st.Requests != 3 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("empty batch", func(t *testing.T) {
		s := newSink(t, Config{})
		code, a := postBatch(t, s, []byte(` [ ] `))
		if code != 200 || len(a.Results) != 0 {
			t.Fatalf("%d %+v", code, a)
		}
	})
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"hk1-00ff", `a"b`, `a\b`, "tab\there", "é", ""} {
		got := appendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil || back != s {
			t.Fatalf("%q encoded as %s, read back %q (%v)", s, got, back, err)
		}
	}
}

func BenchmarkBatchOf100(b *testing.B) {
	s := newSink(b, Config{})
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = fmt.Sprintf("hk1-%032x", i)
	}
	body := batchBody("bench", keys...)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		s.Reset()
		w := post(s, "", body)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}
