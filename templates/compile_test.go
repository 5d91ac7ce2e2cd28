package templates

import (
	"errors"
	"strings"
	"testing"
)

func TestCompileSpecErrors(t *testing.T) {
	en := map[string]string{"title": "Hi"}
	many := func(n int, mk func(i int) string) map[string]string {
		m := map[string]string{}
		for i := range n {
			m[mk(i)] = "x"
		}
		return m
	}
	tests := []struct {
		name    string
		spec    Spec
		lim     Limits
		wantErr error
		// wantLocale and wantField, when set, are the *Error's.
		wantLocale, wantField string
	}{
		{name: "no locales", spec: Spec{DefaultLocale: "en"}, wantErr: ErrNoLocales},
		{name: "default missing", spec: Spec{Locales: map[string]map[string]string{"en": en}}, wantErr: ErrDefaultLocale},
		{name: "default unknown", spec: Spec{DefaultLocale: "fr", Locales: map[string]map[string]string{"en": en}}, wantErr: ErrDefaultLocale},
		{name: "negative limit", spec: Spec{DefaultLocale: "en", Locales: map[string]map[string]string{"en": en}}, lim: Limits{MaxFields: -1}, wantErr: ErrLimits},
		{
			name:    "template too large",
			spec:    Spec{DefaultLocale: "en", Locales: map[string]map[string]string{"en": {"a": strings.Repeat("x", 600)}, "fr": {"a": strings.Repeat("x", 500)}}},
			lim:     Limits{MaxTemplateBytes: 1000},
			wantErr: ErrTooLarge,
		},
		{
			name:    "default template size",
			spec:    Spec{DefaultLocale: "en", Locales: map[string]map[string]string{"en": {"a": strings.Repeat("x", 64<<10+1)}}},
			wantErr: ErrTooLarge,
		},
		{
			name: "too many locales",
			spec: Spec{DefaultLocale: "l0", Locales: func() map[string]map[string]string {
				m := map[string]map[string]string{}
				for i := range 65 {
					m["l"+strings.Repeat("x", i)] = en
				}
				m["l0"] = en
				return m
			}()},
			wantErr: ErrTooManyLocales,
		},
		{
			name:       "too many fields",
			spec:       Spec{DefaultLocale: "en", Locales: map[string]map[string]string{"en": many(33, func(i int) string { return strings.Repeat("f", i+1) })}},
			wantErr:    ErrTooManyFields,
			wantLocale: "en",
		},
		{
			name:       "fields limit",
			spec:       Spec{DefaultLocale: "en", Locales: map[string]map[string]string{"en": en, "zh": {"a": "", "b": ""}}},
			lim:        Limits{MaxFields: 1},
			wantErr:    ErrTooManyFields,
			wantLocale: "zh",
		},
		{name: "no fields", spec: Spec{DefaultLocale: "en", Locales: map[string]map[string]string{"en": {}}}, wantErr: ErrNoFields, wantLocale: "en"},
		{name: "empty field name", spec: Spec{DefaultLocale: "en", Locales: map[string]map[string]string{"en": {"": "x"}}}, wantErr: ErrEmptyName, wantLocale: "en"},
		{name: "empty locale name", spec: Spec{DefaultLocale: "en", Locales: map[string]map[string]string{"en": en, "": en}}, wantErr: ErrEmptyName},
		{
			name:       "syntax in one locale",
			spec:       Spec{DefaultLocale: "en", Locales: map[string]map[string]string{"en": en, "zh": {"title": "{{.name}，你好"}}},
			wantErr:    ErrSyntax,
			wantLocale: "zh", wantField: "title",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Compile(tt.spec, tt.lim)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Compile = %v, %v; want %v", s, err, tt.wantErr)
			}
			if tt.wantLocale == "" {
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not an *Error", err)
			}
			if e.Locale != tt.wantLocale || e.Field != tt.wantField {
				t.Errorf("error names locale %q field %q, want %q %q", e.Locale, e.Field, tt.wantLocale, tt.wantField)
			}
			if !strings.Contains(err.Error(), `locale "`+tt.wantLocale+`"`) {
				t.Errorf("message %q does not name the locale", err)
			}
		})
	}
}

func TestCompileTemplateErrors(t *testing.T) {
	tests := []struct {
		name, text string
		line, col  int
		msg        string // a part of Msg
	}{
		{name: "unclosed action", text: "{{.name}", line: 1, col: 8, msg: "bad character"},
		{name: "column counts characters", text: "你好，{{.name}", line: 1, col: 11, msg: "bad character"},
		{name: "second line", text: "Hi {{.name}},\nyour code: {{.code }", line: 2, col: 20, msg: `unexpected "}" in operand`},
		{name: "empty action", text: "Hi {{}}", line: 1, col: 6, msg: "missing value for command"},
		{name: "undefined function", text: "ab\n  {{frobnicate .x}}", line: 2, col: 5, msg: `function "frobnicate" not defined`},
		{name: "unterminated if", text: "{{if .vip}}VIP", line: 1, col: 15, msg: "unexpected EOF"},
		{name: "bad number", text: "{{truncate 1.2.3 .x}}", line: 1, col: 12, msg: `unexpected ".3"`},
		{name: "printf", text: `x {{printf "%099999999d" 1}}`, line: 1, col: 5, msg: `function "printf" is not allowed`},
		{name: "print", text: `{{print .a}}`, line: 1, col: 3, msg: `function "print" is not allowed`},
		{name: "call", text: `{{call .f}}`, line: 1, col: 3, msg: `function "call" is not allowed`},
		{name: "internal function", text: `{{_attr . "x"}}`, line: 1, col: 3, msg: `function "_attr" is not allowed`},
		{name: "define", text: `a{{define "x"}}b{{end}}`, line: 1, col: 2, msg: "{{define}}"},
		{name: "template", text: `a {{template "x"}}`, line: 1, col: 3, msg: "{{template}}"},
		{name: "block", text: `{{block "x" .}}b{{end}}`, line: 1, col: 1, msg: "not allowed"},
		{name: "nested range", text: "{{range .a}}\n {{range .b}}{{end}}{{end}}", line: 2, col: 2, msg: "range inside range"},
		{name: "nested range under if", text: "{{range .a}}{{if .}}{{range .b}}{{end}}{{end}}{{end}}", line: 1, col: 21, msg: "range inside range"},
		{name: "too few arguments", text: `{{truncate .x}}`, line: 1, col: 3, msg: "truncate takes 2 arguments, got 1"},
		{name: "too many arguments", text: `{{upper .x .y}}`, line: 1, col: 3, msg: "upper takes 1 argument, got 2"},
		{name: "function without arguments as operand", text: `{{default upper .x}}`, line: 1, col: 11, msg: "upper takes 1 argument, got 0"},
		{name: "arguments to an attribute", text: `{{.name "x"}}`, line: 1, col: 3, msg: "not a function"},
		{name: "assign to $", text: `{{$ = 1}}{{upper .x}}`, line: 1, col: 3, msg: "$ cannot be assigned"},
		{name: "declare $", text: `{{with $ := 3}}{{end}}`, line: 1, col: 8, msg: "$ cannot be assigned"},
		{name: "pipe into an attribute", text: `{{"x" | .name}}`, line: 1, col: 9, msg: "cannot pipe into .name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(Spec{DefaultLocale: "de", Locales: map[string]map[string]string{"de": {"body": tt.text}}}, Limits{})
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Compile(%q) = %v, want an *Error", tt.text, err)
			}
			if !errors.Is(err, ErrSyntax) {
				t.Errorf("error %v is not ErrSyntax", err)
			}
			if e.Locale != "de" || e.Field != "body" || e.Line != tt.line || e.Col != tt.col || !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("Compile(%q) = %+v; want line %d col %d msg containing %q", tt.text, *e, tt.line, tt.col, tt.msg)
			}
			prefix := `templates: locale "de" field "body": line `
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("message %q does not start with %q", err, prefix)
			}
		})
	}
}

func TestCompileAccepts(t *testing.T) {
	for _, text := range []string{
		"",
		"   ",
		"{{/* a comment */}}",
		"plain text with {braces} and }} and {",
		"{{- .name -}} trimmed",
		"{{range .a}}x{{end}}{{range .b}}y{{end}}",
		"{{range .a}}{{else}}{{range .b}}{{end}}{{end}}",
		`{{with $x := .a}}{{$x.b}}{{end}}`,
		`{{if and .a .b}}{{else if .c}}{{else}}{{end}}`,
	} {
		t.Run(text, func(t *testing.T) {
			if _, err := Compile(Spec{DefaultLocale: "en", Locales: map[string]map[string]string{"en": {"f": text}}}, Limits{}); err != nil {
				t.Fatal(err)
			}
		})
	}
}
