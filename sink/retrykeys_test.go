package sink

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
)

func TestRetryKeys(t *testing.T) {
	tests := []struct {
		name         string
		retry        RetryKeys
		wantRefusals int // per picked key
	}{
		{"once by default", RetryKeys{OneIn: 10}, 1},
		{"three times", RetryKeys{OneIn: 10, Times: 3}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const keys = 5000
			s := newSink(t, Config{Retry: tt.retry})
			picked := 0
			for i := range keys {
				key := fmt.Sprintf("b:sub-%d", i)
				refused := 0
				for {
					w := post(s, key, deliveryBody("b", key, key))
					if w.Code == http.StatusOK {
						break
					}
					if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "1" {
						t.Fatalf("%s: %d with Retry-After %q, want 503 with 1", key, w.Code, w.Header().Get("Retry-After"))
					}
					if refused++; refused > tt.wantRefusals {
						t.Fatalf("%s refused more than %d times", key, tt.wantRefusals)
					}
				}
				if refused != 0 {
					if refused != tt.wantRefusals {
						t.Fatalf("%s refused %d times, want %d", key, refused, tt.wantRefusals)
					}
					picked++
				}
				// The same key again, as after a crash: delivered, a duplicate.
				if w := post(s, key, deliveryBody("b", key, key)); w.Code != http.StatusConflict {
					t.Fatalf("%s again: %d, want 409", key, w.Code)
				}
			}
			// One in ten by hash: within 5 standard deviations of 500.
			if picked < 400 || picked > 600 {
				t.Errorf("%d of %d keys picked, want about %d", picked, keys, keys/10)
			}
			st := s.Stats()
			if st.Delivered != keys || st.Duplicates != keys || st.Injected503 != int64(picked*tt.wantRefusals) {
				t.Errorf("stats %+v, picked %d", st, picked)
			}

			// The pick is by key: a new sink, or the same after a reset,
			// refuses the same keys.
			s.Reset()
			again := newSink(t, Config{Retry: tt.retry})
			for i := range 200 {
				key := fmt.Sprintf("b:sub-%d", i)
				a, b := post(s, key, deliveryBody("b", key, key)).Code, post(again, key, deliveryBody("b", key, key)).Code
				if a != b {
					t.Fatalf("%s: %d after reset, %d from a new sink", key, a, b)
				}
			}
		})
	}
	if err := (Config{Retry: RetryKeys{OneIn: 2, Times: -1}}).Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("negative times: %v, want ErrConfig", err)
	}
}
