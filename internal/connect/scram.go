package connect

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"

	"github.com/segmentio/kafka-go/sasl"
)

// ErrSCRAM is wrapped by every failure of a SCRAM exchange.
var ErrSCRAM = errors.New("connect: SCRAM authentication")

// Bounds on the iteration count a server may ask for: RFC 7677's minimum
// for SCRAM-SHA-256, and a ceiling so that a hostile broker cannot make each
// connection burn seconds of CPU (Kafka itself allows at most 16384).
const (
	scramMinIterations = 4096
	scramMaxIterations = 100_000
)

// scram is the client side of SCRAM (RFC 5802) as Kafka speaks it: no
// channel binding, no SASLprep (Kafka's own clients send the UTF-8 bytes),
// and the server's final signature checked, so a broker that does not know
// the password is not trusted. It is safe for concurrent use; each
// connection gets its own exchange.
type scram struct {
	name           string
	hash           func() hash.Hash
	user, password string
	// nonce makes the client nonce; nil means crypto/rand. Tests set it.
	nonce func() (string, error)
}

func (m *scram) Name() string { return m.name }

// Start sends client-first: "n,,n=<user>,r=<nonce>".
func (m *scram) Start(context.Context) (sasl.StateMachine, []byte, error) {
	nonce, err := m.newNonce()
	if err != nil {
		return nil, nil, err
	}
	x := &scramExchange{m: m, clientNonce: nonce}
	x.clientFirstBare = "n=" + scramEscape(m.user) + ",r=" + nonce
	return x, []byte("n,," + x.clientFirstBare), nil
}

func (m *scram) newNonce() (string, error) {
	if m.nonce != nil {
		return m.nonce()
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("%w: nonce: %w", ErrSCRAM, err)
	}
	return base64.RawStdEncoding.EncodeToString(b[:]), nil
}

// scramEscape escapes a user name as RFC 5802 says: "=" and "," would end
// the attribute.
func scramEscape(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

// scramExchange is one connection's authentication.
type scramExchange struct {
	m               *scram
	clientNonce     string
	clientFirstBare string
	serverSignature []byte // expected in server-final; nil until client-final is sent
}

func (x *scramExchange) Next(_ context.Context, challenge []byte) (bool, []byte, error) {
	if x.serverSignature == nil {
		resp, err := x.clientFinal(string(challenge))
		return false, resp, err
	}
	return true, nil, x.checkServerFinal(string(challenge))
}

// clientFinal answers server-first ("r=<nonce>,s=<salt>,i=<count>") with
// the proof that the client knows the password.
func (x *scramExchange) clientFinal(serverFirst string) ([]byte, error) {
	attrs, err := scramAttrs(serverFirst)
	if err != nil {
		return nil, err
	}
	if _, ok := attrs['m']; ok {
		return nil, fmt.Errorf("%w: server requires an extension this client does not know", ErrSCRAM)
	}
	nonce := attrs['r']
	if !strings.HasPrefix(nonce, x.clientNonce) || len(nonce) == len(x.clientNonce) {
		return nil, fmt.Errorf("%w: server nonce does not extend the client's", ErrSCRAM)
	}
	salt, err := base64.StdEncoding.DecodeString(attrs['s'])
	if err != nil || len(salt) == 0 {
		return nil, fmt.Errorf("%w: bad salt", ErrSCRAM)
	}
	iter, err := strconv.Atoi(attrs['i'])
	if err != nil || iter < scramMinIterations || iter > scramMaxIterations {
		return nil, fmt.Errorf("%w: iteration count %q outside %d..%d", ErrSCRAM, attrs['i'], scramMinIterations, scramMaxIterations)
	}
	size := x.m.hash().Size()
	salted, err := pbkdf2.Key(x.m.hash, x.m.password, salt, iter, size)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSCRAM, err)
	}
	clientKey := scramHMAC(x.m.hash, salted, "Client Key")
	h := x.m.hash()
	h.Write(clientKey)
	storedKey := h.Sum(nil)
	// "biws" is base64 of the GS2 header "n,,": no channel binding.
	withoutProof := "c=biws,r=" + nonce
	authMessage := x.clientFirstBare + "," + serverFirst + "," + withoutProof
	proof := scramHMAC(x.m.hash, storedKey, authMessage)
	for i := range proof {
		proof[i] ^= clientKey[i]
	}
	x.serverSignature = scramHMAC(x.m.hash, scramHMAC(x.m.hash, salted, "Server Key"), authMessage)
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

// checkServerFinal checks "v=<signature>": the server knew the password
// too. "e=<error>" is the server's refusal.
func (x *scramExchange) checkServerFinal(serverFinal string) error {
	attrs, err := scramAttrs(serverFinal)
	if err != nil {
		return err
	}
	if e, ok := attrs['e']; ok {
		return fmt.Errorf("%w: server refused: %s", ErrSCRAM, e)
	}
	got, err := base64.StdEncoding.DecodeString(attrs['v'])
	if err != nil || !hmac.Equal(got, x.serverSignature) {
		return fmt.Errorf("%w: the server's signature is wrong: it does not know the password", ErrSCRAM)
	}
	return nil
}

func scramHMAC(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// maxSCRAMMessage bounds what is parsed of a server message.
const maxSCRAMMessage = 4096

// scramAttrs splits "a=x,b=y" into attributes named by one letter.
func scramAttrs(msg string) (map[byte]string, error) {
	if len(msg) > maxSCRAMMessage {
		return nil, fmt.Errorf("%w: server message of %d bytes", ErrSCRAM, len(msg))
	}
	attrs := make(map[byte]string)
	for part := range strings.SplitSeq(msg, ",") {
		if len(part) < 2 || part[1] != '=' {
			return nil, fmt.Errorf("%w: malformed server message", ErrSCRAM)
		}
		if _, dup := attrs[part[0]]; dup {
			return nil, fmt.Errorf("%w: attribute %q twice in a server message", ErrSCRAM, part[0])
		}
		attrs[part[0]] = part[2:]
	}
	return attrs, nil
}
