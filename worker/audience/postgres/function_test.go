package postgres

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/pgtest"
	"github.com/herald-dev/herald/sharding"
	"github.com/herald-dev/herald/worker/audience"
)

// herald_position in SQL is sharding.PositionColumn in Go: every length
// across XXH64's 32-byte stripes, 8- and 4-byte tails and single bytes,
// bytes with the top bit set, and non-ASCII ids.
func TestPositionFunctionMatchesGo(t *testing.T) {
	ctx := context.Background()
	pool, err := Dial(ctx, pgtest.New(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := InstallFunction(ctx, pool); err != nil {
		t.Fatal(err)
	}
	ids := []string{"", "a", "user-1", "日本語のユーザー", "émilie@example.com", strings.Repeat("\u00ff", 40)}
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n <= 100; n++ {
		b := make([]rune, n)
		for i := range b {
			b[i] = rune(0x21 + rng.IntN(0x5e))
		}
		ids = append(ids, string(b))
	}
	for range 50 {
		b := make([]rune, rng.IntN(80))
		for i := range b {
			b[i] = rune(0x80 + rng.IntN(0x3000))
		}
		ids = append(ids, string(b))
	}
	start := time.Now()
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(herald_position('user-' || g)) FROM generate_series(1, 2000) g").Scan(&n); err != nil {
		t.Fatal(err)
	}
	t.Logf("herald_position: %.1f µs an id", float64(time.Since(start).Microseconds())/float64(n))
	for _, id := range ids {
		var got int64
		if err := pool.QueryRow(ctx, "SELECT herald_position($1)", id).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if want := sharding.PositionColumn(id); got != want {
			t.Errorf("herald_position(%q) (%d bytes) = %d, want %d", id, len(id), got, want)
		}
	}
}

// The trigger fills the position of rows written without it, and keeps it
// right when an id changes.
func TestPositionTrigger(t *testing.T) {
	ctx := context.Background()
	pool, err := Dial(ctx, pgtest.New(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	mustExec(t, pool, `CREATE TABLE subs (id text PRIMARY KEY, herald_position bigint)`)
	if _, err := Prepare(ctx, pool, PrepareConfig{Table: "subs", Trigger: true}); err != nil {
		t.Fatal(err)
	}
	mustExec(t, pool, `INSERT INTO subs (id) SELECT 'trig-' || g FROM generate_series(1, 200) g`)
	mustExec(t, pool, `INSERT INTO subs (id, herald_position) VALUES ('liar', 42)`)
	mustExec(t, pool, `UPDATE subs SET id = 'renamed' WHERE id = 'trig-7'`)
	tbl, err := Open(ctx, pool, audience.Spec{Source: audience.SourcePostgres, Connection: "db", Table: "subs"})
	if err != nil {
		t.Fatal(err)
	}
	pr := tbl.Range(ctx, sharding.Range{Lo: 0, Hi: ^uint64(0)}, nil, 0)
	for pr.Next() {
		if r := pr.Record(); r.Invalid != "" {
			t.Errorf("%s: %s", r.ID, r.Invalid)
		}
	}
	if pr.Err() != nil || pr.Rows() != 201 {
		t.Fatalf("%d rows, %v", pr.Rows(), pr.Err())
	}
}
