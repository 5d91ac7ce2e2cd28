package audience

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/herald-dev/herald/sharding"
	"github.com/herald-dev/herald/templates"
)

func synthSpec(count, seed int64) Spec {
	return Spec{Source: SourceSynthetic, Count: count, Seed: seed}
}

func TestSyntheticIDsAndCursor(t *testing.T) {
	s := mustOpen(t, synthSpec(3, 42), sharding.Cursor{}, Limits{})
	got := readAll(t, s)
	for i, r := range got {
		want := fmt.Sprintf("s42-%d", i)
		if r.ID != want || r.Seq != uint64(i) || r.Line != int64(i)+1 || r.Offset != 0 || r.Invalid != "" || r.Raw != "" {
			t.Errorf("record %d = %+v, want id %q", i, r, want)
		}
		if r.Pos != sharding.Position(want) {
			t.Errorf("record %d position %x, want %x", i, r.Pos, sharding.Position(want))
		}
		if r.After != (sharding.Cursor{Seq: uint64(i) + 1}) {
			t.Errorf("record %d cursor after %+v", i, r.After)
		}
	}
	if len(got) != 3 {
		t.Fatalf("%d records, want 3", len(got))
	}
	if s.Cursor() != (sharding.Cursor{Seq: 3}) {
		t.Fatalf("end cursor %+v", s.Cursor())
	}
}

// A record depends only on seed and index: the same from a fresh start,
// from a resume deep into a huge audience, and in every stream.
func TestSyntheticResumeAndDeterminism(t *testing.T) {
	const seed = -7
	fresh := mustOpen(t, synthSpec(2_000, seed), sharding.Cursor{}, Limits{})
	want := map[uint64]map[string]any{}
	for fresh.Next() {
		if fresh.Record().Seq >= 1_990 {
			m, err := fresh.Record().Attributes()
			if err != nil {
				t.Fatal(err)
			}
			want[fresh.Record().Seq] = m
		}
	}
	resumed := mustOpen(t, synthSpec(MaxSyntheticCount, seed), sharding.Cursor{Seq: 1_990}, Limits{})
	for seq := uint64(1_990); seq < 2_000; seq++ {
		if !resumed.Next() {
			t.Fatal("resumed stream ended")
		}
		got, err := resumed.Record().Attributes()
		if err != nil {
			t.Fatal(err)
		}
		if resumed.Record().Seq != seq || !maps.Equal(got, want[seq]) {
			t.Fatalf("seq %d: resumed %v, fresh %v", seq, got, want[seq])
		}
	}
	far := mustOpen(t, synthSpec(MaxSyntheticCount, seed), sharding.Cursor{Seq: MaxSyntheticCount - 1}, Limits{})
	if !far.Next() || string(far.Record().ID) != "s-7-9999999999" || far.Next() {
		t.Fatalf("last record of the largest audience: %q", far.Record().ID)
	}
	other := mustOpen(t, synthSpec(1, seed+1), sharding.Cursor{}, Limits{})
	if !other.Next() || string(other.Record().ID) == "s-7-0" {
		t.Fatal("another seed gives the same id")
	}
}

func TestSyntheticCursorErrors(t *testing.T) {
	for _, from := range []sharding.Cursor{{Seq: 11}, {Seq: 1, Offset: 3}} {
		if _, err := Open(synthSpec(10, 1), from, Limits{}); !errors.Is(err, ErrCursor) {
			t.Errorf("Open at %+v: err %v, want ErrCursor", from, err)
		}
	}
	s := mustOpen(t, synthSpec(10, 1), sharding.Cursor{Seq: 10}, Limits{})
	if s.Next() || s.Err() != nil {
		t.Fatal("a stream opened at its end returned a record or an error")
	}
}

func TestSyntheticFields(t *testing.T) {
	const n = 100_000
	s := mustOpen(t, synthSpec(n, 3), sharding.Cursor{}, Limits{})
	m := map[string]any{}
	unreachable := 0
	locales := map[string]int{}
	nonASCIINames := 0
	wantKeys := []string{"city", "code", "id", "locale", "name", "plan", "points", "reachable"}
	for s.Next() {
		r := s.Record()
		if err := r.Decode(m); err != nil {
			t.Fatal(err)
		}
		if keys := slices.Sorted(maps.Keys(m)); !slices.Equal(keys, wantKeys) {
			t.Fatalf("record %d has keys %v, want %v", r.Seq, keys, wantKeys)
		}
		if m["id"] != string(r.ID) || m["locale"] != r.Locale() || m["reachable"] != r.Reachable() {
			t.Fatalf("record %d: map %v disagrees with id %q locale %q reachable %v", r.Seq, m, r.ID, r.Locale(), r.Reachable())
		}
		if code := m["code"].(string); len(code) != 6 {
			t.Fatalf("record %d: code %q", r.Seq, code)
		}
		if p, ok := m["points"].(json.Number); !ok {
			t.Fatalf("record %d: points %#v is not a json.Number", r.Seq, m["points"])
		} else if v, err := p.Int64(); err != nil || v < 0 || v >= 100_000 {
			t.Fatalf("record %d: points %q", r.Seq, p)
		}
		if !r.Reachable() {
			unreachable++
		}
		locales[r.Locale()]++
		if name := m["name"].(string); utf8.RuneCountInString(name) != len(name) {
			nonASCIINames++
		}
	}
	if frac := float64(unreachable) / n; frac < 0.09 || frac > 0.11 {
		t.Errorf("%.3f of records unreachable, want about 0.10", frac)
	}
	for _, l := range []string{"en", "en-GB", "zh", "zh-TW", "es", "ar", "fr"} {
		if locales[l] == 0 {
			t.Errorf("no record with locale %q", l)
		}
	}
	if nonASCIINames == 0 {
		t.Error("no non-ASCII names")
	}
}

// Decoding a synthetic record costs the same few allocations every time
// and skipping one costs none.
func TestSyntheticAllocations(t *testing.T) {
	s := mustOpen(t, synthSpec(MaxSyntheticCount, 9), sharding.Cursor{}, Limits{})
	skip := testing.AllocsPerRun(1000, func() {
		if !s.Next() {
			t.Fatal("ended")
		}
		_ = s.Record().Position()
	})
	m := make(map[string]any, 8)
	decode := testing.AllocsPerRun(1000, func() {
		s.Next()
		if err := s.Record().Decode(m); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("allocations per record: %.1f skipped, %.1f decoded", skip, decode)
	if skip != 0 {
		t.Errorf("skipping allocates %.1f times per record", skip)
	}
	if decode > 4 {
		t.Errorf("decoding allocates %.1f times per record, want at most 4", decode)
	}
}

// Every synthetic record renders with a template that uses all its
// attributes: the demo's audience must never fail for want of a field.
func TestSyntheticRecordsRender(t *testing.T) {
	set, err := templates.Compile(templates.Spec{DefaultLocale: "en", Locales: map[string]map[string]string{
		"en": {"title": "Hi {{.name}}", "body": "{{.code}} {{.points}} {{.city}} {{.plan}} {{.id}} {{.reachable}}"},
		"zh": {"title": "{{.name}}，你好", "body": "{{.code}}"},
	}}, templates.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, synthSpec(1_000, 5), sharding.Cursor{}, Limits{})
	m := map[string]any{}
	var msg templates.Message
	for s.Next() {
		r := s.Record()
		if err := r.Decode(m); err != nil {
			t.Fatal(err)
		}
		if err := set.Render(m, r.Locale(), &msg); err != nil {
			t.Fatalf("record %d: %v", r.Seq, err)
		}
	}
}
