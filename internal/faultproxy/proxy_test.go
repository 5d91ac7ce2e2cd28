package faultproxy

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// quiet is how long a test waits to be sure no bytes come.
const quiet = 300 * time.Millisecond

// echo starts a server on loopback that writes back what it reads, and
// stops it, its connections and its goroutines when the test ends.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func start(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends msg and reads as many bytes back within d.
func roundTrip(c net.Conn, msg string, d time.Duration) (string, error) {
	if err := c.SetDeadline(time.Now().Add(d)); err != nil {
		return "", err
	}
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, len(msg))
	n, err := io.ReadFull(c, buf)
	return string(buf[:n]), err
}

// relays fails the test unless msg goes through c and back.
func relays(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	got, err := roundTrip(c, msg, 5*time.Second)
	if err != nil || got != msg {
		t.Fatalf("round trip of %q: got %q, %v", msg, got, err)
	}
}

// silent fails the test unless c stays open and nothing comes back.
func silent(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	got, err := roundTrip(c, msg, quiet)
	if !errors.Is(err, os.ErrDeadlineExceeded) || got != "" {
		t.Fatalf("round trip of %q: got %q, %v; want silence on an open connection", msg, got, err)
	}
}

// closed fails the test unless c has been closed by the proxy.
func closed(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = c.Write([]byte("x")) // may fail or may be accepted by the kernel
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after the proxy closed the connection: %v, want end of stream or reset", err)
	}
}

// turnedAway fails the test unless a new connection fails: refused, or
// accepted and closed.
func turnedAway(t *testing.T, p *Proxy) {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		return
	}
	defer c.Close()
	if _, err := roundTrip(c, "new", 5*time.Second); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a new connection: %v, want it closed", err)
	}
}

func TestNew(t *testing.T) {
	target := echo(t)
	tests := []struct {
		name, target string
		ok           bool
	}{
		{"host:port", target, true},
		{"http URL", "http://" + target, true},
		{"no port", "127.0.0.1", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.target)
			if (err == nil) != tt.ok {
				t.Fatalf("New(%q) = %v, want ok %v", tt.target, err, tt.ok)
			}
			if err != nil {
				if !strings.HasPrefix(err.Error(), "faultproxy: ") {
					t.Errorf("error %q lacks the package prefix", err)
				}
				return
			}
			defer p.Close()
			if got := p.Endpoint(); got != "http://"+p.Addr() {
				t.Errorf("Endpoint() = %q, want http:// and Addr() %q", got, p.Addr())
			}
			relays(t, dial(t, p), "ping")
		})
	}
}

func TestProxyRelaysBothWays(t *testing.T) {
	p := start(t, echo(t))
	a, b := dial(t, p), dial(t, p)
	relays(t, a, "one")
	relays(t, b, "two")
	big := strings.Repeat("0123456789", 10_000) // more than one read's buffer
	relays(t, a, big)
}

func TestProxyBlackholeKeepsConnectionsOpenAndSilent(t *testing.T) {
	p := start(t, echo(t))
	c := dial(t, p)
	relays(t, c, "before")
	p.Blackhole()
	silent(t, c, "during")
	during := dial(t, p) // accepted, and just as silent
	silent(t, during, "new")
	p.Restore()
	closed(t, c)
	closed(t, during)
	relays(t, dial(t, p), "after")
}

func TestProxyCutClosesConnectionsAndTurnsNewOnesAway(t *testing.T) {
	p := start(t, echo(t))
	c := dial(t, p)
	relays(t, c, "before")
	p.Cut()
	closed(t, c)
	turnedAway(t, p)
	p.Restore()
	relays(t, dial(t, p), "after")
}

func TestProxyFreezeHoldsBytesUntilThaw(t *testing.T) {
	p := start(t, echo(t))
	c := dial(t, p)
	relays(t, c, "before")
	p.Freeze()
	silent(t, c, "held")
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	p.Thaw()
	buf := make([]byte, len("held"))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "held" {
		t.Fatalf("after the thaw: got %q, %v; want what was held", buf, err)
	}
	relays(t, c, "after")
}

func TestProxyCloseEndsEverything(t *testing.T) {
	tests := []struct {
		name  string
		fault func(*Proxy)
		held  bool // bytes sent after the fault, which a pipe holds
	}{
		{"relaying", func(*Proxy) {}, false},
		{"blackholed", (*Proxy).Blackhole, false},
		{"cut", (*Proxy).Cut, false},
		{"frozen", (*Proxy).Freeze, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := start(t, echo(t))
			c := dial(t, p)
			relays(t, c, "before")
			tt.fault(p)
			if tt.held {
				_, _ = c.Write([]byte("held"))
				time.Sleep(50 * time.Millisecond) // for the pipe to read it and wait
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				p.Close()
			}()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Close did not return")
			}
			closed(t, c)
			if c2, err := net.Dial("tcp", p.Addr()); err == nil {
				c2.Close()
				t.Error("a closed proxy accepted a connection")
			}
			p.Close() // again: harmless
		})
	}
}
