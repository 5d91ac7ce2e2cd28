// Package pgtest gives a test a throw-away PostgreSQL database: a cluster
// started with initdb on a free loopback port (devstack.StartPostgres),
// one per test binary, and a fresh database in it per call of New.
//
// Without PostgreSQL installed the test is skipped with a message saying
// so, unless CI=true, where a missing PostgreSQL fails the test: CI
// installs it (.ci/run), so its absence there is a broken setup, not a
// reason to pass.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/devstack"
	"github.com/jackc/pgx/v5"
)

// cluster is the test binary's shared cluster, started by the first New.
// Main stops it; a package whose tests use pgtest calls Main from its
// TestMain.
type cluster struct {
	once sync.Once
	pg   *devstack.Postgres
	err  error
	mu   sync.Mutex
	n    int
}

// shared is the one cluster of a test binary. It is package state on
// purpose: starting PostgreSQL takes a second or two, once per binary.
var shared cluster

// Main runs the tests and stops the shared cluster afterwards:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	if shared.pg != nil {
		shared.pg.Close()
	}
	return code
}

// Wrap is Main for a TestMain that hands m to something else, such as
// goleak.VerifyTestMain, which then sees the cluster stopped:
//
//	func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.Wrap(m)) }
func Wrap(m *testing.M) interface{ Run() int } { return wrapped{m} }

type wrapped struct{ m *testing.M }

func (w wrapped) Run() int { return Main(w.m) }

// New returns the connection string of a new, empty database in the
// shared cluster, starting the cluster on first use. It skips t when
// PostgreSQL is not installed (fails it under CI=true).
func New(t testing.TB) string {
	t.Helper()
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		shared.pg, shared.err = devstack.StartPostgres(ctx, devstack.PostgresConfig{})
	})
	if errors.Is(shared.err, devstack.ErrNoPostgres) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("pgtest: %v; CI must install it (apt-get install postgresql)", shared.err)
		}
		t.Skipf("pgtest: skipped: %v (apt-get install postgresql to run it)", shared.err)
	}
	if shared.err != nil {
		t.Fatalf("pgtest: %v", shared.err)
	}
	shared.mu.Lock()
	shared.n++
	name := fmt.Sprintf("t%d", shared.n)
	shared.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, shared.pg.URL("postgres"))
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	return shared.pg.URL(name)
}
