package delivery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	refused := &url.Error{Op: "Post", URL: "http://x/", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	untrusted := &url.Error{Op: "Post", URL: "https://x/", Err: &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}}
	tests := []struct {
		status int
		err    error
		want   verdict
	}{
		{200, nil, verdictDelivered},
		{202, nil, verdictDelivered},
		{299, nil, verdictDelivered},
		{409, nil, verdictDelivered},
		{429, nil, verdictRetryAfter},
		{503, nil, verdictRetryAfter},
		{500, nil, verdictRetry},
		{501, nil, verdictRetry},
		{502, nil, verdictRetry},
		{504, nil, verdictRetry},
		{599, nil, verdictRetry},
		{101, nil, verdictPermanent},
		{301, nil, verdictPermanent},
		{304, nil, verdictPermanent},
		{307, nil, verdictPermanent},
		{400, nil, verdictPermanent},
		{401, nil, verdictPermanent},
		{404, nil, verdictPermanent},
		{410, nil, verdictPermanent},
		{413, nil, verdictPermanent},
		{422, nil, verdictPermanent},
		{600, nil, verdictPermanent},
		{0, refused, verdictRetry},
		{0, context.DeadlineExceeded, verdictRetry},
		{0, errors.New("EOF"), verdictRetry},
		{0, untrusted, verdictPermanent},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d %v", tt.status, tt.err), func(t *testing.T) {
			if got := classify(tt.status, tt.err); got != tt.want {
				t.Errorf("classify(%d, %v) = %d, want %d", tt.status, tt.err, got, tt.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := testClock
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"2", 2 * time.Second, true},
		{" 120 ", 120 * time.Second, true},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
		{"99999999999999999999", 0, false}, // overflows int64: not a delta, not a date
		{"9999999999999", maxRetryAfterSeconds * time.Second, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{now.Add(5 * time.Second).Format(time.RFC850), 5 * time.Second, true},
		{now.Add(5 * time.Second).Format(time.ANSIC), 5 * time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := ParseRetryAfter(tt.in, now)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestBackoffStaysInItsRange(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		lo, hi time.Duration
		n      int
		ceil   time.Duration
	}{
		{100 * ms, 10 * time.Second, 1, 200 * ms},
		{100 * ms, 10 * time.Second, 2, 400 * ms},
		{100 * ms, 10 * time.Second, 6, 6400 * ms},
		{100 * ms, 10 * time.Second, 7, 10 * time.Second},
		{100 * ms, 10 * time.Second, 1000, 10 * time.Second},
		{100 * ms, 100 * ms, 3, 100 * ms},
		{time.Duration(1) << 61, math.MaxInt64, 5, math.MaxInt64}, // no overflow
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v..%v n=%d", tt.lo, tt.hi, tt.n), func(t *testing.T) {
			if got := Backoff(tt.lo, tt.hi, tt.n, func(int64) int64 { return 0 }); got != tt.lo {
				t.Errorf("smallest draw gives %v, want %v", got, tt.lo)
			}
			if got := Backoff(tt.lo, tt.hi, tt.n, func(n int64) int64 { return n - 1 }); got != tt.ceil {
				t.Errorf("largest draw gives %v, want %v", got, tt.ceil)
			}
			seen := map[time.Duration]bool{}
			for range 200 {
				d := Backoff(tt.lo, tt.hi, tt.n, rand.Int64N)
				if d < tt.lo || d > tt.ceil {
					t.Fatalf("wait %v outside [%v, %v]", d, tt.lo, tt.ceil)
				}
				seen[d] = true
			}
			if tt.ceil > tt.lo && len(seen) < 2 {
				t.Errorf("200 draws gave one wait: no jitter")
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		status int
		err    error
		want   string
	}{
		{500, nil, "status 500 Internal Server Error"},
		{299, nil, "status 299"},
		{0, &url.Error{Op: "Post", URL: "http://user:secret@x/push", Err: errors.New("EOF")}, "EOF"},
		{0, &url.Error{Op: "Post", URL: "http://x/", Err: context.DeadlineExceeded}, "timeout: context deadline exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := describe(tt.status, tt.err); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPrintable(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain", "plain"},
		{"line one\r\nline\ttwo", "line one line two"},
		{"nul\x00and\x7fdel", "nul and del"},
		{"bad \xff utf8", "bad ? utf8"},
		{"  优惠码  ", "优惠码"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := printable([]byte(tt.in)); got != tt.want {
				t.Errorf("printable(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
