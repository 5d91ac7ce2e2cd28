package sink

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/herald-dev/herald/signature"
)

var (
	verifyOld = []byte("old-sink-key-0123456789")
	verifyNew = []byte("new-sink-key-9876543210")
)

// signedPost sends one delivery with a Herald-Signature header (none when
// header is "") straight to the handler.
func signedPost(s *Sink, key, header string, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/push", bytes.NewReader(body))
	r.Header.Set("Idempotency-Key", key)
	if header != "" {
		r.Header.Set(signature.Header, header)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

func sign(t *testing.T, at time.Time, body []byte, keys ...[]byte) string {
	t.Helper()
	h, err := signature.Sign(keys, at, body)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestVerifySignatures: with keys the sink accepts only deliveries signed
// recently with one of them, refusing forged, stale, tampered and unsigned
// ones with 401, counted apart from deliveries; rotation works both ways.
func TestVerifySignatures(t *testing.T) {
	now := time.Now()
	body := deliveryBody("signed", "u1", "signed:u1")
	tests := []struct {
		name     string
		sinkKeys [][]byte
		header   func(key string, body []byte) string
		want     int
	}{
		{name: "signed with its key", sinkKeys: [][]byte{verifyOld},
			header: func(_ string, b []byte) string { return sign(t, now, b, verifyOld) }, want: 200},
		{name: "rotation: sender signs with both, sink has the old", sinkKeys: [][]byte{verifyOld},
			header: func(_ string, b []byte) string { return sign(t, now, b, verifyNew, verifyOld) }, want: 200},
		{name: "rotation: sender has only the new, sink has both", sinkKeys: [][]byte{verifyOld, verifyNew},
			header: func(_ string, b []byte) string { return sign(t, now, b, verifyNew) }, want: 200},
		{name: "forged with another key", sinkKeys: [][]byte{verifyOld},
			header: func(_ string, b []byte) string { return sign(t, now, b, []byte("forger-key-0123456789")) }, want: 401},
		{name: "stale: replayed ten minutes later", sinkKeys: [][]byte{verifyOld},
			header: func(_ string, b []byte) string { return sign(t, now.Add(-10*time.Minute), b, verifyOld) }, want: 401},
		{name: "from the future", sinkKeys: [][]byte{verifyOld},
			header: func(_ string, b []byte) string { return sign(t, now.Add(10*time.Minute), b, verifyOld) }, want: 401},
		{name: "signed for another body", sinkKeys: [][]byte{verifyOld},
			header: func(_ string, _ []byte) string { return sign(t, now, []byte(`{}`), verifyOld) }, want: 401},
		{name: "unsigned", sinkKeys: [][]byte{verifyOld},
			header: func(string, []byte) string { return "" }, want: 401},
		{name: "garbage", sinkKeys: [][]byte{verifyOld},
			header: func(string, []byte) string { return "t=now,v1=yes" }, want: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSink(t, Config{VerifyKeys: tt.sinkKeys})
			w := signedPost(s, "signed:u1", tt.header("signed:u1", body), body)
			if w.Code != tt.want {
				t.Fatalf("status %d (%s), want %d", w.Code, strings.TrimSpace(w.Body.String()), tt.want)
			}
			st := s.Stats()
			if tt.want == 401 {
				if st.Unauthorized != 1 || st.Delivered != 0 || st.Requests != 1 || len(st.Broadcasts) != 0 {
					t.Errorf("stats %+v: want one unauthorized request, nothing delivered or counted for the broadcast", st)
				}
				if !strings.Contains(w.Body.String(), "signature") {
					t.Errorf("answer %q does not say why", w.Body.String())
				}
				return
			}
			if st.Delivered != 1 || st.Unauthorized != 0 {
				t.Errorf("stats %+v: want delivered", st)
			}
		})
	}
}

func TestVerifyTolerance(t *testing.T) {
	body := deliveryBody("b", "u1", "b:u1")
	s := newSink(t, Config{VerifyKeys: [][]byte{verifyOld}, VerifyTolerance: 30 * time.Minute})
	if w := signedPost(s, "b:u1", sign(t, time.Now().Add(-20*time.Minute), body, verifyOld), body); w.Code != 200 {
		t.Errorf("20 minutes old within a 30-minute tolerance: %d", w.Code)
	}
}

// TestHeadersTooLarge: net/http refuses oversized headers with 431 before
// the sink reads the request; the sink counts them apart from requests.
func TestHeadersTooLarge(t *testing.T) {
	s := newSink(t, Config{MaxHeaderBytes: 1024})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	for _, tt := range []struct {
		pad  int
		want int
	}{{pad: 100, want: 200}, {pad: 8 << 10, want: 431}} {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		body := deliveryBody("b", fmt.Sprint("u", tt.pad), fmt.Sprint("b:u", tt.pad))
		fmt.Fprintf(c, "POST /push HTTP/1.1\r\nHost: x\r\nIdempotency-Key: b:u%d\r\nX-Pad: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
			tt.pad, strings.Repeat("p", tt.pad), len(body), body)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		c.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("header of %d bytes: status %d, want %d", tt.pad, resp.StatusCode, tt.want)
		}
	}
	if st := s.Stats(); st.HeadersTooLarge != 1 || st.Requests != 1 || st.Delivered != 1 {
		t.Errorf("stats %+v: want one request delivered and one refusal for its headers", st)
	}
}

func TestVerifyConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"short key":          {VerifyKeys: [][]byte{[]byte("short")}},
		"empty key list":     {VerifyKeys: [][]byte{}},
		"negative tolerance": {VerifyKeys: [][]byte{verifyOld}, VerifyTolerance: -time.Second},
		"negative headers":   {MaxHeaderBytes: -1},
	} {
		t.Run(name, func(t *testing.T) {
			if err := cfg.Validate(); !errors.Is(err, ErrConfig) {
				t.Errorf("Validate() = %v, want ErrConfig", err)
			}
		})
	}
}
