package audience

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/herald-dev/herald/sharding"
)

// TestWriteSyntheticFile: the file holds the synthetic audience's records,
// the same ids in the same order, and reads back as a file audience.
func TestWriteSyntheticFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.jsonl")
	if err := WriteSyntheticFile(path, 500, 7); err != nil {
		t.Fatal(err)
	}
	syn := mustOpen(t, Spec{Source: SourceSynthetic, Count: 500, Seed: 7}, sharding.Cursor{}, Limits{})
	file := mustOpen(t, Spec{Source: SourceFile, Path: path}, sharding.Cursor{}, Limits{})
	n := 0
	for syn.Next() {
		if !file.Next() {
			t.Fatalf("file ended after %d records: %v", n, file.Err())
		}
		a, b := syn.Record(), file.Record()
		if string(a.ID) != string(b.ID) || a.Position() != b.Position() || a.Invalid != b.Invalid {
			t.Fatalf("record %d: synthetic %q (%s) vs file %q (%s)", n, a.ID, a.Invalid, b.ID, b.Invalid)
		}
		ma, mb := map[string]any{}, map[string]any{}
		if err := a.Decode(ma); err != nil {
			t.Fatal(err)
		}
		if err := b.Decode(mb); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(ma) != fmt.Sprint(mb) || Reachable(ma) != Reachable(mb) {
			t.Fatalf("record %d: synthetic %v vs file %v", n, ma, mb)
		}
		n++
	}
	if file.Next() || n != 500 {
		t.Fatalf("%d records, and the file has more: %v", n, file.Next())
	}
	if err := WriteSyntheticFile(filepath.Join(t.TempDir(), "missing", "a.jsonl"), 1, 1); err == nil {
		t.Fatal("writing into a missing directory did not fail")
	}
}
