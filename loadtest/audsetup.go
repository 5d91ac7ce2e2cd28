package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"

	"github.com/herald-dev/herald/internal/devstack"
	"github.com/herald-dev/herald/sharding"
	"github.com/herald-dev/herald/worker/audience"
	"github.com/herald-dev/herald/worker/audience/prepared"
)

// The worker secrets the audience scenarios' specs name.
const (
	secretDB = "audience-db"
	secretS3 = "s3-audiences"
	s3Bucket = "audiences"
)

// audienceColumns are the table's columns: the synthetic record's fields,
// so every source gives the templates the same attributes.
var audienceColumns = []string{"id", "locale", "reachable", "name", "code", "points", "city", "plan", "herald_position"}

// audienceAttributes are the columns the templates see besides id and
// locale.
var audienceAttributes = []string{"name", "code", "points", "city", "plan"}

// audienceSetup is what one audience scenario's broadcast needs: the
// spec's audience object, the subscribers that must be reached, and the
// flags its workers need to reach it.
type audienceSetup struct {
	spec       map[string]any
	eligible   int64
	workerArgs []string
}

// audienceStore makes the audiences the scenarios read, once each, and
// keeps what serves them (a PostgreSQL cluster, an in-process S3 server)
// until the harness closes. Only the scenario loop uses it.
type audienceStore struct {
	seed int64
	log  *slog.Logger
	dir  string // files, prepared directories, secrets, import temp

	pg    *devstack.Postgres
	dbURL string
	pgPid int // the server's postmaster, 0 when not found

	s3       *http.Server
	s3Done   chan struct{}
	s3Secret string

	files map[string]string        // by audienceKey: JSON Lines path
	made  map[string]audienceSetup // by source and key
}

func newAudienceStore(seed int64, log *slog.Logger) (*audienceStore, error) {
	dir, err := os.MkdirTemp("", "herald-loadtest-aud-")
	if err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	for _, d := range []string{"secrets", "tmp"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("loadtest: %w", err)
		}
	}
	return &audienceStore{seed: seed, log: log, dir: dir, files: map[string]string{}, made: map[string]audienceSetup{}}, nil
}

func (s *audienceStore) close() {
	if s.s3 != nil {
		s.s3.Close()
		<-s.s3Done
	}
	if s.pg != nil {
		s.pg.Close()
	}
	os.RemoveAll(s.dir)
}

// audienceKey names an audience of n records with reachEvery.
func audienceKey(n int64, reachEvery int) string { return fmt.Sprintf("%d-r%d", n, reachEvery) }

// reachableAt reports whether record i is reachable when only every
// reachEvery-th is; 0 keeps the synthetic record's own reachability.
func reachableAt(i int64, reachEvery int, synthetic bool) bool {
	if reachEvery <= 0 {
		return synthetic
	}
	return i%int64(reachEvery) == 0
}

// get returns the setup of an audience, making it on first use.
func (s *audienceStore) get(ctx context.Context, a audienceOf, n int64, eligibleSynthetic func(int64) (int64, error)) (audienceSetup, error) {
	key := a.source + "/" + audienceKey(n, a.reachEvery)
	if su, ok := s.made[key]; ok {
		return su, nil
	}
	eligible, err := s.eligible(n, a.reachEvery, eligibleSynthetic)
	if err != nil {
		return audienceSetup{}, err
	}
	su := audienceSetup{eligible: eligible}
	start := time.Now()
	switch a.source {
	case srcSynthetic:
		// The spec's own synthetic audience (demo.SpecJSON).
	case srcFile:
		path, err := s.file(n, a.reachEvery)
		if err != nil {
			return su, err
		}
		su.spec = map[string]any{"source": "file", "path": path}
	case srcPostgres:
		table, err := s.table(ctx, n, a.reachEvery)
		if err != nil {
			return su, err
		}
		su.spec = map[string]any{"source": "postgres", "connection": secretDB, "table": table,
			"locale_column": "locale", "reachable_column": "reachable", "attribute_columns": audienceAttributes}
		su.workerArgs = []string{"--secrets-dir", filepath.Join(s.dir, "secrets")}
	case srcPrepared:
		if a.reachEvery > 0 {
			// reads: a directory, as every worker could mount.
			dir, err := s.preparedDir(ctx, n, a.reachEvery)
			if err != nil {
				return su, err
			}
			su.spec = map[string]any{"source": "prepared", "path": dir}
		} else {
			loc, err := s.preparedS3(ctx, n, a.reachEvery)
			if err != nil {
				return su, err
			}
			su.spec = map[string]any{"source": "prepared", "path": loc, "connection": secretS3}
			su.workerArgs = []string{"--secrets-dir", filepath.Join(s.dir, "secrets")}
		}
	default:
		return su, fmt.Errorf("loadtest: unknown audience source %q", a.source)
	}
	s.log.Info("audience ready", "source", a.source, "records", n, "reach_every", a.reachEvery, "s", fmt.Sprintf("%.1f", time.Since(start).Seconds()))
	s.made[key] = su
	return su, nil
}

func (s *audienceStore) eligible(n int64, reachEvery int, synthetic func(int64) (int64, error)) (int64, error) {
	if reachEvery <= 0 {
		return synthetic(n)
	}
	// Synthetic records are all valid: every reachEvery-th from 0.
	return (n + int64(reachEvery) - 1) / int64(reachEvery), nil
}

// eachRecord calls fn with each of the n synthetic records of seed as the
// JSON object a file line holds, reachable as reachEvery says. m is
// reused between calls.
func eachRecord(n, seed int64, reachEvery int, fn func(i int64, m map[string]any) error) error {
	src, err := audience.Open(audience.Spec{Source: audience.SourceSynthetic, Count: n, Seed: seed}, sharding.Cursor{}, audience.Limits{})
	if err != nil {
		return err
	}
	defer src.Close()
	m := map[string]any{}
	var i int64
	for src.Next() {
		clear(m)
		if err := src.Record().Decode(m); err != nil {
			return err
		}
		m["reachable"] = reachableAt(i, reachEvery, m["reachable"] == true)
		if err := fn(i, m); err != nil {
			return err
		}
		i++
	}
	return src.Err()
}

// file writes the audience as JSON Lines, once.
func (s *audienceStore) file(n int64, reachEvery int) (string, error) {
	key := audienceKey(n, reachEvery)
	if p, ok := s.files[key]; ok {
		return p, nil
	}
	path := filepath.Join(s.dir, "audience-"+key+".jsonl")
	f, err := os.Create(path)
	if err != nil {
		return "", fmt.Errorf("loadtest: audience file: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	enc := json.NewEncoder(w)
	err = eachRecord(n, s.seed, reachEvery, func(_ int64, m map[string]any) error { return enc.Encode(m) })
	if err = errors.Join(err, w.Flush(), f.Close()); err != nil {
		return "", fmt.Errorf("loadtest: audience file: %w", err)
	}
	s.files[key] = path
	return path, nil
}

// postgres starts the cluster and its database, once.
func (s *audienceStore) postgres(ctx context.Context) error {
	if s.pg != nil {
		return nil
	}
	pg, err := devstack.StartPostgres(ctx, devstack.PostgresConfig{})
	if err != nil {
		return err
	}
	s.pg = pg
	if _, port, err := net.SplitHostPort(pg.Addr()); err == nil {
		s.pgPid = listenerPid("postgres", port)
	}
	admin, err := pgx.Connect(ctx, pg.URL("postgres"))
	if err != nil {
		return fmt.Errorf("loadtest: postgres: %w", err)
	}
	_, err = admin.Exec(ctx, "CREATE DATABASE audiences")
	admin.Close(ctx)
	if err != nil {
		return fmt.Errorf("loadtest: postgres: %w", err)
	}
	s.dbURL = pg.URL("audiences")
	return os.WriteFile(filepath.Join(s.dir, "secrets", secretDB), []byte(s.dbURL), 0o600)
}

// table fills a table with the audience, as `herald audience prepare
// --include` leaves one: rows in insertion (id) order, the position
// column filled and NOT NULL, the (position, id) index carrying the
// columns a broadcast reads, and vacuumed so range reads are index-only.
func (s *audienceStore) table(ctx context.Context, n int64, reachEvery int) (string, error) {
	if err := s.postgres(ctx); err != nil {
		return "", err
	}
	name := "subs_" + strings.ReplaceAll(audienceKey(n, reachEvery), "-", "_")
	conn, err := pgx.Connect(ctx, s.dbURL)
	if err != nil {
		return "", fmt.Errorf("loadtest: postgres: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE "+name+` (id text NOT NULL, locale text, reachable boolean NOT NULL,
		name text, code text, points integer, city text, plan text, herald_position bigint NOT NULL)`); err != nil {
		return "", fmt.Errorf("loadtest: postgres: %w", err)
	}
	rows := make(chan []any, 1024)
	genCtx, stop := context.WithCancel(ctx)
	defer stop()
	var genErr error
	var gen sync.WaitGroup
	gen.Go(func() {
		defer close(rows)
		genErr = eachRecord(n, s.seed, reachEvery, func(_ int64, m map[string]any) error {
			id := m["id"].(string)
			pts, err := m["points"].(json.Number).Int64()
			if err != nil {
				return err
			}
			row := []any{id, m["locale"], m["reachable"], m["name"], m["code"], pts, m["city"], m["plan"], sharding.PositionColumn(id)}
			select {
			case rows <- row:
				return nil
			case <-genCtx.Done():
				return genCtx.Err()
			}
		})
	})
	_, err = conn.CopyFrom(ctx, pgx.Identifier{name}, audienceColumns, pgx.CopyFromFunc(func() ([]any, error) {
		row, ok := <-rows
		if !ok {
			return nil, genErr
		}
		return row, nil
	}))
	stop()
	gen.Wait()
	if err = errors.Join(err, genErr); err != nil {
		return "", fmt.Errorf("loadtest: postgres: fill %s: %w", name, err)
	}
	for _, sql := range []string{
		"CREATE UNIQUE INDEX ON " + name + " (id)",
		"CREATE INDEX ON " + name + " (herald_position, id) INCLUDE (locale, reachable, name, code, points, city, plan)",
		"VACUUM ANALYZE " + name,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return "", fmt.Errorf("loadtest: postgres: %s: %w", sql, err)
		}
	}
	return name, nil
}

func (s *audienceStore) importConfig() prepared.ImportConfig {
	return prepared.ImportConfig{TempDir: filepath.Join(s.dir, "tmp")}
}

// preparedDir imports the audience into a directory, once.
func (s *audienceStore) preparedDir(ctx context.Context, n int64, reachEvery int) (string, error) {
	path, err := s.file(n, reachEvery)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(s.dir, "prepared-"+audienceKey(n, reachEvery))
	if _, err := prepared.Import(ctx, path, prepared.DirStore{Dir: dir}, s.importConfig()); err != nil {
		return "", fmt.Errorf("loadtest: import: %w", err)
	}
	return dir, nil
}

// s3Server starts the in-process S3 server on loopback, once.
func (s *audienceStore) s3Server(ctx context.Context) error {
	if s.s3 != nil {
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("loadtest: s3: %w", err)
	}
	s.s3 = &http.Server{Handler: gofakes3.New(s3mem.New()).Server(), ErrorLog: log.New(io.Discard, "", 0)}
	s.s3Done = make(chan struct{})
	go func() {
		defer close(s.s3Done)
		_ = s.s3.Serve(ln)
	}()
	s.s3Secret = "http://LOADTEST:LOADTESTSECRET@" + ln.Addr().String() + "?region=us-east-1"
	store, err := s.s3Store("s3://" + s3Bucket + "/probe")
	if err != nil {
		return err
	}
	if err := store.Client.MakeBucket(ctx, s3Bucket, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		return fmt.Errorf("loadtest: s3: %w", err)
	}
	return os.WriteFile(filepath.Join(s.dir, "secrets", secretS3), []byte(s.s3Secret), 0o600)
}

func (s *audienceStore) s3Store(path string) (*prepared.S3Store, error) {
	loc, err := audience.ParseLocation(path)
	if err != nil {
		return nil, fmt.Errorf("loadtest: s3: %w", err)
	}
	return prepared.NewS3Store(s.s3Secret, loc)
}

// preparedS3 imports the audience into the S3 server, once.
func (s *audienceStore) preparedS3(ctx context.Context, n int64, reachEvery int) (string, error) {
	if err := s.s3Server(ctx); err != nil {
		return "", err
	}
	path, err := s.file(n, reachEvery)
	if err != nil {
		return "", err
	}
	loc := "s3://" + s3Bucket + "/" + audienceKey(n, reachEvery)
	store, err := s.s3Store(loc)
	if err != nil {
		return "", err
	}
	if _, err := prepared.Import(ctx, path, store, s.importConfig()); err != nil {
		return "", fmt.Errorf("loadtest: import: %w", err)
	}
	return loc, nil
}

// dbTicks is the CPU time the PostgreSQL server has used so far, in
// clock ticks; -1 when it is not known.
func (s *audienceStore) dbTicks() int64 {
	if s == nil || s.pgPid == 0 {
		return -1
	}
	t, err := treeTicks(s.pgPid)
	if err != nil {
		return -1
	}
	return t
}

// withAudience sets a spec's audience object; nil leaves it.
func withAudience(raw []byte, aud map[string]any) ([]byte, error) {
	if aud == nil {
		return raw, nil
	}
	var sp map[string]any
	if err := json.Unmarshal(raw, &sp); err != nil {
		return nil, fmt.Errorf("loadtest: audience spec: %w", err)
	}
	sp["audience"] = aud
	return json.Marshal(sp)
}
