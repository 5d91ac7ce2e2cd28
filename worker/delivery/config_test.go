package delivery

import (
	"errors"
	"math"
	"reflect"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	got := Config{}.withDefaults()
	want := Config{
		MaxInFlight: 64, Timeout: 5 * time.Second, MaxAttempts: 6,
		BackoffMin: 100 * time.Millisecond, BackoffMax: 10 * time.Second,
		MaxRetryAfter: 60 * time.Second, MaxResponseBytes: 64 << 10, MaxResponseHeaderBytes: 64 << 10,
		BreakerRatio: 0.8, BreakerAttempts: 20, BreakerMinAttempts: 10, BreakerWindow: 10 * time.Second,
		BreakerProbeMax: 5 * time.Second, BreakerMaxWait: 5 * time.Minute,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults %+v, want %+v", got, want)
	}
	set := Config{MaxInFlight: 3, Timeout: time.Second, MaxAttempts: 2, BackoffMin: time.Millisecond,
		BackoffMax: time.Second, MaxRetryAfter: time.Second, MaxResponseBytes: 10, MaxResponseHeaderBytes: 20,
		BreakerRatio: 0.5, BreakerAttempts: 8, BreakerMinAttempts: 4, BreakerWindow: time.Second,
		BreakerProbeMax: time.Second, BreakerMaxWait: time.Minute}
	if got := set.withDefaults(); !reflect.DeepEqual(got, set) {
		t.Errorf("set fields changed: %+v, want %+v", got, set)
	}
	if got := (Config{BreakerAttempts: 4}).withDefaults().BreakerMinAttempts; got != 4 {
		t.Errorf("BreakerMinAttempts defaults to %d with BreakerAttempts 4, want 4", got)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		valid bool
	}{
		{"zero value", Config{}, true},
		{"all set", Config{MaxInFlight: 8, Timeout: time.Second, MaxAttempts: 1, BackoffMin: time.Second, BackoffMax: time.Second}, true},
		{"MaxInFlight negative", Config{MaxInFlight: -1}, false},
		{"MaxInFlight too large", Config{MaxInFlight: maxInFlightLimit + 1}, false},
		{"Timeout negative", Config{Timeout: -time.Second}, false},
		{"MaxAttempts negative", Config{MaxAttempts: -1}, false},
		{"BackoffMin negative", Config{BackoffMin: -1}, false},
		{"BackoffMax negative", Config{BackoffMax: -1}, false},
		{"BackoffMin above BackoffMax", Config{BackoffMin: 2 * time.Second, BackoffMax: time.Second}, false},
		{"BackoffMin above default BackoffMax", Config{BackoffMin: time.Minute}, false},
		{"MaxRetryAfter negative", Config{MaxRetryAfter: -1}, false},
		{"MaxResponseBytes negative", Config{MaxResponseBytes: -1}, false},
		{"MaxResponseHeaderBytes negative", Config{MaxResponseHeaderBytes: -1}, false},
		{"breaker disabled", Config{BreakerRatio: -1}, true},
		{"breaker set", Config{BreakerRatio: 1, BreakerAttempts: 5, BreakerMinAttempts: 5, BreakerWindow: time.Second, BreakerProbeMax: time.Second, BreakerMaxWait: -1}, true},
		{"BreakerRatio above 1", Config{BreakerRatio: 1.5}, false},
		{"BreakerRatio NaN", Config{BreakerRatio: math.NaN()}, false},
		{"BreakerAttempts negative", Config{BreakerAttempts: -1}, false},
		{"BreakerAttempts too large", Config{BreakerAttempts: maxBreakerAttempts + 1}, false},
		{"BreakerMinAttempts negative", Config{BreakerMinAttempts: -1}, false},
		{"BreakerMinAttempts above BreakerAttempts", Config{BreakerAttempts: 5, BreakerMinAttempts: 6}, false},
		{"BreakerMinAttempts above default BreakerAttempts", Config{BreakerMinAttempts: 21}, false},
		{"BreakerWindow negative", Config{BreakerWindow: -1}, false},
		{"BreakerProbeMax negative", Config{BreakerProbeMax: -1}, false},
		{"Authorization set", Config{Authorization: "Bearer abc.def\tx"}, true},
		{"Authorization with a line break", Config{Authorization: "Bearer x\r\nX-Evil: 1"}, false},
		{"Authorization with DEL", Config{Authorization: "Bearer \x7f"}, false},
		{"one signing key", Config{SigningKeys: [][]byte{[]byte("0123456789abcdef")}}, true},
		{"two signing keys", Config{SigningKeys: [][]byte{[]byte("0123456789abcdef"), []byte("fedcba9876543210")}}, true},
		{"empty signing keys", Config{SigningKeys: [][]byte{}}, false},
		{"short signing key", Config{SigningKeys: [][]byte{[]byte("short")}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.valid != (err == nil) {
				t.Fatalf("Validate() = %v, want valid %v", err, tt.valid)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("%v does not wrap ErrInvalidConfig", err)
			}
			s, err := New(tt.cfg, nil, nil)
			if tt.valid != (err == nil) {
				t.Errorf("New() = %v, want valid %v", err, tt.valid)
			}
			if s != nil {
				s.Close()
			}
		})
	}
}
