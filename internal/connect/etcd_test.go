package connect

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/herald-dev/herald/internal/devstack"
)

// TestEtcdTLSAndAuth runs an etcd server that requires client certificates
// and authentication, with a root user and a user limited to /herald/, and
// connects to it as each command would.
func TestEtcdTLSAndAuth(t *testing.T) {
	pki, err := devstack.NewPKI(t.TempDir(), "herald")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := devstack.StartSecureEtcd(context.Background(), devstack.EtcdConfig{}, devstack.EtcdSecurity{
		PKI: pki, ClientCertAuth: true, RootPassword: "root-pw",
		Users: []devstack.EtcdUser{{Name: "herald", Password: "herald-pw", Prefix: "/herald/"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ep := srv.Endpoint()
	if !strings.HasPrefix(ep, "https://") {
		t.Fatalf("endpoint %s is not https", ep)
	}
	withCert := TLSFiles{CA: pki.CA, Cert: pki.ClientCert, Key: pki.ClientKey}
	tests := []struct {
		name    string
		cfg     Etcd
		key     string
		wantErr string // "" means the put succeeds
	}{
		{name: "root with password", cfg: Etcd{TLS: withCert, User: "root", Password: "root-pw"}, key: "/anywhere"},
		{name: "limited user in its prefix", cfg: Etcd{TLS: withCert, User: "herald", Password: "herald-pw"}, key: "/herald/x"},
		{name: "limited user outside its prefix", cfg: Etcd{TLS: withCert, User: "herald", Password: "herald-pw"}, key: "/other", wantErr: "permission denied"},
		{name: "certificate name as the user", cfg: Etcd{TLS: withCert}, key: "/herald/by-cert"},
		{name: "certificate name outside its prefix", cfg: Etcd{TLS: withCert}, key: "/other", wantErr: "permission denied"},
		{name: "wrong password", cfg: Etcd{TLS: withCert, User: "root", Password: "guess"}, key: "/x", wantErr: "authentication failed"},
		{name: "no client certificate", cfg: Etcd{TLS: TLSFiles{CA: pki.CA}, User: "root", Password: "root-pw"}, key: "/x", wantErr: "certificate"},
		{name: "server not trusted (system roots)", cfg: Etcd{TLS: TLSFiles{Cert: pki.ClientCert, Key: pki.ClientKey}, User: "root", Password: "root-pw"}, key: "/x", wantErr: "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Endpoints = []string{ep}
			tt.cfg.DialTimeout = 2 * time.Second
			err := etcdPut(tt.cfg, tt.key)
			if err != nil {
				// What a command reports at startup besides gRPC's timeout.
				err = errors.Join(err, tt.cfg.Probe())
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("put %s: %v", tt.key, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(strings.ToLower(err.Error()), tt.wantErr)):
				t.Fatalf("put %s: %v, want an error containing %q", tt.key, err, tt.wantErr)
			case err != nil:
				t.Logf("refused: %v", err)
			}
		})
	}
}

// etcdPut connects with cfg and writes key, within a few seconds.
func etcdPut(cfg Etcd, key string) error {
	cli, err := cfg.Client()
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, key, "v"); err != nil {
		if errors.Is(err, rpctypes.ErrPermissionDenied) {
			return errors.New("permission denied")
		}
		return err
	}
	resp, err := cli.Get(ctx, key)
	if err != nil || len(resp.Kvs) != 1 {
		return errors.Join(errors.New("read back"), err)
	}
	return nil
}

func TestEtcdValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Etcd
		ok   bool
	}{
		{"plain", Etcd{Endpoints: []string{"http://127.0.0.1:2379"}}, true},
		{"https, system roots", Etcd{Endpoints: []string{"https://etcd:2379"}}, true},
		{"https with CA and cert", Etcd{Endpoints: []string{"https://etcd:2379"}, TLS: TLSFiles{CA: "ca", Cert: "c", Key: "k"}}, true},
		{"user and password", Etcd{Endpoints: []string{"http://e:1"}, User: "u", Password: "s3cret-pw"}, true},
		{"no endpoint", Etcd{}, false},
		{"not a URL", Etcd{Endpoints: []string{"127.0.0.1:2379"}}, false},
		{"mixed schemes", Etcd{Endpoints: []string{"http://a:1", "https://b:1"}}, false},
		{"TLS files with http", Etcd{Endpoints: []string{"http://a:1"}, TLS: TLSFiles{CA: "ca"}}, false},
		{"cert without key", Etcd{Endpoints: []string{"https://a:1"}, TLS: TLSFiles{Cert: "c"}}, false},
		{"user without password", Etcd{Endpoints: []string{"http://a:1"}, User: "u"}, false},
		{"password without user", Etcd{Endpoints: []string{"http://a:1"}, Password: "s3cret-pw"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, ErrConfig)) {
				t.Errorf("Validate() = %v, want ok %v", err, tt.ok)
			}
			if err != nil && tt.cfg.Password != "" && strings.Contains(err.Error(), tt.cfg.Password) {
				t.Errorf("error %q quotes the password", err)
			}
		})
	}
}
