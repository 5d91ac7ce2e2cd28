package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/herald-dev/herald/worker/audience"
	"github.com/herald-dev/herald/worker/audience/postgres"
	"github.com/herald-dev/herald/worker/audience/prepared"
)

func audiencePrepareCommand() command {
	return command{
		name:    "audience prepare",
		summary: "Make a PostgreSQL table ready to be a broadcast audience, without locking it for long.",
		usage:   "herald audience prepare --table TABLE [flags]",
		example: "HERALD_DATABASE='postgres://herald@db.internal/app' herald audience prepare --table public.subscribers\n" +
			"herald audience prepare --table members --id-column member_id --batch-rows 20000",
		details: `A postgres audience is read by hash position: each worker reads only the
position ranges of the slots it holds, with index range scans. The table
needs the position of every subscriber in a bigint column, and two indexes.
This command adds them to an existing table, in four steps, each skipped
when already done, so it can be run again at any time:

  1. ALTER TABLE ... ADD COLUMN herald_position bigint: a catalog change,
     no rewrite; its brief lock is waited for at most --lock-timeout, then
     retried, so it never queues behind a long transaction.
  2. Fill the column where it is NULL, --batch-rows rows per UPDATE, each
     its own short transaction, taken in id order through the id's index
     (a primary key or unique constraint on the id column is required).
  3. CREATE INDEX CONCURRENTLY on (herald_position, id), the index the
     range reads scan, and on (id) WHERE herald_position IS NULL, which
     finds rows not yet filled without a scan. Writes go on meanwhile.
  4. With --trigger, define herald_position(text), the position computed
     in SQL (XXH64 in PL/pgSQL), and a BEFORE INSERT OR UPDATE OF id
     trigger that sets the column: then no writer needs to know.
  5. Fill the rows inserted without a position while it ran.

Rows lie in the table in insertion order and the index in position order,
so a range read visits a table page per row. With --include naming every
column the broadcasts read (locale, reachable, attributes), the index
carries them and range reads become index-only scans: a bigger index,
faster reads. The index is only built if missing: to add columns later,
drop it first (DROP INDEX CONCURRENTLY <table>_herald_position).

Without --trigger, rows inserted afterwards need their position set by
the writer: sharding.PositionColumn(id) in Go; in other languages, the
XXH64 of the id's UTF-8 bytes with seed 0, top bit flipped, stored as a
signed 64-bit integer (docs/AUDIENCES.md); or SELECT herald_position(id)
once the function is installed. A row left NULL is not lost: a broadcast
counts it as invalid, and running prepare again fills it.

The connection string comes from --database or, better (it may hold a
password), from HERALD_DATABASE.`,
		setup: func(fs *flag.FlagSet, c *common) runFunc {
			db := fs.String("database", "", "PostgreSQL connection `string` (postgres://user:password@host/db); prefer $HERALD_DATABASE")
			table := fs.String("table", "", "the `table` (or schema.table) holding the subscribers")
			idCol := fs.String("id-column", audience.DefaultIDColumn, "`column` of subscriber ids (text, with a unique index)")
			posCol := fs.String("position-column", audience.DefaultPositionColumn, "bigint `column` to add and fill with hash positions")
			batch := fs.Int("batch-rows", 5000, "`rows` filled per UPDATE transaction")
			lockTimeout := fs.Duration("lock-timeout", 5*time.Second, "longest `wait` for the brief lock ADD COLUMN takes, before retrying")
			trigger := fs.Bool("trigger", false, "install herald_position(text) and a trigger that fills the column of every new row (about 100 µs a row)")
			include := fs.String("include", "", "`columns`, comma-separated, the position index carries (INCLUDE) so range reads are index-only scans")
			return func(ctx context.Context, args []string) error {
				switch {
				case len(args) > 0:
					return fmt.Errorf("%w: unexpected argument %q", errUsage, args[0])
				case *db == "":
					return fmt.Errorf("%w: no database: set HERALD_DATABASE or --database", errUsage)
				case *table == "":
					return fmt.Errorf("%w: --table is required", errUsage)
				case *batch < 1:
					return fmt.Errorf("%w: --batch-rows must be at least 1", errUsage)
				}
				pool, err := postgres.Dial(ctx, *db)
				if err != nil {
					return err
				}
				defer pool.Close()
				start := time.Now()
				var last time.Time
				var lastStep string
				n, err := postgres.Prepare(ctx, pool, postgres.PrepareConfig{
					Table: *table, IDColumn: *idCol, PositionColumn: *posCol, Include: splitList(*include),
					BatchRows: *batch, LockTimeout: *lockTimeout, Trigger: *trigger,
					Progress: func(p postgres.PrepareProgress) {
						if p.Step == lastStep && time.Since(last) < time.Second {
							return
						}
						last, lastStep = time.Now(), p.Step
						if p.Step != "fill" {
							fmt.Fprintf(c.stdout, "%s\n", p.Step)
							return
						}
						rate := float64(p.Filled) / max(time.Since(start).Seconds(), 0.001)
						if p.Estimate > 0 {
							fmt.Fprintf(c.stdout, "fill: %d of about %d rows (%.0f rows/s)\n", p.Filled, p.Estimate, rate)
						} else {
							fmt.Fprintf(c.stdout, "fill: %d rows (%.0f rows/s)\n", p.Filled, rate)
						}
					},
				})
				if err != nil {
					return err
				}
				fmt.Fprintf(c.stdout, "Ready: %s, %d rows filled in %s. A broadcast spec reads it with\n"+
					`  "audience": {"source": "postgres", "connection": "<secret name>", "table": %q, "id_column": %q, "position_column": %q}`+"\n",
					*table, n, time.Since(start).Round(time.Millisecond), *table, *idCol, *posCol)
				return nil
			}
		},
	}
}

func audienceImportCommand() command {
	return command{
		name:    "audience import",
		summary: "Write a JSON Lines audience as a prepared audience, sorted by hash position, to a directory or S3.",
		usage:   "herald audience import FILE --to DIR|s3://bucket/prefix [flags]",
		example: "herald audience import followers.jsonl --to /mnt/audiences/spring-2026\n" +
			"HERALD_S3='https://KEY:SECRET@s3.eu-west-1.amazonaws.com?region=eu-west-1' herald audience import followers.jsonl --to s3://audiences/spring-2026",
		details: `Reads the JSON Lines file once, with the file source's parsing and line
limit, and writes it as segments ordered by the subscribers' hash positions,
each with a checkpoint file, and last an index. A broadcast whose audience is
{"source": "prepared", "path": "<the --to location>"} then has each worker
read only the segments, and the byte ranges in them, that its slots cover,
instead of the whole file. Invalid lines are kept (each counted once, by the
slot its hash falls in); blank lines are dropped.

Sorting uses at most --sort-mb of memory; a larger audience is sorted in runs
written under --temp-dir and merged, so any size can be imported. Nothing is
visible at the destination until the index is written, last. An existing
prepared audience there is refused unless --replace: import each version to
a new place, since broadcasts reading the old one would see the new segments.

For S3-compatible storage the endpoint and keys come from HERALD_S3 (or
--s3), http[s]://ACCESS_KEY:SECRET_KEY@host[:port][?region=REGION]; the
workers read it through a secret of the same form, which the spec names in
audience.connection.`,
		setup: func(fs *flag.FlagSet, c *common) runFunc {
			to := fs.String("to", "", "`destination`: a directory or s3://bucket/prefix")
			s3 := fs.String("s3", "", "S3 endpoint and keys, http[s]://ACCESS_KEY:SECRET_KEY@host[:port][?region=R] (`URL`); prefer $HERALD_S3")
			segMB := fs.Int("segment-mb", prepared.DefaultSegmentBytes>>20, "segment size in `MiB`")
			every := fs.Int("checkpoint-every", prepared.DefaultCheckpointEvery, "`records` between checkpoints: a range reads at most this many outside itself at each end")
			sortMB := fs.Int("sort-mb", prepared.DefaultSortBytes>>20, "memory for sorting in `MiB`; more input is sorted in runs on disk")
			maxLine := fs.Int("max-line-bytes", audience.DefaultMaxLineBytes, "longest line in `bytes`; a longer one is an invalid record")
			tmp := fs.String("temp-dir", "", "`directory` for the sort's runs (default the system's)")
			replace := fs.Bool("replace", false, "write over a prepared audience already at the destination")
			return func(ctx context.Context, args []string) error {
				switch {
				case len(args) != 1:
					return fmt.Errorf("%w: want one JSON Lines file", errUsage)
				case *to == "":
					return fmt.Errorf("%w: --to is required", errUsage)
				case *segMB < 1 || *sortMB < 1 || *every < 1 || *maxLine < 1:
					return fmt.Errorf("%w: --segment-mb, --sort-mb, --checkpoint-every and --max-line-bytes must be positive", errUsage)
				}
				loc, err := audience.ParseLocation(*to)
				if err != nil {
					return fmt.Errorf("%w: --to %v", errUsage, err)
				}
				var store prepared.Store = prepared.DirStore{Dir: loc.Dir}
				if loc.Bucket != "" {
					if *s3 == "" {
						return fmt.Errorf("%w: an s3:// destination needs HERALD_S3 or --s3", errUsage)
					}
					if store, err = prepared.NewS3Store(*s3, loc); err != nil {
						return err
					}
				}
				start := time.Now()
				st, err := prepared.Import(ctx, args[0], store, prepared.ImportConfig{
					SegmentBytes: int64(*segMB) << 20, CheckpointEvery: *every, SortBytes: int64(*sortMB) << 20,
					TempDir: *tmp, Limits: audience.Limits{MaxLineBytes: *maxLine}, Replace: *replace,
					Progress: func(st prepared.ImportStats) {
						fmt.Fprintf(c.stdout, "segment %d stored, %d MiB so far\n", st.Segments, st.Bytes>>20)
					},
				})
				if errors.Is(err, prepared.ErrExists) {
					return fmt.Errorf("%s already holds a prepared audience (--replace to write over it)", loc)
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(c.stdout, "Imported %d records (%d invalid) into %d segments at %s in %s (%d sorted runs).\n"+
					"A broadcast spec reads it with\n  \"audience\": {\"source\": \"prepared\", \"path\": %q%s}\n",
					st.Records, st.Invalid, st.Segments, loc, time.Since(start).Round(time.Millisecond), st.Runs, *to,
					map[bool]string{true: `, "connection": "<secret name>"`}[loc.Bucket != ""])
				return nil
			}
		},
	}
}
