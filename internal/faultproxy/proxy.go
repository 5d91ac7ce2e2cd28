// Package faultproxy provides a TCP relay on loopback that injects network
// faults between a client and one server: a blackhole (connections stay
// open and bytes vanish, as in a network partition), a cut (connections
// close and new ones are turned away, as when the server's host is down)
// and a freeze (bytes are held until thawed, as when the server process is
// stopped). Tests and the load test put one between Herald and etcd.
//
// It does not add latency, limit bandwidth or lose some bytes and not
// others, and it relays plain TCP only: it knows nothing of TLS or HTTP.
package faultproxy

import (
	"fmt"
	"net"
	"strings"
	"sync"
)

// Proxy relays every connection made to its loopback port to the target.
// Its methods are safe for concurrent use. A Proxy owns the goroutine that
// accepts and two per relayed connection; Close ends them and waits.
type Proxy struct {
	ln     net.Listener
	target string // host:port

	mu         sync.Mutex
	thawed     *sync.Cond // broadcast when frozen clears or the proxy closes
	blackholed bool
	cut        bool
	frozen     bool
	closed     bool
	conns      map[net.Conn]struct{}
	wg         sync.WaitGroup // the accept loop and every pipe
}

// New listens on a free loopback port and relays to target, a host:port
// or an http:// URL naming one (an etcd endpoint, say).
func New(target string) (*Proxy, error) {
	target = strings.TrimPrefix(target, "http://")
	if _, _, err := net.SplitHostPort(target); err != nil {
		return nil, fmt.Errorf("faultproxy: target %q: %w", target, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	p.thawed = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go func() { // owned by p: Close closes the listener and waits
		defer p.wg.Done()
		p.serve()
	}()
	return p, nil
}

// Addr is the host:port the proxy listens on.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Endpoint is the proxy's address as an http:// URL, the form etcd
// clients take.
func (p *Proxy) Endpoint() string { return "http://" + p.Addr() }

func (p *Proxy) serve() {
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.mu.Lock()
		cut := p.cut
		p.mu.Unlock()
		if cut {
			down.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			down.Close()
			continue
		}
		p.mu.Lock()
		if p.cut || p.closed { // while dialling
			p.mu.Unlock()
			up.Close()
			down.Close()
			continue
		}
		p.conns[down], p.conns[up] = struct{}{}, struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(up, down)
		go p.pipe(down, up)
	}
}

// pipe copies src to dst, as the faults allow, until either side fails;
// then it closes both.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	defer p.forget(src, dst)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		// A freeze holds what was read, an end of stream included, until
		// the thaw.
		pass := p.pass()
		if n > 0 && pass {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// pass waits out a freeze and reports whether bytes may go on.
func (p *Proxy) pass() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.frozen && !p.closed {
		p.thawed.Wait()
	}
	return !p.blackholed && !p.closed
}

func (p *Proxy) forget(a, b net.Conn) {
	a.Close()
	b.Close()
	p.mu.Lock()
	delete(p.conns, a)
	delete(p.conns, b)
	p.mu.Unlock()
}

// closeConns closes every relayed connection; p.mu must be held. The pipes
// see their reads fail and end.
func (p *Proxy) closeConns() {
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// Blackhole drops every byte both ways from now until Restore. Open
// connections stay open and new ones are accepted, so a client learns of
// the fault only by silence, as in a network partition.
func (p *Proxy) Blackhole() {
	p.mu.Lock()
	p.blackholed = true
	p.mu.Unlock()
}

// Cut closes every open connection and, until Restore, accepts each new
// one only to close it at once, as a host whose server is down answers.
// The port stays the proxy's, so clients find it again on Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.cut = true
	p.closeConns()
	p.mu.Unlock()
}

// Restore ends a blackhole or a cut: it closes every open connection
// (those that lost bytes are corrupt streams) and relays again, so clients
// reconnect. It does not thaw.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.closeConns()
	p.blackholed, p.cut = false, false
	p.mu.Unlock()
}

// Freeze holds every byte both ways, without closing anything, until
// Thaw: requests sent meanwhile are answered late, as by a server process
// that was stopped (SIGSTOP) and continued.
func (p *Proxy) Freeze() {
	p.mu.Lock()
	p.frozen = true
	p.mu.Unlock()
}

// Thaw delivers what Freeze held and relays again.
func (p *Proxy) Thaw() {
	p.mu.Lock()
	p.frozen = false
	p.thawed.Broadcast()
	p.mu.Unlock()
}

// Close stops the proxy: it closes the listener and every connection and
// waits for its goroutines. Closing twice is harmless.
func (p *Proxy) Close() {
	p.ln.Close()
	p.mu.Lock()
	p.closed = true
	p.closeConns()
	p.thawed.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
}
