package templates

import (
	"errors"
	"strings"
	"testing"
)

const funcsRecord = `{"id":"u1","name":"ann-marie o'neil","city":"  İstanbul ","nick":"",
 "points":1234567,"price":2.5,"cents":1.005,"neg":-0.4,"big":12345678901234567890,"tiny":0.0001,
 "when":"2026-11-23T10:00:00+08:00","unix":1795420800,"unixf":1795420800.5,"text_num":"42.125",
 "tags":["a","b"],"empty_list":[],"prefs":{"color":"red"},"vip":true,"off":false,"zero":0,"nothing":null,
 "bio":"héllo wörld 你好世界 😀!"}`

func TestFunctions(t *testing.T) {
	rec := record(t, funcsRecord)
	tests := []struct {
		name, locale, text, want string
		wantErr                  error
	}{
		{name: "default missing", text: `{{default "friend" .missing}}`, want: "friend"},
		{name: "default empty", text: `{{default "friend" .nick}}`, want: "friend"},
		{name: "default null", text: `{{default "friend" .nothing}}`, want: "friend"},
		{name: "default present", text: `{{default "friend" .name}}`, want: "ann-marie o'neil"},
		{name: "default piped", text: `{{.missing | default "friend"}}`, want: "friend"},
		{name: "default keeps false", text: `{{default "?" .off}}`, want: "false"},
		{name: "default keeps zero", text: `{{default "?" .zero}}`, want: "0"},
		{name: "default empty list", text: `{{default "none" .empty_list}}`, want: "none"},
		{name: "default nested missing", text: `{{default "x" .prefs.size}}`, want: "x"},
		{name: "default through a non-object", text: `{{default "x" .name.first}}`, want: "x"},
		{name: "default of variable field", text: `{{default "x" $.nope.deeper}}`, want: "x"},
		{name: "default of index", text: `{{default "blue" (index .prefs "shade")}}`, want: "blue"},
		{name: "default of index on missing object", text: `{{default "blue" (index .nope "shade")}}`, want: "blue"},
		{name: "default nested in default", text: `{{default (default "friend" .nick) .missing}}`, want: "friend"},
		{name: "default in if", text: `{{if default false .missing}}yes{{else}}no{{end}}`, want: "no"},
		{name: "default does not cover inner calls", text: `{{default "x" (upper .missing)}}`, wantErr: ErrMissingAttribute},

		{name: "upper", text: `{{upper .name}}`, want: "ANN-MARIE O'NEIL"},
		{name: "upper unicode", text: `{{upper "straße"}}`, want: "STRASSE"},
		{name: "upper turkish", locale: "tr", text: `{{upper "istanbul"}}`, want: "İSTANBUL"},
		{name: "lower", text: `{{lower .city}}`, want: "  i̇stanbul "},
		{name: "lower turkish", locale: "tr", text: `{{lower "İSTANBUL"}}`, want: "istanbul"},
		{name: "title", text: `{{title .name}}`, want: "Ann-Marie O'neil"},
		{name: "title keeps the rest", text: `{{title "mcDONALD élan"}}`, want: "McDONALD Élan"},
		{name: "title dutch", locale: "nl", text: `{{title "ijsselmeer"}}`, want: "IJsselmeer"},
		{name: "upper of a number", text: `{{upper .points}}`, want: "1234567"},
		{name: "upper of a list", text: `{{upper .tags}}`, wantErr: ErrValue},
		{name: "trim", text: `[{{trim .city}}]`, want: "[İstanbul]"},
		{name: "truncate runes", text: `{{truncate 14 .bio}}`, want: "héllo wörld 你好"},
		{name: "truncate emoji", text: `{{truncate 18 .bio}}`, want: "héllo wörld 你好世界 😀"},
		{name: "truncate longer than text", text: `{{truncate 100 .bio}}`, want: "héllo wörld 你好世界 😀!"},
		{name: "truncate zero", text: `[{{truncate 0 .bio}}]`, want: "[]"},
		{name: "truncate piped", text: `{{.bio | truncate 5}}`, want: "héllo"},
		{name: "truncate negative", text: `{{truncate -1 .bio}}`, wantErr: ErrValue},

		{name: "number", text: `{{number .points}}`, want: "1,234,567"},
		{name: "number german", locale: "de", text: `{{number .points}}`, want: "1.234.567"},
		{name: "number french", locale: "fr", text: `{{number 1234.5}}`, want: "1\u00a0234,5"},
		{name: "number hindi grouping", locale: "hi", text: `{{number .points}}`, want: "12,34,567"},
		{name: "number decimals", text: `{{number 1234.56789}}`, want: "1,234.568"},
		{name: "number half away from zero", text: `{{number 0.0005}}`, want: "0.001"},
		{name: "number big exact", text: `{{number .big}}`, want: "12,345,678,901,234,567,168"},
		{name: "number from text", text: `{{number .text_num}}`, want: "42.125"},
		{name: "number negative", text: `{{number .neg}}`, want: "-0.4"},
		{name: "number of a name", text: `{{number .name}}`, wantErr: ErrValue},
		{name: "fixed", text: `{{fixed 2 .price}}`, want: "2.50"},
		{name: "fixed rounds half up", text: `{{fixed 2 .cents}}`, want: "1.01"},
		{name: "fixed zero digits", text: `{{fixed 0 .price}}`, want: "3"},
		{name: "fixed negative rounds to zero", text: `{{fixed 0 .neg}}`, want: "0"},
		{name: "fixed integer", text: `{{fixed 2 .points}}`, want: "1,234,567.00"},
		{name: "fixed german", locale: "de", text: `{{fixed 2 .price}}`, want: "2,50"},
		{name: "fixed too many digits", text: `{{fixed 21 .price}}`, wantErr: ErrValue},
		{name: "fixed digits from attribute", text: `{{fixed .zero .price}}`, want: "3"},

		{name: "date rfc3339 keeps offset", text: `{{date "2006-01-02 15:04 -07:00" .when}}`, want: "2026-11-23 10:00 +08:00"},
		{name: "date unix in utc", text: `{{date "Mon 2 Jan 2006 15:04 MST" .unix}}`, want: "Mon 23 Nov 2026 08:00 UTC"},
		{name: "date unix fraction", text: `{{date "15:04:05.0" .unixf}}`, want: "08:00:00.5"},
		{name: "date literal", text: `{{date "Jan 2" "2026-01-05T00:00:00Z"}}`, want: "Jan 5"},
		{name: "date of a name", text: `{{date "2006" .name}}`, wantErr: ErrValue},

		{name: "eq number", text: `{{if eq .points 1234567}}y{{else}}n{{end}}`, want: "y"},
		{name: "eq any of", text: `{{if eq .name "x" "ann-marie o'neil"}}y{{else}}n{{end}}`, want: "y"},
		{name: "ne", text: `{{if ne .zero 0}}y{{else}}n{{end}}`, want: "n"},
		{name: "lt float", text: `{{if lt .price 3}}y{{else}}n{{end}}`, want: "y"},
		{name: "le", text: `{{if le .points 1234567}}y{{else}}n{{end}}`, want: "y"},
		{name: "gt", text: `{{if gt .points 1000}}y{{else}}n{{end}}`, want: "y"},
		{name: "ge string", text: `{{if ge .name "b"}}y{{else}}n{{end}}`, want: "n"},
		{name: "eq bool", text: `{{if eq .vip true}}y{{else}}n{{end}}`, want: "y"},
		{name: "eq number with text", text: `{{if eq .points "1234567"}}y{{else}}n{{end}}`, want: "y"},
		{name: "lt bools", text: `{{if lt .vip .off}}y{{end}}`, wantErr: ErrValue},
		{name: "eq list", text: `{{if eq .tags 1}}y{{end}}`, wantErr: ErrValue},

		{name: "index object", text: `{{index .prefs "color"}}`, want: "red"},
		{name: "index list", text: `{{index .tags 1}}`, want: "b"},
		{name: "index missing key", text: `{{index .prefs "shade"}}`, wantErr: ErrMissingAttribute},
		{name: "index out of range", text: `{{index .tags 5}}`, wantErr: ErrValue},
		{name: "len", text: `{{len .tags}}`, want: "2"},
		{name: "zero is false", text: `{{if .zero}}y{{else}}n{{end}}`, want: "n"},
		{name: "slice with attribute bound", text: `{{slice .name 0 (len .tags)}}`, want: "an"},
		{name: "and or not", text: `{{and .vip (or .off .zero) (not .off)}}`, want: "0"},
		{name: "slice", text: `{{slice .name 0 3}}`, want: "ann"},
		{name: "urlquery", text: `{{urlquery .name}}`, want: "ann-marie+o%27neil"},
		{name: "urlquery without arguments", text: `[{{urlquery}}]`, want: "[]"},
		{name: "urlquery as an operand", text: `[{{default urlquery .missing}}]`, want: "[]"},
		{name: "urlquery piped", text: `{{"a b" | urlquery}}`, want: "a+b"},
		{name: "html", text: `{{html "<b>"}}`, want: "&lt;b&gt;"},
		{name: "js", text: `{{js "it's"}}`, want: `it\'s`},

		{name: "range list", text: `{{range $i, $t := .tags}}{{if $i}},{{end}}{{$t}}{{end}}`, want: "a,b"},
		{name: "range object", text: `{{range $k, $v := .prefs}}{{$k}}={{$v}}{{end}}`, want: "color=red"},
		{name: "range else", text: `{{range .empty_list}}x{{else}}none{{end}}`, want: "none"},
		{name: "range break", text: `{{range .tags}}{{.}}{{break}}{{end}}`, want: "a"},
		{name: "range over a number", text: `{{range .points}}x{{end}}`, wantErr: ErrValue},
		{name: "range over an integer literal", text: `{{range 1000000000}}{{end}}`, wantErr: ErrValue},
		{name: "with", text: `{{with .prefs}}{{.color}}{{end}}`, want: "red"},
		{name: "variables", text: `{{$n := upper .name}}{{$n}}`, want: "ANN-MARIE O'NEIL"},
		{name: "prints numbers as written", text: `{{.points}} {{.price}} {{.big}}`, want: "1234567 2.5 12345678901234567890"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			locale := tt.locale
			if locale == "" {
				locale = "en"
			}
			s, err := Compile(Spec{DefaultLocale: locale, Locales: map[string]map[string]string{locale: {"f": tt.text}}}, Limits{})
			if err != nil {
				t.Fatalf("Compile(%q): %v", tt.text, err)
			}
			got, err := renderField(s, rec, locale)
			// The fast path and text/template must agree to the byte.
			slowGot, slowErr := renderField(slow(s), rec, locale)
			if got != slowGot || (err == nil) != (slowErr == nil) || (err != nil && err.Error() != slowErr.Error()) {
				t.Errorf("Render(%q): fast %q, %v; text/template %q, %v", tt.text, got, err, slowGot, slowErr)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Render(%q) = %q, %v; want error %v", tt.text, got, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "_attr") || strings.Contains(err.Error(), "_print") {
					t.Errorf("error %q shows the rewritten template", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Render(%q) = %q, %v; want %q", tt.text, got, err, tt.want)
			}
		})
	}
}
