package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/herald-dev/herald/internal/pgtest"
	"github.com/herald-dev/herald/sharding"
	"github.com/herald-dev/herald/worker/audience"
	"github.com/jackc/pgx/v5"
)

// Prepare turns a plain table into a postgres audience: column, positions,
// indexes; run again it does nothing, and after more inserts it fills only
// the new rows.
func TestPreparePostgres(t *testing.T) {
	ctx := context.Background()
	pool, err := Dial(ctx, pgtest.New(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	mustExec(t, pool, `CREATE TABLE "Members" (member_id varchar(64) PRIMARY KEY, lang text)`)
	mustExec(t, pool, `INSERT INTO "Members" SELECT 'm-' || g, 'en' FROM generate_series(1, 2345) g`)
	sp := audience.Spec{Source: audience.SourcePostgres, Connection: "db", Table: "Members", IDColumn: "member_id", LocaleColumn: "lang"}
	if _, err := Open(ctx, pool, sp); !errors.Is(err, ErrTable) {
		t.Fatalf("open before prepare: %v, want ErrTable", err)
	}
	var steps []string
	cfg := PrepareConfig{Table: "Members", IDColumn: "member_id", BatchRows: 500, Include: []string{"lang"},
		Progress: func(p PrepareProgress) { steps = append(steps, fmt.Sprintf("%s %d", p.Step, p.Filled)) }}
	n, err := Prepare(ctx, pool, cfg)
	if err != nil || n != 2345 {
		t.Fatalf("prepare: %d rows, %v; want 2345", n, err)
	}
	t.Logf("progress: %s", strings.Join(steps, ", "))
	tbl, err := Open(ctx, pool, sp)
	if err != nil {
		t.Fatal(err)
	}
	count := func() (rows, invalid int) {
		pr := tbl.Range(ctx, sharding.Range{Lo: 0, Hi: ^uint64(0)}, nil, 300)
		for pr.Next() {
			rows++
			if pr.Record().Invalid != "" {
				invalid++
			}
		}
		if pr.Err() != nil {
			t.Fatal(pr.Err())
		}
		return rows, invalid
	}
	if rows, invalid := count(); rows != 2345 || invalid != 0 {
		t.Fatalf("after prepare: %d rows, %d invalid", rows, invalid)
	}
	var def string
	if err := pool.QueryRow(ctx, `SELECT indexdef FROM pg_indexes WHERE indexname = 'Members_herald_position'`).Scan(&def); err != nil || !strings.Contains(def, "INCLUDE (lang)") {
		t.Fatalf("index %q (%v), want it to include lang", def, err)
	}
	if n, err := Prepare(ctx, pool, cfg); err != nil || n != 0 {
		t.Fatalf("prepare again: %d rows, %v; want 0", n, err)
	}
	mustExec(t, pool, `INSERT INTO "Members" SELECT 'late-' || g FROM generate_series(1, 7) g`)
	if rows, invalid := count(); rows != 2352 || invalid != 7 {
		t.Fatalf("after unfilled inserts: %d rows, %d invalid; want 2352, 7", rows, invalid)
	}
	if n, err := Prepare(ctx, pool, cfg); err != nil || n != 7 {
		t.Fatalf("prepare after inserts: %d rows, %v; want 7", n, err)
	}
	var wrong int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM "Members" WHERE herald_position IS NULL`).Scan(&wrong); err != nil || wrong != 0 {
		t.Fatalf("%d rows without a position (%v)", wrong, err)
	}
	rows, _ := pool.Query(ctx, `SELECT member_id, herald_position FROM "Members"`)
	pairs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct {
		ID  string
		Pos int64
	}])
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pairs {
		if p.Pos != sharding.PositionColumn(p.ID) {
			t.Fatalf("%s: position %d, want %d", p.ID, p.Pos, sharding.PositionColumn(p.ID))
		}
	}
}

// Prepare refuses what it cannot work on, by name.
func TestPreparePostgresRefusals(t *testing.T) {
	ctx := context.Background()
	pool, err := Dial(ctx, pgtest.New(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	mustExec(t, pool, `CREATE TABLE noidindex (id text)`)
	mustExec(t, pool, `CREATE TABLE intid (id bigint PRIMARY KEY)`)
	mustExec(t, pool, `CREATE TABLE textpos (id text PRIMARY KEY, herald_position text)`)
	mustExec(t, pool, `CREATE VIEW v AS SELECT * FROM intid`)
	for table, want := range map[string]string{
		"noidindex": "no index leads with",
		"intid":     "is bigint, want text",
		"textpos":   `"herald_position" is text, want bigint`,
		"v":         "prepare works on a table",
		"missing":   "no such table",
	} {
		if table == "intid" {
			if _, err := Prepare(ctx, pool, PrepareConfig{Table: "textpos", Include: []string{"nope"}}); !errors.Is(err, ErrTable) || !strings.Contains(err.Error(), `no column "nope"`) {
				t.Errorf("include a missing column: %v", err)
			}
		}
		if _, err := Prepare(ctx, pool, PrepareConfig{Table: table}); !errors.Is(err, ErrTable) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want ErrTable with %q", table, err, want)
		}
	}
}
