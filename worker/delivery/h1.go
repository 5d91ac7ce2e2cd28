package delivery

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"
)

// h1Transport sends plain http:// requests over HTTP/1.1 on keep-alive
// connections it owns, one request at a time on each, in the goroutine of
// the caller: it writes the request and reads the answer itself. net/http's
// Transport gives each connection a reading and a writing goroutine and
// hands every request and answer between them and the caller over
// channels, takes the connection from its idle pool and back under a lock
// and makes a cancel context per request; on this path that was a fifth
// of a worker's CPU (docs/PERFORMANCE.md, "Where a worker's CPU goes").
// Everything else goes to next: TLS (where HTTP/2 may be negotiated),
// h2c, requests a proxy from the environment must carry, and anything but
// a request with a known length.
//
// Its bounds are net/http's: at most maxOpen connections open to a host
// (a request waits for one beyond that), at most maxIdle of them idle,
// closed after idleTimeout; an answer's headers at most maxHeaderBytes
// (an error that says "response headers exceeded", as net/http's does);
// dialing bounded by the dialer's timeout; each exchange bounded by the
// request context's deadline and ended when it is cancelled. A connection
// is kept only when its answer was read to the end and did not ask to
// close. A request sent on a kept connection that the endpoint had closed
// meanwhile (nothing of an answer read) is sent once more on a new one,
// as net/http does for requests with an Idempotency-Key.
type h1Transport struct {
	next           http.RoundTripper
	dial           func(ctx context.Context, network, addr string) (net.Conn, error)
	maxIdle        int
	maxOpen        int
	idleTimeout    time.Duration
	maxHeaderBytes int64

	mu    sync.Mutex
	hosts map[string]*h1Host // by host:port
	sweep *time.Timer        // pending while connections are idle
}

// h1Host is the transport's connections to one host:port.
type h1Host struct {
	idle []*h1Conn // most recently used last
	open int       // connections open or being dialed
	// waiters are requests waiting for a connection, first come first
	// served: each gets a kept connection, or nil, meaning it may dial.
	waiters []chan *h1Conn
}

// h1Conn is one connection and its buffers.
type h1Conn struct {
	conn      net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	lim       *limitReader
	host      string
	idleSince time.Time
	reused    bool
}

// limitReader caps how much the response reader may take from the
// connection while headers are read; lifted for the body, which the
// caller bounds.
type limitReader struct {
	r   io.Reader
	n   int64 // left; < 0: no limit
	hit bool
	got int64 // bytes read since the exchange began
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n < 0 {
		n, err := l.r.Read(p)
		l.got += int64(n)
		return n, err
	}
	if l.n == 0 {
		l.hit = true
		return 0, errHeadersTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	l.got += int64(n)
	return n, err
}

// errHeadersTooLarge has the words net/http's own refusal has, which the
// sender counts as a limit passed.
var errHeadersTooLarge = errors.New("delivery: server response headers exceeded the limit")

// h1BufSize is each connection's read and write buffer.
const h1BufSize = 4 << 10

func newH1Transport(next *http.Transport, maxIdle int, maxHeaderBytes int64) *h1Transport {
	return &h1Transport{
		next:           next,
		dial:           next.DialContext,
		maxIdle:        maxIdle,
		maxOpen:        next.MaxConnsPerHost,
		idleTimeout:    next.IdleConnTimeout,
		maxHeaderBytes: maxHeaderBytes,
		hosts:          make(map[string]*h1Host),
	}
}

// direct reports whether req is one the transport sends itself.
func (t *h1Transport) direct(req *http.Request) bool {
	if req.URL.Scheme != "http" || req.URL.Host == "" || req.Body == nil || req.ContentLength < 0 ||
		(req.Body != http.NoBody && req.ContentLength == 0) || req.Close {
		return false
	}
	if p, err := http.ProxyFromEnvironment(req); err != nil || p != nil {
		return false
	}
	return true
}

func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.direct(req) {
		return t.next.RoundTrip(req)
	}
	return t.roundTrip(req, nil, time.Time{})
}

// roundTrip sends a request direct reports it may send; admit, when set,
// is asked again before the request goes once more on a new connection
// (the Sender's allow-list and fence: nothing may go out once its fence
// closed). The exchange ends by the request's context's deadline or by,
// whichever comes first (by zero: the context's alone): the Sender's
// attempt timeout is a deadline on the connection, with no context of its
// own to make and cancel every attempt.
func (t *h1Transport) roundTrip(req *http.Request, admit func(*url.URL) error, by time.Time) (*http.Response, error) {
	host := req.URL.Host
	if req.URL.Port() == "" {
		host = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	for {
		c, err := t.get(req.Context(), host)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		resp, retry, err := t.exchange(req, c, by)
		if err == nil {
			return resp, nil
		}
		if !retry || req.GetBody == nil {
			closeBody(req)
			return nil, err
		}
		// The endpoint had closed the kept connection: once more on a
		// new one.
		if admit != nil {
			if aerr := admit(req.URL); aerr != nil {
				return nil, aerr
			}
		}
		body, gerr := req.GetBody()
		if gerr != nil {
			return nil, err
		}
		r2 := *req
		r2.Body = body
		req = &r2
	}
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// get takes an idle connection to host, dials one while fewer than
// maxOpen are open, or waits for one.
func (t *h1Transport) get(ctx context.Context, host string) (*h1Conn, error) {
	now := time.Now()
	t.mu.Lock()
	h := t.hosts[host]
	if h == nil {
		h = &h1Host{}
		t.hosts[host] = h
	}
	for len(h.idle) > 0 {
		c := h.idle[len(h.idle)-1]
		h.idle[len(h.idle)-1] = nil
		h.idle = h.idle[:len(h.idle)-1]
		if now.Sub(c.idleSince) < t.idleTimeout {
			t.mu.Unlock()
			c.reused = true
			return c, nil
		}
		t.closeLocked(c)
	}
	if t.maxOpen <= 0 || h.open < t.maxOpen {
		h.open++
		t.mu.Unlock()
		return t.dialFor(ctx, host)
	}
	ch := make(chan *h1Conn, 1)
	h.waiters = append(h.waiters, ch)
	t.mu.Unlock()
	select {
	case c := <-ch:
		if c != nil {
			c.reused = true
			return c, nil
		}
		return t.dialFor(ctx, host)
	case <-ctx.Done():
		t.mu.Lock()
		if i := slices.Index(h.waiters, ch); i >= 0 {
			h.waiters = slices.Delete(h.waiters, i, i+1)
			t.mu.Unlock()
			return nil, ctx.Err()
		}
		t.mu.Unlock()
		// Handed something meanwhile: pass it on.
		if c := <-ch; c != nil {
			t.put(c)
		} else {
			t.release(host)
		}
		return nil, ctx.Err()
	}
}

// dialFor dials host for a request that holds one of its open places.
func (t *h1Transport) dialFor(ctx context.Context, host string) (*h1Conn, error) {
	conn, err := t.dial(ctx, "tcp", host)
	if err != nil {
		t.release(host)
		return nil, err
	}
	c := &h1Conn{conn: conn, host: host}
	c.lim = &limitReader{r: conn, n: -1}
	c.br = bufio.NewReaderSize(c.lim, h1BufSize)
	c.bw = bufio.NewWriterSize(conn, h1BufSize)
	return c, nil
}

// put keeps c for the next request to its host: the first waiting, or
// the idle list (closing it when there are enough idle already).
func (t *h1Transport) put(c *h1Conn) {
	c.idleSince = time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.hosts[c.host]
	if len(h.waiters) > 0 {
		ch := h.waiters[0]
		h.waiters = slices.Delete(h.waiters, 0, 1)
		ch <- c
		return
	}
	if len(h.idle) >= t.maxIdle {
		t.closeLocked(c)
		return
	}
	h.idle = append(h.idle, c)
	if t.sweep == nil {
		t.sweep = time.AfterFunc(t.idleTimeout, t.sweepIdle)
	}
}

// discard closes a connection in use.
func (t *h1Transport) discard(c *h1Conn) {
	t.mu.Lock()
	t.closeLocked(c)
	t.mu.Unlock()
}

// release gives back the open place of a connection that was never made.
func (t *h1Transport) release(host string) {
	t.mu.Lock()
	t.releaseLocked(t.hosts[host])
	t.mu.Unlock()
}

func (t *h1Transport) closeLocked(c *h1Conn) {
	c.conn.Close()
	t.releaseLocked(t.hosts[c.host])
}

// releaseLocked frees an open place: the first waiter may dial.
func (t *h1Transport) releaseLocked(h *h1Host) {
	if len(h.waiters) > 0 {
		ch := h.waiters[0]
		h.waiters = slices.Delete(h.waiters, 0, 1)
		ch <- nil
		return
	}
	h.open--
}

// sweepIdle closes the connections idle for idleTimeout, and comes back
// while any are left.
func (t *h1Transport) sweepIdle() {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweep = nil
	left := false
	for host, h := range t.hosts {
		kept := h.idle[:0]
		for _, c := range h.idle {
			if now.Sub(c.idleSince) >= t.idleTimeout {
				t.closeLocked(c)
				continue
			}
			kept = append(kept, c)
		}
		clear(h.idle[len(kept):])
		h.idle = kept
		left = left || len(kept) > 0
		if h.open == 0 && len(h.waiters) == 0 {
			delete(t.hosts, host)
		}
	}
	if left {
		t.sweep = time.AfterFunc(t.idleTimeout/2, t.sweepIdle)
	}
}

// CloseIdleConnections closes every idle connection, here and in next.
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	for _, h := range t.hosts {
		for _, c := range h.idle {
			t.closeLocked(c)
		}
		h.idle = nil
	}
	if t.sweep != nil {
		t.sweep.Stop()
		t.sweep = nil
	}
	t.mu.Unlock()
	if n, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		n.CloseIdleConnections()
	}
}

// aLongTimeAgo is a deadline that makes every pending read and write on a
// connection fail at once.
var aLongTimeAgo = time.Unix(1, 0)

// exchange writes req on c and reads the answer's headers. On success the
// response's body owns c: it goes back to the idle list once read to its
// end and closed. retry reports a failure on a reused connection before
// any byte of an answer arrived: the endpoint had closed it.
func (t *h1Transport) exchange(req *http.Request, c *h1Conn, by time.Time) (resp *http.Response, retry bool, err error) {
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		t.put(c)
		return nil, false, err
	}
	deadline, hasDeadline := ctx.Deadline()
	if !by.IsZero() && (!hasDeadline || by.Before(deadline)) {
		deadline, hasDeadline = by, true
	}
	if err := c.conn.SetDeadline(deadline); err != nil {
		t.discard(c)
		return nil, c.reused, err
	}
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(aLongTimeAgo) })
	fail := func(err error, retry bool) (*http.Response, bool, error) {
		stop()
		t.discard(c)
		switch cerr := ctx.Err(); {
		case cerr != nil:
			return nil, false, fmt.Errorf("%w (%w)", cerr, err)
		case hasDeadline && errors.Is(err, os.ErrDeadlineExceeded):
			// The connection's deadline is the context's, and may pass
			// a moment before the context says so.
			return nil, false, fmt.Errorf("%w (%w)", context.DeadlineExceeded, err)
		}
		return nil, retry, err
	}
	if err := writeRequest(c.bw, req); err != nil {
		return fail(err, c.reused && !errors.Is(err, errBadHeader))
	}
	c.lim.n, c.lim.hit, c.lim.got = t.maxHeaderBytes, false, 0
	for {
		resp, err = readResponse(c.br, req)
		if err != nil {
			if c.lim.hit {
				err = fmt.Errorf("%w of %d bytes", errHeadersTooLarge, t.maxHeaderBytes)
			}
			// Nothing of an answer: the endpoint closed a kept connection.
			return fail(err, c.reused && c.lim.got == 0 && c.br.Buffered() == 0)
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		// 1xx informational answers precede the real one.
		resp.Body.Close()
	}
	c.lim.n = -1
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return fail(errors.New("delivery: endpoint switched protocols"), false)
	}
	keep := !resp.Close && resp.ProtoAtLeast(1, 1)
	if resp.Body == http.NoBody {
		stop()
		if keep {
			t.put(c)
		} else {
			t.discard(c)
		}
		return resp, false, nil
	}
	resp.Body = &h1Body{rc: resp.Body, t: t, c: c, stop: stop, keep: keep}
	return resp, false, nil
}

// h1Body is an answer's body; closing it gives the connection back, or
// closes it when the body was not read to its end.
type h1Body struct {
	rc   io.ReadCloser
	t    *h1Transport
	c    *h1Conn
	stop func() bool
	keep bool
	eof  bool
	done bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done {
		return 0, errors.New("delivery: read on a closed body")
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *h1Body) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	b.rc.Close()
	// The cancel hook must not fire on a connection handed to another
	// request; if it already fired, the connection is spoiled.
	if b.stop() && b.eof && b.keep {
		b.t.put(b.c)
		return nil
	}
	b.t.discard(b.c)
	return nil
}

// errBadHeader refuses a header that would break the request's framing.
var errBadHeader = errors.New("delivery: invalid header value")

// writeRequest writes req in HTTP/1.1 with its Content-Length, and
// flushes. Header values holding CR, LF or NUL are refused, as net/http
// refuses them.
func writeRequest(w *bufio.Writer, req *http.Request) error {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	w.WriteString(req.Method)
	w.WriteByte(' ')
	w.WriteString(req.URL.RequestURI())
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	if _, ok := req.Header["User-Agent"]; !ok {
		w.WriteString("User-Agent: Go-http-client/1.1\r\n")
	}
	for k, vs := range req.Header {
		if k == "Host" || k == "Content-Length" || k == "Transfer-Encoding" || k == "Connection" {
			continue
		}
		for _, v := range vs {
			if !validValue(k) || !validValue(v) {
				return fmt.Errorf("%w: %s", errBadHeader, k)
			}
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	w.WriteString("Content-Length: ")
	var num [20]byte
	w.Write(strconv.AppendInt(num[:0], req.ContentLength, 10))
	w.WriteString("\r\n\r\n")
	if req.Body != nil && req.Body != http.NoBody {
		n, err := io.Copy(w, req.Body)
		req.Body.Close()
		if err != nil {
			return err
		}
		if n != req.ContentLength {
			return fmt.Errorf("delivery: request body of %d bytes, %d declared", n, req.ContentLength)
		}
	}
	return w.Flush()
}

// validValue reports whether s can be written in a header line as it is.
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\r' || c == '\n' || c == 0 {
			return false
		}
	}
	return true
}
