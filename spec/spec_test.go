package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/templates"
	"github.com/herald-dev/herald/worker/audience"
)

// specExample is the example trigger value of Herald's contracts: a file
// audience, two locales, an endpoint and a time window.
const specExample = `{
  "id": "spring-sale-2026",
  "audience": {"source": "file", "path": "/data/followers.jsonl"},
  "only_reachable": true,
  "template": {
    "default_locale": "en",
    "locales": {
      "en": {"title": "Hi {{.name}}", "body": "Your code: {{.code}}"},
      "zh": {"title": "{{.name}}，你好", "body": "优惠码：{{.code}}"}
    }
  },
  "endpoint": {"url": "http://127.0.0.1:9000/push", "max_in_flight": 64, "rate_per_sec": 0,
               "timeout_ms": 5000, "max_attempts": 6},
  "not_before": "2026-11-23T10:00:00Z",
  "expires_at": "2026-11-24T10:00:00Z"
}`

// specJSON is a small valid spec with edit applied to its decoded form, so
// each test case states only what it changes. A nil value deletes a key.
func specJSON(t *testing.T, edits map[string]any) []byte {
	t.Helper()
	m := map[string]any{
		"id":       "spring-sale",
		"audience": map[string]any{"source": "synthetic", "count": 1000, "seed": 7},
		"template": map[string]any{
			"default_locale": "en",
			"locales":        map[string]any{"en": map[string]any{"title": "Hi {{.name}}"}},
		},
		"endpoint": map[string]any{"url": "https://push.example.com/v1"},
	}
	for path, v := range edits {
		keys := strings.Split(path, ".")
		obj := m
		for _, k := range keys[:len(keys)-1] {
			next, ok := obj[k].(map[string]any)
			if !ok {
				next = map[string]any{}
				obj[k] = next
			}
			obj = next
		}
		if v == nil {
			delete(obj, keys[len(keys)-1])
		} else {
			obj[keys[len(keys)-1]] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParse(t *testing.T, data []byte) (Spec, *templates.Set) {
	t.Helper()
	s, set, err := Parse(data, Limits{})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if set == nil {
		t.Fatal("Parse returned no compiled template")
	}
	return s, set
}

func TestParseExample(t *testing.T) {
	s, _ := mustParse(t, []byte(specExample))
	nb := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	ex := nb.Add(24 * time.Hour)
	want := Spec{
		ID:            "spring-sale-2026",
		Audience:      audience.Spec{Source: "file", Path: "/data/followers.jsonl"},
		OnlyReachable: true,
		Template: templates.Spec{DefaultLocale: "en", Locales: map[string]map[string]string{
			"en": {"title": "Hi {{.name}}", "body": "Your code: {{.code}}"},
			"zh": {"title": "{{.name}}，你好", "body": "优惠码：{{.code}}"},
		}},
		Endpoint:  Endpoint{URL: "http://127.0.0.1:9000/push", MaxInFlight: 64, RatePerSec: 0, TimeoutMS: 5000, MaxAttempts: 6},
		NotBefore: &nb,
		ExpiresAt: &ex,
	}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("Parse =\n%+v\nwant\n%+v", s, want)
	}
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name  string
		edits map[string]any
		check func(t *testing.T, s Spec)
	}{
		{
			name: "endpoint defaults",
			check: func(t *testing.T, s Spec) {
				want := Endpoint{URL: "https://push.example.com/v1", MaxInFlight: 64, TimeoutMS: 5000, MaxAttempts: 6}
				if s.Endpoint != want || s.OnlyReachable || s.NotBefore != nil || s.ExpiresAt != nil {
					t.Fatalf("got %+v", s)
				}
			},
		},
		{
			name:  "endpoint bounds, low",
			edits: map[string]any{"endpoint.max_in_flight": 1, "endpoint.timeout_ms": 1, "endpoint.max_attempts": 1, "endpoint.rate_per_sec": 0.5},
			check: func(t *testing.T, s Spec) {
				want := Endpoint{URL: "https://push.example.com/v1", MaxInFlight: 1, RatePerSec: 0.5, TimeoutMS: 1, MaxAttempts: 1}
				if s.Endpoint != want {
					t.Fatalf("got %+v", s.Endpoint)
				}
			},
		},
		{
			name:  "endpoint bounds, high",
			edits: map[string]any{"endpoint.max_in_flight": 1024, "endpoint.timeout_ms": 600000, "endpoint.max_attempts": 20, "endpoint.rate_per_sec": 1e6},
			check: func(t *testing.T, s Spec) {
				if e := s.Endpoint; e.MaxInFlight != 1024 || e.TimeoutMS != 600000 || e.MaxAttempts != 20 || e.RatePerSec != 1e6 {
					t.Fatalf("got %+v", e)
				}
			},
		},
		{
			name:  "http2 off",
			edits: map[string]any{"endpoint.http2": "off"},
			check: func(t *testing.T, s Spec) {
				if s.Endpoint.HTTP2 != HTTP2Off {
					t.Fatalf("got %+v", s.Endpoint)
				}
			},
		},
		{
			name:  "http2 auto is the default, held as empty",
			edits: map[string]any{"endpoint.http2": "auto"},
			check: func(t *testing.T, s Spec) {
				if s.Endpoint.HTTP2 != "" {
					t.Fatalf("got %+v", s.Endpoint)
				}
			},
		},
		{
			name:  "h2c over http",
			edits: map[string]any{"endpoint.http2": "h2c", "endpoint.url": "http://push.internal:8080/v1"},
			check: func(t *testing.T, s Spec) {
				if s.Endpoint.HTTP2 != HTTP2H2C {
					t.Fatalf("got %+v", s.Endpoint)
				}
			},
		},
		{
			name:  "batches of 100",
			edits: map[string]any{"endpoint.batch_size": 100},
			check: func(t *testing.T, s Spec) {
				if s.Endpoint.BatchSize != 100 || s.Endpoint.Batch() != 100 {
					t.Fatalf("got %+v", s.Endpoint)
				}
			},
		},
		{
			name: "postgres audience",
			edits: map[string]any{"audience": map[string]any{"source": "postgres", "connection": "audience-db", "table": "public.subscribers",
				"id_column": "member_id", "position_column": "pos", "locale_column": "lang", "reachable_column": "opted_in",
				"attribute_columns": []any{"name", "plan"}}},
			check: func(t *testing.T, s Spec) {
				want := audience.Spec{Source: "postgres", Connection: "audience-db", Table: "public.subscribers", IDColumn: "member_id",
					PositionColumn: "pos", LocaleColumn: "lang", ReachableColumn: "opted_in", AttributeColumns: []string{"name", "plan"}}
				if !reflect.DeepEqual(s.Audience, want) {
					t.Fatalf("got %+v", s.Audience)
				}
			},
		},
		{
			name: "batch size left out is one a request",
			check: func(t *testing.T, s Spec) {
				if s.Endpoint.BatchSize != 0 || s.Endpoint.Batch() != 1 {
					t.Fatalf("got %+v", s.Endpoint)
				}
			},
		},
		{
			name:  "prepared audience in object storage",
			edits: map[string]any{"audience": map[string]any{"source": "prepared", "path": "s3://audiences/spring", "connection": "s3-audiences"}},
			check: func(t *testing.T, s Spec) {
				if !reflect.DeepEqual(s.Audience, audience.Spec{Source: "prepared", Path: "s3://audiences/spring", Connection: "s3-audiences"}) {
					t.Fatalf("got %+v", s.Audience)
				}
			},
		},
		{
			name:  "id of 128 characters from the whole alphabet",
			edits: map[string]any{"id": strings.Repeat("aZ09._-", 18) + "ab"},
			check: func(t *testing.T, s Spec) {
				if len(s.ID) != 128 {
					t.Fatalf("id %q", s.ID)
				}
			},
		},
		{
			name:  "times with offsets become UTC",
			edits: map[string]any{"not_before": "2026-11-23T11:00:00+01:00", "expires_at": "2026-11-23T10:00:00.5Z"},
			check: func(t *testing.T, s Spec) {
				if s.NotBefore.Location() != time.UTC || !s.NotBefore.Equal(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)) {
					t.Fatalf("not_before %v", s.NotBefore)
				}
			},
		},
		{
			name:  "null means absent",
			edits: map[string]any{"not_before": json.RawMessage("null"), "only_reachable": json.RawMessage("null")},
			check: func(t *testing.T, s Spec) {
				if s.NotBefore != nil || s.OnlyReachable {
					t.Fatalf("got %+v", s)
				}
			},
		},
		{
			name:  "file audience",
			edits: map[string]any{"audience": map[string]any{"source": "file", "path": "followers.jsonl"}},
			check: func(t *testing.T, s Spec) {
				if !reflect.DeepEqual(s.Audience, audience.Spec{Source: "file", Path: "followers.jsonl"}) {
					t.Fatalf("got %+v", s.Audience)
				}
			},
		},
		{
			name:  "secret names",
			edits: map[string]any{"endpoint.signing_secret": "push.signing-key_2", "endpoint.auth_secret": "A"},
			check: func(t *testing.T, s Spec) {
				if s.Endpoint.SigningSecret != "push.signing-key_2" || s.Endpoint.AuthSecret != "A" {
					t.Fatalf("got %+v", s.Endpoint)
				}
			},
		},
		{
			name:  "https with port, user and query",
			edits: map[string]any{"endpoint.url": "HTTPS://u:p@push.example.com:8443/v1?x=1"},
			check: func(t *testing.T, s Spec) {
				if s.Endpoint.URL != "HTTPS://u:p@push.example.com:8443/v1?x=1" {
					t.Fatalf("url %q", s.Endpoint.URL)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := mustParse(t, specJSON(t, tt.edits))
			tt.check(t, s)
		})
	}
}

func TestParseRefuses(t *testing.T) {
	valid := string(specJSON(t, nil))
	tests := []struct {
		name  string
		data  string
		lim   Limits
		id    string // the Error's ID
		field string
		msg   string // a part of the message
	}{
		// The document as a whole.
		{name: "empty", data: ``, msg: "not valid JSON"},
		{name: "not JSON", data: `id: x`, msg: "not valid JSON"},
		{name: "truncated", data: valid[:len(valid)-1], id: "spring-sale", msg: "not valid JSON"},
		{name: "list", data: `[` + valid + `]`, msg: "must be an object"},
		{name: "data after the spec", data: valid + ` {}`, id: "spring-sale", msg: "data after the spec"},
		{name: "second document", data: valid + valid, id: "spring-sale", msg: "data after the spec"},
		{name: "too large", data: specExample, lim: Limits{MaxBytes: 40}, id: "spring-sale-2026", msg: "more than the limit of 40"},
		{name: "too large once defaults are filled in", data: valid, lim: Limits{MaxBytes: len(valid) + 10}, id: "spring-sale", msg: "with defaults filled in"},
		{name: "too large, id past the limit", data: `{"template":{},"id":"spring-sale"}`, lim: Limits{MaxBytes: 20}, msg: "more than the limit"},

		// Strictness.
		{name: "unknown field", data: string(specJSON(t, map[string]any{"colour": "red"})), id: "spring-sale", field: "colour", msg: "unknown field"},
		{name: "unknown nested field", data: string(specJSON(t, map[string]any{"endpoint.urll": "x"})), id: "spring-sale", field: "endpoint.urll", msg: "unknown field"},
		{name: "unknown audience field", data: string(specJSON(t, map[string]any{"audience.filter": "x"})), id: "spring-sale", field: "audience.filter", msg: "unknown field"},
		{name: "keys are case sensitive", data: strings.Replace(valid, `"endpoint"`, `"Endpoint"`, 1), id: "spring-sale", field: "Endpoint", msg: "unknown field"},
		{name: "duplicate key", data: strings.Replace(valid, `"url":`, `"url":"http://a","url":`, 1), id: "spring-sale", field: "endpoint.url", msg: "given twice"},
		{name: "duplicate id", data: strings.Replace(valid, `"id":"spring-sale"`, `"id":"a","id":"b"`, 1), field: "id", msg: "given twice"},
		{name: "duplicate locale", data: strings.Replace(valid, `"en":{`, `"en":{},"en":{`, 1), id: "spring-sale", field: "template.locales.en", msg: "given twice"},
		{name: "long unknown key is cut", data: string(specJSON(t, map[string]any{strings.Repeat("k", 500): 1})), id: "spring-sale", field: strings.Repeat("k", 64) + "...", msg: "unknown field"},

		// Types.
		{name: "id a number", data: string(specJSON(t, map[string]any{"id": 7})), field: "id", msg: "must be a string"},
		{name: "only_reachable a string", data: string(specJSON(t, map[string]any{"only_reachable": "yes"})), id: "spring-sale", field: "only_reachable", msg: "must be true or false"},
		{name: "max_in_flight a string", data: string(specJSON(t, map[string]any{"endpoint.max_in_flight": "64"})), id: "spring-sale", field: "endpoint.max_in_flight", msg: "must be an integer"},
		{name: "max_in_flight a fraction", data: string(specJSON(t, map[string]any{"endpoint.max_in_flight": 1.5})), id: "spring-sale", field: "endpoint.max_in_flight", msg: "must be an integer"},
		{name: "count beyond int64", data: string(specJSON(t, map[string]any{"audience.count": json.Number("99999999999999999999")})), id: "spring-sale", field: "audience.count", msg: "in range"},
		{name: "rate a string", data: string(specJSON(t, map[string]any{"endpoint.rate_per_sec": "fast"})), id: "spring-sale", field: "endpoint.rate_per_sec", msg: "must be a number"},
		{name: "rate beyond float64", data: string(specJSON(t, map[string]any{"endpoint.rate_per_sec": json.Number("1e400")})), id: "spring-sale", field: "endpoint.rate_per_sec", msg: "in range"},
		{name: "endpoint a string", data: string(specJSON(t, map[string]any{"endpoint": "http://x"})), id: "spring-sale", field: "endpoint", msg: "must be an object"},
		{name: "locales a list", data: string(specJSON(t, map[string]any{"template.locales": []any{"en"}})), id: "spring-sale", field: "template.locales", msg: "must be an object"},
		{name: "template text a number", data: string(specJSON(t, map[string]any{"template.locales.en.title": 5})), id: "spring-sale", field: "template.locales.en.title", msg: "must be a string"},
		{name: "time not RFC 3339", data: string(specJSON(t, map[string]any{"not_before": "2026-11-23 10:00"})), id: "spring-sale", field: "not_before", msg: "RFC 3339"},
		{name: "time a number", data: string(specJSON(t, map[string]any{"expires_at": 1764000000})), id: "spring-sale", field: "expires_at", msg: "RFC 3339"},

		// The id.
		{name: "id missing", data: string(specJSON(t, map[string]any{"id": nil})), field: "id", msg: "required"},
		{name: "id empty", data: string(specJSON(t, map[string]any{"id": ""})), field: "id", msg: "required"},
		{name: "id too long", data: string(specJSON(t, map[string]any{"id": strings.Repeat("a", 129)})), field: "id", msg: "more than 128"},
		{name: "id with a space", data: string(specJSON(t, map[string]any{"id": "spring sale"})), field: "id", msg: "only A-Z"},
		{name: "id with a slash", data: string(specJSON(t, map[string]any{"id": "a/b"})), field: "id", msg: "only A-Z"},
		{name: "id not ASCII", data: string(specJSON(t, map[string]any{"id": "été"})), field: "id", msg: "only A-Z"},

		// The audience.
		{name: "audience missing", data: string(specJSON(t, map[string]any{"audience": nil})), id: "spring-sale", field: "audience.source", msg: "required"},
		{name: "unknown source", data: string(specJSON(t, map[string]any{"audience.source": "kafka"})), id: "spring-sale", field: "audience.source", msg: "unknown source"},
		{name: "file without path", data: string(specJSON(t, map[string]any{"audience": map[string]any{"source": "file"}})), id: "spring-sale", field: "audience.path", msg: "required"},
		{name: "attribute_columns a string", data: string(specJSON(t, map[string]any{"audience": map[string]any{"source": "postgres", "connection": "db", "table": "t", "attribute_columns": "name"}})), id: "spring-sale", field: "audience.attribute_columns", msg: "must be an array"},
		{name: "attribute column a number", data: string(specJSON(t, map[string]any{"audience": map[string]any{"source": "postgres", "connection": "db", "table": "t", "attribute_columns": []any{"name", 3}}})), id: "spring-sale", field: "audience.attribute_columns[1]", msg: "must be a string"},
		{name: "postgres password in connection", data: string(specJSON(t, map[string]any{"audience": map[string]any{"source": "postgres", "connection": "postgres://u:pw@h/d", "table": "t"}})), id: "spring-sale", field: "audience.connection", msg: "secret name"},
		{name: "postgres table not a name", data: string(specJSON(t, map[string]any{"audience": map[string]any{"source": "postgres", "connection": "db", "table": "t where 1=1"}})), id: "spring-sale", field: "audience.table", msg: "plain SQL name"},
		{name: "prepared s3 without connection", data: string(specJSON(t, map[string]any{"audience": map[string]any{"source": "prepared", "path": "s3://b/p"}})), id: "spring-sale", field: "audience.connection", msg: "required"},
		{name: "synthetic without count", data: string(specJSON(t, map[string]any{"audience.count": nil})), id: "spring-sale", field: "audience.count", msg: "must be 1 to"},
		{name: "synthetic too large", data: string(specJSON(t, map[string]any{"audience.count": 10_000_000_001})), id: "spring-sale", field: "audience.count", msg: "must be 1 to"},

		// The template.
		{name: "template missing", data: string(specJSON(t, map[string]any{"template": nil})), id: "spring-sale", field: "template.locales", msg: "no locales"},
		{name: "default locale missing", data: string(specJSON(t, map[string]any{"template.default_locale": nil})), id: "spring-sale", field: "template.default_locale", msg: "missing"},
		{name: "default locale not among locales", data: string(specJSON(t, map[string]any{"template.default_locale": "fr"})), id: "spring-sale", field: "template.default_locale", msg: `"fr"`},
		{name: "template does not parse", data: string(specJSON(t, map[string]any{"template.locales.zh": map[string]any{"title": "Hi {{.name"}})), id: "spring-sale", field: "template.locales.zh.title", msg: "line 1 col"},
		{name: "locale without fields", data: string(specJSON(t, map[string]any{"template.locales.fr": map[string]any{}})), id: "spring-sale", field: "template.locales.fr", msg: "no fields"},
		{name: "template too large", data: string(specJSON(t, map[string]any{"template.locales.en.title": strings.Repeat("x", 100)})), lim: Limits{Template: templates.Limits{MaxTemplateBytes: 50}}, id: "spring-sale", field: "template", msg: "limit"},

		// The endpoint.
		{name: "url missing", data: string(specJSON(t, map[string]any{"endpoint.url": nil})), id: "spring-sale", field: "endpoint.url", msg: "required"},
		{name: "url ftp", data: string(specJSON(t, map[string]any{"endpoint.url": "ftp://push.example.com/"})), id: "spring-sale", field: "endpoint.url", msg: "must be http or https"},
		{name: "url relative", data: string(specJSON(t, map[string]any{"endpoint.url": "/push"})), id: "spring-sale", field: "endpoint.url", msg: "must be http or https"},
		{name: "url without host", data: string(specJSON(t, map[string]any{"endpoint.url": "http:///push"})), id: "spring-sale", field: "endpoint.url", msg: "must have a host"},
		{name: "url opaque", data: string(specJSON(t, map[string]any{"endpoint.url": "http:push"})), id: "spring-sale", field: "endpoint.url", msg: "must have a host"},
		{name: "url unparsable", data: string(specJSON(t, map[string]any{"endpoint.url": "http://[::1/push"})), id: "spring-sale", field: "endpoint.url", msg: "not a URL"},
		{name: "max_in_flight negative", data: string(specJSON(t, map[string]any{"endpoint.max_in_flight": -1})), id: "spring-sale", field: "endpoint.max_in_flight", msg: "1 to 1024"},
		{name: "max_in_flight too many", data: string(specJSON(t, map[string]any{"endpoint.max_in_flight": 1025})), id: "spring-sale", field: "endpoint.max_in_flight", msg: "1 to 1024"},
		{name: "timeout negative", data: string(specJSON(t, map[string]any{"endpoint.timeout_ms": -5})), id: "spring-sale", field: "endpoint.timeout_ms", msg: "1 to 600000"},
		{name: "timeout too long", data: string(specJSON(t, map[string]any{"endpoint.timeout_ms": 600001})), id: "spring-sale", field: "endpoint.timeout_ms", msg: "1 to 600000"},
		{name: "attempts too many", data: string(specJSON(t, map[string]any{"endpoint.max_attempts": 21})), id: "spring-sale", field: "endpoint.max_attempts", msg: "1 to 20"},
		{name: "attempts negative", data: string(specJSON(t, map[string]any{"endpoint.max_attempts": -1})), id: "spring-sale", field: "endpoint.max_attempts", msg: "1 to 20"},
		{name: "rate too small to represent", data: string(specJSON(t, map[string]any{"endpoint.rate_per_sec": 1e-300})), id: "spring-sale", field: "endpoint.rate_per_sec", msg: "at least 0.001"},
		{name: "rate below the minimum", data: string(specJSON(t, map[string]any{"endpoint.rate_per_sec": 0.0009})), id: "spring-sale", field: "endpoint.rate_per_sec", msg: "at least 0.001"},
		{name: "rate negative", data: string(specJSON(t, map[string]any{"endpoint.rate_per_sec": -1})), id: "spring-sale", field: "endpoint.rate_per_sec", msg: "0 (unlimited) or more"},
		{name: "secret name with a path", data: string(specJSON(t, map[string]any{"endpoint.signing_secret": "../etc/passwd"})), id: "spring-sale", field: "endpoint.signing_secret", msg: "must not start with a dot"},
		{name: "secret name with a slash", data: string(specJSON(t, map[string]any{"endpoint.signing_secret": "a/b"})), id: "spring-sale", field: "endpoint.signing_secret", msg: `character '/'`},
		{name: "secret name hidden", data: string(specJSON(t, map[string]any{"endpoint.auth_secret": ".env"})), id: "spring-sale", field: "endpoint.auth_secret", msg: "must not start with a dot"},
		{name: "secret name with a space", data: string(specJSON(t, map[string]any{"endpoint.auth_secret": "a b"})), id: "spring-sale", field: "endpoint.auth_secret", msg: "A-Z a-z 0-9"},
		{name: "secret name too long", data: string(specJSON(t, map[string]any{"endpoint.auth_secret": strings.Repeat("s", 129)})), id: "spring-sale", field: "endpoint.auth_secret", msg: "more than 128"},
		{name: "secret name not a string", data: string(specJSON(t, map[string]any{"endpoint.auth_secret": 7})), id: "spring-sale", field: "endpoint.auth_secret", msg: "must be a string"},
		{name: "batch size negative", data: string(specJSON(t, map[string]any{"endpoint.batch_size": -1})), id: "spring-sale", field: "endpoint.batch_size", msg: "must be 1 to 1000"},
		{name: "batch size too large", data: string(specJSON(t, map[string]any{"endpoint.batch_size": 1001})), id: "spring-sale", field: "endpoint.batch_size", msg: "must be 1 to 1000"},
		{name: "batch size a fraction", data: string(specJSON(t, map[string]any{"endpoint.batch_size": 2.5})), id: "spring-sale", field: "endpoint.batch_size", msg: "must be an integer"},
		{name: "http2 unknown mode", data: string(specJSON(t, map[string]any{"endpoint.http2": "on"})), id: "spring-sale", field: "endpoint.http2", msg: `must be "auto", "off" or "h2c"`},
		{name: "http2 case sensitive", data: string(specJSON(t, map[string]any{"endpoint.http2": "OFF"})), id: "spring-sale", field: "endpoint.http2", msg: `must be "auto", "off" or "h2c"`},
		{name: "http2 a bool", data: string(specJSON(t, map[string]any{"endpoint.http2": true})), id: "spring-sale", field: "endpoint.http2", msg: "must be a string"},
		{name: "h2c over https", data: string(specJSON(t, map[string]any{"endpoint.http2": "h2c"})), id: "spring-sale", field: "endpoint.http2", msg: "for http:// URLs only"},

		// The times.
		{name: "expires when it starts", data: string(specJSON(t, map[string]any{"not_before": "2026-11-23T10:00:00Z", "expires_at": "2026-11-23T11:00:00+01:00"})), id: "spring-sale", field: "expires_at", msg: "after not_before"},
		{name: "expires before it starts", data: string(specJSON(t, map[string]any{"not_before": "2026-11-23T10:00:00Z", "expires_at": "2026-11-22T10:00:00Z"})), id: "spring-sale", field: "expires_at", msg: "after not_before"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, set, err := Parse([]byte(tt.data), tt.lim)
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("Parse = %+v, %v; want a *Error", s, err)
			}
			if se.ID != tt.id || se.Field != tt.field || !strings.Contains(se.Msg, tt.msg) {
				t.Fatalf("Parse error %#v; want id %q field %q and a message containing %q", se, tt.id, tt.field, tt.msg)
			}
			if !errors.Is(err, ErrInvalid) || set != nil || !reflect.DeepEqual(s, Spec{}) {
				t.Fatalf("a refusal must match ErrInvalid and return nothing else: %v, %v, %+v", err, set, s)
			}
		})
	}
}

func TestErrorMessage(t *testing.T) {
	tests := []struct {
		err  Error
		want string
	}{
		{Error{ID: "spring-sale", Field: "endpoint.url", Msg: "must be http or https"}, `spec "spring-sale": endpoint.url: must be http or https`},
		{Error{Field: "id", Msg: "required"}, `spec: id: required`},
		{Error{Msg: "not valid JSON: unexpected end"}, `spec: not valid JSON: unexpected end`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Fatalf("Error() = %q", got)
			}
		})
	}
	_, _, err := Parse(specJSON(t, map[string]any{"endpoint.url": "ftp://x/"}), Limits{})
	if got, want := err.Error(), `spec "spring-sale": endpoint.url: must be http or https`; got != want {
		t.Fatalf("Parse error %q, want %q", got, want)
	}
}

func TestParseBadLimits(t *testing.T) {
	for _, lim := range []Limits{{MaxBytes: -1}, {Template: templates.Limits{MaxFields: -1}}} {
		_, _, err := Parse([]byte(specExample), lim)
		var se *Error
		if err == nil || errors.As(err, &se) {
			t.Errorf("limits %+v: err %v, want a plain error", lim, err)
		}
	}
}

func TestCanonical(t *testing.T) {
	base, _ := mustParse(t, []byte(specExample))
	canon := base.Canonical()
	if !json.Valid(canon) || bytes.ContainsAny(canon, "\n\t") || bytes.Contains(canon, []byte(`\u003c`)) {
		t.Fatalf("canonical form is not compact JSON: %s", canon)
	}
	again, _ := mustParse(t, canon)
	if !reflect.DeepEqual(again, base) || !bytes.Equal(again.Canonical(), canon) {
		t.Fatalf("the canonical form does not parse back to the spec:\n%s", canon)
	}

	same := map[string]string{
		"compact": `{"id":"spring-sale-2026","audience":{"source":"file","path":"/data/followers.jsonl"},"only_reachable":true,"template":{"default_locale":"en","locales":{"en":{"title":"Hi {{.name}}","body":"Your code: {{.code}}"},"zh":{"title":"{{.name}}，你好","body":"优惠码：{{.code}}"}}},"endpoint":{"url":"http://127.0.0.1:9000/push","max_in_flight":64,"rate_per_sec":0,"timeout_ms":5000,"max_attempts":6},"not_before":"2026-11-23T10:00:00Z","expires_at":"2026-11-24T10:00:00Z"}`,
		"reordered, defaults left out, other time zones": `{
			"expires_at": "2026-11-24T11:00:00+01:00", "not_before": "2026-11-23T05:00:00-05:00",
			"endpoint": {"url": "http://127.0.0.1:9000/push"},
			"template": {"locales": {"zh": {"body": "优惠码：{{.code}}", "title": "{{.name}}，你好"},
			                         "en": {"body": "Your code: {{.code}}", "title": "Hi {{.name}}"}},
			             "default_locale": "en"},
			"only_reachable": true,
			"audience": {"path": "/data/followers.jsonl", "source": "file"},
			"id": "spring-sale-2026"}`,
		"escapes":                  strings.Replace(specExample, `"Hi {{.name}}"`, `"Hi {{.na\u006de}}"`, 1),
		"http2 auto written out":   strings.Replace(specExample, `"max_in_flight": 64`, `"max_in_flight": 64, "http2": "auto"`, 1),
		"batch size 1 written out": strings.Replace(specExample, `"max_in_flight": 64`, `"max_in_flight": 64, "batch_size": 1`, 1),
	}
	for name, data := range same {
		t.Run("same/"+name, func(t *testing.T) {
			s, _ := mustParse(t, []byte(data))
			if got := s.Canonical(); !bytes.Equal(got, canon) {
				t.Fatalf("canonical forms differ:\n%s\n%s", got, canon)
			}
		})
	}

	different := map[string]string{
		"title":          strings.Replace(specExample, `"Hi {{.name}}"`, `"Hello {{.name}}"`, 1),
		"rate":           strings.Replace(specExample, `"rate_per_sec": 0`, `"rate_per_sec": 10`, 1),
		"only_reachable": strings.Replace(specExample, `"only_reachable": true`, `"only_reachable": false`, 1),
		"expiry":         strings.Replace(specExample, `"2026-11-24T10:00:00Z"`, `"2026-11-24T10:00:01Z"`, 1),
		"no expiry": strings.Replace(specExample, `,
  "expires_at": "2026-11-24T10:00:00Z"`, ``, 1),
		"locale added":   strings.Replace(specExample, `"zh": {`, `"fr": {"title": "Salut"}, "zh": {`, 1),
		"signing secret": strings.Replace(specExample, `"max_in_flight": 64`, `"max_in_flight": 64, "signing_secret": "k"`, 1),
		"auth secret":    strings.Replace(specExample, `"max_in_flight": 64`, `"max_in_flight": 64, "auth_secret": "k"`, 1),
		"http2 off":      strings.Replace(specExample, `"max_in_flight": 64`, `"max_in_flight": 64, "http2": "off"`, 1),
		"h2c":            strings.Replace(specExample, `"max_in_flight": 64`, `"max_in_flight": 64, "http2": "h2c"`, 1),
		"batch size":     strings.Replace(specExample, `"max_in_flight": 64`, `"max_in_flight": 64, "batch_size": 50`, 1),
	}
	for name, data := range different {
		t.Run("different/"+name, func(t *testing.T) {
			if data == specExample {
				t.Fatal("the edit did not apply")
			}
			s, _ := mustParse(t, []byte(data))
			if bytes.Equal(s.Canonical(), canon) {
				t.Fatalf("a different spec has the same canonical form:\n%s", canon)
			}
		})
	}
}

// A spec built in code, without Parse, gets its defaults in the
// canonical form too.
func TestCanonicalFillsDefaults(t *testing.T) {
	s := Spec{ID: "x", Endpoint: Endpoint{URL: "http://h/"}}
	var got struct{ Endpoint Endpoint }
	if err := json.Unmarshal(s.Canonical(), &got); err != nil {
		t.Fatal(err)
	}
	want := Endpoint{URL: "http://h/", MaxInFlight: 64, TimeoutMS: 5000, MaxAttempts: 6}
	if got.Endpoint != want {
		t.Fatalf("canonical endpoint %+v, want %+v", got.Endpoint, want)
	}
}

// TestErrorLimit: a refusal for passing a limit names the limit, so
// intake can count it; other refusals name none.
func TestErrorLimit(t *testing.T) {
	tests := []struct {
		name  string
		data  []byte
		lim   Limits
		limit string
	}{
		{"too large", specJSON(t, map[string]any{"template.locales.en.title": strings.Repeat("x", 2000)}), Limits{MaxBytes: 1024}, LimitTriggerBytes},
		{"template too large", specJSON(t, map[string]any{"template.locales.en.title": strings.Repeat("x", 100)}), Limits{Template: templates.Limits{MaxTemplateBytes: 50}}, LimitTemplateBytes},
		{"too many locales", specJSON(t, map[string]any{"template.locales.fr": map[string]any{"title": "Salut"}}), Limits{Template: templates.Limits{MaxLocales: 1}}, LimitLocales},
		{"too many fields", specJSON(t, map[string]any{"template.locales.en": map[string]any{"a": "1", "b": "2"}}), Limits{Template: templates.Limits{MaxFields: 1}}, LimitFields},
		{"not a limit", specJSON(t, map[string]any{"endpoint.max_attempts": 21}), Limits{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Parse(tt.data, tt.lim)
			var se *Error
			if !errors.As(err, &se) || se.Limit != tt.limit {
				t.Fatalf("Parse = %#v, want a refusal with limit %q", err, tt.limit)
			}
		})
	}
}

// TestIDMessages: the id rule is the coordinator's, but a refusal reads as
// a spec's, with the reason alone after the field.
func TestIDMessages(t *testing.T) {
	tests := map[string]string{
		"":                       `spec: id: required`,
		strings.Repeat("a", 129): `spec: id: 129 characters, more than 128`,
		"spring sale":            `spec: id: character ' ' at 6: only A-Z a-z 0-9 . _ - are allowed`,
	}
	for id, want := range tests {
		t.Run(want, func(t *testing.T) {
			_, _, err := Parse(specJSON(t, map[string]any{"id": id}), Limits{})
			if err == nil || err.Error() != want {
				t.Fatalf("Parse error %v, want %q", err, want)
			}
		})
	}
}
