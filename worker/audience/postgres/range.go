package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/herald-dev/herald/sharding"
	"github.com/herald-dev/herald/worker/audience"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Errors of the postgres source, each wrapped with what was found.
var (
	// ErrUnreachable: the database cannot be connected to or queried.
	ErrUnreachable = errors.New("postgres: unreachable")
	// ErrTable: the table, a column or the position index is missing or
	// of the wrong type.
	ErrTable = errors.New("postgres: table unfit")
)

// Reasons a postgres row is invalid, as found in Record.Invalid.
const (
	ReasonNullPosition  = "position column is NULL (run herald audience prepare, or fill it with the id's position)"
	ReasonWrongPosition = "position column does not hold the id's position"
)

// DefaultPageRows is how many rows one query of a range read fetches when
// the caller leaves it unset.
const DefaultPageRows = 1000

// Querier is what the postgres source needs of a database handle;
// *pgxpool.Pool, *pgx.Conn and pgx.Tx all have it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

var (
	_ Querier = (*pgxpool.Pool)(nil)
	_ Querier = (*pgx.Conn)(nil)
)

// Dial connects a pool to the database connString names and
// checks that it answers. Errors wrap ErrUnreachable and never contain
// the connection string, which may hold a password.
func Dial(ctx context.Context, connString string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		// pgx's parse errors quote the string; say only what kind it is.
		return nil, fmt.Errorf("%w: connection string cannot be parsed (want postgres://user:password@host:port/db or key=value pairs)", ErrUnreachable)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrUnreachable, safeErr(err))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("%w: %s:%d/%s: %s", ErrUnreachable, cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, safeErr(err))
	}
	return pool, nil
}

// safeErr is err's message; pgconn's connect errors name host, user and
// database, never the password.
func safeErr(err error) string { return err.Error() }

// Table is a postgres audience's table or view, checked by
// Open: it exists, has the columns the spec names with fitting
// types, and (for a table) an index on (position, id).
type Table struct {
	db Querier
	// The unit query's pieces, with identifiers quoted.
	from, pos, id, doc string
}

// Open checks spec's table against db and returns it ready for
// range reads. Errors wrap ErrUnreachable (the database does not answer)
// or ErrTable (no such table, a missing column, a wrong type, no index on
// the position), naming the spec field at fault.
func Open(ctx context.Context, db Querier, spec audience.Spec) (*Table, error) {
	if spec.Source != audience.SourcePostgres {
		return nil, fmt.Errorf("%w: source %q is not postgres", audience.ErrSpec, spec.Source)
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	idCol := or(spec.IDColumn, audience.DefaultIDColumn)
	posCol := or(spec.PositionColumn, audience.DefaultPositionColumn)
	rel, err := describeTable(ctx, db, spec.Table)
	if err != nil {
		return nil, err
	}
	unfit := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: audience.%s: %s", ErrTable, spec.Table, field, fmt.Sprintf(format, args...))
	}
	col := func(field, name string, types ...string) (column, error) {
		c, ok := rel.columns[name]
		if !ok {
			return c, unfit(field, "no column %q", name)
		}
		if len(types) > 0 && !contains(types, c.typ) {
			return c, unfit(field, "column %q is %s, want %s", name, c.typ, strings.Join(types, " or "))
		}
		return c, nil
	}
	textTypes := []string{"text", "character varying", "character"}
	idC, err := col("id_column", idCol, textTypes...)
	if err != nil {
		return nil, err
	}
	posC, err := col("position_column", posCol, "bigint")
	if err != nil {
		return nil, err
	}
	if rel.isTable && !rel.indexed(posC.num, idC.num) {
		return nil, unfit("position_column", "no index on (%s, %s): a range read would scan the whole table; "+
			"herald audience prepare creates it (CREATE INDEX CONCURRENTLY ON %s (%s, %s))", posCol, idCol, spec.Table, posCol, idCol)
	}
	if rel.isTable && !rel.findsNulls(posCol, idC.num) {
		return nil, unfit("position_column", "rows with a NULL %s cannot be found without a scan: make it NOT NULL, or "+
			"create the partial index herald audience prepare creates (CREATE INDEX CONCURRENTLY ON %s (%s) WHERE %s IS NULL)",
			posCol, spec.Table, idCol, posCol)
	}
	q := pgx.Identifier{"t", idCol}.Sanitize()
	overlay := []string{"'id'", q}
	if spec.LocaleColumn != "" {
		if _, err := col("locale_column", spec.LocaleColumn, textTypes...); err != nil {
			return nil, err
		}
		overlay = append(overlay, "'locale'", pgx.Identifier{"t", spec.LocaleColumn}.Sanitize())
	}
	if spec.ReachableColumn != "" {
		if _, err := col("reachable_column", spec.ReachableColumn, "boolean"); err != nil {
			return nil, err
		}
		overlay = append(overlay, "'reachable'", pgx.Identifier{"t", spec.ReachableColumn}.Sanitize())
	}
	base := "'{}'::jsonb"
	switch {
	case spec.AttributesColumn != "":
		if _, err := col("attributes_column", spec.AttributesColumn, "jsonb", "json"); err != nil {
			return nil, err
		}
		base = "COALESCE(" + pgx.Identifier{"t", spec.AttributesColumn}.Sanitize() + "::jsonb, '{}'::jsonb)"
	case len(spec.AttributeColumns) > 0:
		args := make([]string, 0, 2*len(spec.AttributeColumns))
		for i, name := range spec.AttributeColumns {
			if _, err := col(fmt.Sprintf("attribute_columns[%d]", i), name); err != nil {
				return nil, err
			}
			args = append(args, quoteLiteral(name), pgx.Identifier{"t", name}.Sanitize())
		}
		base = "jsonb_build_object(" + strings.Join(args, ", ") + ")"
	}
	// The record is the row as one JSON object, as a file line would be:
	// the same id scan and Decode apply, with the same reasons for an
	// invalid record. id, locale and reachable win over attributes of the
	// same name; a NULL among them is left out (absent), not null.
	doc := "(" + base + " || jsonb_strip_nulls(jsonb_build_object(" + strings.Join(overlay, ", ") + ")))::text"
	return &Table{
		db:   db,
		from: rel.quoted + " AS t",
		pos:  pgx.Identifier{"t", posCol}.Sanitize(),
		id:   q,
		doc:  doc,
	}, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// quoteLiteral quotes a plain SQL name (checked by Validate) as a string
// literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Key is a place in a postgres range read's order: rows whose position
// column is NULL first, by id (read only by the range that starts at
// position 0, so one range counts them), then rows by (position, id).
type Key struct {
	// NullPosition marks the NULL-position rows; Pos is then unused.
	NullPosition bool
	Pos          uint64
	ID           string
}

// UnitQuery is the SQL of one page of a range read after a key, with its
// arguments: lo and hi are the range's bounds as column values, after the
// key's. It is what EXPLAIN is checked on.
func (t *Table) UnitQuery(r sharding.Range, after Key, limit int) (string, []any) {
	sel := "SELECT " + t.pos + ", " + t.id + "::text, " + t.doc + " FROM " + t.from
	lo, hi := sharding.ColumnOf(r.Lo), sharding.ColumnOf(r.Hi)
	if after.Pos < r.Lo || after.NullPosition {
		return sel + " WHERE " + t.pos + " >= $1 AND " + t.pos + " <= $2 ORDER BY " + t.pos + ", " + t.id + " LIMIT $3",
			[]any{lo, hi, limit}
	}
	// The row comparison is what a B-tree on (position, id) answers with
	// one range scan from the key on, in index order.
	return sel + " WHERE (" + t.pos + ", " + t.id + ") > ($1, $2) AND " + t.pos + " <= $3 ORDER BY " + t.pos + ", " + t.id + " LIMIT $4",
		[]any{sharding.ColumnOf(after.Pos), after.ID, hi, limit}
}

// nullQuery is a page of the NULL-position rows after id (all of them
// when first).
func (t *Table) nullQuery(first bool, after string, limit int) (string, []any) {
	sel := "SELECT NULL::bigint, " + t.id + "::text, " + t.doc + " FROM " + t.from + " WHERE " + t.pos + " IS NULL"
	if first {
		return sel + " ORDER BY " + t.id + " LIMIT $1", []any{limit}
	}
	return sel + " AND " + t.id + " > $1 ORDER BY " + t.id + " LIMIT $2", []any{after, limit}
}

// Range reads the rows of one position range in (position, id)
// order, a page of rows per query: each query is a keyset read from the
// last row returned, so no query skips rows (no OFFSET), scans outside the
// range, or holds a snapshot or a connection between pages. Memory is one
// page. It is not safe for concurrent use.
type Range struct {
	t     *Table
	ctx   context.Context
	r     sharding.Range
	limit int

	key     Key  // the last row returned, or where the read starts
	started bool // key is a row returned (or a resume point)
	nulls   bool // still reading the NULL-position rows
	page    []pgRow
	next    int  // index in page of the next row
	last    bool // the page was short: no more rows in this phase
	rows    int64
	rec     audience.Record
	idBuf   []byte
	err     error
	done    bool

	// With Prefetch, the next page is fetched while this one is read:
	// ahead brings it, stop ends the fetch (Close).
	prefetch bool
	ahead    chan pageResult
	stop     context.CancelFunc
}

// pageResult is a page fetched ahead.
type pageResult struct {
	page []pgRow
	err  error
}

type pgRow struct {
	pos  *int64
	id   string
	doc  []byte
	null bool
}

// Range starts a read of the rows whose positions lie in r, after key
// (nil: from the start of r, the NULL-position rows first when r starts
// at 0). pageRows is the rows per query; 0 means DefaultPageRows. The
// queries run with ctx.
func (t *Table) Range(ctx context.Context, r sharding.Range, after *Key, pageRows int) *Range {
	if pageRows <= 0 {
		pageRows = DefaultPageRows
	}
	pr := &Range{t: t, ctx: ctx, r: r, limit: pageRows}
	switch {
	case after != nil && after.NullPosition && r.Lo != 0:
		// Only the range at 0 reads NULL positions: a key from that
		// phase resumes any other range at its start.
		pr.key = Key{Pos: r.Lo}
	case after != nil:
		pr.key, pr.started, pr.nulls = *after, true, after.NullPosition
	default:
		pr.nulls = r.Lo == 0
		pr.key = Key{NullPosition: pr.nulls, Pos: r.Lo}
	}
	return pr
}

// Next advances to the next row and reports whether there is one; false
// at the end of the range or on an error (see Err). Invalid rows are
// returned too, with Record().Invalid set: a NULL position
// (ReasonNullPosition), a position that is not the id's hash
// (ReasonWrongPosition), or a row the id scan refuses.
func (p *Range) Next() bool {
	for !p.done {
		if p.next < len(p.page) {
			p.emit(&p.page[p.next])
			p.next++
			return true
		}
		if p.last {
			if !p.nulls {
				p.done = true
				return false
			}
			// The NULL-position rows are done; the positioned ones follow.
			p.nulls, p.last, p.started = false, false, false
			p.key = Key{Pos: p.r.Lo}
		}
		var res pageResult
		if p.ahead != nil {
			res = <-p.ahead
			p.ahead = nil
		} else {
			res.page, res.err = p.t.fetchPage(p.ctx, p.r, p.key, p.started, p.nulls, p.limit, p.page[:0])
		}
		if res.err != nil {
			p.err, p.done = res.err, true
			continue
		}
		p.page, p.next = res.page, 0
		p.last = len(p.page) < p.limit
		if p.prefetch && !p.last {
			p.fetchAhead()
		}
	}
	return false
}

// Prefetch makes the read fetch each next page while the rows of the one
// before are read, so a reader that keeps up never waits for a query's
// round trip. Call it before the first Next, and Close the read when done
// with it.
func (p *Range) Prefetch() { p.prefetch = true }

// fetchAhead starts fetching the page after the current one: the keyset
// after its last row, in the same phase.
func (p *Range) fetchAhead() {
	last := p.page[len(p.page)-1]
	after := Key{NullPosition: last.null, ID: last.id}
	if last.pos != nil {
		after.Pos = sharding.PositionOfColumn(*last.pos)
	}
	ctx, cancel := context.WithCancel(p.ctx)
	p.stop = cancel
	ahead := make(chan pageResult, 1)
	p.ahead = ahead
	nulls := p.nulls
	go func() {
		var res pageResult
		res.page, res.err = p.t.fetchPage(ctx, p.r, after, true, nulls, p.limit, nil)
		ahead <- res
	}()
}

// Close ends a page fetch under way and waits for it. The read returns
// nothing more.
func (p *Range) Close() {
	p.done = true
	if p.ahead != nil {
		p.stop()
		<-p.ahead
		p.ahead = nil
	}
	if p.stop != nil {
		p.stop()
	}
}

// fetchPage reads one page of a range after key (from the phase's start
// when !started) into page.
func (t *Table) fetchPage(ctx context.Context, r sharding.Range, key Key, started, nulls bool, limit int, page []pgRow) ([]pgRow, error) {
	var (
		sql  string
		args []any
	)
	if nulls {
		sql, args = t.nullQuery(!started, key.ID, limit)
	} else {
		after := key
		if !started {
			after = Key{NullPosition: true}
		}
		sql, args = t.UnitQuery(r, after, limit)
	}
	rows, err := t.db.Query(ctx, sql, args...)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("postgres: range read: %w", ctx.Err())
		}
		return nil, queryError(err)
	}
	defer rows.Close()
	for rows.Next() {
		var row pgRow
		var doc []byte
		if err := rows.Scan(&row.pos, &row.id, &doc); err != nil {
			return nil, queryError(err)
		}
		row.doc, row.null = doc, nulls
		page = append(page, row)
	}
	if err := rows.Err(); err != nil {
		return nil, queryError(err)
	}
	return page, nil
}

func queryError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return fmt.Errorf("%w: %s (SQLSTATE %s)", ErrTable, pgErr.Message, pgErr.Code)
	}
	return fmt.Errorf("%w: %w", ErrUnreachable, err)
}

func (p *Range) emit(row *pgRow) {
	p.rows++
	p.started = true
	p.key = Key{NullPosition: row.null, ID: row.id}
	p.rec = audience.Record{Seq: uint64(p.rows - 1)}
	p.idBuf = p.rec.SetLine(row.doc, "", p.idBuf)
	if row.null || row.pos == nil {
		// The id names the row in the count of invalid records.
		p.rec.Invalid = ReasonNullPosition
		p.rec.ID = append(p.rec.ID[:0:0], row.id...)
		p.rec.SetPosition(0)
		return
	}
	p.key.Pos = sharding.PositionOfColumn(*row.pos)
	if p.rec.Invalid == "" && p.rec.Position() != p.key.Pos {
		p.rec.Invalid = ReasonWrongPosition
	}
	p.rec.SetPosition(p.key.Pos)
}

// Record is the current row as a record, valid until the next call of
// Next. Its Raw is the row as a JSON object (id, locale, reachable and
// the attributes), which Decode parses as it parses a file line; its
// Position is the row's position column, so the slot whose range read it
// holds it, whatever the row holds.
func (p *Range) Record() *audience.Record { return &p.rec }

// After is the key of the last row Next returned (or the key the read
// resumed from): Range(ctx, r, &key, n) continues right after it.
func (p *Range) After() Key { return p.key }

// Rows is how many rows the read has fetched and returned so far.
func (p *Range) Rows() int64 { return p.rows }

// Err is the error that ended the read, nil at a clean end.
func (p *Range) Err() error { return p.err }
