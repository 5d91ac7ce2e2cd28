package main

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/internal/devstack"
)

// stack is the embedded etcd and Kafka of one scenario, with the clients
// the harness reads them through. Every scenario gets a fresh one: a
// worker killed in one scenario must not hold up the next one's trigger
// (its Kafka group membership lingers until the session times out) or
// leave state in etcd that the next fleet watches.
type stack struct {
	*devstack.Stack
	cli *clientv3.Client
	reg *coordinator.Registry
}

// startStack starts a stack; with restartableKafka its broker can be
// stopped and started again without losing data (kafkadown).
func startStack(ctx context.Context, restartableKafka bool) (*stack, error) {
	ds, err := devstack.Start(ctx, devstack.Config{RestartableKafka: restartableKafka})
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ds.EtcdEndpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		ds.Close()
		return nil, fmt.Errorf("loadtest: etcd client: %w", err)
	}
	return &stack{Stack: ds, cli: cli, reg: coordinator.NewRegistry(cli, coordinator.DefaultPrefix)}, nil
}

func (s *stack) close() {
	s.cli.Close()
	s.Stack.Close()
}

// revision is etcd's current revision: it grows by one with every write
// transaction, so two readings bound the writes between them.
func (s *stack) revision(ctx context.Context) (int64, error) {
	resp, err := s.cli.Get(ctx, "loadtest-revision-probe", clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("loadtest: etcd revision: %w", err)
	}
	return resp.Header.Revision, nil
}

// memberKey is worker id's member record (docs/ETCD.md).
func memberKey(id string) string { return coordinator.DefaultPrefix + "/members/" + id }

// memberRev is the create revision of worker id's member record, 0 when it
// has none: a new value means a new lease.
func (s *stack) memberRev(ctx context.Context, id string) (int64, error) {
	resp, err := s.cli.Get(ctx, memberKey(id))
	if err != nil {
		return 0, fmt.Errorf("loadtest: member %s: %w", id, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	return resp.Kvs[0].CreateRevision, nil
}
