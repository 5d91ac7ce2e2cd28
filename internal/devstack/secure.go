package devstack

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// EtcdSecurity makes an embedded etcd server serve clients the way a
// production cluster would: over TLS, asking for client certificates, with
// authentication on. StartSecureEtcd uses it; StartEtcd serves plain HTTP.
type EtcdSecurity struct {
	// PKI supplies the server certificate (and the CA for client
	// certificates). Required.
	PKI *PKI
	// ClientCertAuth refuses clients without a certificate signed by the
	// PKI's CA.
	ClientCertAuth bool
	// RootPassword, when set, creates the root user with it and enables
	// authentication.
	RootPassword string
	// Users are created with a role that may read and write only under
	// their Prefix. They need RootPassword (auth on).
	Users []EtcdUser
}

// EtcdUser is an etcd user limited to a key prefix.
type EtcdUser struct {
	Name, Password, Prefix string
}

// StartSecureEtcd starts a single-node etcd server like StartEtcd, serving
// clients over TLS with sec's certificates and, with sec.RootPassword,
// requiring authentication. The caller must Close it.
func StartSecureEtcd(ctx context.Context, cfg EtcdConfig, sec EtcdSecurity) (*Etcd, error) {
	if sec.PKI == nil {
		return nil, errors.New("devstack: secure etcd needs a PKI")
	}
	if len(sec.Users) > 0 && sec.RootPassword == "" {
		return nil, errors.New("devstack: etcd users need auth on (a root password)")
	}
	e, err := startEtcd(ctx, cfg, &transport.TLSInfo{
		CertFile:       sec.PKI.ServerCert,
		KeyFile:        sec.PKI.ServerKey,
		TrustedCAFile:  sec.PKI.CA,
		ClientCertAuth: sec.ClientCertAuth,
	})
	if err != nil {
		return nil, err
	}
	if sec.RootPassword != "" {
		if err := enableAuth(ctx, e.client, sec); err != nil {
			e.Close()
			return nil, err
		}
	}
	return e, nil
}

// enableAuth creates the root user and the limited users, then turns
// authentication on, as an operator would with etcdctl.
func enableAuth(ctx context.Context, endpoint string, sec EtcdSecurity) error {
	tc, err := sec.PKI.clientTLS()
	if err != nil {
		return err
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, TLS: tc,
		DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("devstack: etcd auth setup: %w", err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	steps := []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", sec.RootPassword); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
	}
	for _, u := range sec.Users {
		role := "prefix-" + u.Name
		steps = append(steps,
			func() error { _, err := cli.RoleAdd(ctx, role); return err },
			func() error {
				_, err := cli.RoleGrantPermission(ctx, role, u.Prefix, clientv3.GetPrefixRangeEnd(u.Prefix), clientv3.PermissionType(clientv3.PermReadWrite))
				return err
			},
			func() error { _, err := cli.UserAdd(ctx, u.Name, u.Password); return err },
			func() error { _, err := cli.UserGrantRole(ctx, u.Name, role); return err },
		)
	}
	steps = append(steps, func() error { _, err := cli.AuthEnable(ctx); return err })
	for _, step := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("devstack: etcd auth setup: %w", err)
		}
	}
	return nil
}

// clientTLS is a client configuration trusting the PKI's CA and presenting
// its client certificate.
func (p *PKI) clientTLS() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(p.ClientCert, p.ClientKey)
	if err != nil {
		return nil, fmt.Errorf("devstack: pki: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: p.roots(), MinVersion: tls.VersionTLS12}, nil
}

// KafkaSecurity makes an embedded Kafka broker serve TLS and require SASL
// authentication. StartSecureKafka uses it.
type KafkaSecurity struct {
	// TLS, when set, is the broker's server configuration (PKI.ServerTLS
	// makes one).
	TLS *tls.Config
	// Users, when any, turn SASL on with these users, each allowed
	// everything.
	Users []KafkaUser
}

// KafkaUser is a SASL user of the broker. Mechanism is PLAIN,
// SCRAM-SHA-256 or SCRAM-SHA-512.
type KafkaUser struct {
	Mechanism, Name, Password string
}

// StartSecureKafka starts a broker like StartKafka, with TLS and SASL as
// sec says. The caller must Close it.
func StartSecureKafka(ctx context.Context, cfg KafkaConfig, sec KafkaSecurity) (*Kafka, error) {
	var extra []kfake.Opt
	if sec.TLS != nil {
		extra = append(extra, kfake.TLS(sec.TLS))
	}
	if len(sec.Users) > 0 {
		extra = append(extra, kfake.EnableSASL())
		for _, u := range sec.Users {
			extra = append(extra, kfake.Superuser(u.Mechanism, u.Name, u.Password))
		}
	}
	return startKafka(ctx, cfg, extra...)
}
