package delivery

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// answerItems are the items the answer tests answer for.
var answerItems = []Item{{Key: "k-0"}, {Key: "k-1"}, {Key: "k-2"}}

func TestScanAnswer(t *testing.T) {
	open := []int{0, 2}
	for _, tc := range []struct {
		answer string
		take   bool // scanAnswer takes it; otherwise encoding/json has it
	}{
		{`{"results":[{"idempotency_key":"k-0","status":200},{"idempotency_key":"k-2","status":409}]}`, true},
		{" {\n\t\"results\" : [ { \"status\" : 503 , \"idempotency_key\" : \"k-0\", \"retry_after\": 1.5e0 } ,\r\n {\"idempotency_key\":\"k-2\",\"status\":400,\"error\":\"no such token\"} ] } \n", true},
		{`{"results":[{"idempotency_key":"k-0","status":429,"retry_after":-0.25},{"idempotency_key":"k-2","status":599,"retry_after":0}]}`, true},
		// What it leaves to encoding/json, which decodes some and refuses the rest.
		{`{"results":[{"idempotency_key":"k-0","status":200},{"idempotency_key":"k-2","status":200,"extra":1}]}`, false},
		{`{"results":[{"idempotency_key":"k-0","Status":200},{"idempotency_key":"k-2","status":200}]}`, false},
		{`{"results":[{"idempotency_key":"k-0","status":200,"error":"caf\u00e9"},{"idempotency_key":"k-2","status":200}]}`, false},
		{`{"results":[{"idempotency_key":"k-0","status":200,"error":"café"},{"idempotency_key":"k-2","status":200}]}`, false},
		{`{"results":[{"idempotency_key":"k-0","status":200,"retry_after":null},{"idempotency_key":"k-2","status":200}]}`, false},
		{`{"results":[{"idempotency_key":"k-0","status":200,"status":500},{"idempotency_key":"k-2","status":200}]}`, false},
		{`{"results":[{"idempotency_key":"k-0","status":200}]}`, false},
		{`{"results":[{"idempotency_key":"k-2","status":200},{"idempotency_key":"k-0","status":200}]}`, false},
		{`{"results":[{"idempotency_key":"k-0","status":2e2},{"idempotency_key":"k-2","status":200}]}`, false},
		{`{"results":[{"idempotency_key":"k-0","status":20.0},{"idempotency_key":"k-2","status":200}]}`, false},
		{`{"results":[{"idempotency_key":"k-0","status":700},{"idempotency_key":"k-2","status":200}]}`, false},
		{`{"results":[{"idempotency_key":"k-0","status":200},{"idempotency_key":"k-2","status":200}]} x`, false},
		{`{"results":[{"idempotency_key":"k-0","status":200},{"idempotency_key":"k-2","status":200},]}`, false},
		{`{"results":[{"idempotency_key":"k-0","status":200,"retry_after":01},{"idempotency_key":"k-2","status":200}]}`, false},
		{`{"results":[{"idempotency_key":"k-0","status":200,"retry_after":1e999},{"idempotency_key":"k-2","status":200}]}`, false},
		{`[]`, false},
	} {
		got, ok := scanAnswer([]byte(tc.answer), answerItems, open)
		if ok != tc.take {
			t.Errorf("scanAnswer(%s) took it: %v, want %v", tc.answer, ok, tc.take)
			continue
		}
		if ok {
			want, err := jsonAnswer([]byte(tc.answer), answerItems, open)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("scanAnswer(%s) = %+v; encoding/json: %+v, %v", tc.answer, got, want, err)
			}
		}
	}
}

// FuzzScanAnswer holds scanAnswer to encoding/json: whatever it takes,
// jsonAnswer takes too, with the same results.
func FuzzScanAnswer(f *testing.F) {
	f.Add(`{"results":[{"idempotency_key":"k-0","status":200},{"idempotency_key":"k-1","status":503,"retry_after":2}]}`)
	f.Add(`{"results":[{"status":429,"idempotency_key":"k-0","error":"slow down","retry_after":0.5},{"idempotency_key":"k-1","status":204}]}`)
	f.Add(` { "results" : [ ] } `)
	f.Fuzz(func(t *testing.T, answer string) {
		for n := 0; n <= len(answerItems); n++ {
			open := []int{0, 1, 2}[:n]
			got, ok := scanAnswer([]byte(answer), answerItems, open)
			if !ok {
				continue
			}
			want, err := jsonAnswer([]byte(answer), answerItems, open)
			if err != nil {
				t.Fatalf("scanAnswer took %q for %d items; encoding/json: %v", answer, n, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("scanAnswer(%q) = %+v; encoding/json: %+v", answer, got, want)
			}
		}
	})
}

// BenchmarkReadAnswer times reading the answer to a batch of 100, the
// scanner against encoding/json.
//
//	go test -run '^$' -bench ReadAnswer -benchmem ./worker/delivery/
func BenchmarkReadAnswer(b *testing.B) {
	items := make([]Item, 100)
	open := make([]int, len(items))
	var sb strings.Builder
	sb.WriteString(`{"results":[`)
	for i := range items {
		items[i].Key = fmt.Sprintf("%064x", i)
		open[i] = i
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"idempotency_key":%q,"status":200}`, items[i].Key)
	}
	sb.WriteString(`]}`)
	answer := []byte(sb.String())
	for _, path := range []struct {
		name string
		read func() error
	}{
		{"scan", func() error {
			if _, ok := scanAnswer(answer, items, open); !ok {
				return fmt.Errorf("not taken")
			}
			return nil
		}},
		{"encoding_json", func() error { _, err := jsonAnswer(answer, items, open); return err }},
	} {
		b.Run(path.name, func(b *testing.B) {
			b.SetBytes(int64(len(answer)))
			for b.Loop() {
				if err := path.read(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
