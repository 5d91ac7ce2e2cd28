package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// relation is what Open learns of a table or view from the
// catalog.
type relation struct {
	oid     uint32
	quoted  string // schema.name, quoted
	isTable bool   // has indexes: a table, partitioned table or materialized view
	columns map[string]column
	indexes [][]int16 // the key columns of each valid, non-partial index
	// nullIndexes are the key columns of each valid partial index whose
	// predicate is "column IS NULL", by that column.
	nullIndexes map[string][][]int16
}

type column struct {
	num     int16
	typ     string // format_type, such as "bigint" or "character varying"
	notNull bool
}

// describeTable reads name's columns and indexes. name is table or
// schema.table, plain SQL names (Validate checked them), matched with
// their case kept.
func describeTable(ctx context.Context, db Querier, name string) (*relation, error) {
	ident := pgx.Identifier(strings.Split(name, ".")).Sanitize()
	rel := &relation{columns: map[string]column{}, nullIndexes: map[string][][]int16{}}
	var kind string
	err := queryRows(ctx, db, `SELECT c.oid, c.relkind::text, quote_ident(n.nspname) || '.' || quote_ident(c.relname)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)`,
		[]any{ident}, func(rows pgx.Rows) error { return rows.Scan(&rel.oid, &kind, &rel.quoted) })
	if err != nil {
		return nil, err
	}
	if rel.oid == 0 {
		return nil, fmt.Errorf("%w: %s: audience.table: no such table or view (or no permission to see it)", ErrTable, name)
	}
	switch kind {
	case "r", "p", "m":
		rel.isTable = true
	case "v", "f":
	default:
		return nil, fmt.Errorf("%w: %s: audience.table: not a table or view (relkind %s)", ErrTable, name, kind)
	}
	err = queryRows(ctx, db, `SELECT attname::text, attnum, format_type(atttypid, NULL), attnotnull
		FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped`,
		[]any{rel.oid}, func(rows pgx.Rows) error {
			var n string
			var c column
			if err := rows.Scan(&n, &c.num, &c.typ, &c.notNull); err != nil {
				return err
			}
			rel.columns[n] = c
			return nil
		})
	if err != nil {
		return nil, err
	}
	if !rel.isTable {
		return rel, nil
	}
	// For a partial index, the column of a predicate "column IS NULL", as
	// the server prints it (pg_get_expr quotes as quote_ident does).
	err = queryRows(ctx, db, `SELECT i.indkey::int2[], a.attname::text
		FROM pg_index i LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum > 0
			AND pg_get_expr(i.indpred, i.indrelid) = '(' || quote_ident(a.attname) || ' IS NULL)'
		WHERE i.indrelid = $1 AND i.indisvalid AND i.indexprs IS NULL
			AND (i.indpred IS NULL OR a.attname IS NOT NULL)`,
		[]any{rel.oid}, func(rows pgx.Rows) error {
			var key []int16
			var nullCol *string
			if err := rows.Scan(&key, &nullCol); err != nil {
				return err
			}
			if nullCol != nil {
				rel.nullIndexes[*nullCol] = append(rel.nullIndexes[*nullCol], key)
			} else {
				rel.indexes = append(rel.indexes, key)
			}
			return nil
		})
	return rel, err
}

// findsNulls reports whether the rows where column pos is NULL can be
// read in id order without a scan: the column is NOT NULL, or a partial
// index on the id covers exactly those rows.
func (r *relation) findsNulls(pos string, id int16) bool {
	if r.columns[pos].notNull {
		return true
	}
	for _, key := range r.nullIndexes[pos] {
		if len(key) >= 1 && key[0] == id {
			return true
		}
	}
	return false
}

// indexed reports whether an index leads with the columns cols, in
// order: the one a keyset read by (position, id) scans.
func (r *relation) indexed(cols ...int16) bool {
	for _, key := range r.indexes {
		if len(key) >= len(cols) && equalPrefix(key, cols) {
			return true
		}
	}
	return false
}

func equalPrefix(key, cols []int16) bool {
	for i, c := range cols {
		if key[i] != c {
			return false
		}
	}
	return true
}

// queryRows runs a catalog query and calls scan for each row. Its errors
// wrap ErrUnreachable: the catalog is always there to be read.
func queryRows(ctx context.Context, db Querier, sql string, args []any, scan func(pgx.Rows) error) error {
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return fmt.Errorf("%w: read the catalog: %w", ErrUnreachable, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	return nil
}
