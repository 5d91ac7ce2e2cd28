package delivery

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawEndpoint is a TCP server that answers each HTTP/1.1 request it reads
// with the bytes answer returns for it (n counts requests from 1 over all
// connections), then keeps the connection or closes it.
type rawEndpoint struct {
	ln    net.Listener
	conns atomic.Int64
	reqs  atomic.Int64
	mu    sync.Mutex
	seen  []*http.Request
	wg    sync.WaitGroup
}

func newRawEndpoint(t *testing.T, answer func(n int64, r *http.Request) (reply string, keep bool)) *rawEndpoint {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &rawEndpoint{ln: ln}
	e.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.conns.Add(1)
			e.wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.Copy(io.Discard, req.Body)
					e.mu.Lock()
					e.seen = append(e.seen, req)
					e.mu.Unlock()
					reply, keep := answer(e.reqs.Add(1), req)
					if _, err := io.WriteString(c, reply); err != nil || !keep {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		e.wg.Wait()
	})
	return e
}

func (e *rawEndpoint) url() string { return "http://" + e.ln.Addr().String() + "/push?x=1" }

const okReply = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

func sendOne(t *testing.T, s *Sender, url string) Result {
	t.Helper()
	return s.Send(context.Background(), url, testKey, []byte(testBody))
}

// The direct path writes what net/http would: method, path and query,
// Host, the delivery's headers and the body with its length.
func TestDirectRequestOnTheWire(t *testing.T) {
	e := newRawEndpoint(t, func(int64, *http.Request) (string, bool) { return okReply, true })
	cfg := testConfig
	cfg.Authorization = "Bearer abc"
	s, _ := newTestSender(t, cfg)
	if r := sendOne(t, s, e.url()); r.Outcome != Delivered {
		t.Fatalf("got %+v", r)
	}
	req := e.seen[0]
	if req.Method != http.MethodPost || req.URL.RequestURI() != "/push?x=1" || req.Host != e.ln.Addr().String() ||
		req.Header.Get("Idempotency-Key") != testKey || req.Header.Get("Content-Type") != "application/json" ||
		req.Header.Get("Authorization") != "Bearer abc" || req.ContentLength != int64(len(testBody)) || req.ProtoMinor != 1 {
		t.Errorf("request %s %s host %q headers %v length %d", req.Method, req.URL, req.Host, req.Header, req.ContentLength)
	}
}

// Answers the direct path must read right: informational answers before
// the real one, chunked bodies, and answers that close the connection.
func TestDirectAnswers(t *testing.T) {
	tests := []struct {
		name      string
		reply     string
		keep      bool
		want      Outcome
		wantConns int64
	}{
		{"100 continue first", "HTTP/1.1 100 Continue\r\n\r\n" + okReply, true, Delivered, 1},
		{"chunked body", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", true, Delivered, 1},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", false, Delivered, 3},
		{"HTTP/1.0 without keep-alive", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false, Delivered, 3},
		{"refusal with a body", "HTTP/1.1 422 Unprocessable\r\nContent-Length: 9\r\n\r\nbad thing", true, Failed, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newRawEndpoint(t, func(int64, *http.Request) (string, bool) { return tt.reply, tt.keep })
			s, _ := newTestSender(t, testConfig)
			for range 3 {
				if r := sendOne(t, s, e.url()); r.Outcome != tt.want {
					t.Fatalf("got %+v, want %v", r, tt.want)
				}
			}
			if n := e.conns.Load(); n != tt.wantConns {
				t.Errorf("%d connections for 3 sends, want %d", n, tt.wantConns)
			}
		})
	}
}

// An endpoint that closes a kept connection without answering the request
// sent on it: the request goes once more on a new connection, within the
// same attempt, as net/http does for a request with an Idempotency-Key.
func TestDirectResendsOnAClosedKeptConnection(t *testing.T) {
	e := newRawEndpoint(t, func(n int64, _ *http.Request) (string, bool) {
		if n == 2 {
			return "", false // read the request, closed without a word
		}
		return okReply, true
	})
	s, _ := newTestSender(t, testConfig)
	for i := range 3 {
		if r := sendOne(t, s, e.url()); r.Outcome != Delivered || r.Attempts != 1 {
			t.Fatalf("send %d: got %+v, want delivered in one attempt", i, r)
		}
	}
	if n, c := e.reqs.Load(), e.conns.Load(); n != 4 || c != 2 {
		t.Errorf("%d requests over %d connections, want 4 over 2", n, c)
	}
}

// A header value that would break the framing is refused, not written.
func TestDirectRefusesBrokenHeaders(t *testing.T) {
	e := newRawEndpoint(t, func(int64, *http.Request) (string, bool) { return okReply, true })
	tr := newH1Transport(newTransport(modeAuto, 4, time.Second, 1<<16), 4, 1<<16)
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodPost, e.url(), strings.NewReader("{}"))
	req.Header.Set("X-Evil", "a")
	req.Header["X-Evil"] = []string{"a\r\nX-Injected: 1"}
	if _, err := tr.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "invalid header") {
		t.Fatalf("got %v, want a refusal", err)
	}
	if n := e.reqs.Load(); n != 0 {
		t.Errorf("%d requests reached the endpoint", n)
	}
}

// Connections idle for the idle timeout are closed by the sweep, so an
// endpoint no longer sent to holds none of the worker's sockets.
func TestDirectClosesIdleConnections(t *testing.T) {
	var open atomic.Int64
	e := newRawEndpoint(t, func(int64, *http.Request) (string, bool) { return okReply, true })
	tr := newH1Transport(newTransport(modeAuto, 4, time.Second, 1<<16), 4, 1<<16)
	tr.idleTimeout = 50 * time.Millisecond
	dial := tr.dial
	tr.dial = func(ctx context.Context, n, a string) (net.Conn, error) {
		c, err := dial(ctx, n, a)
		if err == nil {
			open.Add(1)
			c = &countedConn{Conn: c, open: &open}
		}
		return c, err
	}
	for range 3 {
		req, _ := http.NewRequest(http.MethodPost, e.url(), strings.NewReader("{}"))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if n := open.Load(); n != 1 {
		t.Fatalf("%d connections open after 3 sends one after another, want 1", n)
	}
	waitUntil(t, 2*time.Second, func() bool { return open.Load() == 0 })
}

type countedConn struct {
	net.Conn
	open *atomic.Int64
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.open.Add(-1) })
	return c.Conn.Close()
}

func waitUntil(t *testing.T, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The fence is asked again before the direct path sends a request once
// more on a new connection: a worker whose lease may have expired sends
// nothing, even there.
func TestDirectResendIsFenced(t *testing.T) {
	var fenced atomic.Bool
	e := newRawEndpoint(t, func(n int64, _ *http.Request) (string, bool) {
		if n == 2 {
			fenced.Store(true) // the lease ends while this request is out
			return "", false
		}
		return okReply, true
	})
	cfg := testConfig
	cfg.Fence = func() error {
		if fenced.Load() {
			return errors.New("lease deadline passed")
		}
		return nil
	}
	s, _ := newTestSender(t, cfg)
	if r := sendOne(t, s, e.url()); r.Outcome != Delivered {
		t.Fatalf("first send: %+v", r)
	}
	if r := sendOne(t, s, e.url()); r.Outcome != Aborted || !strings.Contains(r.Reason, "lease deadline passed") {
		t.Fatalf("second send: %+v, want aborted by the fence", r)
	}
	if n := e.reqs.Load(); n != 2 {
		t.Errorf("endpoint got %d requests, want 2: nothing sent again once fenced", n)
	}
}
