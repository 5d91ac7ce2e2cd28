//go:build unix

package delivery

import (
	"context"
	"net/url"
	"testing"
)

// BenchmarkSendSecured measures what the security options add to one
// message: the allowlist check before each attempt, and signing with one
// key, or two while a key is rotated. Compare with sender/plain of
// BenchmarkSendOne.
func BenchmarkSendSecured(b *testing.B) {
	r := newBenchRig(b)
	allowAll := func(*url.URL) error { return nil }
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"unsigned", Config{MaxInFlight: benchInFlight}},
		{"allowlist", Config{MaxInFlight: benchInFlight, Allow: allowAll}},
		{"allowlist+sign1", Config{MaxInFlight: benchInFlight, Allow: allowAll, SigningKeys: [][]byte{keyOld}}},
		{"allowlist+sign2", Config{MaxInFlight: benchInFlight, Allow: allowAll, SigningKeys: [][]byte{keyNew, keyOld}}},
		{"allowlist+sign1+auth", Config{MaxInFlight: benchInFlight, Allow: allowAll, SigningKeys: [][]byte{keyOld}, Authorization: "Bearer 0123456789abcdef"}},
	} {
		s, err := New(c.cfg, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if res := s.Send(context.Background(), r.url, testKey, r.body); res.Outcome != Delivered {
					b.Fatalf("%+v", res)
				}
			}
		})
		s.Close()
	}
}
