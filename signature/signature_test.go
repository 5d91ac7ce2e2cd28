package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	oldKey = []byte("old-key-0123456789abcdef")
	newKey = []byte("new-key-fedcba9876543210")
	body   = []byte(`{"broadcast_id":"spring-sale","subscriber_id":"u42","idempotency_key":"k","locale":"en","message":{"title":"Hi"}}`)
	signed = time.Unix(1763892000, 0)
)

// reference computes one v1 entry the way the doc comment describes it,
// without the package's code.
func reference(key []byte, t time.Time, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(strconv.FormatInt(t.Unix(), 10) + "."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func TestHeaderFormat(t *testing.T) {
	one, err := Sign([][]byte{oldKey}, signed, body)
	if err != nil {
		t.Fatal(err)
	}
	if want := "t=1763892000,v1=" + reference(oldKey, signed, body); one != want {
		t.Errorf("one key:\n got %s\nwant %s", one, want)
	}
	two, err := Sign([][]byte{newKey, oldKey}, signed, body)
	if err != nil {
		t.Fatal(err)
	}
	if want := "t=1763892000,v1=" + reference(newKey, signed, body) + ",v1=" + reference(oldKey, signed, body); two != want {
		t.Errorf("two keys:\n got %s\nwant %s", two, want)
	}
}

// TestSignerReuse: a Signer's hashers are reset between messages, so the
// second message's signature does not depend on the first.
func TestSignerReuse(t *testing.T) {
	s, err := NewSigner([][]byte{oldKey})
	if err != nil {
		t.Fatal(err)
	}
	s.AppendHeader(nil, signed, []byte("first message"))
	got := string(s.AppendHeader([]byte("prefix:"), signed.Add(time.Second), body))
	if want := "prefix:t=1763892001,v1=" + reference(oldKey, signed.Add(time.Second), body); got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	good := func(keys ...[]byte) string {
		h, err := Sign(keys, signed, body)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	v1 := reference(oldKey, signed, body)
	tests := []struct {
		name   string
		keys   [][]byte // the endpoint's
		header string
		body   []byte
		now    time.Time
		tol    time.Duration
		want   error // nil: accepted
	}{
		{name: "good", keys: [][]byte{oldKey}, header: good(oldKey)},
		{name: "good, spaces after commas", keys: [][]byte{oldKey}, header: "t=1763892000, v1=" + v1},
		{name: "good, entries reordered", keys: [][]byte{oldKey}, header: "v1=" + v1 + ",t=1763892000"},
		{name: "good, upper-case hex", keys: [][]byte{oldKey}, header: "t=1763892000,v1=" + strings.ToUpper(v1)},
		{name: "good, unknown scheme ignored", keys: [][]byte{oldKey}, header: "t=1763892000,v0=zz,v2=whatever,v1=" + v1},
		{name: "4m59s late is within the default", keys: [][]byte{oldKey}, header: good(oldKey), now: signed.Add(299 * time.Second)},
		{name: "4m59s early is within the default", keys: [][]byte{oldKey}, header: good(oldKey), now: signed.Add(-299 * time.Second)},

		{name: "rotation: sender has both, endpoint old", keys: [][]byte{oldKey}, header: good(newKey, oldKey)},
		{name: "rotation: sender has both, endpoint new", keys: [][]byte{newKey}, header: good(newKey, oldKey)},
		{name: "rotation: sender has both, endpoint both", keys: [][]byte{newKey, oldKey}, header: good(newKey, oldKey)},
		{name: "rotation: sender new only, endpoint both", keys: [][]byte{oldKey, newKey}, header: good(newKey)},
		{name: "rotation over: sender new only, endpoint old only", keys: [][]byte{oldKey}, header: good(newKey), want: ErrMismatch},

		{name: "forged with another key", keys: [][]byte{oldKey}, header: good([]byte("attacker-key-0123456789")), want: ErrMismatch},
		{name: "body changed", keys: [][]byte{oldKey}, header: good(oldKey), body: append([]byte(body[:len(body)-1]), ' ', '}'), want: ErrMismatch},
		{name: "time changed", keys: [][]byte{oldKey}, header: "t=1763892001,v1=" + v1, now: signed, want: ErrMismatch},
		{name: "time padded", keys: [][]byte{oldKey}, header: "t=01763892000,v1=" + v1, want: ErrMismatch},
		{name: "stale", keys: [][]byte{oldKey}, header: good(oldKey), now: signed.Add(301 * time.Second), want: ErrStale},
		{name: "from the future", keys: [][]byte{oldKey}, header: good(oldKey), now: signed.Add(-301 * time.Second), want: ErrStale},
		{name: "stale under a tight tolerance", keys: [][]byte{oldKey}, header: good(oldKey), now: signed.Add(11 * time.Second), tol: 10 * time.Second, want: ErrStale},
		{name: "fresh under a tight tolerance", keys: [][]byte{oldKey}, header: good(oldKey), now: signed.Add(10 * time.Second), tol: 10 * time.Second},

		{name: "missing", keys: [][]byte{oldKey}, header: "", want: ErrMissing},
		{name: "no t", keys: [][]byte{oldKey}, header: "v1=" + v1, want: ErrMalformed},
		{name: "no v1", keys: [][]byte{oldKey}, header: "t=1763892000", want: ErrMalformed},
		{name: "t twice", keys: [][]byte{oldKey}, header: "t=1763892000,t=1763892000,v1=" + v1, want: ErrMalformed},
		{name: "negative t", keys: [][]byte{oldKey}, header: "t=-1,v1=" + v1, want: ErrMalformed},
		{name: "huge t", keys: [][]byte{oldKey}, header: "t=99999999999999999999,v1=" + v1, want: ErrMalformed},
		{name: "short v1", keys: [][]byte{oldKey}, header: "t=1763892000,v1=" + v1[:63], want: ErrMalformed},
		{name: "v1 not hex", keys: [][]byte{oldKey}, header: "t=1763892000,v1=" + strings.Repeat("g", 64), want: ErrMalformed},
		{name: "entry without =", keys: [][]byte{oldKey}, header: "t=1763892000,v1", want: ErrMalformed},
		{name: "too long", keys: [][]byte{oldKey}, header: "t=1763892000,v1=" + v1 + strings.Repeat(",x=y", 600), want: ErrMalformed},

		{name: "endpoint has no key", header: good(oldKey), want: ErrNoKeys},
		{name: "endpoint key too short", keys: [][]byte{[]byte("short")}, header: good(oldKey), want: ErrKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, now := body, signed
			if tt.body != nil {
				b = tt.body
			}
			if !tt.now.IsZero() {
				now = tt.now
			}
			err := Verify(tt.keys, tt.header, b, now, tt.tol)
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseKeys(t *testing.T) {
	tests := []struct {
		name   string
		secret string
		want   []string
		err    error
	}{
		{name: "one key", secret: "0123456789abcdef", want: []string{"0123456789abcdef"}},
		{name: "trailing newline and spaces", secret: "  0123456789abcdef \n", want: []string{"0123456789abcdef"}},
		{name: "rotation: two keys, blank lines", secret: "\nnew-0123456789abcdef\r\n\nold-0123456789abcdef\n", want: []string{"new-0123456789abcdef", "old-0123456789abcdef"}},
		{name: "empty", secret: " \n\n", err: ErrNoKeys},
		{name: "three keys", secret: "aaaaaaaaaaaaaaaa\nbbbbbbbbbbbbbbbb\ncccccccccccccccc", err: ErrKey},
		{name: "short key", secret: "0123456789abcde", err: ErrKey},
		{name: "long key", secret: strings.Repeat("k", MaxKeyBytes+1), err: ErrKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := ParseKeys([]byte(tt.secret))
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("got %q, %v; want %v", keys, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, k := range keys {
				got = append(got, string(k))
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSignRefusesBadKeys(t *testing.T) {
	for _, keys := range [][][]byte{nil, {[]byte("short")}, {oldKey, newKey, oldKey}} {
		if _, err := Sign(keys, signed, body); err == nil {
			t.Errorf("Sign with %d keys %q: no error", len(keys), keys)
		}
	}
}
