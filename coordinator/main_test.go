package coordinator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/herald-dev/herald/internal/devstack"
	"github.com/herald-dev/herald/internal/faultproxy"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// cluster is one embedded etcd and the members a test runs against it.
type cluster struct {
	t      testing.TB
	etcd   *devstack.Etcd
	admin  *clientv3.Client // the test's own client, never severed
	prefix string

	mu      sync.Mutex
	members map[string]*member
}

func newCluster(t testing.TB) *cluster {
	t.Helper()
	return newClusterWith(t, devstack.EtcdConfig{})
}

// newClusterWith is newCluster with its etcd configured by ec.
func newClusterWith(t testing.TB, ec devstack.EtcdConfig) *cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := devstack.StartEtcd(ctx, ec)
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, etcd: e, prefix: "/herald", members: map[string]*member{}}
	c.admin = c.client(e.Endpoint())
	t.Cleanup(func() {
		c.mu.Lock()
		ms := make([]*member, 0, len(c.members))
		for _, m := range c.members {
			ms = append(ms, m)
		}
		c.mu.Unlock()
		for _, m := range ms {
			m.kill()
		}
		c.admin.Close()
		if err := e.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// client returns a new etcd client of endpoint. Keepalive pings make a
// severed connection show quickly.
func (c *cluster) client(endpoint string) *clientv3.Client {
	c.t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            []string{endpoint},
		DialTimeout:          2 * time.Second,
		DialKeepAliveTime:    time.Second,
		DialKeepAliveTimeout: time.Second,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		c.t.Fatal(err)
	}
	return cli
}

// testLogger writes coordinator logs to the test log when -v is on and
// HERALD_TEST_LOG is set; otherwise it discards them.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("HERALD_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

// member is one coordinator with its own client and, optionally, a proxy in
// between, driven by a test driver.
type member struct {
	id     string
	cli    *clientv3.Client
	proxy  *faultproxy.Proxy
	coord  *Coordinator
	driver *driver
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

type memberOpts struct {
	ttl      time.Duration
	proxied  bool
	capacity float64
	reg      prometheus.Registerer
	// archiveAfter, retention and reporter are the Config fields; zero
	// values are the defaults.
	archiveAfter time.Duration
	retention    time.Duration
	reporter     Reporter
}

// start runs a coordinator named id and a driver over s feeding ledger.
func (c *cluster) start(id string, o memberOpts, dc driverConfig) *member {
	c.t.Helper()
	m := &member{id: id, done: make(chan struct{})}
	endpoint := c.etcd.Endpoint()
	if o.proxied {
		p, err := faultproxy.New(endpoint)
		if err != nil {
			c.t.Fatal(err)
		}
		m.proxy = p
		endpoint = p.Endpoint()
	}
	m.cli = c.client(endpoint)
	coord, err := New(Config{Prefix: c.prefix, MemberID: id, LeaseTTL: o.ttl, Capacity: o.capacity,
		ReconcileInterval: 200 * time.Millisecond, ArchiveAfter: o.archiveAfter, Retention: o.retention,
		Reporter: o.reporter}, m.cli, testLogger(c.t), o.reg)
	if err != nil {
		c.t.Fatal(err)
	}
	m.coord = coord
	m.driver = newDriver(coord, dc)
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() {
		defer close(m.done)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.driver.run()
		}()
		if err := coord.Run(ctx); err != nil {
			c.t.Errorf("%s: run: %v", id, err)
		}
		wg.Wait()
	}()
	c.mu.Lock()
	c.members[id] = m
	c.mu.Unlock()
	return m
}

// stop is a graceful leave: Run's context ends, the driver hands back its
// units, Run returns.
func (m *member) stop() {
	m.once.Do(func() {
		m.cancel()
		<-m.done
		m.cli.Close()
		if m.proxy != nil {
			m.proxy.Close()
		}
	})
}

// kill is kill -9: the driver stops at once without a word to etcd, the
// client closes without revoking the lease, and the lease expires on its
// own.
func (m *member) kill() {
	m.once.Do(func() {
		m.driver.kill()
		m.cli.Close()
		m.cancel()
		<-m.done
		if m.proxy != nil {
			m.proxy.Close()
		}
	})
}

// register registers a broadcast and fails the test on error.
func (c *cluster) register(id string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := NewRegistry(c.admin, c.prefix).Register(ctx, Broadcast{ID: id, Spec: []byte(`{"id":"` + id + `"}`)}); err != nil {
		c.t.Fatal(err)
	}
}

// waitState waits until broadcast id is in state want.
func (c *cluster) waitState(id string, want State, limit time.Duration) {
	c.t.Helper()
	reg := NewRegistry(c.admin, c.prefix)
	eventually(c.t, limit, fmt.Sprintf("broadcast %s %s", id, want), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st, err := reg.Status(ctx, id)
		return err == nil && st.State == want
	})
}

// progress reads every slot's progress record of broadcast id with its
// mod revision.
func (c *cluster) progress(id string) map[int]progressAt {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	k := keys{prefix: c.prefix}
	resp, err := c.admin.Get(ctx, k.progresses(id), clientv3.WithPrefix())
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[int]progressAt{}
	for _, kv := range resp.Kvs {
		var u progressAt
		if u.rec, err = decodeProgress(kv.Value); err != nil {
			c.t.Fatal(err)
		}
		u.modRev = kv.ModRevision
		_, _, _, slot := k.parse(string(kv.Key))
		out[slot] = u
	}
	return out
}

type progressAt struct {
	rec    progressRecord
	modRev int64
}

// claimsOf reads the claims of broadcast id: slot -> holder.
func (c *cluster) claimsOf(id string) map[int]string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	k := keys{prefix: c.prefix}
	resp, err := c.admin.Get(ctx, k.claims(id), clientv3.WithPrefix())
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[int]string{}
	for _, kv := range resp.Kvs {
		_, _, _, slot := k.parse(string(kv.Key))
		out[slot] = string(kv.Value)
	}
	return out
}

// eventually polls cond every 20 ms until it holds or limit passes.
func eventually(t testing.TB, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var errTest = errors.New("test")
