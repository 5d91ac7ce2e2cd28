package main

import (
	"flag"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/herald-dev/herald/allowlist"
	"github.com/herald-dev/herald/coordinator"
	"github.com/herald-dev/herald/internal/connect"
)

// version is recorded in member records; release builds set it with
// -ldflags "-X main.version=...".
var version = "dev"

// clusterSecurityFlags declares how cluster commands authenticate to etcd
// and Kafka. Passwords are better given through the environment twins: a
// command line is visible to every user of the machine.
func clusterSecurityFlags(fs *flag.FlagSet, c *common) {
	fs.StringVar(&c.etcdTLS.CA, "etcd-ca", "", "PEM `file` of the CA that signed etcd's certificate (default: the system's roots, for https:// URLs)")
	fs.StringVar(&c.etcdTLS.Cert, "etcd-cert", "", "PEM `file` of the client certificate etcd asks for")
	fs.StringVar(&c.etcdTLS.Key, "etcd-key", "", "PEM `file` of the client certificate's key")
	fs.StringVar(&c.etcdUser, "etcd-user", "", "etcd `user` when etcd has authentication on")
	fs.StringVar(&c.etcdPassword, "etcd-password", "", "etcd `password` (prefer the environment twin)")
	fs.BoolVar(&c.kafkaSec.TLS, "kafka-tls", false, "connect to Kafka over TLS (implied by --kafka-ca, --kafka-cert)")
	fs.StringVar(&c.kafkaSec.Files.CA, "kafka-ca", "", "PEM `file` of the CA that signed the brokers' certificates (default: the system's roots)")
	fs.StringVar(&c.kafkaSec.Files.Cert, "kafka-cert", "", "PEM `file` of the client certificate the brokers ask for")
	fs.StringVar(&c.kafkaSec.Files.Key, "kafka-key", "", "PEM `file` of the client certificate's key")
	fs.StringVar(&c.kafkaSec.SASL, "kafka-sasl", connect.SASLNone, "Kafka SASL `mechanism`: none, plain, scram-sha-256 or scram-sha-512")
	fs.StringVar(&c.kafkaSec.User, "kafka-user", "", "Kafka SASL `user`")
	fs.StringVar(&c.kafkaSec.Password, "kafka-password", "", "Kafka SASL `password` (prefer the environment twin)")
}

// etcdConfig is how this command reaches etcd.
func (c *common) etcdConfig() connect.Etcd {
	return connect.Etcd{Endpoints: c.etcdEndpoints(), TLS: c.etcdTLS, User: c.etcdUser, Password: c.etcdPassword}
}

// etcdClient connects to the --etcd endpoints with the --etcd-* settings.
// The client's own logs are off: Herald reports what matters through slog.
func etcdClient(c *common) (*clientv3.Client, error) {
	cfg := c.etcdConfig()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	// The error names etcd and its endpoints already.
	return cfg.Client()
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

// kafkaConfig is how this command reaches Kafka, checked.
func (c *common) kafkaConfig() (connect.Kafka, error) {
	if err := c.kafkaSec.Validate(); err != nil {
		return connect.Kafka{}, fmt.Errorf("%w: %w", errUsage, err)
	}
	if c.kafkaSec.SASL == connect.SASLPlain && !c.kafkaSec.UsesTLS() {
		c.log.Warn("Kafka SASL PLAIN without TLS sends the password in the clear; add --kafka-tls")
	}
	return c.kafkaSec, nil
}

// allowFlags declares the endpoint allowlist flags of worker and trigger.
func allowFlags(fs *flag.FlagSet) (patterns, file *string) {
	patterns = fs.String("allow-endpoint", "", "endpoint `origins` deliveries may go to, comma-separated scheme://host:port, * for the leftmost label(s) or the port (default: none, every trigger is refused)")
	file = fs.String("allow-endpoint-file", "", "`file` of allowed endpoint origins, one a line, # comments")
	return patterns, file
}

// endpointAllowlist reads --allow-endpoint and --allow-endpoint-file
// together. Neither given means an empty list: nothing is allowed.
func endpointAllowlist(patterns, file string) (*allowlist.List, error) {
	var all []string
	for _, p := range strings.Split(patterns, ",") {
		if p = strings.TrimSpace(p); p != "" {
			all = append(all, p)
		}
	}
	if file != "" {
		more, err := allowlist.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errUsage, err)
		}
		all = append(all, more...)
	}
	a, err := allowlist.Parse(all)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	return a, nil
}
