package connect

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/herald-dev/herald/internal/devstack"
)

// TestKafkaTLSAndSASL runs a broker that serves TLS only and requires SASL,
// with a user per mechanism, and produces and consumes (in a consumer
// group, as intake does) through the transport and dialer Kafka builds.
func TestKafkaTLSAndSASL(t *testing.T) {
	pki, err := devstack.NewPKI(t.TempDir(), "herald")
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, err := pki.ServerTLS(false)
	if err != nil {
		t.Fatal(err)
	}
	topics := []string{"t-plain", "t-scram-sha-256", "t-scram-sha-512", "t-refused"}
	k, err := devstack.StartSecureKafka(context.Background(), devstack.KafkaConfig{Topics: topics, Partitions: 1},
		devstack.KafkaSecurity{TLS: serverTLS, Users: []devstack.KafkaUser{
			{Mechanism: "PLAIN", Name: "alice", Password: "alice-pw"},
			{Mechanism: "SCRAM-SHA-256", Name: "bob", Password: "bob-pw"},
			{Mechanism: "SCRAM-SHA-512", Name: "carol", Password: "carol-pw"},
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	ca := TLSFiles{CA: pki.CA}
	tests := []struct {
		name, topic string
		cfg         Kafka
		ok          bool
	}{
		{name: "TLS + PLAIN", topic: "t-plain", cfg: Kafka{TLS: true, Files: ca, SASL: SASLPlain, User: "alice", Password: "alice-pw"}, ok: true},
		{name: "TLS + SCRAM-SHA-256", topic: "t-scram-sha-256", cfg: Kafka{Files: ca, SASL: SASLSCRAMSHA256, User: "bob", Password: "bob-pw"}, ok: true},
		{name: "TLS + SCRAM-SHA-512", topic: "t-scram-sha-512", cfg: Kafka{Files: ca, SASL: SASLSCRAMSHA512, User: "carol", Password: "carol-pw"}, ok: true},
		{name: "wrong password", topic: "t-refused", cfg: Kafka{Files: ca, SASL: SASLSCRAMSHA512, User: "carol", Password: "guess"}},
		{name: "user of another mechanism", topic: "t-refused", cfg: Kafka{Files: ca, SASL: SASLSCRAMSHA256, User: "carol", Password: "carol-pw"}},
		{name: "no SASL", topic: "t-refused", cfg: Kafka{Files: ca}},
		{name: "no TLS", topic: "t-refused", cfg: Kafka{SASL: SASLPlain, User: "alice", Password: "alice-pw"}},
		{name: "server not trusted (system roots)", topic: "t-refused", cfg: Kafka{TLS: true, SASL: SASLPlain, User: "alice", Password: "alice-pw"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.DialTimeout = 2 * time.Second
			err := produce(t, k.Brokers(), tt.topic, tt.cfg)
			if !tt.ok {
				if err == nil {
					t.Fatal("produced without the right credentials")
				}
				t.Logf("refused: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("produce: %v", err)
			}
			got := consumeOne(t, k.Brokers(), tt.topic, tt.cfg)
			if got != "hello "+tt.topic {
				t.Errorf("consumed %q", got)
			}
		})
	}
}

func produce(t *testing.T, brokers []string, topic string, cfg Kafka) error {
	t.Helper()
	tr, err := cfg.Transport()
	if err != nil {
		t.Fatal(err)
	}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, Transport: tr, BatchTimeout: time.Millisecond,
		MaxAttempts: 1, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte("hello " + topic)})
}

// consumeOne reads the first message of topic in a consumer group, through
// the dialer, as intake's reader does.
func consumeOne(t *testing.T, brokers []string, topic string, cfg Kafka) string {
	t.Helper()
	d, err := cfg.Dialer()
	if err != nil {
		t.Fatal(err)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, GroupID: "g-" + topic, Dialer: d,
		StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond, ReadLagInterval: -1})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	m, err := r.FetchMessage(ctx)
	if err != nil {
		t.Fatalf("consume %s: %v", topic, err)
	}
	if err := r.CommitMessages(ctx, m); err != nil {
		t.Fatalf("commit: %v", err)
	}
	return string(m.Value)
}

func TestKafkaValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Kafka
		ok   bool
	}{
		{"plain", Kafka{}, true},
		{"tls", Kafka{TLS: true}, true},
		{"CA implies TLS", Kafka{Files: TLSFiles{CA: "ca"}}, true},
		{"scram", Kafka{SASL: SASLSCRAMSHA512, User: "u", Password: "s3cret-pw"}, true},
		{"none spelled out", Kafka{SASL: SASLNone}, true},
		{"unknown mechanism", Kafka{SASL: "gssapi", User: "u", Password: "s3cret-pw"}, false},
		{"mechanism without user", Kafka{SASL: SASLPlain, Password: "s3cret-pw"}, false},
		{"user without mechanism", Kafka{User: "u", Password: "s3cret-pw"}, false},
		{"key without cert", Kafka{Files: TLSFiles{Key: "k"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrConfig)) {
				t.Errorf("Validate() = %v, want ok %v", err, tt.ok)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret-pw") {
				t.Errorf("error %q quotes the password", err)
			}
		})
	}
	if k := (Kafka{Files: TLSFiles{CA: "ca"}}); !k.UsesTLS() {
		t.Error("a CA file should turn TLS on")
	}
}

// TestKafkaClientCertificate: a broker that requires client certificates
// takes one from the PKI and refuses a client without.
func TestKafkaClientCertificate(t *testing.T) {
	pki, err := devstack.NewPKI(t.TempDir(), "herald")
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, err := pki.ServerTLS(true)
	if err != nil {
		t.Fatal(err)
	}
	k, err := devstack.StartSecureKafka(context.Background(), devstack.KafkaConfig{Topics: []string{"t"}, Partitions: 1},
		devstack.KafkaSecurity{TLS: serverTLS})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	with := Kafka{Files: TLSFiles{CA: pki.CA, Cert: pki.ClientCert, Key: pki.ClientKey}, DialTimeout: 2 * time.Second}
	if err := produce(t, k.Brokers(), "t", with); err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	if got := consumeOne(t, k.Brokers(), "t", with); got != "hello t" {
		t.Errorf("consumed %q", got)
	}
	without := Kafka{Files: TLSFiles{CA: pki.CA}, DialTimeout: 2 * time.Second}
	if err := produce(t, k.Brokers(), "t", without); err == nil {
		t.Fatal("produced without a client certificate")
	} else {
		t.Logf("refused: %v", err)
	}
}
