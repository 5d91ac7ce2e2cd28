package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/herald-dev/herald/sharding"
	"github.com/herald-dev/herald/worker/audience"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Execer is what Prepare needs of a database handle: statements
// run each in its own transaction (autocommit), as CREATE INDEX
// CONCURRENTLY requires. *pgxpool.Pool and *pgx.Conn have it.
type Execer interface {
	Querier
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// PrepareConfig says which table Prepare makes ready for range
// reads.
type PrepareConfig struct {
	// Table is table or schema.table.
	Table string
	// IDColumn and PositionColumn as in audience.Spec; "" means the defaults.
	IDColumn       string
	PositionColumn string
	// Include are columns the (position, id) index carries besides its
	// keys (INCLUDE): with every column a broadcast reads among them, a
	// range read is an index-only scan that never visits the table, whose
	// rows lie in insertion order, not position order. A bigger index for
	// faster reads; none by default.
	Include []string
	// BatchRows is how many rows one UPDATE fills; each batch is its own
	// short transaction, locking only its rows. Zero means 5,000.
	BatchRows int
	// LockTimeout bounds the wait for the brief table lock ADD COLUMN
	// takes, so prepare never queues behind a long transaction while
	// blocking everyone else behind it; it retries after a pause. Zero
	// means 5 seconds.
	LockTimeout time.Duration
	// Trigger installs herald_position(text) and a trigger that fills
	// the column of every row inserted (or whose id changes) from then on
	// (InstallTrigger), before the last fill, so no row is left
	// without a position whatever writes the table.
	Trigger bool
	// Progress, when set, is told of each step and of filled rows.
	Progress func(PrepareProgress)
}

// PrepareProgress is one report of Prepare.
type PrepareProgress struct {
	Step     string // what is being done, such as "fill" or "index"
	Filled   int64  // rows filled so far
	Estimate int64  // the table's row count as the planner estimates it
}

// Names of the indexes Prepare creates, from the table's name.
func positionIndexName(table string) string     { return indexName(table, "herald_position") }
func unpositionedIndexName(table string) string { return indexName(table, "herald_unpositioned") }

func indexName(table, suffix string) string {
	_, name, found := strings.Cut(table, ".")
	if !found {
		name = table
	}
	n := name + "_" + suffix
	if len(n) > audience.MaxIdentifierBytes {
		n = n[:audience.MaxIdentifierBytes]
	}
	return n
}

// Prepare makes an existing table ready to be a postgres
// audience, without locking it for long, and can be run again at any
// time (each step is skipped when done):
//
//  1. ADD COLUMN position bigint, if missing: a catalog change with no
//     rewrite, under a lock held for milliseconds and waited for at most
//     LockTimeout;
//  2. fill the column where it is NULL, in batches of BatchRows rows taken
//     in id order (by keyset on the id's index), each batch an UPDATE in
//     its own transaction;
//  3. CREATE INDEX CONCURRENTLY on (position, id), the index range reads
//     scan, and on (id) WHERE position IS NULL, which lets the range at 0
//     find rows still unfilled without a scan (it stays empty once
//     writers fill the column);
//  4. with Trigger, install the trigger that fills the column of new rows;
//  5. fill again the rows inserted without a position meanwhile.
//
// The id column must be text and have an index that leads with it (a
// primary key or unique constraint). It returns the rows filled.
func Prepare(ctx context.Context, db Execer, cfg PrepareConfig) (int64, error) {
	if cfg.BatchRows <= 0 {
		cfg.BatchRows = 5000
	}
	if cfg.LockTimeout <= 0 {
		cfg.LockTimeout = 5 * time.Second
	}
	idCol := or(cfg.IDColumn, audience.DefaultIDColumn)
	posCol := or(cfg.PositionColumn, audience.DefaultPositionColumn)
	sp := audience.Spec{Source: audience.SourcePostgres, Connection: "x", Table: cfg.Table, IDColumn: idCol, PositionColumn: posCol}
	if err := sp.Validate(); err != nil {
		return 0, err
	}
	report := func(p PrepareProgress) {
		if cfg.Progress != nil {
			cfg.Progress(p)
		}
	}
	for _, c := range cfg.Include {
		if msg := audience.CheckIdentifier(c); msg != "" {
			return 0, fmt.Errorf("%w: include column: %s", audience.ErrSpec, msg)
		}
	}
	rel, err := describeTable(ctx, db, cfg.Table)
	if err != nil {
		return 0, err
	}
	for _, c := range cfg.Include {
		if _, ok := rel.columns[c]; !ok {
			return 0, fmt.Errorf("%w: %s: no column %q to include in the index", ErrTable, cfg.Table, c)
		}
	}
	if !rel.isTable {
		return 0, fmt.Errorf("%w: %s: prepare works on a table; for a view, prepare the table under it", ErrTable, cfg.Table)
	}
	idC, ok := rel.columns[idCol]
	switch {
	case !ok:
		return 0, fmt.Errorf("%w: %s: no column %q", ErrTable, cfg.Table, idCol)
	case !contains([]string{"text", "character varying", "character"}, idC.typ):
		return 0, fmt.Errorf("%w: %s: id column %q is %s, want text", ErrTable, cfg.Table, idCol, idC.typ)
	case !rel.indexed(idC.num):
		return 0, fmt.Errorf("%w: %s: no index leads with %q: prepare fills rows in id order and needs one (a primary key or unique constraint)", ErrTable, cfg.Table, idCol)
	}
	var estimate int64
	queryRows(ctx, db, "SELECT reltuples::bigint FROM pg_class WHERE oid = $1", []any{rel.oid},
		func(rows pgx.Rows) error { return rows.Scan(&estimate) })

	table := rel.quoted
	pos, id := pgx.Identifier{posCol}.Sanitize(), pgx.Identifier{idCol}.Sanitize()
	if c, ok := rel.columns[posCol]; ok {
		if c.typ != "bigint" {
			return 0, fmt.Errorf("%w: %s: column %q is %s, want bigint", ErrTable, cfg.Table, posCol, c.typ)
		}
	} else {
		report(PrepareProgress{Step: "add column " + posCol, Estimate: estimate})
		if err := addColumn(ctx, db, table, pos, cfg.LockTimeout); err != nil {
			return 0, err
		}
	}
	var filled int64
	fill := func() error {
		// Without the partial index on unfilled rows, the planner knows
		// nothing of a new column's NULLs and may answer "the next rows
		// where it is NULL" with a sequential scan per batch; walking the
		// id's index and skipping filled rows reads the table once.
		rel, err := describeTable(ctx, db, cfg.Table)
		if err != nil {
			return err
		}
		walk := !rel.findsNulls(posCol, idC.num)
		n, err := fillPositions(ctx, db, table, pos, id, cfg.BatchRows, walk, func(n int64) {
			report(PrepareProgress{Step: "fill", Filled: filled + n, Estimate: estimate})
		})
		filled += n
		return err
	}
	if err := fill(); err != nil {
		return filled, err
	}
	posDef := "(" + pos + ", " + id + ")"
	if len(cfg.Include) > 0 {
		posDef += " INCLUDE (" + strings.Join(quoteAll(cfg.Include), ", ") + ")"
	}
	for _, ix := range []struct{ name, def string }{
		{positionIndexName(cfg.Table), posDef},
		{unpositionedIndexName(cfg.Table), "(" + id + ") WHERE " + pos + " IS NULL"},
	} {
		report(PrepareProgress{Step: "index " + ix.name, Filled: filled, Estimate: estimate})
		if err := createIndex(ctx, db, rel, ix.name, ix.def); err != nil {
			return filled, err
		}
	}
	if cfg.Trigger {
		report(PrepareProgress{Step: "trigger", Filled: filled, Estimate: estimate})
		if err := InstallTrigger(ctx, db, cfg.Table, idCol, posCol); err != nil {
			return filled, err
		}
	}
	return filled, fill()
}

// addColumn adds the position column under a lock timeout, retrying when
// a long transaction holds the table.
func addColumn(ctx context.Context, db Execer, table, pos string, lockTimeout time.Duration) error {
	sql := "ALTER TABLE " + table + " ADD COLUMN IF NOT EXISTS " + pos + " bigint"
	for attempt := 1; ; attempt++ {
		// SET LOCAL needs a transaction: one statement batch is one.
		_, err := db.Exec(ctx, fmt.Sprintf("BEGIN; SET LOCAL lock_timeout = %d; %s; COMMIT", lockTimeout.Milliseconds(), sql))
		var pgErr *pgconn.PgError
		// A failed batch leaves its connection in an aborted transaction;
		// a pool closes such a connection rather than reuse it.
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55P03" || attempt == 10 {
			if err != nil {
				return fmt.Errorf("%w: add column: %w", ErrTable, err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// fillPositions sets the position of every row where it is NULL, in
// batches taken by keyset on the id; done is told the running count. With
// walk it takes every row in id order, through the id's index, and skips
// the filled ones; without, only the unfilled rows, through the partial
// index on them.
func fillPositions(ctx context.Context, db Execer, table, pos, id string, batch int, walk bool, done func(int64)) (int64, error) {
	var (
		total int64
		after string
		first = true
		ids   = make([]string, 0, batch)
		ps    = make([]int64, 0, batch)
	)
	for {
		ids, ps = ids[:0], ps[:0]
		var where []string
		args := []any{batch}
		if !walk {
			where = append(where, pos+" IS NULL")
		}
		if !first {
			where = append(where, id+" > $2")
			args = append(args, after)
		}
		sql := "SELECT " + id + "::text, " + pos + " IS NULL FROM " + table
		if len(where) > 0 {
			sql += " WHERE " + strings.Join(where, " AND ")
		}
		sql += " ORDER BY " + id + " LIMIT $1"
		var seen int
		var from string
		err := queryRows(ctx, db, sql, args, func(rows pgx.Rows) error {
			var s string
			var null bool
			if err := rows.Scan(&s, &null); err != nil {
				return err
			}
			if seen == 0 {
				from = s
			}
			seen++
			after = s
			if null {
				ids = append(ids, s)
				ps = append(ps, sharding.PositionColumn(s))
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		if seen == 0 {
			return total, nil
		}
		first = false
		if len(ids) == 0 {
			continue
		}
		// The bounds on the id keep the join to the batch's stretch of the
		// id's index: without them the planner, knowing nothing of the
		// new column, may hash-join against a scan of the whole table,
		// once per batch.
		tag, err := db.Exec(ctx, "UPDATE "+table+" AS t SET "+pos+" = v.p FROM unnest($1::text[], $2::bigint[]) AS v(id, p)"+
			" WHERE t."+id+" = v.id AND t."+pos+" IS NULL AND t."+id+" >= $3 AND t."+id+" <= $4", ids, ps, from, after)
		if err != nil {
			return total, fmt.Errorf("%w: fill positions: %w", ErrTable, err)
		}
		total += tag.RowsAffected()
		done(total)
		if seen < batch {
			return total, nil
		}
	}
}

// createIndex builds an index concurrently (writes go on meanwhile). An
// invalid index of that name, left by an interrupted build, is dropped
// and built again; a valid one is kept.
func createIndex(ctx context.Context, db Execer, rel *relation, name, def string) error {
	var valid *bool
	err := queryRows(ctx, db, `SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		WHERE i.indrelid = $1 AND c.relname = $2`, []any{rel.oid, name},
		func(rows pgx.Rows) error { return rows.Scan(&valid) })
	if err != nil {
		return err
	}
	schema, _, _ := strings.Cut(rel.quoted, ".")
	qname := pgx.Identifier{name}.Sanitize()
	if valid != nil && *valid {
		return nil
	}
	if valid != nil {
		if _, err := db.Exec(ctx, "DROP INDEX CONCURRENTLY IF EXISTS "+schema+"."+qname); err != nil {
			return fmt.Errorf("%w: drop invalid index %s: %w", ErrTable, name, err)
		}
	}
	if _, err := db.Exec(ctx, "CREATE INDEX CONCURRENTLY "+qname+" ON "+rel.quoted+" "+def); err != nil {
		return fmt.Errorf("%w: create index %s: %w", ErrTable, name, err)
	}
	return nil
}

func quoteAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = pgx.Identifier{n}.Sanitize()
	}
	return out
}
