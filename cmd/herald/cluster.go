package main

import (
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/herald-dev/herald/coordinator"
)

// version is recorded in member records; release builds set it with
// -ldflags "-X main.version=...".
var version = "dev"

// etcdClient connects to the --etcd endpoints. The client's own logs are
// off: Herald reports what matters through slog.
func etcdClient(c *common) (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   c.etcdEndpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("connect to etcd %s: %w", c.etcd, err)
	}
	return cli, nil
}

// registry connects to etcd and returns the broadcast registry with a
// closer for its client.
func registry(c *common) (*coordinator.Registry, func(), error) {
	cli, err := etcdClient(c)
	if err != nil {
		return nil, nil, err
	}
	return coordinator.NewRegistry(cli, c.prefix), func() { cli.Close() }, nil
}
