package templates

import (
	"strconv"
	"testing"
)

// typicalSpec is the example template of Herald's contracts: a title and
// a body in English.
func typicalSpec() Spec {
	return Spec{DefaultLocale: "en", Locales: map[string]map[string]string{
		"en": {"title": "Hi {{.name}}", "body": "Your code: {{.code}}"},
		"zh": {"title": "{{.name}}，你好", "body": "优惠码：{{.code}}"},
	}}
}

func benchRecords(b *testing.B) []Record {
	recs := make([]Record, 256)
	for i := range recs {
		id := "u" + strconv.Itoa(i)
		recs[i] = record(b, `{"id":"`+id+`","name":"Subscriber `+id+`","code":"X`+strconv.Itoa(i*7)+`","locale":"en-US"}`)
	}
	return recs
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkRenderAndBody is a worker's per-message cost for the typical
// template: locale choice, render, idempotency key and body, with the
// Message and buffers reused as a sender goroutine does.
func BenchmarkRenderAndBody(b *testing.B) {
	for _, path := range []string{"fast", "text/template"} {
		b.Run(path, func(b *testing.B) {
			s, err := Compile(typicalSpec(), Limits{})
			if err != nil {
				b.Fatal(err)
			}
			if path != "fast" {
				s = slow(s)
			}
			renderAndBody(b, s, benchRecords(b), "en-US")
		})
	}
}

// renderAndBody runs the worker's per-message work over recs.
func renderAndBody(b *testing.B, s *Set, recs []Record, locale string) {
	var m Message
	var key, body []byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		rec := recs[i%len(recs)]
		id := rec["id"].(string)
		if err := s.Render(rec, locale, &m); err != nil {
			b.Fatal(err)
		}
		key = AppendKey(key[:0], "spring-sale-2026", id)
		body = AppendBody(body[:0], Delivery{BroadcastID: "spring-sale-2026", SubscriberID: id, Key: string(key), Message: &m})
	}
	reportRate(b)
}

// BenchmarkRenderAndBodyFunctions is BenchmarkRenderAndBody for a
// template that formats its attributes with default, upper and number,
// fast path against text/template on the same template.
func BenchmarkRenderAndBodyFunctions(b *testing.B) {
	spec := Spec{DefaultLocale: "en", Locales: map[string]map[string]string{"en": {
		"title": `Hi {{ .name | default "friend" | upper }}`,
		"body":  `You have {{number .points}} points. Code: {{.code}}`,
	}}}
	recs := make([]Record, 256)
	for i := range recs {
		id := "u" + strconv.Itoa(i)
		name := `"name":"Subscriber ` + id + `",`
		if i%4 == 0 {
			name = "" // a quarter of the audience gets the default
		}
		recs[i] = record(b, `{"id":"`+id+`",`+name+`"points":`+strconv.Itoa(i*12345)+`,"code":"X`+strconv.Itoa(i*7)+`"}`)
	}
	for _, path := range []string{"fast", "text/template"} {
		b.Run(path, func(b *testing.B) {
			s, err := Compile(spec, Limits{})
			if err != nil {
				b.Fatal(err)
			}
			if path != "fast" {
				s = slow(s)
			} else if s.def.fields[0].fast == nil || s.def.fields[1].fast == nil {
				b.Fatal("the template does not take the fast path")
			}
			renderAndBody(b, s, recs, "en")
		})
	}
}

// BenchmarkRender is Render alone, for the typical template and for one
// that needs text/template (functions and a condition).
func BenchmarkRender(b *testing.B) {
	specs := map[string]Spec{
		"typical": typicalSpec(),
		"functions": {DefaultLocale: "en", Locales: map[string]map[string]string{"en": {
			"title": `Hi {{title (default "friend" .name)}}`,
			"body":  `{{if gt .points 1000}}Gold{{else}}Member{{end}}: {{number .points}} points, code {{upper .code}}`,
		}}},
	}
	for _, name := range []string{"typical", "functions"} {
		b.Run(name, func(b *testing.B) {
			s, err := Compile(specs[name], Limits{})
			if err != nil {
				b.Fatal(err)
			}
			rec := record(b, `{"id":"u1","name":"ann","code":"x7","points":123456}`)
			var m Message
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Render(rec, "en", &m); err != nil {
					b.Fatal(err)
				}
			}
			reportRate(b)
		})
	}
}

func BenchmarkAppendBody(b *testing.B) {
	m := &Message{Locale: "en", Fields: []Field{{"body", "Your code: X7"}, {"title", "Hi Ann, ünïcödé 你好 🎉"}}}
	d := Delivery{BroadcastID: "spring-sale-2026", SubscriberID: "u42", Key: Key("spring-sale-2026", "u42"), Message: m}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendBody(buf[:0], d)
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkKey(b *testing.B) {
	b.Run("AppendKey", func(b *testing.B) {
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendKey(buf[:0], "spring-sale-2026", "u123456789")
		}
	})
	b.Run("Key", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = Key("spring-sale-2026", "u123456789")
		}
	})
}

func BenchmarkLocale(b *testing.B) {
	s, err := Compile(typicalSpec(), Limits{})
	if err != nil {
		b.Fatal(err)
	}
	for _, in := range []string{"en", "zh-TW", "fr"} {
		b.Run(in, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = s.Locale(in)
			}
		})
	}
}
