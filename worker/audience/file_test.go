package audience

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/herald-dev/herald/sharding"
)

func fileSpec(path string) Spec { return Spec{Source: SourceFile, Path: path} }

func TestFileRecords(t *testing.T) {
	content := lines(
		`{"id":"u1","name":"Ann"}`, // offset 0, 24 bytes + \n
		``,                         // 25: blank, skipped
		"  \t ",                    // 26: whitespace only, skipped
		`{"id":"u2"}`+"\r",         // 31: CRLF line ending
		`[1,2]`,                    // 44: not an object
		`{"name":"x"}`,             // 50: no id
		`{"id":"a","id":"b"}`,      // 63
		`{"id":"u3"}`,              // 83: last line, no newline
	)
	s := mustOpen(t, fileSpec(writeFile(t, content)), sharding.Cursor{}, Limits{})
	got := readAll(t, s)
	want := []seen{
		{Seq: 0, Offset: 0, Line: 1, ID: "u1", Raw: `{"id":"u1","name":"Ann"}`},
		{Seq: 3, Offset: 31, Line: 4, ID: "u2", Raw: `{"id":"u2"}`},
		{Seq: 4, Offset: 44, Line: 5, Raw: `[1,2]`, Invalid: ReasonNotObject},
		{Seq: 5, Offset: 50, Line: 6, Raw: `{"name":"x"}`, Invalid: ReasonNoID},
		{Seq: 6, Offset: 63, Line: 7, Raw: `{"id":"a","id":"b"}`, Invalid: ReasonDuplicateID},
		{Seq: 7, Offset: 83, Line: 8, ID: "u3", Raw: `{"id":"u3"}`},
	}
	ends := []int64{25, 44, 50, 63, 83, 94}
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		w := want[i]
		if w.Invalid == "" {
			w.Pos = xxhash.Sum64String(w.ID)
		} else {
			w.Pos = xxhash.Sum64String(w.Raw)
		}
		w.After = sharding.Cursor{Seq: w.Seq + 1, Offset: ends[i]}
		if got[i] != w {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, got[i], w)
		}
	}
	if got, want := s.Cursor(), (sharding.Cursor{Seq: 8, Offset: int64(len(content))}); got != want {
		t.Errorf("cursor at end = %+v, want %+v", got, want)
	}
	if s.Next() {
		t.Error("Next after the end returned true")
	}
}

// A valid record's position must be what the sharding package computes
// for the same id, or the reader would put records in other slots than
// the coordinator's.
func TestPositionMatchesSharding(t *testing.T) {
	s := mustOpen(t, fileSpec(writeFile(t, `{"id":"caf\u00e9"}`+"\n")), sharding.Cursor{}, Limits{})
	if !s.Next() {
		t.Fatal(s.Err())
	}
	if got, want := s.Record().Position(), sharding.Position("café"); got != want {
		t.Fatalf("Position = %x, want %x", got, want)
	}
}

func TestFileLongLines(t *testing.T) {
	const limit = 32
	exact := `{"id":"u1","pad":"` + strings.Repeat("p", limit-20) + `"}`
	over := `{"id":"u2","pad":"` + strings.Repeat("p", limit-19) + `"}`
	huge := `{"id":"u3","pad":"` + strings.Repeat("p", 50*limit) + `"}`
	if len(exact) != limit || len(over) != limit+1 {
		t.Fatalf("test lines are %d and %d bytes", len(exact), len(over))
	}
	content := lines(exact, exact+"\r", over, huge, `{"id":"after"}`, huge)
	s := mustOpen(t, fileSpec(writeFile(t, content)), sharding.Cursor{}, Limits{MaxLineBytes: limit})
	got := readAll(t, s)
	tooLong := "line longer than 32 bytes"
	want := []struct {
		line    int64
		id      string
		raw     string
		invalid string
	}{
		{1, "u1", exact, ""},
		{2, "u1", exact, ""},
		{3, "", over[:limit], tooLong},
		{4, "", huge[:limit], tooLong},
		{5, "after", `{"id":"after"}`, ""},
		{6, "", huge[:limit], tooLong},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d: %+v", len(got), len(want), got)
	}
	offset := int64(0)
	for i, w := range want {
		g := got[i]
		if g.Line != w.line || g.ID != w.id || g.Raw != w.raw || g.Invalid != w.invalid || g.Offset != offset {
			t.Errorf("record %d: got line %d offset %d id %q raw %q invalid %q; want line %d offset %d id %q raw %q invalid %q",
				i, g.Line, g.Offset, g.ID, g.Raw, g.Invalid, w.line, offset, w.id, w.raw, w.invalid)
		}
		offset = g.After.Offset
	}
	if s.Cursor().Offset != int64(len(content)) {
		t.Errorf("end cursor %+v, want offset %d", s.Cursor(), len(content))
	}
}

func TestFileDefaultLineLimit(t *testing.T) {
	pad := func(n int) string { return `{"id":"u","p":"` + strings.Repeat("x", n-17) + `"}` }
	s := mustOpen(t, fileSpec(writeFile(t, lines(pad(DefaultMaxLineBytes), pad(DefaultMaxLineBytes+1)))), sharding.Cursor{}, Limits{})
	got := readAll(t, s)
	if len(got) != 2 || got[0].Invalid != "" || got[1].Invalid != "line longer than 65536 bytes" {
		t.Fatalf("got %d records; first invalid %q", len(got), got[0].Invalid)
	}
}

// Resuming from the cursor after any record yields exactly the records a
// fresh read yields after it, with the same Seq, offsets and positions.
func TestFileResume(t *testing.T) {
	var b strings.Builder
	for i := range 300 {
		switch i % 7 {
		case 3:
			b.WriteString("\n")
		case 5:
			b.WriteString("not json\n")
		default:
			b.WriteString(`{"id":"u` + strings.Repeat("9", i%5) + string(rune('a'+i%26)) + `","n":` + string(rune('0'+i%10)) + "}\n")
		}
	}
	b.WriteString("\n  \n") // trailing blank lines
	path := writeFile(t, b.String())
	spec := fileSpec(path)
	fresh := readAll(t, mustOpen(t, spec, sharding.Cursor{}, Limits{}))
	end := sharding.Cursor{Seq: 302, Offset: int64(b.Len())}
	for k := range fresh {
		from := fresh[k].After
		rest := readAll(t, mustOpen(t, spec, from, Limits{}))
		if len(rest) != len(fresh)-k-1 {
			t.Fatalf("resume at %+v: %d records, want %d", from, len(rest), len(fresh)-k-1)
		}
		for i := range rest {
			if rest[i] != fresh[k+1+i] {
				t.Fatalf("resume at %+v, record %d:\n got %+v\nwant %+v", from, i, rest[i], fresh[k+1+i])
			}
		}
		if from.Seq > 0 && k == len(fresh)-1 {
			s := mustOpen(t, spec, from, Limits{})
			if s.Next() || s.Cursor() != end {
				t.Fatalf("resume after the last record: cursor %+v, want %+v", s.Cursor(), end)
			}
		}
	}
	if s := mustOpen(t, spec, end, Limits{}); s.Next() {
		t.Fatal("resume at the end returned a record")
	}
}

func TestFileOpenErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.jsonl")
	if err := os.WriteFile(path, []byte("{\"id\":\"u1\"}\n{\"id\":\"u2\"}"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.jsonl")
	tests := []struct {
		name  string
		path  string
		from  sharding.Cursor
		is    error
		names string
	}{
		{name: "missing file", path: missing, is: fs.ErrNotExist, names: missing},
		{name: "directory", path: dir, is: ErrNotRegular, names: dir},
		{name: "offset inside a line", path: path, from: sharding.Cursor{Seq: 1, Offset: 5}, is: ErrCursor, names: path},
		{name: "seq without offset", path: path, from: sharding.Cursor{Seq: 1}, is: ErrCursor},
		{name: "offset without seq", path: path, from: sharding.Cursor{Offset: 12}, is: ErrCursor},
		{name: "offset past the end", path: path, from: sharding.Cursor{Seq: 2, Offset: 100}, is: ErrCursor},
		{name: "negative offset", path: path, from: sharding.Cursor{Seq: 1, Offset: -1}, is: ErrCursor},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(fileSpec(tt.path), tt.from, Limits{})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.names) {
				t.Fatalf("Open error %q, want one wrapping %v and naming %q", err, tt.is, tt.names)
			}
		})
	}
	t.Run("cursors that fit", func(t *testing.T) {
		for _, from := range []sharding.Cursor{{}, {Seq: 1, Offset: 12}, {Seq: 2, Offset: 23}} {
			s, err := Open(fileSpec(path), from, Limits{})
			if err != nil {
				t.Fatalf("Open at %+v: %v", from, err)
			}
			s.Close()
		}
	})
}

// Skipping records a unit does not own must cost no allocation, whatever
// the file's size, so memory stays flat however large the audience.
func TestFileScanMemoryIsFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 300,000-line file")
	}
	small := fileSpec(writeSyntheticFile(t, 1_000))
	large := fileSpec(writeSyntheticFile(t, 300_000))
	scan := func(spec Spec) func() {
		return func() {
			s, err := Open(spec, sharding.Cursor{}, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for s.Next() {
				if s.Record().Invalid != "" {
					t.Fatal(s.Record().Invalid)
				}
			}
			if s.Err() != nil {
				t.Fatal(s.Err())
			}
		}
	}
	perSmall := testing.AllocsPerRun(3, scan(small))
	perLarge := testing.AllocsPerRun(1, scan(large))
	t.Logf("allocations per full scan: %.0f for 1,000 lines, %.0f for 300,000 lines", perSmall, perLarge)
	// A few runtime allocations (the race detector's, a GC cycle's) may
	// come and go; 299,000 more lines must not add more than those.
	if perLarge > perSmall+10 {
		t.Fatalf("a scan of 300,000 lines allocates %.0f times, of 1,000 lines %.0f: memory grows with the file", perLarge, perSmall)
	}
	if perLarge/300_000 >= 0.001 {
		t.Fatalf("%.4f allocations per record", perLarge/300_000)
	}
}

func TestFileNoNewlineAtAll(t *testing.T) {
	s := mustOpen(t, fileSpec(writeFile(t, "")), sharding.Cursor{}, Limits{})
	if s.Next() || s.Err() != nil || s.Cursor() != (sharding.Cursor{}) {
		t.Fatalf("empty file: Next true or err %v or cursor %+v", s.Err(), s.Cursor())
	}
}
