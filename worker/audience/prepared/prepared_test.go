package prepared

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/herald-dev/herald/sharding"
	"github.com/herald-dev/herald/worker/audience"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"
)

// preparedInput writes n synthetic subscribers as JSON Lines with invalid,
// blank and over-long lines among them.
func preparedInput(t *testing.T, n int64) string {
	t.Helper()
	path := writeSyntheticFile(t, n)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	extra := []string{"", "   ", `[1,2]`, `{"name":"no id"}`, `{"id":"x","id":"y"}`,
		`{"id":"long","pad":"` + strings.Repeat("p", 300) + `"}`, `{"id":"u-last"}`}
	if _, err := f.WriteString(strings.Join(extra, "\n") + "\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// fileRecords is what the file source reads of path: (position, raw) of
// every record, sorted.
func fileRecords(t *testing.T, path string, lim audience.Limits) []string {
	t.Helper()
	s, err := audience.Open(audience.Spec{Source: audience.SourceFile, Path: path}, sharding.Cursor{}, lim)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out []string
	for s.Next() {
		out = append(out, fmt.Sprintf("%016x %s", s.Record().Position(), s.Record().Raw))
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

var testImport = ImportConfig{SegmentBytes: 4 << 10, CheckpointEvery: 8, SortBytes: 16 << 10, Limits: audience.Limits{MaxLineBytes: 200}}

// Every record of the file is read by exactly the range of the slot its
// position falls in, through segments and checkpoints, in position order;
// a range scans at most a checkpoint interval outside itself per end.
func TestPreparedRangesCoverEveryRecordOnce(t *testing.T) {
	path := preparedInput(t, 2000)
	want := fileRecords(t, path, testImport.Limits)
	store := DirStore{Dir: t.TempDir()}
	st, err := Import(context.Background(), path, store, testImport)
	if err != nil {
		t.Fatal(err)
	}
	if st.Records != int64(len(want)) || st.Invalid != 4 || st.Runs < 2 || st.Segments < 10 {
		t.Fatalf("import %+v: want %d records, 4 invalid, several runs and segments", st, len(want))
	}
	checkRanges(t, store, want, testImport.CheckpointEvery)
}

func checkRanges(t *testing.T, store Store, want []string, every int) {
	t.Helper()
	ctx := context.Background()
	p, err := Open(ctx, store, audience.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, slots := range []int{1, 4, 16} {
		var got []string
		var read int64
		for s := 0; s < slots; s++ {
			pr := p.Range(ctx, sharding.SlotRange(s, slots), Cursor{})
			in := 0
			var last uint64
			for pr.Next() {
				r := pr.Record()
				if k := sharding.SlotOf(r.Position(), slots); k != s {
					t.Errorf("%d slots: record at %#x read by slot %d, belongs to %d", slots, r.Position(), s, k)
				}
				if r.Position() < last {
					t.Errorf("%d slots: slot %d out of order", slots, s)
				}
				last = r.Position()
				got = append(got, fmt.Sprintf("%016x %s", r.Position(), r.Raw))
				in++
			}
			if err := pr.Err(); err != nil {
				t.Fatal(err)
			}
			pr.Close()
			// Each end of the range costs at most a checkpoint interval,
			// per segment boundary it meets twice that.
			if extra := pr.Read() - int64(in); extra > int64(4*every) {
				t.Errorf("%d slots: slot %d scanned %d records for %d in range", slots, s, pr.Read(), in)
			}
			read += pr.Read()
		}
		sort.Strings(got)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("%d slots: %d records read, want the file's %d", slots, len(got), len(want))
		}
		t.Logf("%d slots: %d records scanned for %d", slots, read, len(want))
	}
}

// A read resumed from its cursor continues with the next record, from any
// point: inside a segment, at a segment's end, at the range's end.
func TestPreparedResumeByCursor(t *testing.T) {
	path := preparedInput(t, 600)
	store := DirStore{Dir: t.TempDir()}
	if _, err := Import(context.Background(), path, store, testImport); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p, err := Open(ctx, store, audience.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	r := sharding.SlotRange(1, 3)
	var all []string
	pr := p.Range(ctx, r, Cursor{})
	for pr.Next() {
		all = append(all, string(pr.Record().Raw))
	}
	for stop := 0; stop <= len(all); stop++ {
		pr := p.Range(ctx, r, Cursor{})
		var got []string
		for i := 0; i < stop && pr.Next(); i++ {
			got = append(got, string(pr.Record().Raw))
		}
		pr.Close()
		rest := p.Range(ctx, r, pr.Cursor())
		for rest.Next() {
			got = append(got, string(rest.Record().Raw))
		}
		if rest.Err() != nil || strings.Join(got, "\n") != strings.Join(all, "\n") {
			t.Fatalf("stop at %d, cursor %+v: %d records (%v), want %d", stop, pr.Cursor(), len(got), rest.Err(), len(all))
		}
	}
	if pr := p.Range(ctx, r, Cursor{Segment: p.Segments() + 1}); pr.Next() || !errors.Is(pr.Err(), audience.ErrCursor) {
		t.Errorf("cursor past the end: %v, want audience.ErrCursor", pr.Err())
	}
}

// An import does not write over a prepared audience unless told to; a
// store without an index is refused by name.
func TestPreparedImportRefusals(t *testing.T) {
	ctx := context.Background()
	path := preparedInput(t, 10)
	store := DirStore{Dir: t.TempDir()}
	if _, err := Open(ctx, store, audience.Limits{}); !errors.Is(err, ErrUnreadable) {
		t.Errorf("open before import: %v, want ErrUnreadable", err)
	}
	if _, err := Import(ctx, path, store, testImport); err != nil {
		t.Fatal(err)
	}
	if _, err := Import(ctx, path, store, testImport); !errors.Is(err, ErrExists) {
		t.Errorf("second import: %v, want ErrExists", err)
	}
	cfg := testImport
	cfg.Replace = true
	if _, err := Import(ctx, path, store, cfg); err != nil {
		t.Errorf("import with Replace: %v", err)
	}
	if _, err := Import(ctx, path+".missing", DirStore{Dir: t.TempDir()}, testImport); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("import of a missing file: %v", err)
	}
}

// The same audience in S3-compatible object storage: segments read with
// Range requests, only the byte ranges a range needs.
func TestPreparedS3(t *testing.T) {
	srv := fakeS3()
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	secret := "http://AKID:SECRET@" + u.Host + "?region=us-east-1"
	loc, err := audience.ParseLocation("s3://audiences/spring/v1")
	if err != nil {
		t.Fatal(err)
	}
	store, err := NewS3Store(secret, loc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := store.Client.MakeBucket(ctx, "audiences", minioMakeBucketOptions()); err != nil {
		t.Fatal(err)
	}
	path := preparedInput(t, 1500)
	want := fileRecords(t, path, testImport.Limits)
	if _, err := Import(ctx, path, store, testImport); err != nil {
		t.Fatal(err)
	}
	checkRanges(t, store, want, testImport.CheckpointEvery)
	// The same, found from a spec and the workers' secrets.
	fromSpec, err := StoreFor(audience.Spec{Source: audience.SourcePrepared, Path: "s3://audiences/spring/v1", Connection: "s3-audiences"},
		func(name string) ([]byte, error) {
			if name != "s3-audiences" {
				return nil, errors.New("no such secret")
			}
			return []byte(secret), nil
		})
	if err != nil {
		t.Fatal(err)
	}
	checkRanges(t, fromSpec, want, testImport.CheckpointEvery)
	if _, err := StoreFor(audience.Spec{Source: audience.SourcePrepared, Path: "s3://audiences/x", Connection: "other"},
		func(string) ([]byte, error) { return nil, errors.New("no such secret") }); err == nil || !strings.Contains(err.Error(), `"other"`) {
		t.Errorf("missing secret: %v", err)
	}
	if s, err := StoreFor(audience.Spec{Source: audience.SourcePrepared, Path: "/data/aud"}, nil); err != nil || s != (DirStore{Dir: "/data/aud"}) {
		t.Errorf("directory: %v, %v", s, err)
	}
	if _, err := Open(ctx, &S3Store{Client: store.Client, Bucket: "audiences", Prefix: "other"}, audience.Limits{}); !errors.Is(err, ErrUnreadable) || !errors.Is(err, ErrNotFound) {
		t.Errorf("open of an empty prefix: %v, want ErrUnreadable and ErrNotFound", err)
	}
	if _, err := NewS3Store("AKID:hunter2@host", loc); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("bad secret: %v, want an error without the secret", err)
	}
}

func minioMakeBucketOptions() minio.MakeBucketOptions {
	return minio.MakeBucketOptions{Region: "us-east-1"}
}

// A segment that does not match its index and checkpoints (damaged,
// truncated, or replaced by another import) fails the read with
// ErrUnreadable instead of ending it early and quietly.
func TestPreparedDamagedSegment(t *testing.T) {
	ctx := context.Background()
	path := preparedInput(t, 300)
	dir := t.TempDir()
	if _, err := Import(ctx, path, DirStore{Dir: dir}, testImport); err != nil {
		t.Fatal(err)
	}
	seg := dir + "/segment-000000.jsonl"
	orig, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	for name, damage := range map[string]func([]byte) []byte{
		"truncated": func(b []byte) []byte { return b[:len(b)/2] },
		"shifted":   func(b []byte) []byte { return append([]byte(`{"id":"intruder"}`+"\n"), b...)[:len(b)] },
	} {
		if err := os.WriteFile(seg, damage(slices.Clone(orig)), 0o600); err != nil {
			t.Fatal(err)
		}
		p, err := Open(ctx, DirStore{Dir: dir}, audience.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		pr := p.Range(ctx, sharding.Range{Lo: 0, Hi: ^uint64(0)}, Cursor{})
		for pr.Next() {
		}
		if !errors.Is(pr.Err(), ErrUnreadable) {
			t.Errorf("%s segment: %v after %d records, want ErrUnreadable", name, pr.Err(), pr.Read())
		}
	}
}

// A segment larger than minio-go's multipart threshold (16 MiB) is stored
// intact: it goes up in one PUT.
func TestPreparedS3LargeSegment(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 20 MB segment")
	}
	srv := fakeS3()
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	store, err := NewS3Store("http://AKID:SECRET@"+u.Host, audience.Location{Bucket: "audiences", Prefix: "large"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := store.Client.MakeBucket(ctx, "audiences", minioMakeBucketOptions()); err != nil {
		t.Fatal(err)
	}
	path := writeSyntheticFile(t, 170000)
	st, err := Import(ctx, path, store, ImportConfig{SegmentBytes: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if st.Segments != 1 || st.Bytes < 17<<20 {
		t.Fatalf("import %+v: want one segment above 16 MiB", st)
	}
	p, err := Open(ctx, store, audience.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for s := 0; s < 4; s++ {
		pr := p.Range(ctx, sharding.SlotRange(s, 4), Cursor{})
		for pr.Next() {
			n++
		}
		if err := pr.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if n != 170000 {
		t.Fatalf("read %d records, want 170000", n)
	}
}

// fakeS3 is S3 in process. Its log is discarded: gofakes3 answers a
// client that stops reading a body early (a range read past its range's
// end) with a second WriteHeader, which net/http logs.
func fakeS3() *httptest.Server {
	srv := httptest.NewUnstartedServer(gofakes3.New(s3mem.New()).Server())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	return srv
}

// An empty or all-blank file imports as an audience of no records.
func TestPreparedEmpty(t *testing.T) {
	ctx := context.Background()
	store := DirStore{Dir: t.TempDir()}
	st, err := Import(ctx, writeFile(t, "\n  \n"), store, testImport)
	if err != nil || st.Records != 0 || st.Segments != 0 {
		t.Fatalf("import %+v, %v", st, err)
	}
	p, err := Open(ctx, store, audience.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	pr := p.Range(ctx, sharding.Range{Lo: 0, Hi: ^uint64(0)}, Cursor{})
	if pr.Next() || pr.Err() != nil || p.Records() != 0 {
		t.Fatalf("read from an empty audience: %v", pr.Err())
	}
}

// FuzzPreparedRead: whatever the index, checkpoints and segment hold, a
// range read never panics and ends, with an error or records.
func FuzzPreparedRead(f *testing.F) {
	dir := f.TempDir()
	path := filepath.Join(dir, "in.jsonl")
	if err := os.WriteFile(path, []byte(`{"id":"a"}`+"\n"+`{"id":"b"}`+"\n"+`{"id":"c"}`+"\n"), 0o600); err != nil {
		f.Fatal(err)
	}
	src := DirStore{Dir: filepath.Join(dir, "src")}
	if _, err := Import(context.Background(), path, src, ImportConfig{CheckpointEvery: 1}); err != nil {
		f.Fatal(err)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(src.Dir, name))
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	f.Add(read("index.json"), read("segment-000000.idx"), read("segment-000000.jsonl"), uint64(0), uint64(1<<63))
	f.Add([]byte(`{"format":"herald-prepared-1","segments":[{"name":"segment-000000.jsonl","checkpoints":"segment-000000.idx","records":-5,"bytes":-1,"first":9,"last":1}]}`),
		[]byte{}, []byte("x"), uint64(1), uint64(0))
	f.Fuzz(func(t *testing.T, index, cps, seg []byte, lo, hi uint64) {
		d := t.TempDir()
		for name, b := range map[string][]byte{"index.json": index, "segment-000000.idx": cps, "segment-000000.jsonl": seg} {
			if err := os.WriteFile(filepath.Join(d, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		p, err := Open(context.Background(), DirStore{Dir: d}, audience.Limits{MaxLineBytes: 64})
		if err != nil {
			return
		}
		if lo > hi {
			lo, hi = hi, lo
		}
		pr := p.Range(context.Background(), sharding.Range{Lo: lo, Hi: hi}, Cursor{})
		for n := 0; pr.Next(); n++ {
			if pos := pr.Record().Position(); pos < lo || pos > hi {
				t.Fatalf("record at %#x outside [%#x, %#x]", pos, lo, hi)
			}
			if n > len(seg) {
				t.Fatal("more records than bytes")
			}
		}
		pr.Close()
	})
}

// writeSyntheticFile writes n synthetic subscribers as JSON Lines.
func writeSyntheticFile(tb testing.TB, n int64) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "audience.jsonl")
	if err := audience.WriteSyntheticFile(path, n, 1); err != nil {
		tb.Fatal(err)
	}
	return path
}

// writeFile writes content to a new file and returns its path.
func writeFile(tb testing.TB, content string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "audience.jsonl")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}
