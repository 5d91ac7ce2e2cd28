package delivery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// protoEndpoint is a loopback endpoint that records the HTTP version of
// every request and counts the connections opened to it.
type protoEndpoint struct {
	srv *httptest.Server
	url string

	mu     sync.Mutex
	delay  time.Duration // how long each answer takes
	majors map[int]int   // requests by r.ProtoMajor
	opened int           // connections opened
	open   int           // connections open now
}

// endpointKind is how a protoEndpoint listens.
type endpointKind int

const (
	plainH1  endpointKind = iota // http://, HTTP/1.1 only
	plainH2C                     // http://, HTTP/1.1 and h2c by prior knowledge
	tlsH1                        // https://, HTTP/1.1 only (no h2 by ALPN)
	tlsH2                        // https://, HTTP/2 offered by ALPN
)

func newProtoEndpoint(t testing.TB, kind endpointKind) *protoEndpoint {
	t.Helper()
	// Long enough for sends to overlap.
	e := &protoEndpoint{delay: 2 * time.Millisecond, majors: map[int]int{}}
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		e.mu.Lock()
		e.majors[r.ProtoMajor]++
		delay := e.delay
		e.mu.Unlock()
		if delay > 0 {
			time.Sleep(delay)
		}
		w.WriteHeader(http.StatusOK)
	}))
	e.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		e.mu.Lock()
		defer e.mu.Unlock()
		switch st {
		case http.StateNew:
			e.opened++
			e.open++
		case http.StateClosed, http.StateHijacked:
			e.open--
		}
	}
	switch kind {
	case plainH1:
		e.srv.Start()
	case plainH2C:
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		e.srv.Config.Protocols = &p
		e.srv.Start()
	case tlsH1:
		e.srv.StartTLS()
	case tlsH2:
		e.srv.EnableHTTP2 = true
		e.srv.StartTLS()
	}
	t.Cleanup(e.srv.Close)
	e.url = e.srv.URL + "/push"
	return e
}

// pool returns a shared pool of maxConns that trusts the endpoint's
// certificate, closed when the test ends.
func (e *protoEndpoint) pool(t testing.TB, maxConns int) *Pool {
	t.Helper()
	p := NewPool(maxConns, 0)
	if cert := e.srv.Certificate(); cert != nil {
		roots := x509.NewCertPool()
		roots.AddCert(cert)
		p.tls = &tls.Config{RootCAs: roots}
	}
	t.Cleanup(p.CloseIdle)
	return p
}

func (e *protoEndpoint) openNow() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.open
}

func (e *protoEndpoint) counts() (majors map[int]int, opened int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := make(map[int]int, len(e.majors))
	for k, v := range e.majors {
		m[k] = v
	}
	return m, e.opened
}

// TestHTTP2Modes: each Config.HTTP2 mode speaks the HTTP version it
// promises to each kind of endpoint; plain http:// stays HTTP/1.1 unless
// the mode is h2c.
func TestHTTP2Modes(t *testing.T) {
	tests := []struct {
		name      string
		kind      endpointKind
		mode      string
		wantMajor int
	}{
		{"default over TLS offering h2", tlsH2, "", 2},
		{"auto over TLS offering h2", tlsH2, HTTP2Auto, 2},
		{"off over TLS offering h2", tlsH2, HTTP2Off, 1},
		{"auto over TLS without h2", tlsH1, HTTP2Auto, 1},
		{"auto over plain http to an h2c endpoint", plainH2C, HTTP2Auto, 1},
		{"off over plain http", plainH1, HTTP2Off, 1},
		{"h2c over plain http", plainH2C, HTTP2H2C, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newProtoEndpoint(t, tt.kind)
			cfg := testConfig
			cfg.Pool = e.pool(t, 4)
			cfg.HTTP2 = tt.mode
			s, _ := newTestSender(t, cfg)
			deliverAll(t, e.url, []*Sender{s}, 4, 5)
			majors, _ := e.counts()
			if len(majors) != 1 || majors[tt.wantMajor] != 20 {
				t.Errorf("requests by HTTP major version %v, want all 20 HTTP/%d", majors, tt.wantMajor)
			}
		})
	}
}

// TestHTTP2Multiplexes: concurrent sends over HTTP/2 share a connection or
// two, where HTTP/1.1 opens one per send in flight (the control, which
// shows the measure can fail).
func TestHTTP2Multiplexes(t *testing.T) {
	const inFlight = 32
	run := func(t *testing.T, kind endpointKind, mode string) (opened int) {
		e := newProtoEndpoint(t, kind)
		cfg := testConfig
		cfg.MaxInFlight = inFlight
		cfg.Pool = e.pool(t, inFlight)
		cfg.HTTP2 = mode
		s, _ := newTestSender(t, cfg)
		// One send first: concurrent first sends may race to dial before
		// any connection has said it speaks HTTP/2.
		deliverAll(t, e.url, []*Sender{s}, 1, 1)
		deliverAll(t, e.url, []*Sender{s}, inFlight, 10)
		_, opened = e.counts()
		t.Logf("%d sends, %d in flight: %d connections", 1+inFlight*10, inFlight, opened)
		return opened
	}
	t.Run("h2", func(t *testing.T) {
		if n := run(t, tlsH2, HTTP2Auto); n > 2 {
			t.Errorf("%d sends in flight over HTTP/2 opened %d connections, want 1 or 2", inFlight, n)
		}
	})
	t.Run("h2c", func(t *testing.T) {
		if n := run(t, plainH2C, HTTP2H2C); n > 2 {
			t.Errorf("%d sends in flight over h2c opened %d connections, want 1 or 2", inFlight, n)
		}
	})
	t.Run("h1", func(t *testing.T) {
		if n := run(t, tlsH2, HTTP2Off); n < inFlight/4 {
			t.Errorf("%d sends in flight over HTTP/1.1 opened only %d connections; the measure cannot tell the cases apart", inFlight, n)
		}
	})
}

// TestHTTP2KeepsAttemptChecks: the fence and the allow check stop an
// attempt over HTTP/2 as they do over HTTP/1.1, before anything is sent.
func TestHTTP2KeepsAttemptChecks(t *testing.T) {
	e := newProtoEndpoint(t, tlsH2)
	cfg := testConfig
	cfg.Pool = e.pool(t, 4)
	cfg.Fence = func() error { return context.DeadlineExceeded }
	s, _ := newTestSender(t, cfg)
	if r := s.Send(context.Background(), e.url, testKey, []byte(testBody)); r.Outcome != Aborted {
		t.Errorf("fenced send over HTTP/2: got %+v, want aborted", r)
	}
	if majors, _ := e.counts(); len(majors) != 0 {
		t.Errorf("the endpoint saw requests %v from a fenced sender", majors)
	}
}

func TestConfigRefusesUnknownHTTP2Mode(t *testing.T) {
	for _, mode := range []string{"on", "h2", "OFF"} {
		if err := (Config{HTTP2: mode}).Validate(); err == nil {
			t.Errorf("HTTP2 %q accepted", mode)
		}
	}
	for _, mode := range []string{"", HTTP2Auto, HTTP2Off, HTTP2H2C} {
		if err := (Config{HTTP2: mode}).Validate(); err != nil {
			t.Errorf("HTTP2 %q: %v", mode, err)
		}
	}
}
