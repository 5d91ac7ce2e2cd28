package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultTolerance is how far a signature's time may be from the
// verifier's clock when Verify is given no tolerance: long enough for clock
// skew and a slow request, short enough that a captured request soon stops
// being accepted.
const DefaultTolerance = 5 * time.Minute

// MaxHeaderBytes bounds the header value Verify reads; Herald's own are
// under 200 bytes.
const MaxHeaderBytes = 2048

// Why Verify refused a request. Each error it returns wraps one of these.
var (
	ErrMissing   = errors.New("signature: no Herald-Signature header")
	ErrMalformed = errors.New("signature: malformed header")
	ErrStale     = errors.New("signature: time outside the tolerance")
	ErrMismatch  = errors.New("signature: no signature matches")
)

// Verify checks a delivery's Herald-Signature header value against the
// body it came with: some v1 entry must be the HMAC-SHA256 of "<t>.<body>"
// under one of keys, and t must be within tolerance of now, in either
// direction. A tolerance of zero or less means DefaultTolerance. keys are
// the endpoint's copies of the signing keys (two while one is rotated),
// each at least MinKeyBytes long. It returns nil for a good signature, and
// otherwise an error wrapping ErrMissing, ErrMalformed, ErrStale,
// ErrMismatch, ErrNoKeys or ErrKey.
//
// body must be the bytes received, before any decoding. Comparisons take
// the same time whatever the bytes compared.
func Verify(keys [][]byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if len(keys) == 0 {
		return ErrNoKeys
	}
	for i, k := range keys {
		if len(k) < MinKeyBytes {
			return fmt.Errorf("%w: key %d is %d bytes, want at least %d", ErrKey, i+1, len(k), MinKeyBytes)
		}
	}
	p, err := parse(header)
	if err != nil {
		return err
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	at := time.Unix(p.unix, 0)
	if d := now.Sub(at); d > tolerance || -d > tolerance {
		return fmt.Errorf("%w: signed at %s, %v from now, tolerance %v", ErrStale,
			at.UTC().Format(time.RFC3339), d.Truncate(time.Second), tolerance)
	}
	var sum [sha256.Size]byte
	for _, k := range keys {
		m := hmac.New(sha256.New, k)
		m.Write([]byte(p.ts))
		m.Write(dot)
		m.Write(body)
		m.Sum(sum[:0])
		for _, sig := range p.sigs {
			if hmac.Equal(sum[:], sig[:]) {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: %d %s entries checked against %d keys", ErrMismatch, len(p.sigs), Scheme, len(keys))
}

// parsed is a header value taken apart.
type parsed struct {
	ts   string // t as written: it is what was signed
	unix int64
	sigs [][sha256.Size]byte
}

// maxTimeDigits keeps t within int64 and rules out padding games.
const maxTimeDigits = 18

// parse reads "t=<unix>,v1=<hex>[,v1=<hex>...]" with entries in any order
// and entries of other schemes skipped. Spaces around entries are allowed.
func parse(header string) (parsed, error) {
	var p parsed
	if header == "" {
		return p, ErrMissing
	}
	if len(header) > MaxHeaderBytes {
		return p, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(header), MaxHeaderBytes)
	}
	seenT := false
	for entry := range strings.SplitSeq(header, ",") {
		entry = strings.TrimSpace(entry)
		name, value, ok := strings.Cut(entry, "=")
		if !ok || name == "" {
			return p, fmt.Errorf("%w: entry %q is not name=value", ErrMalformed, clip(entry))
		}
		switch name {
		case "t":
			if seenT {
				return p, fmt.Errorf("%w: t given twice", ErrMalformed)
			}
			seenT = true
			if !digits(value) || len(value) > maxTimeDigits {
				return p, fmt.Errorf("%w: t=%q is not Unix seconds", ErrMalformed, clip(value))
			}
			p.ts = value
			p.unix, _ = strconv.ParseInt(value, 10, 64) // digits only, at most 18: cannot fail
		case Scheme:
			var sig [sha256.Size]byte
			if len(value) != hex.EncodedLen(len(sig)) {
				return p, fmt.Errorf("%w: %s entry of %d characters, want %d hex digits", ErrMalformed, Scheme, len(value), hex.EncodedLen(len(sig)))
			}
			if _, err := hex.Decode(sig[:], []byte(value)); err != nil {
				return p, fmt.Errorf("%w: %s entry is not hex", ErrMalformed, Scheme)
			}
			p.sigs = append(p.sigs, sig)
		}
	}
	switch {
	case !seenT:
		return p, fmt.Errorf("%w: no t entry", ErrMalformed)
	case len(p.sigs) == 0:
		return p, fmt.Errorf("%w: no %s entry", ErrMalformed, Scheme)
	}
	return p, nil
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// clip keeps a hostile header from filling an error message.
func clip(s string) string {
	const max = 32
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
