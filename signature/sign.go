package signature

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"time"
)

// Header is the name of the HTTP header that carries a signature.
const Header = "Herald-Signature"

// Scheme is the name of the signature entries this package makes and
// checks.
const Scheme = "v1"

// Limits on keys. Two keys are what a rotation needs (the old one and the
// new one); more would only multiply the work per message.
const (
	MinKeyBytes = 16
	MaxKeyBytes = 1024
	MaxKeys     = 2
)

// Errors about keys.
var (
	ErrNoKeys = errors.New("signature: no key")
	ErrKey    = errors.New("signature: bad key")
)

// ParseKeys reads a secret that holds signing keys: one key per line,
// surrounding spaces and blank lines ignored, each key used as the bytes
// written. Between 1 and MaxKeys keys of MinKeyBytes to MaxKeyBytes each.
// The first key is the current one; a second is the other key of a
// rotation in progress.
func ParseKeys(secret []byte) ([][]byte, error) {
	var keys [][]byte
	for line := range bytes.Lines(secret) {
		k := bytes.TrimSpace(line)
		if len(k) == 0 {
			continue
		}
		keys = append(keys, k)
	}
	if err := checkKeys(keys); err != nil {
		return nil, err
	}
	return keys, nil
}

func checkKeys(keys [][]byte) error {
	if len(keys) == 0 {
		return ErrNoKeys
	}
	if len(keys) > MaxKeys {
		return fmt.Errorf("%w: %d keys, at most %d (the current key and, while rotating, one other)", ErrKey, len(keys), MaxKeys)
	}
	for i, k := range keys {
		if len(k) < MinKeyBytes || len(k) > MaxKeyBytes {
			return fmt.Errorf("%w: key %d is %d bytes, want %d to %d", ErrKey, i+1, len(k), MinKeyBytes, MaxKeyBytes)
		}
	}
	return nil
}

// Signer makes Herald-Signature header values. It keeps one keyed hasher
// per key and reuses them, so signing costs one HMAC per key and allocates
// nothing; for that it is not safe for concurrent use: give each goroutine
// its own.
type Signer struct {
	macs []hash.Hash
	ts   [20]byte
	sum  [sha256.Size]byte
}

// NewSigner returns a Signer for keys (as ParseKeys returns them).
func NewSigner(keys [][]byte) (*Signer, error) {
	if err := checkKeys(keys); err != nil {
		return nil, err
	}
	s := &Signer{}
	for _, k := range keys {
		s.macs = append(s.macs, hmac.New(sha256.New, k))
	}
	return s, nil
}

// AppendHeader appends the header value signing body at time t to dst:
// "t=<unix>,v1=<hex>" with one v1 entry per key.
func (s *Signer) AppendHeader(dst []byte, t time.Time, body []byte) []byte {
	ts := strconv.AppendInt(s.ts[:0], t.Unix(), 10)
	dst = append(dst, "t="...)
	dst = append(dst, ts...)
	for _, m := range s.macs {
		m.Reset()
		m.Write(ts)
		m.Write(dot)
		m.Write(body)
		dst = append(dst, ","+Scheme+"="...)
		dst = hex.AppendEncode(dst, m.Sum(s.sum[:0]))
	}
	return dst
}

var dot = []byte{'.'}

// Sign returns the header value signing body at time t with keys, for
// one-off use such as tests of an endpoint; a sender signing many messages
// keeps a Signer instead.
func Sign(keys [][]byte, t time.Time, body []byte) (string, error) {
	s, err := NewSigner(keys)
	if err != nil {
		return "", err
	}
	return string(s.AppendHeader(nil, t, body)), nil
}
