package worker

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/internal/faultproxy"
	"github.com/herald-dev/herald/internal/pgtest"
	"github.com/herald-dev/herald/sharding"
	"github.com/herald-dev/herald/sink"
	"github.com/herald-dev/herald/worker/audience"
	"github.com/herald-dev/herald/worker/audience/prepared"
)

// pgSubscribers makes a table of n subscribers in a fresh database and
// returns the database's connection string. Every tenth is unreachable;
// the last nullPos rows have no position yet and one row holds a
// position that is not its id's: those are invalid, and counted.
func pgSubscribers(t *testing.T, n, nullPos int) string {
	t.Helper()
	ctx := context.Background()
	dsn := pgtest.New(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, sql := range []string{
		`CREATE TABLE subs (id text PRIMARY KEY, locale text, reachable boolean NOT NULL, name text, herald_position bigint)`,
		`CREATE INDEX subs_position ON subs (herald_position, id)`,
		`CREATE INDEX subs_unpositioned ON subs (id) WHERE herald_position IS NULL`,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	rows := make([][]any, n)
	for i := range rows {
		id := fmt.Sprintf("sub-%d", i)
		var pos any = sharding.PositionColumn(id)
		switch {
		case i >= n-nullPos:
			pos = nil
		case i == 0:
			pos = sharding.PositionColumn("someone else")
		}
		rows[i] = []any{id, []string{"en", "fr"}[i%2], i%10 != 9, fmt.Sprintf("Name %d", i), pos}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"subs"}, []string{"id", "locale", "reachable", "name", "herald_position"}, pgx.CopyFromRows(rows)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "ANALYZE subs"); err != nil {
		t.Fatal(err)
	}
	return dsn
}

// rangeSpec is a broadcast of aud whose message names the subscriber.
func rangeSpec(id, url string, aud map[string]any) map[string]any {
	return map[string]any{
		"id":             id,
		"audience":       aud,
		"only_reachable": true,
		"template": map[string]any{"default_locale": "en", "locales": map[string]any{
			"en": map[string]string{"title": "Hi {{.name}}", "body": "for {{.id}}"},
			"fr": map[string]string{"title": "Salut {{.name}}", "body": "pour {{.id}}"},
		}},
		"endpoint": map[string]any{"url": url, "max_in_flight": 16, "timeout_ms": 2000, "max_attempts": 8},
	}
}

// scannedAll is the records read by the fleet's readers.
func scannedAll(t *testing.T, ws ...*testWorker) float64 {
	var sum float64
	for _, w := range ws {
		sum += counterValue(t, w, "herald_records_scanned_total")
	}
	return sum
}

func withSecrets(s mapSecrets) func(*Config) {
	return func(c *Config) { c.Secrets = s }
}

// startFleet starts workers w1 (taking triggers) to wn, all with sec.
func startFleet(e *env, n int, sec mapSecrets) []*testWorker {
	ws := make([]*testWorker, n)
	for i := range ws {
		ws[i] = e.startWorker(fmt.Sprintf("w%d", i+1), workerOpts{intake: i == 0, tune: withSecrets(sec)})
	}
	return ws
}

// TestPostgresAudienceEndToEnd: two workers send a postgres audience,
// each reading only the rows of the slots it holds: every row is counted
// once (the NULL positions and the wrong position as invalid, with the
// row's id), every reachable one delivered once with its columns, and
// the fleet reads the table about once, not once per worker.
func TestPostgresAudienceEndToEnd(t *testing.T) {
	const n, nulls = 3000, 4
	dsn := pgSubscribers(t, n, nulls)
	e := newEnv(t, sink.Config{Strict: true})
	e.keepBodies = true
	ws := startFleet(e, 2, mapSecrets{"audience-db": dsn})
	id := e.trigger(rangeSpec("pg-e2e", e.endpoint(), map[string]any{
		"source": "postgres", "connection": "audience-db", "table": "subs",
		"locale_column": "locale", "reachable_column": "reachable", "attribute_columns": []string{"name"},
	}))
	st := e.waitDone(id, 60*time.Second)
	if st.State != coordinator.StateDone {
		t.Fatalf("state %s (%s), want done", st.State, st.Reason)
	}
	conserved(t, st)
	const invalid = nulls + 1
	var unreachable int64
	for i := range n - nulls {
		if i%10 == 9 && i != 0 {
			unreachable++
		}
	}
	want := coordinator.Counters{Scanned: n, Invalid: invalid, Unreachable: unreachable, Delivered: n - invalid - unreachable}
	if st.Counters != want {
		t.Errorf("counters %+v, want %+v", st.Counters, want)
	}
	got := e.sink.Stats().Broadcasts[id]
	if got.Delivered != want.Delivered || got.Duplicates != 0 {
		t.Errorf("endpoint: %d delivered, %d duplicates; want %d, 0", got.Delivered, got.Duplicates, want.Delivered)
	}
	var samples []string
	for _, s := range st.InvalidSamples {
		samples = append(samples, s.Reason)
	}
	joined := strings.Join(samples, "\n")
	if len(samples) != invalid || !strings.Contains(joined, `id "sub-0"`) || !strings.Contains(joined, "does not hold the id's position") ||
		!strings.Contains(joined, fmt.Sprintf(`id "sub-%d"`, n-1)) || !strings.Contains(joined, "NULL") {
		t.Errorf("invalid samples:\n%s\nwant the %d rows by id, with why", joined, invalid)
	}
	body := deliveryBody(t, e, id, "sub-1")
	if !strings.Contains(body, `"title":"Salut Name 1"`) || !strings.Contains(body, `"body":"pour sub-1"`) {
		t.Errorf("sub-1's body %s: want its columns in the fr template", body)
	}
	if st.Workers["w1"].Delivered == 0 || st.Workers["w2"].Delivered == 0 {
		t.Errorf("shares %+v: both workers should have sent", st.Workers)
	}
	// Each reader reads only its slots' rows; the counter is published
	// every 256 records, so allow that much per worker below.
	read := scannedAll(t, ws...)
	t.Logf("rows read by the fleet: %.0f for %d rows", read, n)
	if read > 1.1*n || read < n-2*256 {
		t.Errorf("the fleet read %.0f rows of a %d-row table, want about one pass", read, n)
	}
}

// deliveryBody is the body of sub's delivery in broadcast id, among
// those the endpoint kept.
func deliveryBody(t *testing.T, e *env, id, sub string) string {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, b := range e.bodies {
		if strings.Contains(string(b), `"subscriber_id":"`+sub+`"`) && strings.Contains(string(b), `"broadcast_id":"`+id+`"`) {
			return string(b)
		}
	}
	t.Errorf("no delivery for %s in %s", sub, id)
	return ""
}

// TestPostgresAudienceKill abandons a worker mid-broadcast on a postgres
// audience: nothing lost, duplicates within the dead worker's checkpoint
// window, the survivors resuming its slots at their (position, place)
// cursors.
func TestPostgresAudienceKill(t *testing.T) {
	const n = 30_000
	dsn := pgSubscribers(t, n, 0)
	e := newEnv(t, sink.Config{Latency: 200 * time.Microsecond})
	ws := startFleet(e, 3, mapSecrets{"audience-db": dsn})
	id := e.trigger(rangeSpec("pg-kill", e.endpoint(), map[string]any{
		"source": "postgres", "connection": "audience-db", "table": "subs",
		"locale_column": "locale", "reachable_column": "reachable", "attribute_columns": []string{"name"},
	}))
	waitFor(t, 60*time.Second, "a third of the broadcast", func() bool {
		return e.sink.Stats().Broadcasts[id].Delivered >= n/3
	})
	ws[1].kill(t)
	st := e.waitDone(id, 90*time.Second)
	if st.State != coordinator.StateDone {
		t.Fatalf("state %s, want done", st.State)
	}
	conserved(t, st)
	got := e.sink.Stats().Broadcasts[id]
	if st.Counters.Scanned != n || st.Counters.Invalid != 1 {
		t.Errorf("counters %+v: want %d scanned, 1 invalid", st.Counters, n)
	}
	if lost := eligible(t, st) - got.Delivered - st.Counters.Failed; lost != 0 {
		t.Errorf("lost %d (eligible %d, delivered %d)", lost, eligible(t, st), got.Delivered)
	}
	const maxInFlight = 16
	bound := int64(1000 + 2*2*maxInFlight)
	t.Logf("killed w2: duplicates %d (bound %d), delivered %d", got.Duplicates, bound, got.Delivered)
	if got.Duplicates > bound {
		t.Errorf("duplicates %d above the checkpoint-window bound %d", got.Duplicates, bound)
	}
	// The survivors read the dead worker's slots from their checkpoints,
	// and nothing else again. (w2's own count died with it.)
	if read := scannedAll(t, ws[0], ws[2]); read > 1.1*n {
		t.Errorf("the survivors read %.0f rows of %d", read, n)
	}
}

// preparedAudience imports a synthetic audience of n subscribers into
// store and returns the records' count of reachable ones.
func preparedAudience(t *testing.T, n int64, store prepared.Store) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audience.jsonl")
	if err := audience.WriteSyntheticFile(path, n, 3); err != nil {
		t.Fatal(err)
	}
	cfg := prepared.ImportConfig{SegmentBytes: 64 << 10, CheckpointEvery: 64, TempDir: t.TempDir()}
	if _, err := prepared.Import(context.Background(), path, store, cfg); err != nil {
		t.Fatal(err)
	}
}

// TestPreparedAudienceS3 sends a prepared audience kept in object
// storage (an in-process S3 server) with two workers and a third that
// joins midway: every reachable subscriber once, none twice, and the
// fleet reads about one pass of the records.
func TestPreparedAudienceS3(t *testing.T) {
	srv := httptest.NewUnstartedServer(gofakes3.New(s3mem.New()).Server())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	secret := "http://AKID:SECRET@" + u.Host + "?region=us-east-1"
	loc, err := audience.ParseLocation("s3://audiences/spring")
	if err != nil {
		t.Fatal(err)
	}
	store, err := prepared.NewS3Store(secret, loc)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Client.MakeBucket(context.Background(), "audiences", minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		t.Fatal(err)
	}
	const n = 20_000
	preparedAudience(t, n, store)

	e := newEnv(t, sink.Config{Latency: 200 * time.Microsecond})
	sec := mapSecrets{"s3-audiences": secret}
	ws := startFleet(e, 2, sec)
	id := e.trigger(rangeSpec("prep-s3", e.endpoint(), map[string]any{
		"source": "prepared", "path": "s3://audiences/spring", "connection": "s3-audiences",
	}))
	waitFor(t, 60*time.Second, "a third of the broadcast", func() bool {
		return e.sink.Stats().Broadcasts[id].Delivered >= n/3
	})
	ws = append(ws, e.startWorker("w3", workerOpts{tune: withSecrets(sec)}))
	st := e.waitDone(id, 90*time.Second)
	if st.State != coordinator.StateDone {
		t.Fatalf("state %s (%s), want done", st.State, st.Reason)
	}
	conserved(t, st)
	got := e.sink.Stats().Broadcasts[id]
	if st.Counters.Scanned != n || got.Delivered != eligible(t, st) || got.Duplicates != 0 || st.Counters.Failed != 0 {
		t.Errorf("counters %+v, endpoint %d delivered %d duplicates: want all %d once", st.Counters, got.Delivered, got.Duplicates, n)
	}
	if st.Workers["w3"].Delivered == 0 {
		t.Errorf("the joiner sent nothing: %+v", st.Workers)
	}
	// Slots moving to the joiner cost no second reading: each worker
	// reads each slot's range from where that slot needs it, and stops
	// reading a slot it hands back.
	read := scannedAll(t, ws...)
	t.Logf("records read by the fleet: %.0f for %d records; shares %+v", read, n, st.Workers)
	if read > 1.1*n {
		t.Errorf("the fleet read %.0f records of %d, want about one pass", read, n)
	}
}

// TestPreparedAudienceDirLeave: a prepared audience in a directory, a
// worker leaving gracefully midway: exact.
func TestPreparedAudienceDirLeave(t *testing.T) {
	dir := t.TempDir()
	const n = 20_000
	preparedAudience(t, n, prepared.DirStore{Dir: dir})
	e := newEnv(t, sink.Config{Latency: 200 * time.Microsecond})
	ws := []*testWorker{e.startWorker("w1", workerOpts{intake: true}), e.startWorker("w2", workerOpts{})}
	id := e.trigger(rangeSpec("prep-dir", e.endpoint(), map[string]any{"source": "prepared", "path": dir}))
	waitFor(t, 60*time.Second, "a third of the broadcast", func() bool {
		return e.sink.Stats().Broadcasts[id].Delivered >= n/3
	})
	ws[1].stop(t)
	st := e.waitDone(id, 90*time.Second)
	if st.State != coordinator.StateDone {
		t.Fatalf("state %s (%s), want done", st.State, st.Reason)
	}
	conserved(t, st)
	got := e.sink.Stats().Broadcasts[id]
	if st.Counters.Scanned != n || got.Delivered != eligible(t, st) || got.Duplicates != 0 {
		t.Errorf("counters %+v, endpoint %d delivered %d duplicates: want all %d once", st.Counters, got.Delivered, got.Duplicates, n)
	}
}

// TestRangeSourcesChecked: what no retry can fix in a range audience is
// refused at intake, naming the field and what is wrong: a connection
// secret the workers do not have, a table without a column the spec
// names, a directory without a prepared audience.
func TestRangeSourcesChecked(t *testing.T) {
	dsn := pgSubscribers(t, 10, 0)
	e := newEnv(t, sink.Config{})
	e.startWorker("w1", workerOpts{intake: true, tune: withSecrets(mapSecrets{"audience-db": dsn})})
	empty := t.TempDir()
	for _, tc := range []struct {
		id   string
		aud  map[string]any
		want []string
	}{
		{"no-secret", map[string]any{"source": "postgres", "connection": "other-db", "table": "subs"},
			[]string{"audience.connection", `no secret named "other-db"`}},
		{"no-column", map[string]any{"source": "postgres", "connection": "audience-db", "table": "subs", "locale_column": "lang"},
			[]string{"audience.table", `no column "lang"`}},
		{"no-table", map[string]any{"source": "postgres", "connection": "audience-db", "table": "followers"},
			[]string{"audience.table", "followers"}},
		{"not-imported", map[string]any{"source": "prepared", "path": empty},
			[]string{"audience.path", "index.json"}},
	} {
		e.trigger(rangeSpec(tc.id, e.endpoint(), tc.aud))
		st := e.waitDone(tc.id, 20*time.Second)
		if st.State != coordinator.StateRejected {
			t.Errorf("%s: state %s, want rejected", tc.id, st.State)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(st.Reason, w) {
				t.Errorf("%s: reason %q, want it to say %q", tc.id, st.Reason, w)
			}
		}
		if strings.Contains(st.Reason, dsn) {
			t.Errorf("%s: reason quotes the connection string", tc.id)
		}
	}
}

// TestRangeAudienceWaitsForDatabase: a database down when the broadcast
// starts costs time, not the broadcast: the readers try again until it
// answers, then send everyone once.
func TestRangeAudienceWaitsForDatabase(t *testing.T) {
	dsn := pgSubscribers(t, 500, 0)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	// A proxy that turns connections away until the test restores it.
	px, err := faultproxy.New(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(px.Close)
	px.Cut()
	u.Host = px.Addr()
	e := newEnv(t, sink.Config{})
	e.startWorker("w1", workerOpts{intake: true, tune: withSecrets(mapSecrets{"audience-db": u.String()})})
	id := e.trigger(rangeSpec("pg-late", e.endpoint(), map[string]any{
		"source": "postgres", "connection": "audience-db", "table": "subs", "reachable_column": "reachable",
		"attribute_columns": []string{"name"},
	}))
	waitFor(t, 20*time.Second, "the broadcast registered", func() bool {
		st, err := e.reg.Status(context.Background(), id)
		return err == nil && st.State == coordinator.StateRunning
	})
	time.Sleep(time.Second)
	if d := e.sink.Stats().Broadcasts[id].Delivered; d != 0 {
		t.Fatalf("%d delivered with the database down", d)
	}
	px.Restore()
	st := e.waitDone(id, 60*time.Second)
	if got := e.sink.Stats().Broadcasts[id]; st.State != coordinator.StateDone || got.Delivered != eligible(t, st) || st.Counters.Scanned != 500 {
		t.Errorf("state %s, counters %+v, delivered %d", st.State, st.Counters, got.Delivered)
	}
}
