package templates

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
)

func TestMissingAttribute(t *testing.T) {
	rec := record(t, `{"id":"u1","name":"Ann","nothing":null,"address":{"city":"Oslo"},"tags":["a",null]}`)
	tests := []struct{ name, text, attr string }{
		{"top level", "Hi {{.nick}}", "nick"},
		{"null is missing", "{{.nothing}}", "nothing"},
		{"nested", "{{.address.zip}}", "address.zip"},
		{"through a missing object", "{{.profile.age}}", "profile.age"},
		{"through a string", "{{.name.first}}", "name.first"},
		{"from $", "{{$.nick}}", "nick"},
		{"in a function argument", "{{upper .nick}}", "nick"},
		{"in a condition", "{{if .vip}}VIP{{end}}", "vip"},
		{"in a range", "{{range .tags}}{{.x}}{{end}}", "x"},
		{"through a variable", "{{$a := .address}}{{$a.zip}}", "zip"},
		{"through a chain", "{{(.address).zip}}", "zip"},
		{"index key", `{{index .address "zip"}}`, "zip"},
		{"index null item", `{{index .tags 1}}`, "[1]"},
		{"default does not cover upper's argument", `{{default "x" (upper .nick)}}`, "nick"},
		{"the second of two", "{{.name}} {{.surname}}", "surname"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Compile(Spec{DefaultLocale: "en", Locales: map[string]map[string]string{"en": {"ok": "fine", "title": tt.text}}}, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			for _, set := range []*Set{s, slow(s)} {
				m := Message{Fields: []Field{{"stale", "stale"}}}
				err := set.Render(rec, "en", &m)
				var e *MissingAttributeError
				if !errors.As(err, &e) || !errors.Is(err, ErrMissingAttribute) {
					t.Fatalf("Render = %v, want a *MissingAttributeError", err)
				}
				if e.Attr != tt.attr || e.Field != "title" || e.Locale != "en" {
					t.Errorf("error = %+v, want attr %q field \"title\" locale \"en\"", *e, tt.attr)
				}
				want := `templates: locale "en" field "title": missing attribute "` + tt.attr + `"`
				if err.Error() != want {
					t.Errorf("message %q, want %q", err, want)
				}
				if len(m.Fields) != 0 {
					t.Errorf("failed render left fields %v", m.Fields)
				}
			}
		})
	}
}

// TestFastPathMatchesTextTemplate renders the shapes the fast path takes
// both ways and wants the same bytes and errors.
func TestFastPathMatchesTextTemplate(t *testing.T) {
	recs := []Record{
		record(t, `{"id":"u1","name":"Ann","code":"X7"}`),
		record(t, `{"id":"u2","name":"","code":12345678901234567890,"n":-0,"f":2.50,"e":1e21,"b":false,"l":[1,"a",null],"o":{"k":[true]}}`),
		record(t, `{"id":"u3","name":null,"code":{"x":{"y":"deep"}}}`),
		{"id": "u4", "name": 3.5, "code": int64(7), "n": []string{"go", "types"}},
		{},
		record(t, `{"name":"élan İstanbul 你好 😀","code":"<b>&'\"","n":1e300,"f":-1234567.8915,"e":12345678901234567890,"b":true,"l":[],"o":{}}`),
		record(t, `{"name":"ann","code":"2026-01-02T03:04:05Z","n":9007199254740993,"f":0.0005,"e":-0,"b":"3","o":{"k":"v"},"l":["x",2]}`),
		{"name": float64(1234567.5), "code": 1e21, "n": int(-42), "f": float32(2.5), "e": uint64(1 << 63), "b": json.Number("x")},
	}
	texts := []string{
		"Hi {{.name}}",
		"Your code: {{.code}}",
		"{{.code.x.y}}",
		"{{$.name}}!",
		`{{default "friend" .name}}`,
		`{{.name | default "friend"}}`,
		`{{default "-" .code.x}}`,
		"{{- .name }} | {{ .code -}} .",
		"{{.n}}{{.f}}{{.e}}{{.b}}{{.l}}{{.o}}",
		"{{/* note */}}{{.id}}",
		"",
		`Hi {{ .name | default "friend" | upper }}, {{number .n}} points`,
		`{{upper (default "friend" .name)}} {{lower .name}} {{title .name}} [{{trim .name}}]`,
		`{{number .f}} {{number .e}} {{number .name}} {{fixed 2 .f}} {{fixed 0 .n}} {{.f | fixed 3}}`,
		`{{number .code}}`,
		`{{upper .n}} {{upper .b}} {{upper .l}}`,
		`{{truncate 3 .name}}{{.name | truncate 2}}{{truncate .n .name}}`,
		`{{date "2006-01-02 15:04" .code}} {{.n | date "Jan 2"}}`,
		`{{html .code}} {{js .code}} {{urlquery .code .n}} {{html .n .e .f}} [{{urlquery}}] {{default urlquery .missing}}`,
		`{{index .o "k"}} {{index .l 1}} {{default "none" (index .o "k")}} {{default "d" (index .nope "k")}}`,
		`{{default (default "friend" .nick) .missing}} {{default 3 .missing}} {{default 1.50 .missing}} {{default true .b}}`,
		`{{default .name .nick}}{{default .a .b}}`,
		`{{3}} {{1e3}} {{0x1F}} {{'a'}} {{"lit"}} {{"a b" | urlquery}} {{number 1234.5}} {{fixed 2 "3.14159"}}`,
		`{{default "x" (upper .nick)}}`,
		`{{$.name | default "x" | upper | lower}}`,
	}
	for _, text := range texts {
		s := one(t, text)
		if s.def.fields[0].fast == nil {
			t.Fatalf("%q does not take the fast path", text)
		}
		for _, rec := range recs {
			fast, fastErr := renderField(s, rec, "en")
			slowOut, slowErr := renderField(slow(s), rec, "en")
			if fast != slowOut || (fastErr == nil) != (slowErr == nil) || (fastErr != nil && fastErr.Error() != slowErr.Error()) {
				t.Errorf("%q on %v: fast %q, %v; text/template %q, %v", text, rec, fast, fastErr, slowOut, slowErr)
			}
		}
	}
}

func TestRenderedFieldLimit(t *testing.T) {
	long := strings.Repeat("é", 600) // 1200 bytes
	lim := Limits{MaxFieldBytes: 1000}
	tests := []struct {
		name, text string
		wantErr    bool
	}{
		{"attribute over", "{{.long}}", true},
		{"text over", strings.Repeat("x", 1001), true},
		{"text at the limit", strings.Repeat("x", 1000), false},
		{"default over", `{{default "` + strings.Repeat("y", 1001) + `" .missing}}`, true},
		{"sum of parts over", strings.Repeat("{{.short}}", 501), true},
		{"function result over", "{{upper .long}}", true},
		{"loop over", `{{range .list}}{{$.long}}{{end}}`, true},
		{"truncated under", "{{truncate 500 .long}}", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Compile(Spec{DefaultLocale: "en", Locales: map[string]map[string]string{"en": {"f": tt.text}}}, lim)
			if err != nil {
				t.Fatal(err)
			}
			r := Record{"long": long, "short": "ok", "list": []any{1, 2}}
			for _, set := range []*Set{s, slow(s)} {
				got, err := renderField(set, r, "en")
				if tt.wantErr {
					if !errors.Is(err, ErrFieldTooLarge) {
						t.Fatalf("Render = %d bytes, %v; want ErrFieldTooLarge", len(got), err)
					}
					var re *RenderError
					if !errors.As(err, &re) || re.Field != "f" {
						t.Errorf("error %v does not name the field", err)
					}
					continue
				}
				if err != nil || len(got) > 1000 {
					t.Fatalf("Render = %d bytes, %v", len(got), err)
				}
			}
		})
	}
}

func TestWorkIsBounded(t *testing.T) {
	items := make([]any, workPerMessage+1)
	for i := range items {
		items[i] = "x"
	}
	big := strings.Repeat("x", 60<<10)
	rec := Record{"items": items, "few": items[:10], "big": big}
	tests := []struct {
		name, text string
		wantErr    bool
	}{
		{"short list", "{{range .few}}{{.}}{{end}}", false},
		{"long list, empty body", "{{range .items}}{{end}}", true},
		{"long list over $", "{{range $.items}}{{end}}", true},
		{"many ranges share the budget", strings.Repeat("{{range .few}}{{$x := 1}}{{$x = 2}}{{$x = 3}}{{end}}", 1000), true},
		{"a few ranges fit", strings.Repeat("{{range .few}}{{.}}{{end}}", 5), false},
		{"upper of a long text, silently, many times", strings.Repeat("{{$x := upper .big}}", 40), true},
		{"comparisons of long texts", strings.Repeat("{{if eq .big .big}}{{end}}", 40), true},
		{"one upper of a long text", "{{$x := upper .big}}{{len $x}}", false},
		{"range over an integer", "{{range 1000000000}}{{end}}", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := one(t, tt.text)
			for _, set := range []*Set{s, slow(s)} {
				_, err := renderField(set, rec, "en")
				if tt.wantErr != (err != nil) {
					t.Fatalf("Render: %v, want error %v", err, tt.wantErr)
				}
				if tt.wantErr && !errors.Is(err, ErrWorkLimit) && !errors.Is(err, ErrValue) {
					t.Fatalf("Render: %v, want ErrWorkLimit", err)
				}
			}
		})
	}
	// The budget is the message's, not each field's.
	fields := map[string]string{}
	for i := range 20 {
		fields[strings.Repeat("f", i+1)] = strings.Repeat("{{$x := upper .big}}", 2)
	}
	s, err := Compile(Spec{DefaultLocale: "en", Locales: map[string]map[string]string{"en": fields}}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Render(rec, "en", &Message{}); !errors.Is(err, ErrWorkLimit) {
		t.Fatalf("Render of 20 fields: %v, want ErrWorkLimit", err)
	}
}

func TestDollarIsTheRecord(t *testing.T) {
	rec := record(t, `{"name":"Ann","o":{"name":"inner"}}`)
	tests := []struct{ text, want string }{
		{"{{$.name}}", "Ann"},
		{`{{index $ "name"}}`, "Ann"},
		{`{{index . "name"}}`, "Ann"},
		{"{{with .o}}{{.name}}/{{$.name}}{{end}}", "inner/Ann"},
		{"{{with $}}{{.name}}{{end}}", "Ann"},
		{"{{with $x := .}}{{$x.name}}{{end}}", "Ann"},
		{"{{if .}}{{.name}}{{end}}", "Ann"},
		{"{{range $k, $v := .o}}{{$k}}={{$v}}{{end}}", "name=inner"},
		{"{{len $}} {{len .}}", "2 2"},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			got, err := renderField(one(t, tt.text), rec, "en")
			if err != nil || got != tt.want {
				t.Fatalf("Render = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestRenderErrorMessages(t *testing.T) {
	rec := record(t, `{"name":"Ann","tags":["a"],"list":[null]}`)
	tests := []struct{ text, want string }{
		{"Hi {{number .name}}", `line 1 col 6: number: want a number, got "Ann"`},
		{"a\n你好 {{slice .name 0 10}}", `line 2 col 6: slice: index out of range: 10`},
		{"{{range .list}}{{.}}{{end}}", `line 1 col 18: nothing to print (the value is null or missing)`},
		{"{{index .tags 3}}", `line 1 col 3: index: index 3 out of range for a list of 1`},
		{"{{fixed 99 .name}}", `line 1 col 3: fixed: want a whole number from 0 to 20, got number 99`},
		{"x\n {{ .name | default \"a\" | number }}", `line 2 col 27: number: want a number, got "Ann"`},
		{"{{upper (number .name)}}", `line 1 col 10: number: want a number, got "Ann"`},
		{"{{default .a .b}}", `line 1 col 3: nothing to print (the value is null or missing)`},
		{"{{upper .tags}}", `line 1 col 3: upper: want text, got a list`},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			s := one(t, tt.text)
			for _, set := range []*Set{s, slow(s)} {
				checkRenderError(t, set, rec, tt.want)
			}
		})
	}
}

func checkRenderError(t *testing.T, s *Set, rec Record, want string) {
	t.Helper()
	_, err := renderField(s, rec, "en")
	var re *RenderError
	if !errors.As(err, &re) {
		t.Fatalf("Render: %v, want a *RenderError", err)
	}
	if want := `templates: locale "en" field "f": ` + want; err.Error() != want {
		t.Errorf("message\n%s\nwant\n%s", err, want)
	}
}

func TestNoValueNeverPrinted(t *testing.T) {
	rec := record(t, `{"list":[null],"o":{"k":null}}`)
	for _, text := range []string{
		"{{range .list}}{{.}}{{end}}",
		"{{range $x := .list}}{{$x}}{{end}}",
		"{{default nil .missing}}",
		"{{or nil}}",
		"{{range .list}}{{and .}}{{end}}",
	} {
		t.Run(text, func(t *testing.T) {
			got, err := renderField(one(t, text), rec, "en")
			if err == nil || strings.Contains(got, "<no value>") {
				t.Fatalf("Render = %q, %v; want an error", got, err)
			}
		})
	}
}

func TestRenderMessage(t *testing.T) {
	s, err := Compile(Spec{DefaultLocale: "en", Locales: map[string]map[string]string{
		"en": {"title": "Hi {{.name}}", "body": "Your code: {{.code}}", "a_first": "{{upper .name}}"},
		"zh": {"title": "{{.name}}，你好", "body": "优惠码：{{.code}}"},
	}}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var m Message
	if err := s.Render(record(t, `{"id":"u1","name":"Ann","code":"X7"}`), "en-US", &m); err != nil {
		t.Fatal(err)
	}
	want := []Field{{"a_first", "ANN"}, {"body", "Your code: X7"}, {"title", "Hi Ann"}}
	if m.Locale != "en" || !equalFields(m.Fields, want) {
		t.Fatalf("message %q %q, want en %q", m.Locale, m.Fields, want)
	}
	kept := m.Fields[2].Value
	// Reuse: the next render overwrites m but not strings taken from it.
	if err := s.Render(record(t, `{"id":"u2","name":"李","code":"Y8"}`), "zh-CN", &m); err != nil {
		t.Fatal(err)
	}
	want = []Field{{"body", "优惠码：Y8"}, {"title", "李，你好"}}
	if m.Locale != "zh" || !equalFields(m.Fields, want) {
		t.Fatalf("message %q %q, want zh %q", m.Locale, m.Fields, want)
	}
	if kept != "Hi Ann" {
		t.Errorf("a value kept from the first render changed to %q", kept)
	}
}

func equalFields(a, b []Field) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRenderConcurrently is for the race detector: a Set is shared by all
// of a worker's senders.
func TestRenderConcurrently(t *testing.T) {
	s, err := Compile(Spec{DefaultLocale: "en", Locales: map[string]map[string]string{
		"en": {"title": "Hi {{.name}}", "body": "{{upper .name}} {{number .n}}"},
		"de": {"title": "Hallo {{.name}}", "body": "{{fixed 2 .n}}"},
	}}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			var m Message
			for i := range 200 {
				loc := []string{"en", "de-AT", "fr", "de_CH"}[(g+i)%4]
				if err := s.Render(Record{"name": "x", "n": i}, loc, &m); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
