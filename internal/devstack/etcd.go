package devstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// EtcdConfig configures an embedded etcd server.
type EtcdConfig struct {
	// ClientAddr is the host:port clients connect to. Empty means
	// 127.0.0.1 with a free port.
	ClientAddr string
	// Dir holds the data. Empty means a new temporary directory, removed by
	// Close.
	Dir string
	// StartTimeout bounds how long the server may take to become ready.
	// Zero means 10 seconds.
	StartTimeout time.Duration
	// AutoCompaction is the retention of etcd's periodic auto-compaction
	// (--auto-compaction-mode=periodic --auto-compaction-retention):
	// history older than this is compacted, about every this long, so the
	// space of deleted and overwritten keys is reused and the database
	// stays as large as what is live. Zero means 1 minute; negative turns
	// compaction off.
	AutoCompaction time.Duration
}

// DefaultAutoCompaction is EtcdConfig.AutoCompaction's zero value.
const DefaultAutoCompaction = time.Minute

// Etcd is a running single-node etcd server on loopback.
type Etcd struct {
	srv     *embed.Etcd
	dir     string
	ownsDir bool
	client  string
}

// StartEtcd starts an etcd server and waits until it serves clients. The
// server logs only errors. The caller must Close it.
func StartEtcd(ctx context.Context, cfg EtcdConfig) (*Etcd, error) {
	return startEtcd(ctx, cfg, nil)
}

// startEtcd starts the single fast node StartEtcd and StartSecureEtcd share;
// with tls, clients are served over TLS.
func startEtcd(ctx context.Context, cfg EtcdConfig, tls *transport.TLSInfo) (*Etcd, error) {
	if cfg.ClientAddr == "" {
		cfg.ClientAddr = "127.0.0.1:0"
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 10 * time.Second
	}
	if cfg.AutoCompaction == 0 {
		cfg.AutoCompaction = DefaultAutoCompaction
	}
	e := &Etcd{dir: cfg.Dir}
	if e.dir == "" {
		dir, err := os.MkdirTemp("", "herald-etcd-")
		if err != nil {
			return nil, fmt.Errorf("devstack: etcd data dir: %w", err)
		}
		e.dir, e.ownsDir = dir, true
	}
	// The peer port is bound by us and handed over, so InitialCluster can
	// name it before the server starts.
	peerAddr, err := freeAddr()
	if err != nil {
		e.removeDir()
		return nil, err
	}
	ec := embed.NewConfig()
	ec.Name = "herald-dev"
	ec.Dir = e.dir
	ec.LogLevel = "error"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	ec.UnsafeNoFsync = true // throw-away data: durability is not the point here
	// One node elects itself: short ticks make that ~50 ms instead of
	// ~600 ms, and lower etcd's lease TTL floor (1.5 election timeouts,
	// rounded up to whole seconds) from 2 s to 1 s, so tests get the TTL
	// they ask for.
	ec.TickMs, ec.ElectionMs = 10, 100
	// bcrypt's minimum cost: password checks with auth on take microseconds,
	// not the ~100 ms (far more under the race detector) of the default,
	// which a throw-away server does not need and which outlives its Close.
	ec.BcryptCost = 4
	if cfg.AutoCompaction > 0 {
		ec.AutoCompactionMode = embed.CompactorModePeriodic
		ec.AutoCompactionRetention = cfg.AutoCompaction.String()
	}
	scheme := "http"
	if tls != nil {
		scheme = "https"
		ec.ClientTLSInfo = *tls
	}
	cu := url.URL{Scheme: scheme, Host: cfg.ClientAddr}
	pu := url.URL{Scheme: "http", Host: peerAddr}
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	ec.InitialCluster = ec.Name + "=" + pu.String()

	srv, err := embed.StartEtcd(ec)
	if err != nil {
		e.removeDir()
		return nil, fmt.Errorf("devstack: start etcd: %w", err)
	}
	e.srv = srv
	timer := time.NewTimer(cfg.StartTimeout)
	defer timer.Stop()
	select {
	case <-srv.Server.ReadyNotify():
	case err := <-srv.Err():
		e.Close()
		return nil, fmt.Errorf("devstack: etcd failed while starting: %w", err)
	case <-timer.C:
		e.Close()
		return nil, errors.New("devstack: etcd did not become ready in time")
	case <-ctx.Done():
		e.Close()
		return nil, fmt.Errorf("devstack: start etcd: %w", ctx.Err())
	}
	e.client = scheme + "://" + srv.Clients[0].Addr().String()
	return e, nil
}

// Endpoint is the client URL, such as http://127.0.0.1:2379.
func (e *Etcd) Endpoint() string { return e.client }

// Close stops the server and removes a data directory it created.
func (e *Etcd) Close() error {
	if e.srv != nil {
		e.srv.Close()
		<-e.srv.Server.StopNotify()
	}
	return e.removeDir()
}

func (e *Etcd) removeDir() error {
	if !e.ownsDir {
		return nil
	}
	if err := os.RemoveAll(e.dir); err != nil {
		return fmt.Errorf("devstack: remove etcd data dir: %w", err)
	}
	return nil
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("devstack: find a free port: %w", err)
	}
	addr := l.Addr().String()
	return addr, l.Close()
}
