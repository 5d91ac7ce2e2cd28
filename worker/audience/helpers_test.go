package audience

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herald-dev/herald/sharding"
)

// writeFile writes content to a new file in a test directory and returns
// its path.
func writeFile(tb testing.TB, content string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "audience.jsonl")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// writeSyntheticFile writes n synthetic subscribers as JSON Lines, so file
// and synthetic audiences can be measured on the same records.
func writeSyntheticFile(tb testing.TB, n int64) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "audience.jsonl")
	if err := WriteSyntheticFile(path, n, 1); err != nil {
		tb.Fatal(err)
	}
	return path
}

func mustOpen(tb testing.TB, spec Spec, from sharding.Cursor, lim Limits) *Stream {
	tb.Helper()
	s, err := Open(spec, from, lim)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// seen is what a test compares of a record: copies, since the stream
// reuses its buffers.
type seen struct {
	Seq     uint64
	Offset  int64
	Line    int64
	ID      string
	Raw     string
	Invalid string
	Pos     uint64
	After   sharding.Cursor
}

func readAll(tb testing.TB, s *Stream) []seen {
	tb.Helper()
	var out []seen
	for s.Next() {
		r := s.Record()
		out = append(out, seen{r.Seq, r.Offset, r.Line, string(r.ID), string(r.Raw), r.Invalid, r.Position(), s.Cursor()})
	}
	if err := s.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

func lines(ls ...string) string { return strings.Join(ls, "\n") }

var zeroCursor = sharding.Cursor{}
