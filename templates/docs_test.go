package templates

import (
	"os"
	"strings"
	"testing"
)

// TestDocExamples renders every example of docs/TEMPLATES.md, so the page
// cannot drift from the code.
func TestDocExamples(t *testing.T) {
	page, err := os.ReadFile("../docs/TEMPLATES.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(page), "<!-- examples:begin -->")
	table, _, ok2 := strings.Cut(rest, "<!-- examples:end -->")
	if !ok || !ok2 {
		t.Fatal("examples markers not found")
	}
	rec := record(t, `{"name":"ann-marie o'neil","nick":"","city":"  Oslo ","points":1234567,
		"price":2.5,"cents":1.005,"zero":0,"when":"2026-11-23T10:00:00+08:00","unix":1795420800,
		"tags":["a","b"],"prefs":{"color":"red"},"vip":true,"bio":"héllo wörld 你好世界 😀!"}`)
	n := 0
	for _, line := range strings.Split(table, "\n") {
		cells := splitRow(line)
		if len(cells) != 3 || !strings.HasPrefix(cells[1], "`") {
			continue
		}
		locale, text, want := cells[0], strings.Trim(cells[1], "`"), strings.Trim(cells[2], "`")
		n++
		t.Run(text, func(t *testing.T) {
			got, err := renderField(oneIn(t, locale, text), rec, locale)
			if err != nil || got != want {
				t.Fatalf("%s %q = %q, %v; the page says %q", locale, text, got, err, want)
			}
		})
	}
	if n < 30 {
		t.Fatalf("found only %d examples", n)
	}
}

// splitRow splits a markdown table row on the | that are not escaped.
func splitRow(line string) []string {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "|") || !strings.HasSuffix(line, "|") {
		return nil
	}
	var cells []string
	var cell strings.Builder
	for i := 1; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line) && line[i+1] == '|':
			cell.WriteByte('|')
			i++
		case line[i] == '|':
			cells = append(cells, strings.TrimSpace(cell.String()))
			cell.Reset()
		default:
			cell.WriteByte(line[i])
		}
	}
	return cells
}
