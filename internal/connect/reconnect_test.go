package connect

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/devstack"
	"github.com/herald-dev/herald/internal/faultproxy"
)

// TestEtcdReconnectsSoonAfterAnOutage cuts a client off etcd for 6 s (its
// connections closed, new ones accepted and closed at once, which gRPC
// counts as failed attempts, since it waits for the server's preface) and
// measures how soon after etcd is reachable again a request goes through.
// With gRPC's default reconnect backoff (1 s growing by 1.6 each failed
// attempt) the attempt after a 6 s outage comes about 3.4 s after it
// ended; Herald's members must rejoin sooner than that, so the backoff is
// capped at a second.
func TestEtcdReconnectsSoonAfterAnOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("a 6 s outage")
	}
	srv, err := devstack.StartEtcd(context.Background(), devstack.EtcdConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	target := srv.Endpoint()
	if u, err := net.ResolveTCPAddr("tcp", trimScheme(target)); err == nil {
		target = u.String()
	}
	p, err := faultproxy.New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	cli, err := Etcd{Endpoints: []string{p.Endpoint()}}.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	get := func(d time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		_, err := cli.Get(ctx, "k")
		return err
	}
	if err := get(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	p.Cut()
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); {
		_ = get(500 * time.Millisecond) // failing attempts, as a member's renewals would be
	}
	p.Restore()
	back := time.Now()
	for get(time.Second) != nil {
		if time.Since(back) > 10*time.Second {
			t.Fatal("no request went through within 10 s of etcd being back")
		}
	}
	took := time.Since(back)
	t.Logf("a request went through %v after etcd was reachable again", took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("reconnected %v after the outage, want under 2 s", took)
	}
}

func trimScheme(ep string) string {
	for _, s := range []string{"http://", "https://"} {
		if len(ep) > len(s) && ep[:len(s)] == s {
			return ep[len(s):]
		}
	}
	return ep
}
