package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readyz":
			w.Write([]byte("ready\n"))
		case "/slow":
			time.Sleep(200 * time.Millisecond)
		default:
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()

	tests := []struct {
		name    string
		url     string
		timeout time.Duration
		ok      bool
	}{
		{"2xx is healthy", srv.URL + "/readyz", time.Second, true},
		{"503 is unhealthy", srv.URL + "/other", time.Second, false},
		{"no answer in time is unhealthy", srv.URL + "/slow", 50 * time.Millisecond, false},
		{"nothing listening is unhealthy", "http://127.0.0.1:1/readyz", time.Second, false},
		{"a bad URL is unhealthy", "://nope", time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := check(tt.url, tt.timeout)
			if (err == nil) != tt.ok {
				t.Fatalf("check(%q) = %v, want healthy %v", tt.url, err, tt.ok)
			}
		})
	}
}
