package headerlimit

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestCountRefusals: net/http's own 431 for headers past
// MaxHeaderBytes is counted; ordinary answers, even a 431 body text, are
// not.
func TestCountRefusals(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var refused atomic.Int64
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "HTTP/1.1 431 is only text here")
		}),
		MaxHeaderBytes: 1024,
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(CountRefusals(ln, func() { refused.Add(1) })) }()
	defer func() {
		// Shutdown, not Close: it also waits for the connection net/http
		// lingers on after a 431.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	}()

	tests := []struct {
		name       string
		header     int // bytes of one extra header
		wantStatus int
		wantCount  int64
	}{
		{name: "small headers", header: 100, wantStatus: 200, wantCount: 0},
		{name: "headers over the limit", header: 8 << 10, wantStatus: 431, wantCount: 1},
		{name: "small again", header: 10, wantStatus: 200, wantCount: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status := rawGet(t, ln.Addr().String(), tt.header)
			if status != tt.wantStatus {
				t.Errorf("status %d, want %d", status, tt.wantStatus)
			}
			if got := refused.Load(); got != tt.wantCount {
				t.Errorf("counted %d refusals, want %d", got, tt.wantCount)
			}
		})
	}
}

// rawGet sends one GET with an X-Pad header of n bytes on a new connection
// and returns the answer's status.
func rawGet(t *testing.T, addr string, n int) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\nConnection: close\r\n\r\n", strings.Repeat("p", n))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
