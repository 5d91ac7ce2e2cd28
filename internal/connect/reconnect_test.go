package connect

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/herald-dev/herald/internal/devstack"
)

// TestEtcdReconnectsSoonAfterAnOutage cuts a client off etcd for 6 s (its
// connections closed, new ones refused) and measures how soon after etcd
// is reachable again a request goes through. With gRPC's default
// reconnect backoff (1 s growing by 1.6 each failed attempt) the attempt
// after a 6 s outage comes about 3.4 s after it ended; Herald's members
// must rejoin sooner than that, so the backoff is capped at a second.
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
	p := newCutProxy(t, target)
	cli, err := Etcd{Endpoints: []string{"http://" + p.addr}}.Client()
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
	p.cut()
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); {
		_ = get(500 * time.Millisecond) // failing attempts, as a member's renewals would be
	}
	p.restore()
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

// cutProxy relays TCP connections to a target until cut, which closes
// them and refuses new ones until restore.
type cutProxy struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{t: t, addr: ln.Addr().String(), target: target}
	p.serve(ln)
	t.Cleanup(func() {
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); io.Copy(up, c); up.Close() }()
			go func() { defer p.wg.Done(); io.Copy(c, up); c.Close() }()
		}
	}()
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *cutProxy) restore() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.serve(ln)
}
