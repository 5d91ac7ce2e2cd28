package spec

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// FuzzParseSpec: Parse never panics; a refusal is a *Error whose
// ID, when set, is a valid id; an accepted spec's canonical form parses
// back to an equal spec with the same canonical form.
func FuzzParseSpec(f *testing.F) {
	f.Add([]byte(specExample))
	f.Add([]byte(`{"id":"a","audience":{"source":"synthetic","count":5,"seed":-1},"template":{"default_locale":"en","locales":{"en":{"t":"{{default \"x\" .name}}"}}},"endpoint":{"url":"https://h/p","rate_per_sec":2.5}}`))
	f.Add([]byte(`{"id":"a","audience":{"source":"file","path":"x"},"template":{"default_locale":"zh","locales":{"zh":{"t":"<{{.id}}>"}}},"endpoint":{"url":"http://h"},"not_before":"2026-01-01T00:00:00+05:30","expires_at":null}`))
	f.Add([]byte(`{"id":"a","audience":{"source":"postgres","connection":"db","table":"s.t","attribute_columns":["x","y"],"locale_column":"l"},"template":{"default_locale":"en","locales":{"en":{"t":"{{.x}}"}}},"endpoint":{"url":"http://h"}}`))
	f.Add([]byte(`{"id":"a","audience":{"source":"prepared","path":"s3://b/p","connection":"s3"},"template":{"default_locale":"en","locales":{"en":{"t":"x"}}},"endpoint":{"url":"http://h"}}`))
	f.Add([]byte(`{"id":"a","id":"b"}`))
	f.Add([]byte(`{"id":"x","endpoint":{"url":"ftp://h"}}`))
	f.Add([]byte(`{"id":"a","audience":{"source":"synthetic","count":5},"template":{"default_locale":"en","locales":{"en":{"title":"x"}}},"endpoint":{"kind":"apns","apns":{"key_secret":"k","key_id":"K","team_id":"T","topic":"b.c","priority":5}}}`))
	f.Add([]byte(`{"id":"a","audience":{"source":"synthetic","count":5},"template":{"default_locale":"en","locales":{"en":{"title":"x"}}},"endpoint":{"kind":"webpush","token_field":"sub","webpush":{"vapid_secret":"v","subject":"mailto:a@b","ttl_s":0}}}`))
	f.Add([]byte(`{"id":"a","audience":{"source":"synthetic","count":5},"template":{"default_locale":"en","locales":{"en":{"title":"x"}}},"endpoint":{"kind":"fcm","url":"https://f","fcm":{"credentials_secret":"c"},"apns":null}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"id":"x"} {}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, set, err := Parse(data, Limits{})
		if err != nil {
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q) = %v, not a *Error", data, err)
			}
			if se.ID != "" && checkID(se.ID) != "" {
				t.Fatalf("Parse(%q) names an invalid id %q", data, se.ID)
			}
			return
		}
		if set == nil {
			t.Fatalf("Parse(%q) accepted without a compiled template", data)
		}
		canon := s.Canonical()
		again, _, err := Parse(canon, Limits{})
		if err != nil {
			t.Fatalf("canonical form %s of %q is refused: %v", canon, data, err)
		}
		if !reflect.DeepEqual(again, s) {
			t.Fatalf("canonical form %s parses to\n%+v\nnot\n%+v", canon, again, s)
		}
		if !bytes.Equal(again.Canonical(), canon) {
			t.Fatalf("canonical form is not stable:\n%s\n%s", canon, again.Canonical())
		}
	})
}
