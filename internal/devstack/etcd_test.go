package devstack

import (
	"context"
	"os"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
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
