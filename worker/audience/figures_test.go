package audience_test

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/pgtest"
	"github.com/herald-dev/herald/sharding"
	"github.com/herald-dev/herald/worker/audience"
	"github.com/herald-dev/herald/worker/audience/postgres"
	"github.com/herald-dev/herald/worker/audience/prepared"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"
)

// TestAudienceReadFigures prints, for an audience of N subscribers split
// among 1, 4 and 16 workers holding equal shares of the broadcast's slots
// (sharding.SlotCount of them, 8 per worker), how many records the whole
// fleet reads: the plain file source (each worker reads the whole file),
// a prepared audience in a directory and in S3-compatible storage, and a
// postgres table (each worker reads only its slots' ranges). It asserts only that every record is read by exactly
// one slot, never a time. docs/PERFORMANCE.md has the figures.
//
//	HERALD_AUDIENCE_FIGURES=2000000 go test -count=1 -run TestAudienceReadFigures -v -timeout 30m ./worker/audience/
//
// With HERALD_AUDIENCE_FIGURES_INCLUDE=1 the position index includes the
// columns the reads need (herald audience prepare --include).
func TestAudienceReadFigures(t *testing.T) {
	n, _ := strconv.ParseInt(os.Getenv("HERALD_AUDIENCE_FIGURES"), 10, 64)
	if n <= 0 {
		t.Skip("set HERALD_AUDIENCE_FIGURES to the audience size, such as 2000000, to print the figures")
	}
	ctx := context.Background()
	start := time.Now()
	path := writeSyntheticFile(t, n)
	fi, _ := os.Stat(path)
	t.Logf("audience: %d subscribers, %d MB of JSON Lines, written in %s", n, fi.Size()>>20, time.Since(start).Round(time.Millisecond))

	// Prepared: one import, then range reads.
	start = time.Now()
	store := prepared.DirStore{Dir: t.TempDir()}
	st, err := prepared.Import(ctx, path, store, prepared.ImportConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("prepared: import %d records into %d segments (%d sorted runs) in %s", st.Records, st.Segments, st.Runs, time.Since(start).Round(time.Millisecond))
	prep, err := prepared.Open(ctx, store, audience.Limits{})
	if err != nil {
		t.Fatal(err)
	}

	// The same prepared audience in S3-compatible storage (in process),
	// counting the bytes of the ranges asked for.
	srv := fakeS3()
	defer srv.Close()
	s3, err := prepared.NewS3Store("http://AKID:SECRET@"+strings.TrimPrefix(srv.URL, "http://")+"?region=us-east-1", audience.Location{Bucket: "audiences", Prefix: "figures"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s3.Client.MakeBucket(ctx, "audiences", minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if _, err := prepared.Import(ctx, path, s3, prepared.ImportConfig{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("prepared in S3 (gofakes3): import in %s", time.Since(start).Round(time.Millisecond))
	counted := &countingStore{store: s3}
	prepS3, err := prepared.Open(ctx, counted, audience.Limits{})
	if err != nil {
		t.Fatal(err)
	}

	// Postgres: rows inserted without positions, then prepared as a user
	// would, then range reads.
	pool, err := postgres.Dial(ctx, pgtest.New(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	start = time.Now()
	mustExec(t, pool, `CREATE TABLE subs (id text PRIMARY KEY, locale text, reachable boolean, name text)`)
	mustExec(t, pool, `INSERT INTO subs SELECT 'user-' || g, (ARRAY['en','de','fr'])[g % 3 + 1], g % 10 <> 0, 'Name ' || g
		FROM generate_series(1, $1::bigint) g`, n)
	t.Logf("postgres: %d rows inserted in %s", n, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	cfg := postgres.PrepareConfig{Table: "subs", BatchRows: 10000}
	if os.Getenv("HERALD_AUDIENCE_FIGURES_INCLUDE") != "" {
		// The covering index: range reads are index-only scans.
		cfg.Include = []string{"locale", "reachable", "name"}
	}
	filled, err := postgres.Prepare(ctx, pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, pool, "VACUUM ANALYZE subs") // index-only scans need the visibility map
	t.Logf("postgres: herald audience prepare (include %v) filled %d rows and built the indexes in %s", cfg.Include, filled, time.Since(start).Round(time.Millisecond))
	tbl, err := postgres.Open(ctx, pool, audience.Spec{Source: audience.SourcePostgres, Connection: "db", Table: "subs",
		LocaleColumn: "locale", ReachableColumn: "reachable", AttributeColumns: []string{"name"}})
	if err != nil {
		t.Fatal(err)
	}

	// The server's own counts for the table: sequential scans, index
	// entries read, table rows fetched through an index (0 for index-only
	// scans).
	stats := func() (seqScans, idxRead, idxFetched int64) {
		time.Sleep(1500 * time.Millisecond) // the server publishes its statistics about every second
		err := pool.QueryRow(ctx, `SELECT t.seq_scan, (SELECT sum(idx_tup_read)::bigint FROM pg_stat_user_indexes i WHERE i.relid = t.relid), t.idx_tup_fetch
			FROM pg_stat_user_tables t WHERE t.relname = 'subs'`).Scan(&seqScans, &idxRead, &idxFetched)
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	seq0, read0, fetch0 := stats()

	t.Logf("%-8s %-9s %6s %14s %10s %10s %10s %12s", "workers", "source", "slots", "records read", "× audience", "MB read", "seconds", "records/s")
	for _, workers := range []int{1, 4, 16} {
		slots := sharding.SlotCount(workers)
		per := slots / workers

		// File: every worker reads the whole file and keeps its slots.
		start := time.Now()
		var read, kept int64
		for w := 0; w < workers; w++ {
			s, err := audience.Open(audience.Spec{Source: audience.SourceFile, Path: path}, sharding.Cursor{}, audience.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			for s.Next() {
				read++
				if sharding.SlotOf(s.Record().Position(), slots)/per == w {
					kept++
				}
			}
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
			s.Close()
		}
		report(t, workers, "file", slots, read, kept, n, int64(workers)*fi.Size(), time.Since(start))

		// Prepared: every worker reads its slots' ranges.
		start = time.Now()
		read, kept = 0, 0
		var bytes int64
		for s := 0; s < slots; s++ {
			pr := prep.Range(ctx, sharding.SlotRange(s, slots), prepared.Cursor{})
			for pr.Next() {
				kept++
			}
			if err := pr.Err(); err != nil {
				t.Fatal(err)
			}
			read += pr.Read()
			bytes += pr.BytesRead()
		}
		report(t, workers, "prepared", slots, read, kept, n, bytes, time.Since(start))

		// Prepared in S3: the bytes are those of the ranged GETs.
		start = time.Now()
		read, kept, counted.asked = 0, 0, 0
		for s := 0; s < slots; s++ {
			pr := prepS3.Range(ctx, sharding.SlotRange(s, slots), prepared.Cursor{})
			for pr.Next() {
				kept++
			}
			if err := pr.Err(); err != nil {
				t.Fatal(err)
			}
			read += pr.Read()
		}
		report(t, workers, "s3", slots, read, kept, n, counted.asked, time.Since(start))

		// Postgres: every worker reads its slots' ranges.
		start = time.Now()
		read, kept = 0, 0
		for s := 0; s < slots; s++ {
			pr := tbl.Range(ctx, sharding.SlotRange(s, slots), nil, postgres.DefaultPageRows)
			for pr.Next() {
				if pr.Record().Invalid == "" {
					kept++
				}
			}
			if err := pr.Err(); err != nil {
				t.Fatal(err)
			}
			read += pr.Rows()
		}
		report(t, workers, "postgres", slots, read, kept, n, -1, time.Since(start))
	}
	seq1, read1, fetch1 := stats()
	t.Logf("postgres: the server's statistics over the range reads of 1, 4 and 16 workers (3 × %d rows = %d): "+
		"%d sequential scans, %d index entries read, %d table rows fetched through the index",
		n, 3*n, seq1-seq0, read1-read0, fetch1-fetch0)
	if seq1 != seq0 {
		t.Errorf("the range reads made %d sequential scans", seq1-seq0)
	}
}

func report(t *testing.T, workers int, source string, slots int, read, kept, n, bytes int64, took time.Duration) {
	t.Helper()
	if kept != n {
		t.Errorf("%s with %d workers: %d records kept, want %d", source, workers, kept, n)
	}
	mb := "-"
	if bytes >= 0 {
		mb = strconv.FormatInt(bytes>>20, 10)
	}
	t.Logf("%-8d %-9s %6d %14d %10.3f %10s %10.2f %12.0f", workers, source, slots, read, float64(read)/float64(n),
		mb, took.Seconds(), float64(read)/took.Seconds())
}

// countingStore adds up the bytes of the ranges read from its store (a
// read to the end counts nothing: only the index and checkpoints are).
type countingStore struct {
	store prepared.Store
	asked int64
}

func (c *countingStore) ReadRange(ctx context.Context, name string, off, n int64) (io.ReadCloser, error) {
	if n > 0 {
		c.asked += n
	}
	return c.store.ReadRange(ctx, name, off, n)
}

func (c *countingStore) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	return c.store.Put(ctx, name, r, size)
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

func mustExec(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// fakeS3 is S3 in process, its log discarded (gofakes3 writes a second
// header to a client that stops reading early, which net/http logs).
func fakeS3() *httptest.Server {
	srv := httptest.NewUnstartedServer(gofakes3.New(s3mem.New()).Server())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	return srv
}
