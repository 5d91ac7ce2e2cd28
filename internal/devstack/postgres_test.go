package devstack

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// StartPostgres gives a server that answers, SampleAudience a filled
// table, and Close leaves no process, port or directory behind.
func TestPostgres(t *testing.T) {
	ctx := context.Background()
	pg, err := StartPostgres(ctx, PostgresConfig{})
	if errors.Is(err, ErrNoPostgres) && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	dir := pg.dir
	url, err := pg.SampleAudience(ctx, "herald", "subscribers", 100)
	if err != nil {
		pg.Close()
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		pg.Close()
		t.Fatal(err)
	}
	var n, filled int
	err = conn.QueryRow(ctx, "SELECT count(*), count(herald_position) FROM subscribers").Scan(&n, &filled)
	conn.Close(ctx)
	if err != nil || n != 100 || filled != 100 {
		t.Errorf("sample audience: %d rows, %d with a position (%v)", n, filled, err)
	}
	if err := pg.Close(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", pg.Addr(), time.Second); err == nil {
		c.Close()
		t.Errorf("%s still open after Close", pg.Addr())
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cluster directory %s left behind (%v)", dir, err)
	}
	if err := pg.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
