package main

import (
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
)

// tcpProxy relays TCP connections to one target, and can cut them: etcdout
// puts one between the workers and the embedded etcd, which runs in this
// process and so cannot be stopped on its own. Cut, it closes every
// connection and refuses new ones (accepts and closes them at once), as a
// stopped etcd host would answer; restored, it relays again and clients
// reconnect.
type tcpProxy struct {
	ln     net.Listener
	target string // host:port

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup // the accept loop and every pipe
}

// newTCPProxy listens on a free loopback port and relays to target, a
// host:port or an http:// URL.
func newTCPProxy(target string) (*tcpProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("loadtest: proxy: %w", err)
	}
	p := &tcpProxy{ln: ln, target: strings.TrimPrefix(target, "http://"), conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go func() { // owned by p: close ends the listener and waits
		defer p.wg.Done()
		p.serve()
	}()
	return p, nil
}

// endpoint is the proxy's URL, in the form the target was given.
func (p *tcpProxy) endpoint() string { return "http://" + p.ln.Addr().String() }

func (p *tcpProxy) serve() {
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
		if p.cut { // cut while dialling
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

// pipe copies src to dst until either fails, then closes both.
func (p *tcpProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src) // ends when either side closes: that is the point
	src.Close()
	dst.Close()
	p.mu.Lock()
	delete(p.conns, src)
	delete(p.conns, dst)
	p.mu.Unlock()
}

// setCut cuts (closes every connection, refuses new ones) or restores.
func (p *tcpProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for c := range p.conns {
			c.Close()
		}
	}
}

// close stops the proxy and waits for its goroutines.
func (p *tcpProxy) close() {
	p.ln.Close()
	p.setCut(true)
	p.wg.Wait()
}
