package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
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

// Pool is a keep-alive connection pool that several Senders can share
// (Config.Pool), so that the connections a worker keeps open follow its
// own bound on sends in flight, not the sum of every broadcast's
// max_in_flight. It is safe for concurrent use.
type Pool struct {
	t *http.Transport
}

// NewPool returns a pool that keeps at most maxConns idle connections over
// all hosts, and at most a little more than maxConns open to any one host
// (dials in progress and connections being closed count too).
// maxResponseHeaderBytes bounds an answer's headers (0: 64 KiB).
func NewPool(maxConns int, maxResponseHeaderBytes int64) *Pool {
	if maxConns <= 0 {
		maxConns = DefaultMaxInFlight
	}
	if maxResponseHeaderBytes <= 0 {
		maxResponseHeaderBytes = DefaultMaxResponseHeaderBytes
	}
	t := newTransport(maxConns, connectTimeout, maxResponseHeaderBytes)
	t.MaxIdleConns = maxConns
	return &Pool{t: t}
}

// CloseIdle closes the pool's idle connections; connections in use are
// kept, and new ones are opened as sends need them.
func (p *Pool) CloseIdle() { p.t.CloseIdleConnections() }

// newPool builds a Sender's own pool, for its MaxInFlight senders.
func newPool(cfg Config) *Pool {
	return &Pool{t: newTransport(cfg.MaxInFlight, min(cfg.Timeout, connectTimeout), cfg.MaxResponseHeaderBytes)}
}

// newTransport builds a keep-alive connection pool for maxConns senders
// at once: HTTP/1.1 only, so each sender holds one connection and the
// endpoint sees steady, reusable sockets rather than a few multiplexed
// ones.
func newTransport(maxConns int, connect time.Duration, maxResponseHeaderBytes int64) *http.Transport {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
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
		// opening a socket per request.
		MaxConnsPerHost:        maxConns + maxConns/8 + 2,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
		// Response bodies are discarded; asking for gzip would only make
		// the endpoint compress them.
		DisableCompression: true,
	}
}

// attemptTransport is the RoundTripper under the Sender's http.Client. It
// bounds each attempt with its own deadline and does not pass
// CloseIdleConnections on to the pool.
//
// Both are deliberate. retryablehttp calls http.Client.CloseIdleConnections
// every time one request gives up; on a pool shared by MaxInFlight senders
// that would drop everyone's keep-alive connections whenever one message
// failed. http.Client forwards that call only to transports that have the
// method, and this one does not. Being a transport http.Client does not
// know, it would also make Client.Timeout cost a goroutine and a timer per
// request, so the timeout is a context deadline here instead, released when
// the response body is closed.
type attemptTransport struct {
	pool    *http.Transport
	timeout time.Duration
	fence   func() error
	allow   func(*url.URL) error
}

func (t attemptTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// Checked on the request about to be dialed, every attempt: whatever
	// built it, nothing goes to a URL the worker may not send to.
	if t.allow != nil {
		if err := t.allow(req.URL); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNotAllowed, err)
		}
	}
	if t.fence != nil {
		if err := t.fence(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrFenced, err)
		}
	}
	ctx, cancel := context.WithTimeout(req.Context(), t.timeout)
	resp, err := t.pool.RoundTrip(req.WithContext(ctx))
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
