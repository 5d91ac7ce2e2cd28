package devstack

import (
	"context"
	"errors"
	"fmt"
	"net"
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
}

// Kafka is a running single-broker Kafka-protocol cluster on loopback,
// served by franz-go's kfake. It keeps data in memory only.
type Kafka struct {
	cluster *kfake.Cluster
	brokers []string
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
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ClusterID("herald-dev"),
		kfake.DefaultNumPartitions(cfg.Partitions),
		kfake.GroupMinSessionTimeout(kafkaMinSessionTimeout),
		// kfake always asks for 127.0.0.1:<port>; listening on the
		// configured address instead makes any loopback or interface
		// address work, and the broker advertises what it listens on.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, cfg.Addr)
		}),
	}
	if len(cfg.Topics) > 0 {
		opts = append(opts, kfake.SeedTopics(int32(cfg.Partitions), cfg.Topics...))
	}
	c, err := kfake.NewCluster(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("devstack: start kafka on %s: %w", cfg.Addr, err)
	}
	return &Kafka{cluster: c, brokers: c.ListenAddrs()}, nil
}

// Brokers lists the bootstrap addresses, such as 127.0.0.1:9092.
func (k *Kafka) Brokers() []string { return append([]string(nil), k.brokers...) }

// Close stops the broker, closes its listener and every client
// connection, and drops all data. It may be called more than once.
func (k *Kafka) Close() { k.cluster.Close() }
