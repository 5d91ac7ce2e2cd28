package worker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/herald-dev/herald/sharding"
	"github.com/herald-dev/herald/spec"
	"github.com/herald-dev/herald/worker/audience"
	"github.com/herald-dev/herald/worker/audience/postgres"
	"github.com/herald-dev/herald/worker/audience/prepared"
	"github.com/jackc/pgx/v5/pgxpool"
)

// rangeAudience is a broadcast's audience read by position range
// (postgres, prepared) on this worker: the secret its spec names, read
// when the run is made, and the database pool or the prepared index,
// opened by the reader on first use and closed when the reader ends. Only
// the reader uses it.
type rangeAudience struct {
	spec   audience.Spec
	secret []byte // the spec's connection secret; nil for a prepared directory
	lim    audience.Limits

	pool *pgxpool.Pool
	src  rangeSource
}

// openTimeout bounds connecting to a range source and checking it.
const openTimeout = 15 * time.Second

// isRangeSource reports whether a spec's audience is read by position
// range.
func isRangeSource(s audience.Spec) bool {
	return s.Source == audience.SourcePostgres || s.Source == audience.SourcePrepared
}

// newRangeAudience reads the secret s names. It returns nil for an
// audience read as one stream. A missing secret is an error naming it,
// never quoting a value.
func newRangeAudience(s audience.Spec, secrets Secrets, lim audience.Limits) (*rangeAudience, error) {
	if !isRangeSource(s) {
		return nil, nil
	}
	a := &rangeAudience{spec: s, lim: lim}
	if s.Connection == "" {
		return a, nil
	}
	v, err := readSecret(secrets, s.Connection)
	if err != nil {
		return nil, &audience.FieldError{Field: "audience.connection", Msg: err.Error()}
	}
	a.secret = v
	return a, nil
}

// readSecret is the value of the secret name, or an error saying why
// there is none that never quotes a value.
func readSecret(secrets Secrets, name string) ([]byte, error) {
	if secrets == nil {
		return nil, fmt.Errorf("no secret named %q: the workers have no secrets configured (--secrets-dir, HERALD_SECRET_<NAME>)", name)
	}
	v, err := secrets.Secret(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("no secret named %q on the workers", name)
	case err != nil:
		return nil, fmt.Errorf("secret %q cannot be read: %v", name, err)
	}
	return v, nil
}

// source opens the audience on first use: connects to the database and
// checks the table, or reads the prepared index. A failure is returned
// for the reader to try again after a pause; nothing stays open.
func (a *rangeAudience) source(ctx context.Context) (rangeSource, error) {
	if a.src != nil {
		return a.src, nil
	}
	ctx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	switch a.spec.Source {
	case audience.SourcePostgres:
		pool, err := postgres.Dial(ctx, string(a.secret))
		if err != nil {
			return nil, err
		}
		t, err := postgres.Open(ctx, pool, a.spec)
		if err != nil {
			pool.Close()
			return nil, err
		}
		a.pool, a.src = pool, pgSource{t}
	case audience.SourcePrepared:
		store, err := prepared.StoreFor(a.spec, func(string) ([]byte, error) { return a.secret, nil })
		if err != nil {
			return nil, err
		}
		p, err := prepared.Open(ctx, store, a.lim)
		if err != nil {
			return nil, err
		}
		a.src = preparedSource{p}
	default:
		return nil, fmt.Errorf("worker: source %q is not read by position range", a.spec.Source)
	}
	return a.src, nil
}

// close releases what source opened.
func (a *rangeAudience) close() {
	if a.pool != nil {
		a.pool.Close()
	}
	a.pool, a.src = nil, nil
}

// pgSource reads a postgres table by position range, a page of rows per
// query, resuming by keyset.
type pgSource struct{ t *postgres.Table }

func (s pgSource) openRange(ctx context.Context, r sharding.Range) rangeReader {
	rg := s.t.Range(ctx, r, nil, 0)
	// The next page is fetched while this one is sent: the reader does
	// not wait a query's round trip every thousand rows.
	rg.Prefetch()
	return pgRange{rg}
}

// pgRange is a postgres range read, a page at a time, the next fetched
// ahead; Close ends that fetch.
type pgRange struct{ *postgres.Range }

func (r pgRange) Close() error {
	r.Range.Close()
	return nil
}

// preparedSource reads a prepared audience by position range: only the
// segments and byte ranges the range's checkpoints cover.
type preparedSource struct{ p *prepared.Audience }

func (s preparedSource) openRange(ctx context.Context, r sharding.Range) rangeReader {
	return s.p.Range(ctx, r, prepared.Cursor{})
}

// rangePlan is what a reader of a range source reads: each slot's range
// of the n, from where that slot needs it on, in position order; a range
// that needs all of itself is merged into the one before it, so the
// source gets fewer, longer reads.
func rangePlan(needs []slotNeed, n int) []rangeFrom {
	var out []rangeFrom
	for _, sn := range needs {
		r := sharding.SlotRange(sn.slot, n)
		whole := sn.from.Seq < r.Lo || (sn.from.Seq == r.Lo && sn.from.Offset == 0)
		// Merged only into a range whose reading reaches its end: one
		// passed already (from beyond it) would skip this one too.
		if k := len(out) - 1; k >= 0 && whole && out[k].r.Hi != ^uint64(0) && out[k].r.Hi+1 == r.Lo && out[k].from.Seq <= out[k].r.Hi {
			out[k].r.Hi = r.Hi
			continue
		}
		out = append(out, rangeFrom{r: r, from: sn.from})
	}
	return out
}

// intakeCheckTimeout bounds the intake's look at a range audience: a
// database that does not answer in time is taken as down for now, not as
// a reason to refuse the broadcast.
const intakeCheckTimeout = 5 * time.Second

// checkRangeAudience is the intake's look at a range audience before the
// broadcast is registered: the connection secret must exist, and the
// table or prepared audience must be what the spec says (columns, types,
// the position index; an index that import wrote). Only what no retry can
// fix is refused; a database or store that cannot be reached now is left
// to the workers, which try again until it can. The error's ID is the
// caller's to fill in.
func checkRangeAudience(ctx context.Context, s audience.Spec, secrets Secrets, lim audience.Limits) *spec.Error {
	ra, err := newRangeAudience(s, secrets, lim)
	if err != nil {
		var fe *audience.FieldError
		if errors.As(err, &fe) {
			return &spec.Error{Field: fe.Field, Msg: fe.Msg}
		}
		return &spec.Error{Field: "audience", Msg: err.Error()}
	}
	if ra == nil {
		return nil
	}
	defer ra.close()
	ctx, cancel := context.WithTimeout(ctx, intakeCheckTimeout)
	defer cancel()
	_, err = ra.source(ctx)
	switch {
	case err == nil, ctx.Err() != nil:
		return nil
	case errors.Is(err, postgres.ErrTable):
		return &spec.Error{Field: "audience.table", Msg: err.Error()}
	case errors.Is(err, prepared.ErrUnreadable):
		return &spec.Error{Field: "audience.path", Msg: err.Error()}
	case errors.Is(err, audience.ErrSpec):
		return &spec.Error{Field: "audience", Msg: err.Error()}
	}
	return nil
}

// localAudience reports whether s names a file or a directory on the
// workers' disks.
func localAudience(s audience.Spec) bool {
	switch s.Source {
	case audience.SourceFile:
		return true
	case audience.SourcePrepared:
		loc, err := audience.ParseLocation(s.Path)
		return err == nil && loc.Bucket == ""
	}
	return false
}

// rangeInvalid is why a record of a range source is invalid, naming the
// record: such records have no line number, so the reason names the row's
// id or, for a record without a readable id, its position.
func rangeInvalid(rec *audience.Record, why string) string {
	if len(rec.ID) > 0 {
		return fmt.Sprintf("id %q: %s", rec.ID, why)
	}
	return fmt.Sprintf("position %#016x: %s", rec.Position(), why)
}
