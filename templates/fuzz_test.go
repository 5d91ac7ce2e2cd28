package templates

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzRender compiles arbitrary template text, renders it for a record of
// arbitrary values, and wants no panic, no "<no value>", and a body that is
// valid JSON carrying the subscriber id (with each invalid byte as U+FFFD).
func FuzzRender(f *testing.F) {
	for _, seed := range []struct{ text, id, name, extra string }{
		{"Hi {{.name}}", "u1", "Ann", "x"},
		{`{{default "friend" .nick}}`, "u2", "", ""},
		{"{{upper .name}} {{truncate 3 .extra}} {{title .name}}", "\xff\x00\"\\", "élan", "李雷"},
		{"{{range $i, $e := .list}}{{$i}}={{$e}};{{end}}", "\u2028", "a", "b"},
		{"{{number .n}} {{fixed 2 .n}} {{date \"2006-01-02\" .t}}", "u3", "x", "1.5"},
		{"{{if gt .n 10}}{{.name}}{{else}}{{index .list 0}}{{end}}", "u4", "x", "y"},
		{"{{with .obj}}{{.name}}{{end}}{{.obj.k}}", "u5", "x", "y"},
		{"{{.name}", "u6", "", ""},
		{"{{range .list}}{{break}}{{end}}{{len .list}}{{slice .name 0 1}}", "u7", "abc", ""},
		{`Hi {{ .name | default "friend" | upper }}, {{number .n}}`, "u8", "", "x"},
		{`{{number .extra}} {{fixed 2 .extra}} {{upper .extra}} {{.extra | truncate 4 | lower}}`, "u9", "İı", "-1234567.0005"},
		{`{{default (index .obj "k") .nick}} {{html .name .n}} {{urlquery .extra}} {{title (trim .name)}}`, "u10", "<a&b>", "9007199254740993"},
		{`{{default .nick .none}}{{number 1e300}}{{date "2006" .extra}}`, "u11", "x", "1795420800.5"},
	} {
		f.Add(seed.text, seed.id, seed.name, seed.extra)
	}
	f.Fuzz(func(t *testing.T, text, id, name, extra string) {
		s, err := Compile(Spec{DefaultLocale: "en", Locales: map[string]map[string]string{
			"en": {"title": text, "body": "{{.id}}"},
		}}, Limits{MaxFieldBytes: 4096})
		if err != nil {
			var e *Error
			if !errors.As(err, &e) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("Compile(%q): unexpected error %T %v", text, err, err)
			}
			return
		}
		rec := Record{
			"id": id, "name": name, "extra": extra, "n": json.Number("12.5"), "t": "2026-01-02T03:04:05Z",
			"list": []any{name, extra, nil, json.Number("0")}, "obj": map[string]any{"name": name, "k": extra},
		}
		var m Message
		var first []Field
		var firstErr error
		for i, set := range []*Set{s, slow(s)} {
			err := set.Render(rec, "en", &m)
			// The fast path and text/template must agree to the byte.
			if i == 0 {
				first, firstErr = append([]Field(nil), m.Fields...), err
			} else if !equalFields(first, m.Fields) || (err == nil) != (firstErr == nil) || (err != nil && err.Error() != firstErr.Error()) {
				t.Fatalf("Render(%q): fast %q, %v; text/template %q, %v", text, first, firstErr, m.Fields, err)
			}
			if err != nil {
				var missing *MissingAttributeError
				var bad *RenderError
				if !errors.As(err, &missing) && !errors.As(err, &bad) {
					t.Fatalf("Render(%q): error of type %T: %v", text, err, err)
				}
				continue
			}
			for _, fl := range m.Fields {
				if strings.Contains(fl.Value, "<no value>") && !strings.Contains(text, "<no value>") {
					t.Fatalf("Render(%q) printed <no value>: %q", text, fl.Value)
				}
				if len(fl.Value) > 4096 {
					t.Fatalf("Render(%q): field of %d bytes passed the limit", text, len(fl.Value))
				}
			}
			body := AppendBody(nil, Delivery{BroadcastID: "b", SubscriberID: id, Key: Key("b", id), Message: &m})
			if !json.Valid(body) {
				t.Fatalf("AppendBody: invalid JSON %q", body)
			}
			var d struct {
				SubscriberID string            `json:"subscriber_id"`
				Message      map[string]string `json:"message"`
			}
			if err := json.Unmarshal(body, &d); err != nil {
				t.Fatal(err)
			}
			if want := string([]rune(id)); d.SubscriberID != want || d.Message["body"] != want {
				t.Fatalf("subscriber id %q came back as %q and %q, want %q", id, d.SubscriberID, d.Message["body"], want)
			}
		}
	})
}

// FuzzCompile wants Compile never to panic, and its errors to point inside
// the text.
func FuzzCompile(f *testing.F) {
	for _, seed := range []string{
		"Hi {{.name}}", "{{.name}", "{{if .x}}", "{{range .a}}{{range .b}}{{end}}{{end}}",
		`{{define "x"}}{{template "x"}}{{end}}`, "{{printf \"%d\" 1}}", "a\n{{ .b | c }}", "{{/* x */}}{{- 3 -}}",
		"{{$x := 1}}{{$x = 2}}{{$x}}", "{{.a.b.c}}{{(.a).b}}{{$.a}}", "你好{{。}}",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		_, err := Compile(Spec{DefaultLocale: "en", Locales: map[string]map[string]string{"en": {"f": text}}}, Limits{})
		if err == nil {
			return
		}
		var e *Error
		if !errors.As(err, &e) {
			if errors.Is(err, ErrTooLarge) {
				return
			}
			t.Fatalf("Compile(%q): error %T %v", text, err, err)
		}
		if e.Line == 0 {
			return
		}
		lines := strings.Split(text, "\n")
		if e.Line > len(lines) || e.Col < 1 || e.Col > len([]rune(lines[e.Line-1]))+1 {
			t.Fatalf("Compile(%q): position line %d col %d outside the text", text, e.Line, e.Col)
		}
	})
}
