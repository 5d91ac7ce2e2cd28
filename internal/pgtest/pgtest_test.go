package pgtest_test

import (
	"context"
	"testing"

	"github.com/herald-dev/herald/internal/pgtest"
	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.Wrap(m)) }

// Two databases of one cluster are separate and answer queries.
func TestNew(t *testing.T) {
	ctx := context.Background()
	for _, table := range []string{"a", "b"} {
		url := pgtest.New(t)
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "CREATE TABLE "+table+" (x int)"); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("database %s sees %d tables, want 1", url, n)
		}
		var v string
		if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil {
			t.Fatal(err)
		}
		t.Logf("server %s", v)
		conn.Close(ctx)
	}
}
