package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"testing"
	"time"
)

// FuzzVerify: no header makes Verify panic or fail without one of its
// documented reasons; it accepts a header only if it holds a true HMAC of
// its own t and the body; and a header Sign made for a body verifies for
// that body and no other.
func FuzzVerify(f *testing.F) {
	good, _ := Sign([][]byte{oldKey}, signed, body)
	f.Add(good, body, int64(0))
	f.Add("t=1763892000,v1=00,v1=", []byte("x"), int64(5))
	f.Add("t=,v1=,=,,", []byte{}, int64(-400))
	f.Add("t=1763892000 , v2=a,v1="+good[len(good)-64:], body, int64(1))
	keys := [][]byte{oldKey, newKey}
	f.Fuzz(func(t *testing.T, header string, b []byte, skew int64) {
		now := signed.Add(time.Duration(skew) * time.Second)
		err := Verify(keys, header, b, now, 0)
		if err != nil && !errors.Is(err, ErrMissing) && !errors.Is(err, ErrMalformed) &&
			!errors.Is(err, ErrStale) && !errors.Is(err, ErrMismatch) {
			t.Fatalf("Verify(%q) = %v: not a documented reason", header, err)
		}
		if err == nil && !holdsTrueMAC(t, header, b, keys) {
			t.Fatalf("Verify accepted %q for %q without a true signature", header, b)
		}
		h, err := Sign([][]byte{newKey, oldKey}, signed, b)
		if err != nil {
			t.Fatal(err)
		}
		if err := Verify([][]byte{oldKey}, h, b, signed, 0); err != nil {
			t.Fatalf("own signature of %q refused: %v", b, err)
		}
		other := append([]byte{'x'}, b...)
		if err := Verify([][]byte{oldKey}, h, other, signed, 0); !errors.Is(err, ErrMismatch) {
			t.Fatalf("signature of %q accepted for %q: %v", b, other, err)
		}
	})
}

// holdsTrueMAC reports whether header has a v1 entry that is the HMAC of
// its t, a dot and b under one of keys.
func holdsTrueMAC(t *testing.T, header string, b []byte, keys [][]byte) bool {
	p, err := parse(header)
	if err != nil {
		t.Fatalf("Verify accepted %q, which does not parse: %v", header, err)
	}
	for _, k := range keys {
		m := hmac.New(sha256.New, k)
		m.Write([]byte(p.ts + "."))
		m.Write(b)
		want := m.Sum(nil)
		for _, sig := range p.sigs {
			if string(sig[:]) == string(want) {
				return true
			}
		}
	}
	return false
}
