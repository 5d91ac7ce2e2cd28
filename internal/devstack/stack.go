// Package devstack runs Herald's external services inside the current
// process: a single-node etcd server and a single-broker Kafka-protocol
// broker, both on loopback. It exists for tests, `herald dev` and
// `herald demo`; it is not a way to run etcd or Kafka in production, keeps
// Kafka data in memory only and etcd data without fsync.
package devstack

import "context"

// Topic names Herald uses, created by Start. They are the components'
// defaults, trigger.DefaultTopic and delivery.DefaultDeadLetterTopic,
// written out because devstack cannot import those packages: the tests of
// coordinator and delivery start a devstack, and trigger imports
// coordinator through spec. A worker test checks that they agree.
const (
	// BroadcastsTopic carries broadcast triggers.
	BroadcastsTopic = "herald.broadcasts"
	// DeadLettersTopic receives deliveries that failed for good.
	DeadLettersTopic = "herald.deadletters"
	// ReportsTopic receives the summary of every finished broadcast.
	ReportsTopic = "herald.reports"
	// InvalidTokensTopic receives the device tokens and push
	// subscriptions providers declared dead (delivery.DefaultInvalidTokenTopic).
	InvalidTokensTopic = "herald.invalid-tokens"
)

// Config configures a Stack. The zero value starts everything on free
// loopback ports.
type Config struct {
	// EtcdAddr is the host:port etcd serves clients on. Empty means
	// 127.0.0.1 with a free port.
	EtcdAddr string
	// KafkaAddr is the host:port of the Kafka broker. Empty means
	// 127.0.0.1 with a free port.
	KafkaAddr string
	// RestartableKafka keeps Kafka's data on disk, so StopKafka and
	// RestartKafka are an outage that loses nothing (KafkaConfig.Restartable).
	RestartableKafka bool
	// Partitions per topic. Zero means 4.
	Partitions int
	// ExtraTopics are created besides BroadcastsTopic, DeadLettersTopic,
	// ReportsTopic and InvalidTokensTopic.
	ExtraTopics []string
}

// Stack is a running etcd and Kafka pair.
type Stack struct {
	etcd  *Etcd
	kafka *Kafka
}

// Start starts etcd and Kafka with Herald's topics created. On error
// nothing is left running. The caller must Close the Stack.
func Start(ctx context.Context, cfg Config) (*Stack, error) {
	// Kafka starts in milliseconds and fails fast on a taken port, so it
	// goes first: a bad address is reported before etcd's slower start.
	topics := append([]string{BroadcastsTopic, DeadLettersTopic, ReportsTopic, InvalidTokensTopic}, cfg.ExtraTopics...)
	k, err := StartKafka(ctx, KafkaConfig{Addr: cfg.KafkaAddr, Topics: topics, Partitions: cfg.Partitions,
		Restartable: cfg.RestartableKafka})
	if err != nil {
		return nil, err
	}
	e, err := StartEtcd(ctx, EtcdConfig{ClientAddr: cfg.EtcdAddr})
	if err != nil {
		k.Close()
		return nil, err
	}
	return &Stack{etcd: e, kafka: k}, nil
}

// EtcdEndpoint is etcd's client URL, such as http://127.0.0.1:2379.
func (s *Stack) EtcdEndpoint() string { return s.etcd.Endpoint() }

// KafkaBrokers lists the Kafka bootstrap addresses.
func (s *Stack) KafkaBrokers() []string { return s.kafka.Brokers() }

// Close stops both services and removes etcd's temporary data.
func (s *Stack) Close() error {
	s.kafka.Close()
	return s.etcd.Close()
}
