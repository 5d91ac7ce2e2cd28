package signature

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkSign is the per-message cost a worker pays for signing: one
// HMAC-SHA256 per key over the body plus the hex header.
func BenchmarkSign(b *testing.B) {
	for _, n := range []int{1, 2} {
		s, err := NewSigner([][]byte{oldKey, newKey}[:n])
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 0, 256)
		b.Run(fmt.Sprintf("keys=%d/body=%dB", n, len(body)), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				buf = s.AppendHeader(buf[:0], signed, body)
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	h, err := Sign([][]byte{newKey, oldKey}, signed, body)
	if err != nil {
		b.Fatal(err)
	}
	keys := [][]byte{oldKey}
	b.ReportAllocs()
	for b.Loop() {
		if err := Verify(keys, h, body, signed.Add(time.Second), 0); err != nil {
			b.Fatal(err)
		}
	}
}
