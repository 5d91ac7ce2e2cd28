package delivery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// ErrFenced is the transport error of an attempt that Config.Fence stopped
// before it was sent.
var ErrFenced = errors.New("delivery: fenced: not sending")

// ErrNotAllowed is the transport error of an attempt that Config.Allow
// refused before it was sent.
var ErrNotAllowed = errors.New("delivery: endpoint not allowed")

// connectTimeout caps dialing and the TLS handshake below the attempt
// timeout: an endpoint that cannot even accept a connection in this long is
// better retried on a fresh one.
const connectTimeout = 5 * time.Second

// Values of Config.HTTP2, the HTTP versions a Sender speaks (the spec's
// endpoint.http2).
const (
	// HTTP2Auto, the default (as is ""), is HTTP/2 when a TLS endpoint
	// offers it by ALPN and HTTP/1.1 otherwise; plain http:// is HTTP/1.1.
	HTTP2Auto = "auto"
	// HTTP2Off is HTTP/1.1 only.
	HTTP2Off = "off"
	// HTTP2H2C is HTTP/2 without TLS by prior knowledge (h2c) for http://
	// URLs, and HTTP/2 by ALPN for https:// ones; never HTTP/1.1.
	HTTP2H2C = "h2c"
)

// protocolMode indexes a Pool's transports, one per Config.HTTP2 value.
type protocolMode int

const (
	modeAuto protocolMode = iota
	modeOff
	modeH2C
	numModes
)

// modeOf maps a Config.HTTP2 value to its transport; Validate has refused
// any other.
func modeOf(http2 string) protocolMode {
	switch http2 {
	case HTTP2Off:
		return modeOff
	case HTTP2H2C:
		return modeH2C
	}
	return modeAuto
}

// Pool is a keep-alive connection pool that several Senders can share
// (Config.Pool), so that the connections a worker keeps open follow its
// own bound on sends in flight, not the sum of every broadcast's
// max_in_flight. It is safe for concurrent use.
//
// It holds one transport per protocol mode (Config.HTTP2), each made when
// a Sender first asks for it and each with the same bounds. Over HTTP/1.1
// a send holds a connection; over HTTP/2 sends are streams multiplexed on
// a few connections, the bound on connections stays the same, and how many
// streams share one is the endpoint's limit (its SETTINGS), beyond which
// another connection is opened.
type Pool struct {
	maxConns, maxIdle      int
	connect                time.Duration
	maxResponseHeaderBytes int64
	// tls, when set, is the TLS client config of every transport; nil
	// means Go's defaults (the system's roots). Tests set it to trust
	// their servers' certificates.
	tls *tls.Config

	// netHTTP, set by tests and benchmarks, sends everything through
	// net/http's transports, without the direct HTTP/1.1 path (h1.go).
	netHTTP bool

	mu sync.Mutex
	ts [numModes]*http.Transport
	h1 [numModes]*h1Transport
}

// NewPool returns a pool that keeps at most maxConns idle connections over
// all hosts, and at most a little more than maxConns open to any one host
// (dials in progress and connections being closed count too), in each
// protocol mode its Senders use.
// maxResponseHeaderBytes bounds an answer's headers (0: 64 KiB).
func NewPool(maxConns int, maxResponseHeaderBytes int64) *Pool {
	if maxConns <= 0 {
		maxConns = DefaultMaxInFlight
	}
	if maxResponseHeaderBytes <= 0 {
		maxResponseHeaderBytes = DefaultMaxResponseHeaderBytes
	}
	return &Pool{maxConns: maxConns, maxIdle: maxConns, connect: connectTimeout, maxResponseHeaderBytes: maxResponseHeaderBytes}
}

// CloseIdle closes the pool's idle connections in every mode; connections
// in use are kept, and new ones are opened as sends need them.
func (p *Pool) CloseIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.ts {
		if t != nil {
			t.CloseIdleConnections()
		}
	}
	for _, t := range p.h1 {
		if t != nil {
			t.CloseIdleConnections()
		}
	}
}

// roundTripper is what a Sender in mode sends through: for HTTP/1.1 on
// plain http:// (modes auto and off), connections the direct path owns
// (h1.go), with net/http's transport for the rest; in h2c, net/http's.
func (p *Pool) roundTripper(mode protocolMode) http.RoundTripper {
	t := p.transport(mode)
	if mode == modeH2C || p.netHTTP {
		return t
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.h1[mode] == nil {
		p.h1[mode] = newH1Transport(t, p.maxConns, p.maxResponseHeaderBytes)
	}
	return p.h1[mode]
}

// transport returns the pool's transport for mode, made on first use.
func (p *Pool) transport(mode protocolMode) *http.Transport {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ts[mode] == nil {
		t := newTransport(mode, p.maxConns, p.connect, p.maxResponseHeaderBytes)
		if p.maxIdle > 0 {
			t.MaxIdleConns = p.maxIdle
		}
		if p.tls != nil {
			t.TLSClientConfig = p.tls.Clone()
		}
		p.ts[mode] = t
	}
	return p.ts[mode]
}

// newPool builds a Sender's own pool, for its MaxInFlight senders.
func newPool(cfg Config) *Pool {
	return &Pool{maxConns: cfg.MaxInFlight, connect: min(cfg.Timeout, connectTimeout), maxResponseHeaderBytes: cfg.MaxResponseHeaderBytes}
}

// newTransport builds a keep-alive connection pool for maxConns senders
// at once. In modeOff it is HTTP/1.1 only, so each sender holds one
// connection and the endpoint sees steady, reusable sockets rather than a
// few multiplexed ones; modeAuto adds HTTP/2 where TLS negotiates it, and
// modeH2C speaks HTTP/2 alone, without TLS on http:// URLs.
func newTransport(mode protocolMode, maxConns int, connect time.Duration, maxResponseHeaderBytes int64) *http.Transport {
	var protocols http.Protocols
	switch mode {
	case modeOff:
		protocols.SetHTTP1(true)
	case modeAuto:
		protocols.SetHTTP1(true)
		protocols.SetHTTP2(true)
	case modeH2C:
		protocols.SetHTTP2(true)
		protocols.SetUnencryptedHTTP2(true)
	}
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   connect,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSHandshakeTimeout: connect,
		Protocols:           &protocols,
		MaxIdleConnsPerHost: maxConns,
		// A dial in progress and a connection the endpoint has just closed
		// both count against the cap; a little headroom keeps those moments
		// from queueing senders, while the cap still stops a runaway from
		// opening a socket per request. Over HTTP/2 it bounds connections,
		// not requests.
		MaxConnsPerHost:        maxConns + maxConns/8 + 2,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
		// Response bodies are discarded; asking for gzip would only make
		// the endpoint compress them.
		DisableCompression: true,
	}
}

// attemptTransport is the RoundTripper every attempt of a Sender goes
// through (Send and SendBatch call it directly: no http.Client, whose
// redirect following and header copying an attempt does not need). It
// checks the allow-list and the fence right before the request goes out,
// and bounds each attempt with a deadline of its own, a context deadline
// released when the response body is closed. It has no
// CloseIdleConnections: one Sender's trouble must not drop the keep-alive
// connections of the pool it shares with others.
type attemptTransport struct {
	pool    http.RoundTripper
	timeout time.Duration
	fence   func() error
	allow   func(*url.URL) error
}

func (t attemptTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.admit(req.URL); err != nil {
		return nil, err
	}
	pool := t.pool
	if h1, ok := pool.(*h1Transport); ok {
		if h1.direct(req) {
			// The attempt's timeout is the connection's deadline; the
			// direct path may send the request once more on a new
			// connection, the same checks first.
			return h1.roundTrip(req, t.admit, time.Now().Add(t.timeout))
		}
		pool = h1.next
	}
	ctx, cancel := context.WithTimeout(req.Context(), t.timeout)
	resp, err := pool.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.Body == http.NoBody {
		cancel()
		return resp, nil
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// admit checks a request about to go out, every attempt: whatever built
// it, nothing goes to a URL the worker may not send to, and nothing goes
// once the fence is closed.
func (t attemptTransport) admit(u *url.URL) error {
	if t.allow != nil {
		if err := t.allow(u); err != nil {
			return fmt.Errorf("%w: %w", ErrNotAllowed, err)
		}
	}
	if t.fence != nil {
		if err := t.fence(); err != nil {
			return fmt.Errorf("%w: %w", ErrFenced, err)
		}
	}
	return nil
}

// cancelOnClose ends an attempt's deadline once its body is done with, so
// the timer does not outlive the attempt.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
