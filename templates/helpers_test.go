package templates

import (
	"errors"
	"testing"
)

// one compiles a single field "f" of locale "en" (or the given locale).
func one(t testing.TB, text string) *Set {
	t.Helper()
	return oneIn(t, "en", text)
}

func oneIn(t testing.TB, locale, text string) *Set {
	t.Helper()
	s, err := Compile(Spec{DefaultLocale: locale, Locales: map[string]map[string]string{locale: {"f": text}}}, Limits{})
	if err != nil {
		t.Fatalf("Compile(%q): %v", text, err)
	}
	return s
}

func record(t testing.TB, js string) Record {
	t.Helper()
	rec, err := ParseRecord([]byte(js))
	if err != nil {
		t.Fatalf("ParseRecord(%s): %v", js, err)
	}
	return rec
}

// slow returns a copy of s whose fields all run through text/template, so
// tests can check that the fast path renders exactly the same.
func slow(s *Set) *Set {
	c := &Set{lim: s.lim, variants: map[string]*variant{}}
	for _, v := range s.sorted {
		nv := &variant{locale: v.locale}
		for _, f := range v.fields {
			if f.tmpl != nil {
				f.fast = nil
			}
			nv.fields = append(nv.fields, f)
		}
		c.variants[v.locale] = nv
		c.sorted = append(c.sorted, nv)
		if v == s.def {
			c.def = nv
		}
	}
	return c
}

// renderField renders field "f" and returns its value.
func renderField(s *Set, rec Record, locale string) (string, error) {
	var m Message
	if err := s.Render(rec, locale, &m); err != nil {
		return "", err
	}
	for _, f := range m.Fields {
		if f.Name == "f" {
			return f.Value, nil
		}
	}
	return "", errors.New("no field f")
}
