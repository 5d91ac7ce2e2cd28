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

// newPool builds the keep-alive connection pool shared by every Send of a
// Sender: HTTP/1.1 only, so each of the MaxInFlight senders holds one
// connection and the endpoint sees steady, reusable sockets rather than a
// few multiplexed ones.
func newPool(cfg Config) *http.Transport {
	connect := min(cfg.Timeout, connectTimeout)
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
		MaxIdleConnsPerHost: cfg.MaxInFlight,
		// A dial in progress and a connection the endpoint has just closed
		// both count against the cap; a little headroom keeps those moments
		// from queueing senders, while the cap still stops a runaway from
		// opening a socket per request.
		MaxConnsPerHost:        cfg.MaxInFlight + cfg.MaxInFlight/8 + 2,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: cfg.MaxResponseHeaderBytes,
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
