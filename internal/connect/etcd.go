package connect

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// reconnectBackoff is how gRPC spaces its attempts to connect again to an
// etcd it lost. Its default grows to two minutes (1 s × 1.6 per attempt):
// after a ten-second outage the next attempt could come seconds after etcd
// is back, and a member that lost its lease meanwhile would wait that long
// to join again. One second at most keeps the cost of an outage to the
// outage.
var reconnectBackoff = backoff.Config{
	BaseDelay:  250 * time.Millisecond,
	Multiplier: 1.6,
	Jitter:     0.2,
	MaxDelay:   time.Second,
}

// Etcd is how to reach etcd.
type Etcd struct {
	// Endpoints are client URLs. https:// ones use TLS, with the system's
	// roots unless TLS.CA is set; all must have the same scheme.
	Endpoints []string
	// TLS names the CA and the client certificate (for servers started
	// with --client-cert-auth). Naming any needs https:// endpoints.
	TLS TLSFiles
	// User and Password authenticate to a cluster with auth enabled.
	// Without them, a client certificate's common name is the user.
	User, Password string
	// DialTimeout bounds connecting. Zero means 5 s.
	DialTimeout time.Duration
}

// Validate reports settings that cannot work together.
func (e Etcd) Validate() error {
	if len(e.Endpoints) == 0 {
		return fmt.Errorf("%w: no etcd endpoint", ErrConfig)
	}
	secure := 0
	for _, ep := range e.Endpoints {
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%w: etcd endpoint %q is not an http:// or https:// URL", ErrConfig, ep)
		}
		if u.Scheme == "https" {
			secure++
		}
	}
	switch {
	case secure != 0 && secure != len(e.Endpoints):
		return fmt.Errorf("%w: etcd endpoints mix http:// and https://", ErrConfig)
	case secure == 0 && e.TLS.Any():
		return fmt.Errorf("%w: etcd TLS files given but the endpoints are http://; use https:// URLs", ErrConfig)
	case e.User == "" && e.Password != "":
		return fmt.Errorf("%w: etcd password without a user", ErrConfig)
	case e.User != "" && e.Password == "":
		return fmt.Errorf("%w: etcd user %q without a password", ErrConfig, e.User)
	case strings.ContainsAny(e.User, ":"):
		return fmt.Errorf("%w: etcd user name has a colon", ErrConfig)
	}
	return e.TLS.Validate()
}

// ClientConfig is the clientv3 configuration for e. The client's own logs
// are off: Herald reports what matters through slog.
func (e Etcd) ClientConfig() (clientv3.Config, error) {
	if err := e.Validate(); err != nil {
		return clientv3.Config{}, err
	}
	cfg := clientv3.Config{
		Endpoints:   e.Endpoints,
		DialTimeout: e.DialTimeout,
		Username:    e.User,
		Password:    e.Password,
		Logger:      zap.NewNop(),
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	cfg.DialOptions = []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
		Backoff: reconnectBackoff, MinConnectTimeout: cfg.DialTimeout,
	})}
	if strings.HasPrefix(e.Endpoints[0], "https://") {
		tc, err := e.TLS.Config()
		if err != nil {
			return clientv3.Config{}, err
		}
		cfg.TLS = tc
	}
	return cfg, nil
}

// Client connects to etcd. With a user it authenticates at once, so wrong
// credentials are reported here rather than at the first request. The
// caller must Close it.
func (e Etcd) Client() (*clientv3.Client, error) {
	cfg, err := e.ClientConfig()
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		// gRPC reports a refused certificate as a timeout; a handshake of
		// our own says what went wrong.
		if cfg.TLS != nil {
			if herr := probeTLS(e.Endpoints[0], cfg.TLS, cfg.DialTimeout); herr != nil {
				err = fmt.Errorf("%w (TLS: %w)", err, herr)
			}
		}
		return nil, fmt.Errorf("connect: etcd %s: %w", strings.Join(e.Endpoints, ","), err)
	}
	return cli, nil
}

// Probe checks that etcd's first endpoint accepts this client's TLS
// settings, for a clear error at startup: gRPC itself reports a refused or
// untrusted certificate only as a timeout. It returns nil for plain
// endpoints.
func (e Etcd) Probe() error {
	cfg, err := e.ClientConfig()
	if err != nil || cfg.TLS == nil {
		return err
	}
	if err := probeTLS(e.Endpoints[0], cfg.TLS, cfg.DialTimeout); err != nil {
		return fmt.Errorf("connect: etcd %s: TLS: %w", e.Endpoints[0], err)
	}
	return nil
}

// probeTLS completes a handshake with endpoint and waits a moment for the
// server's verdict on the client certificate, which TLS 1.3 delivers only
// after the client's side of the handshake is done.
func probeTLS(endpoint string, tc *tls.Config, timeout time.Duration) error {
	u, err := url.Parse(endpoint)
	if err != nil {
		return err
	}
	tc = tc.Clone()
	if tc.ServerName == "" {
		tc.ServerName = u.Hostname()
	}
	// etcd serves gRPC over HTTP/2 on this port.
	tc.NextProtos = []string{"h2"}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", u.Host, tc)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	var b [1]byte
	if _, err := conn.Read(b[:]); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return nil // the server waits for the client's first frame: accepted
		}
		return err
	}
	return nil
}
