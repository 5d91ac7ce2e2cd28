package postgres

import (
	"context"
	"fmt"

	"github.com/herald-dev/herald/worker/audience"
	"github.com/jackc/pgx/v5"
)

// FunctionSQL defines herald_position(text) bigint in PostgreSQL:
// sharding.PositionColumn of an id, computed by the server, so that a
// trigger can fill the position column of rows whatever writes them.
//
// PostgreSQL has no unsigned 64-bit integers and its bigint arithmetic
// raises on overflow, so XXH64's wrapping products and sums go through
// numeric, exact, reduced mod 2^64; the XORs and shifts stay on bigint,
// whose shifts do not check overflow. It is correct (tested against Go's
// xxhash on ids of every length to 100 bytes and on non-ASCII ids) but not
// fast, about 100 µs an id on a 2-core machine: fine for a trigger on inserts, not for
// filling millions of rows, which herald audience prepare does in Go.
const FunctionSQL = `
CREATE OR REPLACE FUNCTION herald_u64_mul(a bigint, b bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
	SELECT CASE WHEN r >= 9223372036854775808 THEN (r - 18446744073709551616)::bigint ELSE r::bigint END
	FROM (SELECT mod((CASE WHEN a < 0 THEN a::numeric + 18446744073709551616 ELSE a::numeric END)
	               * (CASE WHEN b < 0 THEN b::numeric + 18446744073709551616 ELSE b::numeric END),
	                 18446744073709551616) AS r) s
$$;

CREATE OR REPLACE FUNCTION herald_u64_add(a bigint, b bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
	SELECT CASE WHEN r >= 9223372036854775808 THEN (r - 18446744073709551616)::bigint ELSE r::bigint END
	FROM (SELECT mod((CASE WHEN a < 0 THEN a::numeric + 18446744073709551616 ELSE a::numeric END)
	               + (CASE WHEN b < 0 THEN b::numeric + 18446744073709551616 ELSE b::numeric END),
	                 18446744073709551616) AS r) s
$$;

-- Logical shift right by n, 1 <= n <= 63.
CREATE OR REPLACE FUNCTION herald_u64_shr(x bigint, n int) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
	SELECT (x >> n) & ~((-1)::bigint << (64 - n))
$$;

CREATE OR REPLACE FUNCTION herald_u64_rotl(x bigint, n int) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
	SELECT (x << n) | herald_u64_shr(x, 64 - n)
$$;

-- One XXH64 round: rotl(acc + lane * P2, 31) * P1.
CREATE OR REPLACE FUNCTION herald_xxh64_round(acc bigint, lane bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
	SELECT herald_u64_mul(herald_u64_rotl(herald_u64_add(acc, herald_u64_mul(lane, -4417276706812531889)), 31), -7046029288634856825)
$$;

-- herald_position is sharding.PositionColumn: the XXH64 (seed 0) of the
-- id's UTF-8 bytes, top bit flipped, as bigint.
CREATE OR REPLACE FUNCTION herald_position(id text) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
	p1 CONSTANT bigint := -7046029288634856825; -- 11400714785074694791
	p2 CONSTANT bigint := -4417276706812531889; -- 14029467366897019727
	p3 CONSTANT bigint := 1609587929392839161;
	p4 CONSTANT bigint := -8796714831421723037; -- 9650029242287828579
	p5 CONSTANT bigint := 2870177450012600261;
	b bytea := convert_to(id, 'UTF8');
	len int := length(b);
	i int := 0;
	h bigint;
	v1 bigint; v2 bigint; v3 bigint; v4 bigint;
	lane bigint;
	k int;
BEGIN
	IF len >= 32 THEN
		v1 := herald_u64_add(p1, p2);
		v2 := p2;
		v3 := 0;
		v4 := herald_u64_mul(p1, -1);
		WHILE i + 32 <= len LOOP
			FOR k IN 0..3 LOOP
				lane := 0;
				FOR j IN 0..7 LOOP
					lane := lane | (get_byte(b, i + 8 * k + j)::bigint << (8 * j));
				END LOOP;
				CASE k
					WHEN 0 THEN v1 := herald_xxh64_round(v1, lane);
					WHEN 1 THEN v2 := herald_xxh64_round(v2, lane);
					WHEN 2 THEN v3 := herald_xxh64_round(v3, lane);
					ELSE v4 := herald_xxh64_round(v4, lane);
				END CASE;
			END LOOP;
			i := i + 32;
		END LOOP;
		h := herald_u64_add(herald_u64_add(herald_u64_rotl(v1, 1), herald_u64_rotl(v2, 7)),
		                    herald_u64_add(herald_u64_rotl(v3, 12), herald_u64_rotl(v4, 18)));
		h := herald_u64_add(herald_u64_mul(h # herald_xxh64_round(0, v1), p1), p4);
		h := herald_u64_add(herald_u64_mul(h # herald_xxh64_round(0, v2), p1), p4);
		h := herald_u64_add(herald_u64_mul(h # herald_xxh64_round(0, v3), p1), p4);
		h := herald_u64_add(herald_u64_mul(h # herald_xxh64_round(0, v4), p1), p4);
	ELSE
		h := p5;
	END IF;
	h := herald_u64_add(h, len);
	WHILE i + 8 <= len LOOP
		lane := 0;
		FOR j IN 0..7 LOOP
			lane := lane | (get_byte(b, i + j)::bigint << (8 * j));
		END LOOP;
		h := h # herald_xxh64_round(0, lane);
		h := herald_u64_add(herald_u64_mul(herald_u64_rotl(h, 27), p1), p4);
		i := i + 8;
	END LOOP;
	IF i + 4 <= len THEN
		lane := 0;
		FOR j IN 0..3 LOOP
			lane := lane | (get_byte(b, i + j)::bigint << (8 * j));
		END LOOP;
		h := h # herald_u64_mul(lane, p1);
		h := herald_u64_add(herald_u64_mul(herald_u64_rotl(h, 23), p2), p3);
		i := i + 4;
	END IF;
	WHILE i < len LOOP
		h := h # herald_u64_mul(get_byte(b, i)::bigint, p5);
		h := herald_u64_mul(herald_u64_rotl(h, 11), p1);
		i := i + 1;
	END LOOP;
	h := h # herald_u64_shr(h, 33);
	h := herald_u64_mul(h, p2);
	h := h # herald_u64_shr(h, 29);
	h := herald_u64_mul(h, p3);
	h := h # herald_u64_shr(h, 32);
	RETURN h # (-9223372036854775808)::bigint;
END
$$;
`

// InstallFunction defines herald_position(text) (FunctionSQL)
// in db's current schema.
func InstallFunction(ctx context.Context, db Execer) error {
	if _, err := db.Exec(ctx, FunctionSQL); err != nil {
		return fmt.Errorf("%w: install herald_position: %w", ErrTable, err)
	}
	return nil
}

// InstallTrigger defines herald_position(text) and a trigger on
// table that sets the position column of every inserted row, and of every
// row whose id changes, from its id: the column then stays filled whatever
// writes the table. It costs about 100 µs a written row.
func InstallTrigger(ctx context.Context, db Execer, table, idColumn, positionColumn string) error {
	idCol, posCol := or(idColumn, audience.DefaultIDColumn), or(positionColumn, audience.DefaultPositionColumn)
	sp := audience.Spec{Source: audience.SourcePostgres, Connection: "x", Table: table, IDColumn: idCol, PositionColumn: posCol}
	if err := sp.Validate(); err != nil {
		return err
	}
	if err := InstallFunction(ctx, db); err != nil {
		return err
	}
	rel, err := describeTable(ctx, db, table)
	if err != nil {
		return err
	}
	fn := pgx.Identifier{indexName(table, "herald_position_fill")}.Sanitize()
	trg := pgx.Identifier{indexName(table, "herald_position")}.Sanitize()
	// NEW is a plpgsql name, not to be quoted; the columns are.
	id, pos := "NEW."+pgx.Identifier{idCol}.Sanitize(), "NEW."+pgx.Identifier{posCol}.Sanitize()
	sql := fmt.Sprintf(`CREATE OR REPLACE FUNCTION %[1]s() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	%[3]s := herald_position(%[2]s);
	RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER %[4]s BEFORE INSERT OR UPDATE OF %[5]s ON %[6]s
	FOR EACH ROW EXECUTE FUNCTION %[1]s();`,
		fn, id, pos, trg, pgx.Identifier{idCol}.Sanitize(), rel.quoted)
	if _, err := db.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%w: install the position trigger: %w", ErrTable, err)
	}
	return nil
}
