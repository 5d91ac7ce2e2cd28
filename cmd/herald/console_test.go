package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/devstack"
)

// TestConsoleCommand runs `herald console` in process with its token from
// a file, reads the printed URL, and checks the console answers with
// actions enabled; a token too short is a usage error.
func TestConsoleCommand(t *testing.T) {
	e, err := devstack.StartEtcd(context.Background(), devstack.EtcdConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("  a-token-from-a-file-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"HERALD_ETCD": e.Endpoint(), "HERALD_ACCESS_TOKEN_FILE": file}
	var stdout, stderr syncBuffer
	a := &cli{commands: commands(), stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return env[k] }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exited := make(chan int, 1)
	go func() { exited <- a.run(ctx, []string{"console", "--listen", "127.0.0.1:0"}) }()
	urlOf := regexp.MustCompile(`(?m)^console (http://\S+)  actions enabled`)
	deadline := time.Now().Add(10 * time.Second)
	var base string
	for base == "" {
		if m := urlOf.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
			break
		}
		select {
		case code := <-exited:
			t.Fatalf("console exited %d:\n%s\n%s", code, stdout.String(), stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no console line in:\n%s\n%s", stdout.String(), stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cl := httpClient(t)
	req, _ := http.NewRequest(http.MethodGet, base+"api/session", nil)
	req.Header.Set("Authorization", "Bearer a-token-from-a-file-123")
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var session map[string]bool
	json.NewDecoder(resp.Body).Decode(&session)
	resp.Body.Close()
	if !session["token_required"] || !session["authorized"] || !session["trigger"] {
		t.Errorf("session %v: want a token required, this one accepted, triggers on", session)
	}
	cancel()
	if code := <-exited; code != 0 {
		t.Fatalf("console exited %d after interrupt:\n%s", code, stderr.String())
	}

	var out2, err2 syncBuffer
	b := &cli{commands: commands(), stdout: &out2, stderr: &err2, getenv: func(string) string { return "" }}
	if code := b.run(context.Background(), []string{"console", "--etcd", e.Endpoint(), "--access-token", "short"}); code != 2 ||
		!strings.Contains(err2.String(), "fewer than 16") {
		t.Errorf("a short token: exit %d, %s", code, err2.String())
	}
}
