package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/internal/devstack"
)

// herald status answers for a broadcast that finished and was reduced to
// its summary, alone and in the table beside live ones; herald cancel
// refuses it as over.
func TestStatusOfArchivedBroadcast(t *testing.T) {
	ctx := context.Background()
	e, err := devstack.StartEtcd(ctx, devstack.EtcdConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	sum := coordinator.Summary{
		ID: "old-sale", State: coordinator.StateDone, CreatedAt: at, StartedAt: at, FinishedAt: at.Add(time.Hour),
		Counters: coordinator.Counters{Scanned: 1200, Delivered: 1190, Failed: 10},
		Units:    coordinator.UnitCounts{Total: 3, Done: 3},
		Workers:  map[string]coordinator.WorkerShare{"w1": {Delivered: 600}, "w2": {Delivered: 590}},
	}
	val, err := json.Marshal(sum)
	if err != nil {
		t.Fatal(err)
	}
	// The layout of docs/ETCD.md: P/archive/<id>.
	if _, err := cli.Put(ctx, coordinator.DefaultPrefix+"/archive/old-sale", string(val)); err != nil {
		t.Fatal(err)
	}
	reg := coordinator.NewRegistry(cli, "")
	if _, err := reg.Register(ctx, coordinator.Broadcast{ID: "new-sale", Spec: []byte(`{}`),
		NotBefore: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"HERALD_ETCD": e.Endpoint()}

	code, out, stderr := runCLI(env, commands(), "status", "old-sale", "--json")
	var st coordinator.Status
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status --json: exit %d\n%s%s", code, out, stderr)
	}
	if st.State != coordinator.StateDone || st.Counters != sum.Counters || st.Units != sum.Units ||
		st.Workers["w2"].Delivered != 590 || !st.UpdatedAt.Equal(sum.FinishedAt) {
		t.Fatalf("status --json of the archived broadcast: %s", out)
	}
	code, out, stderr = runCLI(env, commands(), "status", "old-sale")
	if code != 0 || !strings.Contains(out, "old-sale done") || !strings.Contains(out, "delivered 1,190") {
		t.Fatalf("status: exit %d\n%s%s", code, out, stderr)
	}
	code, out, stderr = runCLI(env, commands(), "status")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[1], "new-sale") || !strings.Contains(lines[1], "pending") ||
		!strings.HasPrefix(lines[2], "old-sale") || !strings.Contains(lines[2], "1,190") {
		t.Fatalf("status table: exit %d\n%s%s", code, out, stderr)
	}
	code, _, stderr = runCLI(env, commands(), "cancel", "old-sale")
	if code != 1 || !strings.Contains(stderr, "not allowed") {
		t.Fatalf("cancel of an archived broadcast: exit %d\n%s", code, stderr)
	}
}
