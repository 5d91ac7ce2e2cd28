package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herald-dev/herald/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

func TestAudienceHelp(t *testing.T) {
	code, out, _ := runCLI(nil, commands(), "audience", "--help")
	if code != 0 || !strings.Contains(out, "audience prepare") || !strings.Contains(out, "audience import") {
		t.Fatalf("herald audience --help: exit %d\n%s", code, out)
	}
	code, out, _ = runCLI(nil, commands(), "audience", "prepare", "--help")
	if code != 0 || !strings.Contains(out, "CREATE INDEX CONCURRENTLY") || !strings.Contains(out, "HERALD_DATABASE") {
		t.Fatalf("herald audience prepare --help: exit %d\n%s", code, out)
	}
	if code, _, errOut := runCLI(nil, commands(), "audience", "prepare"); code != 2 || !strings.Contains(errOut, "no database") {
		t.Fatalf("prepare without a database: exit %d, %s", code, errOut)
	}
	if code, _, errOut := runCLI(nil, commands(), "audience", "import", "x.jsonl"); code != 2 || !strings.Contains(errOut, "--to is required") {
		t.Fatalf("import without --to: exit %d, %s", code, errOut)
	}
}

func TestAudienceImportToDir(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	var b strings.Builder
	for i := range 500 {
		fmt.Fprintf(&b, `{"id":"u%d"}`+"\n", i)
	}
	b.WriteString("not json\n")
	if err := os.WriteFile(in, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	to := filepath.Join(dir, "prepared")
	code, out, errOut := runCLI(nil, commands(), "audience", "import", in, "--to", to, "--segment-mb", "1")
	if code != 0 || !strings.Contains(out, "Imported 501 records (1 invalid) into 1 segments") || !strings.Contains(out, `"source": "prepared"`) {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(to, "index.json")); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI(nil, commands(), "audience", "import", in, "--to", to)
	if code != 1 || !strings.Contains(errOut, "--replace") {
		t.Fatalf("second import: exit %d, %s", code, errOut)
	}
}

func TestAudiencePrepare(t *testing.T) {
	url := pgtest.New(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE subscribers (id text PRIMARY KEY); INSERT INTO subscribers SELECT 's' || g FROM generate_series(1, 1000) g`); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(map[string]string{"HERALD_DATABASE": url}, commands(), "audience", "prepare", "--table", "subscribers", "--batch-rows", "300")
	if code != 0 || !strings.Contains(out, "1000 rows filled") || !strings.Contains(out, "index subscribers_herald_position") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	t.Log(out)
}
