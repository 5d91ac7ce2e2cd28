package devstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// ErrKafkaAddr reports a listen address that clients could not be told
// to connect to.
var ErrKafkaAddr = errors.New("devstack: kafka address must be host:port with a concrete host")

// KafkaConfig configures an embedded Kafka-protocol broker.
type KafkaConfig struct {
	// Addr is the host:port the broker listens on and advertises in
	// metadata, so clients reconnect to exactly this address. Empty means
	// 127.0.0.1 with a free port. The host must be concrete (not
	// 0.0.0.0 or ::) because clients are told to dial it.
	Addr string
	// Topics are created before StartKafka returns.
	Topics []string
	// Partitions per topic, for Topics and for topics created later with
	// CreateTopics and no explicit count. Zero means 4.
	Partitions int
	// Restartable keeps the broker's data (topics, messages, committed
	// offsets) in a temporary directory, removed by Close, instead of in
	// memory only, so that Stop and Restart are an outage that loses
	// nothing, as a real broker's restart would be.
	Restartable bool
}

// ErrNotRestartable is returned by Restart on a broker started without
// KafkaConfig.Restartable: it would come back empty.
var ErrNotRestartable = errors.New("devstack: kafka not started restartable")

// Kafka is a running single-broker Kafka-protocol cluster on loopback,
// served by franz-go's kfake. It keeps data in memory only, unless
// started Restartable.
type Kafka struct {
	brokers []string
	start   func() (*kfake.Cluster, error) // on the address first bound
	dir     string                         // the data of a restartable broker; "" otherwise

	mu      sync.Mutex
	cluster *kfake.Cluster
	stopped bool
}

// kafkaMinSessionTimeout lets tests run consumer groups with short
// sessions so a vanished member is noticed quickly; a real broker's
// default floor of 6 s would refuse them.
const kafkaMinSessionTimeout = 100 * time.Millisecond

// StartKafka starts a broker with cfg.Topics created. The caller must Close
// it.
func StartKafka(ctx context.Context, cfg KafkaConfig) (*Kafka, error) {
	return startKafka(ctx, cfg)
}

// startKafka starts the broker StartKafka and StartSecureKafka share, with
// extra options (TLS, SASL) appended.
func startKafka(ctx context.Context, cfg KafkaConfig, extra ...kfake.Opt) (*Kafka, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("devstack: start kafka: %w", err)
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrKafkaAddr, cfg.Addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return nil, fmt.Errorf("%w: %q", ErrKafkaAddr, cfg.Addr)
	}
	if cfg.Partitions <= 0 {
		cfg.Partitions = 4
	}
	k := &Kafka{}
	if cfg.Restartable {
		if k.dir, err = os.MkdirTemp("", "herald-kafka-"); err != nil {
			return nil, fmt.Errorf("devstack: kafka data dir: %w", err)
		}
	}
	// opts are the broker's options when it listens on addr.
	opts := func(addr string) []kfake.Opt {
		o := []kfake.Opt{
			kfake.NumBrokers(1),
			kfake.ClusterID("herald-dev"),
			kfake.DefaultNumPartitions(cfg.Partitions),
			kfake.GroupMinSessionTimeout(kafkaMinSessionTimeout),
			// kfake always asks for 127.0.0.1:<port>; listening on the
			// configured address instead makes any loopback or interface
			// address work, and the broker advertises what it listens on.
			kfake.ListenFn(func(network, _ string) (net.Listener, error) {
				return net.Listen(network, addr)
			}),
		}
		if len(cfg.Topics) > 0 {
			o = append(o, kfake.SeedTopics(int32(cfg.Partitions), cfg.Topics...))
		}
		if k.dir != "" {
			// Seeded topics are only created while the directory holds
			// no state: a restart finds them there, with their messages.
			o = append(o, kfake.DataDir(k.dir))
		}
		return append(o, extra...)
	}
	c, err := kfake.NewCluster(opts(cfg.Addr)...)
	if err != nil {
		k.removeDir()
		return nil, fmt.Errorf("devstack: start kafka on %s: %w", cfg.Addr, err)
	}
	k.cluster, k.brokers = c, c.ListenAddrs()
	// A restart listens where the first start did, even when that was a
	// free port the kernel picked: clients reconnect to that address.
	bound := k.brokers[0]
	k.start = func() (*kfake.Cluster, error) { return kfake.NewCluster(opts(bound)...) }
	return k, nil
}

// Brokers lists the bootstrap addresses, such as 127.0.0.1:9092.
func (k *Kafka) Brokers() []string { return append([]string(nil), k.brokers...) }

// Stop stops the broker as a crash of its machine would be seen from the
// network: its listener and every client connection close, and clients
// are refused until Restart. A restartable broker's data is kept. Stopping
// a stopped broker does nothing.
func (k *Kafka) Stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.cluster.Close()
	k.stopped = true
}

// Restart starts a stopped broker again on the same address with the data
// it had when it stopped. It fails with ErrNotRestartable unless the broker
// was started Restartable, and if the address was taken meanwhile.
// Restarting a running broker does nothing.
func (k *Kafka) Restart(ctx context.Context) error {
	if k.dir == "" {
		return ErrNotRestartable
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("devstack: restart kafka: %w", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.stopped {
		return nil
	}
	c, err := k.start()
	if err != nil {
		return fmt.Errorf("devstack: restart kafka on %s: %w", k.brokers[0], err)
	}
	k.cluster, k.stopped = c, false
	return nil
}

// Close stops the broker, closes its listener and every client
// connection, and drops all data. It may be called more than once.
func (k *Kafka) Close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.cluster.Close()
	k.stopped = true
	k.removeDir()
}

func (k *Kafka) removeDir() {
	if k.dir != "" {
		os.RemoveAll(k.dir)
	}
}

// StopKafka stops the stack's Kafka broker (Kafka.Stop).
func (s *Stack) StopKafka() { s.kafka.Stop() }

// RestartKafka starts the stack's Kafka broker again on the same address
// (Kafka.Restart); the stack must have been started with RestartableKafka.
func (s *Stack) RestartKafka(ctx context.Context) error { return s.kafka.Restart(ctx) }
