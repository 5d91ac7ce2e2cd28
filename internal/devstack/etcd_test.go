package devstack

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func TestEtcdServesAndCleansUp(t *testing.T) {
	ctx := context.Background()
	start := time.Now()
	e, err := StartEtcd(ctx, EtcdConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("etcd ready in %v at %s", time.Since(start), e.Endpoint())
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint()}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx, "k")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("get: %v %v", resp, err)
	}
	cli.Close()
	dir := e.dir
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("data dir %s still there: %v", dir, err)
	}
}

func TestEtcdShortLeaseExpires(t *testing.T) {
	ctx := context.Background()
	e, err := StartEtcd(ctx, EtcdConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint()}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	lease, err := cli.Grant(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if lease.TTL != 1 {
		t.Errorf("granted TTL %d s, want the 1 s asked for", lease.TTL)
	}
	start := time.Now()
	if _, err := cli.Put(ctx, "/herald/leased", "x", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	for {
		resp, err := cli.Get(ctx, "/herald/leased")
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) == 0 {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("key of an unrenewed 1 s lease still there after 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("1 s lease expired after %v", time.Since(start))
}

// The server compacts its history by itself, so deleted keys' space is
// reused: without it the database of a fleet that deletes finished
// broadcasts would still grow with every revision ever written.
func TestEtcdCompactsByItself(t *testing.T) {
	ctx := context.Background()
	e, err := StartEtcd(ctx, EtcdConfig{AutoCompaction: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint()}, DialTimeout: 5 * time.Second,
		Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	first, err := cli.Put(ctx, "/herald/k", "1")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		if _, err := cli.Put(ctx, "/herald/k", "2"); err != nil {
			t.Fatal(err)
		}
		_, err := cli.Get(ctx, "/herald/k", clientv3.WithRev(first.Header.Revision))
		if errors.Is(err, rpctypes.ErrCompacted) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("revision of the first put still readable after 10 s: no auto-compaction")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("history compacted %v after the first write", time.Since(start).Round(time.Millisecond))
}
