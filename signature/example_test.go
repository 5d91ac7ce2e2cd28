package signature_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/herald-dev/herald/signature"
)

// An endpoint checks each delivery before acting on it. The keys are the
// endpoint's copies of the secret Herald signs with (two while rotating).
func Example() {
	keys := [][]byte{[]byte("whsec-0123456789abcdef")}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		err = signature.Verify(keys, r.Header.Get(signature.Header), body, time.Now(), 0)
		if err != nil {
			// 401 is final for Herald: the delivery fails and is
			// dead-lettered with this reason, no retry.
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK) // now handle the delivery
	})

	body := `{"broadcast_id":"b","subscriber_id":"u1","idempotency_key":"k","locale":"en","message":{}}`
	for _, signedWith := range []string{"whsec-0123456789abcdef", "forger-0123456789abcdef"} {
		h, _ := signature.Sign([][]byte{[]byte(signedWith)}, time.Now(), []byte(body))
		req := httptest.NewRequest(http.MethodPost, "/push", strings.NewReader(body))
		req.Header.Set(signature.Header, h)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		fmt.Println(rec.Code)
	}
	// Output:
	// 200
	// 401
}

// A stale request, such as one captured and replayed later, is refused
// with ErrStale.
func ExampleVerify_stale() {
	keys := [][]byte{[]byte("whsec-0123456789abcdef")}
	body := []byte(`{}`)
	sent := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	h, _ := signature.Sign(keys, sent, body)
	err := signature.Verify(keys, h, body, sent.Add(time.Hour), 0)
	fmt.Println(errors.Is(err, signature.ErrStale))
	// Output: true
}
