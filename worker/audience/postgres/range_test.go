package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/herald-dev/herald/internal/pgtest"
	"github.com/herald-dev/herald/sharding"
	"github.com/herald-dev/herald/worker/audience"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pgAudience makes table subs in a new database with n subscribers whose
// position column is filled, and returns a pool on it.
func pgAudience(t *testing.T, n int) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	pool, err := Dial(ctx, pgtest.New(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	mustExec(t, pool, `CREATE TABLE subs (id text PRIMARY KEY, locale text, reachable boolean,
		name text, plan jsonb, herald_position bigint)`)
	mustExec(t, pool, `CREATE INDEX subs_position ON subs (herald_position, id)`)
	mustExec(t, pool, `CREATE INDEX subs_unpositioned ON subs (id) WHERE herald_position IS NULL`)
	rows := make([][]any, n)
	for i := range rows {
		id := fmt.Sprintf("user-%d", i)
		var locale any = "en"
		if i%3 == 0 {
			locale = nil
		}
		rows[i] = []any{id, locale, i%5 != 0, fmt.Sprintf("Name %d", i), map[string]any{"tier": i % 4}, sharding.PositionColumn(id)}
	}
	_, err = pool.CopyFrom(ctx, pgx.Identifier{"subs"}, []string{"id", "locale", "reachable", "name", "plan", "herald_position"}, pgx.CopyFromRows(rows))
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, pool, "ANALYZE subs")
	return pool
}

func mustExec(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func pgSpec() audience.Spec {
	return audience.Spec{Source: audience.SourcePostgres, Connection: "audience-db", Table: "public.subs",
		LocaleColumn: "locale", ReachableColumn: "reachable", AttributeColumns: []string{"name", "plan"}}
}

type pgSeen struct {
	id, invalid string
	pos         uint64
}

// readRange reads all of r with pages of pageRows.
func readRange(t *testing.T, tbl *Table, r sharding.Range, after *Key, pageRows int) ([]pgSeen, Key) {
	t.Helper()
	pr := tbl.Range(context.Background(), r, after, pageRows)
	var out []pgSeen
	for pr.Next() {
		rec := pr.Record()
		out = append(out, pgSeen{string(rec.ID), rec.Invalid, rec.Position()})
	}
	if err := pr.Err(); err != nil {
		t.Fatal(err)
	}
	return out, pr.After()
}

// Every row is read by exactly the range of the slot its position falls
// in, valid or not; a NULL position is read, invalid, by the range
// starting at 0 only.
func TestPostgresRangesCoverEveryRowOnce(t *testing.T) {
	const n = 3000
	pool := pgAudience(t, n)
	ctx := context.Background()
	mustExec(t, pool, `INSERT INTO subs (id, name) VALUES ('null-1', 'x'), ('null-2', 'y'), ('null-3', 'z')`)
	mustExec(t, pool, `INSERT INTO subs (id, herald_position) VALUES ('wrong', 12345)`)
	tbl, err := Open(ctx, pool, pgSpec())
	if err != nil {
		t.Fatal(err)
	}
	for _, slots := range []int{1, 4, 16} {
		seen := map[string]int{}
		var nulls, wrong int
		for s := 0; s < slots; s++ {
			got, _ := readRange(t, tbl, sharding.SlotRange(s, slots), nil, 97)
			for i, g := range got {
				seen[g.id]++
				switch g.invalid {
				case "":
					if k := sharding.SlotOf(g.pos, slots); k != s {
						t.Errorf("%d slots: %s at %#x read by slot %d, belongs to %d", slots, g.id, g.pos, s, k)
					}
					if i > 0 && got[i-1].invalid == "" && got[i-1].pos > g.pos {
						t.Errorf("%d slots: slot %d out of order at %s", slots, s, g.id)
					}
				case ReasonNullPosition:
					nulls++
					if s != 0 {
						t.Errorf("%d slots: NULL position row %s read by slot %d", slots, g.id, s)
					}
				case ReasonWrongPosition:
					wrong++
				default:
					t.Errorf("%s: unexpected invalid %q", g.id, g.invalid)
				}
			}
		}
		if len(seen) != n+4 || nulls != 3 || wrong != 1 {
			t.Errorf("%d slots: %d ids, %d NULL, %d wrong; want %d, 3, 1", slots, len(seen), nulls, wrong, n+4)
		}
		for id, c := range seen {
			if c != 1 {
				t.Errorf("%d slots: %s read %d times", slots, id, c)
			}
		}
	}
}

// A read resumed from After, at every point, continues exactly where it
// stopped: the NULL rows, page boundaries, and the range's end.
func TestPostgresResumeByKey(t *testing.T) {
	pool := pgAudience(t, 500)
	ctx := context.Background()
	mustExec(t, pool, `INSERT INTO subs (id) VALUES ('null-1'), ('null-2')`)
	tbl, err := Open(ctx, pool, pgSpec())
	if err != nil {
		t.Fatal(err)
	}
	r := sharding.SlotRange(0, 2)
	all, _ := readRange(t, tbl, r, nil, 1000)
	for _, stop := range []int{0, 1, 2, 3, 50, len(all) - 1, len(all)} {
		pr := tbl.Range(ctx, r, nil, 7)
		var got []string
		for i := 0; i < stop && pr.Next(); i++ {
			got = append(got, string(pr.Record().ID))
		}
		key := pr.After()
		rest, _ := readRange(t, tbl, r, &key, 7)
		for _, g := range rest {
			got = append(got, g.id)
		}
		if len(got) != len(all) {
			t.Fatalf("stop at %d: %d records, want %d", stop, len(got), len(all))
		}
		for i := range got {
			if got[i] != all[i].id {
				t.Fatalf("stop at %d: record %d is %s, want %s", stop, i, got[i], all[i].id)
			}
		}
	}
	// A NULL-phase key given to a range not at 0 starts it at its start,
	// without the NULL rows another slot counts.
	r1 := sharding.SlotRange(1, 2)
	want, _ := readRange(t, tbl, r1, nil, 50)
	got, _ := readRange(t, tbl, r1, &Key{NullPosition: true, ID: "null-1"}, 50)
	if len(got) != len(want) || len(got) == 0 || got[0] != want[0] {
		t.Fatalf("NULL key on range 1: %d records, want %d", len(got), len(want))
	}
}

// A row decodes as its file line would: id, locale and reachable from
// their columns (NULL absent), the attributes under their names.
func TestPostgresRecordDecode(t *testing.T) {
	pool := pgAudience(t, 10)
	ctx := context.Background()
	for _, sp := range []audience.Spec{pgSpec(), func() audience.Spec {
		s := pgSpec()
		s.AttributeColumns, s.AttributesColumn = nil, "plan"
		return s
	}()} {
		tbl, err := Open(ctx, pool, sp)
		if err != nil {
			t.Fatal(err)
		}
		pr := tbl.Range(ctx, sharding.Range{Lo: 0, Hi: ^uint64(0)}, nil, 0)
		m := map[string]any{}
		for pr.Next() {
			rec := pr.Record()
			if err := rec.Decode(m); err != nil {
				t.Fatal(err)
			}
			var i int
			fmt.Sscanf(string(rec.ID), "user-%d", &i)
			if m["id"] != string(rec.ID) || rec.Reachable() != (i%5 != 0) || (i%3 == 0) != (rec.Locale() == "") {
				t.Errorf("%s: %v, locale %q reachable %v", rec.ID, m, rec.Locale(), rec.Reachable())
			}
			if sp.AttributesColumn == "" && m["name"] != fmt.Sprintf("Name %d", i) {
				t.Errorf("%s: name %v", rec.ID, m["name"])
			}
			if sp.AttributesColumn != "" && m["tier"] != json.Number(fmt.Sprint(i%4)) {
				t.Errorf("%s: tier %#v", rec.ID, m["tier"])
			}
		}
		if pr.Err() != nil || pr.Rows() != 10 {
			t.Fatalf("%v after %d rows", pr.Err(), pr.Rows())
		}
	}
}

// The unit query of a range is answered by one index range scan on
// (position, id): no sequential scan, no sort.
func TestPostgresUnitQueryIsIndexRangeScan(t *testing.T) {
	// Enough rows that a range holds many pages, as in a real audience:
	// on a tiny table the planner may rightly prefer a sort.
	pool := pgAudience(t, 100000)
	ctx := context.Background()
	tbl, err := Open(ctx, pool, pgSpec())
	if err != nil {
		t.Fatal(err)
	}
	r := sharding.SlotRange(5, 16)
	for _, after := range []Key{{NullPosition: true}, {Pos: r.Lo + 1<<50, ID: "user-1"}} {
		sql, args := tbl.UnitQuery(r, after, DefaultPageRows)
		// One row per plan line.
		rows, err := pool.Query(ctx, "EXPLAIN "+sql, args...)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for rows.Next() {
			var l string
			if err := rows.Scan(&l); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, l)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		plan := strings.Join(lines, "\n")
		t.Logf("EXPLAIN %s\n%s", sql, plan)
		if !strings.Contains(plan, "Index Scan using subs_position on subs") ||
			!strings.Contains(plan, "Index Cond:") ||
			strings.Contains(plan, "Seq Scan") || strings.Contains(plan, "Sort") {
			t.Errorf("unit query after %+v is not one index range scan:\n%s", after, plan)
		}
	}
}

// A table that does not fit is refused with the field at fault.
func TestPostgresOpenErrors(t *testing.T) {
	pool := pgAudience(t, 1)
	ctx := context.Background()
	mustExec(t, pool, `CREATE TABLE noindex (id text, herald_position bigint)`)
	mustExec(t, pool, `CREATE TABLE textpos (id text, herald_position text)`)
	mustExec(t, pool, `CREATE INDEX ON textpos (herald_position, id)`)
	mustExec(t, pool, `CREATE TABLE nonull (id text, herald_position bigint)`)
	mustExec(t, pool, `CREATE INDEX ON nonull (herald_position, id)`)
	mustExec(t, pool, `CREATE TABLE filled (id text, herald_position bigint NOT NULL)`)
	mustExec(t, pool, `CREATE INDEX ON filled (herald_position, id)`)
	mustExec(t, pool, `CREATE TABLE posonly (id text, herald_position bigint)`)
	mustExec(t, pool, `CREATE INDEX ON posonly (herald_position)`)
	mustExec(t, pool, `CREATE VIEW subs_view AS SELECT * FROM subs`)
	for _, c := range []struct {
		name string
		edit func(*audience.Spec)
		want string // in the error; "" for success
	}{
		{"no table", func(s *audience.Spec) { s.Table = "nosuch" }, "audience.table: no such table"},
		{"no column", func(s *audience.Spec) { s.LocaleColumn = "lang" }, `audience.locale_column: no column "lang"`},
		{"no attribute column", func(s *audience.Spec) { s.AttributeColumns = []string{"name", "age"} }, `audience.attribute_columns[1]: no column "age"`},
		{"wrong id type", func(s *audience.Spec) { s.IDColumn = "reachable" }, `column "reachable" is boolean, want text`},
		{"wrong reachable type", func(s *audience.Spec) { s.ReachableColumn = "name" }, `audience.reachable_column: column "name" is text, want boolean`},
		{"wrong attributes type", func(s *audience.Spec) { s.AttributeColumns, s.AttributesColumn = nil, "name" }, `column "name" is text, want jsonb or json`},
		{"no index", func(s *audience.Spec) {
			s.Table, s.LocaleColumn, s.ReachableColumn, s.AttributeColumns = "noindex", "", "", nil
		}, "no index on (herald_position, id)"},
		{"index on position only", func(s *audience.Spec) {
			s.Table, s.LocaleColumn, s.ReachableColumn, s.AttributeColumns = "posonly", "", "", nil
		}, "no index on (herald_position, id)"},
		{"position not bigint", func(s *audience.Spec) {
			s.Table, s.LocaleColumn, s.ReachableColumn, s.AttributeColumns = "textpos", "", "", nil
		}, `column "herald_position" is text, want bigint`},
		{"no index for NULL positions", func(s *audience.Spec) {
			s.Table, s.LocaleColumn, s.ReachableColumn, s.AttributeColumns = "nonull", "", "", nil
		}, "rows with a NULL herald_position cannot be found without a scan"},
		{"NOT NULL position", func(s *audience.Spec) {
			s.Table, s.LocaleColumn, s.ReachableColumn, s.AttributeColumns = "filled", "", "", nil
		}, ""},
		{"view", func(s *audience.Spec) { s.Table = "subs_view" }, ""},
		{"not a table", func(s *audience.Spec) { s.Table = "subs_position" }, "not a table or view"},
	} {
		t.Run(c.name, func(t *testing.T) {
			sp := pgSpec()
			c.edit(&sp)
			_, err := Open(ctx, pool, sp)
			switch {
			case c.want == "" && err != nil:
				t.Fatal(err)
			case c.want == "":
			case err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrTable):
				t.Fatalf("error %v, want ErrTable containing %q", err, c.want)
			}
		})
	}
}

// An unreachable database is named without the password.
func TestPostgresUnreachable(t *testing.T) {
	_, err := Dial(context.Background(), "postgres://herald:s3cret@127.0.0.1:1/audience?connect_timeout=2")
	if !errors.Is(err, ErrUnreachable) || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error %v, want ErrUnreachable without the password", err)
	}
	t.Log(err)
	_, err = Dial(context.Background(), "postgres://herald:s3cret@[::1/x")
	if !errors.Is(err, ErrUnreachable) || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error %v, want ErrUnreachable without the password", err)
	}
}

// What a range read sees of rows written while it runs, as AUDIENCES.md
// defines it: a row is read as it is when the keyset passes its place
// (when its page is fetched; the writes here come at a page boundary).
// Inserted ahead of the reader: read; behind: not. Deleted ahead: not
// read. Updated ahead: read as updated.
func TestPostgresConcurrentWrites(t *testing.T) {
	pool := pgAudience(t, 2000)
	ctx := context.Background()
	tbl, err := Open(ctx, pool, pgSpec())
	if err != nil {
		t.Fatal(err)
	}
	r := sharding.Range{Lo: 0, Hi: ^uint64(0)}
	pr := tbl.Range(ctx, r, nil, 100)
	for i := 0; i < 1000 && pr.Next(); i++ {
	}
	here := pr.After()
	// Ids whose positions fall ahead of and behind the reader.
	var ahead, behind []string
	for i := 0; len(ahead) < 3 || len(behind) < 3; i++ {
		id := fmt.Sprintf("late-%d", i)
		if sharding.Position(id) > here.Pos {
			ahead = append(ahead, id)
		} else {
			behind = append(behind, id)
		}
	}
	for _, id := range append(ahead[:3], behind[:3]...) {
		mustExec(t, pool, `INSERT INTO subs (id, name, herald_position) VALUES ($1, 'late', $2)`, id, sharding.PositionColumn(id))
	}
	// One existing row ahead deleted, one updated.
	var gone, changed string
	rows, err := pool.Query(ctx, `SELECT id FROM subs WHERE herald_position > $1 AND id NOT LIKE 'late-%' ORDER BY herald_position LIMIT 2`, sharding.ColumnOf(here.Pos))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for rows.Next() {
		var id string
		rows.Scan(&id)
		ids = append(ids, id)
	}
	rows.Close()
	gone, changed = ids[0], ids[1]
	mustExec(t, pool, `DELETE FROM subs WHERE id = $1`, gone)
	mustExec(t, pool, `UPDATE subs SET name = 'renamed' WHERE id = $1`, changed)

	seen := map[string]string{}
	m := map[string]any{}
	for pr.Next() {
		rec := pr.Record()
		if err := rec.Decode(m); err != nil {
			t.Fatal(err)
		}
		seen[string(rec.ID)], _ = m["name"].(string)
	}
	if pr.Err() != nil {
		t.Fatal(pr.Err())
	}
	for _, id := range ahead[:3] {
		if _, ok := seen[id]; !ok {
			t.Errorf("%s, inserted ahead of the reader, not read", id)
		}
	}
	for _, id := range behind[:3] {
		if _, ok := seen[id]; ok {
			t.Errorf("%s, inserted behind the reader, read", id)
		}
	}
	if _, ok := seen[gone]; ok {
		t.Errorf("%s, deleted ahead of the reader, read", gone)
	}
	if seen[changed] != "renamed" {
		t.Errorf("%s, updated ahead of the reader, read as %q", changed, seen[changed])
	}
}

// A read that fetches each next page ahead returns exactly what a plain
// read does, NULL-position rows and page boundaries included, and Close
// in the middle ends the fetch under way (goleak checks none is left).
func TestPostgresPrefetch(t *testing.T) {
	pool := pgAudience(t, 2000)
	ctx := context.Background()
	mustExec(t, pool, `INSERT INTO subs (id, name) VALUES ('null-1', 'x'), ('null-2', 'y')`)
	tbl, err := Open(ctx, pool, pgSpec())
	if err != nil {
		t.Fatal(err)
	}
	for _, slots := range []int{1, 4} {
		for s := 0; s < slots; s++ {
			r := sharding.SlotRange(s, slots)
			want, _ := readRange(t, tbl, r, nil, 97)
			pr := tbl.Range(ctx, r, nil, 97)
			pr.Prefetch()
			var got []pgSeen
			for pr.Next() {
				rec := pr.Record()
				got = append(got, pgSeen{string(rec.ID), rec.Invalid, rec.Position()})
			}
			pr.Close()
			if pr.Err() != nil || !slices.Equal(got, want) {
				t.Fatalf("%d slots, slot %d: prefetched read of %d rows (err %v), plain read %d", slots, s, len(got), pr.Err(), len(want))
			}
		}
	}
	pr := tbl.Range(ctx, sharding.SlotRange(0, 1), nil, 50)
	pr.Prefetch()
	for i := 0; i < 120 && pr.Next(); i++ {
	}
	pr.Close()
	if pr.Next() {
		t.Error("a closed read returned a row")
	}
}
