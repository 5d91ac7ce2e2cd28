package devstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/herald-dev/herald/sharding"
	"github.com/jackc/pgx/v5"
)

// ErrNoPostgres is returned by StartPostgres when no PostgreSQL server
// binaries (initdb, postgres) can be found.
var ErrNoPostgres = errors.New("devstack: PostgreSQL not installed (no initdb found through pg_config --bindir or /usr/lib/postgresql/*/bin)")

// PostgresConfig configures a throw-away PostgreSQL cluster.
type PostgresConfig struct {
	// Addr is the loopback host:port the server listens on. Empty, or
	// port 0, means 127.0.0.1 with a free port.
	Addr string
	// BinDir holds initdb and postgres. Empty means found through
	// pg_config --bindir, then /usr/lib/postgresql/<newest>/bin.
	BinDir string
	// StartTimeout bounds initdb and the server's start. Zero means 60
	// seconds.
	StartTimeout time.Duration
}

// Postgres is a running throw-away PostgreSQL cluster: its data directory
// and unix socket live in a temporary directory removed by Close, it
// listens on loopback only and trusts every local connection. It is for
// tests and `herald dev`, never for data that matters (fsync is off).
type Postgres struct {
	dir  string
	addr string
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd has been waited for
	out  *bytes.Buffer // the server's log, for errors
}

// FindPostgresBin returns the directory holding initdb and postgres, or
// ErrNoPostgres.
func FindPostgresBin() (string, error) {
	var dirs []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dirs = append(dirs, strings.TrimSpace(string(out)))
	}
	if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin"); len(m) > 0 {
		// Newest version first; the glob sorts "15" before "9" but the
		// versions installed side by side are rarely that far apart.
		for i := len(m) - 1; i >= 0; i-- {
			dirs = append(dirs, m[i])
		}
	}
	for _, d := range dirs {
		if fileExists(filepath.Join(d, "initdb")) && fileExists(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", ErrNoPostgres
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// StartPostgres creates a cluster with initdb and starts its server,
// waiting until it accepts connections. PostgreSQL refuses to run as
// root: when the process is root, initdb and the server run as the user
// nobody. On error nothing is left behind. The caller must Close it.
func StartPostgres(ctx context.Context, cfg PostgresConfig) (*Postgres, error) {
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 60 * time.Second
	}
	bin := cfg.BinDir
	if bin == "" {
		var err error
		if bin, err = FindPostgresBin(); err != nil {
			return nil, err
		}
	}
	addr := cfg.Addr
	if addr == "" || strings.HasSuffix(addr, ":0") {
		// PostgreSQL takes no port 0; a free one is found for it.
		var err error
		if addr, err = freeAddr(); err != nil {
			return nil, err
		}
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("devstack: postgres address %q: %w", addr, err)
	}
	cred, err := unprivileged()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()

	base := ""
	if cred != nil && !traversable(os.TempDir()) {
		// nobody must reach the cluster's directory: a private TMPDIR
		// (under /root, say) would hide it.
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "herald-pg-")
	if err != nil {
		return nil, fmt.Errorf("devstack: postgres dir: %w", err)
	}
	p := &Postgres{dir: dir, addr: net.JoinHostPort(host, port), out: new(bytes.Buffer)}
	fail := func(err error) (*Postgres, error) {
		p.Close()
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		return fail(fmt.Errorf("devstack: postgres dir: %w", err))
	}
	if cred != nil {
		// The unprivileged user must reach and own the data and socket
		// directory; the parent is the temp dir, private to root otherwise.
		if err := os.Chmod(dir, 0o755); err != nil {
			return fail(fmt.Errorf("devstack: postgres dir: %w", err))
		}
		for _, d := range []string{dir, data} {
			if err := os.Chown(d, int(cred.Uid), int(cred.Gid)); err != nil {
				return fail(fmt.Errorf("devstack: postgres dir: %w", err))
			}
		}
	}

	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
		"-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("devstack: initdb: %w: %s", err, lastLines(out, 5)))
	}

	p.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data,
		"-c", "listen_addresses="+host, "-p", port, "-c", "unix_socket_directories="+dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=50", "-c", "shared_buffers=32MB")
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		p.cmd = nil
		return fail(fmt.Errorf("devstack: start postgres: %w", err))
	}
	p.done = make(chan struct{})
	go func() { p.cmd.Wait(); close(p.done) }()

	for {
		if c, err := net.DialTimeout("tcp", p.addr, time.Second); err == nil {
			c.Close()
			// Accepting TCP is not yet accepting queries (startup
			// recovery); the socket file appears once the server is ready.
			if fileExists(filepath.Join(dir, ".s.PGSQL."+port+".lock")) && ready(bin, dir, port) {
				return p, nil
			}
		}
		select {
		case <-p.done:
			return fail(fmt.Errorf("devstack: postgres exited while starting: %s", lastLines(p.out.Bytes(), 5)))
		case <-ctx.Done():
			return fail(fmt.Errorf("devstack: postgres not ready: %w: %s", ctx.Err(), lastLines(p.out.Bytes(), 5)))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ready asks pg_isready when it is there; the TCP check alone otherwise.
func ready(bin, dir, port string) bool {
	isready := filepath.Join(bin, "pg_isready")
	if !fileExists(isready) {
		return true
	}
	return exec.Command(isready, "-q", "-h", dir, "-p", port, "-U", "postgres").Run() == nil
}

// unprivileged is the credential initdb and postgres run with: nil when
// the process is not root, the user nobody when it is.
func unprivileged() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		return nil, fmt.Errorf("devstack: PostgreSQL refuses to run as root and there is no user nobody to run it as: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("devstack: user nobody: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// traversable reports whether every directory on dir's path lets others
// through (o+x), as the unprivileged user needs.
func traversable(dir string) bool {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return true
		}
		dir = parent
	}
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// Addr is the host:port the server listens on.
func (p *Postgres) Addr() string { return p.addr }

// URL is a connection string for database db as the superuser postgres,
// which trusts local connections and needs no password.
func (p *Postgres) URL(db string) string {
	return "postgres://postgres@" + p.addr + "/" + db + "?sslmode=disable"
}

// Close stops the server (fast shutdown: sessions are ended) and removes
// the cluster. It is safe to call more than once.
func (p *Postgres) Close() error {
	if p.cmd != nil && p.cmd.Process != nil {
		// SIGINT is PostgreSQL's fast shutdown.
		p.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
		p.cmd = nil
	}
	if p.dir == "" {
		return nil
	}
	err := os.RemoveAll(p.dir)
	p.dir = ""
	if err != nil {
		return fmt.Errorf("devstack: remove postgres dir: %w", err)
	}
	return nil
}

// SampleAudience creates database db with a table of n subscribers ready
// to be a postgres audience: id, locale, reachable and name columns, the
// position column filled (sharding.PositionColumn) and the two indexes
// `herald audience prepare` creates. It returns the database's URL.
func (p *Postgres) SampleAudience(ctx context.Context, db, table string, n int) (string, error) {
	admin, err := pgx.Connect(ctx, p.URL("postgres"))
	if err != nil {
		return "", fmt.Errorf("devstack: postgres: %w", err)
	}
	_, err = admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize())
	admin.Close(ctx)
	if err != nil {
		return "", fmt.Errorf("devstack: postgres: create database: %w", err)
	}
	conn, err := pgx.Connect(ctx, p.URL(db))
	if err != nil {
		return "", fmt.Errorf("devstack: postgres: %w", err)
	}
	defer conn.Close(ctx)
	t := pgx.Identifier{table}.Sanitize()
	for _, sql := range []string{
		"CREATE TABLE " + t + " (id text PRIMARY KEY, locale text, reachable boolean NOT NULL DEFAULT true, name text, herald_position bigint)",
		"CREATE INDEX ON " + t + " (herald_position, id)",
		"CREATE INDEX ON " + t + " (id) WHERE herald_position IS NULL",
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return "", fmt.Errorf("devstack: postgres: %s: %w", sql, err)
		}
	}
	locales := []string{"en", "de", "fr", "ja"}
	rows := make([][]any, n)
	for i := range rows {
		id := fmt.Sprintf("sub-%06d", i+1)
		rows[i] = []any{id, locales[i%len(locales)], i%10 != 9, fmt.Sprintf("Subscriber %d", i+1), sharding.PositionColumn(id)}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{table}, []string{"id", "locale", "reachable", "name", "herald_position"}, pgx.CopyFromRows(rows)); err != nil {
		return "", fmt.Errorf("devstack: postgres: fill %s: %w", table, err)
	}
	if _, err := conn.Exec(ctx, "ANALYZE "+t); err != nil {
		return "", fmt.Errorf("devstack: postgres: %w", err)
	}
	return p.URL(db), nil
}
